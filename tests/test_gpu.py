"""CUDA inference (skipped where no CUDA device exists; run on a GPU machine by benchmarks/gpu_suite.sh).

The precision policy (README): float32 on a GPU is IEEE float32 (TF32 off unless asked), so it agrees
with the CPU within 1e-4; mixed precision is bfloat16 autocast where supported, held to a relative
tolerance.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model

from lincae.models.runtime import prepare_for_inference

pytestmark = pytest.mark.gpu


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("dtype", [None, "default", torch.float16, torch.bfloat16])
def test_cuda_encode_decode_matches_cpu(dtype: object, audio: torch.Tensor) -> None:
    cpu = make_tiny_model()
    z_cpu = cpu.encode(audio)
    y_cpu = cpu.decode(z_cpu, full_length=audio.shape[-1], seed=0)
    kwargs: dict[str, object] = {}
    if dtype is not None:
        kwargs = {"mixed_precision": True, "autocast_dtype": None if dtype == "default" else dtype}
    gpu = prepare_for_inference(make_tiny_model(**kwargs), "cuda")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    z = gpu.encode(audio.cuda())
    # decoder noise is drawn on the CPU generator, so the seeded output agrees across devices
    y = gpu.decode(z, full_length=audio.shape[-1], seed=0)
    assert z.dtype == y.dtype == torch.float32 and y.device.type == "cuda"
    if dtype is None:  # float32: exact up to summation order
        assert (z.cpu() - z_cpu).abs().max() <= 1e-4
        assert (y.cpu() - y_cpu).abs().max() <= 1e-4 * max(1.0, float(y_cpu.abs().max()))
    else:  # half precision: within a few percent of the largest value
        assert relative_error(z.cpu(), z_cpu) <= 0.05
        assert relative_error(y.cpu(), y_cpu) <= 0.05


def test_tf32_is_used_only_when_asked() -> None:
    prepare_for_inference(make_tiny_model(), "cuda", tf32=True)
    assert torch.backends.cudnn.allow_tf32
    prepare_for_inference(make_tiny_model(), "cuda")
    assert not torch.backends.cudnn.allow_tf32
