"""Recording a session to disk: the writer thread, the file formats, a full disk, an existing file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from lincae.io.record import HEADER_INTERVAL, Recorder, check_record_path, input_path


def read(path: Path) -> np.ndarray:
    from pedalboard.io import AudioFile

    with AudioFile(str(path)) as f:
        assert f.samplerate == 48000
        return f.read(f.frames)


def feed(rec: Recorder, audio: np.ndarray, block: int = 333) -> None:
    for i in range(0, audio.shape[-1], block):
        rec.feed(audio[:, i : i + block])


def test_a_wav_recording_holds_the_samples_exactly_and_is_valid_while_it_runs(tmp_path: Path) -> None:
    audio = np.random.default_rng(0).standard_normal((2, 60000)).astype(np.float32)  # peaks above 0 dBFS too
    rec = Recorder(tmp_path / "set.wav", 48000, 2)
    feed(rec, audio[:, :30000])
    time.sleep(HEADER_INTERVAL + 0.5)  # the header is rewritten: the file as it stands is readable
    assert np.array_equal(read(tmp_path / "set.wav"), audio[:, :30000])
    feed(rec, audio[:, 30000:])
    assert rec.stop() == tmp_path / "set.wav" and not rec.error and rec.lost == 0
    assert np.array_equal(read(tmp_path / "set.wav"), audio)


def test_a_flac_recording_is_encoded_at_stop_and_the_partial_wav_goes(tmp_path: Path) -> None:
    audio = (0.5 * np.random.default_rng(1).standard_normal((1, 20000))).clip(-1, 1).astype(np.float32)
    rec = Recorder(tmp_path / "set.flac", 48000, 1)
    feed(rec, audio)
    assert rec.stop() == tmp_path / "set.flac"
    assert np.abs(read(tmp_path / "set.flac") - audio).max() < 2**-22  # 24-bit samples
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.flac"]


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "take.wav").write_bytes(b"precious")
    with pytest.raises(ValueError, match=r"take.wav: already exists \(pass --force"):
        Recorder(tmp_path / "take.wav", 48000, 1)
    assert (tmp_path / "take.wav").read_bytes() == b"precious"
    with pytest.raises(ValueError, match=r"\.wav or \.flac"):
        check_record_path(tmp_path / "take.mp3")
    with pytest.raises(ValueError, match="does not exist"):
        check_record_path(tmp_path / "nowhere" / "take.wav")
    rec = Recorder(tmp_path / "take.wav", 48000, 1, force=True)
    rec.feed(np.ones((1, 10), np.float32))
    rec.stop()
    assert np.array_equal(read(tmp_path / "take.wav"), np.ones((1, 10), np.float32))
    assert input_path(tmp_path / "take.wav", 2) == tmp_path / "take.input2.wav"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_stops_the_recording_with_a_message(tmp_path: Path) -> None:
    """``/dev/full`` fails every write with ENOSPC, as a full disk does: the recorder says so and stops
    taking blocks; feeding it (the audio thread) goes on without error."""
    (tmp_path / "full.wav").symlink_to("/dev/full")
    rec = Recorder(tmp_path / "full.wav", 48000, 2, force=True)
    block = np.zeros((2, 4096), np.float32)
    deadline = time.monotonic() + 10
    while not rec.error and time.monotonic() < deadline:
        rec.feed(block)
        time.sleep(0.01)
    assert "No space left on device" in rec.error and "full.wav" in rec.error, rec.error
    assert "\n" not in rec.error
    rec.feed(block)  # the audio side carries on
    assert rec.stop() is None
