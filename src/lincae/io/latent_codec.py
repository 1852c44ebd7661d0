"""``lincae encode`` and ``lincae decode`` in bounded memory: audio ⇄ latent file, chunk by chunk.

Encoding reads the audio one chunk window at a time and writes each chunk's latents into the latent
file at its place (:class:`LatentWriter` writes the safetensors layout itself, header first); decoding
reads the latent file's chunks lazily, decodes them, joins them with the same crossfaded overlap-add as
:meth:`Autoencoder.decode` and streams the audio (resampled on the fly) into the output file. Peak
memory depends on the chunk length and on how many chunks go through the model at once, not on the
length of the audio. With ``memory_mb``, that number comes from the budget: the model's pass over one
chunk is measured on a short probe (:func:`lincae.models.memory.fit_budget`), and as many chunks go
through at once as fit beside what the process already holds (``benchmarks/encode_decode_memory.py``).

The results equal the in-memory :func:`~lincae.io.latents.encode_file` / :func:`~lincae.io.latents.
decode_latents` (to float rounding): decoding draws its noise in the same order, batch by batch over
the chunks of channel 1, then channel 2, ...; so a multichannel decode keeps each finished channel in a
temporary raw file beside the output and interleaves them at the end. The noise is drawn for groups of
the model's ``max_batch_size`` chunks whatever the budget (the network then runs the group in pieces), so
the budget changes the memory, not the audio.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar, NoReturn

import numpy as np
import torch

from lincae.io.atomic import discard, new_temp, publish
from lincae.io.latents import (
    FORMAT,
    MAX_CHANNELS,
    MAX_CHUNK_SECONDS,
    LatentHeader,
    model_fingerprint,
    read_header,
)
from lincae.models.memory import MB, Budget, OverBudgetWarning, Pass, fit_budget
from lincae.models.runtime import release_freed_memory

if TYPE_CHECKING:
    from lincae.models.autoencoder import Autoencoder

Progress = Callable[[int, int], None]
_BLOCK = 1 << 16  # samples per write when interleaving channels / resampling


class LatentWriter:
    """Write a latent file of a known shape piece by piece: a temporary file renamed on :meth:`close`.

    The bytes are those ``safetensors.torch.save_file`` writes for the same tensor and metadata.
    """

    def __init__(self, path: Path, header: LatentHeader) -> None:
        self.path, self.header = path, header
        meta = header.metadata()
        nbytes = 4 * int(np.prod(header.shape))
        desc = {"dtype": "F32", "shape": list(header.shape), "data_offsets": [0, nbytes]}
        text = json.dumps({"__metadata__": meta, "latents": desc}, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        self.tmp = new_temp(path)
        self._file: IO[bytes] | None = open(self.tmp, "r+b")
        try:
            self._file.write(struct.pack("<Q", len(text)) + text)
            self._data = 8 + len(text)
            self._file.truncate(self._data + nbytes)
        except OSError as e:
            self._failed(e)
        except BaseException:
            self.abort()
            raise

    def write(self, channel: int, chunk: int, latents: torch.Tensor) -> None:
        """``latents[64, Z]`` of ``chunk`` (0 for unchunked latents) of ``channel``."""
        assert self._file is not None
        frame = int(np.prod(self.header.shape[-2:])) * 4
        chunks = self.header.shape[1] if self.header.chunked else 1
        try:
            self._file.seek(self._data + (channel * chunks + chunk) * frame)
            self._file.write(latents.detach().cpu().float().contiguous().numpy().tobytes())
        except OSError as e:
            self._failed(e)

    def close(self) -> Path:
        assert self._file is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            return publish(self.tmp, self.path)
        except OSError as e:
            self._failed(e)
        finally:
            self.abort()

    def _failed(self, e: OSError) -> NoReturn:
        self.abort()
        raise OSError(f"{self.path}: could not write ({e.strerror or e}); nothing was written") from None

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        discard(self.tmp)


def _windows(reader: object, channels: int, chunk_len: int, step: int, count: int) -> Iterator[np.ndarray]:
    """The ``count`` chunk windows ``(channels, chunk_len)`` of the reader's audio, zero-padded at the end.

    One buffer, allocated once, holds the window (each yield is a view of it, valid until the next):
    buffers that outlive the model's large activations and are reallocated between them would
    fragment the heap and grow the process batch after batch.
    """
    buf = np.zeros((channels, chunk_len), np.float32)
    filled = 0
    for k in range(count):
        while filled < chunk_len:
            block = reader.read(chunk_len - filled)  # type: ignore[attr-defined]
            if block.shape[-1] == 0:
                buf[:, filled:] = 0.0
                break
            buf[:, filled : filled + block.shape[-1]] = block
            filled += block.shape[-1]
        yield buf
        if k + 1 < count:
            buf[:, : chunk_len - step] = buf[:, step:]
            filled = max(0, filled - step)


def encode_to_file(
    model: Autoencoder,
    audio_path: str | Path,
    out: str | Path,
    chunk_seconds: float = 10.0,
    progress: Progress | None = None,
    memory_mb: float | None = None,
) -> LatentHeader:
    """Encode ``audio_path`` (each channel as mono) into the latent file ``out``, chunk by chunk.

    Audio longer than ``chunk_seconds`` becomes ``N`` overlapping chunks ``[channels, N, 64, Z]``, as
    :func:`~lincae.io.latents.encode_file` makes them; shorter audio is one ``[channels, 64, Z]``.
    ``memory_mb``: the process's peak resident memory to stay within (MB of 2**20 bytes), by passing fewer
    chunks through the model at once than its ``max_batch_size`` where needed (the same latents, to float
    rounding); ``None``: ``max_batch_size`` at once.
    """
    from lincae.io.audiofile import AudioReader

    if not 0 < chunk_seconds <= MAX_CHUNK_SECONDS:
        raise ValueError(f"--chunk-seconds must be in (0, {MAX_CHUNK_SECONDS:g}], got {chunk_seconds}")
    out = Path(out)
    chunk_len = int(chunk_seconds * model.sample_rate)
    model.max_chunk_size = chunk_len
    with AudioReader(audio_path, model.sample_rate) as reader:
        t, channels = reader.frames, reader.channels
        if channels > MAX_CHANNELS:
            raise ValueError(f"{audio_path}: {channels} channels; latent files hold at most {MAX_CHANNELS}")
        if t < model.min_samples():
            raise ValueError(
                f"{audio_path}: too short to encode ({t} samples; the model needs at least {model.min_samples()})"
            )
        fields = dict(
            model=model.name,
            model_fingerprint=model_fingerprint(model),
            sample_rate=model.sample_rate,
            length=t,
            source_sample_rate=round(reader.source_rate),
            hop_length=model.hop_length,
            scale_factor=model.scale_factor,
            overlap_percentage=model.overlap_percentage,
        )
        if t <= chunk_len:
            audio = reader.read(t + 1)
            items = _items_per_pass(model, t, "encode", memory_mb, model.max_batch_size)
            z = model.encode(torch.from_numpy(audio), max_batch_size=items)
            header = LatentHeader(shape=tuple(z.shape), max_chunk_size=0, **fields)  # type: ignore[arg-type]
            writer = LatentWriter(out, header)
            try:
                for c in range(channels):
                    writer.write(c, 0, z[c])
                writer.close()
            finally:
                writer.abort()
            return header
        chunk_len, step = model._chunk_geometry()
        count = (t + (step - (t - chunk_len) % step) % step - chunk_len) // step + 1
        z_frames = model.get_latent_size(chunk_len)
        header = LatentHeader(
            shape=(channels, count, model.latent_channels, z_frames),
            max_chunk_size=chunk_len,
            **fields,  # type: ignore[arg-type]
        )
        per_batch = max(1, model.max_batch_size // channels)
        items = _items_per_pass(model, chunk_len, "encode", memory_mb, per_batch * channels)
        writer = LatentWriter(out, header)
        try:
            windows = _windows(reader, channels, chunk_len, step, count)
            k = 0
            while k < count:
                group = [next(windows).copy() for _ in range(min(per_batch, count - k))]
                x = torch.from_numpy(np.stack(group, axis=1).reshape(channels * len(group), chunk_len))
                model.max_chunk_size = None  # each window is one chunk
                try:
                    z = model.encode(x, max_batch_size=items).reshape(channels, len(group), model.latent_channels, -1)
                finally:
                    model.max_chunk_size = chunk_len
                if z.shape[-1] != z_frames:  # the file's layout was fixed from the model's formula
                    raise RuntimeError(f"the model gave {z.shape[-1]} latent frames per chunk, not {z_frames}")
                for c in range(channels):
                    for j in range(len(group)):
                        writer.write(c, k + j, z[c, j])
                k += len(group)
                release_freed_memory()
                if progress is not None:
                    progress(min(k * step, t), t)
            writer.close()
        finally:
            writer.abort()
    return header


def _items_per_pass(model: Autoencoder, samples: int, what: Pass, memory_mb: float | None, most: int) -> int:
    """Signals of ``samples`` samples per model call within ``memory_mb`` (at most ``most``; ``most`` without one).

    Warns (once per job) when a single one needs more than the budget leaves: it then goes through alone.
    """
    if memory_mb is None:
        return most
    budget: Budget = fit_budget(model, samples, what, int(memory_mb * MB), most)
    if not budget.fits:
        seconds = samples / model.sample_rate
        hint = "shorter chunks need less" if what == "encode" else "the chunk length was chosen when encoding"
        warnings.warn(
            f"{what} of one {seconds:.3g} s chunk with model {model.name!r} needs about "
            f"{budget.item_bytes / MB:.0f} MB, more than the {max(0, budget.free_bytes) // MB} MB that a budget of "
            f"{memory_mb:g} MB leaves beside what is already in use: it goes through alone, over budget ({hint})",
            OverBudgetWarning,
            stacklevel=3,
        )
    return budget.items


def _check_for_model(header: LatentHeader, model: Autoencoder, force: bool, where: str) -> None:
    if header.model_fingerprint != model_fingerprint(model) and not force:
        raise ValueError(
            f"these latents were made by model {header.model!r} (fingerprint {header.model_fingerprint}); "
            f"{model.name!r} has fingerprint {model_fingerprint(model)}: pass the same model (or --force)"
        )
    if header.shape[-2] != model.latent_channels:
        raise ValueError(f"{where}: latents have {header.shape[-2]} channels, the model uses {model.latent_channels}")
    if header.sample_rate != model.sample_rate or header.hop_length != model.hop_length:
        raise ValueError(
            f"{where}: metadata fields 'sample_rate' = {header.sample_rate} and 'hop_length' = "
            f"{header.hop_length} do not match the model's {model.sample_rate} and {model.hop_length}"
        )
    if header.chunked and header.shape[-1] != model.get_latent_size(header.max_chunk_size):
        raise ValueError(
            f"{where}: metadata field 'max_chunk_size' = {header.max_chunk_size} gives chunks of "
            f"{model.get_latent_size(header.max_chunk_size)} latent frames, the file's have {header.shape[-1]}"
        )
    most = model.get_decoded_size(header.shape[-1]) + model.hop_length
    if not header.chunked and header.length > most:
        raise ValueError(
            f"{where}: metadata field 'length' = {header.length} is longer than {header.shape[-1]} latent "
            f"frames cover ({most} samples)"
        )


class _OverlapAdd:
    """Join decoded chunks ``(L,)`` at ``k * step`` with the crossfades of ``overlap_add_crossfade``.

    The sum is kept in one buffer of ``L`` samples starting at chunk ``k``'s first sample, allocated
    once (see :func:`_windows` on why).
    """

    def __init__(self, length: int, step: int, count: int) -> None:
        if not 0 < step <= length:
            raise ValueError(f"chunks of {length} samples cannot step by {step}")
        self.step, self.count, self.length = step, count, length
        self.overlap = length - step
        self.fade = torch.linspace(0.0, 1.0, self.overlap).numpy() if self.overlap > 0 else None
        self.acc = np.zeros(length, np.float32)

    def add(self, k: int, chunk: np.ndarray) -> np.ndarray:
        """Add chunk ``k`` (in order); returns (a copy of) the samples that no later chunk changes."""
        faded = chunk.astype(np.float32, copy=True)
        if self.fade is not None and self.count > 1:
            if k > 0:
                faded[: self.overlap] *= self.fade
            if k < self.count - 1:
                faded[-self.overlap :] *= 1.0 - self.fade
        self.acc[: faded.shape[-1]] += faded
        if k + 1 == self.count:
            return self.acc.copy()
        out = self.acc[: self.step].copy()
        self.acc[: self.overlap] = self.acc[self.step :]
        self.acc[self.overlap :] = 0.0
        return out


def decode_to_file(
    model: Autoencoder,
    latent_path: str | Path,
    out: str | Path,
    rate: int | None = None,
    seed: int = 0,
    force: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    memory_mb: float | None = None,
) -> tuple[LatentHeader, int]:
    """Decode the latent file into the audio file ``out`` at ``rate`` (default: the original file's).

    ``memory_mb`` as for :func:`encode_to_file` (the same audio whatever it is: the noise is drawn for the
    model's ``max_batch_size`` chunks at a time either way). Returns the header and the rate written.
    """
    from lincae.io.audiofile import AtomicAudioWriter, check_output_path
    from lincae.io.latents import MAX_RATE, MIN_RATE

    check_output_path(out, overwrite)
    header = read_header(latent_path)
    _check_for_model(header, model, force, str(latent_path))
    rate = rate or header.source_sample_rate
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"--rate {rate}: must be in [{MIN_RATE}, {MAX_RATE}] Hz")
    channels, length = header.channels, header.length
    generator = torch.Generator().manual_seed(seed)
    with _LatentReader(Path(latent_path), header) as latents:
        with AtomicAudioWriter(out, rate, channels, overwrite=overwrite) as writer:
            sink = _Resampling(writer, header.sample_rate, rate)
            if not header.chunked:
                z = torch.stack([latents.read(c, 0) for c in range(channels)])
                batch = model.max_batch_size
                items = _items_per_pass(model, length, "decode", memory_mb, batch)
                audio = model.decode(z, full_length=length, generator=generator, **_pieces(model, items, batch))
                sink.write(audio.numpy())
            else:
                items = _items_per_pass(model, header.chunk_geometry()[0], "decode", memory_mb, model.max_batch_size)
                _decode_chunks(model, latents, header, generator, sink, Path(out), progress, items)
            sink.finish()
    return header, rate


class _LatentReader:
    """Read ``latents[c, k]`` (or ``latents[c]`` unchunked) with plain file reads at their offsets.

    Not through a memory map: pages of a mapped file that were read count in the process's RSS until
    unmapped, so a long file would grow it by its own size.
    """

    _SIZES: ClassVar[dict[str, tuple[int, torch.dtype]]] = {
        "F32": (4, torch.float32),
        "F16": (2, torch.float16),
        "BF16": (2, torch.bfloat16),
    }

    def __init__(self, path: Path, header: LatentHeader) -> None:
        self.path, self.header = path, header
        self._file = open(path, "rb")
        try:
            n = struct.unpack("<Q", self._file.read(8))[0]
            desc = json.loads(self._file.read(n))["latents"]
            self.itemsize, self.dtype = self._SIZES[desc["dtype"]]
            begin, end = (int(v) for v in desc["data_offsets"])
        except (struct.error, ValueError, KeyError, TypeError) as e:
            self._file.close()
            raise ValueError(f"{path}: not a readable latent file ({e})") from None
        self.frame = int(np.prod(header.shape[-2:]))
        if end - begin != self.frame * int(np.prod(header.shape[:-2])) * self.itemsize:
            self._file.close()
            raise ValueError(f"{path}: invalid latent file: 'latents' data does not match its shape")
        self.base = 8 + n + begin
        self.chunks = header.shape[1] if header.chunked else 1

    def read(self, channel: int, chunk: int) -> torch.Tensor:
        """``[64, Z]`` float32; NaN/Inf values are refused."""
        self._file.seek(self.base + (channel * self.chunks + chunk) * self.frame * self.itemsize)
        data = bytearray(self._file.read(self.frame * self.itemsize))
        z = torch.frombuffer(data, dtype=self.dtype).reshape(self.header.shape[-2:]).float()
        if not torch.isfinite(z).all():
            where = f"channel {channel + 1}" + (f", chunk {chunk}" if self.header.chunked else "")
            raise ValueError(f"{self.path}: invalid latent file: 'latents' holds NaN or Inf values ({where})")
        return z

    def __enter__(self) -> _LatentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def _pieces(model: Autoencoder, items: int, batch: int) -> dict[str, int]:
    """``decode`` arguments that run ``items`` signals at a time with the noise of groups of ``batch``."""
    if items >= batch or getattr(model, "family", None) != "unet":  # FrameNet decodes draw no noise
        return {"max_batch_size": batch}
    return {"max_batch_size": items, "noise_batch_size": batch}


def _decode_chunks(
    model: Autoencoder,
    latents: _LatentReader,
    header: LatentHeader,
    generator: torch.Generator,
    sink: _Resampling,
    out: Path,
    progress: Progress | None,
    per_pass: int,
) -> None:
    """Decode ``[C, N, 64, Z]`` in today's batch order (channel-major), streaming each channel's audio;
    ``per_pass`` chunks through the network at a time (the noise of ``max_batch_size`` at a time)."""
    channels, count = header.shape[0], header.shape[1]
    chunk_len, step = header.chunk_geometry()
    batch = model.max_batch_size
    total = channels * count
    spill = new_temp(out, suffix=".raw") if channels > 1 else None
    try:
        raw = open(spill, "r+b") if spill is not None else None
        try:
            joins = [_OverlapAdd(chunk_len, step, count) for _ in range(channels)]
            written = [0] * channels
            for lo in range(0, total, batch):
                items = [(i // count, i % count) for i in range(lo, min(lo + batch, total))]
                z = torch.stack([latents.read(c, k) for c, k in items])
                decoded = model.decode(z, generator=generator, **_pieces(model, per_pass, batch))
                decoded = decoded[..., :chunk_len].numpy()
                for (c, k), chunk in zip(items, decoded, strict=True):
                    ready = joins[c].add(k, chunk)[: max(0, header.length - written[c])]
                    if raw is None:
                        sink.write(ready[None])
                    else:
                        raw.seek(4 * (c * header.length + written[c]))
                        raw.write(ready.tobytes())
                    written[c] += ready.shape[-1]
                release_freed_memory()  # between batches: flat peak memory through long files
                if progress is not None:
                    progress(min(lo + batch, total), total)
            if raw is not None:
                raw.flush()
                for start in range(0, header.length, _BLOCK):
                    n = min(_BLOCK, header.length - start)
                    block = np.empty((channels, n), np.float32)
                    for c in range(channels):
                        raw.seek(4 * (c * header.length + start))
                        block[c] = np.frombuffer(raw.read(4 * n), np.float32)
                    sink.write(block)
        finally:
            if raw is not None:
                raw.close()
    finally:
        if spill is not None:
            discard(spill)


class _Resampling:
    """Feed blocks ``(channels, n)`` to a writer, resampled from ``source`` to ``target`` Hz on the way."""

    def __init__(self, writer: object, source: int, target: int) -> None:
        self.writer = writer
        self.resampler = None
        if source != target:
            from pedalboard.io import StreamResampler

            self.resampler = StreamResampler(float(source), float(target), writer.channels)  # type: ignore[attr-defined]

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.float32)
        if self.resampler is not None:
            block = self.resampler.process(block)
        if block.shape[-1]:
            self.writer.write(block)  # type: ignore[attr-defined]

    def finish(self) -> None:
        if self.resampler is not None:
            tail = self.resampler.process(None)
            if tail.shape[-1]:
                self.writer.write(np.asarray(tail, np.float32))  # type: ignore[attr-defined]


__all__ = ["FORMAT", "LatentWriter", "decode_to_file", "encode_to_file"]
