"""The latent mixer: one window in, one finished segment of output out.

Window ``k`` ends at input sample ``end_k = (k + 1) · S`` (``S`` = step in samples) and spans the
``W`` samples the model needs for ``window_frames`` latent frames. All sources' channels are encoded
as one batch; per latent frame, the mix is ``z_out = Σ_i c_i · z_i`` with each coefficient ``c_i``
(gain, polarity, mute, solo, master) ramped by :class:`Smoother`; the mix of every output channel is
decoded in one batch with the same noise, seeded by ``seed + k`` (a dual-mono mix stays dual mono).
The emitted region ends ``L`` (lookahead) samples before the window's end; its first ``X`` samples
crossfade with the previous window's held-back tail, so every step finalises ``S`` samples: absolute
``[k·S − L − X, (k+1)·S − L − X)``.

Both drivers — :mod:`lincae.engine.stream` (live) and :mod:`lincae.engine.offline` — call
:meth:`LatentMixer.process` (offline: :meth:`LatentMixer.process_many`, many windows per model call)
with the same windows, so their outputs are equal: exactly window by window, within float rounding in
batches. The model runs at the engine's precision (``EngineConfig.precision``, resolved by
:func:`lincae.models.precision.autocast_dtype_for`) inside the model's
:meth:`~lincae.models.base.LatentAutoencoder.precision_scope`: the model's own attributes are left as
they are.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch

from lincae.engine.config import EngineConfig
from lincae.engine.params import ParameterRegistry, mixer_parameters, source_coefficients
from lincae.models.base import LatentAutoencoder
from lincae.models.precision import autocast, autocast_dtype_for
from lincae.models.runtime import prepare_for_inference

#: The names of the dtypes an engine runs at (``LatentMixer.precision``).
_PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def crossfade_curves(length: int, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """Fade-in and fade-out ``(length,)`` float32 with ``fade_in + fade_out == 1`` (amplitude-complementary)."""
    if length == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    fade_in = t if shape == "linear" else np.sin(0.5 * math.pi * t) ** 2
    return fade_in.astype(np.float32), (1.0 - fade_in).astype(np.float32)


class Smoother:
    """Linear ramps with a fixed duration: each new target is reached ``ramp`` steps after it is set.

    ``advance(targets)`` returns the values for one more step (a latent frame); a value never moves
    by more than ``|target − start| / ramp`` per step.
    """

    def __init__(self, initial: np.ndarray, ramp: int) -> None:
        self.value = initial.astype(np.float64).copy()
        self.target = self.value.copy()
        self.increment = np.zeros_like(self.value)
        self.remaining = np.zeros(self.value.shape, dtype=np.int64)
        self.ramp = max(1, ramp)

    def advance(self, targets: np.ndarray) -> np.ndarray:
        changed = targets != self.target
        if changed.any():
            self.target = np.where(changed, targets, self.target)
            self.increment = np.where(changed, (targets - self.value) / self.ramp, self.increment)
            self.remaining = np.where(changed, self.ramp, self.remaining)
        moving = self.remaining > 0
        self.value = np.where(moving, self.value + self.increment, self.value)
        self.remaining = np.where(moving, self.remaining - 1, 0)
        self.value = np.where(moving & (self.remaining == 0), self.target, self.value)
        return self.value.copy()


class LatentMixer:
    """Windowed encode → latent mix → decode → crossfade, shared by the live and offline engines.

    Args:
        model: the autoencoder (put in eval mode and moved to ``device``; on CPU its weights are
            stored channels-last, see :func:`lincae.models.runtime.prepare_for_inference`).
        config: windowing, sources and behaviour.
        registry: parameters to read (default: a fresh :func:`mixer_parameters` registry).
        device: ``"cpu"``, ``"cuda"``... (default: CUDA when present).
    """

    #: Whether the model runs step by step on new audio (its streamed step) rather than on whole windows.
    streaming: ClassVar[bool] = False

    def __init__(
        self,
        model: LatentAutoencoder,
        config: EngineConfig,
        registry: ParameterRegistry | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = prepare_for_inference(model, self.device)
        #: The dtype the model runs in (``None``: float32), and its name (``fp32``, ``bf16``).
        self.autocast_dtype = (
            self.model.auto_dtype(self.device, streaming=self.streaming)
            if config.precision == "auto"
            else autocast_dtype_for(config.precision, self.device)
        )
        self.precision = _PRECISION_NAMES[self.autocast_dtype]
        self.config = config
        self.registry = registry or ParameterRegistry(mixer_parameters(config.num_sources))
        self.hop = model.hop_length
        self.notice = ""  # a line for the status (e.g. why a stream fell back to windows)
        self._set_geometry()
        self.sample_rate = model.sample_rate
        self.out_channels = config.out_channels
        # Row r of a window holds channel rows[r][1] of source rows[r][0].
        self.rows = [(i, c) for i, n in enumerate(config.sources) for c in range(n)]
        # Output channel o's dry sum adds these rows (a mono source feeds every output channel).
        self._dry_rows = [
            [r for r, (i, ch) in enumerate(self.rows) if ch == min(o, config.sources[i] - 1)]
            for o in range(self.out_channels)
        ]
        self.fade_in, self.fade_out = crossfade_curves(self.xfade, config.crossfade_shape)
        self.last_latents = np.zeros((config.num_sources, model.latent_channels), np.float32)
        self.last_mix_latents = np.zeros(model.latent_channels, np.float32)
        self.last_compute_s = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget the stream: window 0 comes next, parameters start (unramped) at the registry's values.

        Every :class:`~lincae.engine.stream.StreamingEngine` (hence every live start and every offline
        render) begins with this, so one mixer can serve one stream after another, not two at once.
        """
        self.last_latents.fill(0.0)
        self.last_mix_latents.fill(0.0)
        self.last_compute_s = 0.0
        frame_ms = 1000.0 * self.hop / self.sample_rate
        ramp = max(1, math.ceil(self.config.smoothing_ms / frame_ms))
        values = self.registry.values()
        self.coef = Smoother(np.array(source_coefficients(values, self.config.num_sources)), ramp)
        self.wet = Smoother(np.array([values["mix.dry_wet"] / 100.0]), ramp)
        self._coef_frames: dict[int, np.ndarray] = {}  # absolute latent frame → coefficients
        self._wet_frames: dict[int, float] = {}
        self._last_frame = -(10**9)
        self.tail = np.zeros((self.out_channels, self.xfade), np.float32)

    # ------------------------------------------------------------------ geometry
    #: Whether windows run through the model's cached convolutions (:class:`~lincae.engine.cached.CachedMixer`).
    streaming = False

    def _set_geometry(self) -> None:
        """Step ``S``, lookahead ``L``, crossfade ``X`` and window ``W``, in samples."""
        config = self.config
        config.check_model(self.hop)
        self.step = config.step_frames * self.hop
        self.lookahead = config.lookahead_frames * self.hop
        self.xfade = config.crossfade
        self.window = self.model.get_decoded_size(config.window_frames)

    def latency_samples(self, block: int = 0) -> int:
        """The engine's declared input-to-output latency in samples, for audio blocks of ``block`` samples.

        The one place it is computed: the live engine, renders, reports and JACK ports ask here.
        """
        return self.config.latency_samples(self.hop, block)

    def window_end(self, k: int) -> int:
        """Absolute input sample count at which window ``k`` is complete."""
        return (k + 1) * self.step

    def emitted_start(self, k: int) -> int:
        """Absolute output index of the first sample window ``k`` finalises."""
        return k * self.step - self.lookahead - self.xfade

    @property
    def first_output_index(self) -> int:
        return self.emitted_start(0)

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    # ------------------------------------------------------------------ parameters per frame
    def _frame_values(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients ``[count, sources]`` and wet fractions ``[count]`` for absolute frames ``first..``.

        Frames seen by an earlier window keep their values, so overlapping windows agree; new frames
        advance the smoothers toward the current parameter targets.
        """
        values = self.registry.values()
        targets = np.array(source_coefficients(values, self.config.num_sources))
        wet_target = np.array([values["mix.dry_wet"] / 100.0])
        coefs, wets = [], []
        for f in range(first, first + count):
            if f > self._last_frame:
                self._coef_frames[f] = self.coef.advance(targets)
                self._wet_frames[f] = float(self.wet.advance(wet_target)[0])
                self._last_frame = f
            coefs.append(self._coef_frames[f])
            wets.append(self._wet_frames[f])
        for f in [f for f in self._coef_frames if f < first]:
            del self._coef_frames[f], self._wet_frames[f]
        return np.stack(coefs), np.array(wets)

    @torch.no_grad()
    def warm_up(self, rounds: int = 2) -> None:
        """Run the model on silent windows (first calls are slow: allocations, kernel selection).

        The mixer's own state (smoothers, crossfade tail) is untouched.
        """
        x = torch.zeros(self.num_rows, self.window, device=self.device)
        with self.precision_scope():
            for _ in range(rounds):
                z = self.model.encode(x)
                self.model.decode(
                    z[: self.out_channels], full_length=self.window, diffusion_steps=self.config.diffusion_steps, seed=0
                )

    def precision_scope(self) -> contextlib.AbstractContextManager[None]:
        """The model at the engine's precision (:attr:`autocast_dtype`), on the calling thread, its own
        setting untouched: every call the mixer makes to the model runs inside."""
        return self.model.precision_scope(self.autocast_dtype)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """A scope in which one thread processes window after window (the live worker, a render).

        With ``bf16`` precision, the model's weights are cast to bfloat16 once for the whole scope
        (PyTorch keeps autocast's casts of the weights until its outermost region ends) instead of
        once per window: about 6 % of a live window's compute on CPU. The weights must not be changed
        in place inside the scope (a new model gets a new mixer).
        """
        with self.precision_scope(), autocast(self.autocast_dtype, self.device):
            yield

    def restart_crossfade(self, tail: np.ndarray) -> None:
        """After a gap, crossfade the next window from ``tail`` ``(out_channels, X)`` (e.g. the dry signal)."""
        self.tail[...] = tail

    # ------------------------------------------------------------------ windows
    def process(self, k: int, window: np.ndarray) -> np.ndarray:
        """Mix window ``k``: input ``window`` ``(rows, W)`` float32 → finalised output ``(out_channels, S)``."""
        return self.process_many(k, window[None])

    @torch.no_grad()
    def process_many(self, k: int, windows: np.ndarray) -> np.ndarray:
        """Mix windows ``k, k+1, ...``: ``windows`` ``(n, rows, W)`` → output ``(out_channels, n·S)``.

        The windows are encoded in one batch and their mixes decoded in one batch (window ``k + j``
        with noise seeded by ``seed + k + j``, as alone), so the result equals ``n`` calls of
        :meth:`process` within float rounding; offline rendering uses it to amortise per-call costs.
        """
        t0 = time.perf_counter()
        cfg = self.config
        n, rows, _ = windows.shape
        frames = cfg.window_frames
        values = [self._frame_values(self.window_end(k + j) // self.hop - frames, frames) for j in range(n)]
        coefs = np.stack([c for c, _ in values])  # [n, Z, sources]
        audio = torch.from_numpy(windows.reshape(n * rows, -1)).to(self.device)
        with self.precision_scope():
            z = self.model.encode(audio, max_batch_size=n * rows)
        if z.shape[-1] != frames:
            raise RuntimeError(f"window gave {z.shape[-1]} latent frames, expected {frames}")
        z = z.reshape(n, rows, *z.shape[1:])  # [n, rows, C, Z]
        mixed = self._mix(z, coefs)
        last = z[-1]
        self.last_latents = np.stack(
            [
                last[[r for r, (i, _) in enumerate(self.rows) if i == s]].mean(0)[:, -1].cpu().numpy()
                for s in range(cfg.num_sources)
            ]
        )
        # the newest latent frame of the mix as decoded (mean over output channels), for displays
        self.last_mix_latents = mixed[-1, :, :, -1].mean(0).cpu().numpy()
        # The output channels of one window share its noise (a dual-mono mix stays dual mono).
        seeds = [cfg.seed + k + j for j in range(n) for _ in range(self.out_channels)]
        with self.precision_scope():
            decoded = self.model.decode(
                mixed.reshape(n * self.out_channels, *mixed.shape[2:]),
                full_length=self.window,
                diffusion_steps=cfg.diffusion_steps,
                seeds=seeds,
                max_batch_size=n * self.out_channels,
            )
        wet = decoded.cpu().numpy().reshape(n, self.out_channels, -1)  # [n, out, W]

        lo = self.window - self.lookahead - self.step - self.xfade
        hi = self.window - self.lookahead
        # Wet fraction per sample: each latent frame's value over its hop, linearly interpolated.
        frame_pos = (np.arange(lo, hi) - (self.window - frames * self.hop)) / self.hop
        out = np.empty((self.out_channels, n * self.step), np.float32)
        x_len = self.xfade
        for j in range(n):
            dry = self._dry(windows[j, :, lo:hi])
            w = np.interp(frame_pos, np.arange(frames), values[j][1]).astype(np.float32)
            seg = w * wet[j, :, lo:hi] + (1.0 - w) * dry
            o = out[:, j * self.step : (j + 1) * self.step]
            o[:, :x_len] = seg[:, :x_len] * self.fade_in + self.tail * self.fade_out
            o[:, x_len:] = seg[:, x_len : self.step]
            self.tail[...] = seg[:, self.step :]
        self.last_compute_s = (time.perf_counter() - t0) / n
        return out

    def _mix(self, z: torch.Tensor, coefs: np.ndarray) -> torch.Tensor:
        """Latents ``z: [n, rows, C, Z]`` and per-frame coefficients ``coefs: (n, Z, sources)`` → mixes
        ``[n, out_channels, C, Z]``: output channel ``o`` sums ``c_i · z`` over the rows feeding it."""
        cfg = self.config
        c = torch.from_numpy(coefs.transpose(0, 2, 1).astype(np.float32)).to(z.device)  # [n, sources, Z]
        mixed = torch.zeros(z.shape[0], self.out_channels, *z.shape[2:], device=z.device)
        for o in range(self.out_channels):
            for r, (i, ch) in enumerate(self.rows):
                if ch == min(o, cfg.sources[i] - 1):
                    mixed[:, o] += c[:, i, None, :] * z[:, r]
        return mixed

    def _dry(self, rows: np.ndarray) -> np.ndarray:
        """Sum of the sources' input rows ``(rows, n)`` per output channel → ``(out_channels, n)``."""
        out = np.empty((self.out_channels, rows.shape[-1]), np.float32)
        return self.dry_into(rows, out)

    def dry_into(self, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Like :meth:`_dry`, into ``out`` ``(out_channels, n)`` float32 without allocating arrays; returns ``out``.

        Safe to call from the audio callback (it only writes ``out``, row by row, in place).
        """
        out[...] = 0.0
        for o, rs in enumerate(self._dry_rows):
            acc = out[o]
            for r in rs:
                np.add(acc, rows[r], out=acc)
        return out

    def dry_segment(self, window: np.ndarray) -> np.ndarray:
        """The dry sum over the region window ``k`` would emit, tail included: ``(out_channels, S + X)``."""
        lo = self.window - self.lookahead - self.step - self.xfade
        return self._dry(window[:, lo : self.window - self.lookahead])
