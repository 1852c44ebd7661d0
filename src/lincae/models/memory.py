"""How much memory a model's encode or decode takes, measured, so that long jobs fit a memory budget.

The peak of the tensors one pass makes (activations, noise, outputs) is measured on a short probe by a
dispatch mode that counts every tensor storage while it lives (:class:`TensorPeak`), then scaled to the
length asked for: the maps of convolutions over time grow linearly with the frames (attention runs
across frequency, frame by frame). The probe runs the model itself, so it knows the architecture,
attention included, without a formula per family.

A process holds more than those tensors at its peak: the allocator keeps freed blocks that the next
allocations do not fit (:func:`~lincae.models.runtime.keep_freed_memory` gives up returning them for
speed), which :data:`ALLOCATOR_FACTOR` covers; see ``benchmarks/encode_decode_memory.py``.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from lincae.models.runtime import release_freed_memory

if TYPE_CHECKING:
    from lincae.models.base import LatentAutoencoder

MB = 1 << 20
#: Resident memory of a ``lincae encode``/``decode`` process per byte of tensors that the model's pass
#: holds at its peak (measured with the shipped model, 10 s chunks: 1.4-2.0, from run to run).
ALLOCATOR_FACTOR = 2.0
#: Seconds of audio in the probe that :func:`pass_bytes` measures.
PROBE_SECONDS = 1.0
#: What a budget keeps for the rest of a job besides the model's passes (file reader and writer,
#: resampler, overlap-add buffers, latents): bytes.
RESERVE_BYTES = 64 * MB

Pass = Literal["encode", "decode"]


class TensorPeak(TorchDispatchMode):
    """Peak bytes of the tensor storages made inside the ``with`` block and alive at one time (``peak``).

    Every operator's output is counted once per storage (views share their base's), from when it is
    made until its last tensor is freed. Tensors made before the block (inputs, weights) are not counted.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Else PyTorch wraps __torch_dispatch__ to keep torch.compile out of it, which imports torch._dynamo
        # (and sympy: about 75 MB that stay resident) on the first operation; nothing here is compiled.
        return False

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[tuple[int, int], list[int]] = {}  # (address, bytes) -> [bytes, tensors alive]
        self.now = 0
        self.peak = 0

    def _freed(self, key: tuple[int, int]) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= entry[0]
            del self.live[key]

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            entry = self.live.get(key)
            if entry is None:
                self.live[key] = [storage.nbytes(), 1]
                self.now += storage.nbytes()
                self.peak = max(self.peak, self.now)
            else:
                entry[1] += 1
            weakref.finalize(t, self._freed, key)
        return out


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of the tensors ``fn()`` makes and holds at one time (its result included)."""
    with torch.no_grad(), TensorPeak() as peak:
        result = fn()
        del result
    return peak.peak


def pass_bytes(model: LatentAutoencoder, samples: int, what: Pass) -> int:
    """Peak bytes of the tensors one ``what`` pass of one signal of ``samples`` samples holds (no chunking).

    Measured on a probe of :data:`PROBE_SECONDS` (shorter when ``samples`` is) and scaled by the length
    (samples or latent frames, whichever grows more: the maps grow with the frames, which a fixed FFT
    length keeps a little below the samples' ratio). The probe draws its noise from its own generator:
    the caller's random streams are untouched.
    """
    probe = max(model.min_samples(), min(samples, int(PROBE_SECONDS * model.sample_rate)))
    frames = model.get_latent_size(probe)
    chunk_size = getattr(model, "max_chunk_size", None)
    try:
        if chunk_size is not None:  # the probe is one piece, whatever the model's chunking
            model.max_chunk_size = max(chunk_size, probe)  # type: ignore[assignment]
        if what == "encode":
            audio = torch.zeros(1, probe, device=model.device)
            peak = peak_tensor_bytes(lambda: model.encode(audio, max_batch_size=1))
        else:
            z = torch.zeros(1, model.latent_channels, frames, device=model.device)
            noise = torch.Generator().manual_seed(0)
            peak = peak_tensor_bytes(lambda: model.decode(z, generator=noise, max_batch_size=1))
    finally:
        if chunk_size is not None:
            model.max_chunk_size = chunk_size  # type: ignore[assignment]
    scale = max(1.0, samples / probe, model.get_latent_size(samples) / max(1, frames))
    return math.ceil(peak * scale)


class OverBudgetWarning(UserWarning):
    """One item of a pass needs more memory than the budget leaves: it goes through alone, over budget."""


class Budget(NamedTuple):
    """How many items one pass may take at once within a memory budget (:func:`fit_budget`)."""

    items: int  #: items per pass, >= 1 (the model's whole pass for one item may already exceed it)
    item_bytes: int  #: estimated resident bytes one item adds at the pass's peak
    free_bytes: int  #: what the budget leaves for the passes (may be <= 0)

    @property
    def fits(self) -> bool:
        """Whether one item fits (else :attr:`items` is 1 and the budget is exceeded)."""
        return self.item_bytes <= self.free_bytes


def fit_budget(
    model: LatentAutoencoder,
    samples: int,
    what: Pass,
    memory_bytes: int,
    most: int,
    resident: int | None = None,
) -> Budget:
    """Items of ``samples`` samples per ``what`` pass so that the process peaks within ``memory_bytes``.

    ``(memory_bytes − resident − RESERVE_BYTES) / (pass_bytes × ALLOCATOR_FACTOR)`` items, at least 1 and
    at most ``most``; ``resident`` is the process's memory before the job (default: measured after the probe,
    which sets up the model's kernels as the job's first pass would, and hands its freed pages back; else
    300 MB).
    """
    item = math.ceil(pass_bytes(model, samples, what) * ALLOCATOR_FACTOR)
    if resident is None:
        release_freed_memory()
        resident = resident_bytes() or 300 * MB
    free = memory_bytes - resident - RESERVE_BYTES
    return Budget(max(1, min(most, free // item)), item, free)


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux ``/proc/self/statm``); ``None`` where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


__all__ = [
    "ALLOCATOR_FACTOR",
    "MB",
    "PROBE_SECONDS",
    "RESERVE_BYTES",
    "Budget",
    "OverBudgetWarning",
    "TensorPeak",
    "fit_budget",
    "pass_bytes",
    "peak_tensor_bytes",
    "resident_bytes",
]
