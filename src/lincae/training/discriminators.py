"""Discriminators of the adversarial phase (training only; nothing of them is in a model file).

* :class:`PeriodDiscriminator` (HiFi-GAN, Kong et al. 2020): the waveform folded into ``[T / p, p]``
  columns, 2-D convolutions with ``(5, 1)`` kernels striding 3 along time, so each column (every
  ``p``-th sample) is judged on its own: periodic structure, i.e. harmonics and their phase.
* :class:`SpectrogramDiscriminator` (UnivNet's multi-resolution discriminator, as in Vocos): the
  STFT magnitude (Hann window ``n_fft``, hop ``n_fft / 4``), compressed as ``|S|^0.3`` so quiet upper
  bands weigh in, as a ``[frames, bins]`` image; ``(3, 9)`` kernels striding 2 along frequency.
* :class:`Critic` holds one of the first per period and one of the second per FFT size.

Every convolution is weight-normalised and followed by a leaky ReLU (slope 0.1) except the last,
which gives one logit per position. Each discriminator returns ``(logits [B, N], features)``, the
features being every layer's activation (what feature matching compares).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["Critic", "CriticOutput", "PeriodDiscriminator", "SpectrogramDiscriminator"]

#: Per discriminator: logits ``[B, N]`` and the feature maps of its layers.
CriticOutput = list[tuple[Tensor, list[Tensor]]]

_SLOPE = 0.1


def _conv(cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)) -> nn.Module:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return weight_norm(nn.Conv2d(cin, cout, kernel, stride, padding))


def _stack(convs: nn.ModuleList, out: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Leaky-ReLU convolutions then ``out``: logits ``[B, N]`` (flattened) and every layer's feature map."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), _SLOPE)
        features.append(x)
    x = out(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's sub-discriminator of period ``period``; ``channels`` wide at the first layer (×2 per layer).

    Input: ``[B, T]`` audio. Output: logits ``[B, N]`` and 5 feature maps.
    """

    def __init__(self, period: int, channels: int = 16, layers: int = 4) -> None:
        super().__init__()
        self.period = period
        widths = [1] + [channels * 2**i for i in range(layers)]
        self.convs = nn.ModuleList(_conv(widths[i], widths[i + 1], (5, 1), (3, 1)) for i in range(layers))
        self.convs.append(_conv(widths[-1], widths[-1], (5, 1)))
        self.out = _conv(widths[-1], 1, (3, 1))

    def forward(self, audio: Tensor) -> tuple[Tensor, list[Tensor]]:
        b, t = audio.shape
        pad = (-t) % self.period
        x = F.pad(audio.unsqueeze(1), (0, pad), mode="reflect" if pad < t else "constant")
        x = x.reshape(b, 1, (t + pad) // self.period, self.period)
        return _stack(self.convs, self.out, x)


class SpectrogramDiscriminator(nn.Module):
    """A magnitude-spectrogram discriminator at one resolution (UnivNet); ``channels`` wide.

    Input: ``[B, T]`` audio. Output: logits ``[B, N]`` and 6 feature maps.
    """

    def __init__(self, n_fft: int, channels: int = 16) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList(
            [
                _conv(1, c, (3, 9)),
                _conv(c, c, (3, 9), (1, 2)),
                _conv(c, c, (3, 9), (1, 2)),
                _conv(c, c, (3, 9), (1, 2)),
                _conv(c, c, (3, 3)),
            ]
        )
        self.out = _conv(c, 1, (3, 3))

    def spectrogram(self, audio: Tensor) -> Tensor:
        """``[B, T]`` → ``[B, 1, frames, bins]`` compressed magnitudes ``|S|^0.3`` (float32)."""
        spec = torch.stft(
            audio.float(),
            self.n_fft,
            self.n_fft // 4,
            window=self.window,
            center=True,
            pad_mode="constant",  # zero padding: also for crops shorter than half the window
            return_complex=True,
        )
        return spec.abs().clamp_min(1e-8).pow(0.3).transpose(1, 2).unsqueeze(1)

    def forward(self, audio: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = self.spectrogram(audio)
        return _stack(self.convs, self.out, x)


class Critic(nn.Module):
    """All discriminators of the adversarial phase, run on the same audio.

    Args:
        periods: one :class:`PeriodDiscriminator` per period (HiFi-GAN: 2, 3, 5, 7, 11).
        period_channels: their first layer's width.
        fft_sizes: one :class:`SpectrogramDiscriminator` per FFT size.
        stft_channels: their width.
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        period_channels: int = 16,
        fft_sizes: Sequence[int] = (512, 1024, 2048),
        stft_channels: int = 16,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            [PeriodDiscriminator(p, period_channels) for p in periods]
            + [SpectrogramDiscriminator(n, stft_channels) for n in fft_sizes]
        )

    def forward(self, audio: Tensor) -> CriticOutput:
        """``audio: [B, T]`` → per discriminator ``(logits [B, N], feature maps)``."""
        return [d(audio) for d in self.discriminators]
