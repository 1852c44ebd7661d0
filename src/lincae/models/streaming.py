"""Exact block-by-block inference of streamable models (``GeneratorConfig.streamable``).

A streamable model normalises each frame alone and convolves causally along time (the encoder's first
layer may look ``lookahead`` frames ahead), so it can run on a few new frames at a time with each time
convolution continuing from its cached last ``kernel - 1`` input frames (Caillon & Esling, arXiv
2204.07064). The two halves stream separately, so that latents can be mixed in between:

- :class:`StreamingEncoder`: audio blocks ``[B, n]`` of any size → latent frames ``[B, C, m]`` as soon
  as they are complete: latent frame ``j`` needs input up to sample ``j·hop + n_fft + lookahead·hop``.
- :class:`StreamingDecoder`: latent frames ``[B, C, m]`` → the ``m·hop`` audio samples they finalise
  (overlap-add of ``n_fft``-sample frames: sample ``s`` is final once frame ``s // hop`` is decoded).

Chained, they give the offline ``decode(encode(x), seed=seed)`` (same noise per frame, see
:func:`frame_noise`) delayed by :func:`stream_delay` samples: ``n_fft − hop + lookahead·hop``, within
float rounding, whatever the block sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lincae.models.blocks import StreamState, streaming
from lincae.models.frontend import decompress

_GOLDEN = 0x9E3779B97F4A7C15
_STEP_KEY = 0xBF58476D1CE4E5B9
_MASK = (1 << 64) - 1


def frame_noise(seed: int, first: int, count: int, rows: int, step: int = 0) -> Tensor:
    """Decoder noise for frames ``first … first + count − 1``: ``[1, 2, rows, count]`` float32, standard normal.

    Frame ``n``'s noise depends only on ``(seed, step, n)`` (a generator seeded per frame), so a stream
    decoding a few frames at a time draws exactly what the offline pass draws for the whole clip.
    ``step`` tells the noise of the sampler's steps apart (0: the initial noise).
    """
    gen = torch.Generator()
    out = torch.empty((count, 2, rows))
    for i in range(count):
        gen.manual_seed((seed * _GOLDEN + step * _STEP_KEY + first + i) & _MASK)
        torch.randn((2, rows), generator=gen, out=out[i])
    return out.permute(1, 2, 0).unsqueeze(0)


def stream_delay(model: torch.nn.Module) -> int:
    """Samples between input and output of an encode → decode stream: ``n_fft − hop + lookahead · hop``."""
    front = model.frontend  # type: ignore[attr-defined]
    lookahead = model.generator.config.lookahead  # type: ignore[attr-defined]
    return front.n_fft - front.hop_size + lookahead * front.hop_size


def _require_streamable(model: torch.nn.Module) -> None:
    if not getattr(model.generator.config, "streamable", False):  # type: ignore[attr-defined]
        name = getattr(model, "name", "model")
        raise ValueError(f"model {name!r} is not streamable (its config has streamable: false); use windows")


class StreamingEncoder:
    """Audio ``[B, n]`` blocks → latents ``[B, C, m]`` (times ``scale_factor``), frame by frame, exactly.

    Args:
        model: a streamable :class:`~lincae.models.autoencoder.Autoencoder` (eval mode).
        batch: signals encoded side by side (constant for the stream).
    """

    def __init__(self, model: torch.nn.Module, batch: int) -> None:
        _require_streamable(model)
        self.model = model
        self.batch = batch
        self.front = model.frontend  # type: ignore[attr-defined]
        self.lookahead = model.generator.config.lookahead  # type: ignore[attr-defined]
        self.channels = model.latent_channels  # type: ignore[attr-defined]
        self.reset()

    def reset(self) -> None:
        """Start a new stream (the next sample pushed is sample 0)."""
        self.state = StreamState()
        self._pending = torch.zeros(self.batch, 0)
        self.frames_in = 0  # STFT frames fed to the encoder
        self.frames_out = 0  # latent frames returned

    @torch.no_grad()
    def push(self, audio: Tensor) -> Tensor:
        """Append ``audio: [B, n]`` float32 → the latent frames it completes, ``[B, C, m]`` (``m`` may be 0)."""
        if audio.dim() != 2 or audio.shape[0] != self.batch:
            raise ValueError(f"expected audio [{self.batch}, n], got shape {tuple(audio.shape)}")
        buf = torch.cat((self._pending, audio.to(self._pending.dtype)), dim=-1)
        hop, n_fft = self.front.hop_size, self.front.n_fft
        k = self.front.num_frames(buf.shape[-1])
        if k == 0 or (self.frames_in == 0 and k <= self.lookahead):  # the lookahead's first frames are waiting
            self._pending = buf
            return torch.zeros(self.batch, self.channels, 0)
        rep = self.front.to_representation(buf[:, : (k - 1) * hop + n_fft].to(self.model.device))  # type: ignore[attr-defined]
        self._pending = buf[:, k * hop :]
        with self.model._network_context(), streaming(self.state):  # type: ignore[attr-defined]
            z = self.model.generator.encoder(rep)  # type: ignore[attr-defined]
        self.frames_in += k
        z = z.float() * self.model.scale_factor  # type: ignore[attr-defined]
        self.frames_out += z.shape[-1]
        return z


class StreamingDecoder:
    """Latents ``[B, C, m]`` → the ``m · hop`` audio samples they finalise ``[B, m·hop]``, exactly.

    Every item of the batch is decoded with the same noise (:func:`frame_noise` of ``seed``), so equal
    latents give equal audio (a dual-mono mix stays dual mono).

    Args:
        model: a streamable :class:`~lincae.models.autoencoder.Autoencoder` (eval mode).
        batch: signals decoded side by side (constant for the stream).
        seed: decoder noise seed.
        steps: consistency sampling steps (1: one-step decoding).
    """

    def __init__(self, model: torch.nn.Module, batch: int, seed: int = 0, steps: int = 1) -> None:
        _require_streamable(model)
        if steps < 1:
            raise ValueError(f"diffusion_steps must be >= 1, got {steps}")
        self.model = model
        self.batch = batch
        self.seed = seed
        self.steps = steps
        self.front = model.frontend  # type: ignore[attr-defined]
        self.net = model.generator  # type: ignore[attr-defined]
        self.reset()

    def reset(self) -> None:
        """Start a new stream (the next latent frame is frame 0)."""
        self.pyramid_state = StreamState()
        self.step_states = [StreamState() for _ in range(self.steps)]
        self.frame = 0
        self._tail = torch.zeros(self.batch, self.front.n_fft - self.front.hop_size)
        self._window = self.front._synthesis_window().cpu()

    @torch.no_grad()
    def push(self, z: Tensor) -> Tensor:
        """Decode latent frames ``z: [B, C, m]`` (as :meth:`StreamingEncoder.push` returns) → ``[B, m · hop]``."""
        m = z.shape[-1]
        hop, n_fft = self.front.hop_size, self.front.n_fft
        if m == 0:
            return torch.zeros(self.batch, 0)
        device = self.model.device  # type: ignore[attr-defined]
        cfg = self.net.config
        sampler = self.model.diffusion  # type: ignore[attr-defined]
        lat = z.to(device, torch.float32) / self.model.scale_factor  # type: ignore[attr-defined]
        rows = cfg.hop * 2

        def noise(step: int) -> Tensor:
            return frame_noise(self.seed, self.frame, m, rows, step).to(device).expand(self.batch, -1, -1, -1)

        with self.model._network_context():  # type: ignore[attr-defined]
            with streaming(self.pyramid_state):
                pyramid = self.net.decoder(lat)
            x = noise(0) * cfg.sigma_max
            pred = x
            for k in range(self.steps):
                sigma = sampler.sigma(self.steps + 1 - k, self.steps + 1)
                with streaming(self.step_states[k]):
                    pred = self.net.forward_generator(None, x, sigma, pyramid)
                if k + 1 < self.steps:
                    next_sigma = sampler.sigma(self.steps - k, self.steps + 1)
                    x = pred + (next_sigma**2 - sampler.config.sigma_min**2) ** 0.5 * noise(k + 1)
        self.frame += m
        rep = F.pad(pred.float().cpu(), (0, 0, 0, 1))  # the (zero) Nyquist row
        spec = decompress(
            torch.complex(rep[:, 0], rep[:, 1]), self.front.config.alpha_rescale, self.front.config.beta_rescale
        )
        frames = torch.fft.irfft(spec, dim=-2) * self._window.unsqueeze(-1)  # [B, n_fft, m]
        # Overlap-add: frame j's quarter q lands on hop q of output block j + q.
        parts = frames.reshape(self.batch, n_fft // hop, hop, m)  # [B, quarter, hop, m]
        out = torch.zeros(self.batch, m + n_fft // hop - 1, hop)
        for q in range(n_fft // hop):
            out[:, q : q + m] += parts[:, q].transpose(1, 2)
        out = out.reshape(self.batch, -1)
        out[:, : self._tail.shape[-1]] += self._tail
        self._tail = out[:, m * hop :].clone()
        return out[:, : m * hop]


__all__ = ["StreamingDecoder", "StreamingEncoder", "frame_noise", "stream_delay"]
