"""The model shipped inside the package: it loads offline and behaves linearly on held-out music.

Skipped while no trained default model is installed. The linearity targets of the default model are
strict expected failures while the shipped model does not reach them (see MODEL_CARD.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lincae import Autoencoder
from lincae.models.registry import DEFAULT_MODEL_ALIAS, shipped_models

pytestmark = pytest.mark.skipif(DEFAULT_MODEL_ALIAS not in shipped_models(), reason="no default model shipped")


@pytest.fixture(scope="module")
def model() -> Autoencoder:
    return Autoencoder.from_pretrained(DEFAULT_MODEL_ALIAS, max_batch_size=8)


@pytest.fixture(scope="module")
def stems() -> dict[str, torch.Tensor]:
    tsf = pytest.importorskip("tinysoundfont")
    del tsf
    from lincae.data.synth import SynthConfig, generate_piece

    piece = generate_piece(12345, SynthConfig(seconds=4.0))  # not a training seed
    return {k: torch.from_numpy(v[None]) for k, v in piece.stems.items()}


def rms_db(x: torch.Tensor) -> float:
    return float(20 * torch.log10(x.pow(2).mean().sqrt() + 1e-12))


def test_default_model_is_small_and_documented(model: Autoencoder) -> None:
    assert sum(p.numel() for p in model.parameters()) < 5e6
    folder = shipped_models()[DEFAULT_MODEL_ALIAS]
    assert sum(f.stat().st_size for f in folder.iterdir()) < 10e6
    import json

    meta = json.loads((folder / "config.json").read_text())["metadata"]
    assert meta["default"] is True and meta["mode"] == "lin-cae" and meta["step"] > 0


# The shipped model (4000 CPU steps, MODEL_CARD.md) does not reach these targets yet: strict, so that a
# model that does makes them pass and the marks have to go.
NOT_YET = pytest.mark.xfail(strict=True, reason="the shipped lincae-small (4000 steps) is not linear enough yet")


@NOT_YET
def test_latent_gain_half_halves_the_level(model: Autoencoder, stems: dict[str, torch.Tensor]) -> None:
    mix = sum(stems.values())
    z = model.encode(mix)
    full = model.decode(z, full_length=mix.shape[-1], seed=0)
    half = model.decode(0.5 * z, full_length=mix.shape[-1], seed=0)
    assert rms_db(half) - rms_db(full) == pytest.approx(-6.02, abs=1.5)


@NOT_YET
def test_latent_sum_is_closer_to_the_audio_sum_than_one_part(
    model: Autoencoder, stems: dict[str, torch.Tensor]
) -> None:
    x1, x2 = stems["drums"], stems["chords"] + stems["bass"]
    z1, z2 = model.encode(x1), model.encode(x2)
    both = model.decode(z1 + z2, full_length=x1.shape[-1], seed=0)
    one = model.decode(z1, full_length=x1.shape[-1], seed=0)
    target = (x1 + x2).numpy()
    err_both = np.mean((both.numpy() - target) ** 2)
    err_one = np.mean((one.numpy() - target) ** 2)
    assert err_both < err_one


def log_spectrum_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of log-magnitude STFTs (2048/512), a phase-blind reconstruction distance."""
    win = torch.hann_window(2048)
    sa, sb = (torch.stft(x.reshape(-1), 2048, 512, window=win, return_complex=True).abs() for x in (a, b))
    return float((torch.log10(sa + 1e-4) - torch.log10(sb + 1e-4)).abs().mean())


def test_the_decoded_level_follows_the_latent_gain(model: Autoencoder, stems: dict[str, torch.Tensor]) -> None:
    mix = sum(stems.values())
    z = model.encode(mix)
    levels = [rms_db(model.decode(g * z, full_length=mix.shape[-1], seed=0)) for g in (0.25, 0.5, 1.0, 2.0)]
    assert levels == sorted(levels) and levels[-1] - levels[0] > 6.0, levels


def test_it_reconstructs_far_better_than_untrained_weights(model: Autoencoder, stems: dict[str, torch.Tensor]) -> None:
    mix = sum(stems.values())
    cfg = model.config_dict()
    torch.manual_seed(0)
    untrained = Autoencoder(cfg["frontend"], cfg["generator"], cfg["diffusion"], name="untrained").eval()
    trained_d = log_spectrum_distance(model.decode(model.encode(mix), full_length=mix.shape[-1], seed=0), mix)
    untrained_d = log_spectrum_distance(untrained.decode(untrained.encode(mix), full_length=mix.shape[-1], seed=0), mix)
    assert trained_d < 0.6 * untrained_d, (trained_d, untrained_d)
