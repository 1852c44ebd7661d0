"""Distances used by the training objective.

All take batches and return a scalar tensor (no host synchronisation), in float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

HUBER_C = 0.00054
STFT_FFT_SIZES: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
_LOG_FLOOR = 1e-4


def pseudo_huber(x: Tensor, y: Tensor, weight: Tensor | None = None, c: float = HUBER_C) -> Tensor:
    """Mean over the batch of ``sqrt(‖x − y‖² + c'²) − c'`` with ``c' = c·sqrt(dim)``, optionally weighted per item.

    The consistency distance of Music2Latent and Lin-CAE (``x``, ``y``: ``[B, ...]``, ``weight``: ``[B]``).
    """
    diff = (x - y).pow(2).flatten(1)
    cc = c * math.sqrt(diff.shape[-1])
    # Unlike the official loss (which wraps this in nan_to_num), a NaN stays visible so training can stop on it.
    loss = torch.sqrt(diff.sum(-1) + cc**2) - cc
    if weight is not None:
        loss = loss * weight
    return loss.mean()


#: Floor of the mean square of a relative distance's reference: far below quiet music (about 1e-4 in the
#: compressed STFT at -40 dBFS), so only silence meets it; a silent batch then gives an absolute error.
_POWER_FLOOR = 1e-6


def relative_mse(x: Tensor, target: Tensor) -> Tensor:
    """``mean((x − target)²) / mean(target²)`` over the whole batch: 1 for an all-zero ``x``, 0 when equal.

    Pooled over the batch, so examples whose target is silent (a homogeneity gain of 0) are fine; a
    batch that is silent altogether is measured against a floor (:data:`_POWER_FLOOR`) instead.
    """
    return (x - target).pow(2).mean() / target.pow(2).mean().clamp_min(_POWER_FLOOR)


def stft_magnitudes(audio: Tensor, n_fft: int) -> Tensor:
    """``|STFT|`` of ``audio: [B, T]`` with a Hann window of ``n_fft`` and hop ``n_fft // 4`` → ``[B, F, frames]``."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft, n_fft // 4, window=window, center=True, pad_mode="constant", return_complex=True)
    return spec.abs()


def multi_resolution_stft(estimate: Tensor, target: Tensor, fft_sizes: Sequence[int] = STFT_FFT_SIZES) -> Tensor:
    """Mean over resolutions of spectral convergence plus mean absolute log-magnitude difference.

    ``estimate``, ``target``: ``[B, T]`` audio. Spectral convergence ``‖|Ŝ| − |S|‖ / ‖|S|‖`` is pooled
    over the batch; magnitudes are floored at 1e-4 before the log (as in auraloss). The largest sizes reach across many
    model frames, so the loss asks for phase that stays coherent from frame to frame, which a
    per-frame distance does not see. Sizes longer than the signal are left out (the shortest is kept).
    """
    length = estimate.shape[-1]
    sizes = [n for n in fft_sizes if n <= length] or [min(fft_sizes)]
    total = estimate.new_zeros(())
    for n_fft in sizes:
        est = stft_magnitudes(estimate, n_fft)
        ref = stft_magnitudes(target, n_fft)
        floor = (_POWER_FLOOR * ref.numel()) ** 0.5  # a silent reference: the absolute difference
        convergence = (est - ref).norm() / ref.norm().clamp_min(floor)
        log_mag = (torch.log(est + _LOG_FLOOR) - torch.log(ref + _LOG_FLOOR)).abs().mean()
        total = total + convergence + log_mag
    return total / len(sizes)


def frequency_weights(n_fft: int, pivot_hz: float, sample_rate: int = 44100) -> Tensor:
    """``[n_fft // 2 + 1]`` weights ``1 + f / pivot_hz`` of the STFT bins, divided by their mean (mean 1)."""
    w = 1.0 + torch.fft.rfftfreq(n_fft, 1.0 / sample_rate) / pivot_hz
    return w / w.mean()


def frequency_weighted_log_stft(
    estimate: Tensor,
    target: Tensor,
    fft_sizes: Sequence[int] = STFT_FFT_SIZES,
    pivot_hz: float = 2000.0,
    sample_rate: int = 44100,
) -> Tensor:
    """Mean over resolutions of ``mean_k,t w_k·|log(|Ŝ| + 1e-4) − log(|S| + 1e-4)|``, ``w``: :func:`frequency_weights`.

    ``estimate``, ``target``: ``[B, T]`` audio at ``sample_rate``. The weights grow linearly with
    frequency (a bin at ``pivot_hz`` counts twice as much as DC before normalisation), so the upper
    harmonics, a small share of the energy, are not outweighed by the bass. Sizes longer than the
    signal are left out (the shortest is kept), as in :func:`multi_resolution_stft`.
    """
    length = estimate.shape[-1]
    sizes = [n for n in fft_sizes if n <= length] or [min(fft_sizes)]
    total = estimate.new_zeros(())
    for n_fft in sizes:
        diff = (
            torch.log(stft_magnitudes(estimate, n_fft) + _LOG_FLOOR)
            - torch.log(stft_magnitudes(target, n_fft) + _LOG_FLOOR)
        ).abs()
        w = frequency_weights(n_fft, pivot_hz, sample_rate).to(diff.device, diff.dtype)
        total = total + (diff * w.reshape(-1, 1)).mean()
    return total / len(sizes)
