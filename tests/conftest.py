"""Shared test fixtures: tiny model configs and the slow/gpu markers."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from lincae import Autoencoder

TINY_GENERATOR = dict(
    base_channels=8,
    layers_list=[1, 1, 1, 1, 1],
    multipliers_list=[1, 2, 2, 4, 4],
    attention_list=[0, 0, 0, 1, 1],
    freq_downsample_list=[1, 0, 0, 0],
    layers_list_encoder=[1, 1, 1, 1, 1],
    attention_list_encoder=[0, 0, 0, 1, 1],
    bottleneck_base_channels=32,
    bottleneck_channels=64,
    num_bottleneck_layers=1,
    hop=32,
    cond_channels=32,
)
TINY_FRONTEND = dict(hop_size=32, sample_rate=44100)


# A test runner started in the background of a non-interactive shell ignores SIGINT and SIGQUIT (under
# nohup, SIGHUP too), and its children inherit that: the `lincae live` the signal tests start would then,
# rightly, ignore them too. The runner takes them back, so its children start with the default actions.
_DEFAULTS = (
    (signal.SIGINT, signal.default_int_handler),
    (signal.SIGQUIT, signal.SIG_DFL),
    (signal.SIGHUP, signal.SIG_DFL),
)
for _sig, _action in _DEFAULTS:
    if signal.getsignal(_sig) is signal.SIG_IGN:
        signal.signal(_sig, _action)

# Test models are tiny: one thread is as fast, and it keeps parallel jobs on small machines from
# oversubscribing the cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _engine_precision_is_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """``precision: auto`` means bfloat16 on CPUs that compute it natively: tests run the same float32
    everywhere (tests of the precision setting itself patch this back)."""
    monkeypatch.setattr("lincae.models.precision.cpu_has_native_bf16", lambda: False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--run-slow") or os.environ.get("LINCAE_RUN_SLOW") == "1"
    has_gpu = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --run-slow or LINCAE_RUN_SLOW=1"))
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device"))


def make_tiny_model(seed: int = 0, **kwargs: object) -> Autoencoder:
    """A 0.3 M-parameter model with every weight non-zero (so outputs depend on all of them)."""
    torch.manual_seed(seed)
    model = Autoencoder(TINY_FRONTEND, TINY_GENERATOR, {}, name="tiny", scale_factor=2.0, **kwargs)  # type: ignore[arg-type]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture
def tiny_model() -> Autoencoder:
    return make_tiny_model()


@pytest.fixture
def audio() -> torch.Tensor:
    """Two channels of 0.2 s noisy tones, ``[2, 8192]`` at 44.1 kHz."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8192) / 44100
    tones = torch.stack([0.3 * torch.sin(2 * torch.pi * 220 * t), 0.2 * torch.sin(2 * torch.pi * 330 * t)])
    return tones + 0.01 * torch.randn(2, 8192, generator=g)
