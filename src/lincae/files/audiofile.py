"""Reading and writing audio files through ``pedalboard.io.AudioFile``.

Reading: wav, flac, mp3, ogg (whatever pedalboard decodes), any rate and channel count, streamed in
blocks and resampled to the rate asked for. Writing: wav, flac, ogg, to a temporary file in the target
folder that is renamed into place only when complete, so a failed or interrupted write leaves no
partial file; an existing file is kept unless ``overwrite`` is set.

Audio is float32 ``(channels, samples)`` everywhere.

An input file is checked when it is opened, before any work: its suffix must be one of
:data:`READ_SUFFIXES` and its content the container that suffix says (:func:`sniff_container`: a
``.wav`` holding anything but RIFF/RIFX/RF64/W64 WAVE data is refused, whatever the decoder would make
of it), and its declared rate must lie within
:data:`MIN_FILE_RATE`–:data:`MAX_FILE_RATE` (a header claiming 1 Hz would make seconds of data hours of
resampling).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lincae.files.atomic import new_temp, publish
from lincae.files.integrity import find_truncation

#: The container each suffix lincae reads promises (what :func:`sniff_container` must find in the file).
SUFFIX_CONTAINERS = {".wav": "WAV", ".flac": "FLAC", ".mp3": "MP3", ".ogg": "Ogg", ".aiff": "AIFF", ".aif": "AIFF"}
READ_SUFFIXES = tuple(SUFFIX_CONTAINERS)
WRITE_SUFFIXES = (".wav", ".flac", ".ogg")
#: The sample rates (Hz) an input file may declare.
MIN_FILE_RATE, MAX_FILE_RATE = 8000, 384_000
_W64 = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # Sony Wave64: the GUID of its "riff" chunk


class AudioFileError(ValueError):
    """An audio file cannot be read or written; the message names the file and the problem."""


def _mpeg_frame(head: bytes) -> bool:
    """Whether ``head`` starts with an MPEG audio frame header (sync, and no reserved field)."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    return version != 1 and layer != 0 and head[2] >> 4 != 15 and (head[2] >> 2) & 3 != 3


def sniff_container(path: str | os.PathLike[str]) -> str | None:
    """The container ``path``'s first bytes announce: ``"WAV"``, ``"AIFF"``, ``"FLAC"``, ``"Ogg"``,
    ``"MP3"`` (an ID3v2 tag or an MPEG frame), ``"MP4"``; ``None`` for anything else."""
    with open(path, "rb") as f:
        head = f.read(16)
        if head[:3] == b"ID3" and len(head) >= 10:  # ID3v2 tag: MP3, or a FLAC file with a tag in front
            size = 10 + (10 if head[5] & 0x10 else 0)
            size += (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
            f.seek(size)
            return "FLAC" if f.read(4) == b"fLaC" else "MP3"
    if (head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE") or head[:16] == _W64:
        return "WAV"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[4:8] == b"ftyp":
        return "MP4"
    return "MP3" if _mpeg_frame(head) else None


def _looks_like(path: Path) -> str:
    """What a file that is no known container holds, in a few words (for error messages)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.strip(b"\0"):
        return "zero bytes"
    text = head.decode("utf-8", "ignore")  # (a character cut at the end is dropped)
    if len(text.encode()) >= len(head) - 3 and all(c.isprintable() or c in "\t\r\n" for c in text):
        first_line = text.splitlines()[0] if text.strip() else text
        return f"text ({first_line[:24]!r}...)"
    return f"unknown data (starting {head[:4].hex(' ')})"


def _check_container(path: Path) -> None:
    """Refuse a file whose suffix is not one lincae reads, or whose content is not the container its
    suffix says (pedalboard's decoders would take random bytes that start like an MPEG frame for MP3)."""
    expected = SUFFIX_CONTAINERS.get(path.suffix.lower())
    found = sniff_container(path)
    if found is not None and found == expected:
        return
    what = f"{found} data" if found else _looks_like(path)
    if expected is None:
        named = f"named {path.suffix}" if path.suffix else "named without a suffix"
        raise AudioFileError(
            f"{path}: not a readable audio file: {named} (lincae reads {', '.join(READ_SUFFIXES)}, by their "
            f"suffix), and it holds {what}"
        )
    raise AudioFileError(f"{path}: not a readable audio file: named {path.suffix}, but it holds {what}, not {expected}")


def _open(path: Path) -> Any:
    from pedalboard.io import AudioFile

    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: the file is empty")
    _check_container(path)
    try:
        f = AudioFile(str(path))
    except Exception as e:  # pedalboard raises ValueError/RuntimeError for unknown or corrupt data
        raise AudioFileError(f"{path}: not a readable audio file ({e})") from e
    rate = float(f.samplerate)
    if not MIN_FILE_RATE <= rate <= MAX_FILE_RATE:
        f.close()
        raise AudioFileError(
            f"{path}: sample rate {rate:.10g} Hz is outside {MIN_FILE_RATE}–{MAX_FILE_RATE} Hz; not read"
        )
    return f


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
