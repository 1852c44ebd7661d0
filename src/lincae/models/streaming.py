"""Exact block-by-block inference of streamable models (``GeneratorConfig.streamable``).

A streamable model normalises each frame alone and convolves causally along time (the encoder's first
layer may look ``lookahead`` frames ahead), so it can run on a few new frames at a time with each time
convolution continuing from its cached last ``kernel - 1`` input frames (Caillon & Esling, arXiv
2204.07064). The two halves stream separately, so that latents can be mixed in between:

- :class:`StreamingEncoder`: audio blocks ``[B, n]`` of any size → latent frames ``[B, C, m]`` as soon
  as they are complete: latent frame ``j`` needs input up to sample ``j·hop + n_fft + lookahead·hop``.
- :class:`StreamingDecoder`: latent frames ``[B, C, m]`` → the ``m·hop`` audio samples they finalise
  (overlap-add of ``n_fft``-sample frames: sample ``s`` is final once frame ``s // hop`` is decoded).

They keep the streaming contract of :mod:`lincae.models.base`: every push of ``n·hop`` samples gives
``n·hop`` samples back, and chained they give the offline ``decode(encode(x), seed=seed)`` (same noise
per frame, see :func:`frame_noise`) delayed by ``D`` = :func:`stream_delay` = ``n_fft − hop +
lookahead·hop`` samples, within float rounding, whatever the block sizes. The encoder stream's first
``D / hop`` latent frames are zeros (the silence before the stream: the offline pass has no frame
there), and the decoder stream renders them as silence without running the network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lincae.models.blocks import StreamState, streaming
from lincae.models.frontend import decompress
from lincae.models.overlap import overlap_add

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
    return int(model.stream_delay)  # type: ignore[attr-defined]


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
        self.frames_out = 0  # latent frames returned (the leading zero frames included)
        self.samples_in = 0

    @torch.no_grad()
    def push(self, audio: Tensor) -> Tensor:
        """Append ``audio: [B, n]`` float32 → the latent frames it completes, ``[B, C, m]`` (``m`` may be 0)."""
        if audio.dim() != 2 or audio.shape[0] != self.batch:
            raise ValueError(f"expected audio [{self.batch}, n], got shape {tuple(audio.shape)}")
        self.samples_in += audio.shape[-1]
        buf = torch.cat((self._pending, audio.to(self._pending.dtype)), dim=-1)
        hop, n_fft = self.front.hop_size, self.front.n_fft
        k = self.front.num_frames(buf.shape[-1])
        if k == 0 or (self.frames_in == 0 and k <= self.lookahead):  # the lookahead's first frames are waiting
            self._pending = buf
            return self._with_lead(torch.zeros(self.batch, self.channels, 0))
        rep = self.front.to_representation(buf[:, : (k - 1) * hop + n_fft].to(self.model.device))  # type: ignore[attr-defined]
        self._pending = buf[:, k * hop :]
        with self.model._network_context(), streaming(self.state):  # type: ignore[attr-defined]
            z = self.model.generator.encoder(rep)  # type: ignore[attr-defined]
        self.frames_in += k
        return self._with_lead(z.float() * self.model.scale_factor)  # type: ignore[attr-defined]

    def _with_lead(self, z: Tensor) -> Tensor:
        """``z`` after the zero frames still owed for the silence before the stream (one per hop received)."""
        owed = self.samples_in // self.front.hop_size - self.frames_out - z.shape[-1]
        if owed > 0:
            z = torch.cat((z.new_zeros(self.batch, self.channels, owed), z), dim=-1)
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
        # The encoder stream's first frames stand for the silence before it: offline frames −lead … −1.
        self.lead = stream_delay(self.model) // self.front.hop_size
        self.frame = -self.lead
        self._tail = torch.zeros(self.batch, self.front.n_fft - self.front.hop_size)
        self._window = self.front._synthesis_window().cpu()

    @torch.no_grad()
    def push(self, z: Tensor) -> Tensor:
        """Decode latent frames ``z: [B, C, m]`` (as :meth:`StreamingEncoder.push` returns) → ``[B, m · hop]``."""
        hop = self.front.hop_size
        silent = min(self.lead, z.shape[-1])  # frames of the silence before the stream: no network
        if silent:
            self.lead -= silent
            self.frame += silent
            z = z[..., silent:]
        m = z.shape[-1]
        if m == 0:
            return torch.zeros(self.batch, silent * hop)
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
        out = overlap_add(frames.transpose(1, 2), hop)  # [B, (m − 1)·hop + n_fft]
        out[:, : self._tail.shape[-1]] += self._tail
        self._tail = out[:, m * hop :].clone()
        if silent:
            return torch.cat((out.new_zeros(self.batch, silent * hop), out[:, : m * hop]), dim=-1)
        return out[:, : m * hop]


__all__ = ["StreamingDecoder", "StreamingEncoder", "frame_noise", "stream_delay"]
