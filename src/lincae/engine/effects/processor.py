"""Streaming a chain block by block: latency, ramps and plugins that fail."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lincae.engine.effects.automation import apply_parameter
from lincae.engine.effects.catalog import (
    DEFAULT_BUFFER_SIZE,
    EXTERNAL_KINDS,
    RAMP_BLOCK,
    ChainSpecError,
    PluginFailure,
    _builtins,
)
from lincae.engine.effects.chain import _bypassed, _kind_of, _make_builtin, _read_builtin, _slot_info, load_failures


def _probe_latency(plugin: Any, kind: str, sample_rate: float, channels: int, buffer_size: int) -> int:
    """Samples a fresh copy of a built-in holds back when streamed (see :class:`ChainProcessor`)."""
    try:
        fresh = _make_builtin(kind, _read_builtin(plugin, kind, {}, "probe"), "probe")
    except (ChainSpecError, FileNotFoundError):
        return 0
    rng = np.random.default_rng(0)
    deficit = 0
    limit = int(4 * sample_rate)  # PitchShift (Rubber Band) holds back about a second
    fed = 0
    block = np.zeros((channels, buffer_size), np.float32)
    while fed < limit:
        y = fresh.process(block, sample_rate, buffer_size=buffer_size, reset=False)
        got = _as_channels_first(y, channels).shape[1]
        deficit += buffer_size - got
        fed += buffer_size
        if got == buffer_size:
            break
        block = (1e-3 * rng.standard_normal((channels, buffer_size))).astype(np.float32)
    return deficit


def chain_latency(
    board: Sequence[Any],
    sample_rate: float | None = None,
    *,
    channels: int = 2,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
) -> int:
    """Samples by which a :class:`ChainProcessor` running ``board`` delays audio (bypassed slots excluded).

    External plugins count their ``reported_latency_samples`` (what the plugin declares; pedalboard
    notes that some plugins under-report). Pedalboard's built-ins declare nothing, so they count 0
    unless ``sample_rate`` is given: then each built-in is measured by streaming silence and noise
    through a fresh copy (``channels`` × ``buffer_size`` blocks, as :class:`ChainProcessor` does). Only
    the buffering ones (``BrickwallLimiter``: its lookahead; ``Resample``, ``MP3Compressor``,
    ``GSMFullRateCompressor``, ``PitchShift``) give non-zero values; some depend on ``buffer_size``.
    """
    total = 0
    for plugin in board:
        if _bypassed(board, plugin):
            continue
        info = _slot_info(board, plugin)
        kind = info.kind if info else _kind_of(plugin)
        if kind in _builtins():
            if sample_rate is not None:
                total += _probe_latency(plugin, kind, float(sample_rate), channels, buffer_size)
        else:
            total += int(getattr(plugin, "reported_latency_samples", 0) or 0)
    return total


def _as_channels_first(y: np.ndarray, channels: int) -> np.ndarray:
    if y.ndim == 1:
        y = y[None, :]
    if y.size == 0:
        return np.zeros((channels, 0), np.float32)
    if y.shape[0] != channels and y.shape[1] == channels:
        y = y.T
    return y


class _Delay:
    """A fixed delay standing in for a slot's latency when the slot stops running."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.state: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.state is None or self.state.shape[0] != x.shape[0]:
            self.state = np.zeros((x.shape[0], self.samples), np.float32)
        joined = np.concatenate([self.state, x], axis=1)
        self.state = joined[:, x.shape[1] :]
        return joined[:, : x.shape[1]]


@dataclass(eq=False)
class _Stream:
    index: int
    plugin: Any
    label: str
    ready: tuple[float, int] | None = None  # (sample rate, channels) the plugin was primed for
    has_run: bool = False  # processed audio since it was made or reset: priming again needs a reset
    deficit: int = 0  # samples the plugin holds back: the slot's share of the latency
    failed: bool = False
    delay: _Delay | None = None
    unloaded: bool = False  # the plugin failed to load: bypassed for good


class ChainProcessor:
    """Runs a board block by block for live or offline streaming.

    Each plugin processes with ``reset=False``, so state (reverb tails, delay lines, envelopes)
    continues across blocks: any split of a signal into blocks gives the same output as one call. Two
    details make that hold with pedalboard: plugins are handed at most ``buffer_size`` samples at once,
    and before its first block each plugin is primed with ``buffer_size`` samples of silence —
    pedalboard re-prepares (and so clears) a plugin whenever a block is larger than any before it.
    A plugin that buffers internally returns short blocks; they are padded with leading silence, so
    every output block is as long as its input and the stream is delayed by :attr:`latency` samples.

    A plugin that raises, returns the wrong shape or produces NaN/inf is bypassed from then on: the
    failure is appended to :attr:`errors` (which starts with the slots that failed to load, see
    ``build_chain(..., on_load_error="bypass")``), the audio continues unmodified through that slot (delayed by
    the slot's latency so far, keeping the stream's timing) and the other plugins keep running.
    Bypass flags of an :class:`EffectChain` are read at every block. The plugin list is fixed when the
    processor is made; make a new one after inserting or removing plugins.
    """

    def __init__(
        self,
        board: Sequence[Any],
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        check_finite: bool = True,
    ) -> None:
        if buffer_size < 16:
            raise ValueError(f"buffer_size must be >= 16 samples, got {buffer_size}")
        self.board = board
        self.buffer_size = int(buffer_size)
        self.check_finite = check_finite
        self.errors: list[PluginFailure] = load_failures(board)  # slots that failed to load come first
        self.parameter_errors: list[str] = []  # parameter writes refused during process_ramped
        self.blocks = 0
        self._streams = []
        for i, plugin in enumerate(board):
            info = _slot_info(board, plugin)
            kind = info.kind if info else _kind_of(plugin)
            label = f"{kind}:{getattr(plugin, 'name', '?')}" if kind in EXTERNAL_KINDS else kind
            unloaded = info is not None and info.load_error is not None
            self._streams.append(_Stream(i, plugin, label, failed=unloaded, unloaded=unloaded))

    @property
    def latency(self) -> int:
        """Samples of delay the chain has introduced so far (grows until buffering plugins are full)."""
        return sum(s.deficit for s in self._streams)

    @property
    def failed(self) -> list[int]:
        """Indices of the slots bypassed after a failure."""
        return [i for i, s in enumerate(self._streams) if s.failed]

    def reset(self) -> None:
        """Clear every plugin's state (tails, buffers) and the latency count; failed slots stay bypassed."""
        for s in self._streams:
            if not s.failed:
                try:
                    s.plugin.reset()
                except Exception as e:  # pragma: no cover - reset failures are unusual
                    self._fail(s, f"reset: {type(e).__name__}: {e}")
            s.ready, s.has_run, s.deficit, s.delay = None, False, 0, None

    def retry_failed(self) -> None:
        """Run failed slots again (after fixing what made them fail); they restart from a reset.

        Slots whose plugin failed to load stay bypassed (build the chain again to retry loading).
        """
        for s in self._streams:
            if s.failed and not s.unloaded:
                s.failed, s.ready, s.deficit, s.delay = False, None, 0, None  # _prime resets it

    def _fail(self, s: _Stream, message: str) -> None:
        s.failed = True
        s.delay = _Delay(s.deficit) if s.deficit else None
        self.errors.append(PluginFailure(s.index, s.label, message, self.blocks))

    def _prime(self, s: _Stream, sample_rate: float, channels: int) -> None:
        if s.has_run:
            s.plugin.reset()  # sample rate or channel count changed, back from bypass, or retried
        s.has_run = True
        silence = np.zeros((channels, self.buffer_size), np.float32)
        y = s.plugin.process(silence, sample_rate, buffer_size=self.buffer_size, reset=False)
        s.deficit = self.buffer_size - _as_channels_first(y, channels).shape[1]
        s.ready, s.delay = (sample_rate, channels), None

    def process(self, block: np.ndarray, sample_rate: float) -> np.ndarray:
        """Process one block, ``(channels, samples)`` float32 (1-D is mono); returns the same shape."""
        x = np.asarray(block)
        one_d = x.ndim == 1
        if one_d:
            x = x[None, :]
        if x.ndim != 2:
            raise ValueError(f"expected a (channels, samples) block, got shape {np.shape(block)}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        channels, n = x.shape
        if n == 0 or channels == 0:
            return x[0].copy() if one_d else x.copy()
        sr = float(sample_rate)
        for s in self._streams:
            if s.failed or _bypassed(self.board, s.plugin):
                if not s.failed and s.ready is not None:
                    # Newly bypassed: a delay stands in for the latency it had; re-enabling re-primes it.
                    s.delay, s.ready = (_Delay(s.deficit) if s.deficit else None), None
                if s.delay is not None:
                    x = s.delay(x)
                continue
            try:
                if s.ready != (sr, channels):
                    self._prime(s, sr, channels)
                y = _as_channels_first(s.plugin.process(x, sr, buffer_size=self.buffer_size, reset=False), channels)
            except Exception as e:
                self._fail(s, f"{type(e).__name__}: {e}")
                if s.delay is not None:
                    x = s.delay(x)
                continue
            if y.ndim != 2 or y.shape[0] != channels or y.shape[1] > n:
                self._fail(s, f"returned shape {y.shape} for a block of shape {x.shape}")
            elif self.check_finite and not np.isfinite(y).all():
                self._fail(s, "produced non-finite samples (NaN or inf)")
            else:
                if y.shape[1] < n:
                    s.deficit += n - y.shape[1]
                    y = np.concatenate([np.zeros((channels, n - y.shape[1]), np.float32), y], axis=1)
                x = np.ascontiguousarray(y, dtype=np.float32)
                continue
            if s.delay is not None:
                x = s.delay(x)
        self.blocks += 1
        if np.may_share_memory(x, block):
            x = x.copy()  # nothing processed it: never hand back the caller's buffer
        return x[0] if one_d else x

    def process_ramped(
        self,
        block: np.ndarray,
        sample_rate: float,
        ramps: Sequence[tuple[str, float, float]],
        *,
        sub_block: int = RAMP_BLOCK,
    ) -> np.ndarray:
        """Process one block while parameters move linearly, instead of jumping, to new values.

        ``ramps`` holds ``(name, start, end)`` with registry names as for :func:`apply_parameter`. The
        block ``(channels, n)`` (1-D is mono) is split into ``K = ceil(n / sub_block)`` sub-blocks
        processed in order (``reset=False``: state and tails continue); before sub-block ``j`` (0-based)
        each parameter is set to ``start + (end − start)·(j + 1)/K``, so it moves by ``|end − start|/K``
        per sub-block and holds ``end`` in the last. A ramp whose ``end`` the plugin refuses is dropped
        before any audio (the message goes to :attr:`parameter_errors`); the audio still flows. Returns
        the same shape.
        """
        if sub_block < 1:
            raise ValueError(f"sub_block must be >= 1 sample, got {sub_block}")
        x = np.asarray(block)
        n = x.shape[-1]
        active = []
        for ramp in ramps:  # check the targets first (the first sub-block's value then replaces them)
            try:
                apply_parameter(self.board, ramp[0], ramp[2])
                active.append(ramp)
            except ChainSpecError as e:
                self.parameter_errors.append(str(e))
        k = max(1, math.ceil(n / sub_block))
        parts = []
        for j in range(k):
            for ramp in list(active):
                name, start, end = ramp
                try:
                    apply_parameter(self.board, name, end if j == k - 1 else start + (end - start) * (j + 1) / k)
                except ChainSpecError as e:  # an external plugin refusing a value between two it accepts
                    self.parameter_errors.append(str(e))
                    active.remove(ramp)
            parts.append(self.process(x[..., n * j // k : n * (j + 1) // k], sample_rate))
        return parts[0] if k == 1 else np.concatenate(parts, axis=-1)

    def flush(self, samples: int, sample_rate: float, channels: int | None = None) -> np.ndarray:
        """Process ``samples`` of silence (reverb tails, buffered latency) and return it."""
        if channels is None:
            channels = next((s.ready[1] for s in self._streams if s.ready), 1)
        return self.process(np.zeros((channels, int(samples)), np.float32), sample_rate)
