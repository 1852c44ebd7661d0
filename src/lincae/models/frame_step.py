"""FrameNet streams: the encoder and decoder as pure step functions of explicit state, run in PyTorch or,
where it is installed, in ONNX Runtime.

A step takes ``m`` new frames' worth of input and the state the previous step left (the analysis
buffer, the running levels' history, every depthwise convolution's last ``kernel − 1`` frames, the
overlap-add tail) and returns its output and the new state. The DFT and inverse DFT are matrix products
with fixed bases and the overlap-add is pads and adds, so a step exports to ONNX as it is: one call into
ONNX Runtime replaces the ~150 operator calls eager PyTorch pays tens of microseconds each for on a
small CPU (``benchmarks/stream_rtf.py``). Both back ends keep the same state, so a stream switches
between them freely: steps of the exported frame count go to ONNX Runtime, any other to PyTorch.

``lincae[onnx]`` installs ONNX Runtime; without it every step runs in PyTorch, with the same output.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lincae.models.framenet import ConvNeXtBlock, FrameDecoder, FrameEncoder, FrameNet, FrameNetConfig

#: Largest difference allowed between the ONNX Runtime and PyTorch outputs of a step (checked once per
#: exported step on random input; a larger one keeps the stream on PyTorch).
ONNX_TOLERANCE = 1e-4


def _dft_basis(n: int) -> tuple[Tensor, Tensor]:
    """``rfft`` as two matrices ``[n, n // 2 + 1]``: ``x @ cos`` is the real part, ``x @ sin`` the imaginary."""
    t = torch.arange(n, dtype=torch.float64)[:, None]
    k = torch.arange(n // 2 + 1, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * t * k / n
    return torch.cos(angle).float(), (-torch.sin(angle)).float()


def _idft_basis(n: int) -> tuple[Tensor, Tensor]:
    """``irfft(·, n)`` as two matrices ``[n // 2 + 1, n]`` applied to the real and imaginary parts."""
    k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
    t = torch.arange(n, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * k * t / n
    weight = torch.full((n // 2 + 1, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    real = weight * torch.cos(angle) / n
    imag = -weight * torch.sin(angle) / n
    imag[0] = 0.0  # the imaginary parts of DC and Nyquist do not count, as in irfft
    if n % 2 == 0:
        imag[-1] = 0.0
    return real.float(), imag.float()


def _block_step(block: ConvNeXtBlock, x: Tensor, history: Tensor) -> tuple[Tensor, Tensor]:
    """One ConvNeXt block over ``x: [B, C, m]`` continuing ``history: [B, C, k − 1]``."""
    full = torch.cat((history, x), dim=-1)
    y = F.conv1d(full, block.dwconv.weight, block.dwconv.bias, groups=x.shape[1]).transpose(1, 2)
    y = block.pwconv2(F.gelu(block.pwconv1(block.norm(y))))
    return x + (block.gamma * y).transpose(1, 2), full[..., x.shape[-1] :]


class _ChannelNorm(torch.autograd.Function):
    """LayerNorm over the channels of ``[B, C, 1]``: one ONNX ``LayerNormalization`` over axis 1, with no
    transposes around it (the lean one-frame graph keeps its activations channels-first)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        """``weight``, ``bias``: ``[C, 1]``, the shape ONNX wants for normalising ``[C, 1]``."""
        return F.layer_norm(x.transpose(1, 2), (x.shape[1],), weight[:, 0], bias[:, 0], eps).transpose(1, 2)

    @staticmethod
    def symbolic(g: Any, x: Any, weight: Any, bias: Any, eps: float) -> Any:
        return g.op("LayerNormalization", x, weight, bias, axis_i=1, epsilon_f=eps)


def _channel_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    return _ChannelNorm.apply(x, norm.weight[:, None], norm.bias[:, None], norm.eps)  # type: ignore[no-any-return]


def _pointwise(linear: nn.Linear, x: Tensor, gain: Tensor | None = None) -> Tensor:
    """``linear`` over the channels of ``[B, C, m]`` as a 1×1 convolution, its output scaled by ``gain``."""
    weight, bias = linear.weight, linear.bias
    if gain is not None:
        weight, bias = gain[:, None] * weight, gain * bias
    return F.conv1d(x, weight[:, :, None], bias)


def _lean_block_step(block: ConvNeXtBlock, x: Tensor, history: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`_block_step` for one frame, ``x: [B, C, 1]``, in eight ONNX nodes: the norm over axis 1
    and 1×1 convolutions instead of transposes and reshaped matrix products, ``γ`` folded into the
    second one's weights."""
    full = torch.cat((history, x), dim=-1)
    y = F.conv1d(full, block.dwconv.weight, block.dwconv.bias, groups=x.shape[1])
    y = F.gelu(_pointwise(block.pwconv1, _channel_norm(block.norm, y)))  # type: ignore[arg-type]
    return x + _pointwise(block.pwconv2, y, block.gamma), full[..., 1:]  # type: ignore[arg-type]


def _level_step(power: Tensor, history: Tensor, frames: int, eps: float) -> tuple[Tensor, Tensor]:
    """Running level of ``power: [B, 1, m]`` continuing ``history: [B, 1, L − 1]`` → ``[B, 1, m]``, history."""
    full = torch.cat((history, power), dim=-1)
    mean = F.avg_pool1d(full, frames, stride=1) if frames > 1 else full
    return torch.sqrt(mean + eps * eps), full[..., power.shape[-1] :]


class EncoderStep(nn.Module):
    """``(audio [B, m·hop], buffer [B, n_fft − hop], level [B, 1, L − 1], *histories [B, C, k − 1])`` →
    ``(latents [B, latent_channels, m], buffer, level, *histories)``; the weights are ``encoder``'s."""

    def __init__(self, encoder: FrameEncoder, frames: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.config: FrameNetConfig = encoder.config
        self.frames = frames
        cos, sin = _dft_basis(self.config.n_fft)
        scale = encoder.window * (2.0 / encoder.window.sum())
        self.register_buffer("window", scale, persistent=False)
        # [n_fft, 2·bins]: ``frame @ dft`` is ``[re | im]`` of the windowed frame's rfft
        self.register_buffer("dft", scale[:, None] * torch.cat((cos, sin), dim=-1), persistent=False)

    def forward(self, audio: Tensor, buffer: Tensor, level: Tensor, *histories: Tensor) -> tuple[Tensor, ...]:
        cfg, enc, m = self.config, self.encoder, self.frames
        full = torch.cat((buffer, audio), dim=-1)
        if torch.onnx.is_in_onnx_export() and m == 1:
            return self._lean_forward(full, level, histories)
        if torch.onnx.is_in_onnx_export():  # a static graph: slices and the DFT as matrix products
            frames = torch.stack([full[:, i * cfg.hop : i * cfg.hop + cfg.n_fft] for i in range(m)], dim=1)
            spec = frames @ self.dft  # [B, m, 2·bins]
            re, im = spec[..., : spec.shape[-1] // 2], spec[..., spec.shape[-1] // 2 :]
        else:
            spec = torch.fft.rfft(full.unfold(-1, cfg.n_fft, cfg.hop) * self.window, dim=-1)
            re, im = spec.real, spec.imag
        power = (re.square() + im.square()).mean(-1)[:, None]  # [B, 1, m]
        lev, level = _level_step(power, level, cfg.level_frames, cfg.eps)
        inv = 1.0 / lev.transpose(1, 2)
        re, im = re * inv, im * inv
        gain = torch.pow(re.square() + im.square() + 1e-12, 0.5 * (cfg.compress - 1.0))
        x = enc.embed(torch.cat((re * gain, im * gain), dim=-1).transpose(1, 2))
        new_histories = []
        for block, history in zip(enc.blocks, histories, strict=True):
            x, history = _block_step(block, x, history)  # type: ignore[arg-type]
            new_histories.append(history)
        z = enc.proj(enc.norm(x.transpose(1, 2))).transpose(1, 2) * lev
        return (z, full[:, m * cfg.hop :], level, *new_histories)

    def _lean_forward(self, full: Tensor, level: Tensor, histories: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The one-frame step as exported: ``full [B, n_fft]`` is the frame; one DFT product gives
        ``[re | im]``; activations stay ``[B, C, 1]``."""
        cfg, enc, bins = self.config, self.encoder, self.config.n_fft // 2 + 1
        spec = full @ self.dft  # [B, 2·bins]
        power = 2.0 * spec.square().mean(-1, keepdim=True)[:, None]  # [B, 1, 1]: the mean over bins of re² + im²
        lev, level = _level_step(power, level, cfg.level_frames, cfg.eps)
        spec = spec / lev[:, 0]
        sq = spec.square()
        gain = torch.pow(sq[:, :bins] + sq[:, bins:] + 1e-12, 0.5 * (cfg.compress - 1.0))
        x = enc.embed((spec * torch.cat((gain, gain), dim=-1))[:, :, None])  # [B, C, 1]
        new_histories = []
        for block, history in zip(enc.blocks, histories, strict=True):
            x, history = _lean_block_step(block, x, history)  # type: ignore[arg-type]
            new_histories.append(history)
        z = _pointwise(enc.proj, _channel_norm(enc.norm, x)) * lev
        return (z, full[:, cfg.hop :], level, *new_histories)


class DecoderStep(nn.Module):
    """``(latents [B, latent_channels, m], level [B, 1, L − 1], tail [B, fade], *histories)`` →
    ``(audio [B, m·hop], level, tail, *histories)``; the weights are ``decoder``'s."""

    def __init__(self, decoder: FrameDecoder, frames: int) -> None:
        super().__init__()
        self.decoder = decoder
        self.config: FrameNetConfig = decoder.config
        self.frames = frames
        real, imag = _idft_basis(self.config.synthesis)
        # [S, 2·bins]: ``idft @ [re | im]`` is the windowed synthesis frame (irfft, window included)
        self.register_buffer("idft", (torch.cat((real, imag)) * decoder.window).T.contiguous(), persistent=False)

    def forward(self, z: Tensor, level: Tensor, tail: Tensor, *histories: Tensor) -> tuple[Tensor, ...]:
        cfg, dec, m = self.config, self.decoder, self.frames
        lev, level = _level_step(z.square().mean(1, keepdim=True), level, cfg.level_frames, cfg.eps)
        x = dec.embed(z / lev)
        new_histories = []
        lean = torch.onnx.is_in_onnx_export() and m == 1
        for block, history in zip(dec.blocks, histories, strict=True):
            x, history = (_lean_block_step if lean else _block_step)(block, x, history)  # type: ignore[arg-type]
            new_histories.append(history)
        if lean:  # [B, 2·bins, 1] → one inverse-DFT product of [mag·cos | mag·sin] (window included)
            out = _pointwise(dec.head, _channel_norm(dec.norm, x))
            mag = torch.exp(torch.clamp(out[:, : dec.bins], max=8.0)) * lev
            phase = out[:, dec.bins :]
            frames = (self.idft @ torch.cat((mag * torch.cos(phase), mag * torch.sin(phase)), dim=1)).transpose(1, 2)
            return self._overlap_add(frames, level, tail, new_histories)
        out = dec.head(dec.norm(x.transpose(1, 2)))  # [B, m, 2·bins]
        log_mag, phase = out[..., : dec.bins], out[..., dec.bins :]
        mag = torch.exp(torch.clamp(log_mag, max=8.0)) * lev.transpose(1, 2)
        if torch.onnx.is_in_onnx_export():  # the inverse DFT as matrix products (window included)
            frames = torch.cat((mag * torch.cos(phase), mag * torch.sin(phase)), dim=-1) @ self.idft.T
        else:
            frames = torch.fft.irfft(torch.polar(mag, phase), n=cfg.synthesis, dim=-1) * dec.window  # [B, m, S]
        return self._overlap_add(frames, level, tail, new_histories)

    def _overlap_add(self, frames: Tensor, level: Tensor, tail: Tensor, histories: list[Tensor]) -> tuple[Tensor, ...]:
        """Windowed synthesis frames ``[B, m, S]`` and the previous tail → the step's outputs."""
        cfg, m = self.config, frames.shape[1]
        # Overlap-add (hop < S <= 2·hop): each frame's first hop, then its last S − hop samples a hop later.
        b, hop, fade = frames.shape[0], cfg.hop, cfg.fade
        head = F.pad(frames[..., :hop], (0, 0, 0, 1))  # [B, m + 1, hop]
        rest = F.pad(frames[..., hop:], (0, hop - fade, 1, 0))  # [B, m + 1, hop]
        audio = (head + rest).reshape(b, (m + 1) * hop)
        audio = torch.cat((audio[:, :fade] + tail, audio[:, fade:]), dim=-1)
        return (audio[:, : m * hop], level, audio[:, m * hop : m * hop + fade], *histories)


class _OnnxStep:
    """An exported step in an ONNX Runtime session (one thread), or ``None`` where that cannot be had."""

    def __init__(self, session: Any, names: list[str]) -> None:
        self.session = session
        self.names = names

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """CPU float32 tensors in and out (NumPy views both ways: nothing is copied)."""
        feeds = {n: t.numpy() for n, t in zip(self.names, inputs, strict=True)}
        return tuple(torch.from_numpy(o) for o in self.session.run(None, feeds))

    @classmethod
    def build(cls, step: nn.Module, example: tuple[Tensor, ...]) -> _OnnxStep | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        names = [f"in{i}" for i in range(len(example))]
        buf = io.BytesIO()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    step, example, buf, input_names=names, opset_version=17, dynamo=False, do_constant_folding=True
                )
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
        except Exception:  # an exporter or runtime that cannot take the graph: stay on PyTorch
            return None
        runner = cls(session, names)
        with torch.no_grad():
            want = step(*example)
        try:
            got = runner(*example)
        except Exception:  # a runtime that builds the session but cannot run a node of it
            return None
        worst = max(float((a - b).abs().max()) / max(1.0, float(a.abs().max())) for a, b in zip(want, got, strict=True))
        if not worst <= ONNX_TOLERANCE:  # NaN too
            return None
        return runner


def _random_state(shapes: list[tuple[int, ...]], seed: int, powers: int) -> tuple[Tensor, ...]:
    """Random step inputs of ``shapes``; input ``powers`` (a running level's history of powers) is >= 0."""
    gen = torch.Generator().manual_seed(seed)
    state = [0.1 * torch.randn(s, generator=gen) for s in shapes]
    state[powers] = state[powers].abs()
    return tuple(state)


class _Stream:
    """What the encoder and decoder streams share: a step per frame count, on PyTorch or ONNX Runtime."""

    backend = "torch"
    level_input = 0  #: which step input is the running level's history

    def __init__(self, net: FrameNet, batch: int, scale: float, onnx_frames: int | None) -> None:
        self.net = net
        self.config = net.config
        self.batch = batch
        self.scale = scale
        self.onnx_frames = onnx_frames
        self._steps: dict[int, nn.Module] = {}
        self._onnx: _OnnxStep | None = None
        self._onnx_tried = False

    def _make_step(self, frames: int) -> nn.Module:
        raise NotImplementedError

    def _input_shapes(self, frames: int) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def _run(self, frames: int, *inputs: Tensor) -> tuple[Tensor, ...]:
        """The step of ``frames`` frames on CPU float32 ``inputs`` → CPU float32 outputs."""
        device = next(self.net.parameters()).device
        if frames == self.onnx_frames and device.type == "cpu":
            if not self._onnx_tried:
                self._onnx_tried = True
                example = _random_state(self._input_shapes(frames), 0, self.level_input)
                self._onnx = _OnnxStep.build(self._step(frames), example)
                if self._onnx is not None:
                    self.backend = "onnxruntime"
            if self._onnx is not None:
                return self._onnx(*inputs)
        with torch.no_grad():
            if device.type == "cpu":
                return self._step(frames)(*inputs)
            out = self._step(frames)(*(t.to(device) for t in inputs))
            return tuple(t.float().cpu() for t in out)

    def _step(self, frames: int) -> nn.Module:
        if frames not in self._steps:
            self._steps[frames] = self._make_step(frames)
        return self._steps[frames]


class FrameEncoderStream(_Stream):
    """Audio blocks ``[B, n]`` → the latent frames they complete, ``[B, C, m]``; exactly the offline encode.

    Frame ``k`` completes with sample ``(k + 1)·hop − 1``. ``onnx_frames``: run steps of that many
    frames in ONNX Runtime where it is installed (the live engine's step), others in PyTorch.
    """

    level_input = 2

    def __init__(self, net: FrameNet, batch: int, scale: float = 1.0, onnx_frames: int | None = None) -> None:
        super().__init__(net, batch, scale, onnx_frames)
        self.reset()

    def _make_step(self, frames: int) -> nn.Module:
        return EncoderStep(self.net.encoder, frames)

    def _input_shapes(self, frames: int) -> list[tuple[int, ...]]:
        cfg, b = self.config, self.batch
        return [(b, frames * cfg.hop), (b, cfg.n_fft - cfg.hop), (b, 1, cfg.level_frames - 1)] + [
            (b, cfg.channels, cfg.kernel - 1)
        ] * cfg.encoder_blocks

    def reset(self) -> None:
        b = self.batch
        self._pending = torch.zeros(b, 0)
        self._state = tuple(torch.zeros(s) for s in self._input_shapes(1)[1:])
        self.frames_out = 0

    def push(self, audio: Tensor) -> Tensor:
        cfg = self.config
        if audio.dim() != 2 or audio.shape[0] != self.batch:
            raise ValueError(f"expected audio [{self.batch}, n], got shape {tuple(audio.shape)}")
        audio = audio.detach().to("cpu", torch.float32)
        buf = torch.cat((self._pending, audio), dim=-1) if self._pending.shape[-1] else audio
        m = buf.shape[-1] // cfg.hop
        self._pending = buf[:, m * cfg.hop :]
        if m == 0:
            return torch.zeros(self.batch, cfg.latent_channels, 0)
        z, *state = self._run(m, buf[:, : m * cfg.hop].contiguous(), *self._state)
        self._state = tuple(state)
        self.frames_out += m
        return z * self.scale if self.scale != 1.0 else z


class FrameDecoderStream(_Stream):
    """Latent frames ``[B, C, m]`` → ``[B, m·hop]`` audio, the offline decode delayed by ``fade`` samples.

    ``onnx_frames`` as for :class:`FrameEncoderStream`.
    """

    level_input = 1

    def __init__(self, net: FrameNet, batch: int, scale: float = 1.0, onnx_frames: int | None = None) -> None:
        super().__init__(net, batch, scale, onnx_frames)
        self.reset()

    def _make_step(self, frames: int) -> nn.Module:
        return DecoderStep(self.net.decoder, frames)

    def _input_shapes(self, frames: int) -> list[tuple[int, ...]]:
        cfg, b = self.config, self.batch
        return [(b, cfg.latent_channels, frames), (b, 1, cfg.level_frames - 1), (b, cfg.fade)] + [
            (b, cfg.channels, cfg.kernel - 1)
        ] * cfg.decoder_blocks

    def reset(self) -> None:
        self._state = tuple(torch.zeros(s) for s in self._input_shapes(1)[1:])
        self.frame = 0

    def push(self, z: Tensor) -> Tensor:
        m = z.shape[-1]
        if m == 0:
            return torch.zeros(self.batch, 0)
        lat = z.detach().to("cpu", torch.float32)
        lat = (lat / self.scale if self.scale != 1.0 else lat).contiguous()
        audio, *state = self._run(m, lat, *self._state)
        self._state = tuple(state)
        self.frame += m
        return audio


def onnx_available() -> bool:
    """Whether ONNX Runtime is installed (``pip install lincae[onnx]``)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = [
    "ONNX_TOLERANCE",
    "DecoderStep",
    "EncoderStep",
    "FrameDecoderStream",
    "FrameEncoderStream",
    "onnx_available",
]
