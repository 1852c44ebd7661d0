"""Few-step consistency sampling (the decode path).

Training-time parts of the noise schedule (step-size annealing, log-normal noise draws) live in
:mod:`lincae.training`; this module only turns noise plus a latent pyramid into a representation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from lincae.models.config import DiffusionConfig
from lincae.models.unet import UNet


def karras_sigma(i: float | Tensor, k: int, sigma_min: float, sigma_max: float, rho: float) -> float | Tensor:
    """Noise level of discrete index ``i`` in ``[1, k]`` on the Karras schedule (``i = k`` → ``sigma_max``)."""
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (lo + (i - 1) / (k - 1) * (hi - lo)) ** rho


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal noise drawn from ``generator`` (on its own device) and moved to ``device``."""
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


class ConsistencySampler:
    """Multistep consistency sampling: denoise from ``sigma_max``, re-noise, repeat.

    Holds no tensors, so it adds nothing to the model's state dict.
    """

    def __init__(self, config: DiffusionConfig | None = None) -> None:
        self.config = config or DiffusionConfig()

    def sigma(self, i: int, k: int) -> float:
        c = self.config
        return float(karras_sigma(i, k, c.sigma_min, c.sigma_max, c.rho))

    def sample(
        self,
        generator_net: UNet,
        latents: Tensor,
        steps: int,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        shared_noise: bool = False,
        noise_fn: Callable[[int], Tensor] | None = None,
    ) -> Tensor:
        """Latents ``[B, C, Z]`` → representation ``[B, 2, 2*hop, Z * 2**temporal_downsamples]``.

        Args:
            generator_net: the network whose ``forward_generator`` denoises.
            latents: unscaled latents (the encoder's raw output range).
            steps: number of denoising steps (1 = single-step decoding).
            generator: random generator for the initial and intermediate noise (``None``: global RNG),
                or one generator per item (each item's noise then comes from its own stream, so a
                batch decodes exactly as its items would one by one).
            shared_noise: every item of the batch gets the same noise (the channels of one stereo
                signal, say, so that identical latents decode to identical audio).
            noise_fn: instead of ``generator``, the noise of step ``k`` (0: the initial noise) as
                ``noise_fn(k)``, broadcastable to ``[B, 2, 2*hop, frames]`` (per-frame noise of streamable models).
        """
        if steps < 1:
            raise ValueError(f"diffusion_steps must be >= 1, got {steps}")
        cfg = generator_net.config
        frames = latents.shape[-1] * 2**cfg.temporal_downsamples
        batch = latents.shape[0]
        shape = (1 if shared_noise else batch, cfg.data_channels, cfg.hop * 2, frames)

        drawn = [0]

        def noise() -> Tensor:
            if noise_fn is not None:
                drawn[0] += 1
                return noise_fn(drawn[0] - 1).to(latents.device).expand(batch, *shape[1:])
            if isinstance(generator, Sequence):
                if len(generator) != batch:
                    raise ValueError(f"{len(generator)} generators for a batch of {batch}")
                return torch.cat([randn((1, *shape[1:]), g, latents.device) for g in generator])
            n = randn(shape, generator, latents.device)
            return n.expand(batch, *shape[1:]) if shared_noise else n

        x = noise() * cfg.sigma_max
        pyramid = generator_net.decoder(latents)
        pred = x
        for k in range(steps):
            sigma = self.sigma(steps + 1 - k, steps + 1)
            pred = generator_net.forward_generator(None, x, sigma, pyramid)
            # Noise is drawn after every step, the last one too, so that a seeded random stream
            # advances exactly as in the official sampler (batches split by max_batch_size match).
            step_noise = noise()
            if k + 1 < steps:
                next_sigma = self.sigma(steps - k, steps + 1)
                x = pred + (next_sigma**2 - self.config.sigma_min**2) ** 0.5 * step_noise
        return pred
