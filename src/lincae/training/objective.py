"""The consistency-training objective of one step."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lincae.models.frontend import ScaledComplexSTFT
from lincae.models.unet import UNet
from lincae.training.augment import AugmentedBatch

HUBER_C = 0.00054


def pseudo_huber(x: Tensor, y: Tensor, weight: Tensor | None = None, c: float = HUBER_C) -> Tensor:
    """Mean over the batch of ``sqrt(‖x − y‖² + c'²) − c'`` with ``c' = c·sqrt(dim)``, optionally weighted per item."""
    diff = (x - y).pow(2).flatten(1)
    cc = c * math.sqrt(diff.shape[-1])
    # Unlike the official loss (which wraps this in nan_to_num), a NaN stays visible so training can stop on it.
    loss = torch.sqrt(diff.sum(-1) + cc**2) - cc
    if weight is not None:
        loss = loss * weight
    return loss.mean()


class ConsistencyObjective(nn.Module):
    """One step's loss as a module, so that DDP can wrap the whole computation in one forward call.

    Holds the UNet being trained (``generator``) and the frontend that turns audio into the compressed
    complex STFT. ``forward`` returns the weighted pseudo-Huber distance between the student (at
    ``sigma``) and the detached teacher (at ``sigma_step``, same noise, same weights).
    """

    def __init__(self, generator: UNet, frontend: ScaledComplexSTFT) -> None:
        super().__init__()
        self.generator = generator
        self.frontend = frontend

    def forward(self, batch: AugmentedBatch, sigmas: Tensor, sigmas_step: Tensor, noise: Tensor) -> Tensor:
        """Args: ``batch`` (N examples), ``sigmas``/``sigmas_step`` ``[N]``, ``noise`` ``[N, 2, F, frames]``."""
        unet = self.generator
        rep_in = self.frontend.to_representation(batch.encoder_audio)
        target = self.frontend.to_representation(batch.target_audio)
        sig = sigmas.reshape(-1, 1, 1, 1)
        sig_step = sigmas_step.reshape(-1, 1, 1, 1)
        pyramid = unet.decoder(batch.latents_for_decoder(unet.encoder(rep_in)))
        with torch.no_grad():
            teacher = unet.forward_generator(None, target + sig_step * noise, sigmas_step, pyramid)
        student = unet.forward_generator(None, target + sig * noise, sigmas, pyramid)
        return pseudo_huber(student, teacher, 1.0 / (sigmas - sigmas_step))

    def noise_shape(self, batch: AugmentedBatch) -> tuple[int, ...]:
        """Shape of the shared noise for ``batch``: that of its representation."""
        n, t = batch.target_audio.shape
        frames = self.frontend.num_frames(t)
        return (n, 2, 2 * self.frontend.hop_size, frames)
