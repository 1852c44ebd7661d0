"""Training batches as a pure function of (seed, step, rank).

A batch is drawn from random generators seeded with the step number, so a resumed run sees exactly the
batches an uninterrupted one would, with no loader state to save, and DDP ranks see different data.
Files are read crop by crop, so memory does not grow with the dataset.
"""

from __future__ import annotations

import queue
import threading
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from lincae.files.audiofile import AudioFileError, AudioReader, find_audio_files, read_mono

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

    Files are drawn in proportion to their length, so every second of audio is equally likely: a
    folder of long recordings beside many short stems is sampled by duration, not by file count.

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
                with AudioReader(path, sample_rate) as r:
                    frames = r.frames
            except AudioFileError as e:
                warnings.warn(f"skipping unreadable audio file: {e}", stacklevel=2)
                continue
            self.files.append(path)
            self.lengths.append(frames)
        if not self.files:
            raise ValueError(f"no readable audio files under {self.root}")
        lengths = np.asarray(self.lengths, dtype=np.float64)
        self._cumulative = np.cumsum(lengths / lengths.sum())

    def _pick_file(self, rng: np.random.Generator) -> int:
        """A file index drawn with probability proportional to the file's length."""
        return min(int(np.searchsorted(self._cumulative, rng.random(), side="right")), len(self.files) - 1)

    def crop(self, rng: np.random.Generator) -> np.ndarray:
        """One crop ``(crop_samples,)``; quiet crops are redrawn (the last draw is kept if all are quiet)."""
        out = np.zeros(self.crop_samples, dtype=np.float32)
        for _ in range(MAX_REDRAWS):
            i = self._pick_file(rng)
            start = int(rng.integers(max(1, self.lengths[i] - self.crop_samples + 1)))
            out = read_mono(self.files[i], self.sample_rate, start, self.crop_samples)
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


def _make_batches(
    source: BatchSource,
    batch_size: int,
    rank: int,
    pin_memory: bool,
    start: int,
    q: queue.Queue[tuple[int, Tensor | BaseException]],
    stop: threading.Event,
) -> None:
    """The :class:`Prefetcher`'s worker: batches of steps ``start, start + 1, ...`` into ``q`` until ``stop``."""
    step = start
    while not stop.is_set():
        try:
            item: Tensor | BaseException = source.batch(step, batch_size, rank)
            if pin_memory:
                item = item.pin_memory()
        except BaseException as e:  # handed to the training loop, which raises it
            item = e
        while not stop.is_set():
            try:
                q.put((step, item), timeout=0.1)
                break
            except queue.Full:
                continue
        if isinstance(item, BaseException):
            return
        step += 1


class Prefetcher:
    """Makes the batches of the coming steps on a background thread while the current step trains.

    Batches are pure functions of the step (see :class:`BatchSource`), so running ahead changes nothing
    but the time the training loop waits. ``get(step)`` returns the batch of ``step``; asking for a step
    other than the next one (after a resume, say) restarts the worker there.

    Args:
        source: where batches come from.
        batch_size: crops per batch.
        rank: process rank (DDP).
        depth: batches made ahead.
        pin_memory: put batches in page-locked memory (for asynchronous copies to a GPU).
    """

    def __init__(
        self, source: BatchSource, batch_size: int, rank: int = 0, depth: int = 2, pin_memory: bool = False
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.rank = rank
        self.depth = max(1, depth)
        self.pin_memory = pin_memory
        self._next: int | None = None
        self._queue: queue.Queue[tuple[int, Tensor | BaseException]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _start(self, step: int) -> None:
        self.close()
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.depth)
        # The worker holds no reference to this object, so an abandoned Prefetcher is collected and its
        # finaliser stops the thread.
        args = (self.source, self.batch_size, self.rank, self.pin_memory, step, self._queue, self._stop)
        self._thread = threading.Thread(target=_make_batches, args=args, name="lincae-batches", daemon=True)
        self._thread.start()
        self._finalizer = weakref.finalize(self, self._stop.set)
        self._next = step

    def get(self, step: int) -> Tensor:
        """The batch ``[batch_size, crop_samples]`` of ``step``."""
        if self._queue is None or self._next != step:
            self._start(step)
        assert self._queue is not None
        got, item = self._queue.get()
        if isinstance(item, BaseException):
            self._queue = None
            raise item
        assert got == step, (got, step)
        self._next = step + 1
        return item

    def close(self) -> None:
        """Stop the worker (it finishes the batch it is making)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None
        self._queue = None
        self._next = None
