"""Offline rendering: the live engine driven without a clock, as fast as the model runs.

One renderer serves arrays (:func:`render`) and files (:func:`lincae.render.files.render_files`): both
push input into a :class:`~lincae.engine.stream.StreamingEngine` (effect chains included), let it mix
several windows per model call (:meth:`~lincae.engine.stream.StreamingEngine.pump` with ``batch``), and
drop the engine's declared latency from the output (:func:`drive`). The result is what the live engine
plays, delayed by its latency: exactly with ``batch=1``, within float rounding otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lincae.engine.mixer import LatentMixer

#: Windows mixed per model call when rendering offline.
DEFAULT_BATCH = 16
#: Latent frames per model call when rendering through a streaming mixer (its steps are a few frames
#: each; wide calls amortise the per-call cost, and the cached state makes them equal to step-by-step
#: calls within float rounding).
STREAM_RENDER_FRAMES = 512


def render_batch(mixer: LatentMixer) -> int:
    """Steps per model call for an offline render with ``mixer``: :data:`DEFAULT_BATCH` windows, or
    :data:`STREAM_RENDER_FRAMES` latent frames' worth of a streaming mixer's steps."""
    if mixer.streaming:
        return max(DEFAULT_BATCH, STREAM_RENDER_FRAMES // mixer.config.stream_frames)
    return DEFAULT_BATCH


Progress = Callable[[int, int], None]


def stack_sources(mixer: LatentMixer, sources: Sequence[np.ndarray]) -> np.ndarray:
    """Sources ``(channels_i, T_i)`` → window rows ``(rows, T)`` (zero-padded to the longest)."""
    cfg = mixer.config
    if len(sources) != cfg.num_sources:
        raise ValueError(f"engine expects {cfg.num_sources} source(s), got {len(sources)}")
    length = max(s.shape[-1] for s in sources)
    rows = np.zeros((mixer.num_rows, length), np.float32)
    for r, (i, ch) in enumerate(mixer.rows):
        src = np.asarray(sources[i], dtype=np.float32)
        if src.ndim != 2 or src.shape[0] != cfg.sources[i]:
            raise ValueError(f"source {i + 1} must be ({cfg.sources[i]}, samples), got shape {src.shape}")
        if not np.isfinite(src).all():
            raise ValueError(f"source {i + 1} contains NaN or Inf samples")
        rows[r, : src.shape[-1]] = src[ch]
    return rows


def drive(
    stream: Any,
    read: Callable[[np.ndarray], None],
    write: Callable[[np.ndarray], None],
    total: int,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> None:
    """Run ``stream`` (a :class:`~lincae.engine.stream.StreamingEngine`) over ``total`` input samples.

    ``read(block)`` fills ``block`` ``(rows, n)`` with the next input (zeros past the end); ``write(y)``
    receives the output ``(out_channels, m)`` aligned with the input (the declared latency dropped), in
    order, ``total`` samples in all. Blocks are ``stream.max_block`` samples.
    """
    n = stream.max_block
    inp = np.zeros((stream.rows, n), np.float32)
    out = np.zeros((stream.out_channels, n), np.float32)
    skip = stream.latency
    kept = 0
    with stream.mixer.session():
        while kept < total:
            read(inp)
            stream.push(inp)
            stream.pump(batch)
            stream.pull(out)
            drop = min(skip, n)
            skip -= drop
            y = out[:, drop : drop + min(n - drop, total - kept)]
            kept += y.shape[-1]
            if y.shape[-1]:
                write(y)
            if progress is not None:
                progress(kept, total)


def render(
    mixer: LatentMixer,
    sources: Sequence[np.ndarray],
    progress: Progress | None = None,
    *,
    batch: int = DEFAULT_BATCH,
    pre: Mapping[int, Any] | None = None,
    post: Any = None,
) -> np.ndarray:
    """Mix whole signals: sources ``(channels_i, T_i)`` → output ``(out_channels, T)``, latency-compensated.

    Window ``k`` sees input ``[end_k − W, end_k)`` (zeros before the start and after the end), exactly
    as the live engine does, so the live output equals this one delayed by the declared latency
    (exactly with ``batch=1``). ``pre``/``post``: effect chains (built boards), as in the live engine.
    """
    from lincae.engine.stream import StreamingEngine

    rows = stack_sources(mixer, sources)
    length = rows.shape[-1]
    stream = StreamingEngine(mixer, block=0, max_block=max(1, batch) * mixer.step, pre=pre, post=post)
    out = np.zeros((stream.out_channels, length), np.float32)
    pos = [0, 0]

    def read(block: np.ndarray) -> None:
        window_slice(rows, pos[0], block)
        pos[0] += block.shape[-1]

    def write(y: np.ndarray) -> None:
        out[:, pos[1] : pos[1] + y.shape[-1]] = y
        pos[1] += y.shape[-1]

    drive(stream, read, write, length, batch=batch, progress=progress)
    return out


def window_slice(rows: np.ndarray, start: int, out: np.ndarray) -> None:
    """``out[:] = rows[:, start : start + W]`` with zeros outside ``rows``."""
    n = out.shape[-1]
    out[...] = 0.0
    lo, hi = max(0, start), min(rows.shape[-1], start + n)
    if hi > lo:
        out[:, lo - start : hi - start] = rows[:, lo:hi]
