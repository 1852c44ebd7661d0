"""Scaled complex STFT: the representation the autoencoder works in.

Audio ``[B, T]`` becomes ``[B, 2, F, N]`` with ``F = 2 * hop`` frequency rows (the Nyquist bin is
dropped) and ``N = (T - n_fft) // hop + 1`` frames (no padding). Each bin is ``beta * |X| ** alpha``
with the phase of ``X``; the two channels are its real and imaginary parts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lincae.models.config import FrontendConfig
from lincae.models.overlap import overlap_add


def compress(x: Tensor, alpha: float, beta: float) -> Tensor:
    """``beta * |x| ** alpha * exp(i * angle(x))`` for a complex tensor."""
    return torch.polar(beta * x.abs() ** alpha, x.angle())


def decompress(x: Tensor, alpha: float, beta: float) -> Tensor:
    """Inverse of :func:`compress`."""
    x = x / beta
    return torch.polar(x.abs() ** (1.0 / alpha), x.angle())


class ScaledComplexSTFT(nn.Module):
    """Invertible compressed complex STFT with a Hann window.

    The state dict holds one buffer, ``window`` (``n_fft`` samples), as in the official frontend.
    """

    window: Tensor

    def __init__(self, config: FrontendConfig | None = None) -> None:
        super().__init__()
        self.config = config or FrontendConfig()
        self.hop_size = self.config.hop_size
        self.fac = self.config.n_fft_factor
        self.n_fft = self.fac * self.hop_size
        self.register_buffer("window", torch.hann_window(self.n_fft))

    @property
    def sample_rate(self) -> int | None:
        return self.config.sample_rate

    def num_frames(self, samples: int) -> int:
        """STFT frames produced by ``samples`` audio samples (0 when shorter than one FFT)."""
        return max(0, (samples - self.n_fft) // self.hop_size + 1)

    def num_samples(self, frames: int) -> int:
        """Audio samples produced by inverting ``frames`` frames."""
        return (frames - 1) * self.hop_size + self.n_fft

    def to_representation(self, audio: Tensor) -> Tensor:
        """Audio ``[B, T]`` (or ``[T]``) → representation ``[B, 2, 2*hop, N]``."""
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        frames = audio.unfold(-1, self.n_fft, self.hop_size) * self.window  # [B, N, n_fft]
        spec = torch.fft.rfft(frames, dim=-1)[..., : 2 * self.hop_size].transpose(1, 2)  # [B, F, N]
        spec = compress(spec, self.config.alpha_rescale, self.config.beta_rescale)
        return torch.stack((spec.real, spec.imag), dim=-3)

    def to_waveform(self, rep: Tensor) -> Tensor:
        """Representation ``[B, 2, 2*hop, N]`` → audio ``[B, (N - 1) * hop + n_fft]``."""
        rep = F.pad(rep.float(), (0, 0, 0, 1))  # restore the (zero) Nyquist row
        spec = decompress(torch.complex(rep[:, 0], rep[:, 1]), self.config.alpha_rescale, self.config.beta_rescale)
        frames = torch.fft.irfft(spec, dim=-2)  # [B, n_fft, N]
        frames = frames * self._synthesis_window().unsqueeze(-1)
        return overlap_add(frames.transpose(1, 2), self.hop_size)

    def _synthesis_window(self) -> Tensor:
        """Window that makes overlap-add of analysis-windowed frames an exact inverse."""
        w2 = self.window**2
        overlaps = -(-self.n_fft // self.hop_size)
        w2 = F.pad(w2, (0, overlaps * self.hop_size - self.n_fft))
        denom = w2.reshape(overlaps, self.hop_size).sum(0).repeat(overlaps)[: self.n_fft]
        return self.window / denom

    def forward(self, x: Tensor, inverse: bool = False) -> Tensor:
        return self.to_waveform(x) if inverse else self.to_representation(x)
