"""Reading and writing audio files through ``pedalboard.io.AudioFile``.

Reading: wav, flac, mp3, ogg (whatever pedalboard decodes), any rate and channel count, streamed in
blocks and resampled to the rate asked for. Writing: wav, flac, ogg, to a temporary file in the target
folder that is renamed into place only when complete, so a failed or interrupted write leaves no
partial file; an existing file is kept unless ``overwrite`` is set.

Audio is float32 ``(channels, samples)`` everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lincae.io.atomic import new_temp, publish
from lincae.io.integrity import find_truncation

READ_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
WRITE_SUFFIXES = (".wav", ".flac", ".ogg")


class AudioFileError(ValueError):
    """An audio file cannot be read or written; the message names the file and the problem."""


def _open(path: Path) -> Any:
    from pedalboard.io import AudioFile

    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: the file is empty")
    try:
        return AudioFile(str(path))
    except Exception as e:  # pedalboard raises ValueError/RuntimeError for unknown or corrupt data
        raise AudioFileError(f"{path}: not a readable audio file ({e})") from e


class AudioReader:
    """Stream a file in blocks at ``sample_rate`` (resampled if needed): ``(channels, n)`` float32.

    Raises :class:`AudioFileError` for missing, empty, corrupt or truncated files and for NaN/Inf samples.
    """

    def __init__(self, path: str | Path, sample_rate: int) -> None:
        self.path = Path(path)
        self._file = _open(self.path)
        self.source_rate = float(self._file.samplerate)
        self.channels = int(self._file.num_channels)
        resample = round(self.source_rate) != sample_rate
        self._reader = self._file.resampled_to(float(sample_rate)) if resample else self._file
        self.sample_rate = sample_rate
        self.frames = int(self._reader.frames)
        missing = find_truncation(self.path, self.source_rate)
        if missing is not None:  # pedalboard would read silence where the data is missing
            self.close()
            raise AudioFileError(f"{self.path}: truncated: {missing}")
        if self.frames == 0:
            self.close()
            raise AudioFileError(f"{self.path}: holds no audio samples")
        self.position = 0

    def seek(self, position: int) -> None:
        """Continue reading at sample ``position`` (at :attr:`sample_rate`)."""
        try:
            self._reader.seek(int(position))
        except Exception as e:
            raise AudioFileError(f"{self.path}: cannot seek to sample {position} ({e})") from e
        self.position = int(position)

    def read(self, n: int) -> np.ndarray:
        """Up to ``n`` samples ``(channels, m)``; ``m < n`` only at the end of the file."""
        try:
            block = np.asarray(self._reader.read(n), dtype=np.float32)
        except Exception as e:
            raise AudioFileError(
                f"{self.path}: decoding failed at sample {self.position} ({e}); the file is corrupt or truncated"
            ) from e
        if not np.isfinite(block).all():
            bad = int(self.position + np.argwhere(~np.isfinite(block))[0, 1])
            raise AudioFileError(f"{self.path}: NaN or Inf sample at {bad / self.sample_rate:.3f} s")
        self.position += block.shape[-1]
        return block

    def blocks(self, n: int) -> Iterator[np.ndarray]:
        while self.position < self.frames:
            block = self.read(n)
            if block.shape[-1] == 0:
                break
            yield block

    def close(self) -> None:
        if self._reader is not self._file:
            self._reader.close()
        self._file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The longest audio file a chain parameter may name (an impulse response is read whole).
MAX_PARAMETER_FILE_SECONDS = 600.0


def check_audio_file(path: str | Path, max_seconds: float = MAX_PARAMETER_FILE_SECONDS) -> None:
    """Check that ``path`` is whole, readable, finite audio of at most ``max_seconds``, reading it through.

    Raises:
        AudioFileError: missing, a folder, empty, not audio, truncated, NaN/Inf samples, or too long.
    """
    from pedalboard.io import AudioFile  # noqa: F401  (the error below names pedalboard's reason)

    p = Path(path)
    if p.exists() and not os.access(p, os.R_OK):
        raise AudioFileError(f"{p}: not readable (permission denied)")
    f = _open(p)
    rate = round(f.samplerate)
    f.close()
    with AudioReader(p, rate) as r:
        if r.frames > max_seconds * rate:
            raise AudioFileError(f"{p}: {r.frames / rate:.0f} s long; at most {max_seconds:.0f} s is read")
        for _ in r.blocks(1 << 16):
            pass


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Whole file at ``sample_rate``: ``(channels, samples)`` float32."""
    with AudioReader(path, sample_rate) as r:
        return r.read(r.frames + 1)


def read_mono(path: str | Path, sample_rate: int, start: int = 0, num_samples: int | None = None) -> np.ndarray:
    """``num_samples`` samples from ``start`` (default: to the end), channels averaged: ``(n,)`` float32.

    A crop that runs past the end is zero-padded to ``num_samples``.
    """
    with AudioReader(path, sample_rate) as r:
        if start:
            r.seek(start)
        block = r.read(r.frames - start if num_samples is None else num_samples)
    mono = block.mean(axis=0, dtype=np.float32) if block.shape[0] > 1 else block[0]
    if num_samples is None or mono.shape[0] == num_samples:
        return np.ascontiguousarray(mono, dtype=np.float32)
    out = np.zeros(num_samples, np.float32)
    out[: mono.shape[0]] = mono
    return out


def find_audio_files(root: str | Path, pattern: str | None = None) -> list[Path]:
    """Every readable-looking audio file below ``root`` (by suffix, case-insensitive; hidden files left out),
    sorted. ``pattern``: an ``fnmatch`` pattern the file *name* must match."""
    import fnmatch

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder {root} does not exist or is not a directory")
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in READ_SUFFIXES
        and p.is_file()
        and not p.name.startswith(".")
        and (pattern is None or fnmatch.fnmatch(p.name, pattern))
    )


def check_output_path(path: str | Path, overwrite: bool = False) -> Path:
    """Validate an output path before any work: suffix, existing file, writable folder."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_SUFFIXES:
        raise AudioFileError(
            f"{path}: cannot write {path.suffix or 'files without a suffix'}; use one of {', '.join(WRITE_SUFFIXES)}"
        )
    if path.exists() and not overwrite:
        raise AudioFileError(f"{path}: already exists (pass --overwrite to replace it)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AudioFileError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise AudioFileError(f"{path}: folder {folder} is not writable")
    return path


def _why(error: Exception, path: Path) -> str:
    """The writer's error, or that the disk is full (pedalboard only says it could not write)."""
    import shutil

    try:
        full = shutil.disk_usage(path.parent if str(path.parent) else ".").free < (1 << 20)
    except OSError:
        full = False
    return "No space left on device" if full else " ".join(str(error).split())


class AtomicAudioWriter:
    """Write blocks ``(channels, n)`` to a temporary file, renamed to ``path`` on a clean ``close``.

    On an exception inside the ``with`` block (or :meth:`abort`), the temporary file is removed and
    ``path`` is untouched.
    """

    def __init__(
        self, path: str | Path, sample_rate: int, channels: int, overwrite: bool = False, bit_depth: int = 32
    ) -> None:
        from pedalboard.io import AudioFile

        self.path = check_output_path(path, overwrite)
        self.tmp = new_temp(self.path, suffix=self.path.suffix)
        kwargs: dict[str, Any] = {"samplerate": sample_rate, "num_channels": channels}
        if self.path.suffix.lower() in (".wav", ".flac"):
            kwargs["bit_depth"] = bit_depth if self.path.suffix.lower() == ".wav" else min(bit_depth, 24)
        try:
            self._file = AudioFile(str(self.tmp), "w", **kwargs)
        except Exception as e:
            self.tmp.unlink(missing_ok=True)
            raise AudioFileError(f"{self.path}: cannot write ({e})") from e
        self.channels = channels
        self.written = 0

    def write(self, block: np.ndarray) -> None:
        if block.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {block.shape[0]}")
        try:
            self._file.write(np.ascontiguousarray(block, dtype=np.float32))
        except Exception as e:
            why = _why(e, self.path)  # before the temporary file is removed and frees the disk
            self.abort()
            raise AudioFileError(f"{self.path}: write failed ({why}); nothing was written") from e
        self.written += block.shape[-1]

    def close(self) -> Path:
        try:
            self._file.close()
            publish(self.tmp, self.path)
        except Exception as e:
            why = _why(e, self.path)
            self.abort()
            raise AudioFileError(f"{self.path}: could not finish writing ({why}); nothing was written") from e
        return self.path

    def abort(self) -> None:
        try:
            self._file.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicAudioWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, overwrite: bool = False) -> Path:
    """Write ``audio`` ``(channels, samples)`` atomically."""
    with AtomicAudioWriter(path, sample_rate, audio.shape[0], overwrite) as w:
        w.write(audio)
    return Path(path)


def resample(audio: np.ndarray, source_rate: float, target_rate: float) -> np.ndarray:
    """Band-limited resampling of ``(channels, samples)`` with pedalboard's resampler (whole signal)."""
    if round(source_rate) == round(target_rate):
        return audio
    from pedalboard import Resample  # noqa: F401  (ensures the extension is present)
    from pedalboard.io import StreamResampler

    r = StreamResampler(float(source_rate), float(target_rate), audio.shape[0])
    out = np.concatenate([r.process(np.ascontiguousarray(audio, dtype=np.float32)), r.process(None)], axis=-1)
    return out.astype(np.float32)
