"""The live engine: ring buffers between an audio callback and an inference worker.

The audio side calls :meth:`StreamingEngine.push` with each input block and :meth:`StreamingEngine.pull`
for each output block, from one thread (a sound-card callback, or a file reader); neither blocks.
The worker thread (:meth:`start`) waits for each new step of input, runs
:meth:`~lincae.engine.mixer.LatentMixer.process` on the window that ends there, and appends the
finished samples to the output ring.

Output sample ``m`` is the mixer's output ``y[m − D]`` with ``D`` the declared latency
(:attr:`latency`), so the stream equals the offline render delayed by ``D``. When the worker falls
behind, it skips to the newest window (counting a dropout), the callback fills the gap with the
configured fallback (dry input or silence) through short fades, and the next window crossfades back
in: latency stays ``D``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from lincae.engine.mixer import LatentMixer
from lincae.engine.ringbuffer import RingBuffer

FADE = 256  # samples over which the callback moves between decoded output and fallback


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 1e-10 else -200.0


@dataclass
class EngineMetrics:
    """What a GUI or status line polls; plain attributes written by the worker or the audio thread.

    Attributes:
        rtf_last, rtf_peak: worker compute time over the audio time of one step (1.0 = just real time).
        latency_samples, latency_ms: declared input-to-output latency (the engine's, plus the audio
            device's once a live session reports it in ``device_latency_samples``).
        windows: windows processed; dropped_windows: windows skipped to catch up; dropouts: gaps.
        fallback_samples: output samples that came from the fallback instead of the decoder.
        input_overruns: input samples lost because the worker did not read them in time.
        xruns: stream over/underflows reported by the audio device.
        input_peak_db: per source, peak level of the last input block (dBFS); output_peak_db likewise.
        latents: ``[sources, C]`` the latest latent frame of each source; mix_latents ``[C]`` of the mix.
    """

    rtf_last: float = 0.0
    rtf_peak: float = 0.0
    latency_samples: int = 0
    latency_ms: float = 0.0
    device_latency_samples: int = 0
    windows: int = 0
    dropped_windows: int = 0
    dropouts: int = 0
    fallback_samples: int = 0
    input_overruns: int = 0
    xruns: int = 0
    input_peak_db: list[float] = field(default_factory=list)
    output_peak_db: float = -200.0
    latents: np.ndarray | None = None
    mix_latents: np.ndarray | None = None
    error: str = ""


class StreamingEngine:
    """Live driver of a :class:`LatentMixer`.

    Args:
        mixer: the shared mixer (model, config, parameters).
        block: the audio block size in samples, counted in the declared latency (0 if unknown).
        max_block: the largest block ``push``/``pull`` will see (scratch buffers are sized for it).
    """

    def __init__(self, mixer: LatentMixer, block: int = 0, max_block: int = 8192) -> None:
        self.mixer = mixer
        cfg = mixer.config
        self.rows = mixer.num_rows
        self.out_channels = mixer.out_channels
        self.latency = cfg.latency_samples(mixer.hop, block)
        slack = int(cfg.compute_budget + 4)
        self.inputs = RingBuffer(self.rows, mixer.window + (slack + 2) * mixer.step + max_block)
        self.outputs = RingBuffer(self.out_channels, self.latency + (slack + 2) * mixer.step + max_block)
        self._first = mixer.first_output_index  # absolute index of output ring sample 0
        self._valid_from = self._first  # earliest output index that holds decoded samples
        self._tail_start = self._first  # the last window's held-back tail starts here (fallback fades from it)
        self._tail = np.zeros((self.out_channels, mixer.xfade), np.float32)
        self.play = -self.latency  # output index of the next sample pull() returns
        self.next_window = 0
        self._gain = 1.0  # 1 = decoded output, 0 = fallback (ramped per sample in pull)
        self._window = np.zeros((self.rows, mixer.window), np.float32)
        self._scratch = np.zeros((self.out_channels, max_block), np.float32)
        self._dry = np.zeros((self.rows, max_block), np.float32)
        self._ramp = np.zeros(max_block, np.float32)
        self._have = np.zeros(max_block, dtype=bool)
        self._missing = np.zeros(max_block, dtype=bool)
        self.max_block = max_block
        self.metrics = EngineMetrics(
            latency_samples=self.latency,
            latency_ms=1000.0 * self.latency / mixer.sample_rate,
            input_peak_db=[-200.0] * cfg.num_sources,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ audio side
    def push(self, block: np.ndarray) -> None:
        """Append input ``(rows, n)`` float32 (rows: each source's channels in order). Never blocks."""
        self.inputs.write(block)
        peaks = self.metrics.input_peak_db
        for r, (i, _) in enumerate(self.mixer.rows):
            p = _db(float(np.abs(block[r]).max())) if block.shape[-1] else -200.0
            peaks[i] = p if r == 0 or self.mixer.rows[r - 1][0] != i else max(peaks[i], p)
        self._wake.set()

    def pull(self, out: np.ndarray) -> None:
        """Fill ``out`` ``(out_channels, n)`` with the next output samples. Never blocks; always fills."""
        n = out.shape[-1]
        start = self.play
        valid_lo = max(self._valid_from, start)
        valid_hi = min(self._first + self.outputs.written, start + n)
        have = self._have[:n]
        missing = self._missing[:n]
        have[...] = False
        out[...] = 0.0
        if valid_hi > valid_lo:  # decoded samples where they exist
            self.outputs.read_at(valid_lo - self._first, out[:, valid_lo - start : valid_hi - start])
            have[valid_lo - start : valid_hi - start] = True
        np.logical_not(have, out=missing)
        missing[: max(0, min(n, self._first - start))] = False  # the pre-roll before the first window is silence
        if self._gain < 1.0 or missing.any():
            self._fill_gaps(out, start, have, missing)
        self.play = start + n
        self.metrics.output_peak_db = _db(float(np.abs(out).max())) if n else -200.0

    def _fill_gaps(self, out: np.ndarray, start: int, have: np.ndarray, missing: np.ndarray) -> None:
        """Blend the fallback into samples the worker has not produced, with short fades both ways."""
        n = out.shape[-1]
        fallback = self._scratch[:, :n]
        fallback[...] = 0.0
        if self.mixer.config.fallback == "dry":
            rows = self._dry[:, :n]
            if self.inputs.read_at(start, rows):
                fallback[...] = self.mixer._dry(rows)
        # Continue the last window's tail (what would have crossfaded into the next window) where it applies.
        t0, xf = self._tail_start, self.mixer.xfade
        lo, hi = max(start, t0), min(start + n, t0 + xf)
        if hi > lo:
            sel = slice(lo - start, hi - start)
            fade = self.mixer.fade_out[lo - t0 : hi - t0]
            fallback[:, sel] = self._tail[:, lo - t0 : hi - t0] * fade + fallback[:, sel] * (1.0 - fade)
        # Per-sample gain ramps towards 1 where decoded output exists, towards 0 where it does not.
        ramp = self._ramp[:n]
        g = self._gain
        step = 1.0 / FADE
        for j in range(n):
            g = min(1.0, g + step) if have[j] else max(0.0, g - step) if missing[j] else g
            ramp[j] = g
        self._gain = g
        out[...] = np.where(missing, fallback, out * ramp + fallback * (1.0 - ramp))
        self.metrics.fallback_samples += int(missing.sum())

    # ------------------------------------------------------------------ worker side
    def pump(self) -> int:
        """Process every complete window (skipping ahead when too far behind). Returns windows processed."""
        done = 0
        mixer = self.mixer
        while self.inputs.written >= mixer.window_end(self.next_window):
            k = self.next_window
            newest = self.inputs.written // mixer.step - 1
            # A window whose whole output is already behind the play head is useless: catch up.
            if mixer.emitted_start(k) + mixer.step <= self.play and newest > k:
                self._skip_to(newest)
                continue
            if not self._read_window(mixer.window_end(k) - mixer.window):
                self._skip_to(newest)  # its input was overwritten while the worker was busy
                continue
            out = mixer.process(k, self._window)
            self._publish(k, out)
            done += 1
        return done

    def _read_window(self, start: int) -> bool:
        w = self._window
        if start >= 0:
            return self.inputs.read_at(start, w)
        w[:, :-start] = 0.0
        return self.inputs.read_at(0, w[:, -start:])

    def _publish(self, k: int, out: np.ndarray) -> None:
        mixer = self.mixer
        self._tail[...] = mixer.tail
        self.outputs.write(out)
        self._tail_start = mixer.emitted_start(k) + mixer.step
        self.next_window = k + 1
        m = self.metrics
        m.windows += 1
        m.rtf_last = mixer.last_compute_s / (mixer.step / mixer.sample_rate)
        m.rtf_peak = max(m.rtf_peak, m.rtf_last)
        m.latents = mixer.last_latents
        m.input_overruns = self.inputs.overruns

    def _skip_to(self, k: int) -> None:
        """Drop windows up to ``k``; window ``k`` will crossfade in from the fallback."""
        mixer = self.mixer
        skipped = k - self.next_window
        gap = mixer.emitted_start(k) - (self._first + self.outputs.written)
        if gap > 0:
            # Leave the gap undecoded: pull() fills it from the fallback.
            self.outputs.write(np.zeros((self.out_channels, min(gap, self.outputs.capacity)), np.float32))
            if gap > self.outputs.capacity:
                self.outputs.written += gap - self.outputs.capacity
            self._valid_from = mixer.emitted_start(k)
        start = mixer.window_end(k) - mixer.window
        head = np.zeros((self.out_channels, mixer.xfade), np.float32)
        if mixer.config.fallback == "dry" and self._read_window(start):
            head = mixer.dry_segment(self._window)[:, : mixer.xfade]
        mixer.restart_crossfade(head)
        self.next_window = k
        if skipped > 0 or gap > 0:
            self.metrics.dropped_windows += skipped
            self.metrics.dropouts += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            try:
                self.pump()
            except Exception as e:  # keep the audio side alive; report the failure
                self.metrics.error = f"{type(e).__name__}: {e}"
                self._stop.wait(0.5)

    def start(self, warm_up: bool = True) -> None:
        """Start the inference worker thread (after warming the model up, so the first window is not late)."""
        if self._thread is not None:
            return
        if warm_up:
            self.mixer.warm_up()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lincae-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
