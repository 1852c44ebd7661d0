"""Inference speed settings: memory format of the network and the process's memory allocator.

Both leave every output equal (within float32 rounding) and are measured in
``benchmarks/official_compare.py`` (figures in BENCHMARKS.md):

- :func:`use_channels_last` stores the 2-D convolution weights channels-last (NHWC). oneDNN then runs
  the convolutions without converting every activation to and from its blocked layout; the
  full-size architecture decodes about 1.3–1.4× faster on CPU.
- :func:`keep_freed_memory` stops glibc's ``malloc`` from returning large blocks to the system after
  every operation. Without it, each activation above the mmap threshold (a few MB: every full-band
  feature map) is a fresh ``mmap`` whose pages fault in, zero-filled, on first touch; with it the
  process reuses its own pages (decoding about 1.7× faster). It trades a process that keeps its peak
  memory for that speed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch
from torch import nn

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (``mallopt``: no mmap for large blocks, no trimming).

    Process-wide and irreversible; call it once, early, in a process that runs the model. Returns
    ``True`` when applied (or already applied), ``False`` where the C library is not glibc.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    _applied = ok
    return ok


def release_freed_memory() -> bool:
    """Hand the pages of freed heap memory back to the system (glibc ``malloc_trim(0)``), keeping
    the address space: for long jobs in steps of large activations (``lincae encode``/``decode``),
    whose freed blocks :func:`keep_freed_memory` otherwise keeps resident and, fragmented, grows
    with every step. Returns ``False`` where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True


def use_channels_last(model: nn.Module) -> nn.Module:
    """Store every 4-D parameter and buffer channels-last, in place; returns ``model``.

    Activations follow the weights' format through the network (convolutions, group norms and the
    frequency attention keep it), so inputs need no conversion. Values and the state dict's keys and
    shapes are unchanged.
    """
    return model.to(memory_format=torch.channels_last)


def set_cuda_fp32(tf32: bool = False) -> None:
    """What float32 means on a GPU: without ``tf32``, IEEE float32 for matmuls and cuDNN convolutions.

    PyTorch lets cuDNN compute float32 convolutions in TF32 (10-bit mantissa) by default, which moved
    outputs by ~0.05 against the CPU; lincae's float32 is float32 unless TF32 is asked for. Process-wide.
    """
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def prepare_for_inference(model: nn.Module, device: str | torch.device = "cpu", tf32: bool = False) -> nn.Module:
    """Eval mode on ``device`` with channels-last weights (what the engine and commands run).

    On CUDA, float32 is made exact (:func:`set_cuda_fp32`) unless ``tf32``. Mixed precision is decided by
    :mod:`lincae.models.precision` (the model's own setting, or the engine's scope).
    """
    model = model.eval().to(device)
    use_channels_last(model)
    if torch.device(device).type == "cuda":
        set_cuda_fp32(tf32)
    return model


def is_channels_last(model: nn.Module) -> bool:
    """Whether the model's 4-D parameters are stored channels-last."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    # A 1x1 kernel is both contiguous and channels-last; a larger one is one or the other.
    return (
        bool(weights)
        and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
        and any(not p.is_contiguous() for p in weights)
    )


__all__ = [
    "is_channels_last",
    "keep_freed_memory",
    "prepare_for_inference",
    "set_cuda_fp32",
    "use_channels_last",
]
