"""Training crops of audio folders (FolderCrops) and piece readers (lincae.data.pieces), through the one
audio reader of lincae.files.audiofile."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lincae.data.pieces import StemFolder, read_piece
from lincae.data.synth import write_wav
from lincae.files.audiofile import AudioFileError, AudioReader, find_audio_files, read_mono
from lincae.training.data import FolderCrops

pedalboard_io = pytest.importorskip("pedalboard.io")

SR = 44100


def _write(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write (channels, samples) or (samples,) audio with pedalboard (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    with pedalboard_io.AudioFile(str(path), "w", sample_rate, data.shape[0]) as f:
        f.write(data)
    return path


def _tone(seconds: float, freq: float, sample_rate: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _rms_db(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))
    return 20 * np.log10(rms) if rms > 0 else -np.inf


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    rng = np.random.default_rng(0)
    _write(root / "a.wav", _tone(2.0, 220) + 0.05 * rng.standard_normal(2 * SR).astype(np.float32), SR)
    _write(root / "sub" / "b.flac", np.stack([_tone(1.5, 330), _tone(1.5, 440)]), SR)
    _write(root / "sub" / "deeper" / "c.ogg", _tone(1.0, 550), 48000)
    (root / "notes.txt").write_text("not audio")
    return root


def test_finds_files_recursively(folder: Path) -> None:
    names = [p.name for p in find_audio_files(folder)]
    assert names == ["a.wav", "b.flac", "c.ogg"]
    assert [p.name for p in find_audio_files(folder, pattern="b.*")] == ["b.flac"]
    with pytest.raises(FileNotFoundError):
        find_audio_files(folder / "missing")


def test_crops_have_the_right_length_and_repeat_per_step(folder: Path) -> None:
    crops = FolderCrops(folder, 4410, seed=0, rms_floor=0.0)
    assert len(crops.files) == 3
    batch = crops.batch(5, 12)
    assert batch.shape == (12, 4410) and batch.dtype.is_floating_point
    assert bool(batch.abs().amax(-1).min() > 0.1)
    assert len({row.numpy().tobytes() for row in batch}) == 12  # random positions
    assert np.array_equal(batch.numpy(), FolderCrops(folder, 4410, seed=0, rms_floor=0.0).batch(5, 12).numpy())
    assert not np.array_equal(batch.numpy(), crops.batch(6, 12).numpy())
    assert not np.array_equal(batch.numpy(), crops.batch(5, 12, rank=1).numpy())


def test_resamples_stereo_22k_to_44k_mono(tmp_path: Path) -> None:
    left = _tone(1.0, 440, 22050, amp=0.5)
    right = _tone(1.0, 440, 22050, amp=0.5) + _tone(1.0, 1000, 22050, amp=0.5)
    path = _write(tmp_path / "st.wav", np.stack([left, right]), 22050)
    with AudioReader(path, SR) as r:
        assert r.frames == SR and r.source_rate == 22050 and r.channels == 2
    mono = read_mono(path, SR)
    assert mono.dtype == np.float32 and mono.shape == (SR,)
    spectrum = np.abs(np.fft.rfft(mono[2000:-2000].astype(np.float64) * np.hanning(SR - 4000)))
    freqs = np.fft.rfftfreq(SR - 4000, 1 / SR)

    def level(f: float) -> float:
        return float(np.sqrt(np.sum(spectrum[np.abs(freqs - f) < 8] ** 2)))  # robust to scalloping

    # mean of the channels: 0.5 sin(440) + 0.25 sin(1000)
    assert level(440) / level(1000) == pytest.approx(2.0, rel=0.05)
    assert level(440) > 1000 * level(5000)
    # a crop from the middle matches the same samples of the whole file
    np.testing.assert_allclose(read_mono(path, SR, 10_000, 4096), mono[10_000:14_096], atol=1e-4)
    (crop,) = FolderCrops(tmp_path, SR, rms_floor=0.0).batch(0, 1)
    np.testing.assert_allclose(crop.numpy(), mono, atol=1e-6)


def test_short_files_are_zero_padded(tmp_path: Path) -> None:
    short = _tone(0.25, 440)
    _write(tmp_path / "short.wav", short, SR)
    for crop in FolderCrops(tmp_path, SR, rms_floor=0.0).batch(0, 2):
        np.testing.assert_allclose(crop[: short.size].numpy(), short, atol=1e-4)  # 16-bit file
        assert not crop[short.size :].any()


def test_quiet_crops_are_redrawn(tmp_path: Path) -> None:
    # 0.5 s of tone then 3.5 s of silence: most random crops are silent
    audio = np.concatenate([_tone(0.5, 300), np.zeros(int(3.5 * SR), np.float32)])
    _write(tmp_path / "gap.wav", audio, SR)
    unfiltered = FolderCrops(tmp_path, 2205, seed=0, rms_floor=0.0).batch(0, 40).numpy()
    assert sum(_rms_db(c) < -40 for c in unfiltered) > 20
    filtered = FolderCrops(tmp_path, 2205, seed=0, rms_floor=0.01).batch(0, 40).numpy()
    audible = sum(_rms_db(c) >= -40 for c in filtered)
    assert audible >= 30 and audible >= 3 * sum(_rms_db(c) >= -40 for c in unfiltered)  # up to 20 redraws each


def test_unreadable_files_are_skipped_with_a_warning(folder: Path, tmp_path: Path) -> None:
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    (folder / "sub" / "truncated.flac").write_bytes(b"fLaC" + bytes(range(200)))
    with pytest.warns(UserWarning) as record:
        crops = FolderCrops(folder, 1024)
    messages = " ".join(str(w.message) for w in record)
    assert "broken.wav" in messages and "truncated.flac" in messages
    assert sorted(f.name for f in crops.files) == ["a.wav", "b.flac", "c.ogg"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert crops.batch(0, 6).shape == (6, 1024)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no readable audio"):
        FolderCrops(empty, 1024)
    with pytest.raises(FileNotFoundError):
        FolderCrops(tmp_path / "nope", 1024)
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        read_mono(folder / "broken.wav", SR)


def test_read_piece_and_stem_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stems = {name: (0.1 * rng.standard_normal(1000)).astype(np.float32) for name in ("bass", "drums")}
    for piece in ("p1", "p0"):
        (tmp_path / "set" / piece).mkdir(parents=True)
        for name, audio in stems.items():
            write_wav(tmp_path / "set" / piece / f"{name}.wav", audio, SR)
    got = read_piece(tmp_path / "set" / "p0")
    assert set(got) == {"bass", "drums"}
    for name in stems:  # float WAVs come back bit-exactly
        assert got[name].dtype == np.float32 and np.array_equal(got[name], stems[name])
    assert set(read_piece(tmp_path / "set" / "p0", names=["bass"])) == {"bass"}
    with pytest.raises(FileNotFoundError):
        read_piece(tmp_path / "set" / "p0", names=["vocals"])
    _write(tmp_path / "flac" / "x.flac", _tone(0.5, 440, 22050), 22050)
    _write(tmp_path / "flac" / "y.flac", _tone(0.5, 220, 22050), 22050)
    assert read_piece(tmp_path / "flac", sample_rate=SR)["x"].shape == (SR // 2,)
    write_wav(tmp_path / "set" / "p1" / "bass.wav", stems["bass"][:900], SR)
    with pytest.raises(ValueError, match="differ in length"):
        read_piece(tmp_path / "set" / "p1")
    stem_folder = StemFolder(tmp_path / "set")
    assert stem_folder.ids == ("p0", "p1") and len(stem_folder) == 2
    assert np.array_equal(stem_folder[0]["drums"], stems["drums"])
    assert stem_folder.meta(0) == {}


def test_a_folder_of_synth_datasets_lists_their_pieces_and_skips_what_is_not_one(tmp_path: Path) -> None:
    import json

    tone = _tone(0.1, 440, SR)
    for dataset, pieces in (("fluid", ["a0", "a1"]), ("timgm", ["b0"])):
        for piece in pieces:
            (tmp_path / dataset / piece).mkdir(parents=True)
            write_wav(tmp_path / dataset / piece / "mix.wav", tone, SR)
        index = {"format": "lincae-synth", "version": 1, "pieces": [{"id": p} for p in pieces]}
        (tmp_path / dataset / "index.json").write_text(json.dumps(index))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "index.json").write_text(json.dumps({"format": "someone-else", "items": [1]}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "index.json").write_text("{not json")
    folder = StemFolder(tmp_path)
    assert folder.ids == ("fluid/a0", "fluid/a1", "timgm/b0")
    assert np.array_equal(folder[2]["mix"], read_piece(tmp_path / "timgm" / "b0")["mix"])
