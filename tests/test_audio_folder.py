"""Tests of the streaming audio-folder dataset and the stem readers (lincae.data.audio_folder)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lincae.data.audio_folder import (
    AudioFolderDataset,
    StemFolder,
    find_audio_files,
    load_audio,
    probe_audio,
    read_crop,
    read_piece,
)
from lincae.data.synth import write_wav

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


def _rms_db(x: torch.Tensor | np.ndarray) -> float:
    a = np.asarray(x, dtype=np.float64)
    rms = float(np.sqrt(np.mean(a**2)))
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


def _crops(ds: AudioFolderDataset) -> list[np.ndarray]:
    return [t.numpy().copy() for t in ds]


def test_finds_files_recursively(folder: Path) -> None:
    names = [p.name for p in find_audio_files(folder)]
    assert names == ["a.wav", "b.flac", "c.ogg"]
    assert [p.name for p in find_audio_files(folder, pattern="b.*")] == ["b.flac"]
    with pytest.raises(FileNotFoundError):
        find_audio_files(folder / "missing")


def test_yields_crops_of_the_right_length_and_dtype(folder: Path) -> None:
    ds = AudioFolderDataset(folder, crop_samples=4410, seed=0, crops_per_epoch=12, rms_floor_db=None)
    assert len(ds) == 12 and len(ds.files) == 3
    crops = list(ds)
    assert len(crops) == 12
    for c in crops:
        assert isinstance(c, torch.Tensor) and c.dtype == torch.float32 and c.shape == (4410,)
        assert torch.isfinite(c).all() and c.abs().max() > 0.1
    # crops start at random positions, so they are not all the same
    assert len({c.numpy().tobytes() for c in crops}) == 12


def test_deterministic_per_seed_and_epoch(folder: Path) -> None:
    def make(seed: int) -> AudioFolderDataset:
        return AudioFolderDataset(folder, crop_samples=2048, seed=seed, crops_per_epoch=8)

    first = _crops(make(3))
    assert all(np.array_equal(a, b) for a, b in zip(first, _crops(make(3)), strict=True))
    other = _crops(make(4))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    ds = make(3)
    ds.set_epoch(1)
    epoch1 = _crops(ds)
    assert not all(np.array_equal(a, b) for a, b in zip(first, epoch1, strict=True))
    ds.set_epoch(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, _crops(ds), strict=True))


def test_worker_aware_streams(folder: Path) -> None:
    ds = AudioFolderDataset(folder, crop_samples=1024, seed=1, crops_per_epoch=10)

    def run() -> list[np.ndarray]:
        loader = DataLoader(ds, batch_size=None, num_workers=2)
        return [t.numpy().copy() for t in loader]

    a, b = run(), run()
    assert len(a) == 10
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # the two workers do not produce the same crops
    assert len({x.tobytes() for x in a}) == 10
    # ranks split the epoch and draw different crops
    r0 = AudioFolderDataset(folder, crop_samples=1024, seed=1, crops_per_epoch=10, rank=0, world_size=2)
    r1 = AudioFolderDataset(folder, crop_samples=1024, seed=1, crops_per_epoch=10, rank=1, world_size=2)
    c0, c1 = _crops(r0), _crops(r1)
    assert len(c0) == len(c1) == 5 == len(r0)
    assert not any(np.array_equal(x, y) for x in c0 for y in c1)


def test_dataset_holds_no_audio(folder: Path) -> None:
    _write(folder / "long.flac", _tone(20.0, 100), SR)
    ds = AudioFolderDataset(folder, crop_samples=1024)
    assert len(pickle.dumps(ds)) < 20_000  # only paths and lengths travel to the workers


def test_respects_rms_floor(tmp_path: Path) -> None:
    # 0.5 s of tone then 3.5 s of silence: most random crops are silent
    audio = np.concatenate([_tone(0.5, 300), np.zeros(int(3.5 * SR), np.float32)])
    _write(tmp_path / "gap.wav", audio, SR)
    crop = 2205
    unfiltered = _crops(AudioFolderDataset(tmp_path, crop, seed=0, crops_per_epoch=40, rms_floor_db=None))
    assert sum(_rms_db(c) < -40 for c in unfiltered) > 20
    filtered = AudioFolderDataset(tmp_path, crop, seed=0, crops_per_epoch=40, rms_floor_db=-40.0, max_retries=50)
    crops = _crops(filtered)
    assert len(crops) >= 36
    assert all(_rms_db(c) >= -40.0 for c in crops)
    # an all-silent folder: every item is dropped (with a warning) and iteration still terminates
    silent = tmp_path / "silent"
    _write(silent / "zeros.wav", np.zeros(SR, np.float32), SR)
    ds = AudioFolderDataset(silent, crop, crops_per_epoch=5, rms_floor_db=-60.0, max_retries=3)
    with pytest.warns(UserWarning, match="dropped 5 of 5"):
        assert list(ds) == []


def test_resamples_stereo_22k_to_44k_mono(tmp_path: Path) -> None:
    left = _tone(1.0, 440, 22050, amp=0.5)
    right = _tone(1.0, 440, 22050, amp=0.5) + _tone(1.0, 1000, 22050, amp=0.5)
    path = _write(tmp_path / "st.wav", np.stack([left, right]), 22050)

    info = probe_audio(path, SR)
    assert info.frames == SR and info.source_sample_rate == 22050 and info.channels == 2
    mono = load_audio(path, SR)
    assert mono.dtype == np.float32 and mono.shape == (SR,)
    spectrum = np.abs(np.fft.rfft(mono[2000:-2000].astype(np.float64) * np.hanning(SR - 4000)))
    freqs = np.fft.rfftfreq(SR - 4000, 1 / SR)

    def level(f: float) -> float:
        return float(np.sqrt(np.sum(spectrum[np.abs(freqs - f) < 8] ** 2)))  # robust to scalloping

    # mean of the channels: 0.5 sin(440) + 0.25 sin(1000)
    assert level(440) / level(1000) == pytest.approx(2.0, rel=0.05)
    assert float(np.max(np.abs(mono[2000:-2000]))) < 0.8
    assert level(440) > 1000 * level(5000)

    ds = AudioFolderDataset(tmp_path, crop_samples=SR, rms_floor_db=None, crops_per_epoch=1)
    (crop,) = list(ds)
    assert crop.shape == (SR,)
    np.testing.assert_allclose(crop.numpy(), mono, atol=1e-6)

    # crop from the middle matches the same samples of the whole file
    middle = read_crop(path, 10_000, 4096, SR)
    np.testing.assert_allclose(middle, mono[10_000:14_096], atol=1e-4)


def test_short_files_are_padded_or_skipped(tmp_path: Path) -> None:
    short = _tone(0.25, 440)
    _write(tmp_path / "short.wav", short, SR)
    ds = AudioFolderDataset(tmp_path, crop_samples=SR, crops_per_epoch=2, rms_floor_db=None)
    for crop in ds:
        assert crop.shape == (SR,)
        np.testing.assert_allclose(crop[: short.size].numpy(), short, atol=1e-4)  # 16-bit file
        assert not crop[short.size :].any()
    with pytest.raises(ValueError, match="at least 44100 samples"):
        AudioFolderDataset(tmp_path, crop_samples=SR, short_files="skip")
    _write(tmp_path / "long.wav", _tone(2.0, 440), SR)
    ds = AudioFolderDataset(tmp_path, crop_samples=SR, short_files="skip")
    assert [f.path.name for f in ds.files] == ["long.wav"]


def test_corrupt_files_are_skipped_with_a_warning(folder: Path, tmp_path: Path) -> None:
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    (folder / "sub" / "truncated.flac").write_bytes(b"fLaC" + bytes(range(200)))
    with pytest.warns(UserWarning) as record:
        ds = AudioFolderDataset(folder, crop_samples=1024, crops_per_epoch=6)
    messages = " ".join(str(w.message) for w in record)
    assert "broken.wav" in messages and "truncated.flac" in messages
    assert sorted(f.path.name for f in ds.files) == ["a.wav", "b.flac", "c.ogg"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(ds)) == 6

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no audio here")
    with pytest.raises(ValueError, match="no readable audio"):
        AudioFolderDataset(empty, crop_samples=1024)
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "x.mp3").write_bytes(b"\x00" * 64)
    with pytest.warns(UserWarning, match="x.mp3"), pytest.raises(ValueError, match="no readable audio"):
        AudioFolderDataset(only_bad, crop_samples=1024)
    with pytest.raises(FileNotFoundError):
        AudioFolderDataset(tmp_path / "nope", crop_samples=1024)


def test_file_that_breaks_after_scanning_is_skipped(folder: Path) -> None:
    ds = AudioFolderDataset(folder, crop_samples=1024, crops_per_epoch=8, rms_floor_db=None)
    (folder / "a.wav").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="a.wav"):
        crops = list(ds)
    assert len(crops) == 8


def test_read_piece_and_stem_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stems = {name: (0.1 * rng.standard_normal(1000)).astype(np.float32) for name in ("bass", "drums")}
    for piece in ("p1", "p0"):
        (tmp_path / "set" / piece).mkdir(parents=True)
        for name, audio in stems.items():
            write_wav(tmp_path / "set" / piece / f"{name}.wav", audio, SR)
    got = read_piece(tmp_path / "set" / "p0")
    assert set(got) == {"bass", "drums"}
    for name in stems:
        assert got[name].dtype == np.float32 and np.array_equal(got[name], stems[name])
    assert set(read_piece(tmp_path / "set" / "p0", names=["bass"])) == {"bass"}
    with pytest.raises(FileNotFoundError):
        read_piece(tmp_path / "set" / "p0", names=["vocals"])

    # non-WAV stems and resampling go through pedalboard
    _write(tmp_path / "flac" / "x.flac", _tone(0.5, 440, 22050), 22050)
    _write(tmp_path / "flac" / "y.flac", _tone(0.5, 220, 22050), 22050)
    resampled = read_piece(tmp_path / "flac", sample_rate=SR)
    assert resampled["x"].shape == (SR // 2,)

    write_wav(tmp_path / "set" / "p1" / "bass.wav", stems["bass"][:900], SR)
    with pytest.raises(ValueError, match="differ in length"):
        read_piece(tmp_path / "set" / "p1")

    folder = StemFolder(tmp_path / "set")
    assert folder.ids == ("p0", "p1") and len(folder) == 2
    assert np.array_equal(folder[0]["drums"], stems["drums"])
    assert folder.meta(0) == {}
