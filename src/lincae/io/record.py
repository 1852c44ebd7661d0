"""Recording a live session to disk: the audio thread hands blocks to a preallocated ring, a writer thread
writes them out.

:class:`Recorder` is fed from the audio callback (:meth:`Recorder.feed`: a copy into a
:class:`~lincae.engine.ringbuffer.RingBuffer` allocated up front; it never blocks, allocates or touches
the disk). Its writer thread drains the ring every few tens of milliseconds into a float32 WAV file
(the samples exactly as played, at the device rate) and rewrites the header's sizes every second, so
the file on disk is a valid WAV of everything up to the last second whatever happens to the process.
A ``.flac`` recording is written the same way into ``OUT.flac.partial.wav`` and encoded to FLAC (24-bit
integer samples) when the recording stops; the FLAC file appears under its name only when complete,
and if the process dies first the partial WAV is still a valid file. 24-bit integers end at 0 dBFS:
samples beyond it are clipped in the FLAC (the WAV keeps them, being float). The writer counts them
(:attr:`Recorder.clipped`, :attr:`Recorder.peak`) so that the status line and the end of the recording
say so (:meth:`Recorder.clip_note`).

Time is kept: :meth:`Recorder.add_silence`, called by the producer where the audio stopped (a device
or JACK server that went away and came back), has the writer put that many frames of silence at that
point of the take, so a take and the inputs recorded beside it stay aligned with the clock.

When a process must end at once (a stop that takes too long), :meth:`Recorder.salvage` leaves what is
on disk a valid WAV file without waiting for a writer that is stuck.

A write that fails (a full disk, a file-size limit) stops the recording with a one-line message in
:attr:`Recorder.error`; the audio goes on. What reached the disk is kept as a valid WAV file (its header
rewritten for the frames the file holds; for a ``.flac`` recording that is ``OUT.flac.partial.wav``, as
the FLAC cannot be written) and the message says where and how long it is; a file that holds no audio
is removed. A ``.flac`` recording whose encoding fails at the end keeps its partial WAV too, and says
so. If the writer cannot keep up for longer than the ring holds (:data:`RING_SECONDS`), the oldest
samples are lost and counted in :attr:`Recorder.lost`.

An existing file is only replaced with ``force=True``.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lincae.engine.ringbuffer import RingBuffer

__all__ = [
    "FLAC_ENCODE_SPEED",
    "RECORD_SUFFIXES",
    "RING_SECONDS",
    "Recorder",
    "WavWriter",
    "check_record_path",
    "input_path",
]

RECORD_SUFFIXES = (".wav", ".flac")
RING_SECONDS = 8.0
"""Seconds of audio the ring holds for a writer that is held up (a slow disk)."""
HEADER_INTERVAL = 1.0
"""Seconds between rewrites of the WAV header (the file on disk is valid up to the last one)."""
DRAIN_INTERVAL = 0.05
FLAC_ENCODE_SPEED = 20.0
"""Seconds of a take encoded to FLAC per second at least (pedalboard does about 100 on a busy 2-core CPU)."""
_WAV_LIMIT = 0xFFFFFFFF - 64  # RIFF sizes are 32-bit


def check_record_path(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Validate a recording target before anything starts: suffix, existing file, writable folder."""
    p = Path(path)
    if p.suffix.lower() not in RECORD_SUFFIXES:
        raise ValueError(f"{p}: a recording is .wav or .flac, not {p.suffix or 'a file without a suffix'}")
    if (p.exists() or p.is_symlink()) and not force:
        raise ValueError(f"{p}: already exists (pass --force to replace it)")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{p}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{p}: folder {folder} is not writable")
    return p


def input_path(path: str | os.PathLike[str], source: int) -> Path:
    """Where source ``source`` (from 1) of a recording ``path`` goes: ``OUT.wav`` → ``OUT.input1.wav``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.input{source}{p.suffix}")


class WavWriter:
    """A float32 WAV file (``WAVE_FORMAT_IEEE_FLOAT``) that is valid on disk after each :meth:`sync`.

    Args:
        file: an open binary file, positioned at its start.
        sample_rate: Hz.
        channels: interleaved channels.
    """

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int) -> None:
        self.file = file
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.frames = 0
        self.file.write(self._header())

    def _header(self, frames: int | None = None) -> bytes:
        """The header for ``frames`` frames (default: those written)."""
        frames = self.frames if frames is None else frames
        data = frames * self.channels * 4
        fmt = struct.pack(
            "<HHIIHHH",
            3,
            self.channels,
            self.sample_rate,
            self.sample_rate * self.channels * 4,
            self.channels * 4,
            32,
            0,
        )  # fmt: IEEE float, cbSize 0
        fact = struct.pack("<I", frames)
        body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
        body += b"data" + struct.pack("<I", data)
        return b"RIFF" + struct.pack("<I", len(body) + data) + body

    @property
    def bytes_written(self) -> int:
        return len(self._header()) + self.frames * self.channels * 4

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``(channels, n)`` float32 (raises ``OSError`` when the file cannot grow)."""
        if self.bytes_written + block.size * 4 > _WAV_LIMIT:
            raise OSError("a WAV file cannot exceed 4 GiB")
        self.file.write(np.ascontiguousarray(block.T, dtype="<f4").tobytes())
        self.frames += block.shape[-1]

    def sync(self) -> None:
        """Write the samples out and the header's sizes with them (the file is then valid as it stands)."""
        self.file.flush()
        end = self.file.tell()
        self.file.seek(0)
        self.file.write(self._header())
        self.file.flush()
        self.file.seek(end)


class Recorder:
    """Record ``(channels, n)`` blocks fed from the audio thread into ``path`` (``.wav`` or ``.flac``).

    Args:
        path: the file to write; checked at once (:func:`check_record_path`).
        sample_rate: the device rate in Hz (the file's rate).
        channels: channels per block.
        max_block: the longest block :meth:`feed` gets.
        force: replace an existing file.
        label: how messages name this recording (default: the file name).

    Attributes:
        frames: frames written to the file so far (silence put in for gaps included).
        lost: frames lost because the writer fell more than the ring behind.
        error: the one-line reason the recording stopped early ("" while all is well).
        clipped: samples written so far that lie beyond 0 dBFS (``|x| > 1``): a FLAC take clips them.
        peak: the largest ``|x|`` written so far.
        silence: frames of silence put in for gaps (:meth:`add_silence`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int,
        channels: int,
        *,
        max_block: int = 8192,
        force: bool = False,
        label: str | None = None,
    ) -> None:
        self.path = check_record_path(path, force)
        self.label = label or self.path.name
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.ring = RingBuffer(channels, int(RING_SECONDS * sample_rate) + max_block)
        self._chunk = np.zeros((channels, min(self.ring.capacity, max(4096, sample_rate // 4))), np.float32)
        self.flac = self.path.suffix.lower() == ".flac"
        self.wav_path = self.path.with_name(self.path.name + ".partial.wav") if self.flac else self.path
        self.frames = 0
        self.error = ""
        self.clipped = 0
        self.peak = 0.0
        self.silence = 0
        self._failed = False  # the writer gave up: feed() stops copying
        self._finished = False  # stop() wrote the file under its name
        # Gaps to fill: (position in the fed stream, frames of silence), appended by the producer.
        self._gaps: deque[tuple[int, int]] = deque()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force or self.flac else os.O_EXCL)
        try:
            fd = os.open(self.wav_path, flags, 0o666)
        except OSError as e:
            raise ValueError(f"{self.wav_path}: cannot record ({e.strerror or e})") from None
        self._file = os.fdopen(fd, "wb")
        self._wav = WavWriter(self._file, self.sample_rate, self.channels)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lincae-recorder-{self.label}", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> int:
        return self.ring.overruns

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._failed

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    # ------------------------------------------------------------------ audio side
    def feed(self, block: np.ndarray) -> None:
        """Copy ``block`` ``(channels, n)`` into the ring (audio thread: never blocks or allocates arrays)."""
        if not self._failed:
            self.ring.write(block)

    def add_silence(self, frames: int) -> None:
        """Put ``frames`` frames of silence into the take at this point of what was fed (the producer
        calls it, between two :meth:`feed` calls: where the audio stopped for that long). The writer
        writes them, however many; the ring is not used."""
        if frames > 0 and not self._failed:
            self._gaps.append((self.ring.written, int(frames)))

    # ------------------------------------------------------------------ writer side
    def _drain(self) -> None:
        ring, width = self.ring, self._chunk.shape[-1]
        while True:
            start = max(ring.read_pos, ring.oldest())
            if self._gaps and start >= self._gaps[0][0]:
                self._write_silence(self._gaps.popleft()[1])
                continue
            n = min(ring.written - start, width)
            if self._gaps:
                n = min(n, self._gaps[0][0] - start)
            if n <= 0:
                return
            got = ring.read(self._chunk[:, :n])
            block = self._chunk[:, :got]
            self._count_clipped(block)
            self._wav.write(block)
            self.frames = self._wav.frames

    def _count_clipped(self, block: np.ndarray) -> None:
        if block.size:
            peak = float(np.abs(block).max())
            if peak > 1.0:
                self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))
            self.peak = max(self.peak, peak)

    def _write_silence(self, frames: int) -> None:
        self._chunk.fill(0.0)
        left = frames
        while left > 0:
            n = min(left, self._chunk.shape[-1])
            self._wav.write(self._chunk[:, :n])
            left -= n
            self.frames = self._wav.frames
        self.silence += frames

    def _run(self) -> None:
        last_sync = time.monotonic()
        try:
            while not self._stop.wait(DRAIN_INTERVAL):
                self._drain()
                if time.monotonic() - last_sync >= HEADER_INTERVAL:
                    self._wav.sync()
                    last_sync = time.monotonic()
            self._drain()
            self._wav.sync()
        except OSError as e:
            self._fail(e)

    def _fail(self, e: OSError) -> None:
        """Stop the recording after a failed write, keeping what reached the disk as a valid WAV file."""
        self._failed = True
        why = e.strerror or " ".join(str(e).split())
        self.error = (
            f"recording {self.label} stopped after {self.seconds:.1f} s: cannot write {self.wav_path} ({why}); "
            f"{self._keep_what_is_on_disk()}"
        )

    def _keep_what_is_on_disk(self) -> str:
        """Close the file; cut it to the whole frames it holds, with a header that says so (or remove it when
        it holds none). Returns what became of it, for the message."""
        try:
            self._file.close()  # (a write still buffered may fail again: what is on disk is what counts)
        except OSError:
            pass
        header = len(self._wav._header())
        frame = 4 * self.channels
        try:
            # Written in order after the header, so whole frames on disk are samples as fed (those of a
            # write that failed half-way included).
            self._wav.frames = max(0, (os.stat(self.wav_path).st_size - header) // frame)
            if self._wav.frames == 0:
                self.wav_path.unlink()
                return f"nothing was recorded ({self.wav_path} is removed)"
            with open(self.wav_path, "r+b") as f:  # overwrites bytes already on disk: needs no free space
                f.write(self._wav._header())
                f.truncate(header + self._wav.frames * frame)
        except OSError as err:
            return f"{self.wav_path} may be incomplete ({err.strerror or err})"
        self.frames = self._wav.frames
        return f"the first {self.seconds:.1f} s are kept in {self.wav_path}"

    def stop(self) -> Path | None:
        """Write what is left and close the file (a FLAC recording is encoded now). Returns the file, or
        ``None`` when it could not be finished (see :attr:`error`; a partial WAV is kept)."""
        self._stop.set()
        self._thread.join()
        try:
            self._file.close()
        except OSError as e:
            if not self._failed:
                self._fail(e)
        if self._failed:
            return None
        done = self._encode_flac() if self.flac else self.path
        self._finished = done is not None
        return done

    def clip_note(self) -> str:
        """One line when a FLAC take holds samples beyond 0 dBFS (clipped to it in the file), else ``""``."""
        if not self.flac or not self.clipped:
            return ""
        return (
            f"recording {self.label}: {self.clipped} sample(s) above 0 dBFS (peak {20 * np.log10(self.peak):+.1f} "
            "dBFS) are clipped in the FLAC file (record to .wav to keep them: it stores float samples)"
        )

    def salvage(self, timeout: float = 1.0) -> str:
        """For a process about to end without :meth:`stop`: leave the file on disk a valid WAV file.

        The writer is asked to write what it holds and stop; if it does not within ``timeout`` seconds
        (stuck in a write), the header is rewritten for the whole frames on disk through a descriptor
        of its own. Never raises. Returns ``""`` when the take is complete under its name, else one line
        saying where what was recorded is (a FLAC take that was not encoded keeps its partial WAV).
        """
        if self._finished or self._failed:
            return self.error
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            try:
                fd = os.open(self.wav_path, os.O_WRONLY)
                try:
                    header = len(self._wav._header())
                    frames = max(0, (os.fstat(fd).st_size - header) // (4 * self.channels))
                    os.pwrite(fd, self._wav._header(frames), 0)
                finally:
                    os.close(fd)
                self.frames = frames
            except OSError as e:
                return f"recording {self.label}: {self.wav_path} may be incomplete ({e.strerror or e})"
        if self.flac:
            return (
                f"recording {self.label}: not encoded to FLAC (the stop took too long); the {self.seconds:.1f} s "
                f"recorded are in {self.wav_path}"
            )
        return ""

    def _encode_flac(self) -> Path | None:
        from lincae.files.audiofile import AtomicAudioWriter

        try:
            from pedalboard.io import AudioFile

            with (
                AudioFile(str(self.wav_path)) as src,
                AtomicAudioWriter(self.path, self.sample_rate, self.channels, overwrite=True, bit_depth=24) as out,
            ):
                while src.tell() < src.frames:
                    out.write(src.read(min(self.sample_rate * 10, src.frames - src.tell())))
        except Exception as e:
            why = " ".join(str(e).split())
            self.error = (
                f"recording {self.label}: cannot encode {self.path} ({why}); the {self.seconds:.1f} s recorded are "
                f"kept in {self.wav_path}"
            )
            return None
        self.wav_path.unlink(missing_ok=True)
        return self.path
