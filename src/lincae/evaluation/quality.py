"""Perceived quality and high-frequency detail of a reconstruction (not in the Lin-CAE paper).

The paper's metrics (:mod:`lincae.evaluation.metrics`) say whether pitch, level and linearity are
kept; they barely move when upper harmonics turn into a noise floor. These do:

* ViSQOL v3, audio mode (MOS-LQO, 1–5, ↑): ``visqol-python``'s port of Google's ViSQOL with its
  shipped audio-mode SVR model. Both signals are resampled from 44.1 to 48 kHz
  (``scipy.signal.resample_poly(x, 160, 147)``, the rate the audio model is trained for) and scored
  as float64. About 2–3 s per 4 s pair on a 2-core CPU.
* High-band MR-STFT (unitless, ↓): the multi-resolution STFT distance of
  :data:`lincae.evaluation.metrics.MRSTFT_SETTINGS` (FFT 1024/2048/512, hops 120/240/50, Hann windows
  600/1200/240; spectral convergence plus mean absolute log magnitude, floored at 1e-4) restricted
  to the bins from 4 to 16 kHz (:data:`HIGHBAND`).
* Harmonic energy kept above 2 kHz (0–1, ↑): in the reference's STFT (Hann 4096, hop 1024) the
  peaks above 2 kHz (a bin larger than its two neighbours on each side and no more than 50 dB
  below the frame's largest bin) hold energy ``Σ|X|²``; the estimate keeps ``Σ min(|Y|², |X|²)``
  of it on the same bins. 1 when every harmonic is there at full level; a low-passed estimate
  scores about 0, a noise floor in place of the harmonics scores its own (lower) level there.

All take ``[..., T]`` float tensors at 44.1 kHz and return ``[...]`` float64 on the CPU.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from lincae.evaluation.metrics import MRSTFT_SETTINGS

__all__ = ["HARMONIC_SETTINGS", "HIGHBAND", "harmonic_energy_kept", "highband_mrstft", "quality_scores", "visqol"]

HIGHBAND: tuple[float, float] = (4000.0, 16000.0)
"""Band of :func:`highband_mrstft`, in Hz."""

HARMONIC_SETTINGS: dict[str, float] = {"n_fft": 4096, "hop": 1024, "f_min": 2000.0, "floor_db": -50.0, "reach": 2}
"""Peak picking of :func:`harmonic_energy_kept` (``reach``: neighbours on each side a peak must exceed)."""

_LOG_FLOOR = 1e-4
_EPS = 1e-12


def _check(estimate: Tensor, reference: Tensor, what: str, min_len: int) -> tuple[Tensor, Tensor]:
    if not isinstance(estimate, Tensor) or not isinstance(reference, Tensor):
        raise TypeError(f"{what}: estimate and reference must be torch tensors")
    if estimate.shape != reference.shape:
        raise ValueError(f"{what}: shapes differ: {tuple(estimate.shape)} vs {tuple(reference.shape)}")
    if estimate.shape[-1] < min_len:
        raise ValueError(f"{what}: signals need at least {min_len} samples, got {estimate.shape[-1]}")
    t = estimate.shape[-1]
    return (
        estimate.detach().reshape(-1, t).to("cpu", torch.float64),
        reference.detach().reshape(-1, t).to("cpu", torch.float64),
    )


@torch.inference_mode()
def highband_mrstft(
    estimate: Tensor, reference: Tensor, sample_rate: int = 44100, band: tuple[float, float] = HIGHBAND
) -> Tensor:
    """MR-STFT distance on the bins of ``band`` (Hz) only, per signal; lower is better (0 when equal).

    ``estimate``, ``reference``: ``[..., T]`` with ``T > 1024``. Returns ``[...]`` float64.
    """
    sizes, hops, wins = (MRSTFT_SETTINGS[k] for k in ("fft_sizes", "hop_sizes", "win_lengths"))
    est, ref = _check(estimate, reference, "highband_mrstft", max(sizes) // 2 + 1)
    total = torch.zeros(est.shape[0], dtype=torch.float64)
    for n_fft, hop, win in zip(sizes, hops, wins, strict=True):
        window = torch.hann_window(win, dtype=torch.float64)
        freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
        keep = (freqs >= band[0]) & (freqs <= band[1])
        mags = [
            torch.stft(x, n_fft, hop, win, window=window, return_complex=True).abs()[:, keep].clamp_min(_LOG_FLOOR)
            for x in (est, ref)
        ]
        y, x = mags
        convergence = (y - x).flatten(1).norm(dim=-1) / x.flatten(1).norm(dim=-1).clamp_min(_EPS)
        log_mag = (y.log() - x.log()).abs().flatten(1).mean(-1)
        total += convergence + log_mag
    return (total / len(sizes)).reshape(estimate.shape[:-1])


def _peaks(power: Tensor, first_bin: int, reach: int, floor_db: float) -> Tensor:
    """Boolean ``[B, F, frames]``: bins at or above ``first_bin`` larger than ``reach`` neighbours each side."""
    is_peak = torch.ones_like(power, dtype=torch.bool)
    for shift in range(1, reach + 1):
        up = torch.nn.functional.pad(power[:, shift:], (0, 0, 0, shift))
        down = torch.nn.functional.pad(power[:, :-shift], (0, 0, shift, 0))
        is_peak &= (power > up) & (power > down)
    loud = power >= power.amax(1, keepdim=True) * 10 ** (floor_db / 10)
    is_peak &= loud & (power > 0)
    is_peak[:, :first_bin] = False
    return is_peak


@torch.inference_mode()
def harmonic_energy_kept(estimate: Tensor, reference: Tensor, sample_rate: int = 44100) -> Tensor:
    """Share of the reference's peak energy above 2 kHz that the estimate keeps on those bins (0–1, ↑).

    ``estimate``, ``reference``: ``[..., T]`` with ``T >= 4096``. Returns ``[...]`` float64; a
    reference with no peak above 2 kHz scores NaN (nothing to keep).
    """
    s = HARMONIC_SETTINGS
    n_fft, hop = int(s["n_fft"]), int(s["hop"])
    est, ref = _check(estimate, reference, "harmonic_energy_kept", n_fft)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    y, x = (
        torch.stft(v, n_fft, hop, window=window, center=False, return_complex=True).abs().square() for v in (est, ref)
    )
    first_bin = int(torch.ceil(torch.tensor(s["f_min"] * n_fft / sample_rate)))
    peaks = _peaks(x, first_bin, int(s["reach"]), s["floor_db"]).to(torch.float64)
    held = (x * peaks).flatten(1).sum(-1)
    kept = (torch.minimum(y, x) * peaks).flatten(1).sum(-1)
    out = torch.where(held > 0, kept / held.clamp_min(_EPS), torch.full_like(held, float("nan")))
    return out.reshape(estimate.shape[:-1])


@functools.lru_cache(maxsize=1)
def _visqol_api() -> Any:
    try:
        from visqol import VisqolApi
    except ImportError as err:
        raise ImportError("ViSQOL needs visqol-python: pip install 'lincae[eval]' (or visqol-python)") from err
    api = VisqolApi()
    api.create(mode="audio")
    return api


def visqol(estimate: Tensor, reference: Tensor, sample_rate: int = 44100) -> Tensor:
    """ViSQOL v3 audio-mode MOS-LQO (1–5, ↑) per signal, on ``[..., T]`` audio at ``sample_rate``.

    Signals are resampled to 48 kHz (polyphase, exact for 44.1 kHz) and need at least 0.5 s.
    Returns ``[...]`` float64.
    """
    from math import gcd

    from scipy.signal import resample_poly

    est, ref = _check(estimate, reference, "visqol", sample_rate // 2)
    g = gcd(48000, sample_rate)
    up, down = 48000 // g, sample_rate // g
    api = _visqol_api()
    scores = []
    for y, x in zip(est.numpy(), ref.numpy(), strict=True):
        x48, y48 = (resample_poly(v, up, down) if up != down else v for v in (x, y))
        scores.append(float(api.measure_from_arrays(x48, y48, 48000).moslqo))
    return torch.tensor(scores, dtype=torch.float64).reshape(estimate.shape[:-1])


def quality_scores(estimate: Tensor, reference: Tensor, sample_rate: int = 44100) -> dict[str, Tensor]:
    """``{"visqol", "hf_mrstft", "hf_harmonics"}`` per item of ``[B, T]`` audio (``[B]`` float64 each)."""
    return {
        "visqol": visqol(estimate, reference, sample_rate),
        "hf_mrstft": highband_mrstft(estimate, reference, sample_rate),
        "hf_harmonics": harmonic_energy_kept(estimate, reference, sample_rate),
    }
