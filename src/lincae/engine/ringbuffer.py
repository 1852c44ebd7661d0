"""Single-producer, single-consumer ring buffer of float32 audio, addressed by absolute sample index.

One thread writes (``write``), one reads (``read`` / ``read_at``). Each side owns its own counter
and only reads the other's, so no lock is needed: in CPython an int assignment is atomic, and the
writer publishes ``written`` only after the samples are in place. Neither side blocks or allocates
arrays: a full ring overwrites the oldest samples (counted as overruns); reading past what has been
written returns fewer samples, zero-filling the rest (counted as underruns).

Two ways to read: ``read`` consumes in order and counts what it lost (the recorder's writer thread,
:mod:`lincae.io.record`); ``read_at`` copies any span still held without consuming (the engine's
worker, which counts lost input itself in ``EngineMetrics.input_overruns``).
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """``channels`` × ``capacity`` float32 samples.

    Attributes:
        written: absolute number of samples written so far (owned by the writer).
        read_pos: absolute index of the next sample ``read`` returns (owned by the reader).
        overruns: samples lost because the writer overtook the reader.
        underruns: samples ``read`` had to zero-fill.
    """

    def __init__(self, channels: int, capacity: int) -> None:
        if channels < 1 or capacity < 1:
            raise ValueError(f"need channels >= 1 and capacity >= 1, got {channels}, {capacity}")
        self.channels = channels
        self.capacity = capacity
        self._buf = np.zeros((channels, capacity), dtype=np.float32)
        self.written = 0
        self.read_pos = 0
        self.overruns = 0
        self.underruns = 0

    # ------------------------------------------------------------------ writer side
    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``(channels, n)``; if ``n > capacity`` only its last ``capacity`` samples are kept."""
        n = block.shape[-1]
        start = self.written
        if n > self.capacity:
            block = block[:, n - self.capacity :]
            start += n - self.capacity
        self._copy_in(start, block)
        self.written += n  # publish after the copy

    def _copy_in(self, start: int, block: np.ndarray) -> None:
        n = block.shape[-1]
        i = start % self.capacity
        first = min(n, self.capacity - i)
        self._buf[:, i : i + first] = block[:, :first]
        if first < n:
            self._buf[:, : n - first] = block[:, first:]

    # ------------------------------------------------------------------ reader side
    @property
    def available(self) -> int:
        """Samples written but not yet read (after any overrun)."""
        return max(0, self.written - max(self.read_pos, self.written - self.capacity))

    def oldest(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.written - self.capacity)

    def read(self, out: np.ndarray) -> int:
        """Fill ``out`` ``(channels, n)`` from ``read_pos``; zero-fill what is missing. Returns samples copied."""
        oldest = self.oldest()
        if self.read_pos < oldest:
            self.overruns += oldest - self.read_pos
            self.read_pos = oldest
        n = out.shape[-1]
        got = min(n, self.written - self.read_pos)
        if got > 0:
            self._copy_out(self.read_pos, out[:, :got])
        else:
            got = 0
        if got < n:
            out[:, got:] = 0.0
            self.underruns += n - got
        self.read_pos += got
        return got

    def read_at(self, start: int, out: np.ndarray) -> bool:
        """Copy samples ``[start, start + n)`` into ``out`` without consuming; ``False`` if not all are held."""
        n = out.shape[-1]
        if start < self.oldest() or start + n > self.written:
            return False
        self._copy_out(start, out)
        # The writer may have overwritten part of it meanwhile: check again after copying.
        return start >= self.oldest()

    def _copy_out(self, start: int, out: np.ndarray) -> None:
        n = out.shape[-1]
        i = start % self.capacity
        first = min(n, self.capacity - i)
        out[:, :first] = self._buf[:, i : i + first]
        if first < n:
            out[:, first:n] = self._buf[:, : n - first]
