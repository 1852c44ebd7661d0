"""Encoder, latent upsampler and noise-conditioned consistency UNet.

Shapes, with ``F = 2 * hop`` frequency rows and ``N`` STFT frames:

- :class:`Encoder`: representation ``[B, 2, F, N]`` → latents ``[B, bottleneck_channels, Z]``
  with ``Z = N`` halved (rounding up) once per temporal downsample.
- :class:`Decoder` (the "latent upsampler"): latents → a pyramid of feature maps, finest first,
  one per UNet level, that condition the generator.
- :class:`UNet`: holds both plus the generator, which maps a noisy representation and a noise level
  to a clean one, conditioned on the pyramid (``forward_generator``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lincae.models.blocks import (
    DownsampleConv,
    DownsampleFreqConv,
    FreqGain,
    GaussianFourierProjection,
    PositionalEmbedding,
    ResBlock,
    UpsampleConv,
    UpsampleFreqConv,
    group_norm,
    time_conv,
    zero_init,
)
from lincae.models.config import GeneratorConfig


def preconditioning(sigma: Tensor, sigma_min: float, sigma_data: float) -> tuple[Tensor, Tensor, Tensor]:
    """Consistency-model scalings ``(c_skip, c_out, c_in)``, each ``[B, 1, 1, 1]``, for noise ``sigma: [B]``.

    ``c_skip(sigma_min) = 1`` and ``c_out(sigma_min) = 0``, so the model is the identity at the
    smallest noise level.
    """
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = sigma_data * (sigma - sigma_min) / (sigma_data**2 + sigma**2) ** 0.5
    c_in = 1.0 / (sigma**2 + sigma_data**2) ** 0.5
    return c_skip.reshape(-1, 1, 1, 1), c_out.reshape(-1, 1, 1, 1), c_in.reshape(-1, 1, 1, 1)


_SQRT2 = math.sqrt(2.0)
_SQRT3 = math.sqrt(3.0)


def _bottleneck_activation(name: str) -> nn.Module:
    return nn.Tanh() if name == "tanh" else nn.Identity()


class Encoder(nn.Module):
    """2-D residual encoder followed by a 1-D bottleneck with a ``tanh`` output."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.layers_list = list(cfg.layers_list_encoder)
        self.frequency_scaling = cfg.frequency_scaling
        mults = cfg.multipliers_list
        ch = cfg.base_channels * mults[0]
        stream = cfg.streamable
        self.gain = FreqGain(freq_dim=cfg.hop * 2)
        # The encoder's first convolution is the only layer of a streamable model that looks ahead.
        self.conv_inp = time_conv(True, cfg.data_channels, ch, 3, stream, cfg.padding_mode, lookahead=cfg.lookahead)
        self.freq_dim = cfg.freq_dim

        down: list[nn.Module] = []
        last = len(self.layers_list) - 1
        for i, (n_layers, mult) in enumerate(zip(self.layers_list, mults, strict=True)):
            out = cfg.base_channels * mult
            for _ in range(n_layers):
                down.append(
                    ResBlock(
                        ch,
                        out,
                        normalize=cfg.normalization,
                        attention=cfg.attention_list_encoder[i] == 1,
                        heads=4,
                        use_2d=True,
                        dropout_rate=cfg.dropout_rate,
                        min_res_dropout=cfg.min_res_dropout,
                        init_as_zero=cfg.init_as_zero,
                        padding_mode=cfg.padding_mode,
                        streamable=stream,
                    )
                )
                ch = out
            if i != last:
                if cfg.freq_downsample_list[i] == 1:
                    down.append(
                        DownsampleFreqConv(ch, normalize=cfg.pre_normalize_downsampling_encoder, per_frame=stream)
                    )
                else:
                    down.append(
                        DownsampleConv(
                            ch,
                            use_2d=True,
                            normalize=cfg.pre_normalize_downsampling_encoder,
                            padding_mode=cfg.padding_mode,
                        )
                    )
        self.down_layers = nn.ModuleList(down)
        if cfg.pre_normalize_2d_to_1d:
            self.prenorm_1d_to_2d = group_norm(ch, per_frame=stream)

        width = cfg.bottleneck_base_channels
        bottleneck: list[nn.Module] = [
            nn.Conv1d(ch * self.freq_dim, width, kernel_size=1, stride=1, padding="same", padding_mode=cfg.padding_mode)
        ]
        bottleneck += [
            ResBlock(
                width,
                width,
                normalize=cfg.normalization,
                use_2d=False,
                dropout_rate=cfg.dropout_rate,
                min_res_dropout=cfg.min_res_dropout,
                init_as_zero=cfg.init_as_zero,
                padding_mode=cfg.padding_mode,
                streamable=stream,
            )
            for _ in range(cfg.num_bottleneck_layers)
        ]
        self.bottleneck_layers = nn.Sequential(*bottleneck)
        self.norm_out = group_norm(width, per_frame=stream)
        self.activation_out = nn.SiLU()
        self.conv_out = nn.Conv1d(
            width, cfg.bottleneck_channels, kernel_size=1, stride=1, padding="same", padding_mode=cfg.padding_mode
        )
        self.activation_bottleneck = _bottleneck_activation(cfg.activation_bottleneck)

    def features(self, x: Tensor) -> Tensor:
        """Representation ``[B, 2, F, N]`` → pre-bottleneck features ``[B, C * freq_dim, Z]``."""
        x = self.conv_inp(x)
        if self.frequency_scaling:
            x = self.gain(x)
        for layer in self.down_layers:
            x = layer(x)
        if hasattr(self, "prenorm_1d_to_2d"):
            x = self.prenorm_1d_to_2d(x)
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2], x.shape[3])

    def bottleneck(self, x: Tensor) -> Tensor:
        """Pre-bottleneck features ``[B, C * freq_dim, Z]`` → latents ``[B, bottleneck_channels, Z]``."""
        x = self.bottleneck_layers(x)
        return self.activation_bottleneck(self.conv_out(self.activation_out(self.norm_out(x))))

    def forward(self, x: Tensor, extract_features: bool = False) -> Tensor:
        feats = self.features(x)
        return feats if extract_features else self.bottleneck(feats)


class Decoder(nn.Module):
    """Latent upsampler: latents ``[B, bottleneck_channels, Z]`` → feature pyramid, finest level first."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.layers_list = list(cfg.layers_list_encoder)
        mults = cfg.multipliers_list
        ch = cfg.base_channels * mults[-1]
        self.freq_dim = cfg.freq_dim
        width = cfg.bottleneck_base_channels

        self.conv_inp = nn.Conv1d(cfg.bottleneck_channels, width, kernel_size=1, stride=1, padding="same")
        # These blocks own a noise projection (``proj_emb``) that the official model never feeds.
        self.bottleneck_layers = nn.Sequential(
            *[
                ResBlock(
                    width,
                    width,
                    cfg.cond_channels,
                    normalize=cfg.normalization,
                    use_2d=False,
                    dropout_rate=cfg.dropout_rate,
                    min_res_dropout=cfg.min_res_dropout,
                    init_as_zero=cfg.init_as_zero,
                    padding_mode=cfg.padding_mode,
                    streamable=cfg.streamable,
                )
                for _ in range(cfg.num_bottleneck_layers)
            ]
        )
        self.conv_out_bottleneck = nn.Conv1d(
            width, ch * self.freq_dim, kernel_size=1, stride=1, padding="same", padding_mode=cfg.padding_mode
        )

        up_mults = list(reversed(mults))[1:] + list(reversed(mults))[:1]
        freq_up = list(reversed(cfg.freq_downsample_list))
        attention = cfg.attention_list_encoder[::-1]
        up: list[nn.Module] = []
        last = len(self.layers_list) - 1
        for i, (n_layers, mult) in enumerate(zip(reversed(self.layers_list), up_mults, strict=True)):
            up += [
                ResBlock(
                    ch,
                    ch,
                    normalize=cfg.normalization,
                    attention=attention[i] == 1,
                    heads=4,
                    use_2d=True,
                    dropout_rate=cfg.dropout_rate,
                    min_res_dropout=cfg.min_res_dropout,
                    init_as_zero=cfg.init_as_zero,
                    padding_mode=cfg.padding_mode,
                    streamable=cfg.streamable,
                )
                for _ in range(n_layers)
            ]
            if i != last:
                out = cfg.base_channels * mult
                if freq_up[i] == 1:
                    up.append(UpsampleFreqConv(ch, out))
                else:
                    up.append(UpsampleConv(ch, out, use_2d=True, padding_mode=cfg.padding_mode))
                ch = out
        self.up_layers = nn.ModuleList(up)

    def forward(self, z: Tensor) -> list[Tensor]:
        """Latents ``[B, bottleneck_channels, Z]`` → ``[level_0 (finest), ..., level_L (coarsest)]``."""
        x = self.conv_out_bottleneck(self.bottleneck_layers(self.conv_inp(z)))
        b, _, n = x.shape
        # Channel index is ``f * C + c`` (frequency-major).
        x = x.reshape(b, self.freq_dim, -1, n).transpose(1, 2)
        pyramid = []
        k = 0
        last = len(self.layers_list) - 1
        for i, n_layers in enumerate(reversed(self.layers_list)):
            for _ in range(n_layers):
                x = self.up_layers[k](x)
                k += 1
            pyramid.append(x)
            if i != last:
                x = self.up_layers[k](x)
                k += 1
        return pyramid[::-1]


def _mlp(cond: int, out: int, zero_last: bool | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(cond, cond), nn.SiLU(), nn.Linear(cond, cond), nn.SiLU()]
    if zero_last is not None:
        layers.append(zero_init(nn.Linear(cond, out), zero_last))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """The whole network: ``encoder``, ``decoder`` (latent upsampler) and the consistency generator."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        cfg = config or GeneratorConfig()
        self.config = cfg
        self.layers_list = list(cfg.layers_list)
        self.freq_downsample_list = list(cfg.freq_downsample_list)
        self.hop = cfg.hop
        self.data_channels = cfg.data_channels
        self.sigma_min, self.sigma_max, self.sigma_data = cfg.sigma_min, cfg.sigma_max, cfg.sigma_data
        self.frequency_scaling = cfg.frequency_scaling

        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        cond = cfg.cond_channels
        self.emb: nn.Module = (
            GaussianFourierProjection(embedding_size=cond, scale=cfg.fourier_scale)
            if cfg.use_fourier
            else PositionalEmbedding(embedding_size=cond)
        )
        self.emb_proj = _mlp(cond, cond)
        self.scale_inp = _mlp(cond, cfg.hop * 2, zero_last=cfg.init_as_zero)
        self.scale_out = _mlp(cond, cfg.hop * 2, zero_last=cfg.init_as_zero)

        mults = cfg.multipliers_list
        ch = cfg.base_channels * mults[0]
        stream = cfg.streamable
        self.conv_inp = time_conv(True, cfg.data_channels, ch, 3, stream, cfg.padding_mode)
        last = len(self.layers_list) - 1

        def level_block(c: int, attention: bool) -> list[nn.Module]:
            # A 1×1 projection of the pyramid level, then a conditioned residual block.
            return [
                nn.Conv2d(c, c, kernel_size=1, stride=1, padding=0),
                ResBlock(
                    c,
                    c,
                    cond,
                    normalize=cfg.normalization,
                    attention=attention,
                    heads=cfg.heads,
                    use_2d=True,
                    dropout_rate=cfg.dropout_rate,
                    min_res_dropout=cfg.min_res_dropout,
                    init_as_zero=True,
                    padding_mode=cfg.padding_mode,
                    streamable=stream,
                ),
            ]

        down: list[nn.Module] = []
        for i, (n_layers, mult) in enumerate(zip(self.layers_list, mults, strict=True)):
            ch = cfg.base_channels * mult
            for _ in range(n_layers):
                down += level_block(ch, cfg.attention_list[i] == 1)
            if i != last:
                out = cfg.base_channels * mults[i + 1]
                if cfg.freq_downsample_list[i] == 1:
                    down.append(DownsampleFreqConv(ch, out))
                else:
                    down.append(DownsampleConv(ch, out, use_2d=True, padding_mode=cfg.padding_mode))
        self.down_layers = nn.ModuleList(down)

        up_mults = list(reversed(mults))[1:] + list(reversed(mults))[:1]
        freq_up = list(reversed(cfg.freq_downsample_list))
        attention = cfg.attention_list[::-1]
        up: list[nn.Module] = []
        for i, (n_layers, mult) in enumerate(zip(reversed(self.layers_list), up_mults, strict=True)):
            for _ in range(n_layers):
                up += level_block(ch, attention[i] == 1)
            if i != last:
                out = cfg.base_channels * mult
                if freq_up[i] == 1:
                    up.append(UpsampleFreqConv(ch, out))
                else:
                    up.append(UpsampleConv(ch, out, use_2d=True, padding_mode=cfg.padding_mode))
                ch = out
        self.up_layers = nn.ModuleList(up)

        self.conv_decoded = nn.Conv2d(ch, ch, kernel_size=1, stride=1, padding=0)
        self.norm_out = group_norm(ch, per_frame=stream)
        self.activation_out = nn.SiLU()
        self.conv_out = zero_init(time_conv(True, ch, cfg.data_channels, 3, stream, cfg.padding_mode), cfg.init_as_zero)

    def forward_generator(
        self,
        latents: Tensor | None,
        x: Tensor,
        sigma: float | Tensor | None = None,
        pyramid_latents: list[Tensor] | None = None,
        release_pyramid: bool = False,
    ) -> Tensor:
        """One consistency step: noisy representation ``x: [B, 2, F, N]`` at noise ``sigma`` → clean estimate.

        Args:
            latents: ``[B, bottleneck_channels, Z]`` (ignored when ``pyramid_latents`` is given).
            x: noisy representation, ``N = Z * 2 ** temporal_downsamples`` frames.
            sigma: noise level, a scalar or ``[B]`` (default ``sigma_max``).
            pyramid_latents: precomputed ``decoder(latents)``, to reuse across steps.
            release_pyramid: empty the list ``pyramid_latents`` level by level as each is last used (a
                sampler's last step), so that the levels' memory is freed during the step.

        Without autograd, the skip and pyramid sums are made in place in maps this step made itself (the
        same values, fewer full-size maps at a time).
        """
        if sigma is None:
            sigma = self.sigma_max
        inp = x
        # One noise level for the whole batch (a scalar ``sigma``, as in sampling): the embeddings are
        # computed once, ``[1, ...]``, and broadcast; the blocks fold theirs into a convolution bias.
        rows = 1 if not isinstance(sigma, Tensor) or sigma.dim() == 0 else x.shape[0]
        sigma_t = torch.ones((rows,), dtype=torch.float32, device=x.device) * sigma
        emb = self.emb(torch.log(sigma_t) / 4.0)
        time_emb = self.emb_proj(emb)
        scale_w_inp = self.scale_inp(emb).reshape(rows, 1, -1, 1)
        scale_w_out = self.scale_out(emb).reshape(rows, 1, -1, 1)
        c_skip, c_out, c_in = preconditioning(sigma_t, self.sigma_min, self.sigma_data)

        if pyramid_latents is None:
            if latents is None:
                raise ValueError("forward_generator needs latents or pyramid_latents")
            pyramid_latents = self.decoder(latents)
        # In place (no autograd), only into maps made below: a convolution's output, or the bottom
        # block's output, which is also the last skip (then ``x += x``). The sums keep their order.
        lean = not torch.is_grad_enabled()

        x = self.conv_inp(c_in * x)
        if self.frequency_scaling:
            x = (1.0 + scale_w_inp) * x

        skips = []
        k = 0
        last = len(self.layers_list) - 1
        for i, n_layers in enumerate(self.layers_list):
            for _ in range(n_layers):
                cond = self.down_layers[k](pyramid_latents[i])
                x = cond.add_(x).div_(_SQRT2) if lean else (x + cond) / _SQRT2
                del cond
                x = self.down_layers[k + 1](x, time_emb)
                skips.append(x)
                k += 2
            if i != last:
                x = self.down_layers[k](x)
                k += 1

        k = 0
        top = len(pyramid_latents) - 1  # the coarsest level (pops below leave the others' places)
        for i, n_layers in enumerate(reversed(self.layers_list)):
            level = pyramid_latents[top - i]
            for _ in range(n_layers):
                skip = skips.pop()
                if lean:
                    x = x.add_(skip)
                    del skip
                    x = x.add_(self.up_layers[k](level)).div_(_SQRT3)
                else:
                    x = (x + skip + self.up_layers[k](level)) / _SQRT3
                x = self.up_layers[k + 1](x, time_emb)
                k += 2
            del level
            if release_pyramid and i != last:
                pyramid_latents.pop()  # the coarsest level left: its last use was this one
            if i != last:
                x = self.up_layers[k](x)
                k += 1

        cond = self.conv_decoded(pyramid_latents[0])
        if release_pyramid:
            pyramid_latents.clear()
        x = x.add_(cond).div_(_SQRT2) if lean else (x + cond) / _SQRT2
        del cond
        x = self.activation_out(self.norm_out(x))
        if self.frequency_scaling:
            x = (1.0 + scale_w_out) * x
        x = self.conv_out(x)
        return c_skip * inp + c_out * x

    def forward(
        self,
        data_encoder: Tensor,
        noisy_samples: Tensor,
        noisy_samples_plus_one: Tensor,
        sigmas_step: Tensor,
        sigmas: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Consistency-training pair: (target at ``sigmas_step``, detached; prediction at ``sigmas``)."""
        pyramid = self.decoder(self.encoder(data_encoder))
        target = self.forward_generator(None, noisy_samples, sigmas_step, pyramid).detach()
        pred = self.forward_generator(None, noisy_samples_plus_one, sigmas, pyramid)
        return target, pred
