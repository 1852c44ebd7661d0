"""Stopping in order under signals (``lincae.io.shutdown``): the first signal requests the stop, later ones
are absorbed, and a stop that hangs is ended by the watchdog with the recording left valid.

Each case runs a real process: a recorder fed by an "audio" thread, the live command's stop machinery,
and a stop that never finishes (a thread stuck in a native library), signalled from here.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lincae.io.shutdown import SALVAGE_SECONDS

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import numpy as np
    from lincae.io.record import Recorder
    from lincae.io.shutdown import StopRequest, StopWatchdog

    take, hang_writer = sys.argv[1], sys.argv[2] == "1"
    stop = StopRequest().install()
    stop.arm()
    rec = Recorder(take, 44100, 2, max_block=256)
    if hang_writer:  # the disk stops answering after the first writes: the writer thread hangs in one
        write, stuck = rec._wav.write, threading.Event()
        def hanging(block):
            write(block)
            if rec._wav.frames > 44100:
                rec._wav.file.flush()
                stuck.wait()
        rec._wav.write = hanging
    block = np.full((2, 256), 0.25, np.float32)

    def audio():
        while True:
            rec.feed(block)
            time.sleep(256 / 44100)

    threading.Thread(target=audio, daemon=True).start()
    while rec._wav.frames <= 44100:  # (what the writer wrote, the write it may hang in included)
        time.sleep(0.01)
    print("ready", flush=True)
    while not stop.wait(0.01):
        pass
    StopWatchdog(0.5, salvage=lambda: [rec.salvage(0.5)], status=stop.exit_status).start()
    threading.Event().wait()  # the stop never ends
    """
)


def run(tmp_path: Path, take: Path, signals: list[int], hang_writer: bool = False) -> tuple[int, str, float]:
    """Start the script, wait until it records, send ``signals`` (10 ms apart); (status, stderr, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(take), "1" if hang_writer else "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and select.select([proc.stdout], [], [], 60)[0], "the script did not start"
        assert proc.stdout.readline().strip() == "ready"
        began = time.monotonic()
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.01)
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err, time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def read(path: Path) -> np.ndarray:
    from lincae.files.audiofile import read_audio

    return read_audio(path, 44100)  # lincae's reader refuses a truncated or malformed file


@pytest.mark.parametrize(
    ("signals", "status"),
    [
        ([signal.SIGINT], 0),
        ([signal.SIGINT, signal.SIGINT, signal.SIGINT], 0),
        ([signal.SIGTERM, signal.SIGINT], 143),
        ([signal.SIGHUP], 128 + signal.SIGHUP),
    ],
)
def test_a_hanging_stop_is_ended_in_time_with_the_take_valid(tmp_path: Path, signals: list[int], status: int) -> None:
    take = tmp_path / "take.wav"
    code, err, took = run(tmp_path, take, signals)
    assert code == status, err
    assert took < 0.5 + SALVAGE_SECONDS + 2.0, took
    assert "Traceback" not in err and err.strip() == "lincae live: the stop took longer than 0.5 s; ending now", err
    audio = read(take)
    assert audio.shape[0] == 2 and audio.shape[-1] >= 44100 and np.all(audio == 0.25)


def test_a_flac_take_cut_short_keeps_its_partial_wav_and_says_so(tmp_path: Path) -> None:
    take = tmp_path / "take.flac"
    code, err, _ = run(tmp_path, take, [signal.SIGINT, signal.SIGINT])
    assert code == 2, err  # the take is not where it was asked for
    partial = tmp_path / "take.flac.partial.wav"
    assert err.strip().splitlines()[-1].startswith("lincae live: error: recording take.flac: not encoded to FLAC")
    assert f"are in {partial}" in err and "Traceback" not in err
    assert not take.exists() and read(partial).shape[-1] >= 44100


def test_a_writer_stuck_in_a_write_leaves_a_valid_file_of_what_reached_the_disk(tmp_path: Path) -> None:
    take = tmp_path / "take.wav"
    code, err, took = run(tmp_path, take, [signal.SIGINT], hang_writer=True)
    assert code == 0 and took < 0.5 + SALVAGE_SECONDS + 2.0, err
    audio = read(take)
    assert audio.shape[-1] > 44100 and np.all(audio == 0.25)
    header = 4 + 4 + 4 + 8 + 18 + 8 + 4 + 8  # RIFF, WAVE, fmt (18), fact, data
    assert take.stat().st_size == header + audio.shape[-1] * 2 * 4  # the header counts every whole frame
