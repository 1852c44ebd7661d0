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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lincae.io.atomic import write_atomically

if TYPE_CHECKING:
    from lincae.models.autoencoder import Autoencoder

FORMAT = "lincae.latents"
VERSION = 1


def model_fingerprint(model: Autoencoder) -> str:
    """Short hash of what makes latents compatible: architecture, frontend, scale factor."""
    cfg = model.config_dict()
    key = {k: cfg[k] for k in ("frontend", "generator", "scale_factor")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LatentFile:
    latents: torch.Tensor
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
        return int(self.latents.shape[0])

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


def save_latents(path: str | Path, lf: LatentFile, overwrite: bool = False) -> Path:
    """Write atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass --overwrite to replace it)")
    latents = {"latents": lf.latents.detach().cpu().contiguous().float()}
    return write_atomically(path, lambda tmp: save_file(latents, str(tmp), metadata=lf.metadata()))


def load_latents(path: str | Path) -> LatentFile:
    """Read and validate a latent file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such latent file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            latents = f.get_tensor("latents") if "latents" in f.keys() else None
    except Exception as e:
        raise ValueError(f"{path}: not a readable latent file (corrupt or truncated): {e}") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a lincae latent file (format {meta.get('format')!r})")
    version = meta.get("format_version", "?")
    if version != str(VERSION):
        raise ValueError(f"{path}: latent format version {version} not supported (this lincae reads {VERSION})")
    if latents is None or latents.dim() not in (3, 4):
        raise ValueError(f"{path}: missing or malformed 'latents' tensor")
    try:
        return LatentFile(
            latents=latents,
            model=meta["model"],
            model_fingerprint=meta["model_fingerprint"],
            sample_rate=int(meta["sample_rate"]),
            length=int(meta["length"]),
            source_sample_rate=int(meta["source_sample_rate"]),
            hop_length=int(meta["hop_length"]),
            scale_factor=float(meta["scale_factor"]),
            max_chunk_size=int(meta["max_chunk_size"]),
            overlap_percentage=float(meta["overlap_percentage"]),
        )
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: latent file metadata is incomplete or invalid ({e})") from e


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
    return LatentFile(
        latents=z,
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
