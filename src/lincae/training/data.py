"""Training batches as a pure function of (seed, step, rank).

A batch is drawn from random generators seeded with the step number, so a resumed run sees exactly the
batches an uninterrupted one would, with no loader state to save, and DDP ranks see different data.
Files are read crop by crop, so memory does not grow with the dataset.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from lincae.data.audio_folder import find_audio_files, probe_audio, read_crop

MAX_REDRAWS = 20


class BatchSource(Protocol):
    """Anything that yields the clean audio of a training step."""

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Tensor:
        """Crops ``[batch_size, crop_samples]`` float32 for ``step`` on process ``rank``."""
        ...


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


class FolderCrops:
    """Random crops of every audio file below a folder, resampled to the model's rate, mono.

    Args:
        root: folder scanned recursively (wav, flac, mp3, ogg).
        crop_samples: samples per crop.
        seed: base seed.
        rms_floor: crops with a lower RMS (linear) are redrawn, up to ``MAX_REDRAWS`` times.
        exclude: file-name patterns to leave out (e.g. ``["mix.wav"]`` to train on stems only).
    """

    def __init__(
        self,
        root: str | Path,
        crop_samples: int,
        seed: int = 0,
        rms_floor: float = 0.001,
        sample_rate: int = 44100,
        exclude: Sequence[str] = (),
    ) -> None:
        self.root = Path(root)
        self.crop_samples = crop_samples
        self.seed = seed
        self.rms_floor = rms_floor
        self.sample_rate = sample_rate
        files = [p for p in find_audio_files(self.root) if not any(p.match(x) for x in exclude)]
        self.files: list[Path] = []
        self.lengths: list[int] = []
        for path in files:
            try:
                info = probe_audio(path, sample_rate)
            except Exception as e:  # pedalboard raises several types for unreadable files
                warnings.warn(f"skipping unreadable audio file {path}: {e}", stacklevel=2)
                continue
            if info.frames > 0:
                self.files.append(path)
                self.lengths.append(info.frames)
        if not self.files:
            raise ValueError(f"no readable audio files under {self.root}")

    def crop(self, rng: np.random.Generator) -> np.ndarray:
        """One crop ``(crop_samples,)``; quiet crops are redrawn (the last draw is kept if all are quiet)."""
        out = np.zeros(self.crop_samples, dtype=np.float32)
        for _ in range(MAX_REDRAWS):
            i = int(rng.integers(len(self.files)))
            start = int(rng.integers(max(1, self.lengths[i] - self.crop_samples + 1)))
            out = read_crop(self.files[i], start, self.crop_samples, self.sample_rate)
            if np.sqrt(np.mean(np.square(out, dtype=np.float64))) >= self.rms_floor:
                break
        return out

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Tensor:
        rng = _rng(self.seed, step, rank)
        return torch.from_numpy(np.stack([self.crop(rng) for _ in range(batch_size)]))

    def fixed(self, count: int, key: int = -1) -> Tensor:
        """``count`` crops that do not depend on the step (for validation): ``[count, crop_samples]``."""
        rng = _rng(self.seed, key & 0xFFFFFFFF, 0)
        return torch.from_numpy(np.stack([self.crop(rng) for _ in range(count)]))


class TensorCrops:
    """Random crops of audio held in memory (``[N, T]``): for tests and small experiments."""

    def __init__(self, audio: Tensor, crop_samples: int, seed: int = 0) -> None:
        if audio.dim() != 2 or audio.shape[-1] < crop_samples:
            raise ValueError(f"need audio [N, T >= {crop_samples}], got {tuple(audio.shape)}")
        self.audio = audio.float()
        self.crop_samples = crop_samples
        self.seed = seed

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Tensor:
        rng = _rng(self.seed, step, rank)
        rows = rng.integers(self.audio.shape[0], size=batch_size)
        starts = rng.integers(self.audio.shape[-1] - self.crop_samples + 1, size=batch_size)
        return torch.stack([self.audio[r, s : s + self.crop_samples] for r, s in zip(rows, starts, strict=True)])
