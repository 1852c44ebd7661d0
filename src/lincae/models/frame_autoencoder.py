"""The FrameNet family behind the common autoencoder API (:class:`~lincae.models.base.LatentAutoencoder`).

::

    model = Autoencoder.from_pretrained("default")     # a FrameAutoencoder when the default is FrameNet
    z = model.encode(audio)                            # audio: Tensor[B, T] at 44.1 kHz -> z: Tensor[B, 64, Z]
    y = model.decode(z, full_length=audio.shape[-1])   # Tensor[B, T]

The decoder is deterministic (no noise): ``seed``, ``generator``, ``seeds`` and ``diffusion_steps`` are
accepted for the API's sake and change nothing. Long audio is encoded and decoded through the model's
own streams in pieces of ``chunk_frames`` frames: exactly the one-piece result, with memory bounded by
the piece, so latents are never chunked (``[B, C, Z]`` for any length).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lincae.config import check_int, check_number
from lincae.models.base import LatentAutoencoder, check_audio
from lincae.models.frame_step import FrameDecoderStream, FrameEncoderStream, onnx_available
from lincae.models.framenet import FAMILY, FrameNet, FrameNetConfig

#: Most parameters a FrameNet configuration may ask for.
MAX_PARAMETERS = 200_000_000
#: Latent frames per piece when encoding or decoding long audio (about 95 s at hop 256).
DEFAULT_CHUNK_FRAMES = 16384


class FrameAutoencoder(LatentAutoencoder):
    """A :class:`~lincae.models.framenet.FrameNet` with the autoencoder API and the streaming contract.

    Args:
        framenet: the architecture (a :class:`FrameNetConfig` or its dict).
        name: model id.
        scale_factor: multiplies encoder outputs to give latents (1 for lincae's own models).
        mixed_precision: run the network under bfloat16 autocast (CPU and CUDA).
        max_chunk_size: samples per piece for long audio (default ``DEFAULT_CHUNK_FRAMES`` frames).
        max_batch_size, diffusion_steps, overlap_percentage, enable_grad_denoise, autocast_dtype:
            accepted as the consistency family takes them; they do not change this family's output.
    """

    family = FAMILY

    def __init__(
        self,
        framenet: FrameNetConfig | dict[str, Any] | None = None,
        name: str = "model",
        scale_factor: float | None = None,
        mixed_precision: bool = False,
        max_chunk_size: int | None = None,
        max_batch_size: int = 1,
        diffusion_steps: int = 1,
        overlap_percentage: float = 0.25,
        enable_grad_denoise: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        config = FrameNetConfig.from_dict(framenet, where="framenet") if framenet is not None else FrameNetConfig()
        check_int(max_batch_size, "max_batch_size", 1, 4096)
        check_int(diffusion_steps, "diffusion_steps", 1, 1000)
        if max_chunk_size is not None:
            check_int(max_chunk_size, "max_chunk_size", config.hop, 2**31 - 1)
        if scale_factor is not None:
            check_number(scale_factor, "scale_factor", 0.0, 1e6, above=True)
        with torch.device("meta"):
            count = sum(p.numel() for p in FrameNet(config).parameters())
        if count > MAX_PARAMETERS:
            raise ValueError(
                f"FrameNetConfig: the network would have {count / 1e6:.0f} M parameters, more than the "
                f"{MAX_PARAMETERS / 1e6:.0f} M allowed (lower channels or blocks)"
            )
        self.config = config
        self.net = FrameNet(config)
        self.name = name
        self.scale_factor = float(scale_factor if scale_factor is not None else 1.0)
        self.mixed_precision = mixed_precision
        self.autocast_dtype = torch.bfloat16  # FrameNet's mixed precision: bfloat16 on every device
        self.max_chunk_size = max_chunk_size
        self.max_batch_size = max_batch_size
        self.diffusion_steps = diffusion_steps
        self.overlap_percentage = overlap_percentage

    # ----------------------------------------------------------------- description
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def hop_length(self) -> int:
        return self.config.hop

    @property
    def streamable(self) -> bool:
        return True

    @property
    def stream_delay(self) -> int:
        return self.config.stream_delay

    def get_latent_size(self, audio_length: int) -> int:
        return self.net.latent_frames(audio_length)

    def get_decoded_size(self, latent_length: int) -> int:
        return self.net.decoded_samples(latent_length)

    def min_samples(self) -> int:
        return 1

    @property
    def chunk_frames(self) -> int:
        """Latent frames per piece of a long encode or decode."""
        if self.max_chunk_size is None:
            return DEFAULT_CHUNK_FRAMES
        return max(1, self.max_chunk_size // self.config.hop)

    def config_dict(self) -> dict[str, Any]:
        return {
            "family": FAMILY,
            "framenet": self.config.to_dict(),
            "scale_factor": self.scale_factor,
            "sample_rate": self.sample_rate,
            "inference": {"max_chunk_size": self.max_chunk_size},
            "name": self.name,
        }

    # ----------------------------------------------------------------- streams
    def open_encoder_stream(self, batch: int, step_frames: int | None = None) -> FrameEncoderStream:
        """An encoder stream; pushes of ``step_frames`` frames run in ONNX Runtime where it is installed
        (and the model is on the CPU in float32), any other in PyTorch, with the same output."""
        return _AutocastEncoderStream(self, batch, step_frames)

    def open_decoder_stream(
        self, batch: int, seed: int = 0, steps: int = 1, step_frames: int | None = None
    ) -> FrameDecoderStream:
        """A decoder stream (deterministic: ``seed`` and ``steps`` change nothing); ``step_frames`` as above."""
        return _AutocastDecoderStream(self, batch, step_frames)

    # ----------------------------------------------------------------- audio
    def encode(self, x: Tensor, extract_features: bool = False, max_batch_size: int | None = None) -> Tensor:
        """Audio ``[B, T]`` (or ``[T]``) at :attr:`sample_rate` → latents ``[B, C, Z]``, ``Z = get_latent_size(T)``."""
        if extract_features:
            raise ValueError("extract_features is an option of the consistency family, not of FrameNet")
        x = check_audio(x).to(torch.float32)
        t = x.shape[-1]
        frames = self.get_latent_size(t)
        hop = self.config.hop
        padded = torch.nn.functional.pad(x, (0, frames * hop - t))
        stream = self.open_encoder_stream(x.shape[0])
        step = self.chunk_frames * hop
        parts = [stream.push(padded[:, i : i + step]) for i in range(0, padded.shape[-1], step)]
        return torch.cat(parts, dim=-1)

    def decode(
        self,
        z: Tensor,
        full_length: int | None = None,
        diffusion_steps: int | None = None,
        max_batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        shared_noise: bool = False,
        seeds: Sequence[int] | None = None,
    ) -> Tensor:
        """Latents ``[B, C, Z]`` → audio ``[B, T]`` (``T = full_length``, else ``get_decoded_size(Z)``).

        Deterministic: the noise arguments are accepted and ignored (see the module docstring).
        """
        if not isinstance(z, Tensor) or not z.is_floating_point():
            raise ValueError(f"latents must be a floating-point torch.Tensor, got {getattr(z, 'dtype', type(z))}")
        if z.dim() == 4:
            raise ValueError(
                "chunked latents [B, N, C, Z] come from a consistency model; this FrameNet model encodes any "
                "length as [B, C, Z]"
            )
        if z.dim() != 3:
            raise ValueError(f"latents must be [B, C, Z], got shape {tuple(z.shape)}")
        if z.shape[1] != self.latent_channels:
            raise ValueError(f"latents have {z.shape[1]} channels, this model uses {self.latent_channels}")
        if z.numel() == 0:
            raise ValueError(f"latents are empty (shape {tuple(z.shape)})")
        if not torch.isfinite(z).all():
            raise ValueError("latents contain NaN or Inf values")
        if full_length is not None and full_length < 1:
            raise ValueError(f"full_length must be >= 1, got {full_length}")
        stream = self.open_decoder_stream(z.shape[0])
        n = self.chunk_frames
        z = z.float()
        pieces = [stream.push(z[..., i : i + n]) for i in range(0, z.shape[-1], n)]
        audio = torch.cat(pieces, dim=-1)[:, self.stream_delay :]  # the stream lags the offline pass
        length = full_length if full_length is not None else audio.shape[-1]
        if audio.shape[-1] >= length:
            return audio[:, :length]
        return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))

    def auto_dtype(self, device: torch.device | str, streaming: bool = False) -> torch.dtype | None:
        """Float32 for a stream on the CPU where ONNX Runtime is installed: its float32 step is several times
        faster than a bfloat16 one in PyTorch, even on CPUs that compute bfloat16 natively
        (``benchmarks/stream_rtf.py``); else the common policy."""
        if streaming and torch.device(device).type == "cpu" and onnx_available():
            return None
        return super().auto_dtype(device, streaming)


class _AutocastEncoderStream(FrameEncoderStream):
    def __init__(self, model: FrameAutoencoder, batch: int, onnx_frames: int | None) -> None:
        self.model = model
        onnx = onnx_frames if model.network_dtype() is None else None  # ONNX Runtime runs float32 only
        super().__init__(model.net, batch, model.scale_factor, onnx)

    def push(self, audio: Tensor) -> Tensor:
        with self.model._network_context():
            return super().push(audio)


class _AutocastDecoderStream(FrameDecoderStream):
    def __init__(self, model: FrameAutoencoder, batch: int, onnx_frames: int | None) -> None:
        self.model = model
        onnx = onnx_frames if model.network_dtype() is None else None  # ONNX Runtime runs float32 only
        super().__init__(model.net, batch, model.scale_factor, onnx)

    def push(self, z: Tensor) -> Tensor:
        with self.model._network_context():
            return super().push(z)


__all__ = ["DEFAULT_CHUNK_FRAMES", "FrameAutoencoder"]
