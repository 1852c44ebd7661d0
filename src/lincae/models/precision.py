"""One precision policy for the models, the engine and training: the dtype a network runs in under autocast.

A caller asks for a precision (:data:`PRECISIONS`) and :func:`autocast_dtype_for` decides, from the
device and what its hardware computes natively, the autocast dtype (``None``: float32, no autocast):

=========  ============================================  ====================================
request    CPU                                           CUDA
=========  ============================================  ====================================
``fp32``   float32                                       float32 (IEEE: TF32 is off, see
                                                         :func:`lincae.models.runtime.set_cuda_fp32`)
``bf16``   bfloat16                                      bfloat16
``fp16``   bfloat16 (CPU autocast computes float16       float16
           poorly)
``mixed``  bfloat16 (emulated where not native)          bfloat16 where the GPU supports it,
                                                         else float16
``auto``   bfloat16 on CPUs that compute it natively     float32
           (AVX-512 BF16, AMX), float32 elsewhere
=========  ============================================  ====================================

Other devices run float32. Who asks for what:

- a model, for itself: ``Autoencoder(mixed_precision=True)`` is ``mixed``, or ``bf16``/``fp16`` with
  ``autocast_dtype=`` (:func:`precision_of`); without ``mixed_precision`` it is ``fp32``;
- the engine, for the model it runs: ``EngineConfig.precision`` (``auto`` by default, ``fp32`` or
  ``bf16``). The engine does not change the model's attributes: it runs the model inside
  :meth:`lincae.models.base.LatentAutoencoder.precision_scope` with the dtype resolved here;
- training: ``optim.mixed_precision`` on a GPU is ``mixed`` (float16 with loss scaling where bfloat16 is
  missing), ``optim.cpu_bf16`` on a CPU is ``auto``.
"""

from __future__ import annotations

import contextlib

import torch

#: The precisions a caller may ask for (see the module docstring).
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "mixed")
#: The dtypes a network may run in under autocast (``None``, no autocast, is float32).
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX tiles); elsewhere it is emulated."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def autocast_dtype_for(
    precision: str,
    device: torch.device | str,
    *,
    native_cpu_bf16: bool | None = None,
    cuda_bf16: bool | None = None,
) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (the table of the module docstring); ``None``: float32.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: where the network runs.
        native_cpu_bf16: whether the CPU computes bfloat16 natively (default: :func:`cpu_has_native_bf16`).
        cuda_bf16: whether the GPU supports bfloat16 (default: ``torch.cuda.is_bf16_supported()``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    kind = torch.device(device).type
    if precision == "fp32" or kind not in ("cpu", "cuda"):
        return None
    if kind == "cpu":
        if precision == "auto":
            native = cpu_has_native_bf16() if native_cpu_bf16 is None else native_cpu_bf16
            return torch.bfloat16 if native else None
        return torch.bfloat16
    if precision == "auto":
        return None
    if precision == "mixed":
        supported = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        return torch.bfloat16 if supported else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def precision_of(mixed_precision: bool, autocast_dtype: torch.dtype | None = None) -> str:
    """A model's ``mixed_precision`` and ``autocast_dtype`` constructor arguments as a precision request."""
    if autocast_dtype is not None and autocast_dtype not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast_dtype must be torch.bfloat16, torch.float16 or None, got {autocast_dtype!r}")
    if not mixed_precision:
        return "fp32"
    if autocast_dtype is None:
        return "mixed"
    return "bf16" if autocast_dtype == torch.bfloat16 else "fp16"


def autocast(dtype: torch.dtype | None, device: torch.device | str) -> contextlib.AbstractContextManager[None]:
    """The region a network runs in at a resolved ``dtype``: autocast to it, or, for ``None``, float32 even
    inside an outer autocast region (on CPU and CUDA; other devices have no autocast to turn off)."""
    kind = torch.device(device).type
    if dtype is None and kind not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=kind, dtype=dtype, enabled=dtype is not None)


__all__ = ["AUTOCAST_DTYPES", "PRECISIONS", "autocast", "autocast_dtype_for", "cpu_has_native_bf16", "precision_of"]
