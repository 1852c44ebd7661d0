"""Recording a session to disk: the writer thread, the file formats, a full disk, an existing file."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``small_disk("64k")``: a tmpfs of that size (needs root and mount rights), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", str(disk)], check=True)


def noise(seconds: float, channels: int = 1, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.5 * rng.standard_normal((channels, int(48000 * seconds)))).clip(-1, 1).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_disk_that_fills_keeps_what_it_holds_as_a_valid_file_and_says_so(
    suffix: str, small_disk: Callable[[str], Path]
) -> None:
    from lincae.files.audiofile import read_audio

    disk = small_disk("64k")
    rec = Recorder(disk / f"take{suffix}", 48000, 2)
    feed(rec, noise(1.0, 2))
    deadline = time.monotonic() + 10
    while not rec.error and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.stop() is None
    kept = disk / ("take.flac.partial.wav" if suffix == ".flac" else "take.wav")
    assert "No space left on device" in rec.error and "\n" not in rec.error, rec.error
    assert f"the first {rec.seconds:.1f} s are kept in {kept}" in rec.error, rec.error
    assert sorted(p.name for p in disk.iterdir()) == [kept.name]
    audio = read_audio(kept, 48000)  # whole: lincae's own reader refuses a truncated file
    assert 0 < audio.shape[-1] == rec.frames
    np.testing.assert_array_equal(audio, noise(1.0, 2)[:, : rec.frames])


def test_a_disk_that_is_full_from_the_start_leaves_no_file(small_disk: Callable[[str], Path]) -> None:
    disk = small_disk("4k")
    (disk / "filler").write_bytes(bytes(4096))
    rec = Recorder(disk / "take.flac", 48000, 1)
    feed(rec, noise(0.5))
    assert rec.stop() is None
    assert "nothing was recorded" in rec.error and "\n" not in rec.error, rec.error
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_flac_that_does_not_fit_keeps_the_partial_wav_and_says_so(small_disk: Callable[[str], Path]) -> None:
    disk = small_disk("256k")  # one second of mono float32 fits, its FLAC beside it does not
    rec = Recorder(disk / "take.flac", 48000, 1)
    feed(rec, noise(1.0))
    assert rec.stop() is None
    partial = disk / "take.flac.partial.wav"
    assert f"cannot encode {disk / 'take.flac'}" in rec.error and "\n" not in rec.error, rec.error
    assert f"the 1.0 s recorded are kept in {partial}" in rec.error
    assert sorted(p.name for p in disk.iterdir()) == [partial.name]  # no FLAC, no temporary file
    np.testing.assert_array_equal(read(partial), noise(1.0))


def test_a_flac_take_counts_the_samples_it_clips_and_says_so_in_one_line(tmp_path: Path) -> None:
    """24-bit FLAC ends at 0 dBFS: samples beyond it are clipped in the file, and counted (a WAV take keeps them)."""
    audio = np.zeros((2, 20000), np.float32)
    audio[0, 1000:1010] = 1.5  # +3.5 dBFS
    audio[1, 5000:5003] = -2.0  # +6.0 dBFS
    audio[0, 7000] = 1.0  # 0 dBFS itself is no clipping
    flac, wav = Recorder(tmp_path / "set.flac", 48000, 2), Recorder(tmp_path / "set.wav", 48000, 2)
    for rec in (flac, wav):
        feed(rec, audio)
        assert rec.stop() is not None
    assert flac.clipped == 13 and flac.peak == 2.0
    note = flac.clip_note()
    assert note == (
        "recording set.flac: 13 sample(s) above 0 dBFS (peak +6.0 dBFS) are clipped in the FLAC file "
        "(record to .wav to keep them: it stores float samples)"
    )
    assert np.abs(read(tmp_path / "set.flac")).max() <= 1.0 + 2**-22  # what the FLAC holds: clipped
    assert not wav.clip_note() and np.array_equal(read(tmp_path / "set.wav"), audio)  # the WAV keeps them


def test_silence_is_written_where_the_producer_says_audio_stopped(tmp_path: Path) -> None:
    """A gap of any length (longer than the ring) lands between the blocks fed before and after it."""
    rec = Recorder(tmp_path / "set.wav", 48000, 1)
    before, after = np.full((1, 1000), 0.5, np.float32), np.full((1, 700), -0.25, np.float32)
    rec.feed(before)
    rec.add_silence(48000 * 10)  # longer than the ring (RING_SECONDS)
    rec.feed(after)
    assert rec.stop() == tmp_path / "set.wav" and rec.lost == 0 and rec.silence == 480000
    got = read(tmp_path / "set.wav")[0]
    assert np.array_equal(got, np.concatenate([before[0], np.zeros(480000, np.float32), after[0]]))
