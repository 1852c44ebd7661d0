"""The training loop: consistency training with Lin-CAE's augmentations, resumable, DDP-ready.

Every random draw of step ``s`` (crops, augmentation, noise levels, noise) comes from generators
seeded with ``(seed, s, rank)``, so resuming from a checkpoint continues exactly as an uninterrupted
run would. Run folder::

    out/config.yaml         resolved configuration (with the seed)
    out/last.ckpt           model, EMA, optimiser and step (read with weights_only=True)
    out/history.jsonl       one JSON line per log or validation
    out/best/               the best validated model (EMA weights), a lincae model folder
    out/final/              the model at the end of training
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from lincae.models.autoencoder import Autoencoder
from lincae.training.augment import augment
from lincae.training.config import TrainConfig
from lincae.training.data import BatchSource
from lincae.training.ema import EMA
from lincae.training.objective import ConsistencyObjective
from lincae.training.schedules import gain_range, learning_rate, lognormal_weights, sample_sigmas

CKPT_FORMAT = "lincae.train-checkpoint"
CKPT_VERSION = 1
_VAL_KEY = 2**31 - 1
MRSTFT_MIN_SAMPLES = 1024  # the longest FFT of the MR-STFT distance


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistInfo:
        return cls(
            int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
        )


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The CPU generator for all draws of one step on one process."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + rank)


def build_model(config: TrainConfig, name: str = "model") -> Autoencoder:
    torch.manual_seed(config.seed)
    return Autoencoder(config.model.frontend, config.model.generator, config.model.diffusion, name=name)


class Trainer:
    """Trains an :class:`Autoencoder` from a :class:`TrainConfig` and a :class:`BatchSource`.

    Args:
        config: the run's configuration.
        out_dir: run folder (created).
        source: training crops.
        val_audio: ``[N, T]`` held-out clips for validation, ``T >= crop_samples`` (``None``: no validation,
            no ``best/``).
        device: where to train (default: CUDA if available).
        resume: continue from ``out_dir/last.ckpt``.
        progress: show a progress bar (main process only).
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path,
        source: BatchSource,
        val_audio: Tensor | None = None,
        device: str | torch.device | None = None,
        resume: bool = False,
        progress: bool = True,
        dist_info: DistInfo | None = None,
    ) -> None:
        self.config = config
        self.out = Path(out_dir)
        self.source = source
        if val_audio is not None and val_audio.shape[-1] < config.crop_samples():
            raise ValueError(f"validation clips need >= {config.crop_samples()} samples, got {val_audio.shape[-1]}")
        self.val_audio = val_audio
        self.dist = dist_info or DistInfo.from_env()
        if device is None:
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.progress = progress and self.dist.is_main
        self.model = build_model(config, name=self.out.name).to(self.device)
        self.objective = ConsistencyObjective(self.model.generator, self.model.frontend).to(self.device)
        self.wrapped: torch.nn.Module = self.objective
        if self.dist.world_size > 1:
            # The latent upsampler owns noise projections it never uses (as in the official model).
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                self.objective,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        o = config.optim
        self.optimizer = torch.optim.RAdam(
            self.model.generator.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
        )
        self.ema = EMA(self.model.generator, o.ema_decay)
        self.amp_dtype: torch.dtype | None = None
        if o.mixed_precision and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.sigma_weights = lognormal_weights(self.model.diffusion.config)
        self.step = 0
        self.best = math.inf
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint(self.out / "last.ckpt")
        elif self.dist.is_main:
            (self.out / "config.yaml").write_text(config.to_yaml())

    # ------------------------------------------------------------------ one step
    def train_step(self) -> float:
        """Run step ``self.step``; returns its loss. Raises :class:`TrainingDiverged` on a non-finite loss."""
        cfg, aug = self.config, self.config.augment
        step = self.step
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg.steps, cfg.optim.lr, cfg.optim.final_lr, cfg.optim.warmup_steps)
        g = step_generator(cfg.seed, step, self.dist.rank)
        audio = self.source.batch(step, cfg.data.batch_size, self.dist.rank)
        lo, hi = gain_range(
            step, cfg.steps, aug.gain_min, aug.gain_max, aug.gain_decay, aug.hold_fraction, aug.end_fraction
        )
        batch = augment(
            audio,
            g,
            additivity=bool(aug.additivity),
            homogeneity=bool(aug.homogeneity),
            gain_prob=aug.gain_prob,
            gain_lo=lo,
            gain_hi=hi,
            zero_threshold=aug.zero_threshold,
        )
        n = batch.target_audio.shape[0]
        sigmas, sigmas_step = sample_sigmas(n, step, cfg.steps, self.model.diffusion.config, g, self.sigma_weights)
        noise = torch.randn(self.objective.noise_shape(batch), generator=g)
        batch = _to(batch, self.device)
        self.model.train()
        with self._autocast():
            loss = self.wrapped(batch, sigmas.to(self.device), sigmas_step.to(self.device), noise.to(self.device))
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"loss is {value} at step {step}: training stopped. The last good checkpoint is "
                f"{self.out / 'last.ckpt'}; lower optim.lr or check the data before resuming."
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip is not None else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.generator.parameters(), clip))
        if not math.isfinite(grad_norm) and self.amp_dtype != torch.float16:  # fp16: the scaler skips the step
            raise TrainingDiverged(
                f"gradient norm is {grad_norm} at step {step}: training stopped. The last good checkpoint is "
                f"{self.out / 'last.ckpt'}; lower optim.lr or check the data before resuming."
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        if self.step % cfg.optim.ema_every == 0:
            self.ema.update(self.model.generator)
        return value

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    # ------------------------------------------------------------------ the loop
    def fit(self, until: int | None = None, on_log: Callable[[dict[str, float]], None] | None = None) -> None:
        """Train until step ``until`` (default: ``config.steps``), checkpointing and validating on the way."""
        cfg = self.config
        until = min(until or cfg.steps, cfg.steps)
        bar = _progress(self.step, until) if self.progress else None
        losses: list[float] = []
        t0 = time.perf_counter()
        try:
            while self.step < until:
                losses.append(self.train_step())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if self.step % cfg.log_every == 0:
                    record = {
                        "step": self.step,
                        "loss": sum(losses) / len(losses),
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "sec_per_step": (time.perf_counter() - t0) / len(losses),
                    }
                    self._log(record)
                    if on_log:
                        on_log(record)
                    losses, t0 = [], time.perf_counter()
                if self.step % cfg.val_every == 0 or self.step == until:
                    self.validate()
                if self.step % cfg.ckpt_every == 0 or self.step == until:
                    self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        if self.step >= cfg.steps and self.dist.is_main:  # only rank 0 holds the validation audio
            self.export(self.out / "final")

    # ------------------------------------------------------------------ validation and export
    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """Validation on the held-out audio with the EMA weights; saves ``best/`` when it improves.

        The consistency loss is measured on training-length crops of it (fixed noise), reconstruction
        SI-SDR and MR-STFT on the whole held-out clips. ``best`` follows MR-STFT (the loss when clips
        are too short for it).
        """
        if self.val_audio is None or not self.dist.is_main:
            return None
        from lincae.evaluation.metrics import mrstft_distance, si_sdr

        cfg = self.config
        audio = self.val_audio.to(self.device)
        crops = audio[:, : cfg.crop_samples()]
        self.model.eval()
        with self.ema.applied(self.model.generator):
            g = step_generator(cfg.seed, _VAL_KEY, 0)
            batch = augment(crops, g, additivity=False, homogeneity=False)
            sig, sig_step = sample_sigmas(
                crops.shape[0], cfg.steps, cfg.steps, self.model.diffusion.config, g, self.sigma_weights
            )
            noise = torch.randn(self.objective.noise_shape(batch), generator=g).to(self.device)
            val_loss = float(self.objective(batch, sig.to(self.device), sig_step.to(self.device), noise))
            y = self.model.decode(self.model.encode(audio), full_length=audio.shape[-1], seed=0).cpu()
        metrics = {"step": self.step, "val_loss": val_loss, "val_si_sdr": float(si_sdr(y, audio.cpu()).mean())}
        if audio.shape[-1] > MRSTFT_MIN_SAMPLES:
            metrics["val_mrstft"] = float(mrstft_distance(y, audio.cpu()).mean())
        self._log(metrics)
        score = metrics.get("val_mrstft", val_loss)
        if score < self.best:
            self.best = score
            self.export(self.out / "best", extra={"validation": metrics})
        return metrics

    @torch.no_grad()
    def export(self, folder: Path, extra: dict[str, Any] | None = None) -> Path:
        """Save the EMA model as a lincae model folder, with its latent scale factor set from validation data."""
        with self.ema.applied(self.model.generator):
            self.model.eval()
            self.model.scale_factor = self._scale_factor()
            meta = {
                "step": self.step,
                "train_config": self.config.to_dict(),
                "seed": self.config.seed,
                "mode": self.config.augment.mode,
                **(extra or {}),
            }
            return self.model.save_pretrained(folder, metadata=meta)

    def _scale_factor(self) -> float:
        """``1 / std`` of the raw latents of the validation crops (latents then have unit spread), else 1."""
        if self.val_audio is None:
            return 1.0
        rep = self.model.frontend.to_representation(self.val_audio.to(self.device))
        std = float(self.model.generator.encoder(rep).std())
        return round(1.0 / max(std, 1e-3), 3)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path | None:
        if not self.dist.is_main:
            return None
        path = self.out / "last.ckpt"
        state = {
            "format": CKPT_FORMAT,
            "format_version": CKPT_VERSION,
            "step": self.step,
            "best": self.best,
            "config": self.config.to_yaml(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        tmp = path.with_suffix(".ckpt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"cannot resume from {path}: corrupt or truncated checkpoint ({e})") from e
        if state.get("format") != CKPT_FORMAT or state.get("format_version") != CKPT_VERSION:
            raise ValueError(f"{path}: not a lincae training checkpoint of version {CKPT_VERSION}")
        saved = TrainConfig.from_dict(_yaml(state["config"]))
        if saved.model != self.config.model:
            raise ValueError(f"{path}: checkpoint was trained with another model configuration")
        self.model.load_state_dict(state["model"], strict=True)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best = float(state["best"])

    def _log(self, record: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        with open(self.out / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if not self.progress:
            print(
                " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                file=sys.stderr,
                flush=True,
            )


def _to(batch: Any, device: torch.device) -> Any:
    batch.encoder_audio = batch.encoder_audio.to(device)
    batch.target_audio = batch.target_audio.to(device)
    batch.gains = batch.gains.to(device)
    if batch.mix_weights is not None:
        batch.mix_weights = batch.mix_weights.to(device)
    return batch


def _yaml(text: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(text)


def _progress(start: int, total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(initial=start, total=total, unit="step", dynamic_ncols=True)


def init_distributed() -> DistInfo:
    """Join the process group started by ``torchrun`` (gloo on CPU, NCCL on GPU); no-op for one process."""
    info = DistInfo.from_env()
    if info.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(info.local_rank)
    return info
