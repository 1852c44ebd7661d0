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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
        plugin_errors: plugins bypassed after failing (the audio kept flowing around them).
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
    plugin_errors: list[str] = field(default_factory=list)
    error: str = ""


class StreamingEngine:
    """Live driver of a :class:`LatentMixer`.

    Args:
        mixer: the shared mixer (model, config, parameters).
        block: the audio block size in samples, counted in the declared latency (0 if unknown).
        max_block: the largest block ``push``/``pull`` will see (scratch buffers are sized for it).
    """

    def __init__(
        self,
        mixer: LatentMixer,
        block: int = 0,
        max_block: int = 8192,
        pre: Mapping[int, Any] | None = None,
        post: Any = None,
    ) -> None:
        from lincae.render.chains import ChainProcessor, chain_latency

        self.mixer = mixer
        cfg = mixer.config
        self.rows = mixer.num_rows
        self.out_channels = mixer.out_channels
        sr = mixer.sample_rate
        # Effect chains run in the worker: each source's pre chain once over its incoming audio (before
        # windows are cut from it), the post chain over each finished segment. Their latency is declared.
        self.pre = {i: ChainProcessor(b) for i, b in (pre or {}).items() if len(b)}
        for i in self.pre:
            if not 1 <= i <= cfg.num_sources:
                raise ValueError(f"pre chain for source {i}, but the engine has {cfg.num_sources} source(s)")
        self.post = ChainProcessor(post) if post is not None and len(post) else None
        self.pre_latency = max(
            (chain_latency(p.board, sr, channels=cfg.sources[i - 1]) for i, p in self.pre.items()), default=0
        )
        self.post_latency = chain_latency(self.post.board, sr, channels=self.out_channels) if self.post else 0
        # The chains delay the signal themselves; the play head only accounts for the engine's own latency.
        self.engine_latency = cfg.latency_samples(mixer.hop, block)
        self.latency = self.engine_latency + self.pre_latency + self.post_latency
        self._registry_version = -1
        slack = int(cfg.compute_budget + 4)
        self.inputs = RingBuffer(self.rows, mixer.window + (slack + 2) * mixer.step + max_block)
        # Windows are cut from the pre-processed input (the raw input itself when there are no pre chains).
        self.processed = RingBuffer(self.rows, self.inputs.capacity) if self.pre else self.inputs
        self._pre_block = np.zeros((self.rows, max(mixer.step, 1)), np.float32)
        self._source_rows = [[r for r, (i, _) in enumerate(mixer.rows) if i == s] for s in range(cfg.num_sources)]
        self.outputs = RingBuffer(self.out_channels, self.latency + (slack + 2) * mixer.step + max_block)
        self._first = mixer.first_output_index  # absolute index of output ring sample 0
        self._valid_from = self._first  # earliest output index that holds decoded samples
        self._tail_start = self._first  # the last window's held-back tail starts here (fallback fades from it)
        self._tail = np.zeros((self.out_channels, mixer.xfade), np.float32)
        self.play = -self.engine_latency  # output index of the next sample pull() returns
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
            self._apply_chain_parameters()
            self._advance_pre(mixer.window_end(k))
            if not self._read_window(mixer.window_end(k) - mixer.window):
                self._skip_to(newest)  # its input was overwritten while the worker was busy
                continue
            out = mixer.process(k, self._window)
            self._publish(k, out)
            done += 1
        return done

    def _advance_pre(self, upto: int) -> None:
        """Run the pre chains over raw input up to absolute sample ``upto`` (once per sample, in order)."""
        if not self.pre:
            return
        buf = self._pre_block
        sr = self.mixer.sample_rate
        while self.processed.written < upto:
            start = self.processed.written
            n = min(upto - start, buf.shape[-1])
            block = buf[:, :n]
            if not self.inputs.read_at(start, block):
                block[...] = 0.0  # overwritten while the worker was behind: the window will be skipped
            for i, proc in self.pre.items():
                rows = self._source_rows[i - 1]
                block[rows] = proc.process(np.ascontiguousarray(block[rows]), sr)
            self.processed.write(block)
        self._collect_plugin_errors()

    def _apply_chain_parameters(self) -> None:
        """Copy registry values named ``pre.N.…`` / ``post.…`` onto the plugins when the registry changed."""
        registry = self.mixer.registry
        if registry.version == self._registry_version or not (self.pre or self.post):
            return
        from lincae.render.chains import apply_parameter

        self._registry_version = registry.version
        for name, value in registry.values().items():
            head, _, rest = name.partition(".")
            try:
                if head == "post" and self.post is not None:
                    apply_parameter(self.post.board, name, value)
                elif head == "pre" and rest.split(".", 1)[0].isdigit() and int(rest.split(".", 1)[0]) in self.pre:
                    apply_parameter(self.pre[int(rest.split(".", 1)[0])].board, name, value)
            except ValueError as e:  # a stale or bad mapping must not stop the audio
                self.metrics.error = str(e)

    def _collect_plugin_errors(self) -> None:
        procs = [*self.pre.values(), *([self.post] if self.post else [])]
        count = sum(len(p.errors) for p in procs)
        if count != len(self.metrics.plugin_errors):
            self.metrics.plugin_errors = [f"{e.plugin}: {e.message}" for p in procs for e in p.errors]

    def _read_window(self, start: int) -> bool:
        w = self._window
        if start >= 0:
            return self.processed.read_at(start, w)
        w[:, :-start] = 0.0
        return self.processed.read_at(0, w[:, -start:])

    def _publish(self, k: int, out: np.ndarray) -> None:
        mixer = self.mixer
        self._tail[...] = mixer.tail
        before = -mixer.emitted_start(k)
        if before > 0:  # nothing is heard before the input starts (the decoder's answer to pre-roll silence)
            out[:, : min(before, out.shape[-1])] = 0.0
        if self.post is not None:
            out = self.post.process(out, mixer.sample_rate)
            self._collect_plugin_errors()
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
        self._advance_pre(mixer.window_end(k))
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
