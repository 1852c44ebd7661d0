"""Lin-CAE's linearity augmentations, as pure functions of a batch and a random generator.

Additivity: the batch ``x: [B, T]`` becomes ``[x, w·x + (1 − w)·roll(x, 1)]`` with ``w ~ U[0.5, 1)``
per example; later the mixed half's latents are replaced by ``w·z + (1 − w)·roll(z, 1)`` of the
first half's latents, so the decoder must render a latent mixture as the audio mixture.

Homogeneity: every example gets a gain ``a`` (with probability ``p`` drawn from ``U[lo, hi]``, set to
0 below a threshold, else 1), capped so that ``peak(a·x) <= 1``; the target audio and the latents are
both multiplied by it (the encoder still sees unscaled audio), so ``Dec(a·z)`` must render ``a·x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def mix_with_previous(x: Tensor, w: Tensor) -> Tensor:
    """``w·x + (1 − w)·roll(x, 1, dim=0)`` with one weight per example (``w: [B]``)."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    w = w.to(x.dtype).reshape(shape)
    return w * x + (1.0 - w) * torch.roll(x, shifts=1, dims=0)


def sample_mix_weights(n: int, generator: torch.Generator) -> Tensor:
    """Mixture weights ``w ~ U[0.5, 1)``, ``[n]``."""
    return torch.rand(n, generator=generator) * 0.5 + 0.5


def sample_gains(
    n: int, prob: float, lo: float, hi: float, zero_threshold: float, generator: torch.Generator
) -> Tensor:
    """Gains ``[n]``: with probability ``prob`` from ``U[lo, hi]`` (values below ``zero_threshold`` → 0), else 1."""
    apply = torch.rand(n, generator=generator) < prob
    gains = torch.rand(n, generator=generator) * (hi - lo) + lo
    gains = torch.where(gains < zero_threshold, torch.zeros_like(gains), gains)
    return torch.where(apply, gains, torch.ones_like(gains))


def cap_gains(gains: Tensor, audio: Tensor) -> Tensor:
    """Limit ``|gain|`` per example so that ``peak(|gain · audio|) <= 1`` (``gains: [N]``, ``audio: [N, T]``)."""
    limit = 1.0 / (audio.abs().amax(dim=-1) + 1e-7)
    return torch.copysign(torch.minimum(gains.abs(), limit), gains)


@dataclass
class AugmentedBatch:
    """What one training step consumes.

    Attributes:
        encoder_audio: ``[N, T]`` audio the encoder sees (unscaled; N = 2B with additivity, else B).
        target_audio: ``[N, T]`` audio the consistency model learns to produce (gain-scaled).
        gains: ``[N]`` per-example latent gains (all ones without homogeneity).
        mix_weights: ``[B]`` mixture weights of the second half, or ``None`` without additivity.
    """

    encoder_audio: Tensor
    target_audio: Tensor
    gains: Tensor
    mix_weights: Tensor | None

    @property
    def audio_to_encode(self) -> Tensor:
        """The audio whose latents the decoder uses: the clean half with additivity (the mixtures' own
        latents are replaced by mixtures of latents, so encoding them would be wasted), else all."""
        if self.mix_weights is not None:
            return self.encoder_audio[: self.mix_weights.shape[0]]
        return self.encoder_audio

    def latents_for_decoder(self, z: Tensor) -> Tensor:
        """Encoder latents → the ``[N, C, Z]`` latents the decoder is trained on (mixture replacement, gains).

        ``z`` is the encoding of :attr:`audio_to_encode` (``[N/2, C, Z]`` with additivity) or of the whole
        ``encoder_audio`` (``[N, C, Z]``, whose second half is then replaced).
        """
        if self.mix_weights is not None:
            first = z[: self.mix_weights.shape[0]]
            z = torch.cat([first, mix_with_previous(first, self.mix_weights.to(z.device))], dim=0)
        return z * self.gains.to(z.device, z.dtype).reshape(-1, 1, 1)


def augment(
    audio: Tensor,
    generator: torch.Generator,
    *,
    additivity: bool,
    homogeneity: bool,
    gain_prob: float = 0.8,
    gain_lo: float = 0.0,
    gain_hi: float = 3.0,
    zero_threshold: float = 0.05,
) -> AugmentedBatch:
    """Build the step's batch from clean crops ``audio: [B, T]`` (draws on ``generator`` in a fixed order)."""
    mix_weights = None
    if additivity:
        mix_weights = sample_mix_weights(audio.shape[0], generator)
        audio = torch.cat([audio, mix_with_previous(audio, mix_weights.to(audio.device))], dim=0)
    n = audio.shape[0]
    if homogeneity:
        gains = sample_gains(n, gain_prob, gain_lo, gain_hi, zero_threshold, generator).to(audio.device)
        gains = cap_gains(gains, audio)
    else:
        gains = torch.ones(n, device=audio.device)
    target = audio * gains.reshape(-1, 1)
    return AugmentedBatch(encoder_audio=audio, target_audio=target, gains=gains, mix_weights=mix_weights)
