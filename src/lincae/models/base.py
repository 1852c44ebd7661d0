"""What every lincae model family offers: the autoencoder API and the streaming contract.

Two families implement it: the official consistency UNet (:class:`lincae.models.autoencoder.Autoencoder`,
which loads the official checkpoints) and FrameNet (:class:`lincae.models.frame_autoencoder.FrameAutoencoder`,
built to stream). The engine, the commands and the GUI depend on this class only.

**Streaming contract.** A model with ``streamable`` true opens an encoder stream and a decoder stream
(:meth:`LatentAutoencoder.open_encoder_stream`, :meth:`LatentAutoencoder.open_decoder_stream`). A pair
started together and fed audio from sample ``t0`` on (silence before it) gives back, for every push of
``n·hop_length`` samples, exactly ``n·hop_length`` samples: the offline ``decode(encode(x))`` of that
audio delayed by :attr:`LatentAutoencoder.stream_delay` samples, within float rounding, whatever the
block sizes. Latents can be mixed between the two streams. Decoder noise (consistency models) is keyed
by the absolute frame index, which a decoder stream exposes as its ``frame`` attribute.

**Precision.** A model's own precision comes from its ``mixed_precision`` and ``autocast_dtype``
(:attr:`LatentAutoencoder.precision`, resolved for its device by :mod:`lincae.models.precision`). A caller
that owns the precision (the engine) runs the model inside :meth:`LatentAutoencoder.precision_scope`
instead of changing those attributes; the scope holds on the calling thread only, so one model can serve
a live engine and a render at different precisions.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from lincae.models import registry
from lincae.models.precision import AUTOCAST_DTYPES, autocast, autocast_dtype_for, precision_of

#: The dtypes of the precision scopes open on this thread, innermost last: ``(id(model), dtype)``.
_SCOPES: contextvars.ContextVar[tuple[tuple[int, torch.dtype | None], ...]] = contextvars.ContextVar(
    "lincae_precision_scopes", default=()
)


class EncoderStream(Protocol):
    """Audio blocks ``[B, n]`` → the latent frames ``[B, C, m]`` they complete (``m`` may be 0)."""

    frames_out: int

    def push(self, audio: Tensor) -> Tensor: ...

    def reset(self) -> None: ...


class DecoderStream(Protocol):
    """Latent frames ``[B, C, m]`` → ``[B, m·hop]`` audio; ``frame``: absolute index of the next frame."""

    frame: int

    def push(self, z: Tensor) -> Tensor: ...

    def reset(self) -> None: ...


def check_audio(x: Tensor, what: str = "audio") -> Tensor:
    """``x`` as ``[B, T]`` (a ``[T]`` gets a batch axis); ``ValueError`` naming the problem otherwise."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be floating point (float32 at 44.1 kHz), got dtype {x.dtype}")
    if x.dim() not in (1, 2):
        hint = " (multichannel audio: use encode_channels)" if x.dim() == 3 else ""
        raise ValueError(f"{what} must be [B, T] or [T], got shape {tuple(x.shape)}{hint}")
    if x.numel() == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{what} contains {bad} NaN or Inf sample(s)")
    return x if x.dim() == 2 else x.unsqueeze(0)


def fold_channels(audio: Tensor) -> tuple[Tensor, int]:
    """Multichannel audio ``[B, C, T]`` → a batch of mono signals ``[B * C, T]`` and ``C``."""
    if audio.dim() != 3:
        raise ValueError(f"expected multichannel audio [B, C, T], got shape {tuple(audio.shape)}")
    b, c, t = audio.shape
    return audio.reshape(b * c, t), c


def unfold_channels(x: Tensor, channels: int) -> Tensor:
    """Inverse of :func:`fold_channels` for any tensor whose first axis is ``B * C``."""
    if x.shape[0] % channels:
        raise ValueError(f"batch of {x.shape[0]} is not a multiple of {channels} channels")
    return x.reshape(x.shape[0] // channels, channels, *x.shape[1:])


class LatentAutoencoder(nn.Module):
    """The base of lincae's model families (see the module docstring).

    Subclasses set ``family``, ``name`` and ``scale_factor`` and implement the abstract members.
    """

    family: str = "?"
    name: str
    scale_factor: float
    #: Run the network under autocast (see :attr:`precision`); families set both in ``__init__``.
    mixed_precision: bool = False
    autocast_dtype: torch.dtype | None = None

    # ----------------------------------------------------------------- description
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def sample_rate(self) -> int:
        """Audio rate in Hz."""
        raise NotImplementedError

    @property
    def latent_channels(self) -> int:
        """Values per latent frame."""
        raise NotImplementedError

    @property
    def hop_length(self) -> int:
        """Samples per latent frame."""
        raise NotImplementedError

    @property
    def streamable(self) -> bool:
        """Whether the model streams exactly (see the module docstring)."""
        return False

    @property
    def stream_delay(self) -> int:
        """Samples the stream lags the offline pass (streamable models)."""
        raise ValueError(f"model {self.name!r} is not streamable")

    def get_latent_size(self, audio_length: int) -> int:
        """Latent frames ``Z`` for ``audio_length`` samples (unchunked)."""
        raise NotImplementedError

    def get_decoded_size(self, latent_length: int) -> int:
        """Audio samples produced by decoding ``latent_length`` latent frames."""
        raise NotImplementedError

    def min_samples(self) -> int:
        """Shortest audio that yields one latent frame."""
        raise NotImplementedError

    def config_dict(self) -> dict[str, Any]:
        """Every constructor argument needed to rebuild this model (JSON-serialisable, with ``family``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- precision
    @property
    def precision(self) -> str:
        """The model's own precision request (:data:`lincae.models.precision.PRECISIONS`): ``fp32`` unless
        ``mixed_precision``; then ``mixed``, or ``bf16``/``fp16`` as ``autocast_dtype`` says."""
        return precision_of(self.mixed_precision, self.autocast_dtype)

    def auto_dtype(self, device: torch.device | str, streaming: bool = False) -> torch.dtype | None:
        """What a caller's ``precision: auto`` resolves to for this model on ``device`` (``None``: float32);
        ``streaming``: for the streamed step rather than whole windows. The common policy
        (:func:`~lincae.models.precision.autocast_dtype_for`) unless a family's fastest path is float32."""
        return autocast_dtype_for("auto", device)

    def network_dtype(self) -> torch.dtype | None:
        """The dtype the network runs in now, on this thread: the innermost :meth:`precision_scope`'s, else
        :attr:`precision` resolved for the model's device (:func:`~lincae.models.precision.autocast_dtype_for`).
        ``None``: float32."""
        for owner, dtype in reversed(_SCOPES.get()):
            if owner == id(self):
                return dtype
        return autocast_dtype_for(self.precision, self.device)

    @contextlib.contextmanager
    def precision_scope(self, dtype: torch.dtype | None) -> Iterator[None]:
        """Run this model's network in ``dtype`` (``None``: float32) inside the scope, whatever the model's own
        precision, on the calling thread only; the model's attributes stay as they are.

        For a caller that decides the precision (the engine): resolve it first with
        :func:`~lincae.models.precision.autocast_dtype_for`. Streams opened inside the scope are prepared
        for its dtype; their pushes run at the dtype of the scope they are made in.
        """
        if dtype is not None and dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"dtype must be torch.bfloat16, torch.float16 or None (float32), got {dtype!r}")
        token = _SCOPES.set((*_SCOPES.get(), (id(self), dtype)))
        try:
            yield
        finally:
            _SCOPES.reset(token)

    @contextlib.contextmanager
    def _network_context(self) -> Iterator[None]:
        """The autocast region every forward pass of the network runs in (:meth:`network_dtype`)."""
        with autocast(self.network_dtype(), self.device):
            yield

    # ----------------------------------------------------------------- streams
    def open_encoder_stream(self, batch: int, step_frames: int | None = None) -> EncoderStream:
        """An encoder stream for ``batch`` signals side by side (see the module docstring).

        ``step_frames``: the frames the caller will usually push at once, so that a model can prepare a
        fused step for that size (the output is the same for any push).
        """
        raise ValueError(f"model {self.name!r} is not streamable")

    def open_decoder_stream(
        self, batch: int, seed: int = 0, steps: int = 1, step_frames: int | None = None
    ) -> DecoderStream:
        """A decoder stream for ``batch`` signals (``seed``, ``steps``: a consistency decoder's noise and steps;
        ``step_frames`` as for :meth:`open_encoder_stream`)."""
        raise ValueError(f"model {self.name!r} is not streamable")

    # ----------------------------------------------------------------- audio
    def encode(self, x: Tensor, extract_features: bool = False, max_batch_size: int | None = None) -> Tensor:
        raise NotImplementedError

    def decode(self, z: Tensor, full_length: int | None = None, **kwargs: Any) -> Tensor:
        raise NotImplementedError

    def encode_channels(self, audio: Tensor, max_batch_size: int | None = None) -> Tensor:
        """Multichannel audio ``[B, C, T]`` → latents ``[B, C, latent_channels, Z]`` (each channel as mono)."""
        mono, c = fold_channels(audio)
        return unfold_channels(self.encode(mono, max_batch_size=max_batch_size), c)

    def decode_channels(self, z: Tensor, full_length: int | None = None, **kwargs: Any) -> Tensor:
        """Latents ``[B, C, latent_channels, Z]`` from :meth:`encode_channels` → audio ``[B, C, T]``.

        All channels are decoded with the same noise (``shared_noise``), so channels with equal latents
        (dual mono) stay equal and the stereo image is kept.
        """
        c = z.shape[1]
        flat = z.reshape(z.shape[0] * c, *z.shape[2:])
        kwargs.setdefault("shared_noise", True)
        return unfold_channels(self.decode(flat, full_length=full_length, **kwargs), c)

    # ----------------------------------------------------------------- files
    @classmethod
    def from_pretrained(
        cls, model_id: str | Path = registry.DEFAULT_MODEL_ALIAS, ckpt_type: str = "last", **kwargs: Any
    ) -> LatentAutoencoder:
        """Load a model of either family: an official id (``"m2l"``, ``"lin-cae"``, ``"lin-cae-2"``), a
        shipped model name, a local folder (official layout or ours) or a single file. See
        :mod:`lincae.models.registry`."""
        return registry.load_pretrained(model_id, LatentAutoencoder, ckpt_type=ckpt_type, **kwargs)

    def save_pretrained(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (format-versioned) into ``directory``."""
        return registry.save_pretrained(self, directory, metadata=metadata)


def load_model(model_id: str | Path = registry.DEFAULT_MODEL_ALIAS, **kwargs: Any) -> LatentAutoencoder:
    """:meth:`LatentAutoencoder.from_pretrained`: the model ``model_id`` names, of either family."""
    return LatentAutoencoder.from_pretrained(model_id, **kwargs)


__all__ = [
    "DecoderStream",
    "EncoderStream",
    "LatentAutoencoder",
    "check_audio",
    "fold_channels",
    "load_model",
    "unfold_channels",
]
