"""Latent files: a model's latents of an audio file, for latent arithmetic in Python or other tools.

Format (``.latent``, version 1): a safetensors file with one tensor ``latents``, float32
``[channels, 64, Z]`` (or ``[channels, N, 64, Z]`` when the audio was encoded in ``N`` overlapping
chunks), and string metadata:

=====================  =====================================================================
``format``             ``lincae.latents``
``format_version``     ``1``
``model``              model name; ``model_fingerprint``: hash of its configuration
``sample_rate``        the model's rate (Hz); ``length``: samples at that rate
``source_sample_rate`` the original file's rate (decode writes it back at this rate by default)
``hop_length``         samples per latent frame; ``scale_factor``: the model's latent scale
``max_chunk_size``     chunk length in samples (``0``: not chunked); ``overlap_percentage``
=====================  =====================================================================

Load it anywhere with ``safetensors.torch.load_file(path)["latents"]``; latents add and scale like
the audio they encode (that is the point of Lin-CAE).

A latent file is untrusted input: :func:`read_header` checks every metadata field (rates within
``MIN_RATE``–``MAX_RATE``, a length, chunk size, overlap and hop that agree with the tensor's shape; at
most ``MAX_CHANNELS`` channels and ``MAX_CHUNK_SECONDS`` decoded in one piece) and names the field that
is wrong; the decoder (:mod:`lincae.io.latent_codec`) checks the rest against the model and refuses
NaN/Inf latents. ``lincae encode``/``decode`` stream through :mod:`lincae.io.latent_codec`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lincae.io.atomic import write_atomically
from lincae.models.config import FrontendConfig

if TYPE_CHECKING:
    from lincae.models.autoencoder import Autoencoder

FORMAT = "lincae.latents"
VERSION = 1


def model_fingerprint(model: Autoencoder) -> str:
    """Short hash of what makes latents compatible: architecture, frontend, scale factor."""
    cfg = model.config_dict()
    key = {k: cfg[k] for k in ("frontend", "generator", "scale_factor")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


#: Bounds on what a latent file may declare (it is untrusted input): rates in Hz, a chunk or an
#: unchunked latent of at most MAX_CHUNK_SECONDS of audio (what one decode step allocates), channels.
MIN_RATE, MAX_RATE = 1000, 768_000
MAX_CHUNK_SECONDS = 300.0
MAX_CHANNELS = 64
#: How far past ``frames * hop`` samples an unchunked latent file's ``length`` may reach, in hops, when the
#: model is not known (the model's own geometry is checked in :mod:`lincae.io.latent_codec`). Encoding gives
#: ``frames`` frames for audio up to the decoded size of ``frames`` frames plus a hop less one sample; that
#: decoded size is ``frames * hop`` plus at most the FFT window (``n_fft_factor`` ≤ 16 STFT hops, and an
#: STFT hop is at most a latent hop), or less (a frame model decodes ``frames * hop - 128`` samples).
MAX_FFT_HOPS = int(FrontendConfig.LIMITS["n_fft_factor"][1])
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


@dataclass(frozen=True)
class LatentHeader:
    """A latent file's metadata and the shape of its ``latents`` tensor, validated (no tensor read).

    ``shape`` is ``(channels, 64, Z)`` or chunked ``(channels, N, 64, Z)``.
    """

    shape: tuple[int, ...]
    model: str
    model_fingerprint: str
    sample_rate: int
    length: int
    source_sample_rate: int
    hop_length: int
    scale_factor: float
    max_chunk_size: int
    overlap_percentage: float

    @property
    def channels(self) -> int:
        return int(self.shape[0])

    @property
    def chunked(self) -> bool:
        return len(self.shape) == 4

    def chunk_geometry(self) -> tuple[int, int]:
        """(chunk length, step) in samples at :attr:`sample_rate`, as the model computes them."""
        overlap = int(self.max_chunk_size * self.overlap_percentage)
        return self.max_chunk_size, self.max_chunk_size - overlap

    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "format_version": str(VERSION),
            "model": self.model,
            "model_fingerprint": self.model_fingerprint,
            "sample_rate": str(self.sample_rate),
            "length": str(self.length),
            "source_sample_rate": str(self.source_sample_rate),
            "hop_length": str(self.hop_length),
            "scale_factor": repr(self.scale_factor),
            "max_chunk_size": str(self.max_chunk_size),
            "overlap_percentage": repr(self.overlap_percentage),
        }


@dataclass(frozen=True)
class LatentFile(LatentHeader):
    """A latent file held in memory: its header plus ``latents`` (float32, of shape :attr:`shape`)."""

    latents: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    @classmethod
    def of(cls, latents: torch.Tensor, **fields: object) -> LatentFile:
        return cls(shape=tuple(latents.shape), latents=latents, **fields)  # type: ignore[arg-type]


def save_latents(path: str | Path, lf: LatentFile, overwrite: bool = False) -> Path:
    """Write atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass --overwrite to replace it)")
    latents = {"latents": lf.latents.detach().cpu().contiguous().float()}
    return write_atomically(path, lambda tmp: save_file(latents, str(tmp), metadata=lf.metadata()))


def _field(meta: dict[str, str], name: str, kind: type, lo: float, hi: float) -> Any:
    """Metadata field ``name`` parsed as ``kind`` and within ``[lo, hi]``, else a ValueError naming it."""
    raw = meta.get(name)
    if raw is None:
        raise ValueError(f"metadata field {name!r} is missing")
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(
            f"metadata field {name!r} = {raw[:40]!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"metadata field {name!r} = {raw[:40]!r} is outside [{lo:g}, {hi:g}]")
    return value


def validate_header(meta: dict[str, str], shape: tuple[int, ...], dtype: str) -> LatentHeader:
    """Check every field of a latent file's metadata against the others and the tensor's shape.

    Raises:
        ValueError: naming the field and what is wrong with it.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"'latents' has dtype {dtype}; expected one of {', '.join(_DTYPES)}")
    if len(shape) not in (3, 4) or any(d < 1 for d in shape):
        raise ValueError(f"'latents' has shape {list(shape)}; expected [channels, 64, Z] or [channels, N, 64, Z]")
    if shape[0] > MAX_CHANNELS:
        raise ValueError(f"'latents' has {shape[0]} channels; at most {MAX_CHANNELS} are read")
    for name in ("model", "model_fingerprint"):
        if not isinstance(meta.get(name), str) or len(meta[name]) > 200:
            raise ValueError(f"metadata field {name!r} is missing or longer than 200 characters")
    rate = _field(meta, "sample_rate", int, MIN_RATE, MAX_RATE)
    source_rate = _field(meta, "source_sample_rate", int, MIN_RATE, MAX_RATE)
    hop = _field(meta, "hop_length", int, 1, 1 << 16)
    scale = _field(meta, "scale_factor", float, 1e-6, 1e6)
    cap = int(MAX_CHUNK_SECONDS * rate)
    chunk = _field(meta, "max_chunk_size", int, 0, cap)
    overlap = _field(meta, "overlap_percentage", float, 0.0, 0.99)
    frames = shape[-1]
    if len(shape) == 3:
        if chunk != 0:
            raise ValueError(f"metadata field 'max_chunk_size' = {chunk} but the latents are not chunked (0 expected)")
        if frames * hop > cap + hop:
            raise ValueError(f"'latents' holds {frames} frames, over {MAX_CHUNK_SECONDS:g} s unchunked; not decoded")
        most = (frames + MAX_FFT_HOPS + 1) * hop  # what encode can write: see MAX_FFT_HOPS
    else:
        if chunk < hop:
            raise ValueError(f"metadata field 'max_chunk_size' = {chunk}: chunked latents need a chunk of >= {hop}")
        step = chunk - int(chunk * overlap)
        if frames * hop > chunk + 2 * hop:  # (the model checks the exact count)
            raise ValueError(
                f"metadata fields 'max_chunk_size' = {chunk} and 'hop_length' = {hop} do not match chunks of "
                f"{frames} latent frames"
            )
        most = step * (shape[1] - 1) + chunk
    length = _field(meta, "length", int, 1, most)
    if len(shape) == 4:
        least = step * (shape[1] - 2) + chunk + 1 if shape[1] > 1 else 1
        if length < least:
            raise ValueError(f"metadata field 'length' = {length} is too short for {shape[1]} chunks (>= {least})")
    return LatentHeader(
        shape=tuple(shape),
        model=meta["model"],
        model_fingerprint=meta["model_fingerprint"],
        sample_rate=rate,
        length=length,
        source_sample_rate=source_rate,
        hop_length=hop,
        scale_factor=scale,
        max_chunk_size=chunk,
        overlap_percentage=overlap,
    )


def read_header(path: str | Path) -> LatentHeader:
    """Read and validate a latent file's metadata and tensor shape, without reading the tensor."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such latent file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            if meta.get("format") == FORMAT and "latents" in f.keys():
                sl = f.get_slice("latents")
                shape, dtype = tuple(sl.get_shape()), str(sl.get_dtype())
            else:
                shape, dtype = (), ""
    except Exception as e:
        raise ValueError(f"{path}: not a readable latent file (corrupt or truncated): {e}") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a lincae latent file (format {meta.get('format')!r})")
    version = meta.get("format_version", "?")
    if version != str(VERSION):
        raise ValueError(f"{path}: latent format version {version[:20]} not supported (this lincae reads {VERSION})")
    if not shape:
        raise ValueError(f"{path}: missing 'latents' tensor")
    try:
        return validate_header(meta, shape, dtype)
    except ValueError as e:
        raise ValueError(f"{path}: invalid latent file: {e}") from None


def load_latents(path: str | Path) -> LatentFile:
    """Read and validate a latent file, tensor included (NaN/Inf values are refused)."""
    from safetensors import safe_open

    header = read_header(path)
    with safe_open(str(path), framework="pt") as f:
        latents = f.get_tensor("latents").float()
    if not torch.isfinite(latents).all():
        raise ValueError(f"{path}: invalid latent file: 'latents' holds NaN or Inf values")
    return LatentFile(**{k: getattr(header, k) for k in header.__dataclass_fields__}, latents=latents)


def encode_file(model: Autoencoder, audio_path: str | Path, chunk_seconds: float = 10.0) -> LatentFile:
    """Encode an audio file (each channel as mono; chunked when longer than ``chunk_seconds``)."""
    from lincae.io.audiofile import AudioReader

    with AudioReader(audio_path, model.sample_rate) as reader:
        source_rate = round(reader.source_rate)
        audio = reader.read(reader.frames + 1)
    if audio.shape[-1] < model.min_samples():
        raise ValueError(
            f"{audio_path}: too short to encode ({audio.shape[-1]} samples; "
            f"the model needs at least {model.min_samples()})"
        )
    model.max_chunk_size = int(chunk_seconds * model.sample_rate)
    z = model.encode(torch.from_numpy(audio))
    return LatentFile.of(
        z,
        model=model.name,
        model_fingerprint=model_fingerprint(model),
        sample_rate=model.sample_rate,
        length=audio.shape[-1],
        source_sample_rate=source_rate,
        hop_length=model.hop_length,
        scale_factor=model.scale_factor,
        max_chunk_size=model.max_chunk_size if z.dim() == 4 else 0,
        overlap_percentage=model.overlap_percentage,
    )


def decode_latents(model: Autoencoder, lf: LatentFile, seed: int = 0, force: bool = False) -> torch.Tensor:
    """Decode a latent file → audio ``[channels, length]`` at the model's rate."""
    if lf.model_fingerprint != model_fingerprint(model) and not force:
        raise ValueError(
            f"these latents were made by model {lf.model!r} (fingerprint {lf.model_fingerprint}); "
            f"{model.name!r} has fingerprint {model_fingerprint(model)}: pass the same model "
            "(or --force)"
        )
    if lf.latents.dim() == 4:
        model.max_chunk_size = lf.max_chunk_size
        model.overlap_percentage = lf.overlap_percentage
    return model.decode(lf.latents, full_length=lf.length, seed=seed)
