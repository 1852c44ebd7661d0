"""Building blocks of the consistency UNet.

Module and parameter names follow the official implementation so that its state dicts load
unchanged (``conv1``, ``norm1``, ``proj_emb``, ``att.mha``, ``c`` ...). Tensors are
``[B, C, F, N]`` (2-D blocks) or ``[B, C, N]`` (1-D blocks).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Above this many positions per channel, a channels-last input is normalised by ``GroupNorm``'s own
# two-pass code: PyTorch's channels-last kernel accumulates the moments in single precision in one
# sweep, which errs by ~1e-3 on a full-band feature map of 10 s of audio (the contiguous kernel: ~1e-6).
_NATIVE_CHANNELS_LAST_MAX = 16384
# Below this many positions per channel, a bfloat16 channels-last input on the CPU is normalised by
# ``GroupNorm``'s own code too, for speed: there PyTorch's bfloat16 channels-last CPU kernel is
# 3-5× slower than two reductions and one multiply-add (the UNet's small-frequency levels: [16, 64, 32,
# 24] takes 2.6 ms against 0.6 ms on the 2-core Xeon of BENCHMARKS.md); from 2048 positions on it is
# the faster one.
_REDUCED_PRECISION_NATIVE_MIN = 2048


def _group_norm_channels_last(
    x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None, eps: float, stats: torch.dtype
) -> Tensor:
    """Group norm of a channels-last ``x: [B, C, H, W]``; the result is channels-last, of ``x``'s dtype.

    Per-channel sums of ``x`` and ``x**2`` come from PyTorch's cascaded reductions over the ``[B, H*W, C]``
    view of the memory (accumulated in float32 at least); they are combined per group in ``stats``
    (float64 for accurate moments of large maps), and the normalisation is one multiply-add per element,
    in float32 at least and rounded once at the end, as PyTorch's kernel does.
    """
    b, c, h, w = x.shape
    flat = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view: no copy
    if x.dtype == torch.float16:
        flat = flat.float()  # its squares would overflow float16 (above ~256)
    per = c // groups
    acc = torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else x.dtype
    s1 = flat.sum(1, dtype=acc).to(stats).view(b, groups, per).sum(-1)
    s2 = (flat * flat).sum(1, dtype=acc).to(stats).view(b, groups, per).sum(-1)
    count = h * w * per
    mean = s1 / count
    rstd = torch.rsqrt((s2 / count - mean * mean).clamp_min(0.0) + eps)
    scale = rstd.repeat_interleave(per, dim=1)  # [B, C]
    if weight is not None:
        scale = scale * weight.to(stats)
    shift = -mean.repeat_interleave(per, dim=1) * scale
    if bias is not None:
        shift = shift + bias.to(stats)
    return torch.addcmul(shift.to(acc)[:, :, None, None], x, scale.to(acc)[:, :, None, None]).to(x.dtype)


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters and state dict), accurate on large channels-last inputs and fast
    on small bfloat16 ones on the CPU."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            positions = x.shape[2] * x.shape[3]
            if positions > _NATIVE_CHANNELS_LAST_MAX:
                return _group_norm_channels_last(x, self.num_groups, self.weight, self.bias, self.eps, torch.float64)
            if x.dtype == torch.bfloat16 and x.device.type == "cpu" and positions < _REDUCED_PRECISION_NATIVE_MIN:
                return _group_norm_channels_last(x, self.num_groups, self.weight, self.bias, self.eps, torch.float32)
        return super().forward(x)


class FrameGroupNorm(nn.GroupNorm):
    """Group norm of each time frame alone: statistics over a group's channels (and frequency rows).

    Same parameters and state dict as ``nn.GroupNorm``; inputs are ``[B, C, F, N]`` or ``[B, C, N]``
    with time last. Nothing ties a frame to its neighbours, so a model built from it streams frame by frame.
    """

    def forward(self, x: Tensor) -> Tensor:
        b, c, n = x.shape[0], x.shape[1], x.shape[-1]
        # Frames become batch items (``[B·N, C, (F)]``), which ``F.group_norm`` normalises one by one.
        frames = x.movedim(-1, 1).reshape(b * n, c, -1)
        y = F.group_norm(frames, self.num_groups, self.weight, self.bias, self.eps)
        return y.reshape(b, n, *x.shape[1:-1]).movedim(1, -1)


def group_norm(channels: int, per_frame: bool = False) -> nn.GroupNorm:
    """GroupNorm with ``min(channels // 4, 32)`` groups, as used throughout the model.

    ``per_frame``: normalise each time frame alone (:class:`FrameGroupNorm`, streamable models).
    """
    return (FrameGroupNorm if per_frame else GroupNorm)(min(channels // 4, 32), channels)


class StreamState:
    """The cached right edge of every time convolution of one stream (see :func:`streaming`).

    ``cache`` maps a :class:`TimeConv` module to its last ``kernel - 1`` input frames ``[B, C, (F,) k-1]``.
    One state serves one pass through one set of layers (an encoder, a decoder step), for one batch size.
    """

    def __init__(self) -> None:
        self.cache: dict[nn.Module, Tensor] = {}

    def reset(self) -> None:
        self.cache.clear()


_STREAM: ContextVar[StreamState | None] = ContextVar("lincae_stream_state", default=None)


@contextlib.contextmanager
def streaming(state: StreamState) -> Iterator[StreamState]:
    """Within this scope (in this thread), :class:`TimeConv` layers continue ``state`` instead of zero-padding.

    Each call then takes only the new frames and returns as many outputs: a layer with time padding
    ``(left, right)`` answers frame ``t`` when frame ``t + right`` has arrived (``right`` frames of delay).
    A fresh state starts from zeros, as the offline pass's left padding does.
    """
    token = _STREAM.set(state)
    try:
        yield state
    finally:
        _STREAM.reset(token)


class TimeConv:
    """Mixin of convolutions with explicit time padding ``(left, right)``, ``left + right = kernel - 1``,
    zero-padded offline and continued from a :class:`StreamState` when streaming.

    Parameters and state dict are those of the ``nn.Conv1d`` / ``nn.Conv2d`` it is mixed into. In 2-D
    the frequency axis (rows) gets symmetric zero padding, as with ``padding="same"``: the convolution's
    own ``padding`` is ``(kernel // 2, 0)``, so only time is padded here.
    """

    time_padding: tuple[int, int]

    def pad_time(self, x: Tensor) -> Tensor:
        """``x: [B, C, (F,) N]`` → the input the convolution runs on, along time.

        Offline: ``N + kernel − 1`` frames (zeros both sides). Streaming: the cached frames, then ``x``;
        on a stream's first call the cache is ``left`` zeros, so the layer's outputs start at frame 0.
        """
        left, right = self.time_padding
        state = _STREAM.get()
        if state is None:
            return F.pad(x, (left, right))
        context = left + right
        prev = state.cache.get(self)  # type: ignore[call-overload]
        if prev is None or prev.shape[:-1] != x.shape[:-1] or prev.dtype != x.dtype:
            # The stream's start: the offline pass's left padding. A layer that looks ahead answers its
            # first frame once ``right`` more have come, so its first call must bring more than ``right``.
            if x.shape[-1] <= right:
                raise ValueError(f"a stream's first call needs more than {right} frame(s), got {x.shape[-1]}")
            prev = x.new_zeros((*x.shape[:-1], left))
        buf = torch.cat((prev, x), dim=-1)
        state.cache[self] = buf[..., buf.shape[-1] - context :]  # type: ignore[index]
        return buf


class TimeConv2d(TimeConv, nn.Conv2d):
    """``(k, k)`` convolution over ``[B, C, F, N]`` with time padding ``(left, right)``; see :class:`TimeConv`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, time_padding: tuple[int, int]) -> None:
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size=kernel_size, stride=1, padding=(kernel_size // 2, 0)
        )
        if sum(time_padding) != kernel_size - 1 or min(time_padding) < 0:
            raise ValueError(f"time padding {time_padding} does not fit kernel {kernel_size}")
        self.time_padding = time_padding

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self.pad_time(x), self.weight, self.bias)

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        kf, kt = self.kernel_size
        if x.shape[-1] != kt:
            return super()._conv_forward(x, weight, bias)
        # One output frame (a stream's step): one matrix product over the unfolded input, faster on the CPU
        # than the convolution kernels are on maps one frame wide.
        b, c = x.shape[:2]
        p = self.padding[0]
        cols = F.pad(x, (0, 0, p, p)).unfold(2, kf, 1)  # [B, C, F', kt, kf]
        cols = cols.permute(0, 1, 4, 3, 2).reshape(b, c * kf * kt, -1)  # [B, (C, kf, kt), F']
        y = torch.matmul(weight.reshape(weight.shape[0], -1), cols)
        if bias is not None:
            y = y + bias[:, None].to(y.dtype)
        return y.unsqueeze(-1)


class TimeConv1d(TimeConv, nn.Conv1d):
    """Kernel-``k`` convolution over ``[B, C, N]`` with time padding ``(left, right)``; see :class:`TimeConv`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, time_padding: tuple[int, int]) -> None:
        nn.Conv1d.__init__(self, in_channels, out_channels, kernel_size=kernel_size, stride=1, padding=0)
        if sum(time_padding) != kernel_size - 1 or min(time_padding) < 0:
            raise ValueError(f"time padding {time_padding} does not fit kernel {kernel_size}")
        self.time_padding = time_padding

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self.pad_time(x), self.weight, self.bias)


def time_conv(
    use_2d: bool,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    causal: bool = False,
    padding_mode: str = "zeros",
    lookahead: int = 0,
) -> nn.Module:
    """A ``same``-size convolution along time: symmetric (``nn.Conv1d``/``nn.Conv2d``, the official layers)
    or, when ``causal``, a :class:`TimeConv` looking ``lookahead`` frames ahead (default none)."""
    if not causal:
        return _conv(use_2d)(
            in_channels, out_channels, kernel_size=kernel_size, stride=1, padding="same", padding_mode=padding_mode
        )
    padding = (kernel_size - 1 - lookahead, lookahead)
    return (TimeConv2d if use_2d else TimeConv1d)(in_channels, out_channels, kernel_size, padding)


def zero_init(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Zero every parameter of ``module`` (when ``enabled``) and return it."""
    if enabled:
        with torch.no_grad():
            for p in module.parameters():
                p.zero_()
    return module


def _conv(use_2d: bool) -> type[nn.Conv1d] | type[nn.Conv2d]:
    return nn.Conv2d if use_2d else nn.Conv1d


class FreqGain(nn.Module):
    """Learned per-frequency-row gain ``scale: [1, 1, F, 1]``."""

    def __init__(self, freq_dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones((1, 1, freq_dim, 1)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class DownsampleConv(nn.Module):
    """Stride-2 3×3 convolution: halves time (and, in 2-D, frequency)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        use_2d: bool = False,
        normalize: bool = False,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.normalize = normalize
        if normalize:
            self.norm = group_norm(in_channels)
        self.c = _conv(use_2d)(
            in_channels, out_channels or in_channels, kernel_size=3, stride=2, padding=1, padding_mode=padding_mode
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.c(self.norm(x) if self.normalize else x)


#: Up to this many frames, a ``(k, 1)`` convolution runs as a 1-D convolution over frequency per frame: PyTorch's
#: 2-D CPU kernels take 5-10× longer on maps one frame wide (a stream's steps) than the same work in 1-D.
_FREQ_CONV_1D_MAX_FRAMES = 8


def freq_conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)`` for a convolution along frequency only (kernel and stride ``(k, 1)``), ``x: [B, C, F, N]``."""
    n = x.shape[-1]
    if n > _FREQ_CONV_1D_MAX_FRAMES:
        return conv(x)
    b, c, f = x.shape[:3]
    frames = x.movedim(-1, 1).reshape(b * n, c, f)
    padding = conv.padding if isinstance(conv.padding, str) else conv.padding[0]
    y = F.conv1d(frames, conv.weight[..., 0], conv.bias, conv.stride[0], padding)
    return y.reshape(b, n, y.shape[1], y.shape[2]).movedim(1, -1)


class DownsampleFreqConv(nn.Module):
    """(5, 1) convolution with stride 4 along frequency only (``per_frame``: a per-frame norm before it)."""

    def __init__(
        self, in_channels: int, out_channels: int | None = None, normalize: bool = False, per_frame: bool = False
    ) -> None:
        super().__init__()
        self.normalize = normalize
        if normalize:
            self.norm = group_norm(in_channels, per_frame=per_frame)
        self.c = nn.Conv2d(in_channels, out_channels or in_channels, kernel_size=(5, 1), stride=(4, 1), padding=(2, 0))

    def forward(self, x: Tensor) -> Tensor:
        return freq_conv(self.c, self.norm(x) if self.normalize else x)


class UpsampleConv(nn.Module):
    """Nearest ×2 upsampling (time, and frequency in 2-D) followed by a 3×3 convolution."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        use_2d: bool = False,
        normalize: bool = False,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.normalize = normalize
        if normalize:
            self.norm = group_norm(in_channels)
        self.c = _conv(use_2d)(
            in_channels, out_channels or in_channels, kernel_size=3, stride=1, padding="same", padding_mode=padding_mode
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.normalize:
            x = self.norm(x)
        return self.c(F.interpolate(x, scale_factor=2, mode="nearest"))


#: Frames per slice of :class:`UpsampleFreqConv` on long maps without autograd (4 MB of its ×4 map per slice
#: at 32 channels × 512 rows, against 107 MB for a 10 s chunk whole; 64 frames slice a probe of 1 s too).
_UPSAMPLE_SLICE_FRAMES = 64


def _is_channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class UpsampleFreqConv(nn.Module):
    """Nearest ×4 upsampling along frequency followed by a (5, 1) convolution (``per_frame``: see above)."""

    def __init__(
        self, in_channels: int, out_channels: int | None = None, normalize: bool = False, per_frame: bool = False
    ) -> None:
        super().__init__()
        self.normalize = normalize
        if normalize:
            self.norm = group_norm(in_channels, per_frame=per_frame)
        self.c = nn.Conv2d(in_channels, out_channels or in_channels, kernel_size=(5, 1), stride=1, padding="same")

    def forward(self, x: Tensor) -> Tensor:
        if self.normalize:
            x = self.norm(x)
        n = x.shape[-1]
        if torch.is_grad_enabled() or n <= 2 * _UPSAMPLE_SLICE_FRAMES:
            return freq_conv(self.c, F.interpolate(x, scale_factor=(4, 1), mode="nearest"))
        # Without autograd, a long map is upsampled and convolved a slice of frames at a time (the kernel
        # does not mix frames): the ×4 map, the largest of the UNet, is never made whole.
        layout = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
        out: Tensor | None = None
        for t in range(0, n, _UPSAMPLE_SLICE_FRAMES):
            part = x[..., t : t + _UPSAMPLE_SLICE_FRAMES].contiguous(memory_format=layout)
            part = self.c(F.interpolate(part, scale_factor=(4, 1), mode="nearest"))
            if out is None:
                b, c, f = part.shape[:3]
                out = torch.empty((b, c, f, n), dtype=part.dtype, device=part.device, memory_format=layout)
            out[..., t : t + part.shape[-1]] = part
        assert out is not None
        return out


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of the (log) noise level: ``[B] → [B, size]``."""

    def __init__(self, embedding_size: int = 128, scale: float = 0.02) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(embedding_size // 2) * scale, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        proj = x[:, None] * self.W[None, :] * 2.0 * math.pi
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of the (log) noise level: ``[B] → [B, size]``. No parameters."""

    def __init__(self, embedding_size: int = 128, max_positions: int = 10000) -> None:
        super().__init__()
        self.embedding_size = embedding_size
        self.max_positions = max_positions

    def forward(self, x: Tensor) -> Tensor:
        half = self.embedding_size // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device) / (half - 1)
        freqs = (1.0 / self.max_positions) ** freqs
        x = torch.outer(x, freqs.to(x.dtype))
        return torch.cat([torch.sin(x), torch.cos(x)], dim=-1)


class Attention(nn.Module):
    """Pre-normalised multi-head self-attention with a residual connection.

    In 2-D it attends across frequency rows within each frame, in 1-D across time.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        normalize: bool = True,
        use_2d: bool = False,
        init_as_zero: bool = True,
        streamable: bool = False,
    ) -> None:
        super().__init__()
        if streamable and not use_2d:
            raise ValueError("attention across time cannot stream; a streamable model attends across frequency only")
        self.normalize = normalize
        self.use_2d = use_2d
        self.mha = nn.MultiheadAttention(embed_dim=dim, num_heads=heads, dropout=0.0, batch_first=True)
        if init_as_zero:
            zero_init(self.mha.out_proj)
        if normalize:
            self.norm = group_norm(dim, per_frame=streamable)

    def forward(self, x: Tensor) -> Tensor:
        inp = x
        if self.normalize:
            x = self.norm(x)
        if self.use_2d:
            b, c, f, n = x.shape
            seq = x.permute(0, 3, 2, 1).reshape(b * n, f, c)
        else:
            seq = x.transpose(1, 2)
        seq = self.mha(seq, seq, seq, need_weights=False)[0]
        if self.use_2d:
            out = seq.reshape(b, n, f, c).permute(0, 3, 2, 1)
        else:
            out = seq.transpose(1, 2)
        # ``inp`` first: the sum takes its memory format, so a channels-last model stays channels-last.
        return inp + out


class ResBlock(nn.Module):
    """Pre-activation residual block, optionally noise-conditioned and followed by attention.

    Args:
        in_channels, out_channels: channel counts; a 1×1 ``res_conv`` bridges them when they differ.
        cond_channels: size of the noise embedding added after ``conv1`` (``None``: unconditioned);
            ``time_emb`` is ``[B, cond_channels]``, or ``[1, cond_channels]`` for one shared by the batch.
        use_2d: 2-D (``[B, C, F, N]``) or 1-D (``[B, C, N]``) convolutions.
        normalize_residual: take the residual after ``norm1`` instead of before.
        streamable: per-frame norms and causal time convolutions (see :func:`time_conv`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int | None = None,
        kernel_size: int = 3,
        downsample: bool = False,
        upsample: bool = False,
        normalize: bool = True,
        leaky: bool = False,
        attention: bool = False,
        heads: int = 4,
        use_2d: bool = False,
        normalize_residual: bool = False,
        min_res_dropout: int = 16,
        dropout_rate: float = 0.0,
        init_as_zero: bool = True,
        padding_mode: str = "zeros",
        streamable: bool = False,
    ) -> None:
        super().__init__()
        conv = _conv(use_2d)
        if streamable and (downsample or upsample):
            raise ValueError("a streamable block cannot resample time")
        self.normalize = normalize
        self.attention = attention
        self.upsample = upsample
        self.downsample = downsample
        self.use_2d = use_2d
        self.normalize_residual = normalize_residual
        self.min_res_dropout = min_res_dropout
        self.conv1 = time_conv(use_2d, in_channels, out_channels, kernel_size, streamable, padding_mode)
        self.conv2 = zero_init(
            time_conv(use_2d, out_channels, out_channels, kernel_size, streamable, padding_mode), init_as_zero
        )
        self.res_conv: nn.Module = (
            conv(in_channels, out_channels, kernel_size=1, stride=1, padding=0)
            if in_channels != out_channels
            else nn.Identity()
        )
        if normalize:
            self.norm1 = group_norm(in_channels, per_frame=streamable)
            self.norm2 = group_norm(out_channels, per_frame=streamable)
        self.activation: nn.Module = nn.LeakyReLU(negative_slope=0.2) if leaky else nn.SiLU()
        if cond_channels is not None:
            self.proj_emb = zero_init(nn.Linear(cond_channels, out_channels), init_as_zero)
        self.dropout = nn.Dropout(dropout_rate)
        if attention:
            self.att = Attention(out_channels, heads, use_2d=use_2d, init_as_zero=init_as_zero, streamable=streamable)

    def _resample(self, x: Tensor) -> Tensor:
        if self.downsample:
            return F.avg_pool2d(x, 2, 2) if self.use_2d else F.avg_pool1d(x, 2, 2)
        if self.upsample:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def _activate(self, x: Tensor, in_place: bool) -> Tensor:
        """The block's activation; ``in_place`` overwrites ``x`` (only a tensor this block made itself)."""
        if not in_place:
            return self.activation(x)
        if isinstance(self.activation, nn.LeakyReLU):
            return F.leaky_relu(x, self.activation.negative_slope, inplace=True)
        return F.silu(x, inplace=True)

    def forward(self, x: Tensor, time_emb: Tensor | None = None) -> Tensor:
        # Without autograd (inference), the activations and the residual sum overwrite maps this block made
        # itself instead of allocating new ones: the same values, with fewer full-size maps alive at a time.
        lean = not torch.is_grad_enabled()
        y = x
        if self.normalize:
            x = self.norm1(x)
        if self.normalize_residual:
            y = x
        x = self._resample(self._activate(x, lean and self.normalize and not self.normalize_residual))
        y = self._resample(y)
        if time_emb is None:
            x = self.conv1(x)
        elif time_emb.shape[0] == 1:
            # One embedding for the whole batch: added through conv1's bias, which saves a broadcast
            # add over the full feature map (slow on CPU for few channels).
            emb = self.proj_emb(time_emb)[0]
            bias = emb if self.conv1.bias is None else self.conv1.bias + emb
            if isinstance(self.conv1, TimeConv):
                x = self.conv1.pad_time(x)
            x = self.conv1._conv_forward(x, self.conv1.weight, bias)
        else:
            emb = self.proj_emb(time_emb)
            x = self.conv1(x) + (emb[:, :, None, None] if self.use_2d else emb[:, :, None])
        if self.normalize:
            x = self.norm2(x)
        x = self._activate(x, lean)
        if x.shape[-1] <= self.min_res_dropout:
            x = self.dropout(x)
        if lean:
            x = self.conv2(x)  # the activation is dropped before the sum is made
            x = x.add_(self.res_conv(y))
        else:
            x = self.conv2(x) + self.res_conv(y)
        if self.attention:
            x = self.att(x)
        return x
