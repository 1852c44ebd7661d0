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

Real time: :meth:`StreamingEngine.push` and :meth:`StreamingEngine.pull` (the callback side) work in
buffers allocated at construction (sized by ``max_block``) with ``out=`` arguments, gaps and fades
included; only the worker allocates.
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


def _peak(x: np.ndarray) -> float:
    """``max |x|`` of a non-empty array without the temporary that ``np.abs(x).max()`` allocates."""
    return float(max(x.max(), -x.min()))


@dataclass
class EngineMetrics:
    """What a GUI or status line polls; plain attributes written by the worker or the audio thread.

    Attributes:
        rtf_last, rtf_peak: worker compute time over the audio time of one step (1.0 = just real time).
        latency_samples: declared input-to-output latency in samples at ``latency_rate`` Hz: the engine's
            (:attr:`StreamingEngine.latency`, at the model's rate), and once a live session runs, the
            session's at the device rate (the engine's converted, the rate conversion's, and the device's
            own, ``device_latency_samples``). :attr:`latency_ms` is derived from it.
        windows: windows processed; dropped_windows: windows skipped to catch up; dropouts: gaps.
        fallback_samples: output samples that came from the fallback instead of the decoder.
        input_overruns: input samples lost because the worker did not read them in time.
        xruns: stream over/underflows reported by the audio device.
        input_peak_db: per source, peak level of the last input block (dBFS); output_peak_db likewise.
        latents: ``[sources, C]`` the latest latent frame of each source; mix_latents ``[C]`` of the mix.
        plugin_errors: plugins bypassed after failing to load or while running (the audio kept flowing
            around them), as ``"{plugin}: {message}"``; slots that failed to load are listed from the start.
    """

    rtf_last: float = 0.0
    rtf_peak: float = 0.0
    latency_samples: int = 0
    latency_rate: int = 44100
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

    @property
    def latency_ms(self) -> float:
        """:attr:`latency_samples` in milliseconds (for display)."""
        return 1000.0 * self.latency_samples / self.latency_rate


class StreamingEngine:
    """Live driver of a :class:`LatentMixer`.

    Args:
        mixer: the shared mixer (model, config, parameters).
        block: the audio block size in samples, counted in the declared latency (0 if unknown).
        max_block: the largest block ``push``/``pull`` will see (scratch buffers are sized for it).
        pre: effect chains by source number (from 1), run on each source's input before encoding.
        post: an effect chain run on the decoded mix. Chains are boards as from
            :func:`~lincae.engine.effects.build_chain` (``on_load_error="bypass"`` keeps a live session
            running when a plugin file does not load). Their registry parameters (``pre.N.…``,
            ``post.…``) are applied once per window; continuous ones ramp over a step.
    """

    def __init__(
        self,
        mixer: LatentMixer,
        block: int = 0,
        max_block: int = 8192,
        pre: Mapping[int, Any] | None = None,
        post: Any = None,
    ) -> None:
        from lincae.engine.effects import ChainProcessor, chain_latency

        self.mixer = mixer
        mixer.reset()  # this stream starts at window 0
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
        self._chain_values: dict[str, float] = {}  # chain parameter values the plugins hold
        # Pending ramps per chain ("post" or a source number): (name, from, to), run over its next block.
        self._ramps: dict[int | str, list[tuple[str, float, float]]] = {}
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
        # Scratch for push()/pull(), which run in the audio callback and must not allocate arrays.
        self._scratch = np.zeros((self.out_channels, max_block), np.float32)  # the fallback signal
        self._blend = np.zeros((1, max(mixer.xfade, 1)), np.float32)
        self._dry = np.zeros((self.rows, max_block), np.float32)
        self._ramp = np.zeros(max_block, np.float32)  # per-sample decoded-vs-fallback gain
        self._one_minus = np.zeros(max_block, np.float32)
        self._steps = np.arange(1, max_block + 1, dtype=np.float32) / FADE  # exact: multiples of 2**-8
        self._fade_out_rest = (1.0 - mixer.fade_out).astype(np.float32)
        self.max_block = max_block
        self.metrics = EngineMetrics(
            latency_samples=self.latency,
            latency_rate=int(mixer.sample_rate),
            input_peak_db=[-200.0] * cfg.num_sources,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._collect_plugin_errors()  # plugins that failed to load show before any audio runs

    # ------------------------------------------------------------------ audio side
    # push() and pull() run in the sound-card callback: they only copy into preallocated buffers
    # (ring buffers, scratch sized from max_block) and compute with ``out=`` arguments.
    def push(self, block: np.ndarray) -> None:
        """Append input ``(rows, n)`` float32 (rows: each source's channels in order), ``n <= max_block``.

        Never blocks or allocates arrays.
        """
        self.inputs.write(block)
        peaks = self.metrics.input_peak_db
        rows = self.mixer.rows
        n = block.shape[-1]
        for r, (i, _) in enumerate(rows):
            p = _db(_peak(block[r])) if n else -200.0
            peaks[i] = p if r == 0 or rows[r - 1][0] != i else max(peaks[i], p)
        self._wake.set()

    def pull(self, out: np.ndarray) -> None:
        """Fill ``out`` ``(out_channels, n)`` with the next output samples, ``n <= max_block``.

        Never blocks, always fills, and does not allocate arrays (gaps included).
        """
        n = out.shape[-1]
        start = self.play
        valid_lo = max(self._valid_from, start)
        valid_hi = min(self._first + self.outputs.written, start + n)
        out[...] = 0.0
        # The block is [0, pre) pre-roll (silence, neither decoded nor missing), then missing samples
        # around the decoded ones [have_lo, have_hi) (all missing when nothing is decoded).
        pre = max(0, min(n, self._first - start))
        have_lo = have_hi = n
        if valid_hi > valid_lo:  # decoded samples where they exist
            self.outputs.read_at(valid_lo - self._first, out[:, valid_lo - start : valid_hi - start])
            have_lo, have_hi = valid_lo - start, valid_hi - start
        missing = (have_lo - pre) + (n - have_hi)
        if self._gain < 1.0 or missing:
            self._fill_gaps(out, start, pre, have_lo, have_hi)
            self.metrics.fallback_samples += missing
        self.play = start + n
        self.metrics.output_peak_db = _db(_peak(out)) if n else -200.0

    def _fill_gaps(self, out: np.ndarray, start: int, pre: int, have_lo: int, have_hi: int) -> None:
        """Blend the fallback into samples the worker has not produced, with short fades both ways.

        ``out`` ``(out_channels, n)`` holds decoded samples in ``[have_lo, have_hi)`` and zeros elsewhere;
        ``[0, pre)`` is pre-roll, ``[pre, have_lo)`` and ``[have_hi, n)`` are missing. Allocation-free.
        """
        n = out.shape[-1]
        fallback = self._scratch[:, :n]
        fallback[...] = 0.0
        if self.mixer.config.fallback == "dry":
            rows = self._dry[:, :n]
            if self.inputs.read_at(start, rows):
                self.mixer.dry_into(rows, fallback)
        # Continue the last window's tail (what would have crossfaded into the next window) where it applies.
        t0, xf = self._tail_start, self.mixer.xfade
        lo, hi = max(start, t0), min(start + n, t0 + xf)
        if hi > lo:
            fade, rest = self.mixer.fade_out[lo - t0 : hi - t0], self._fade_out_rest[lo - t0 : hi - t0]
            faded = self._blend[0, : hi - lo]
            # Row by row: a broadcast (channels, n) · (n,) ufunc may allocate an iteration buffer.
            for c in range(self.out_channels):
                seg = fallback[c, lo - start : hi - start]
                np.multiply(self._tail[c, lo - t0 : hi - t0], fade, out=faded)
                np.multiply(seg, rest, out=seg)
                np.add(faded, seg, out=seg)
        # Per-sample gain ramps towards 1 where decoded output exists, towards 0 where it does not, by
        # 1/FADE per sample; it holds through the pre-roll. Missing samples are the fallback alone.
        g = self._gain
        self._ramp[:pre] = g
        g = self._fade(pre, have_lo, g, down=True)
        fallback_at = out[:, pre:have_lo]
        fallback_at[...] = fallback[:, pre:have_lo]
        self._blend_decoded(out, fallback, 0, pre)
        g = self._fade(have_lo, have_hi, g, down=False)
        self._blend_decoded(out, fallback, have_lo, have_hi)
        g = self._fade(have_hi, n, g, down=True)
        out[:, have_hi:n] = fallback[:, have_hi:n]
        self._gain = g

    def _fade(self, lo: int, hi: int, g: float, down: bool) -> float:
        """``ramp[lo:hi]`` = ``g`` moved by 1/FADE per sample towards 0 (``down``) or 1, clamped; returns the end."""
        if hi <= lo:
            return g
        ramp = self._ramp[lo:hi]
        steps = self._steps[: hi - lo]
        if down:
            np.subtract(g, steps, out=ramp)
            np.maximum(ramp, 0.0, out=ramp)
        else:
            np.add(steps, g, out=ramp)
            np.minimum(ramp, 1.0, out=ramp)
        return float(ramp[-1])

    def _blend_decoded(self, out: np.ndarray, fallback: np.ndarray, lo: int, hi: int) -> None:
        """``out[:, lo:hi] = out · ramp + fallback · (1 − ramp)`` in place (``fallback`` is overwritten there)."""
        if hi <= lo:
            return
        ramp, rest = self._ramp[lo:hi], self._one_minus[lo:hi]
        np.subtract(1.0, ramp, out=rest)
        for c in range(out.shape[0]):  # row by row, as in _fill_gaps
            dec, fb = out[c, lo:hi], fallback[c, lo:hi]
            np.multiply(dec, ramp, out=dec)
            np.multiply(fb, rest, out=fb)
            np.add(dec, fb, out=dec)

    # ------------------------------------------------------------------ worker side
    def pump(self, batch: int = 1) -> int:
        """Process every complete window (skipping ahead when too far behind). Returns windows processed.

        ``batch > 1`` (offline rendering) mixes up to that many ready windows in one call of
        :meth:`~lincae.engine.mixer.LatentMixer.process_many`; chain parameters are then applied once
        per batch, so it is for fixed parameters. The live worker processes one window at a time.
        """
        done = 0
        mixer = self.mixer
        while self.inputs.written >= mixer.window_end(self.next_window):
            k = self.next_window
            newest = self.inputs.written // mixer.step - 1
            # A window whose whole output is already behind the play head is useless: catch up.
            if mixer.emitted_start(k) + mixer.step <= self.play and newest > k:
                self._skip_to(newest)
                continue
            n = max(1, min(batch, newest - k + 1))
            self._apply_chain_parameters()
            self._advance_pre(mixer.window_end(k + n - 1))
            if n == 1:
                if not self._read_window(mixer.window_end(k) - mixer.window):
                    self._count_overrun(mixer.window_end(k) - mixer.window)
                    self._skip_to(newest)  # its input was overwritten while the worker was busy
                    continue
                self._publish(k, mixer.process(k, self._window))
                done += 1
                continue
            windows = np.empty((n, self.rows, mixer.window), np.float32)
            if not all(self._read_window(mixer.window_end(k + j) - mixer.window, windows[j]) for j in range(n)):
                self._count_overrun(mixer.window_end(k) - mixer.window)
                self._skip_to(newest)
                continue
            out = mixer.process_many(k, windows)
            for j in range(n):
                self._publish(k + j, out[:, j * mixer.step : (j + 1) * mixer.step])
            done += n
        return done

    def _advance_pre(self, upto: int) -> None:
        """Run the pre chains over raw input up to absolute sample ``upto`` (once per sample, in order)."""
        if not self.pre:
            return
        buf = self._pre_block
        while self.processed.written < upto:
            start = self.processed.written
            n = min(upto - start, buf.shape[-1])
            block = buf[:, :n]
            if not self.inputs.read_at(start, block):
                block[...] = 0.0  # overwritten while the worker was behind: the window will be skipped
                self.metrics.input_overruns += min(n, self.inputs.oldest() - start)
            for i, proc in self.pre.items():
                rows = self._source_rows[i - 1]
                block[rows] = self._run_chain(i, proc, np.ascontiguousarray(block[rows]))
            self.processed.write(block)
        self._collect_plugin_errors()

    def _run_chain(self, key: int | str, proc: Any, block: np.ndarray) -> np.ndarray:
        """Run one chain over ``block`` ``(channels, n)``, ramping the parameters that changed since its last."""
        ramps = self._ramps.pop(key, None)
        if not ramps:
            return proc.process(block, self.mixer.sample_rate)
        out = proc.process_ramped(block, self.mixer.sample_rate, ramps)
        if proc.parameter_errors:
            self.metrics.error = proc.parameter_errors[-1]
            proc.parameter_errors.clear()
        return out

    def _chain_for(self, name: str) -> tuple[int | str, Any] | None:
        """The chain (key, processor) a registry name ``pre.N.…`` / ``post.…`` addresses, if the engine has it."""
        head, _, rest = name.partition(".")
        if head == "post":
            return ("post", self.post) if self.post is not None else None
        index = rest.split(".", 1)[0]
        if head == "pre" and index.isdigit() and int(index) in self.pre:
            return int(index), self.pre[int(index)]
        return None

    def _apply_chain_parameters(self) -> None:
        """Bring the plugins to the registry's ``pre.N.…`` / ``post.…`` values, once per window.

        Only values that changed are touched. Continuous ones (``smoothed``, not toggles) ramp
        linearly from the old value to the new over the chain's next block, one step of audio
        (:meth:`~lincae.engine.effects.ChainProcessor.process_ramped`); switches, choices and unsmoothed
        parameters change at the block boundary. The first call applies every value at once.
        """
        registry = self.mixer.registry
        if registry.version == self._registry_version or not (self.pre or self.post):
            return
        from lincae.engine.effects import apply_parameter

        self._registry_version = registry.version
        for name, value in registry.values().items():
            old = self._chain_values.get(name)
            if old == value:
                continue
            target = self._chain_for(name)
            if target is None:
                continue
            self._chain_values[name] = value
            key, proc = target
            spec = registry.spec(name)
            if old is None or spec.toggle or not spec.smoothed:
                try:
                    apply_parameter(proc.board, name, value)
                except ValueError as e:  # a stale or bad mapping must not stop the audio
                    self.metrics.error = str(e)
                continue
            ramps = self._ramps.setdefault(key, [])
            pending = next((j for j, r in enumerate(ramps) if r[0] == name), None)
            if pending is None:
                ramps.append((name, old, value))
            else:  # moved again before the ramp ran: ramp from where it started to the newest value
                ramps[pending] = (name, ramps[pending][1], value)

    def _collect_plugin_errors(self) -> None:
        procs = [*self.pre.values(), *([self.post] if self.post else [])]
        count = sum(len(p.errors) for p in procs)
        if count != len(self.metrics.plugin_errors):
            self.metrics.plugin_errors = [f"{e.plugin}: {e.message}" for p in procs for e in p.errors]

    def _count_overrun(self, start: int) -> None:
        """Count the input samples from ``start`` that the audio side overwrote before the worker read them."""
        lost = min(self.mixer.window, self.processed.oldest() - max(start, 0))
        if lost > 0:
            self.metrics.input_overruns += lost

    def _read_window(self, start: int, into: np.ndarray | None = None) -> bool:
        w = self._window if into is None else into
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
            out = self._run_chain("post", self.post, out)
            self._collect_plugin_errors()
        self.outputs.write(out)
        self._tail_start = mixer.emitted_start(k) + mixer.step
        self.next_window = k + 1
        m = self.metrics
        m.windows += 1
        m.rtf_last = mixer.last_compute_s / (mixer.step / mixer.sample_rate)
        m.rtf_peak = max(m.rtf_peak, m.rtf_last)
        m.latents = mixer.last_latents
        m.mix_latents = mixer.last_mix_latents

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
        with self.mixer.session():
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
