"""One precision resolver (lincae.models.precision) for the models, the engine and training.

The table is checked for every device and hardware answer without a GPU (the hardware probes are
arguments); the models run at their own precision unless a caller's scope says otherwise, on that
caller's thread only, and the engine runs the model at its precision without changing the model.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.models.precision import PRECISIONS, autocast, autocast_dtype_for, precision_of
from lincae.training.config import OptimSection

BF16, FP16 = torch.bfloat16, torch.float16
CONFIG = dict(window_frames=8, step_frames=4, lookahead_frames=2, crossfade=64)


@pytest.mark.parametrize(
    ("precision", "cpu_native", "cpu_emulated", "cuda_bf16", "cuda_fp16_only"),
    [
        ("fp32", None, None, None, None),
        ("bf16", BF16, BF16, BF16, BF16),
        ("fp16", BF16, BF16, FP16, FP16),
        ("mixed", BF16, BF16, BF16, FP16),
        ("auto", BF16, None, None, None),
    ],
)
def test_the_resolver_table(
    precision: str,
    cpu_native: torch.dtype | None,
    cpu_emulated: torch.dtype | None,
    cuda_bf16: torch.dtype | None,
    cuda_fp16_only: torch.dtype | None,
) -> None:
    """README: fp32 means fp32; auto is bfloat16 on CPUs with native bfloat16, float32 elsewhere; mixed is
    bfloat16 on a GPU that supports it, else float16."""
    assert autocast_dtype_for(precision, "cpu", native_cpu_bf16=True) == cpu_native
    assert autocast_dtype_for(precision, "cpu", native_cpu_bf16=False) == cpu_emulated
    assert autocast_dtype_for(precision, "cuda", cuda_bf16=True) == cuda_bf16
    assert autocast_dtype_for(precision, torch.device("cuda", 0), cuda_bf16=False) == cuda_fp16_only
    assert autocast_dtype_for(precision, "meta") is None  # no autocast elsewhere


def test_unknown_precisions_and_dtypes_are_refused() -> None:
    assert set(PRECISIONS) == {"auto", "fp32", "bf16", "fp16", "mixed"}
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast_dtype_for("fp8", "cpu")
    with pytest.raises(ValueError, match="autocast_dtype must be"):
        precision_of(True, torch.float64)
    with pytest.raises(ValueError, match="autocast_dtype must be"):
        make_tiny_model(mixed_precision=True, autocast_dtype=torch.float64)


def test_the_three_callers_ask_in_the_same_terms() -> None:
    # a model's constructor arguments
    assert precision_of(False) == precision_of(False, BF16) == "fp32"
    assert precision_of(True) == "mixed" and precision_of(True, BF16) == "bf16" and precision_of(True, FP16) == "fp16"
    # training's optim section
    o = OptimSection(mixed_precision=True, cpu_bf16=True)
    assert (o.precision("cuda"), o.precision("cpu"), o.precision("mps")) == ("mixed", "auto", "fp32")
    o = OptimSection(mixed_precision=False, cpu_bf16=False)
    assert (o.precision("cuda"), o.precision("cpu")) == ("fp32", "fp32")
    # the engine's setting takes the resolver's names
    for name in ("auto", "fp32", "bf16"):
        assert name in PRECISIONS and EngineConfig(precision=name).precision == name


def test_float32_turns_an_outer_autocast_off() -> None:
    x = torch.randn(4, 4)
    with autocast(BF16, "cpu"):
        assert (x @ x).dtype == BF16
        with autocast(None, "cpu"):
            assert (x @ x).dtype == torch.float32


def test_a_model_runs_at_its_own_precision_unless_a_scope_says_otherwise() -> None:
    model = make_tiny_model()
    assert model.precision == "fp32" and model.network_dtype() is None
    model.mixed_precision = True
    assert model.precision == "mixed" and model.network_dtype() == BF16  # on the CPU
    with model.precision_scope(None):
        assert model.network_dtype() is None
        with model.precision_scope(BF16):
            assert model.network_dtype() == BF16
        assert model.network_dtype() is None
    assert model.network_dtype() == BF16 and model.mixed_precision  # nothing was changed
    other = make_tiny_model()
    with model.precision_scope(None):
        assert other.network_dtype() is None and make_tiny_model().precision == "fp32"
    with pytest.raises(ValueError, match="dtype must be"):
        with model.precision_scope(torch.float64):
            pass


def test_a_scope_holds_on_its_own_thread_only() -> None:
    model = make_tiny_model()
    entered, release = threading.Event(), threading.Event()
    seen: list[torch.dtype | None] = []

    def worker() -> None:
        with model.precision_scope(BF16):
            entered.set()
            release.wait(10)
            seen.append(model.network_dtype())

    t = threading.Thread(target=worker)
    t.start()
    assert entered.wait(10)
    assert model.network_dtype() is None  # the worker's scope is not this thread's
    release.set()
    t.join(10)
    assert seen == [BF16]


def test_the_engine_runs_the_model_at_its_precision_without_changing_it() -> None:
    """A mixed-precision model in an fp32 engine runs in float32 (the output a float32 model gives), and a
    float32 model in a bf16 engine in bfloat16; the models' settings are as they were."""
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((1, 6000))).astype(np.float32)
    plain = make_tiny_model()
    mixed = make_tiny_model(mixed_precision=True)  # the same weights

    def run(model: torch.nn.Module, precision: str) -> np.ndarray:
        return render(LatentMixer(model, EngineConfig(sources=[1], precision=precision, **CONFIG), device="cpu"), [x])

    fp32 = run(plain, "fp32")
    assert np.array_equal(run(mixed, "fp32"), fp32)
    assert mixed.mixed_precision and mixed.autocast_dtype is None
    bf16 = run(plain, "bf16")
    assert not np.array_equal(bf16, fp32) and not plain.mixed_precision
    assert np.array_equal(run(mixed, "bf16"), bf16)
