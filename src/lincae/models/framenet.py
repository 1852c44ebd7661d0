"""FrameNet: a causal autoencoder that runs at the latent frame rate, built to stream.

The second model family beside the official consistency UNet (:mod:`lincae.models.unet`). Everything
runs in 1-D over latent frames (``hop`` samples each), so a one-frame step is a few dozen small calls:

- **Analysis.** Frame ``k`` is the last ``n_fft`` samples up to sample ``(k + 1)·hop`` (the signal is
  zero-padded on the left), under an asymmetric window (a long half-Hann rise, a short half-Hann fall),
  so a frame is complete the moment its last hop has arrived.
- **Encoder.** The complex spectrum is divided by a causal running level ``s`` (the RMS over the last
  ``level_frames`` frames), power-law compressed, projected to ``channels`` and run through causal
  ConvNeXt blocks (depthwise time convolution, per-frame layer norm, pointwise MLP); a linear layer
  gives ``latent_channels`` values, multiplied by ``s`` again.
- **Decoder.** The latents are divided by their own causal running level ``r``, run through causal
  ConvNeXt blocks, and a linear head predicts log-magnitude and phase of a short synthesis frame
  (``synthesis`` samples; Vocos, arXiv 2306.00814), multiplied by ``r``. Frames are windowed (a Hann
  rise and fall of ``synthesis − hop`` samples, flat between) and overlap-added.

Dividing by a level and multiplying it back makes both halves exactly homogeneous for positive gains
(``Enc(a·x) = a·Enc(x)``, ``Dec(a·z) = a·Dec(z)``, up to the ``eps`` floor of the levels): Lin-CAE's
homogeneity holds by construction, and training spends its capacity on additivity and sound.

Nothing looks ahead: streamed frame by frame (:mod:`lincae.models.frame_step`) the model equals its
offline pass delayed by ``synthesis − hop`` samples (the fall of the last frame waits for the next
frame's rise).

Shapes: audio ``[B, T]`` float32 at ``sample_rate``; latents ``[B, latent_channels, Z]`` with
``Z = ceil((T + synthesis − hop) / hop)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lincae.config import ConfigBase
from lincae.models.blocks import TimeConv
from lincae.models.overlap import overlap_add

FAMILY = "framenet"


@dataclass(frozen=True)
class FrameNetConfig(ConfigBase):
    """Architecture of a :class:`FrameNet` (saved in ``config.json`` under ``framenet``).

    Attributes:
        sample_rate: audio rate in Hz.
        hop: samples per latent frame.
        n_fft: analysis frame in samples (a multiple of ``hop``, at least ``2·hop``).
        analysis_fall: samples of the analysis window's falling half (the rest rises).
        synthesis: synthesis frame in samples (``hop < synthesis <= 2·hop``); the stream delay is
            ``synthesis − hop``.
        channels: width of the ConvNeXt blocks.
        mlp_ratio: hidden width of each block's MLP over ``channels``.
        kernel: frames seen by each block's depthwise time convolution (causal).
        encoder_blocks, decoder_blocks: ConvNeXt blocks per half.
        latent_channels: values per latent frame.
        compress: power-law exponent of the encoder's input spectrum (``|X|**compress``).
        level_frames: frames of the causal running level that input and latents are divided by.
        eps: floor of the running levels (linear, full scale 1.0).
    """

    sample_rate: int = 44100
    hop: int = 256
    n_fft: int = 1024
    analysis_fall: int = 256
    synthesis: int = 384
    channels: int = 128
    mlp_ratio: int = 3
    kernel: int = 7
    encoder_blocks: int = 4
    decoder_blocks: int = 8
    latent_channels: int = 64
    compress: float = 0.5
    level_frames: int = 8
    eps: float = 1e-5

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "sample_rate": (8000, 384_000),
        "hop": (16, 4096),
        "n_fft": (32, 16384),
        "analysis_fall": (1, 16384),
        "synthesis": (17, 8192),
        "channels": (4, 2048),
        "mlp_ratio": (1, 8),
        "kernel": (1, 31),
        "encoder_blocks": (0, 64),
        "decoder_blocks": (0, 64),
        "latent_channels": (1, 1024),
        "compress": (0.05, 1.0),
        "level_frames": (1, 256),
        "eps": (1e-12, 1e-1),
    }

    def __post_init__(self) -> None:
        n = type(self).__name__
        self.check_fields(f"{n}: ")

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"{n}: {msg}")

        need(self.n_fft % self.hop == 0 and self.n_fft >= 2 * self.hop, "n_fft must be a multiple of hop, >= 2·hop")
        need(self.analysis_fall <= self.n_fft // 2, f"analysis_fall must be <= n_fft / 2 = {self.n_fft // 2}")
        need(self.hop < self.synthesis <= 2 * self.hop, f"synthesis must be in ({self.hop}, {2 * self.hop}]")

    @property
    def fade(self) -> int:
        """Samples of a synthesis frame's rise (and fall), overlapped with its neighbours."""
        return self.synthesis - self.hop

    @property
    def stream_delay(self) -> int:
        """Samples the stream lags the offline pass: the fall of a frame waits for the next one."""
        return self.synthesis - self.hop


# --------------------------------------------------------------------------- windows
def _half_hann(length: int, rising: bool) -> Tensor:
    """The rising (or falling) half of a periodic Hann window of ``2·length``: ``[length]`` float64."""
    t = torch.arange(length, dtype=torch.float64)
    w = torch.sin(0.5 * math.pi * (t + 0.5) / length) ** 2
    return w if rising else w.flip(0)


def analysis_window(config: FrameNetConfig) -> Tensor:
    """``[n_fft]`` float32: a half-Hann rise over ``n_fft − analysis_fall``, then a half-Hann fall."""
    fall = config.analysis_fall
    return torch.cat((_half_hann(config.n_fft - fall, True), _half_hann(fall, False))).float()


def synthesis_window(config: FrameNetConfig) -> Tensor:
    """``[synthesis]`` float32: rise and fall of ``fade`` samples that overlap-add to 1 at ``hop``."""
    fade = config.fade
    flat = torch.ones(config.synthesis - 2 * fade, dtype=torch.float64)
    return torch.cat((_half_hann(fade, True), flat, _half_hann(fade, False))).float()


# --------------------------------------------------------------------------- layers
class CausalDepthwiseConv(TimeConv, nn.Conv1d):
    """Depthwise causal convolution over ``[B, C, N]`` (kernel ``k``, ``k − 1`` frames of history);
    zero-padded offline, continued from a :class:`~lincae.models.blocks.StreamState` when streaming."""

    def __init__(self, channels: int, kernel: int) -> None:
        nn.Conv1d.__init__(self, channels, channels, kernel_size=kernel, groups=channels, padding=0)
        self.time_padding = (kernel - 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self.pad_time(x), self.weight, self.bias)


class CausalLevel(TimeConv, nn.Module):
    """Running level of ``[B, C, N]``: ``sqrt(mean over C and the last k frames of x² + eps²)`` → ``[B, 1, N]``.

    Frames before the start count as silence. No parameters; streams like a time convolution.
    """

    def __init__(self, frames: int, eps: float) -> None:
        nn.Module.__init__(self)
        self.frames = frames
        self.eps = eps
        self.time_padding = (frames - 1, 0)

    def forward(self, power: Tensor) -> Tensor:
        """``power: [B, 1, N]`` (per-frame mean square) → level ``[B, 1, N]``."""
        padded = self.pad_time(power)
        mean = F.avg_pool1d(padded, self.frames, stride=1) if self.frames > 1 else padded
        return torch.sqrt(mean + self.eps**2)


class ConvNeXtBlock(nn.Module):
    """``x + γ · MLP(LayerNorm(DepthwiseConv(x)))`` over ``[B, C, N]``; the norm sees one frame at a time."""

    def __init__(self, channels: int, mlp_ratio: int, kernel: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = CausalDepthwiseConv(channels, kernel)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv1 = nn.Linear(channels, mlp_ratio * channels)
        self.pwconv2 = nn.Linear(mlp_ratio * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).transpose(1, 2)  # [B, N, C]
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class FrameEncoder(nn.Module):
    """Analysis frames ``[B, N, n_fft]`` (unwindowed samples) → latents ``[B, latent_channels, N]``."""

    def __init__(self, config: FrameNetConfig) -> None:
        super().__init__()
        self.config = config
        bins = config.n_fft // 2 + 1
        self.register_buffer("window", analysis_window(config), persistent=False)
        self.level = CausalLevel(config.level_frames, config.eps)
        self.embed = nn.Conv1d(2 * bins, config.channels, 1)
        scale = 1.0 / max(1, config.encoder_blocks)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.channels, config.mlp_ratio, config.kernel, scale) for _ in range(config.encoder_blocks)
        )
        self.norm = nn.LayerNorm(config.channels, eps=1e-6)
        self.proj = nn.Linear(config.channels, config.latent_channels)

    def forward(self, frames: Tensor) -> Tensor:
        cfg = self.config
        spec = torch.fft.rfft(frames * self.window, dim=-1) * (2.0 / self.window.sum())  # [B, N, bins], ~amplitude
        power = (spec.real.square() + spec.imag.square()).mean(-1)[:, None]  # [B, 1, N]
        level = self.level(power)  # [B, 1, N]
        spec = spec / level.transpose(1, 2)
        mag = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-12)
        spec = spec * mag.pow(cfg.compress - 1.0)
        x = torch.cat((spec.real, spec.imag), dim=-1).transpose(1, 2)  # [B, 2·bins, N]
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        z = self.proj(self.norm(x.transpose(1, 2))).transpose(1, 2)
        return z * level


class FrameDecoder(nn.Module):
    """Latents ``[B, latent_channels, N]`` → windowed synthesis frames ``[B, N, synthesis]``."""

    def __init__(self, config: FrameNetConfig) -> None:
        super().__init__()
        self.config = config
        self.bins = config.synthesis // 2 + 1
        self.register_buffer("window", synthesis_window(config), persistent=False)
        self.level = CausalLevel(config.level_frames, config.eps)
        self.embed = nn.Conv1d(config.latent_channels, config.channels, 1)
        scale = 1.0 / max(1, config.decoder_blocks)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.channels, config.mlp_ratio, config.kernel, scale) for _ in range(config.decoder_blocks)
        )
        self.norm = nn.LayerNorm(config.channels, eps=1e-6)
        self.head = nn.Linear(config.channels, 2 * self.bins)

    def spectra(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latents ``[B, latent_channels, N]`` → magnitude and phase ``[B, N, bins]`` of the synthesis frames."""
        level = self.level(z.square().mean(1, keepdim=True))  # [B, 1, N]
        x = self.embed(z / level)
        for block in self.blocks:
            x = block(x)
        out = self.head(self.norm(x.transpose(1, 2)))  # [B, N, 2·bins]
        log_mag, phase = out.split(self.bins, dim=-1)
        return torch.exp(log_mag.clamp(max=8.0)) * level.transpose(1, 2), phase

    def synthesize(self, mag: Tensor, phase: Tensor) -> Tensor:
        """Magnitude and phase ``[B, N, bins]`` → windowed synthesis frames ``[B, N, synthesis]``."""
        spec = torch.polar(mag, phase) if not torch.is_autocast_enabled() else torch.polar(mag.float(), phase.float())
        frames = torch.fft.irfft(spec, n=self.config.synthesis, dim=-1)
        return frames * self.window

    def forward(self, z: Tensor) -> Tensor:
        return self.synthesize(*self.spectra(z))


def frame_audio(audio: Tensor, config: FrameNetConfig, frames: int) -> Tensor:
    """Analysis frames ``[B, frames, n_fft]`` of ``audio: [B, T]`` (zero-padded left by ``n_fft − hop``)."""
    need = frames * config.hop
    pad_right = max(0, need - audio.shape[-1])
    x = F.pad(audio[..., :need], (config.n_fft - config.hop, pad_right))
    return x.unfold(-1, config.n_fft, config.hop)


class FrameNet(nn.Module):
    """The network of the FrameNet family: :class:`FrameEncoder` + :class:`FrameDecoder`."""

    def __init__(self, config: FrameNetConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = FrameEncoder(config)
        self.decoder = FrameDecoder(config)

    def latent_frames(self, samples: int) -> int:
        """Latent frames ``Z`` for ``samples`` of audio: enough that every sample's fall is overlapped."""
        cfg = self.config
        return -(-(samples + cfg.fade) // cfg.hop)

    def decoded_samples(self, frames: int) -> int:
        """Finished audio samples from ``frames`` latent frames: ``frames·hop − fade``."""
        return max(0, frames * self.config.hop - self.config.fade)

    def encode(self, audio: Tensor) -> Tensor:
        """``audio: [B, T]`` → latents ``[B, latent_channels, Z]``."""
        return self.encoder(frame_audio(audio, self.config, self.latent_frames(audio.shape[-1])))

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``[B, C, Z]`` → audio ``[B, Z·hop − fade]`` (sample 0 is the first input sample)."""
        fade = self.config.fade
        audio = overlap_add(self.decoder(z).float(), self.config.hop)  # starts ``fade`` before sample 0
        return audio[:, fade : fade + self.decoded_samples(z.shape[-1])]


def describe(config: FrameNetConfig) -> dict[str, Any]:
    """Parameter count and per-second figures of a configuration (for model cards and logs)."""
    with torch.device("meta"):
        net = FrameNet(config)
    return {
        "parameters": sum(p.numel() for p in net.parameters()),
        "latent_rate_hz": config.sample_rate / config.hop,
        "stream_delay_samples": config.stream_delay,
    }


__all__ = [
    "FAMILY",
    "CausalDepthwiseConv",
    "ConvNeXtBlock",
    "FrameNet",
    "FrameNetConfig",
    "analysis_window",
    "describe",
    "frame_audio",
    "synthesis_window",
]
