"""Offline rendering with the streaming engine's mixer: no clock, as fast as the model runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lincae.engine.mixer import LatentMixer


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


def render(
    mixer: LatentMixer, sources: Sequence[np.ndarray], progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Mix whole signals: sources ``(channels_i, T_i)`` → output ``(out_channels, T)``, latency-compensated.

    Window ``k`` sees input ``[end_k − W, end_k)`` (zeros before the start and after the end), exactly
    as the live engine does, so the live output equals this one delayed by the declared latency.
    """
    rows = stack_sources(mixer, sources)
    length = rows.shape[-1]
    first = mixer.first_output_index  # negative: the pre-roll before input sample 0
    total_windows = -(-(length - first) // mixer.step)
    out = np.zeros((mixer.out_channels, total_windows * mixer.step), np.float32)
    window = np.zeros((mixer.num_rows, mixer.window), np.float32)
    for k in range(total_windows):
        end = mixer.window_end(k)
        window_slice(rows, end - mixer.window, window)
        out[:, k * mixer.step : (k + 1) * mixer.step] = mixer.process(k, window)
        if progress is not None:
            progress(k + 1, total_windows)
    return out[:, -first : -first + length]


def window_slice(rows: np.ndarray, start: int, out: np.ndarray) -> None:
    """``out[:] = rows[:, start : start + W]`` with zeros outside ``rows``."""
    n = out.shape[-1]
    out[...] = 0.0
    lo, hi = max(0, start), min(rows.shape[-1], start + n)
    if hi > lo:
        out[:, lo - start : hi - start] = rows[:, lo:hi]
