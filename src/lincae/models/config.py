"""Typed, validated configuration of the autoencoder's three parts.

The field names and defaults are those of the official ``linear-cae`` constructors
(``ScaledComplexSTFT``, ``UNet`` and ``Diffusion``), so the YAML files that ship with the
official checkpoints build the same model here. Unknown keys fail loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from lincae.config import ConfigBase


def _require(cond: bool, cls: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{cls}: {msg}")


@dataclass(frozen=True)
class FrontendConfig(ConfigBase):
    """Scaled complex STFT (official ``ScaledComplexSTFT``).

    Attributes:
        hop_size: STFT hop in samples; the FFT size is ``n_fft_factor * hop_size``.
        n_fft_factor: FFT size over hop.
        alpha_rescale: magnitude compression exponent (``beta * |X| ** alpha``).
        beta_rescale: magnitude scale after compression.
        sample_rate: audio rate in Hz the model was trained at (``None`` in some official files).
    """

    hop_size: int = 256
    n_fft_factor: int = 4
    alpha_rescale: float = 0.3
    beta_rescale: float = 1.5
    sample_rate: int | None = None

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "hop_size": (1, 8192),
        "n_fft_factor": (1, 16),
        "alpha_rescale": (0.0, 10.0),
        "beta_rescale": (0.0, 1000.0),
        "sample_rate": (1000, 384_000),
    }

    def __post_init__(self) -> None:
        n = type(self).__name__
        self.check_fields(f"{n}: ")
        _require(isinstance(self.hop_size, int) and self.hop_size > 0, n, f"hop_size must be > 0, got {self.hop_size}")
        _require(self.n_fft_factor >= 1, n, f"n_fft_factor must be >= 1, got {self.n_fft_factor}")
        _require(self.alpha_rescale > 0, n, f"alpha_rescale must be > 0, got {self.alpha_rescale}")
        _require(self.beta_rescale > 0, n, f"beta_rescale must be > 0, got {self.beta_rescale}")
        _require(
            self.sample_rate is None or self.sample_rate > 0, n, f"sample_rate must be > 0, got {self.sample_rate}"
        )


def _activation_name(value: Any) -> str | None:
    """``"tanh"`` / ``"identity"`` for the spellings of the official bottleneck activations, else ``None``."""
    if value is None:
        return "identity"
    text = value if isinstance(value, str) else type(value).__name__
    key = text.strip().lower().removeprefix("torch.nn.").removeprefix("nn.").removesuffix("()")
    return key if key in ("tanh", "identity") else None


@dataclass(frozen=True)
class GeneratorConfig(ConfigBase):
    """Consistency UNet with its encoder and latent upsampler (official ``UNet``).

    ``activation_bottleneck`` is the encoder's output non-linearity: ``"tanh"`` (the official
    default) or ``"identity"``. The official spellings are accepted too and stored as those names: an
    ``nn.Tanh()`` / ``nn.Identity()`` module, ``None`` (identity), or their YAML text (``"Tanh()"``).

    ``streamable`` (lincae's own option; the official models have it off) builds a model that streams
    exactly: every normalisation looks at one frame only (group norm over channels and frequency), every
    convolution along time is causal, except the encoder's first, which looks ``lookahead`` frames
    (0-2) ahead. Such a model runs block by block with cached convolutions
    (:mod:`lincae.models.streaming`) and equals its offline pass delayed by
    ``n_fft - hop + lookahead * hop`` samples. It needs no temporal downsampling
    (``freq_downsample_list`` all 1) and zero padding.
    """

    base_channels: int = 64
    layers_list: list[int] = field(default_factory=lambda: [2, 2, 2, 2, 2])
    multipliers_list: list[int] = field(default_factory=lambda: [1, 2, 4, 4, 4])
    attention_list: list[int] = field(default_factory=lambda: [0, 0, 1, 1, 1])
    freq_downsample_list: list[int] = field(default_factory=lambda: [1, 0, 0, 0])
    layers_list_encoder: list[int] = field(default_factory=lambda: [1, 1, 1, 1, 1])
    attention_list_encoder: list[int] = field(default_factory=lambda: [0, 0, 1, 1, 1])
    bottleneck_base_channels: int = 512
    bottleneck_channels: int = 64
    num_bottleneck_layers: int = 4
    bottleneck_layers: Any = None
    hop: int = 256
    data_channels: int = 2
    cond_channels: int = 256
    heads: int = 4
    use_fourier: bool = False
    fourier_scale: float = 0.2
    normalization: bool = True
    dropout_rate: float = 0.0
    min_res_dropout: int = 16
    pre_normalize_downsampling_encoder: bool = True
    pre_normalize_2d_to_1d: bool = True
    frequency_scaling: bool = True
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    init_as_zero: bool = True
    activation_bottleneck: Any = "tanh"
    padding_mode: str = "zeros"
    streamable: bool = False
    lookahead: int = 0

    #: Bounds that keep a configuration file from asking for a network of tens of GB; the official and
    #: shipped models sit well inside them (``Autoencoder`` caps the total parameter count as well).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "base_channels": (1, 1024),
        "layers_list": (0, 16),
        "multipliers_list": (1, 64),
        "attention_list": (0, 1),
        "freq_downsample_list": (0, 1),
        "layers_list_encoder": (0, 16),
        "attention_list_encoder": (0, 1),
        "bottleneck_base_channels": (1, 4096),
        "bottleneck_channels": (1, 1024),
        "num_bottleneck_layers": (0, 32),
        "hop": (1, 8192),
        "data_channels": (1, 16),
        "cond_channels": (1, 4096),
        "heads": (1, 64),
        "fourier_scale": (0.0, 1000.0),
        "dropout_rate": (0.0, 1.0),
        "lookahead": (0, 2),
        "min_res_dropout": (0, 2**20),
        "sigma_min": (0.0, 1e4),
        "sigma_max": (0.0, 1e4),
        "sigma_data": (0.0, 1e4),
    }
    LENGTHS: ClassVar[dict[str, tuple[int, int]]] = {
        "layers_list": (1, 8),
        "multipliers_list": (1, 8),
        "attention_list": (1, 8),
        "layers_list_encoder": (1, 8),
        "attention_list_encoder": (1, 8),
        "freq_downsample_list": (0, 7),
    }

    def __post_init__(self) -> None:
        n = type(self).__name__
        self.check_fields(f"{n}: ")
        widest = self.base_channels * max(self.multipliers_list)
        _require(widest <= 4096, n, f"base_channels × multipliers must stay <= 4096 channels, got {widest}")
        levels = len(self.multipliers_list)
        for name in ("layers_list", "attention_list", "layers_list_encoder", "attention_list_encoder"):
            got = len(getattr(self, name))
            _require(got == levels, n, f"{name} has {got} entries but multipliers_list has {levels}")
        _require(
            len(self.freq_downsample_list) == levels - 1,
            n,
            f"freq_downsample_list needs {levels - 1} entries (one per level transition), "
            f"got {len(self.freq_downsample_list)}",
        )
        _require(all(v in (0, 1) for v in self.freq_downsample_list), n, "freq_downsample_list entries must be 0 or 1")
        _require(self.bottleneck_layers is None, n, "bottleneck_layers (DynamicBottleneck) is not supported")
        act = _activation_name(self.activation_bottleneck)
        _require(
            act is not None,
            n,
            f"activation_bottleneck must be 'tanh' or 'identity', got {self.activation_bottleneck!r}",
        )
        object.__setattr__(self, "activation_bottleneck", act)
        for c in {self.base_channels * m for m in self.multipliers_list} | {self.bottleneck_base_channels}:
            _require(c >= 4, n, f"every level needs >= 4 channels for GroupNorm, got {c}")
        if any(self.attention_list) or any(self.attention_list_encoder):
            for c in {self.base_channels * m for m in self.multipliers_list}:
                _require(c % self.heads == 0 and c % 4 == 0, n, f"{c} channels not divisible by the heads")
        _require(self.freq_dim >= 1, n, f"hop {self.hop} is too small for {levels - 1} downsampling steps")
        _require(0 < self.sigma_min < self.sigma_max, n, "need 0 < sigma_min < sigma_max")
        if self.streamable:
            _require(
                all(v == 1 for v in self.freq_downsample_list),
                n,
                "a streamable model downsamples frequency only: freq_downsample_list must be all 1",
            )
            _require(self.padding_mode == "zeros", n, "a streamable model needs padding_mode 'zeros'")
        else:
            _require(self.lookahead == 0, n, "lookahead is an option of streamable models (set streamable: true)")

    @property
    def temporal_downsamples(self) -> int:
        """Number of stride-2 steps in time between STFT frames and latent frames."""
        return self.freq_downsample_list.count(0)

    @property
    def freq_dim(self) -> int:
        """Frequency rows left at the bottleneck."""
        f = (self.hop * 2) // (4 ** self.freq_downsample_list.count(1))
        return f // (2**self.temporal_downsamples)


@dataclass(frozen=True)
class DiffusionConfig(ConfigBase):
    """Noise schedule of consistency training and sampling (official ``Diffusion``)."""

    schedule: str = "exponential"
    start_exp: float = 1.0
    end_exp: float = 3.0
    base_step: float = 0.1
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    p_mean: float = -1.1
    p_std: float = 2.0
    sigma_data: float = 0.5
    use_lognormal: bool = True
    total_iters: int | None = None
    enable_grad_denoise: bool = False

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "start_exp": (0.0, 100.0),
        "end_exp": (0.0, 100.0),
        "base_step": (0.0, 100.0),
        "sigma_min": (0.0, 1e4),
        "sigma_max": (0.0, 1e4),
        "rho": (0.0, 100.0),
        "p_mean": (-100.0, 100.0),
        "p_std": (0.0, 100.0),
        "sigma_data": (0.0, 1e4),
        "total_iters": (1, 10**9),
    }

    def __post_init__(self) -> None:
        n = type(self).__name__
        self.check_fields(f"{n}: ")
        _require(self.schedule in ("exponential", "constant"), n, "schedule must be 'exponential' or 'constant'")
        _require(self.sigma_min > 0 and self.sigma_max > 0, n, "sigma_min and sigma_max must be positive")
        _require(self.rho > 0, n, "rho must be positive")
