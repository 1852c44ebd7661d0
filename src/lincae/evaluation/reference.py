"""A reference codec for the quality metrics: a 64-band mel spectrogram inverted by Griffin-Lim.

It keeps as many numbers per second as lincae-small's latents (64 per 256 samples at 44.1 kHz) but
no phase, so it shows what a plain spectral representation at the model's frame rate sounds like.
``encode``: magnitude STFT (Hann 1024, hop 256, centred) → 64 triangular mel bands (Slaney scale,
area-normalised, 0 Hz to Nyquist) → ``[B, 64, frames]``. ``decode``: the least-squares magnitude
through the pseudo-inverse of the filterbank (clamped at 0), then fast Griffin-Lim (momentum 0.99,
zero initial phase, ``iterations`` rounds; Perraudin et al., 2013). Written with torch only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["MelGriffinLim", "mel_filterbank"]


def _hz_to_mel(f: Tensor) -> Tensor:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(f < min_log_hz, f / f_sp, min_log_mel + torch.log(f.clamp_min(1e-9) / min_log_hz) / logstep)


def _mel_to_hz(m: Tensor) -> Tensor:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(m < min_log_mel, f_sp * m, min_log_hz * torch.exp(logstep * (m - min_log_mel)))


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> Tensor:
    """``[n_mels, n_fft // 2 + 1]`` float64 triangular filters (Slaney scale and area normalisation)."""
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
    edges = _mel_to_hz(torch.linspace(0.0, float(_hz_to_mel(torch.tensor(sample_rate / 2.0))), n_mels + 2))
    edges = edges.to(torch.float64)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return weights * (2.0 / (upper - lower))


class MelGriffinLim:
    """``encode``/``decode`` like an autoencoder (:class:`lincae.evaluation.metrics.LatentCodec`).

    Args:
        n_mels: mel bands (64).
        hop: samples per frame (256 at 44.1 kHz: the frame rate of lincae-small's latents).
        n_fft: FFT and window size.
        iterations: Griffin-Lim rounds.
        sample_rate: audio rate in Hz.
    """

    def __init__(
        self, n_mels: int = 64, hop: int = 256, n_fft: int = 1024, iterations: int = 64, sample_rate: int = 44100
    ) -> None:
        self.n_mels, self.hop, self.n_fft, self.iterations = n_mels, hop, n_fft, iterations
        self.fb = mel_filterbank(n_mels, n_fft, sample_rate)  # [M, F]
        self.inverse = torch.linalg.pinv(self.fb)  # [F, M]
        self.window = torch.hann_window(n_fft, dtype=torch.float64)

    def _stft(self, audio: Tensor) -> Tensor:
        return torch.stft(audio, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)

    def _istft(self, spec: Tensor, length: int) -> Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)

    @torch.inference_mode()
    def encode(self, audio: Tensor) -> Tensor:
        """``audio: [B, T]`` at 44.1 kHz → mel magnitudes ``[B, n_mels, frames]`` (float32)."""
        mag = self._stft(audio.detach().cpu().to(torch.float64)).abs()
        return (self.fb @ mag).to(torch.float32)

    @torch.inference_mode()
    def decode(self, z: Tensor, full_length: int) -> Tensor:
        """Mel magnitudes ``[B, n_mels, frames]`` → audio ``[B, full_length]`` (float32) by Griffin-Lim."""
        target = (self.inverse @ z.detach().cpu().to(torch.float64)).clamp_min(0.0)  # [B, F, frames]
        spec = target.to(torch.complex128)
        previous = torch.zeros_like(spec)
        audio = self._istft(spec, full_length)
        for _ in range(self.iterations):
            rebuilt = self._stft(audio)
            accelerated = rebuilt + 0.99 * (rebuilt - previous)
            previous = rebuilt
            spec = target * torch.exp(1j * torch.angle(accelerated))
            audio = self._istft(spec, full_length)
        return audio.to(torch.float32)
