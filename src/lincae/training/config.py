"""Training configuration: one typed, validated object, saved beside every checkpoint.

A YAML file holds the sections below (any may be left out to take the defaults)::

    model:    {frontend: {...}, generator: {...}, diffusion: {...}}   # Autoencoder constructor arguments
    data:     {crop_frames: 64, batch_size: 8, rms_floor: 0.001}
    optim:    {lr: 1.0e-4, final_lr: 1.0e-6, warmup_steps: 500}
    augment:  {mode: lin-cae}                                       # or m2l (no linearity augmentations)
    objective: {recon_fraction: 0.5, consistency_weight: 0.01}       # see ObjectiveSection
    adversarial: {enabled: false, start: 3000}                      # see AdversarialSection
    steps: 3000
    seed: 0

``config_version: 1`` files (written before the ``objective`` section existed) trained with consistency
alone; they are read with ``objective: {recon_fraction: 0}``, which is exactly that.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from lincae.config import MAX_SEED, ConfigBase
from lincae.models.config import DiffusionConfig, FrontendConfig, GeneratorConfig

CONFIG_VERSION = 2


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{where}: {msg}")


@dataclass(frozen=True)
class ModelSection(ConfigBase):
    """Constructor arguments of the model being trained (see :class:`lincae.Autoencoder`)."""

    frontend: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)
    diffusion: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        FrontendConfig.from_dict(self.frontend, where="model.frontend")
        GeneratorConfig.from_dict(self.generator, where="model.generator")
        DiffusionConfig.from_dict(self.diffusion, where="model.diffusion")


@dataclass(frozen=True)
class DataSection(ConfigBase):
    """Training crops.

    Attributes:
        crop_frames: STFT frames per training example (the crop is ``hop * (crop_frames + n_fft_factor - 1)``
            samples, so the representation has exactly this many frames).
        batch_size: examples per step and process (doubled inside the step by the additivity augmentation).
        rms_floor: crops quieter than this RMS (linear, full scale 1.0) are redrawn.
        val_pieces: number of held-out crops used for validation.
    """

    crop_frames: int = 64
    batch_size: int = 8
    rms_floor: float = 0.001
    val_pieces: int = 8

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "crop_frames": (8, 2**16),
        "batch_size": (2, 4096),
        "rms_floor": (0.0, 1.0),
        "val_pieces": (1, 10_000),
    }

    def __post_init__(self) -> None:
        self.check_fields("data.")
        _check(self.crop_frames >= 8, "data.crop_frames", f"must be >= 8, got {self.crop_frames}")
        _check(self.batch_size >= 2, "data.batch_size", f"must be >= 2 (mixtures pair examples), got {self.batch_size}")
        _check(self.rms_floor >= 0, "data.rms_floor", f"must be >= 0, got {self.rms_floor}")
        _check(self.val_pieces >= 1, "data.val_pieces", f"must be >= 1, got {self.val_pieces}")


@dataclass(frozen=True)
class OptimSection(ConfigBase):
    """RAdam with linear warm-up then cosine decay to ``final_lr``; EMA of the weights.

    ``mixed_precision``: bfloat16 autocast on GPUs that support it (float16 with loss scaling on the
    others). ``cpu_bf16``: bfloat16 autocast on the CPU too, used only where the CPU computes bfloat16
    natively (AVX-512 BF16 or AMX); about 1.3× faster steps there, elsewhere it would be slower.
    :meth:`precision` says what they ask for; :mod:`lincae.models.precision` decides the dtype.
    """

    lr: float = 1e-4
    final_lr: float = 1e-6
    warmup_steps: int = 500
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None
    ema_decay: float = 0.999
    ema_every: int = 1
    mixed_precision: bool = True
    cpu_bf16: bool = False

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "lr": (0.0, 10.0),
        "final_lr": (0.0, 10.0),
        "warmup_steps": (0, 10**9),
        "betas": (0.0, 1.0),
        "weight_decay": (0.0, 10.0),
        "grad_clip": (0.0, 1e9),
        "ema_decay": (0.0, 1.0),
        "ema_every": (1, 10**9),
    }

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        self.check_fields("optim.")
        _check(self.lr > 0 and self.final_lr >= 0, "optim", "lr must be > 0 and final_lr >= 0")
        _check(self.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
        _check(0.0 < self.ema_decay < 1.0, "optim.ema_decay", f"must be in (0, 1), got {self.ema_decay}")
        _check(self.ema_every >= 1, "optim.ema_every", "must be >= 1")
        _check(self.grad_clip is None or self.grad_clip > 0, "optim.grad_clip", "must be > 0 or null")

    def precision(self, device_type: str) -> str:
        """The precision (:data:`lincae.models.precision.PRECISIONS`) training asks for on a ``cuda`` or
        ``cpu`` device: ``mixed`` on a GPU with ``mixed_precision``, ``auto`` (bfloat16 where native) on a
        CPU with ``cpu_bf16``, else ``fp32``."""
        if device_type == "cuda":
            return "mixed" if self.mixed_precision else "fp32"
        if device_type == "cpu":
            return "auto" if self.cpu_bf16 else "fp32"
        return "fp32"


@dataclass(frozen=True)
class AugmentSection(ConfigBase):
    """Lin-CAE's implicit linearity regularisation.

    ``mode: lin-cae`` turns on both augmentations; ``mode: m2l`` trains the same model without them
    (the Music2Latent baseline). Gains ``a ~ U[gain_min, gain_max]`` are drawn with probability
    ``gain_prob`` (else 1), set to 0 below ``zero_threshold`` and capped so that ``peak(a·x) <= 1``.
    With ``gain_decay`` the range is held for the first ``hold_fraction`` of training, annealed on a
    cosine towards 1, and fixed at 1 for the last ``end_fraction``.
    """

    mode: str = "lin-cae"
    additivity: bool | None = None
    homogeneity: bool | None = None
    gain_prob: float = 0.8
    gain_min: float = 0.0
    gain_max: float = 3.0
    zero_threshold: float = 0.05
    gain_decay: bool = True
    hold_fraction: float = 0.2
    end_fraction: float = 0.1

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "gain_prob": (0.0, 1.0),
        "gain_min": (0.0, 1.0),
        "gain_max": (1.0, 100.0),
        "zero_threshold": (0.0, 1.0),
        "hold_fraction": (0.0, 1.0),
        "end_fraction": (0.0, 1.0),
    }

    def __post_init__(self) -> None:
        self.check_fields("augment.")
        _check(self.mode in ("lin-cae", "m2l"), "augment.mode", f"must be 'lin-cae' or 'm2l', got {self.mode!r}")
        on = self.mode == "lin-cae"
        if self.additivity is None:
            object.__setattr__(self, "additivity", on)
        if self.homogeneity is None:
            object.__setattr__(self, "homogeneity", on)
        _check(0.0 <= self.gain_prob <= 1.0, "augment.gain_prob", "must be in [0, 1]")
        _check(0.0 <= self.gain_min <= 1.0 <= self.gain_max, "augment", "need 0 <= gain_min <= 1 <= gain_max")
        _check(0.0 <= self.hold_fraction and 0.0 <= self.end_fraction, "augment", "fractions must be >= 0")
        _check(self.hold_fraction + self.end_fraction <= 1.0, "augment", "hold_fraction + end_fraction must be <= 1")


@dataclass(frozen=True)
class ObjectiveSection(ConfigBase):
    """What each step's loss is made of.

    A fixed share of every batch (``recon_fraction``, the examples drawn at random) is decoded in one
    step from pure noise at ``sigma_max``, exactly as ``Autoencoder.decode`` does, and compared with
    the clean (augmented) target: relative MSE of the compressed complex STFT (``recon_weight``) plus
    a multi-resolution STFT distance of the waveforms (``stft_weight``, ramped in linearly from step
    ``stft_start`` over ``stft_ramp`` steps). The remaining examples get the consistency loss of
    Music2Latent / Lin-CAE (student at ``sigma``, detached teacher at ``sigma_step``), scaled by
    ``consistency_weight``. Before step ``consistency_start`` every example is reconstructed: a
    regression warm-up of the decoder, whose consistency targets are noise while it is untrained (with
    them from the start, the reconstruction learned about half as fast on varied music).

    Why: one-step decoding reads the network at ``sigma_max``, the top of the consistency chain, which
    consistency training alone only reaches after hundreds of thousands of steps; until then it decodes
    a quiet average without pitch. The reconstruction term trains that output directly, so a short run
    already decodes the music, and the consistency term keeps the lower noise levels (multi-step
    decoding) consistent. The complex-STFT MSE is what teaches coherent phase (pitch); the STFT term,
    brought in once phase is found, fixes the level of quiet bands. ``recon_fraction: 0`` is the paper's
    objective, consistency alone.
    """

    recon_fraction: float = 0.5
    recon_weight: float = 1.0
    stft_weight: float = 1.0
    stft_start: int = 100
    stft_ramp: int = 50
    stft_fft_sizes: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048, 4096])
    consistency_weight: float = 0.01
    consistency_start: int = 0

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "recon_fraction": (0.0, 1.0),
        "recon_weight": (0.0, 1e6),
        "stft_weight": (0.0, 1e6),
        "stft_start": (0, 10**9),
        "stft_ramp": (0, 10**9),
        "stft_fft_sizes": (16, 2**16),
        "consistency_weight": (0.0, 1e6),
        "consistency_start": (0, 10**9),
    }
    LENGTHS: ClassVar[dict[str, tuple[int, int]]] = {"stft_fft_sizes": (1, 16)}

    def __post_init__(self) -> None:
        self.check_fields("objective.")
        object.__setattr__(self, "stft_fft_sizes", [int(n) for n in self.stft_fft_sizes])
        _check(self.consistency_start >= 0, "objective.consistency_start", "must be >= 0")
        _check(
            0.0 <= self.recon_fraction <= 1.0,
            "objective.recon_fraction",
            f"must be in [0, 1], got {self.recon_fraction}",
        )
        for name in ("recon_weight", "stft_weight", "consistency_weight"):
            _check(getattr(self, name) >= 0, f"objective.{name}", f"must be >= 0, got {getattr(self, name)}")
        _check(self.stft_start >= 0 and self.stft_ramp >= 0, "objective", "stft_start and stft_ramp must be >= 0")
        _check(
            bool(self.stft_fft_sizes) and all(n >= 16 for n in self.stft_fft_sizes),
            "objective.stft_fft_sizes",
            f"need one or more FFT sizes >= 16, got {self.stft_fft_sizes}",
        )
        _check(
            self.recon_fraction < 1.0 or self.recon_weight + self.stft_weight > 0,
            "objective",
            "recon_fraction 1 needs recon_weight or stft_weight > 0",
        )

    def stft_weight_at(self, step: int) -> float:
        """The STFT term's weight at ``step`` (0 before ``stft_start``, then a linear ramp to ``stft_weight``)."""
        if step < self.stft_start:
            return 0.0
        if self.stft_ramp == 0:
            return self.stft_weight
        return self.stft_weight * min(1.0, (step - self.stft_start) / self.stft_ramp)

    def recon_count(self, batch: int, step: int | None = None) -> int:
        """Examples of a batch of ``batch`` that get the reconstruction loss at ``step`` (all of them
        before ``consistency_start``; ``step=None``: after it)."""
        if step is not None and step < self.consistency_start:
            return batch
        if self.recon_fraction <= 0:
            return 0
        return min(batch, max(1, round(self.recon_fraction * batch)))


@dataclass(frozen=True)
class AdversarialSection(ConfigBase):
    """The adversarial phase: discriminators that teach the one-step decoder sharp upper harmonics.

    Off by default (``enabled: false``): a config without this section trains exactly as before. From
    step ``start`` the waveforms of the reconstructed examples (the one-step decodes of the objective,
    with Lin-CAE's augmentations, so their targets are the augmented mixtures and scaled audio) are
    judged against their targets by a multi-period discriminator (HiFi-GAN; ``periods``, first layer
    ``period_channels`` wide) and a multi-resolution magnitude-spectrogram discriminator
    (UnivNet/Vocos; ``stft_fft_sizes``, ``stft_channels``), see :mod:`lincae.training.discriminators`.
    The generator's loss adds ``adversarial_weight`` × the adversarial term (``loss``: ``hinge`` or
    ``lsgan``, least squares) and ``feature_weight`` × feature matching (L1 between the
    discriminators' feature maps of target and decode) to the reconstruction and consistency terms,
    which stay. ``hf_stft_weight`` adds a frequency-weighted log-magnitude STFT distance (bins weighted
    by ``1 + f / hf_pivot_hz``, see :func:`lincae.training.losses.frequency_weighted_log_stft`) from the
    same step. The discriminators train with their own Adam (``lr``, ``betas``, constant rate).
    ``freeze_encoder``: the phase trains the decoder alone (RAVE's second phase); the encoder, and so
    the latent space, stays as the warm-up left it.
    """

    enabled: bool = False
    start: int = 0
    loss: str = "hinge"
    adversarial_weight: float = 1.0
    feature_weight: float = 2.0
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    period_channels: int = 16
    stft_fft_sizes: list[int] = field(default_factory=lambda: [512, 1024, 2048])
    stft_channels: int = 16
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    hf_stft_weight: float = 0.0
    hf_pivot_hz: float = 2000.0
    freeze_encoder: bool = False

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "start": (0, 10**9),
        "adversarial_weight": (0.0, 1e4),
        "feature_weight": (0.0, 1e4),
        "periods": (1, 1024),
        "period_channels": (1, 1024),
        "stft_fft_sizes": (64, 65536),
        "stft_channels": (1, 1024),
        "lr": (0.0, 10.0),
        "betas": (0.0, 1.0),
        "hf_stft_weight": (0.0, 1e4),
        "hf_pivot_hz": (0.0, 1e6),
    }
    LENGTHS: ClassVar[dict[str, tuple[int, int]]] = {"periods": (0, 16), "stft_fft_sizes": (0, 16)}

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        self.check_fields("adversarial.")
        object.__setattr__(self, "periods", list(self.periods))
        object.__setattr__(self, "stft_fft_sizes", list(self.stft_fft_sizes))
        _check(self.loss in ("hinge", "lsgan"), "adversarial.loss", f"must be 'hinge' or 'lsgan', got {self.loss!r}")
        _check(self.start >= 0, "adversarial.start", f"must be >= 0, got {self.start}")
        for name in ("adversarial_weight", "feature_weight", "hf_stft_weight"):
            _check(getattr(self, name) >= 0, f"adversarial.{name}", f"must be >= 0, got {getattr(self, name)}")
        _check(
            bool(self.periods) or bool(self.stft_fft_sizes),
            "adversarial",
            "needs at least one discriminator (periods or stft_fft_sizes)",
        )
        _check(all(p >= 1 for p in self.periods), "adversarial.periods", f"must be >= 1, got {self.periods}")
        _check(
            all(n >= 64 for n in self.stft_fft_sizes),
            "adversarial.stft_fft_sizes",
            f"must be >= 64, got {self.stft_fft_sizes}",
        )
        _check(self.period_channels >= 1 and self.stft_channels >= 1, "adversarial", "channel counts must be >= 1")
        _check(self.lr > 0, "adversarial.lr", f"must be > 0, got {self.lr}")
        _check(self.hf_pivot_hz > 0, "adversarial.hf_pivot_hz", f"must be > 0, got {self.hf_pivot_hz}")

    def active(self, step: int) -> bool:
        """Whether step ``step`` is in the adversarial phase."""
        return self.enabled and step >= self.start


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Everything that defines a training run. ``steps`` is the total the schedules are built for."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    adversarial: AdversarialSection = field(default_factory=AdversarialSection)
    steps: int = 3000
    seed: int = 0
    log_every: int = 10
    val_every: int = 250
    ckpt_every: int = 50
    config_version: int = CONFIG_VERSION

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "steps": (1, 10**9),
        "seed": (0, MAX_SEED),
        "log_every": (1, 10**9),
        "val_every": (1, 10**9),
        "ckpt_every": (1, 10**9),
    }

    def __post_init__(self) -> None:
        sections = {
            "model": ModelSection,
            "data": DataSection,
            "optim": OptimSection,
            "augment": AugmentSection,
            "objective": ObjectiveSection,
            "adversarial": AdversarialSection,
        }
        for name, cls in sections.items():
            object.__setattr__(self, name, cls.from_dict(getattr(self, name), where=name))
        self.check_fields()
        _check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        levels = 2 ** GeneratorConfig.from_dict(self.model.generator).temporal_downsamples
        _check(
            self.data.crop_frames % levels == 0,
            "data.crop_frames",
            f"must be a multiple of {levels} (the model halves time {levels.bit_length() - 1} times), "
            f"got {self.data.crop_frames}",
        )
        _check(min(self.log_every, self.val_every, self.ckpt_every) >= 1, "train", "intervals must be >= 1")
        _check(
            self.config_version == CONFIG_VERSION,
            "config_version",
            f"{self.config_version} not supported (this lincae reads {CONFIG_VERSION})",
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | TrainConfig | None, *, where: str | None = None) -> TrainConfig:
        """Build from a mapping; files of an older ``config_version`` are migrated first."""
        if isinstance(values, dict):
            values = migrate(values)
        return super().from_dict(values, where=where)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        out["optim"]["betas"] = list(self.optim.betas)
        out["adversarial"]["betas"] = list(self.adversarial.betas)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def crop_samples(self) -> int:
        """Audio samples per training crop: exactly ``crop_frames`` STFT frames."""
        fe = FrontendConfig.from_dict(self.model.frontend)
        return fe.hop_size * (self.data.crop_frames + fe.n_fft_factor - 1)


def migrate(values: dict[str, Any]) -> dict[str, Any]:
    """Bring a configuration mapping of an older ``config_version`` to :data:`CONFIG_VERSION`.

    A mapping without ``config_version`` is taken as current (hand-written files usually leave it out).
    Version 1 had no ``objective`` section and trained with consistency alone.
    """
    version = values.get("config_version", CONFIG_VERSION)
    if version == 1:
        values = {**values, "config_version": 2}
        objective = dict(values.get("objective") or {})
        objective.setdefault("recon_fraction", 0.0)
        values["objective"] = objective
    return values
