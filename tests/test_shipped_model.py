"""The model shipped inside the package: it loads offline and reproduces music, pitch included, linearly.

Held-out synthetic music (a piece no training set holds, rendered with FluidR3) and a real recording
(Kevin MacLeod's "Vibe Ace", the example of librosa 0.7.2, fetched by scripts/setup.sh: nothing of
that kind was trained on). The targets are the product's: pitch kept (chroma correlation >= 0.8), the
spectrum kept (MR-STFT <= 1.5), ×0.5 on the latents is −6 dB, and the decoded sum of two parts'
latents is closer to the sum of the parts than either part. Skipped while no default model is
shipped; the real recording is required where ``LINCAE_REQUIRE_TEST_AUDIO=1`` (CI).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lincae import Autoencoder
from lincae.evaluation.metrics import chroma_correlation, mrstft_distance
from lincae.models.registry import DEFAULT_MODEL_ALIAS, shipped_models

pytestmark = pytest.mark.skipif(DEFAULT_MODEL_ALIAS not in shipped_models(), reason="no default model shipped")

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".cache" / "test-audio" / "vibe_ace.ogg"


@pytest.fixture(scope="module")
def model() -> Autoencoder:
    return Autoencoder.from_pretrained(DEFAULT_MODEL_ALIAS, max_batch_size=8)


@pytest.fixture(scope="module")
def stems() -> dict[str, torch.Tensor]:
    pytest.importorskip("tinysoundfont")
    from lincae.data.synth import SynthConfig, generate_piece

    piece = generate_piece(12345, SynthConfig(seconds=6.0))  # not a training seed
    return {k: torch.from_numpy(v[None]) for k, v in piece.stems.items()}


@pytest.fixture(scope="module")
def real() -> torch.Tensor:
    if not REAL.is_file():
        if os.environ.get("LINCAE_REQUIRE_TEST_AUDIO") == "1":
            pytest.fail(f"{REAL} is missing: scripts/setup.sh fetches it")
        pytest.skip(f"{REAL} is missing (scripts/setup.sh fetches it)")
    from lincae.files.audiofile import read_mono

    return torch.from_numpy(read_mono(REAL, 44100, 20 * 44100, 8 * 44100))[None]  # 8 s from 0:20


def rms_db(x: torch.Tensor) -> float:
    return float(20 * torch.log10(x.pow(2).mean().sqrt() + 1e-12))


def reconstruct(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    return model.decode(model.encode(x), full_length=x.shape[-1], seed=0)


def test_default_model_is_small_and_documented(model: Autoencoder) -> None:
    assert sum(p.numel() for p in model.parameters()) < 5e6
    folder = shipped_models()[DEFAULT_MODEL_ALIAS]
    assert sum(f.stat().st_size for f in folder.iterdir()) < 10e6
    meta = json.loads((folder / "config.json").read_text())["metadata"]
    assert meta["default"] is True and meta["mode"] == "lin-cae" and meta["step"] > 0


def test_held_out_music_keeps_its_pitch_and_spectrum(model: Autoencoder, stems: dict[str, torch.Tensor]) -> None:
    mix = sum(stems.values())
    y = reconstruct(model, mix)
    assert float(chroma_correlation(y, mix)) >= 0.80
    assert float(mrstft_distance(y, mix)) <= 1.5
    assert abs(rms_db(y) - rms_db(mix)) <= 2.0
    chords = stems["chords"]  # a sustained harmonic part alone
    assert float(chroma_correlation(reconstruct(model, chords), chords)) >= 0.80


def test_a_real_recording_keeps_its_pitch_and_spectrum(model: Autoencoder, real: torch.Tensor) -> None:
    y = reconstruct(model, real)
    assert float(chroma_correlation(y, real)) >= 0.80
    assert float(mrstft_distance(y, real)) <= 1.5
    assert abs(rms_db(y) - rms_db(real)) <= 2.0


def test_latent_gain_half_halves_the_level(model: Autoencoder, stems: dict[str, torch.Tensor]) -> None:
    mix = sum(stems.values())
    z = model.encode(mix)
    full = model.decode(z, full_length=mix.shape[-1], seed=0)
    half = model.decode(0.5 * z, full_length=mix.shape[-1], seed=0)
    assert rms_db(half) - rms_db(full) == pytest.approx(-6.02, abs=1.5)


def test_latent_sum_is_closer_to_the_audio_sum_than_either_part(
    model: Autoencoder, stems: dict[str, torch.Tensor]
) -> None:
    x1, x2 = stems["drums"], stems["chords"] + stems["bass"]
    z1, z2 = model.encode(x1), model.encode(x2)
    both = model.decode(z1 + z2, full_length=x1.shape[-1], seed=0).numpy()
    target = (x1 + x2).numpy()
    err_both = np.mean((both - target) ** 2)
    for part in (x1, x2):
        assert err_both < np.mean((part.numpy() - target) ** 2)


def log_spectrum_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of log-magnitude STFTs (2048/512), a phase-blind reconstruction distance."""
    win = torch.hann_window(2048)
    sa, sb = (torch.stft(x.reshape(-1), 2048, 512, window=win, return_complex=True).abs() for x in (a, b))
    return float((torch.log10(sa + 1e-4) - torch.log10(sb + 1e-4)).abs().mean())


def test_the_decoded_level_follows_the_latent_gain(model: Autoencoder, stems: dict[str, torch.Tensor]) -> None:
    mix = sum(stems.values())
    z = model.encode(mix)
    levels = [rms_db(model.decode(g * z, full_length=mix.shape[-1], seed=0)) for g in (0.25, 0.5, 1.0, 2.0)]
    assert levels == sorted(levels) and levels[-1] - levels[0] > 9.0, levels


def test_it_reconstructs_far_better_than_untrained_weights(model: Autoencoder, stems: dict[str, torch.Tensor]) -> None:
    mix = sum(stems.values())
    cfg = model.config_dict()
    torch.manual_seed(0)
    untrained = Autoencoder(cfg["frontend"], cfg["generator"], cfg["diffusion"], name="untrained").eval()
    trained_d = log_spectrum_distance(reconstruct(model, mix), mix)
    untrained_d = log_spectrum_distance(reconstruct(untrained, mix), mix)
    assert trained_d < 0.5 * untrained_d, (trained_d, untrained_d)
