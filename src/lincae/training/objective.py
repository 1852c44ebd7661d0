"""The loss of one training step: one-step reconstruction plus consistency.

See :class:`lincae.training.config.ObjectiveSection` for why both terms are there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lincae.models.frontend import ScaledComplexSTFT
from lincae.models.unet import UNet
from lincae.training.augment import AugmentedBatch
from lincae.training.losses import (
    HUBER_C,
    STFT_FFT_SIZES,
    multi_resolution_stft,
    pseudo_huber,
    relative_mse,
)

__all__ = ["HUBER_C", "LOSS_NAMES", "TrainingObjective", "pseudo_huber"]

#: What :meth:`TrainingObjective.forward` returns, in order.
LOSS_NAMES: tuple[str, ...] = ("loss", "recon", "stft", "consistency")


class TrainingObjective(nn.Module):
    """One step's loss as a module, so that DDP can wrap the whole computation in one forward call.

    Holds the UNet being trained (``generator``) and the frontend that turns audio into the compressed
    complex STFT. Every example is encoded; its (augmented) latents condition the generator, which is
    run once on the whole batch with one noise level per example. The first ``recon_count`` examples
    (in the order ``order`` gives) are decoded exactly as :meth:`lincae.Autoencoder.decode` does in one
    step (pure noise times ``sigma_max``) and compared with their clean targets; the rest are
    consistency pairs against a detached teacher (same weights, same noise, ``sigma_step``).

    Args:
        generator: the UNet (encoder, latent upsampler, consistency generator).
        frontend: the representation.
        recon_weight, consistency_weight: weights of the reconstruction MSE and of the consistency loss
            (the STFT term's weight comes with each call, as it follows a schedule).
        stft_fft_sizes: resolutions of the multi-resolution STFT term.
    """

    def __init__(
        self,
        generator: UNet,
        frontend: ScaledComplexSTFT,
        recon_weight: float = 1.0,
        consistency_weight: float = 1.0,
        stft_fft_sizes: Sequence[int] = STFT_FFT_SIZES,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.frontend = frontend
        self.recon_weight = recon_weight
        self.consistency_weight = consistency_weight
        self.stft_fft_sizes = tuple(stft_fft_sizes)

    def forward(
        self,
        batch: AugmentedBatch,
        order: Tensor,
        sigmas: Tensor,
        sigmas_step: Tensor,
        noise: Tensor,
        recon_count: int,
        stft_weight: Tensor | float = 0.0,
    ) -> Tensor:
        """Losses of one batch.

        Args:
            batch: ``N`` augmented examples.
            order: ``[N]`` permutation of the examples; the first ``recon_count`` of it are reconstructed.
            sigmas, sigmas_step: ``[N]`` student and teacher noise levels, in ``order`` (the first
                ``recon_count`` sigmas should be ``sigma_max``; their ``sigmas_step`` are unused).
            noise: ``[N, 2, F, frames]`` standard normal noise, in ``order``.
            recon_count: examples that get the reconstruction loss (0 to N).
            stft_weight: weight of the multi-resolution STFT term: a 0-d tensor (a compiled step is not
                recompiled as it ramps) or a float (the term is skipped while it is 0).

        Returns:
            ``[4]`` float32: the weighted total, then the reconstruction MSE, the STFT distance and the
            consistency loss, each unweighted (0 where a term has no examples).
        """
        out, target, pyramid = self.generate(batch, order, sigmas, noise, recon_count)
        return self.terms(out, target, pyramid, sigmas, sigmas_step, noise, recon_count, stft_weight)[0]

    def generate(
        self, batch: AugmentedBatch, order: Tensor, sigmas: Tensor, noise: Tensor, recon_count: int
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """The generator's output for every example (arguments as :meth:`forward`).

        Returns:
            ``out`` ``[N, 2, F, frames]`` float32 (the first ``recon_count`` are one-step decodes),
            the clean targets' representation (same shape), and the decoder's feature pyramid.
        """
        unet = self.generator
        rep_in = self.frontend.to_representation(batch.audio_to_encode)
        target = self.frontend.to_representation(batch.target_audio).index_select(0, order)
        latents = batch.latents_for_decoder(unet.encoder(rep_in)).index_select(0, order)
        pyramid = unet.decoder(latents)
        sig = sigmas.reshape(-1, 1, 1, 1)
        r, n = recon_count, target.shape[0]
        # Reconstructed examples start from pure noise, as decoding does (no trace of the target leaks in).
        keep = (torch.arange(n, device=target.device) >= r).to(target.dtype).reshape(-1, 1, 1, 1)
        out = unet.forward_generator(None, keep * target + sig * noise, sigmas, pyramid).float()
        return out, target, pyramid

    def terms(
        self,
        out: Tensor,
        target: Tensor,
        pyramid: list[Tensor],
        sigmas: Tensor,
        sigmas_step: Tensor,
        noise: Tensor,
        recon_count: int,
        stft_weight: Tensor | float = 0.0,
        waveforms: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The losses of :meth:`forward` from :meth:`generate`'s output.

        Returns:
            The ``[4]`` losses of :meth:`forward`, then the waveforms of the reconstructed examples and
            of their targets, ``[recon_count, T]`` each, when they were computed (for the STFT term, or
            always with ``waveforms``), else ``None``.
        """
        unet = self.generator
        r, n = recon_count, target.shape[0]
        zero = out.new_zeros(())
        recon = stft = consistency = zero
        wave_out = wave_ref = None
        if r > 0:
            recon = relative_mse(out[:r], target[:r])
            if waveforms or isinstance(stft_weight, Tensor) or stft_weight > 0:
                wave_out = self.frontend.to_waveform(out[:r])
                wave_ref = self.frontend.to_waveform(target[:r])
            if isinstance(stft_weight, Tensor) or stft_weight > 0:
                stft = multi_resolution_stft(wave_out, wave_ref, self.stft_fft_sizes)  # type: ignore[arg-type]
        if r < n:
            rest = slice(r, n)
            sig_step = sigmas_step[rest].reshape(-1, 1, 1, 1)
            with torch.no_grad():
                teacher = unet.forward_generator(
                    None, target[rest] + sig_step * noise[rest], sigmas_step[rest], [p[rest] for p in pyramid]
                ).float()
            consistency = pseudo_huber(out[rest], teacher, 1.0 / (sigmas[rest] - sigmas_step[rest]))
        total = self.recon_weight * recon + stft_weight * stft + self.consistency_weight * consistency
        return torch.stack([total, recon, stft, consistency]), wave_out, wave_ref

    def noise_shape(self, batch: AugmentedBatch) -> tuple[int, ...]:
        """Shape of the step's noise for ``batch``: that of its representation."""
        n, t = batch.target_audio.shape
        frames = self.frontend.num_frames(t)
        return (n, 2, 2 * self.frontend.hop_size, frames)
