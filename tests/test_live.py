"""Live audio end to end on a real JACK server (dummy backend): a second JACK client plays a known
signal into lincae's input and records lincae's output."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import make_tiny_model

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.engine.stream import EngineMetrics, StreamingEngine
from lincae.io.live import SWITCH_INTERVAL, LiveConfig, LiveSession, parse_sources, wait_until
from lincae.io.resample import SampleFifo

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


def jack_port_latency(server: object, port: str, mode: str) -> int:
    """The maximum of a port's ``capture`` or ``playback`` latency range, as ``jack_lsp -l`` prints it."""
    out = server._run("jack_lsp", "-l", port).stdout  # type: ignore[attr-defined]
    line = next(line for line in out.splitlines() if f"port {mode} latency" in line)
    return int(line.split("[")[1].split()[1])


def wire_player(server: object, session: LiveSession) -> None:
    """Route player:out → lincae's first input port and lincae's first output port → player:in."""
    (first_in, *_), (first_out, *_) = session.port_names
    for port in server.connections(first_in):  # type: ignore[attr-defined]
        server.disconnect(port, first_in)  # type: ignore[attr-defined]
    server.connect("player:out", first_in)  # type: ignore[attr-defined]
    server.connect(first_out, "player:in")  # type: ignore[attr-defined]


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


def sine_fit(x: np.ndarray, freq: float, rate: int) -> tuple[float, float]:
    """Least-squares fit of ``a·sin + b·cos + c`` at exactly ``freq`` Hz: (amplitude, residual in dB re the sine).

    A residual far below the sine also proves the frequency: 0.01 Hz off over 1 s would leave -24 dB.
    """
    t = np.arange(x.size) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x.astype(np.float64), rcond=None)
    fit = basis @ coef
    residual_db = 10 * np.log10(np.mean((x - fit) ** 2) / np.mean(fit**2))
    return float(np.hypot(coef[0], coef[1])), float(residual_db)


class DelayEngine:
    """Stands in for :class:`StreamingEngine` in the callback: its output is its input delayed by
    ``latency`` samples at ``sample_rate`` (no model, no worker), so only the rate conversion is tested."""

    def __init__(self, sample_rate: int, latency: int, channels: int = 1, max_block: int = 8192) -> None:
        self.mixer = SimpleNamespace(config=SimpleNamespace(sources=[channels]), sample_rate=sample_rate)
        self.out_channels = channels
        self.latency = latency
        self.max_block = max_block
        self.metrics = EngineMetrics()
        self.line = np.zeros((channels, 1 << 20), np.float32)
        self.written, self.read = latency, 0
        self.blocks: list[int] = []

    def push(self, block: np.ndarray) -> None:
        n = block.shape[-1]
        self.line[:, self.written : self.written + n] = block
        self.written += n
        self.blocks.append(n)

    def pull(self, out: np.ndarray) -> None:
        n = out.shape[-1]
        out[...] = self.line[:, self.read : self.read + n]
        self.read += n

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class FakeStream:
    """What ``sounddevice.Stream`` offers a :class:`LiveSession`; the test calls the callback itself."""

    def __init__(self, callback: object, **kwargs: object) -> None:
        self.callback, self.kwargs = callback, kwargs
        self.latency = (0.0, 0.0)
        self.active = True

    def start(self) -> None:
        pass

    def abort(self, ignore_errors: bool = True) -> None:
        self.active = False

    def close(self, ignore_errors: bool = True) -> None:
        pass


def drive(session: LiveSession, signal: np.ndarray, blocks: Iterator[int], out_channels: int) -> np.ndarray:
    """Run ``signal`` ``(frames, channels)`` through ``session``'s callback in blocks; returns its output."""
    recorded = np.zeros((signal.shape[0], out_channels), np.float32)
    pos = 0
    while pos < signal.shape[0]:
        n = min(next(blocks), signal.shape[0] - pos)
        outdata = np.full((n, out_channels), np.nan, np.float32)
        session._callback(signal[pos : pos + n], outdata, n, None, None)
        recorded[pos : pos + n] = outdata
        pos += n
    return recorded


@pytest.mark.parametrize("device_rate", [48000, 32000])
def test_a_device_at_another_rate_is_resampled_with_its_delay_declared(device_rate: int) -> None:
    """44.1 kHz model, device at 48 (or 32) kHz: a click comes back at the declared latency, a 1 kHz sine
    at 1 kHz, its level unchanged and its residual far below what linear interpolation leaves (-57 dB)."""
    import itertools

    engine = DelayEngine(44100, latency=3000)
    session = LiveSession(
        engine,  # type: ignore[arg-type]
        LiveConfig(source_channels=((1,),), output_channels=(1, 2), sample_rate=device_rate),
        stream_factory=FakeStream,
    )
    session.start()
    try:
        assert session._stream.kwargs["samplerate"] == device_rate
        declared = session.latency
        assert declared == round(3000 * device_rate / 44100) + session.resampler_latency
        assert 0 < 1000 * session.resampler_latency / device_rate < 5  # a few ms
        assert engine.metrics.latency_ms == pytest.approx(1000 * declared / device_rate)
        sig = np.zeros(device_rate * 2, np.float32)
        sig[1000] = 0.9
        t = np.arange(device_rate) / device_rate
        sig[device_rate // 2 : device_rate // 2 + t.size] = 0.5 * np.sin(2 * np.pi * 1000 * t)
        rec = drive(session, sig[:, None], itertools.repeat(256), out_channels=2)
    finally:
        session.stop()
    assert session.callback_errors == 0 and session.resample_underruns == 0, engine.metrics.error
    assert np.array_equal(rec[:, 0], rec[:, 1])  # the mono output feeds both device channels
    out = rec[:, 0]
    assert abs(int(np.argmax(np.abs(out[: device_rate // 2]))) - 1000 - declared) <= 1
    assert out[:1000].max() == 0.0  # nothing before the click but the priming's zeros
    start = device_rate // 2 + declared + 500
    amplitude, residual_db = sine_fit(out[start : start + device_rate // 2], 1000.0, device_rate)
    assert 20 * np.log10(amplitude / 0.5) == pytest.approx(0.0, abs=0.05)
    assert residual_db < -80, residual_db
    # the engine got the model's rate: as many samples as the device delivered, converted
    assert sum(engine.blocks) == pytest.approx(sig.size * 44100 / device_rate, abs=200)


def test_resampling_survives_odd_block_sizes_and_stereo() -> None:
    """Blocks of 1 … 700 frames (the host choosing), a stereo source: every output block is filled, the
    FIFO never runs dry, and both channels still come out clean and aligned at the declared latency."""
    rng = np.random.default_rng(1)
    engine = DelayEngine(44100, latency=2048, channels=2)
    session = LiveSession(
        engine,  # type: ignore[arg-type]
        LiveConfig(source_channels=((1, 2),), output_channels=(1, 2), block=0, sample_rate=48000),
        stream_factory=FakeStream,
    )
    sizes = iter(int(n) for n in rng.choice([1, 2, 3, 64, 256, 511, 700], size=100000))
    t = np.arange(48000 * 2) / 48000
    sig = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t), 0.25 * np.sin(2 * np.pi * 3000 * t)], axis=1)
    sig = sig.astype(np.float32)
    session.start()
    try:
        rec = drive(session, sig, sizes, out_channels=2)
    finally:
        session.stop()
    assert session.callback_errors == 0 and session.resample_underruns == 0, engine.metrics.error
    assert not np.isnan(rec).any()
    d = session.latency
    for ch, (freq, amp) in enumerate([(1000.0, 0.5), (3000.0, 0.25)]):
        got, residual_db = sine_fit(rec[d + 1000 : d + 1000 + 48000, ch], freq, 48000)
        assert 20 * np.log10(got / amp) == pytest.approx(0.0, abs=0.05)
        assert residual_db < -80, (ch, residual_db)
        # aligned: the output is the input delayed by the declared latency (within a sample)
        seg = slice(d + 1000, d + 1000 + 48000)
        assert np.abs(rec[seg, ch] - sig[1000 : 1000 + 48000, ch]).max() < amp * 2 * np.pi * freq / 48000


def test_a_reopened_device_restarts_the_conversion_at_the_same_latency() -> None:
    import itertools

    engine = DelayEngine(44100, latency=1500)
    session = LiveSession(
        engine,  # type: ignore[arg-type]
        LiveConfig(source_channels=((1,),), output_channels=(1,), sample_rate=48000),
        stream_factory=FakeStream,
    )
    session.start()
    try:
        drive(session, np.ones((10000, 1), np.float32), itertools.repeat(256), out_channels=1)
        session._close()  # the device went away mid-stream, with samples inside the converters
        session._open()
        assert session._resampler is not None and session._resampler.fifo.level == session.resampler_latency
        click = np.zeros((20000, 1), np.float32)
        click[3000] = 0.9
        rec = drive(session, click, itertools.repeat(256), out_channels=1)[:, 0]
    finally:
        session.stop()
    assert abs(int(np.argmax(np.abs(rec[2000:]))) + 2000 - 3000 - session.latency) <= 1  # (a fractional delay)
    assert session.resample_underruns == 0


def test_a_running_session_freezes_the_garbage_collector_and_lowers_the_switch_interval() -> None:
    """So that neither a full collection nor a long GIL slice keeps the audio callback waiting."""
    import gc
    import sys

    before = sys.getswitchinterval()
    session = LiveSession(
        DelayEngine(44100, latency=3000),  # type: ignore[arg-type]
        LiveConfig(source_channels=((1,),), output_channels=(1,)),
        stream_factory=FakeStream,
    )
    assert gc.get_freeze_count() == 0
    session.start()
    try:
        assert gc.get_freeze_count() > 0 and sys.getswitchinterval() <= SWITCH_INTERVAL
    finally:
        session.stop()
    assert gc.get_freeze_count() == 0 and sys.getswitchinterval() == before


def test_sample_fifo_wraps_and_pads() -> None:
    fifo = SampleFifo(1, 8)
    fifo.clear(3)
    fifo.write(np.arange(1, 5, dtype=np.float32)[None])
    out = np.zeros((1, 5), np.float32)
    fifo.read(out)
    assert out.tolist() == [[0, 0, 0, 1, 2]] and fifo.level == 2
    fifo.write(np.arange(5, 11, dtype=np.float32)[None])  # wraps around the end
    out = np.zeros((1, 10), np.float32)
    fifo.read(out)
    assert out.tolist() == [[3, 4, 5, 6, 7, 8, 9, 10, 0, 0]] and fifo.underruns == 2
    fifo.write(np.ones((1, 9), np.float32))
    assert fifo.level == 8 and fifo.overruns == 1


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
    # A period that JACK loses (an xrun: a busy machine) breaks the signal's path; such a take is played
    # again, and the checks hold for a take without one.
    for _take in range(4):
        xruns, taken = engine.metrics.xruns, sum(b.shape[-1] for b in engine.pushed)
        with Player(signal, record_frames=signal.size + d + 4096) as player:
            wire_player(server, session)
            player.playing.set()
            assert wait_until(lambda: player.pos >= player.recorded.size, timeout=30)
        if engine.metrics.xruns == xruns:
            break
    m = engine.metrics
    assert m.xruns == xruns, f"JACK reported xruns in every take ({m.xruns}); the machine is too busy"
    assert m.dropouts == 0 and m.fallback_samples == 0 and session.callback_errors == 0, session.status_line()

    # 1. The engine's input is the player's signal, sample for sample, somewhere in the stream.
    received = np.concatenate(engine.pushed, axis=1)[0]
    start = taken + int(np.argmax(received[taken:] == np.float32(0.9))) - 100
    assert np.array_equal(received[start : start + signal.size], signal)
    # 2. What the engine played equals the offline render of what it received, delayed by the declared latency.
    played = np.concatenate(engine.pulled, axis=1)
    reg = ParameterRegistry(mixer_parameters(1))
    reg.update({"mix.dry_wet": 50.0, "source.1.gain_db": -3.0})
    offline = render(
        LatentMixer(make_tiny_model(), EngineConfig(sources=[1], **ENGINE), reg, device="cpu"),
        [received[None]],
        batch=1,  # window by window, as live: exactly equal
    )
    n = played.shape[-1] - d
    assert np.array_equal(played[:, d:], offline[:, :n])
    # 3. The player heard that output through JACK; its click came back after the engine's latency: the
    #    player is a JACK client wired straight to lincae's ports (no sound card in the loop), and the loop
    #    through the graph adds at most one period.
    rec = player.recorded
    sent_at, heard_at = 100, int(np.argmax(np.abs(rec) > 0.2))
    click_out = offline[0, start + 100 - 3 : start + 100 + 3]
    assert np.abs(click_out).max() > 0.2
    measured = heard_at - sent_at
    assert d <= measured <= d + server.period, (measured, d)
    # The session declares the engine's latency plus the device's: JACK's capture latency of the input
    # ports it connected and playback latency of the output ports (as jack_lsp -l reports them).
    declared = session.latency
    assert session.backend == "jack"
    assert declared == d + engine.metrics.device_latency_samples
    assert engine.metrics.device_latency_samples == jack_port_latency(server, "system:capture_1", "capture") + (
        jack_port_latency(server, "system:playback_1", "playback")
    )
    lag = measured - d
    seg = slice(sent_at + lag + d, sent_at + lag + d + signal.size - 200)
    expected = offline[0, start + 100 : start + 100 + (seg.stop - seg.start)]
    assert np.array_equal(rec[seg], expected)


def test_device_loss_is_reported_and_the_stream_reopened(live) -> None:  # type: ignore[no-untyped-def]
    session, engine, _ = live
    assert wait_until(lambda: engine.metrics.windows > 0, timeout=10)
    session.abort_device()  # the device stops under us (as when it is unplugged)
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
    ctl.start_client()  # MIDI clients first: none can register while our JACK audio client runs
    t = np.arange(44100 * 4) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    session.start()
    try:
        ctl.open_virtual("in")
        jack_server.connect(f"knob-{id(engine)}:out", f"{client}:in")
        with Player(tone, record_frames=tone.size) as player:
            wire_player(jack_server, session)
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


def test_live_at_48k_over_jack_resamples_and_declares_the_delay(jack_server_48k) -> None:  # type: ignore[no-untyped-def]
    """The JACK server runs at 48 kHz, the model at 44.1 kHz. Fully dry (the engine passes its input
    through its windows and crossfades unchanged), a second client plays a click then a 1 kHz sine:
    the click comes back at the declared latency (within one period), the sine at 1 kHz with its level
    and far below linear interpolation's residual (about -57 dB for 48 → 44.1 → 48 kHz)."""
    server = jack_server_48k
    rate = server.sample_rate
    assert rate == 48000
    reg = ParameterRegistry(mixer_parameters(1))
    reg.set("mix.dry_wet", 0.0)
    engine = TappedEngine(
        LatentMixer(make_tiny_model(), EngineConfig(sources=[1], **ENGINE), reg, device="cpu"), block=server.period
    )
    session = LiveSession(
        engine,
        LiveConfig(
            input_device="system",
            output_device="system",
            block=server.period,
            source_channels=((1,),),
            output_channels=(1,),
            sample_rate=rate,
        ),
    )
    session.start()
    try:
        declared = session.latency
        assert declared == round(engine.latency * rate / 44100) + session.resampler_latency + (
            engine.metrics.device_latency_samples
        )
        # the click, then (once the click is out) one second of the sine
        click_at = 1000
        sine_at = click_at + declared + 2 * server.period + 1000
        signal = np.zeros(sine_at + rate, np.float32)
        signal[click_at] = 0.9
        signal[sine_at:] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(rate) / rate)
        # An xrun (a period JACK lost: this machine may be busy) shifts the loop by a period and says
        # nothing about the resampler: such a take is repeated, a few times at most.
        for _take in range(4):
            with Player(signal, record_frames=signal.size + declared + 4096) as player:
                wire_player(server, session)
                time.sleep(0.2)  # (re-wiring the graph itself may cost an xrun)
                xruns = engine.metrics.xruns
                player.playing.set()
                assert wait_until(lambda: player.pos >= player.recorded.size, timeout=30)
            if engine.metrics.xruns == xruns:
                break
    finally:
        session.stop()
    m = engine.metrics
    assert m.xruns == xruns, f"JACK reported xruns in every take ({m.xruns}); the machine is too busy"
    assert m.dropouts == 0 and m.fallback_samples == 0 and session.callback_errors == 0, session.status_line()
    assert session.resample_underruns == 0
    per_block = sum(b.shape[-1] for b in engine.pushed) / len(engine.pushed)
    assert per_block == pytest.approx(server.period * 44100 / rate, abs=1)  # the engine ran at 44.1 kHz
    rec = player.recorded
    measured = int(np.argmax(np.abs(rec[: sine_at - 100]))) - click_at
    assert np.abs(rec[click_at + measured]) > 0.5
    # as in the 44.1 kHz test: the player is wired straight to lincae's ports, so the click comes back after
    # the declared latency without the device's (the sound card's capture and playback), within a period
    through = declared - m.device_latency_samples
    assert through - 1 <= measured <= through + server.period, (measured, through)
    seg = rec[sine_at + measured + 1000 : sine_at + measured + 1000 + rate // 2]
    amplitude, residual_db = sine_fit(seg, 1000.0, rate)
    assert abs(20 * np.log10(amplitude / 0.5)) < 0.5, amplitude
    assert residual_db < -80, residual_db


def test_a_jack_server_that_dies_mid_session_is_survived(jack_server) -> None:  # type: ignore[no-untyped-def]
    """Kill the JACK server under a live session and start it again: the session notices, counts the gap,
    reconnects by itself with the same declared latency, and every thread lives on."""
    engine = TappedEngine(
        LatentMixer(make_tiny_model(), EngineConfig(sources=[1], **ENGINE), device="cpu"), block=jack_server.period
    )
    session = LiveSession(
        engine,
        LiveConfig(
            input_device="system",
            output_device="system",
            block=256,
            source_channels=((1,),),
            output_channels=(1,),
            reopen_backoff=0.2,
        ),
    )
    session.start()
    try:
        assert session.backend == "jack"
        assert wait_until(lambda: engine.metrics.windows > 2, timeout=10)
        declared = session.latency
        jack_server.restart(kill=True, down_for=1.0)
        assert wait_until(lambda: session.device_losses >= 1, timeout=10), session.status
        assert wait_until(lambda: session.reopens >= 1 and session.status == "running", timeout=20), session.status
        windows = engine.metrics.windows
        assert wait_until(lambda: engine.metrics.windows > windows + 3, timeout=10)  # audio flows again
        assert session.latency == declared
        assert session.device_losses == 1 and session.lost_seconds >= 1.0
        names = {t.name for t in threading.enumerate() if t.is_alive()}
        assert {"lincae-worker", "lincae-audio-supervisor"} <= names
        assert session.callback_errors == 0 and not engine.metrics.error
    finally:
        session.stop()
    assert session.status == "stopped"
