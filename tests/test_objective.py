"""The training objective, term by term, against the official recipe and against what decoding does.

The official Lin-CAE training code (bernardo-torres/linear-autoencoders, ``train.py`` and
``components/diffusion.py``) is the reference for the consistency term: preconditioning, the boundary
at ``sigma_min``, a detached teacher with the live weights and the same noise, pseudo-Huber weighted by
``1 / (sigma - sigma_step)``. The reconstruction term is ours: it must train exactly the network
output that one-step decoding reads.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tiny_model

from lincae.models.config import DiffusionConfig
from lincae.models.unet import preconditioning
from lincae.training.augment import augment
from lincae.training.losses import multi_resolution_stft, pseudo_huber, relative_mse
from lincae.training.objective import TrainingObjective
from lincae.training.schedules import learning_rate, sample_sigmas, step_size


def setup(n: int = 4, seed: int = 0, consistency_weight: float = 1.0):  # type: ignore[no-untyped-def]
    model = make_tiny_model(seed).train()
    objective = TrainingObjective(model.generator, model.frontend, consistency_weight=consistency_weight)
    g = torch.Generator().manual_seed(seed)
    audio = 0.2 * torch.randn(n, model.frontend.num_samples(8), generator=g)
    batch = augment(audio, g, additivity=False, homogeneity=False)
    noise = torch.randn(objective.noise_shape(batch), generator=g)
    return model, objective, batch, noise


def grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_preconditioning_is_the_official_one_with_the_boundary_at_sigma_min() -> None:
    sigma = torch.tensor([0.002, 0.5, 10.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in = (c.flatten() for c in preconditioning(sigma, 0.002, 0.5))
    # official get_c: c_skip = sd²/((s - smin)² + sd²), c_out = sd (s - smin)/sqrt(sd² + s²), c_in = 1/sqrt(s² + sd²)
    for i, s in enumerate(sigma.tolist()):
        assert float(c_skip[i]) == pytest.approx(0.25 / ((s - 0.002) ** 2 + 0.25))
        assert float(c_out[i]) == pytest.approx(0.5 * (s - 0.002) / math.sqrt(0.25 + s * s), rel=1e-6, abs=1e-9)
        assert float(c_in[i]) == pytest.approx(1 / math.sqrt(s * s + 0.25))
    assert float(c_skip[0]) == 1.0 and float(c_out[0]) == 0.0


def test_the_generator_is_the_identity_at_sigma_min_whatever_its_weights() -> None:
    model, _, batch, noise = setup()
    unet = model.generator
    x = model.frontend.to_representation(batch.target_audio) + 0.002 * noise
    pyramid = unet.decoder(unet.encoder(x))
    out = unet.forward_generator(None, x, torch.full((x.shape[0],), 0.002), pyramid)
    assert torch.equal(out, x)
    assert not torch.allclose(unet.forward_generator(None, x, torch.full((x.shape[0],), 1.0), pyramid), x)


def test_the_curriculum_and_learning_rate_follow_the_official_formulas() -> None:
    cfg = DiffusionConfig(end_exp=2.0)  # Lin-CAE: base 0.1, exponent from 1 to 2 over the run
    for it, total in [(0, 1000), (250, 1000), (1000, 1000), (5000, 1000)]:
        assert step_size(it, total, cfg) == pytest.approx(0.1 ** (1.0 + min(it, total) / total))
    # teacher index u - step, clamped at 0: the teacher is never above the student
    sig, sig_step = sample_sigmas(2000, 500, 1000, cfg, torch.Generator().manual_seed(0))
    assert torch.all(sig_step < sig) and torch.all(sig_step >= cfg.sigma_min)
    assert learning_rate(5, 1000, 1e-4, 1e-6, 10) == pytest.approx(5e-5)


def test_consistency_term_detaches_a_teacher_with_the_live_weights_and_the_same_noise() -> None:
    model, objective, batch, noise = setup(consistency_weight=1.0)
    n = batch.target_audio.shape[0]
    sig = torch.tensor([0.3, 2.0, 9.0, 40.0])
    sig_step = torch.tensor([0.2, 1.5, 7.0, 35.0])
    order = torch.arange(n)
    losses = objective(batch, order, sig, sig_step, noise, recon_count=0)
    losses[0].backward()
    ours = grads(model)

    # The official computation, written out: student at sigma with gradient, teacher at sigma_step without.
    model.zero_grad()
    unet = model.generator
    target = model.frontend.to_representation(batch.target_audio)
    pyramid = unet.decoder(unet.encoder(model.frontend.to_representation(batch.encoder_audio)))
    student = unet.forward_generator(None, target + sig.reshape(-1, 1, 1, 1) * noise, sig, pyramid)
    teacher = unet.forward_generator(None, target + sig_step.reshape(-1, 1, 1, 1) * noise, sig_step, pyramid)
    reference = pseudo_huber(student, teacher.detach(), 1.0 / (sig - sig_step))
    assert float(losses[3].detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
    assert float(losses[1].detach()) == 0.0 and float(losses[2].detach()) == 0.0
    reference.backward()
    assert torch.allclose(ours, grads(model), rtol=1e-4, atol=1e-7)

    # A teacher that is not detached would give other gradients: the test above can tell the two apart.
    model.zero_grad()
    pyramid = unet.decoder(unet.encoder(model.frontend.to_representation(batch.encoder_audio)))
    student = unet.forward_generator(None, target + sig.reshape(-1, 1, 1, 1) * noise, sig, pyramid)
    teacher = unet.forward_generator(None, target + sig_step.reshape(-1, 1, 1, 1) * noise, sig_step, pyramid)
    pseudo_huber(student, teacher, 1.0 / (sig - sig_step)).backward()
    assert not torch.allclose(ours, grads(model), rtol=1e-3, atol=1e-6)


def test_reconstruction_trains_exactly_what_one_step_decoding_outputs() -> None:
    model, objective, batch, noise = setup()
    n = batch.target_audio.shape[0]
    sigma_max = model.diffusion.config.sigma_max
    sig = torch.full((n,), sigma_max)
    with torch.no_grad():
        losses = objective(batch, torch.arange(n), sig, sig.clone(), noise, recon_count=n)

    # decode's one step: the generator at sigma_max on noise * sigma_max, conditioned on the latents
    unet = model.generator
    with torch.no_grad():
        z = unet.encoder(model.frontend.to_representation(batch.encoder_audio))
        decoded = unet.forward_generator(None, noise * sigma_max, sigma_max, unet.decoder(z))
    target = model.frontend.to_representation(batch.target_audio)
    assert float(losses[1]) == pytest.approx(float(relative_mse(decoded, target)), rel=1e-5)
    assert float(losses[3]) == 0.0


def test_reconstructed_and_consistency_examples_follow_the_order() -> None:
    model, objective, batch, noise = setup()
    n = batch.target_audio.shape[0]
    sig = torch.tensor([80.0, 80.0, 5.0, 1.0])
    sig_step = torch.tensor([80.0, 80.0, 4.0, 0.5])
    order = torch.tensor([2, 0, 3, 1])  # examples 2 and 0 are reconstructed, 3 and 1 are consistency pairs
    with torch.no_grad():
        losses = objective(batch, order, sig, sig_step, noise, recon_count=2)
    unet = model.generator
    target = model.frontend.to_representation(batch.target_audio)[order]
    with torch.no_grad():
        z = unet.encoder(model.frontend.to_representation(batch.encoder_audio))[order]
        pyramid = unet.decoder(z)
        decoded = unet.forward_generator(None, noise[:2] * 80.0, 80.0, [p[:2] for p in pyramid])
    assert float(losses[1]) == pytest.approx(float(relative_mse(decoded, target[:2])), rel=1e-5)
    assert float(losses[3]) > 0 and n == 4


def test_stft_term_sees_phase_across_frames() -> None:
    t = torch.arange(44100) / 44100
    x = (0.3 * torch.sin(2 * math.pi * 220 * t) + 0.2 * torch.sin(2 * math.pi * 330 * t)).reshape(1, -1)
    assert float(multi_resolution_stft(x, x)) == pytest.approx(0.0, abs=1e-6)
    # the same short-time magnitudes (1024-sample frames) with random phase in every frame
    window = torch.hann_window(1024)
    spec = torch.stft(x, 1024, 256, window=window, return_complex=True)
    phase = torch.rand(spec.shape, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    scrambled = torch.istft(torch.polar(spec.abs(), phase), 1024, 256, window=window, length=x.shape[-1])
    assert float(multi_resolution_stft(scrambled, x)) > 0.5
    assert float(multi_resolution_stft(0.5 * x, x)) > 0.5  # and level


def test_relative_mse_is_pooled_so_silent_targets_are_fine() -> None:
    target = torch.stack([torch.zeros(10), torch.ones(10)])
    assert float(relative_mse(torch.zeros(2, 10), target)) == pytest.approx(1.0)  # finite with a silent example
    assert float(relative_mse(0.5 * target, target)) == pytest.approx(0.25)
    assert float(relative_mse(target, target)) == 0.0


def test_with_additivity_only_the_clean_half_is_encoded_and_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mixtures' own latents are replaced by mixtures of latents, so encoding them is skipped."""
    model = make_tiny_model(3).train()
    objective = TrainingObjective(model.generator, model.frontend)
    g = torch.Generator().manual_seed(3)
    audio = 0.2 * torch.randn(3, model.frontend.num_samples(8), generator=g)
    batch = augment(audio, g, additivity=True, homogeneity=True)
    assert batch.audio_to_encode.shape[0] == 3 and batch.encoder_audio.shape[0] == 6
    noise = torch.randn(objective.noise_shape(batch), generator=g)
    sig = torch.tensor([80.0, 80.0, 80.0, 3.0, 1.0, 0.5])
    sig_step = torch.tensor([80.0, 80.0, 80.0, 2.0, 0.7, 0.3])
    order = torch.tensor([5, 0, 3, 1, 4, 2])
    with torch.no_grad():
        ours = objective(batch, order, sig, sig_step, noise, recon_count=3, stft_weight=0.5)
        unet = model.generator
        full = batch.latents_for_decoder(unet.encoder(model.frontend.to_representation(batch.encoder_audio)))
        half = batch.latents_for_decoder(unet.encoder(model.frontend.to_representation(batch.audio_to_encode)))
    assert torch.allclose(full, half, atol=1e-6)
    assert torch.isfinite(ours).all() and float(ours[1]) > 0 and float(ours[2]) > 0 and float(ours[3]) > 0
    # the same losses as encoding the whole batch (the official way), which the objective used to do
    from lincae.training.augment import AugmentedBatch

    monkeypatch.setattr(AugmentedBatch, "audio_to_encode", property(lambda b: b.encoder_audio))
    with torch.no_grad():
        reference = objective(batch, order, sig, sig_step, noise, recon_count=3, stft_weight=0.5)
    assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-7), (ours, reference)
