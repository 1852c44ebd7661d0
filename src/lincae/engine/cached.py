"""The cached-convolution mixer: a streamable model runs step by step on new audio only.

A model whose config says ``streamable`` (per-frame norms, causal time convolutions) keeps the state of
every time convolution between calls (:mod:`lincae.models.streaming`), so each step computes only its new
latent frames instead of a whole overlapping window, and no crossfade is needed: the output is the
offline ``decode(mix(encode(x)))`` delayed by the model's own delay ``D = n_fft − hop + lookahead·hop``.

:class:`CachedMixer` gives the :class:`~lincae.engine.stream.StreamingEngine` the interface of
:class:`~lincae.engine.mixer.LatentMixer`, with step ``S = stream_frames · hop``, no crossfade, and
windows ``W = S + D`` long: step ``k``'s window is the input ``[k·S − D, (k+1)·S)``, of which the
model takes the newest ``S`` samples (the rest is its cached past); after a gap the stream restarts
from silence, as at the start (the model's streaming contract, :mod:`lincae.models.base`). Output of step ``k`` is
``[k·S − D, (k+1)·S − D)``; the dry signal for it is the window's first ``S`` samples. Gain, polarity,
mute, solo, master and dry/wet apply per latent frame, as in the windowed mixer, so a change is heard
after the declared latency.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.params import ParameterRegistry
from lincae.models.base import LatentAutoencoder


class CachedMixer(LatentMixer):
    """Step-by-step encode → latent mix → decode of a streamable model (see the module docstring).

    Args: as :class:`~lincae.engine.mixer.LatentMixer`; ``model.streamable`` must be true.
    """

    streaming = True

    def __init__(
        self,
        model: LatentAutoencoder,
        config: EngineConfig,
        registry: ParameterRegistry | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not model.streamable:
            raise ValueError(f"model {model.name!r} cannot stream (its config has streamable: false)")
        super().__init__(model, config, registry, device)
        frames = config.stream_frames
        with self.precision_scope():  # a model may prepare its streams for the precision they run at
            self.encoder = self.model.open_encoder_stream(self.num_rows, step_frames=frames)
            self.decoder = self.model.open_decoder_stream(
                self.out_channels, config.seed, config.diffusion_steps, step_frames=frames
            )
        self._restart(0)

    def _set_geometry(self) -> None:
        self.delay = self.model.stream_delay
        self.step = self.config.stream_frames * self.hop
        self.lookahead = self.delay  # emitted_start(k) = k·S − D
        self.xfade = 0
        self.window = self.step + self.delay

    def latency_samples(self, block: int = 0) -> int:
        return self.config.latency_samples(self.hop, block, stream_delay=self.delay)

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "encoder"):
            self._restart(0)

    def _restart(self, k: int) -> None:
        """Empty the model's caches; the next step is ``k``, fed its whole window."""
        self.encoder.reset()
        self.decoder.reset()
        self._restart_frame = (k * self.step - self.delay) // self.hop  # absolute frame of the stream's frame 0
        self.decoder.frame = self._restart_frame  # noise follows absolute frames
        self._next = k

    @torch.no_grad()
    def warm_up(self, rounds: int = 2) -> None:
        """Run the streams on silence (first calls allocate, pick kernels and build a model's fused step),
        then restart them where they were: the output is as if this had not run."""
        silence = torch.zeros(self.num_rows, self.step)
        with self.precision_scope():
            for _ in range(rounds):
                self.decoder.push(self.encoder.push(silence)[: self.out_channels])
        self._restart(self._next)

    @torch.no_grad()
    def process_many(self, k: int, windows: np.ndarray) -> np.ndarray:
        """Steps ``k, k+1, …``: ``windows`` ``(n, rows, W)`` → output ``(out_channels, n·S)``.

        The steps' new samples go through the model in one call (equal to ``n`` calls of
        :meth:`process` within float rounding). A ``k`` other than the step after the last restarts the
        stream from ``windows[0]``.
        """
        t0 = time.perf_counter()
        n = windows.shape[0]
        s = self.step
        if k != self._next:
            self._restart(k)
        # Every step feeds its S new samples and yields exactly S samples (the stream contract).
        new = np.concatenate(list(windows[:, :, -s:]), axis=-1)
        with self.precision_scope():
            z = self.encoder.push(torch.from_numpy(new))  # [rows, C, m]
        m = z.shape[-1]
        if m * self.hop != n * s:
            raise RuntimeError(f"{n} step(s) gave {m} latent frames, expected {n * s // self.hop}")
        first = self._restart_frame + self.encoder.frames_out - m  # absolute index of z's first frame
        coefs, wets = self._frame_values(first, m)
        mixed = self._mix(z[None], coefs[None])[0]  # [out, C, m]
        self.last_latents = np.stack(
            [
                z[[r for r, (i, _) in enumerate(self.rows) if i == src], :, -1].mean(0).numpy()
                for src in range(self.config.num_sources)
            ]
        )
        self.last_mix_latents = mixed[:, :, -1].mean(0).numpy()
        with self.precision_scope():
            wet = self.decoder.push(mixed).numpy()  # [out, n·S]
        # Wet fraction per sample: its frame's value (frame f finalises samples [f·hop, (f+1)·hop)).
        w = np.repeat(wets.astype(np.float32), self.hop)
        dry = np.concatenate([self._dry(windows[j, :, :s]) for j in range(n)], axis=-1)
        out = w * wet + (1.0 - w) * dry
        self._next = k + n
        self.last_compute_s = (time.perf_counter() - t0) / n
        return out

    def dry_segment(self, window: np.ndarray) -> np.ndarray:
        """The dry sum over the samples step ``k`` emits: ``(out_channels, S)``."""
        return self._dry(window[:, : self.step])


def make_mixer(
    model: LatentAutoencoder,
    config: EngineConfig,
    registry: ParameterRegistry | None = None,
    device: str | torch.device | None = None,
) -> LatentMixer:
    """The mixer a config asks for with this model: :class:`CachedMixer` when it streams, else windows.

    ``mode: stream`` with a model that cannot stream falls back to windows; the mixer's ``notice`` says
    so in one line (naming the model and the latency it runs at), for the status line and the log.
    """
    if config.streams(model.streamable):
        return CachedMixer(model, config, registry, device)
    mixer = LatentMixer(model, config, registry, device)
    if config.mode == "stream":
        ms = 1000.0 * mixer.latency_samples() / mixer.sample_rate
        mixer.notice = (
            f"model {model.name!r} cannot stream (not a streamable model): using windows, {ms:.0f} ms plus one block"
        )
    return mixer


__all__ = ["CachedMixer", "make_mixer"]
