"""Live audio end to end on a real JACK server (dummy backend): a second JACK client plays a known
signal into lincae's input and records lincae's output."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import make_tiny_model

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.engine.stream import StreamingEngine
from lincae.io.live import LiveConfig, LiveSession, parse_sources, wait_until

pytest_plugins = ["jackd_fixture"]
jack = pytest.importorskip("jack", reason="JACK-Client is installed by scripts/setup.sh (dev extra)")

# The tiny test model with steps long enough to stay far below real time on a busy 2-core machine.
ENGINE = dict(window_frames=24, step_frames=16, lookahead_frames=2, crossfade=512, seed=3, compute_budget=3.0)


class TappedEngine(StreamingEngine):
    """The real engine, keeping a copy of what the audio callback pushed and pulled (test instrumentation)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pushed: list[np.ndarray] = []
        self.pulled: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        self.pushed.append(block.copy())
        super().push(block)

    def pull(self, out: np.ndarray) -> None:
        super().pull(out)
        self.pulled.append(out.copy())


class Player:
    """A JACK client that plays ``signal`` once into its output port and records its input port."""

    def __init__(self, signal: np.ndarray, record_frames: int) -> None:
        self.client = jack.Client("player", no_start_server=True)
        self.out = self.client.outports.register("out")
        self.inp = self.client.inports.register("in")
        self.signal = signal.astype(np.float32)
        self.recorded = np.zeros(record_frames, np.float32)
        self.pos = 0
        self.playing = threading.Event()
        self.client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        out = self.out.get_array()
        out[:] = 0.0
        if self.playing.is_set() and self.pos < self.recorded.size:
            n = min(frames, self.signal.size - self.pos) if self.pos < self.signal.size else 0
            if n > 0:
                out[:n] = self.signal[self.pos : self.pos + n]
            m = min(frames, self.recorded.size - self.pos)
            self.recorded[self.pos : self.pos + m] = self.inp.get_array()[:m]
            self.pos += frames

    def __enter__(self) -> Player:
        self.client.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.deactivate()
        self.client.close()


def wire_player(server: object) -> None:
    """Route player:out → lincae's first input port and lincae's first output port → player:in.

    PortAudio numbers its JACK ports per stream (``in_0``, later ``in_3`` ...): take the current ones.
    """
    ports = server.ports()  # type: ignore[attr-defined]

    def newest(prefix: str) -> str:
        found = [p for p in ports if p.startswith(prefix)]
        return max(found, key=lambda p: int(p.rsplit("_", 1)[1]))

    pa_in, pa_out = newest("PortAudio:in_"), newest("PortAudio:out_")
    for port in server.connections(pa_in):  # type: ignore[attr-defined]
        server.disconnect(port, pa_in)  # type: ignore[attr-defined]
    server.connect("player:out", pa_in)  # type: ignore[attr-defined]
    server.connect(pa_out, "player:in")  # type: ignore[attr-defined]


@pytest.fixture
def live(jack_server: object) -> Iterator[tuple[LiveSession, TappedEngine, object]]:
    reg = ParameterRegistry(mixer_parameters(1))
    reg.update({"mix.dry_wet": 50.0, "source.1.gain_db": -3.0})
    engine = TappedEngine(
        LatentMixer(make_tiny_model(), EngineConfig(sources=[1], **ENGINE), reg, device="cpu"), block=jack_server.period
    )  # type: ignore[attr-defined]
    session = LiveSession(
        engine,
        LiveConfig(
            input_device="system", output_device="system", block=256, source_channels=((1,),), output_channels=(1,)
        ),
    )
    session.start()
    try:
        yield session, engine, jack_server
    finally:
        session.stop()


def test_parse_sources() -> None:
    assert parse_sources("1,2") == ((1,), (2,))
    assert parse_sources("1+2,3") == ((1, 2), (3,))
    with pytest.raises(ValueError, match="channel numbers"):
        parse_sources("left")


def test_live_output_over_jack_equals_the_offline_render_aligned_by_the_declared_latency(live) -> None:  # type: ignore[no-untyped-def]
    session, engine, server = live
    rng = np.random.default_rng(0)
    t = np.arange(int(44100 * 1.5)) / 44100
    signal = (0.3 * np.sin(2 * np.pi * 330 * t) * np.exp(-2 * t) + 0.02 * rng.standard_normal(t.size)).astype(
        np.float32
    )
    signal[:100] = 0.0
    signal[100] = 0.9  # a click marks the start
    d = engine.latency
    with Player(signal, record_frames=signal.size + d + 4096) as player:
        wire_player(server)
        player.playing.set()
        assert wait_until(lambda: player.pos >= player.recorded.size, timeout=30)
    m = engine.metrics
    assert m.dropouts == 0 and m.fallback_samples == 0 and session.callback_errors == 0, session.status_line()

    # 1. The engine's input is the player's signal, sample for sample, somewhere in the stream.
    received = np.concatenate(engine.pushed, axis=1)[0]
    start = int(np.argmax(received == np.float32(0.9))) - 100
    assert np.array_equal(received[start : start + signal.size], signal)
    # 2. What the engine played equals the offline render of what it received, delayed by the declared latency.
    played = np.concatenate(engine.pulled, axis=1)
    reg = ParameterRegistry(mixer_parameters(1))
    reg.update({"mix.dry_wet": 50.0, "source.1.gain_db": -3.0})
    offline = render(
        LatentMixer(make_tiny_model(), EngineConfig(sources=[1], **ENGINE), reg, device="cpu"), [received[None]]
    )
    n = played.shape[-1] - d
    assert np.array_equal(played[:, d:], offline[:, :n])
    # 3. The player heard that output through JACK; its click came back after the declared latency plus at
    #    the device latency (within one block).
    rec = player.recorded
    sent_at, heard_at = 100, int(np.argmax(np.abs(rec) > 0.2))
    click_out = offline[0, start + 100 - 3 : start + 100 + 3]
    assert np.abs(click_out).max() > 0.2
    measured = heard_at - sent_at
    # The session declares the engine's latency plus the device's (what PortAudio reports for the JACK
    # ports); the click loop itself may add at most one period.
    declared = session.latency
    assert declared == d + engine.metrics.device_latency_samples
    assert declared <= measured <= declared + server.period, (measured, declared)
    lag = measured - d
    seg = slice(sent_at + lag + d, sent_at + lag + d + signal.size - 200)
    expected = offline[0, start + 100 : start + 100 + (seg.stop - seg.start)]
    assert np.array_equal(rec[seg], expected)


def test_device_loss_is_reported_and_the_stream_reopened(live) -> None:  # type: ignore[no-untyped-def]
    session, engine, _ = live
    assert wait_until(lambda: engine.metrics.windows > 0, timeout=10)
    session._stream.abort()  # the device stops under us (as when it is unplugged)
    assert wait_until(lambda: session.reopens >= 1 and session.status == "running", timeout=10), session.status
    before = engine.metrics.windows
    assert wait_until(lambda: engine.metrics.windows > before + 2, timeout=10)  # audio flows again


def test_midi_cc_over_jack_changes_the_gain_in_the_audio(jack_server) -> None:  # type: ignore[no-untyped-def]
    """A CC sent through a JACK MIDI port moves source 1's latent gain; the audio drops accordingly.

    A linear test codec stands in for the model so that the output level is exactly gain × input.
    """
    import rtmidi
    from test_engine import LinearTestCodec

    from lincae.io.mapping import MidiMapping
    from lincae.io.midi import MidiController

    reg = ParameterRegistry(mixer_parameters(1))
    cfg = EngineConfig(sources=[1], window_frames=8, step_frames=4, lookahead_frames=1, crossfade=256, smoothing_ms=10)
    engine = TappedEngine(LatentMixer(LinearTestCodec(), cfg, reg, device="cpu"), block=256)
    session = LiveSession(
        engine,
        LiveConfig(
            input_device="system", output_device="system", block=256, source_channels=((1,),), output_channels=(1,)
        ),
    )
    client = f"lincae-live-{id(engine)}"
    ctl = MidiController(
        reg, [MidiMapping("source.1.gain_db", cc=7, channel=1, soft_takeover=False)], api="jack", client_name=client
    )
    sender = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=f"knob-{id(engine)}")
    sender.open_virtual_port("out")
    t = np.arange(44100 * 4) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    session.start()
    try:
        ctl.open_virtual("in")
        jack_server.connect(f"knob-{id(engine)}:out", f"{client}:in")
        with Player(tone, record_frames=tone.size) as player:
            wire_player(jack_server)
            player.playing.set()
            assert wait_until(lambda: player.pos > 44100 * 1.5, timeout=20)
            sender.send_message([0xB0, 7, 0])  # knob to zero: -60 dB, silence
            assert wait_until(lambda: (ctl.poll(), reg.get("source.1.gain_db") == -60.0)[1], timeout=5)
            moved_at = player.pos
            assert wait_until(lambda: player.pos >= player.recorded.size, timeout=20)
    finally:
        session.stop()
        ctl.close()
        sender.delete()
    rec = player.recorded
    d = engine.latency
    before = rec[d + 4410 : moved_at - 2048]
    after = rec[moved_at + d + 8192 :]
    assert np.abs(before).max() == pytest.approx(0.5, abs=0.01)  # gain 0 dB: the tone passes
    assert after.size > 10000 and np.abs(after).max() < 1e-3  # after the CC: silence


def test_live_command_runs_on_jack(jack_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys
    from pathlib import Path

    model = make_tiny_model().save_pretrained(tmp_path / "tiny")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lincae",
            "live",
            "--input",
            "system",
            "--output",
            "system",
            "--model",
            str(model),
            "--duration",
            "2",
            "--preset",
            "stage-reverb",
            "--sources",
            "1+2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "latency" in done.stderr and "stopped after" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "lincae", "devices"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "system" in done.stdout
