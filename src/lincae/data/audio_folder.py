"""Streaming random crops from a folder of audio files, and reading back multi-stem pieces.

:class:`AudioFolderDataset` is a ``torch.utils.data.IterableDataset`` that yields random mono crops
(float32, 44.1 kHz by default) from every ``.wav``/``.flac``/``.mp3``/``.ogg`` file below a folder.
Only the header of every file is read when the dataset is built; each crop then opens its file, seeks
to a random frame and decodes just the crop, so memory does not grow with the size of the dataset.
Files are decoded with ``pedalboard.io.AudioFile`` and resampled on the fly with its
``resampled_to`` (windowed-sinc) reader.

Note that ``pedalboard`` seeks in MP3 files by decoding from the start, so a crop from a long MP3 costs
about as much as decoding the file up to the crop (~0.8 s for 5 minutes into a file); convert large MP3
collections to FLAC for fast training.

:func:`read_piece` and :class:`StemFolder` read back the stems of pieces written by
:func:`lincae.data.synth.write_synth_dataset` (or any folder of equally long stem files).
"""

from __future__ import annotations

import fnmatch
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lincae.data.synth import read_wav

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioFileInfo",
    "AudioFolderDataset",
    "StemFolder",
    "find_audio_files",
    "load_audio",
    "probe_audio",
    "read_crop",
    "read_piece",
]

#: File extensions (lower case) picked up by :func:`find_audio_files`.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg")


def _audio_file(path: Path) -> Any:
    try:
        from pedalboard.io import AudioFile
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("reading audio needs pedalboard: `pip install pedalboard`") from err
    return AudioFile(str(path))


@dataclass(frozen=True)
class AudioFileInfo:
    """What :func:`probe_audio` learns from a file's header.

    Attributes:
        path: The file.
        frames: Length in samples at the *target* sample rate (after resampling).
        source_sample_rate: The file's own sample rate in Hz.
        channels: Number of channels in the file.
    """

    path: Path
    frames: int
    source_sample_rate: float
    channels: int


def find_audio_files(
    root: str | Path, extensions: Sequence[str] = AUDIO_EXTENSIONS, pattern: str | None = None
) -> list[Path]:
    """All files below ``root`` (recursively) with one of ``extensions`` (case-insensitive), sorted.

    Args:
        root: Folder to scan.
        extensions: Accepted suffixes, e.g. ``(".wav", ".flac")``.
        pattern: Optional ``fnmatch`` pattern the file *name* must match, e.g. ``"mix.wav"``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder {root} does not exist or is not a directory")
    suffixes = {e.lower() for e in extensions}
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in suffixes
        and p.is_file()
        and not p.name.startswith(".")
        and (pattern is None or fnmatch.fnmatch(p.name, pattern))
    )


def probe_audio(path: str | Path, sample_rate: int = 44100) -> AudioFileInfo:
    """Read the header of ``path``; ``frames`` is the length after resampling to ``sample_rate``.

    Raises:
        ValueError / OSError / RuntimeError: whatever pedalboard raises for unreadable files.
    """
    path = Path(path)
    with _audio_file(path) as f:
        source_rate = float(f.samplerate)
        channels = int(f.num_channels)
        if round(source_rate) == sample_rate:
            frames = int(f.frames)
        else:
            with f.resampled_to(float(sample_rate)) as r:
                frames = int(r.frames)
    return AudioFileInfo(path, frames, source_rate, channels)


def read_crop(path: str | Path, start: int, num_samples: int, sample_rate: int = 44100) -> np.ndarray:
    """Decode ``num_samples`` samples starting at ``start`` (both at ``sample_rate``) as mono float32.

    Channels are averaged; the result is zero-padded at the end when the file is shorter.

    Returns:
        float32 array of shape ``(num_samples,)``.
    """
    with _audio_file(Path(path)) as f:
        reader = f if round(float(f.samplerate)) == sample_rate else f.resampled_to(float(sample_rate))
        try:
            if start > 0:
                reader.seek(int(start))
            block = reader.read(int(num_samples))
        finally:
            if reader is not f:
                reader.close()
    mono = np.asarray(block, dtype=np.float32).mean(axis=0, dtype=np.float32)
    out = np.zeros(num_samples, dtype=np.float32)
    out[: min(num_samples, mono.shape[0])] = mono[:num_samples]
    return out


def load_audio(path: str | Path, sample_rate: int = 44100) -> np.ndarray:
    """Decode a whole file, resampled to ``sample_rate`` and averaged to mono.

    Returns:
        float32 array of shape ``(samples,)``.
    """
    path = Path(path)
    with _audio_file(path) as f:
        reader = f if round(float(f.samplerate)) == sample_rate else f.resampled_to(float(sample_rate))
        try:
            block = reader.read(int(reader.frames))
        finally:
            if reader is not f:
                reader.close()
    return np.asarray(block, dtype=np.float32).mean(axis=0, dtype=np.float32)


def _rms_db(x: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


class AudioFolderDataset(IterableDataset[torch.Tensor]):
    """Random mono crops from every audio file below a folder, streamed.

    Each epoch yields ``len(self)`` crops in total, shared out between DataLoader workers (and
    ``world_size`` distributed ranks). The stream of worker ``w`` of rank ``r`` in epoch ``e`` is a pure
    function of ``(seed, e, r, w, num_workers)``; call :meth:`set_epoch` before every epoch (like
    ``DistributedSampler``) to get fresh crops, otherwise every epoch repeats epoch 0.

    A crop is drawn by picking a file (with probability proportional to its length when
    ``weight_by_duration``, else uniformly) and a uniformly random start frame. Crops whose RMS level is
    below ``rms_floor_db`` are redrawn, up to ``max_retries`` times; when every try is too quiet the item
    is dropped (the epoch is one crop shorter) and a warning is issued, so iteration always terminates
    and never yields a crop below the floor.

    Args:
        root: Folder scanned recursively for :data:`AUDIO_EXTENSIONS` files.
        crop_samples: Length of every crop in samples at ``sample_rate``.
        sample_rate: Output sample rate in Hz; other rates are resampled while reading.
        seed: Seed of the crop streams.
        crops_per_epoch: Crops per epoch over all workers and ranks; default: the number of usable files.
        rms_floor_db: Minimum crop RMS in dBFS, i.e. ``20 * log10(sqrt(mean(x**2)))`` (a full-scale sine
            is -3 dBFS). ``None`` disables the check.
        max_retries: Redraws of a too-quiet crop before the item is dropped.
        short_files: Files shorter than a crop are ``"pad"``-ded with zeros at the end (the crop then
            holds the whole file, from its start) or ``"skip"``-ped when the folder is scanned.
        extensions: Accepted file suffixes.
        pattern: Optional ``fnmatch`` pattern on file names (e.g. ``"mix.wav"`` for a synth dataset).
        weight_by_duration: Pick files proportionally to their length (True) or uniformly (False).
        rank, world_size: Distributed-training shard of this process.

    Raises:
        FileNotFoundError: if ``root`` is not a directory.
        ValueError: if it holds no readable (and, with ``short_files="skip"``, long enough) audio.

    Unreadable files are skipped with a ``UserWarning`` naming the file (when scanning, or later if
    decoding a crop fails).

    Yields:
        ``torch.float32`` tensors of shape ``(crop_samples,)``.
    """

    def __init__(
        self,
        root: str | Path,
        crop_samples: int,
        *,
        sample_rate: int = 44100,
        seed: int = 0,
        crops_per_epoch: int | None = None,
        rms_floor_db: float | None = -60.0,
        max_retries: int = 10,
        short_files: Literal["pad", "skip"] = "pad",
        extensions: Sequence[str] = AUDIO_EXTENSIONS,
        pattern: str | None = None,
        weight_by_duration: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        if crop_samples <= 0:
            raise ValueError(f"crop_samples must be positive, got {crop_samples}")
        if short_files not in ("pad", "skip"):
            raise ValueError(f"short_files must be 'pad' or 'skip', got {short_files!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.root = Path(root)
        self.crop_samples = int(crop_samples)
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.rms_floor_db = rms_floor_db
        self.max_retries = int(max_retries)
        self.short_files = short_files
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0

        paths = find_audio_files(self.root, extensions, pattern)
        infos: list[AudioFileInfo] = []
        for path in paths:
            try:
                info = probe_audio(path, self.sample_rate)
            except Exception as err:  # pedalboard raises ValueError/RuntimeError/OSError
                warnings.warn(f"skipping unreadable audio file {path}: {err}", stacklevel=2)
                continue
            if info.frames <= 0:
                warnings.warn(f"skipping empty audio file {path}", stacklevel=2)
                continue
            if info.frames < self.crop_samples and short_files == "skip":
                continue
            infos.append(info)
        if not infos:
            raise ValueError(
                f"no readable audio in {self.root} (looked for {', '.join(extensions)}"
                + (f" named {pattern!r}" if pattern else "")
                + (f", at least {self.crop_samples} samples long" if short_files == "skip" else "")
                + f"; {len(paths)} candidate file(s))"
            )
        self.files: tuple[AudioFileInfo, ...] = tuple(infos)
        weights = np.array([max(i.frames, 1) if weight_by_duration else 1 for i in infos], dtype=np.float64)
        self._cumulative = np.cumsum(weights / weights.sum())
        self.crops_per_epoch = len(infos) if crops_per_epoch is None else int(crops_per_epoch)
        if self.crops_per_epoch <= 0:
            raise ValueError(f"crops_per_epoch must be positive, got {crops_per_epoch}")

    def set_epoch(self, epoch: int) -> None:
        """Select the crop stream of ``epoch`` (call on the dataset before creating the epoch's iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Crops per epoch for this rank (fewer are yielded if some items fail the RMS floor)."""
        base, extra = divmod(self.crops_per_epoch, self.world_size)
        return base + (1 if self.rank < extra else 0)

    def _shard(self) -> tuple[int, int, int]:
        """(shard index, number of shards, items for this shard) for the calling worker."""
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        shards = self.world_size * workers
        shard = self.rank * workers + worker
        base, extra = divmod(self.crops_per_epoch, shards)
        return shard, shards, base + (1 if shard < extra else 0)

    def _pick_file(self, rng: np.random.Generator, bad: set[int]) -> int:
        for _ in range(1000):
            i = int(np.searchsorted(self._cumulative, rng.random(), side="right"))
            i = min(i, len(self.files) - 1)
            if i not in bad:
                return i
        good = [i for i in range(len(self.files)) if i not in bad]
        return good[int(rng.integers(len(good)))]

    def _draw(self, rng: np.random.Generator, bad: set[int]) -> np.ndarray | None:
        """One crop that passes the RMS floor, or ``None`` after ``max_retries`` quiet redraws."""
        tries = 0
        while tries <= self.max_retries:
            if len(bad) == len(self.files):
                raise RuntimeError(f"none of the audio files in {self.root} could be decoded")
            index = self._pick_file(rng, bad)
            info = self.files[index]
            start = int(rng.integers(0, max(info.frames - self.crop_samples, 0) + 1))
            try:
                crop = read_crop(info.path, start, self.crop_samples, self.sample_rate)
            except Exception as err:  # corrupt after the header: drop the file for this iterator
                warnings.warn(f"skipping unreadable audio file {info.path}: {err}", stacklevel=3)
                bad.add(index)
                continue
            if self.rms_floor_db is None or _rms_db(crop) >= self.rms_floor_db:
                return crop
            tries += 1
        return None

    def __iter__(self) -> Iterator[torch.Tensor]:
        shard, shards, count = self._shard()
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, shard, shards]))
        bad: set[int] = set()
        dropped = 0
        for _ in range(count):
            crop = self._draw(rng, bad)
            if crop is None:
                dropped += 1
                continue
            yield torch.from_numpy(crop)
        if dropped:
            warnings.warn(
                f"AudioFolderDataset({self.root}): dropped {dropped} of {count} crops that stayed below "
                f"{self.rms_floor_db} dBFS after {self.max_retries} retries",
                stacklevel=2,
            )


# --------------------------------------------------------------------------------------------------
# Multi-stem pieces
# --------------------------------------------------------------------------------------------------


def _read_any(path: Path, sample_rate: int | None) -> tuple[np.ndarray, int]:
    """Mono float32 audio and its sample rate; our own float WAVs are read exactly without pedalboard."""
    if path.suffix.lower() == ".wav":
        try:
            audio, rate = read_wav(path)
        except ValueError:
            pass
        else:
            if sample_rate is None or rate == sample_rate:
                mono = audio[0] if audio.shape[0] == 1 else audio.mean(axis=0, dtype=np.float32)
                return np.ascontiguousarray(mono, dtype=np.float32), rate
    if sample_rate is None:
        with _audio_file(path) as f:
            sample_rate = round(float(f.samplerate))
    return load_audio(path, sample_rate), sample_rate


def read_piece(
    piece_dir: str | Path, sample_rate: int | None = None, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Read every stem of one piece directory (e.g. ``mix``, ``drums``, ``bass``, ``chords``, ``melody``).

    Float32 WAVs written by :mod:`lincae.data.synth` are read bit-exactly; other files go through
    pedalboard. Multi-channel files are averaged to mono.

    Args:
        piece_dir: Directory holding one audio file per stem (not searched recursively).
        sample_rate: Resample to this rate; ``None`` keeps the files' rate (which must then agree).
        names: Stems to read (file names without suffix); default: every audio file in the directory.

    Returns:
        ``{stem name: float32 array of shape (samples,)}``, all of the same length.

    Raises:
        FileNotFoundError: if the directory or a requested stem does not exist.
        ValueError: if it holds no audio, or the stems differ in length or sample rate.
    """
    piece_dir = Path(piece_dir)
    if not piece_dir.is_dir():
        raise FileNotFoundError(f"piece directory {piece_dir} does not exist")
    files = {
        p.stem: p
        for p in sorted(piece_dir.iterdir())
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    }
    if names is not None:
        missing = [n for n in names if n not in files]
        if missing:
            raise FileNotFoundError(f"{piece_dir} has no stem(s) {missing}; found {sorted(files)}")
        files = {n: files[n] for n in names}
    if not files:
        raise ValueError(f"no audio files in {piece_dir}")
    stems: dict[str, np.ndarray] = {}
    rates: set[int] = set()
    for name, path in files.items():
        audio, rate = _read_any(path, sample_rate)
        stems[name] = audio
        rates.add(rate)
    if len(rates) > 1:
        raise ValueError(f"stems in {piece_dir} have different sample rates {sorted(rates)}; pass sample_rate")
    lengths = {name: a.shape[0] for name, a in stems.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"stems in {piece_dir} differ in length: {lengths}")
    return stems


class StemFolder(Dataset[dict[str, np.ndarray]]):
    """Map-style dataset over the pieces of a synth dataset (or any folder of stem folders).

    The pieces are those listed in ``root/index.json`` (as written by
    :func:`lincae.data.synth.write_synth_dataset`), else every sub-directory that holds audio files,
    sorted by name. ``folder[i]`` is :func:`read_piece` of piece ``i``.
    """

    def __init__(self, root: str | Path, sample_rate: int | None = None, names: Sequence[str] | None = None):
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.names = None if names is None else tuple(names)
        index_path = self.root / "index.json"
        if index_path.is_file():
            index = json.loads(index_path.read_text(encoding="utf-8"))
            ids = [str(p["id"]) for p in index.get("pieces", [])]
        elif self.root.is_dir():
            ids = sorted(
                d.name
                for d in self.root.iterdir()
                if d.is_dir()
                and not d.name.startswith(".")
                and any(f.suffix.lower() in AUDIO_EXTENSIONS for f in d.iterdir())
            )
        else:
            raise FileNotFoundError(f"stem folder {self.root} does not exist")
        if not ids:
            raise ValueError(f"no pieces in {self.root}")
        self.ids: tuple[str, ...] = tuple(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def path(self, index: int) -> Path:
        """Directory of piece ``index``."""
        return self.root / self.ids[index]

    def meta(self, index: int) -> dict[str, Any]:
        """``meta.json`` of piece ``index`` (empty when there is none)."""
        meta_path = self.path(index) / "meta.json"
        return json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return read_piece(self.path(index), self.sample_rate, self.names)
