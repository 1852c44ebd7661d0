"""Recording a live session on a real JACK server (dummy backend): the file holds exactly what lincae played
and what it received, and ``lincae live --record`` leaves valid files after Ctrl-C and after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model
from test_live import ENGINE, Player, TappedEngine, wire_player
from test_record import small_disk  # noqa: F401  (a fixture)

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.io.live import LiveConfig, LiveSession, wait_until

pytest_plugins = ["jackd_fixture"]
pytest.importorskip("jack", reason="JACK-Client is installed by scripts/setup.sh (dev extra)")


def read(path: Path) -> tuple[np.ndarray, int]:
    from pedalboard.io import AudioFile

    with AudioFile(str(path)) as f:
        return f.read(f.frames), int(f.samplerate)


def find(haystack: np.ndarray, needle: np.ndarray, starts: list[int]) -> int:
    """The block boundary in ``starts`` at which ``needle`` ``(C, n)`` lies in ``haystack`` sample for sample."""
    hits = [s for s in starts if np.array_equal(haystack[:, s : s + needle.shape[-1]], needle)]
    assert len(hits) >= 1, "the recording is not a stretch of what the engine played"
    return hits[0]


def test_the_recording_is_what_lincae_played_and_received(jack_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg = ParameterRegistry(mixer_parameters(1))
    reg.update({"mix.dry_wet": 50.0})
    engine = TappedEngine(
        LatentMixer(make_tiny_model(), EngineConfig(sources=[1], **ENGINE), reg, device="cpu"), block=256
    )
    session = LiveSession(
        engine,
        LiveConfig(
            input_device="system", output_device="system", block=256, source_channels=((1,),), output_channels=(1,)
        ),
    )
    t = np.arange(44100 * 3) / 44100
    signal_ = (0.4 * np.sin(2 * np.pi * 220 * t) * np.exp(-t)).astype(np.float32)
    session.start()
    try:
        with Player(signal_, record_frames=signal_.size) as player:
            xruns = engine.metrics.xruns
            wire_player(jack_server, session)
            player.playing.set()
            assert wait_until(lambda: player.pos > 4410, timeout=10)
            files = session.start_recording(tmp_path / "set.wav", inputs=True)
            assert files == [tmp_path / "set.wav", tmp_path / "set.input1.wav"]
            with pytest.raises(ValueError, match="already recording"):
                session.start_recording(tmp_path / "other.wav")
            assert wait_until(lambda: player.pos > 44100 * 2, timeout=20)
            assert "| rec " in session.status_line()
            done = session.stop_recording()
            assert wait_until(lambda: player.pos >= player.recorded.size, timeout=20)
    finally:
        session.stop()
    assert done == files and not session.recording_errors
    out, rate = read(tmp_path / "set.wav")
    inp, _ = read(tmp_path / "set.input1.wav")
    assert rate == 44100 and out.shape[0] == engine.out_channels and out.shape[-1] > 44100
    assert inp.shape == (1, out.shape[-1])
    played, received = np.concatenate(engine.pulled, axis=1), np.concatenate(engine.pushed, axis=1)
    starts = list(np.cumsum([0] + [b.shape[-1] for b in engine.pulled]))
    at = find(played, out, starts)
    assert np.array_equal(received[:, at : at + inp.shape[-1]], inp)  # the same callbacks, in and out
    assert np.abs(out).max() > 0.05 and np.abs(inp).max() > 0.05  # the signal went through, not silence
    # ... and what another JACK client captured from lincae's output port holds it too, sample for sample
    # (unless JACK lost a period meanwhile: a busy machine; the engine-side comparison above still holds)
    if engine.metrics.xruns == xruns:
        heard, n = player.recorded, min(out.shape[-1], 44100)
        candidates = np.flatnonzero(heard[: heard.size - n] == out[0, 0])
        assert any(np.array_equal(heard[k : k + n], out[0, :n]) for k in candidates)


def run_live(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    model = tmp_path / "tiny"
    if not model.exists():
        make_tiny_model().save_pretrained(model)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    cmd = [sys.executable, "-m", "lincae", "live", "--input", "system", "--output", "system", "--model", str(model)]
    return subprocess.Popen([*cmd, *args], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def test_live_record_survives_ctrl_c_and_a_crash_and_never_overwrites(jack_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    take = tmp_path / "take.wav"
    proc = run_live(tmp_path, "--record", str(take), "--record-inputs", "--sources", "1,2")
    assert wait_until(lambda: take.exists() and take.stat().st_size > 44100 * 4 * 2, timeout=60)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert f"recorded {take}" in err and "take.input2.wav" in err
    audio, rate = read(take)
    assert rate == 44100 and audio.shape[0] == 1 and audio.shape[-1] >= 44100
    assert read(tmp_path / "take.input1.wav")[0].shape[-1] == audio.shape[-1]

    # an existing file is kept: a one-line error, no traceback
    before = take.read_bytes()
    done = subprocess.run([*proc.args, "--duration", "1"], env=proc_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "already exists" in done.stderr and "Traceback" not in done.stderr
    assert take.read_bytes() == before

    # a crash (SIGKILL) leaves a valid file holding everything up to the last header rewrite
    crash = tmp_path / "crash.wav"
    proc = run_live(tmp_path, "--record", str(crash))
    assert wait_until(lambda: crash.exists() and crash.stat().st_size > 44100 * 4 * 2, timeout=60)
    time.sleep(1.5)
    proc.kill()
    proc.communicate(timeout=30)
    audio, _ = read(crash)
    assert audio.shape[-1] >= 44100


def proc_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}


def test_a_flac_take_on_a_full_disk_fails_the_command_in_one_line(jack_server, small_disk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The recording stops when the disk fills, the audio goes on to the end, and the command ends with
    the reason in one line and exit status 2; what reached the disk is a valid WAV file, as the line says."""
    from lincae.files.audiofile import read_audio

    disk = small_disk("64k")
    take = disk / "take.flac"
    proc = run_live(tmp_path, "--record", str(take), "--duration", "3")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lincae live: error: recording take.flac stopped after "), err[-2000:]
    partial = disk / "take.flac.partial.wav"
    assert "(No space left on device)" in last and f"s are kept in {partial}" in last, last
    assert sorted(p.name for p in disk.iterdir()) == [partial.name]
    assert read_audio(partial, 44100).shape[-1] > 0  # whole (lincae's reader refuses a truncated file)


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_live_stops_in_order_within_its_bound_whatever_the_signals_under_load(jack_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``lincae live`` with a recording (and its inputs), OSC and MIDI, started and stopped again and again
    while a busy process takes a core: one to three signals each time (Ctrl-C, or SIGTERM first), some
    at once and some spread out. Every exit comes within the bound with the right status, without a
    traceback or a crash, and every take is a valid file. ``LINCAE_STOP_CYCLES`` sets the count (30)."""
    import random
    import threading

    from lincae.io.shutdown import SALVAGE_SECONDS, STOP_SECONDS

    rtmidi = pytest.importorskip("rtmidi")
    from pythonosc.udp_client import SimpleUDPClient

    cycles = int(os.environ.get("LINCAE_STOP_CYCLES", "30"))
    bound = STOP_SECONDS + SALVAGE_SECONDS + 2.0  # (the watchdog's time, its salvage, the interpreter's exit)
    rng = random.Random(7)
    sender = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="stagectl")
    sender.open_virtual_port("out")
    osc: list[SimpleUDPClient] = []  # the OSC client of the cycle that runs
    done = threading.Event()

    def controllers() -> None:  # a knob and an OSC fader that never stop moving
        value = 0
        while not done.wait(0.05):
            value = (value + 5) % 128
            sender.send_message([0xB0, 7, value])
            for client in osc[-1:]:
                client.send_message("/lincae/master/gain", -float(value) / 4)

    moving = threading.Thread(target=controllers, daemon=True)
    moving.start()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for cycle in range(cycles):
            take = tmp_path / (f"take{cycle}.flac" if cycle % 5 == 4 else f"take{cycle}.wav")
            on_disk = take.with_name(take.name + ".partial.wav") if take.suffix == ".flac" else take
            port = free_udp_port()
            osc.append(SimpleUDPClient("127.0.0.1", port))
            proc = run_live(
                tmp_path,
                *("--record", str(take), "--record-inputs", "--sources", "1,2"),
                *("--osc", str(port), "--midi", "stagectl", "--midi-api", "jack"),
            )
            try:
                assert wait_until(lambda f=on_disk: f.exists() and f.stat().st_size > 4096, timeout=90), cycle
                time.sleep(rng.uniform(0.0, 0.8))
                first = signal.SIGTERM if cycle % 4 == 3 else signal.SIGINT
                signals = [first] + [rng.choice([signal.SIGINT, signal.SIGTERM]) for _ in range(rng.randint(0, 2))]
                began = time.monotonic()
                for sig in signals:
                    proc.send_signal(sig)
                    time.sleep(rng.choice([0.0, 0.0, rng.uniform(0.01, 0.3)]))
                _, err = proc.communicate(timeout=bound + 60)
                took = time.monotonic() - began
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            what = f"cycle {cycle}, signals {[s.name for s in signals]}, stopped in {took:.1f} s: {err[-1500:]}"
            assert took <= bound, what
            assert "Traceback" not in err and "Exception ignored" not in err, what
            cut_short = "the stop took longer than" in err  # (the watchdog ended it; the takes must still be valid)
            # the status of the signal that started the stop: the first sent, unless the next came before the
            # process handled it (signals pending together are handled in the order of their numbers)
            ctrl_c = 2 if cut_short and take.suffix == ".flac" else 0
            expected = {ctrl_c if s == signal.SIGINT else 128 + s for s in signals}
            assert proc.returncode in expected, what
            if not cut_short:
                assert f"recorded {take}" in err, what
            takes = [take, *(tmp_path / f"take{cycle}.input{i}{take.suffix}" for i in (1, 2))]
            # (a FLAC take the watchdog left unencoded is its partial WAV, as the line it wrote says)
            takes = [p if p.exists() or not cut_short else p.with_name(p.name + ".partial.wav") for p in takes]
            lengths = {read(p)[0].shape[-1] for p in takes}
            assert min(lengths) > 0, what
            assert cut_short or len(lengths) == 1, what  # output and inputs: the same callbacks
    finally:
        done.set()
        moving.join()
        busy.kill()
        busy.wait()
        sender.close_port()


def test_a_flac_take_says_how_many_samples_it_clipped(jack_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A post-decode gain drives the output past 0 dBFS: the status line counts what the 24-bit FLAC clips,
    and the stop says so in one line (the take itself is complete)."""
    take = tmp_path / "take.flac"
    proc = run_live(tmp_path, "--record", str(take), "--duration", "4", "--post", "gain(gain_db=90)")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
    status = [part for line in err.splitlines() for part in line.split("\r") if part.startswith("latency")]
    assert any("samples above 0 dBFS, clipped in the FLAC)" in s for s in status), status[-3:]
    notes = [line for line in err.splitlines() if "above 0 dBFS (peak" in line]
    assert len(notes) == 1 and notes[0].startswith("live: warning: recording take.flac: "), err[-2000:]
    assert "are clipped in the FLAC file (record to .wav to keep them" in notes[0]
    audio, _ = read(take)
    assert audio.shape[-1] >= 44100 and np.abs(audio).max() <= 1.0 + 2**-22
