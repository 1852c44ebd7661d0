"""``lincae live`` as a user runs it, on a real JACK server: MIDI program changes and a plugin that won't load."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import make_tiny_model

from lincae.presets import Preset, load_preset

pytest_plugins = ["jackd_fixture"]


def test_live_command_with_midi_program_changes_and_a_missing_plugin(jack_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rtmidi = pytest.importorskip("rtmidi")
    model = make_tiny_model().save_pretrained(tmp_path / "tiny")
    start = Preset(
        name="with a missing plugin",
        engine=load_preset("half-volume").engine,
        post=[{"plugin": "vst3", "path": str(tmp_path / "gone.vst3")}, {"plugin": "Gain", "params": {"gain_db": -3.0}}],
    )
    start.save(tmp_path / "start.json")
    sender = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="stagectl")
    sender.open_virtual_port("out")
    stop = threading.Event()

    def press_program_1() -> None:  # program 1 = the second entry of --programs, until lincae has seen it
        while not stop.wait(0.3):
            sender.send_message([0xC0, 1])

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = ["--input", "system", "--output", "system", "--model", str(model), "--duration", "6"]
    args += ["--preset", str(tmp_path / "start.json"), "--midi", "stagectl", "--midi-api", "jack"]
    args += ["--programs", f"{tmp_path / 'start.json'},half-volume"]
    presser = threading.Thread(target=press_program_1, daemon=True)
    presser.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lincae", "live", *args], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        stop.set()
        presser.join()
        sender.close_port()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "plugin bypassed" in done.stderr and "gone.vst3" in done.stderr
    assert "program 1: preset Half volume" in done.stderr
    assert "stopped after" in done.stderr


def test_live_command_at_a_device_rate_other_than_the_models(jack_server_48k, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = make_tiny_model().save_pretrained(tmp_path / "tiny")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = ["--input", "system", "--output", "system", "--model", str(model), "--duration", "2"]
    args += ["--rate", "48000", "--block", "1024"]
    done = subprocess.run(
        [sys.executable, "-m", "lincae", "live", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped after" in done.stderr
    # without --rate the 48 kHz device refuses 44.1 kHz: a clear message, not a traceback
    done = subprocess.run(
        [sys.executable, "-m", "lincae", "live", *args[:-4], "--duration", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "the JACK server runs at 48000 Hz, not 44100 Hz" in done.stderr and "--rate 48000" in done.stderr


def test_a_stream_that_runs_in_windows_is_said_once(jack_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The low-latency preset asks for a stream; the tiny model cannot stream: one line says so when the
    session starts, and the status line (rewritten twice a second) does not repeat it."""
    model = make_tiny_model().save_pretrained(tmp_path / "tiny")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = ["--input", "system", "--output", "system", "--model", str(model), "--duration", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "lincae", "live", *args, "--preset", "low-latency"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("cannot stream") == 1, done.stderr[-2000:]
    assert "live: model 'tiny' cannot stream (not a streamable model): using windows" in done.stderr
    status = [part for line in done.stderr.splitlines() for part in line.split("\r") if part.startswith("latency")]
    assert len(status) >= 3  # the status line ran, without the remark
