"""Schedules of consistency training: noise levels, step size, learning rate, gain range.

Noise levels follow continuous consistency training (Music2Latent / Lin-CAE): an index ``u`` in
``[0, 1]`` maps to ``sigma(u) = (sigma_min^(1/rho) + u (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho``;
``u`` is drawn so that ``log sigma`` is roughly normal (``p_mean``, ``p_std``); the teacher sits at
``u - step`` with ``step = base_step ** (start_exp + (end_exp - start_exp) * it / total)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lincae.models.config import DiffusionConfig
from lincae.models.sampling import karras_sigma

_GRID = 10_000


def sigma_at(u: Tensor, cfg: DiffusionConfig) -> Tensor:
    """Noise level for continuous indices ``u`` in ``[0, 1]`` (``[B]`` → ``[B]``)."""
    lo, hi = cfg.sigma_min ** (1.0 / cfg.rho), cfg.sigma_max ** (1.0 / cfg.rho)
    return (lo + u * (hi - lo)) ** cfg.rho


def step_size(it: int, total: int, cfg: DiffusionConfig) -> float:
    """Index distance between student and teacher at iteration ``it`` of ``total``."""
    if cfg.schedule == "constant":
        return cfg.base_step**cfg.end_exp
    exponent = cfg.start_exp + (cfg.end_exp - cfg.start_exp) * min(it, total) / total
    return cfg.base_step**exponent


def lognormal_weights(cfg: DiffusionConfig, k: int = _GRID) -> Tensor:
    """Sampling weights ``[k - 1]`` over a grid of indices: the normal pdf of ``log sigma``."""
    i = torch.arange(1, k, dtype=torch.float64)
    log_sigma = torch.log(torch.as_tensor(karras_sigma(i, k, cfg.sigma_min, cfg.sigma_max, cfg.rho)))
    return torch.exp(-0.5 * ((log_sigma - cfg.p_mean) / cfg.p_std) ** 2) / (cfg.p_std * math.sqrt(2 * math.pi))


def sample_sigmas(
    n: int, it: int, total: int, cfg: DiffusionConfig, generator: torch.Generator, weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Draw ``n`` (student ``sigma``, teacher ``sigma_step``) pairs, each ``[n]`` float32, ``sigma > sigma_step``."""
    if cfg.use_lognormal:
        w = lognormal_weights(cfg) if weights is None else weights
        grid = w.shape[0] + 1
        u = (
            torch.multinomial(w, n, replacement=True, generator=generator).double()
            + torch.rand(n, generator=generator, dtype=torch.float64)
        ) / (grid - 1)
    else:
        u = torch.rand(n, generator=generator, dtype=torch.float64)
    u_step = (u - step_size(it, total, cfg)).clamp(min=0.0)
    return sigma_at(u, cfg).float(), sigma_at(u_step, cfg).float()


def learning_rate(it: int, total: int, lr: float, final_lr: float, warmup: int) -> float:
    """Linear warm-up from 0 over ``warmup`` steps, then cosine decay from ``lr`` to ``final_lr`` at ``total``."""
    if it < warmup:
        return lr * it / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (it - warmup) / span)
    return final_lr + 0.5 * (lr - final_lr) * (1.0 + math.cos(math.pi * progress))


def gain_range(
    it: int, total: int, gain_min: float, gain_max: float, decay: bool, hold: float, end: float
) -> tuple[float, float]:
    """Range of the homogeneity gains at iteration ``it``: held, annealed on a cosine to ``(1, 1)``, then fixed."""
    if not decay:
        return gain_min, gain_max
    start, stop = total * hold, total * (1.0 - end)
    if it <= start:
        return gain_min, gain_max
    if it >= stop:
        return 1.0, 1.0
    cf = 0.5 * (1.0 + math.cos(math.pi * (it - start) / (stop - start)))
    return 1.0 - (1.0 - gain_min) * cf, 1.0 + (gain_max - 1.0) * cf
