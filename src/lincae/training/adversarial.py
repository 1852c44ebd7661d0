"""The adversarial phase's losses and the generator objective that adds them (see ``AdversarialSection``).

Losses, over the ``D`` discriminators of a :class:`~lincae.training.discriminators.Critic` (each
``D_k`` gives logits ``[B, N_k]``; ``mean`` is over all of a discriminator's logits):

* hinge (as in MelGAN, DAC's option, StyleGAN-T): discriminator
  ``1/D Σ_k [mean(relu(1 − D_k(x))) + mean(relu(1 + D_k(x̂)))]``, generator ``1/D Σ_k mean(−D_k(x̂))``;
* least squares (HiFi-GAN, Vocos): discriminator ``1/D Σ_k [mean((1 − D_k(x))²) + mean(D_k(x̂)²)]``,
  generator ``1/D Σ_k mean((1 − D_k(x̂))²)``;
* feature matching (MelGAN, HiFi-GAN): ``1/D Σ_k 1/L_k Σ_l mean|f_kl(x) − f_kl(x̂)|`` over the
  ``L_k`` feature maps of discriminator ``k``, the target's maps taken without gradient.

The discriminators are averaged rather than summed (HiFi-GAN sums), so the weights do not depend on
how many there are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lincae.training.augment import AugmentedBatch
from lincae.training.config import AdversarialSection
from lincae.training.discriminators import Critic, CriticOutput
from lincae.training.losses import frequency_weighted_log_stft
from lincae.training.objective import LOSS_NAMES, TrainingObjective

__all__ = [
    "ADVERSARIAL_LOSS_NAMES",
    "AdversarialObjective",
    "build_critic",
    "discriminator_loss",
    "feature_matching",
    "generator_loss",
]

#: What :meth:`AdversarialObjective.forward` returns first, in order: the base losses, then the
#: generator's adversarial term, feature matching and the frequency-weighted STFT term (unweighted).
ADVERSARIAL_LOSS_NAMES: tuple[str, ...] = (*LOSS_NAMES, "adversarial", "feature", "hf_stft")


def discriminator_loss(real: CriticOutput, fake: CriticOutput, kind: str = "hinge") -> Tensor:
    """The discriminators' loss on targets ``real`` and decodes ``fake`` (``hinge`` or ``lsgan``), a scalar."""
    total = []
    for (r, _), (f, _) in zip(real, fake, strict=True):
        if kind == "hinge":
            total.append(F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean())
        elif kind == "lsgan":
            total.append((1 - r.float()).square().mean() + f.float().square().mean())
        else:
            raise ValueError(f"adversarial loss must be 'hinge' or 'lsgan', got {kind!r}")
    return torch.stack(total).mean()


def generator_loss(fake: CriticOutput, kind: str = "hinge") -> Tensor:
    """The generator's adversarial loss on decodes ``fake`` (``hinge`` or ``lsgan``), a scalar."""
    if kind not in ("hinge", "lsgan"):
        raise ValueError(f"adversarial loss must be 'hinge' or 'lsgan', got {kind!r}")
    terms = [(-f.float()).mean() if kind == "hinge" else (1 - f.float()).square().mean() for f, _ in fake]
    return torch.stack(terms).mean()


def feature_matching(real: CriticOutput, fake: CriticOutput) -> Tensor:
    """Mean L1 distance of the feature maps of targets and decodes (targets' maps detached), a scalar."""
    per_disc = []
    for (_, fr), (_, ff) in zip(real, fake, strict=True):
        layers = [(a.detach().float() - b.float()).abs().mean() for a, b in zip(fr, ff, strict=True)]
        per_disc.append(torch.stack(layers).mean())
    return torch.stack(per_disc).mean()


def build_critic(section: AdversarialSection, seed: int) -> Critic:
    """The section's :class:`Critic`, initialised from ``seed`` alone (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed ^ 0xD15C)
        return Critic(section.periods, section.period_channels, section.stft_fft_sizes, section.stft_channels)


class AdversarialObjective(nn.Module):
    """:class:`TrainingObjective` plus the adversarial phase's generator terms, as one module (for DDP).

    Holds ``base`` (the generator and frontend); the critic is passed to :meth:`forward`, not owned, so
    the generator's optimiser and DDP wrapper see only the generator's parameters. Its parameters
    should not require gradients during the call (the trainer switches them off).
    """

    def __init__(self, base: TrainingObjective, section: AdversarialSection) -> None:
        super().__init__()
        self.base = base
        self.section = section

    def forward(
        self,
        batch: AugmentedBatch,
        order: Tensor,
        sigmas: Tensor,
        sigmas_step: Tensor,
        noise: Tensor,
        recon_count: int,
        stft_weight: Tensor | float,
        critic: Critic | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Losses of one batch (arguments as :meth:`TrainingObjective.forward`).

        ``critic``: the discriminators, or ``None`` before the phase starts (the extra terms are 0).

        Returns:
            ``[7]`` float32 losses (:data:`ADVERSARIAL_LOSS_NAMES`: the weighted total, then each term
            unweighted), and the waveforms ``[R, T]`` of the reconstructed examples (detached) and of
            their targets, for the discriminators' step (``R = 0`` when nothing was reconstructed).
        """
        base, sec = self.base, self.section
        out, target, pyramid = base.generate(batch, order, sigmas, noise, recon_count)
        losses, wave_out, wave_ref = base.terms(
            out, target, pyramid, sigmas, sigmas_step, noise, recon_count, stft_weight, waveforms=critic is not None
        )
        zero = losses.new_zeros(())
        adversarial = feature = hf = zero
        if critic is not None and wave_out is not None and wave_ref is not None:
            fake = critic(wave_out)
            with torch.no_grad():
                real = critic(wave_ref)
            adversarial = generator_loss(fake, sec.loss)
            feature = feature_matching(real, fake)
            if sec.hf_stft_weight > 0:
                hf = frequency_weighted_log_stft(
                    wave_out, wave_ref, base.stft_fft_sizes, sec.hf_pivot_hz, base.frontend.config.sample_rate
                )
        total = losses[0] + sec.adversarial_weight * adversarial + sec.feature_weight * feature
        total = total + sec.hf_stft_weight * hf
        stats = torch.cat([total.reshape(1), losses[1:], torch.stack([adversarial, feature, hf])])
        if wave_out is None or wave_ref is None:
            empty = out.new_zeros((0, 1))
            return stats, empty, empty
        return stats, wave_out.detach(), wave_ref.detach()
