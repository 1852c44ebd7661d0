"""Few-step consistency sampling (the decode path).

Training-time parts of the noise schedule (step-size annealing, log-normal noise draws) live in
:mod:`lincae.training`; this module only turns noise plus a latent pyramid into a representation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

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
        parts = list(self.pieces(generator_net, latents, steps, generator, shared_noise, noise_fn))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def pieces(
        self,
        generator_net: UNet,
        latents: Tensor,
        steps: int,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        shared_noise: bool = False,
        noise_fn: Callable[[int], Tensor] | None = None,
        max_batch_size: int | None = None,
    ) -> Iterator[Tensor]:
        """:meth:`sample` run on at most ``max_batch_size`` items at a time: their representations
        ``[b, 2, 2*hop, frames]``, in order.

        The noise is drawn for the whole batch, in the order :meth:`sample` draws it, so the pieces joined
        equal its result whatever ``max_batch_size``; only one piece's activations are held at a time.
        The draws a piece needs are kept until the last piece (``steps`` of them, ``[B, 2, 2*hop, frames]``).
        """
        if steps < 1:
            raise ValueError(f"diffusion_steps must be >= 1, got {steps}")
        cfg = generator_net.config
        frames = latents.shape[-1] * 2**cfg.temporal_downsamples
        batch = latents.shape[0]
        size = batch if max_batch_size is None else max(1, max_batch_size)
        shape = (1 if shared_noise else batch, cfg.data_channels, cfg.hop * 2, frames)
        spans = [(lo, min(lo + size, batch)) for lo in range(0, batch, size)]

        if noise_fn is not None:  # the same noise for every item: any piece takes it as it is
            for lo, hi in spans:
                yield self._steps(generator_net, latents[lo:hi], steps, noise_fn)
            return
        if isinstance(generator, Sequence):
            if len(generator) != batch:
                raise ValueError(f"{len(generator)} generators for a batch of {batch}")
            for lo, hi in spans:

                def own(k: int, gens: Sequence[torch.Generator] = generator[lo:hi]) -> Tensor:
                    return torch.cat([randn((1, *shape[1:]), g, latents.device) for g in gens])

                yield self._steps(generator_net, latents[lo:hi], steps, own)
            return

        def draw() -> Tensor:
            n = randn(shape, generator, latents.device)
            return n.expand(batch, *shape[1:]) if shared_noise else n

        if len(spans) == 1:
            yield self._steps(generator_net, latents, steps, lambda k: draw())
            return
        drawn: list[Tensor] = []

        def rows(k: int, lo: int, hi: int) -> Tensor:
            while len(drawn) <= k:
                n = draw()
                # The draw after the last step only advances the random stream (see _steps): not kept.
                drawn.append(n if len(drawn) < steps else n[:0])
            return drawn[k][lo:hi]

        for lo, hi in spans:
            yield self._steps(generator_net, latents[lo:hi], steps, lambda k, lo=lo, hi=hi: rows(k, lo, hi))

    def _steps(self, generator_net: UNet, latents: Tensor, steps: int, noise: Callable[[int], Tensor]) -> Tensor:
        """Denoise ``latents [b, C, Z]``; ``noise(k)``: the draw ``k`` (0: the initial noise), broadcastable to
        ``[b, 2, 2*hop, frames]``, called once for each ``k`` in ``0..steps`` in order."""
        cfg = generator_net.config
        batch = latents.shape[0]
        tail = (cfg.data_channels, cfg.hop * 2, latents.shape[-1] * 2**cfg.temporal_downsamples)
        x = noise(0).to(latents.device).expand(batch, *tail) * cfg.sigma_max
        pyramid = generator_net.decoder(latents)
        pred = x
        for k in range(steps):
            sigma = self.sigma(steps + 1 - k, steps + 1)
            # The last step may free the pyramid's levels as it goes (less memory at its peak).
            pred = generator_net.forward_generator(None, x, sigma, pyramid, release_pyramid=k + 1 == steps)
            # Noise is drawn after every step, the last one too, so that a seeded random stream
            # advances exactly as in the official sampler (batches split by max_batch_size match).
            step_noise = noise(k + 1)
            if k + 1 < steps:
                next_sigma = self.sigma(steps - k, steps + 1)
                x = pred + (next_sigma**2 - self.config.sigma_min**2) ** 0.5 * step_noise.to(latents.device).expand(
                    batch, *tail
                )
        return pred
