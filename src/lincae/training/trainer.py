"""The training loop: one-step reconstruction and consistency training with Lin-CAE's augmentations,
resumable, DDP-ready (the objective: :mod:`lincae.training.objective`).

Every random draw of step ``s`` (crops, augmentation, noise levels, noise) comes from generators
seeded with ``(seed, s, rank)``, so resuming from a checkpoint continues exactly as an uninterrupted
run would. Run folder::

    out/config.yaml         resolved configuration (with the seed)
    out/last.ckpt           model, EMA, optimiser and step, and with the adversarial phase the
                            discriminators and their optimiser (read with weights_only=True)
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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from lincae.files.atomic import write_atomically
from lincae.models.autoencoder import Autoencoder
from lincae.models.precision import autocast, autocast_dtype_for
from lincae.training.adversarial import ADVERSARIAL_LOSS_NAMES, AdversarialObjective, build_critic, discriminator_loss
from lincae.training.augment import AugmentedBatch, augment
from lincae.training.config import TrainConfig
from lincae.training.data import BatchSource, Prefetcher
from lincae.training.ema import EMA
from lincae.training.objective import LOSS_NAMES, TrainingObjective
from lincae.training.schedules import gain_range, learning_rate, lognormal_weights, sample_sigmas

CKPT_FORMAT = "lincae.train-checkpoint"
CKPT_VERSION = 1
_VAL_KEY = 2**31 - 1
MRSTFT_MIN_SAMPLES = 1024  # the longest FFT of the MR-STFT distance
#: Runs shorter than this are smoke tests: :meth:`Trainer.check_learned` leaves them alone.
LEARNING_CHECK_MIN_STEPS = 100
#: A finished run must end with a validation score below this fraction of the untrained model's.
LEARNING_CHECK_RATIO = 0.9


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingDidNotLearn(RuntimeError):
    """Training ended with a model that reconstructs no better than the untrained one."""


@dataclass
class StepBatch:
    """What one step consumes, on the training device (see :meth:`Trainer.make_batch`)."""

    batch: AugmentedBatch
    order: Tensor
    sigmas: Tensor
    sigmas_step: Tensor
    noise: Tensor
    recon_count: int
    stft_weight: Tensor


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


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 1_009 + rank


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The CPU generator for the small draws of one step on one process."""
    return torch.Generator().manual_seed(_step_seed(seed, step, rank))


def device_generator(device: torch.device, seed: int, step: int, rank: int) -> torch.Generator:
    """The generator on ``device`` for the noise of one step on one process (its own stream)."""
    return torch.Generator(device=device).manual_seed(_step_seed(seed, step, rank) ^ 0x5DEECE66D)


def build_model(config: TrainConfig, name: str = "model") -> Autoencoder:
    torch.manual_seed(config.seed)
    return Autoencoder(config.model.frontend, config.model.generator, config.model.diffusion, name=name)


def load_weights(model: Autoencoder, source: str | Path) -> None:
    """Copy the generator weights of ``source`` (a model id, folder or file) into ``model``, strictly.

    The architectures may differ in what does not change parameters (a streamable variant: causal
    padding, per-frame norms), never in parameter names or shapes.
    """
    donor = Autoencoder.from_pretrained(source)
    theirs, ours = donor.generator.state_dict(), model.generator.state_dict()
    wrong = [k for k in ours if k in theirs and theirs[k].shape != ours[k].shape]
    missing = sorted(set(ours) ^ set(theirs))
    if wrong or missing:
        what = (wrong + missing)[:5]
        raise ValueError(f"cannot start from {source}: its parameters differ from the config's ({', '.join(what)} ...)")
    model.generator.load_state_dict(theirs, strict=True)


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
        channels_last: keep 4-D weights and activations channels-last (faster convolutions on CPU and
            GPU; the results differ from contiguous memory by rounding only).
        compile: run the step's forward through ``torch.compile`` (first steps are slow while it compiles).
        prefetch: batches made ahead on a background thread.
        init_from: start a new run from this model's weights (an id, folder or file, as
            :meth:`Autoencoder.from_pretrained` takes) instead of a random draw; its parameter shapes must
            be the config's. A streamable variant of a trained model starts from that model's weights,
            for one. Recorded in the run folder's ``init.json``; ignored when resuming.
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
        channels_last: bool = True,
        compile: bool = False,
        prefetch: int = 2,
        init_from: str | Path | None = None,
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
        self.model = build_model(config, name=self.out.name)
        if init_from is not None and not resume:
            load_weights(self.model, init_from)
        self.model.to(self.device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        obj = config.objective
        self.objective = TrainingObjective(
            self.model.generator,
            self.model.frontend,
            recon_weight=obj.recon_weight,
            consistency_weight=obj.consistency_weight,
            stft_fft_sizes=obj.stft_fft_sizes,
        ).to(self.device)
        adv = config.adversarial
        # The adversarial phase (AdversarialSection): the generator's loss module grows its terms, and
        # the discriminators (the critic) train beside it with their own optimiser.
        self.critic = build_critic(adv, config.seed).to(self.device) if adv.enabled else None
        self.loss_names = ADVERSARIAL_LOSS_NAMES if adv.enabled else LOSS_NAMES
        step_module: torch.nn.Module = AdversarialObjective(self.objective, adv) if adv.enabled else self.objective
        self.wrapped: torch.nn.Module = step_module
        self.critic_wrapped: torch.nn.Module | None = self.critic
        if self.dist.world_size > 1:
            # The latent upsampler owns noise projections it never uses (as in the official model).
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                step_module, device_ids=ids, find_unused_parameters=True
            )
            if self.critic is not None:
                self.critic_wrapped = torch.nn.parallel.DistributedDataParallel(self.critic, device_ids=ids)
        if compile:
            self.wrapped = torch.compile(self.wrapped)  # type: ignore[assignment]
        self.prefetcher = Prefetcher(
            source, config.data.batch_size, self.dist.rank, depth=prefetch, pin_memory=self.device.type == "cuda"
        )
        o = config.optim
        self.optimizer = torch.optim.RAdam(
            self.model.generator.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
        )
        self.ema = EMA(self.model.generator, o.ema_decay)
        self.critic_optimizer = (
            torch.optim.Adam(self.critic.parameters(), lr=adv.lr, betas=adv.betas) if self.critic is not None else None
        )
        self.critic_has_gradients = False  # whether this step's forward_backward trained the discriminators
        self.amp_dtype = autocast_dtype_for(o.precision(self.device.type), self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.sigma_weights = lognormal_weights(self.model.diffusion.config)
        self.step = 0
        self.best = math.inf
        self.baseline = math.nan  # validation score of the untrained model
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint(self.out / "last.ckpt")
        elif self.dist.is_main:
            (self.out / "config.yaml").write_text(config.to_yaml())
            if init_from is not None:
                (self.out / "init.json").write_text(json.dumps({"init_from": str(init_from)}) + "\n")

    # ------------------------------------------------------------------ one step
    def make_batch(self, step: int) -> StepBatch:
        """Everything step ``step`` draws, on the training device: crops, augmentation, noise levels, noise.

        The CPU draws (augmentation, noise levels, which examples are reconstructed) come from
        :func:`step_generator`; the noise is drawn on the training device from a generator seeded the
        same way, so no large tensor crosses to the device and a resumed run draws the same values.
        """
        cfg, aug = self.config, self.config.augment
        g = step_generator(cfg.seed, step, self.dist.rank)
        audio = self.prefetcher.get(step).to(self.device, non_blocking=True)
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
        recon = cfg.objective.recon_count(n, step)
        sigmas[:recon] = self.model.diffusion.config.sigma_max
        order = torch.randperm(n, generator=g)
        noise = torch.randn(
            self.objective.noise_shape(batch),
            generator=device_generator(self.device, cfg.seed, step, self.dist.rank),
            device=self.device,
        )
        return StepBatch(
            batch=batch,
            order=order.to(self.device, non_blocking=True),
            sigmas=sigmas.to(self.device, non_blocking=True),
            sigmas_step=sigmas_step.to(self.device, non_blocking=True),
            noise=noise,
            recon_count=recon,
            stft_weight=torch.tensor(cfg.objective.stft_weight_at(step)),  # a 0-d CPU tensor: no transfer
        )

    def forward_backward(self, sb: StepBatch) -> Tensor:
        """Loss and gradients of one step, on the device: the losses (:attr:`loss_names`), the gradient
        norm and, with the adversarial phase configured, the discriminators' loss (0 before it starts)."""
        self.model.train()
        if self.critic is None:
            with self._autocast():
                losses = self.wrapped(
                    sb.batch, sb.order, sb.sigmas, sb.sigmas_step, sb.noise, sb.recon_count, sb.stft_weight
                )
            grad_norm = self._generator_backward(losses[0], freeze_encoder=False)
            return torch.cat([losses.detach().float(), grad_norm.detach().float().reshape(1)])
        active = self.config.adversarial.active(self.step)
        self.critic_has_gradients = False
        self.critic.requires_grad_(False)  # the generator's step: no gradient into the discriminators
        with self._autocast():
            losses, fake, real = self.wrapped(
                sb.batch,
                sb.order,
                sb.sigmas,
                sb.sigmas_step,
                sb.noise,
                sb.recon_count,
                sb.stft_weight,
                self.critic if active else None,
            )
        grad_norm = self._generator_backward(losses[0], self.config.adversarial.freeze_encoder and active)
        disc = losses.new_zeros(1)
        if active and fake.shape[0] > 0:
            self.critic.requires_grad_(True)
            self.critic.train()
            assert self.critic_optimizer is not None and self.critic_wrapped is not None
            with self._autocast():
                judged = self.critic_wrapped(torch.cat([real, fake]))
                n = real.shape[0]
                split = [(logits[:n], feats) for logits, feats in judged], [(logits[n:], []) for logits, _ in judged]
                d_loss = discriminator_loss(split[0], split[1], self.config.adversarial.loss)
            self.critic_optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(d_loss).backward()
            self.scaler.unscale_(self.critic_optimizer)
            self.critic_has_gradients = True
            disc = d_loss.detach().float().reshape(1)
        return torch.cat([losses.detach().float(), grad_norm.detach().float().reshape(1), disc])

    def _generator_backward(self, loss: Tensor, freeze_encoder: bool) -> Tensor:
        """Gradients of the generator's ``loss`` (the encoder's dropped with ``freeze_encoder``); their norm."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if freeze_encoder:  # RAVE's second phase: parameters without a gradient are left alone by RAdam
            for p in self.model.generator.encoder.parameters():
                p.grad = None
        self.scaler.unscale_(self.optimizer)
        clip = self.config.optim.grad_clip if self.config.optim.grad_clip is not None else math.inf
        return torch.nn.utils.clip_grad_norm_(self.model.generator.parameters(), clip)

    def optimizer_step(self) -> None:
        """Step the generator's optimiser and, in the adversarial phase, the discriminators'."""
        self.scaler.step(self.optimizer)
        if self.critic_optimizer is not None and self.critic_has_gradients:
            self.scaler.step(self.critic_optimizer)
        self.scaler.update()

    def ema_step(self) -> None:
        if self.step % self.config.optim.ema_every == 0:
            self.ema.update(self.model.generator)

    def set_learning_rate(self, step: int) -> None:
        o = self.config.optim
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(step, self.config.steps, o.lr, o.final_lr, o.warmup_steps)

    def train_step(self) -> dict[str, float]:
        """Run step ``self.step``; returns its losses and gradient norm.

        The step synchronises with the device once, to read those values (float16 training adds the
        gradient scaler's own check; bfloat16 needs none); a non-finite loss or gradient
        raises :class:`TrainingDiverged` before the weights change.
        """
        step = self.step
        self.set_learning_rate(step)
        stats = self.forward_backward(self.make_batch(step)).tolist()  # the one host sync of the step
        names = (*self.loss_names, "grad_norm", *(("disc",) if self.critic is not None else ()))
        values = dict(zip(names, stats, strict=True))
        for name in ("loss", "disc"):
            if not math.isfinite(values.get(name, 0.0)):
                what = "loss" if name == "loss" else "discriminators' loss"
                raise TrainingDiverged(
                    f"{what} is {values[name]} at step {step}: training stopped. The last good checkpoint is "
                    f"{self.out / 'last.ckpt'}; lower optim.lr or check the data before resuming."
                )
        if not math.isfinite(values["grad_norm"]) and self.amp_dtype != torch.float16:  # fp16: the scaler skips
            raise TrainingDiverged(
                f"gradient norm is {values['grad_norm']} at step {step}: training stopped. The last good checkpoint "
                f"is {self.out / 'last.ckpt'}; lower optim.lr or check the data before resuming."
            )
        self.optimizer_step()
        self.step += 1
        self.ema_step()
        return values

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.amp_dtype, self.device)

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        until: int | None = None,
        on_log: Callable[[dict[str, float]], None] | None = None,
        deadline: float | None = None,
    ) -> None:
        """Train until step ``until`` (default: ``config.steps``), checkpointing and validating on the way.

        ``deadline`` (a ``time.monotonic()`` value) ends the run early after the step that passes it,
        with a validation and a checkpoint, as if ``until`` had been that step.

        A fresh run first validates the untrained model (the baseline). A run that reaches
        ``config.steps`` (at least :data:`LEARNING_CHECK_MIN_STEPS` of them) with validation audio must end
        with a better validation score than that baseline, else :class:`TrainingDidNotLearn` says so
        (the checkpoint and ``final/`` are still written, for inspection).
        """
        cfg = self.config
        until = min(until or cfg.steps, cfg.steps)
        if self.step == 0 and math.isnan(self.baseline):
            metrics = self.validate(baseline=True)
            if metrics is not None:
                self.baseline = self._score(metrics)
        bar = _progress(self.step, until) if self.progress else None
        sums: dict[str, float] = {}
        count = 0
        t0 = time.perf_counter()
        try:
            while self.step < until:
                values = self.train_step()
                count += 1
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}")
                if self.step % cfg.log_every == 0:
                    record: dict[str, float] = {"step": self.step, **{k: v / count for k, v in sums.items()}}
                    record["lr"] = self.optimizer.param_groups[0]["lr"]
                    record["sec_per_step"] = (time.perf_counter() - t0) / count
                    self._log(record)
                    if on_log:
                        on_log(record)
                    sums, count, t0 = {}, 0, time.perf_counter()
                last = self.step == until or self._deadline_passed(deadline)
                if self.step % cfg.val_every == 0 or last:
                    self.validate()
                if self.step % cfg.ckpt_every == 0 or last:
                    self.save_checkpoint()
                if last:
                    break
        finally:
            self.prefetcher.close()
            if bar is not None:
                bar.close()
        if self.step >= cfg.steps and self.dist.is_main:  # only rank 0 holds the validation audio
            self.export(self.out / "final")
            self.check_learned()

    def _deadline_passed(self, deadline: float | None) -> bool:
        """Whether ``deadline`` has passed; under DDP all ranks decide together, every ``log_every`` steps."""
        if deadline is None:
            return False
        passed = time.monotonic() >= deadline
        if self.dist.world_size > 1:
            if self.step % self.config.log_every:
                return False
            flag = torch.tensor([float(passed)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            passed = bool(flag.item())
        return passed

    def check_learned(self) -> None:
        """Raise :class:`TrainingDidNotLearn` when a finished run is no better than its untrained model."""
        cfg = self.config
        if cfg.steps < LEARNING_CHECK_MIN_STEPS or not math.isfinite(self.baseline) or not math.isfinite(self.best):
            return
        if self.best > LEARNING_CHECK_RATIO * self.baseline:
            raise TrainingDidNotLearn(
                f"training did not learn: after {self.step} steps the best validation score ({self.best:.4g}, "
                f"MR-STFT of the reconstructions) is no better than the untrained model's ({self.baseline:.4g}). "
                f"The model in {self.out / 'final'} would decode noise. Check optim.lr ({cfg.optim.lr:g}), the "
                "level of the training audio, and the objective weights."
            )

    # ------------------------------------------------------------------ validation and export
    @staticmethod
    def _score(metrics: dict[str, float]) -> float:
        return metrics.get("val_mrstft", metrics["val_loss"])

    @torch.no_grad()
    def validate(self, baseline: bool = False) -> dict[str, float] | None:
        """Validation on the held-out audio with the EMA weights; saves ``best/`` when it improves.

        The training loss is measured on training-length crops of it (fixed noise), reconstruction
        SI-SDR, MR-STFT and chroma correlation on the whole held-out clips. ``best`` follows MR-STFT
        (the loss when clips are too short for it). ``baseline``: the untrained model's score, logged
        but not saved as ``best``.
        """
        if self.val_audio is None or not self.dist.is_main:
            return None
        from lincae.evaluation.metrics import CHROMA_SETTINGS, chroma_correlation, mrstft_distance, si_sdr

        cfg = self.config
        audio = self.val_audio.to(self.device)
        crops = audio[:, : cfg.crop_samples()]
        self.model.eval()
        with self.ema.applied(self.model.generator):
            g = step_generator(cfg.seed, _VAL_KEY, 0)
            batch = augment(crops, g, additivity=False, homogeneity=False)
            n = crops.shape[0]
            sig, sig_step = sample_sigmas(n, cfg.steps, cfg.steps, self.model.diffusion.config, g, self.sigma_weights)
            recon = cfg.objective.recon_count(n)
            sig[:recon] = self.model.diffusion.config.sigma_max
            noise = torch.randn(self.objective.noise_shape(batch), generator=g).to(self.device)
            order = torch.arange(n, device=self.device)
            losses = self.objective(
                batch, order, sig.to(self.device), sig_step.to(self.device), noise, recon, cfg.objective.stft_weight
            )
            y = self.model.decode(self.model.encode(audio), full_length=audio.shape[-1], seed=0).cpu()
        ref = audio.cpu()
        metrics = {"step": self.step, "val_loss": float(losses[0]), "val_si_sdr": float(si_sdr(y, ref).mean())}
        if audio.shape[-1] > MRSTFT_MIN_SAMPLES:
            metrics["val_mrstft"] = float(mrstft_distance(y, ref).mean())
        if audio.shape[-1] >= CHROMA_SETTINGS["n_fft"]:
            metrics["val_chroma"] = float(chroma_correlation(y, ref).mean())
        if baseline:
            metrics["baseline"] = 1.0
        self._log(metrics)
        score = self._score(metrics)
        if not baseline and score < self.best:
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
            "baseline": self.baseline,
            "config": self.config.to_yaml(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        if self.critic is not None and self.critic_optimizer is not None:
            state["critic"] = self.critic.state_dict()
            state["critic_optimizer"] = self.critic_optimizer.state_dict()
        return write_atomically(path, lambda tmp: torch.save(state, tmp))

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
        changed = [
            k
            for k in ("data", "optim", "augment", "objective", "adversarial", "steps", "seed")
            if getattr(saved, k) != getattr(self.config, k)
        ]
        if changed and self.dist.is_main:
            warnings.warn(
                f"resuming {path} with other settings than it was trained with ({', '.join(changed)}): "
                "the schedules continue from the new ones",
                stacklevel=2,
            )
        self.model.load_state_dict(state["model"], strict=True)  # casts a compact checkpoint's float16 back
        self.ema.load_state_dict(state["ema"])
        compact = bool(state.get("compact"))
        self.optimizer.load_state_dict(_optimizer_state(state["optimizer"], compact))
        self.scaler.load_state_dict(state["scaler"])
        if self.critic is not None and self.critic_optimizer is not None and "critic" in state:
            self.critic.load_state_dict(state["critic"], strict=True)  # casts a compact float16 copy back
            self.critic_optimizer.load_state_dict(_optimizer_state(state["critic_optimizer"], compact))
        # A checkpoint without discriminators (trained before the phase was configured) starts them fresh.
        self.step = int(state["step"])
        self.best = float(state["best"])
        self.baseline = float(state.get("baseline", math.nan))

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


def _optimizer_state(optimizer: dict[str, Any], compact: bool) -> dict[str, Any]:
    """An optimiser's saved state; a compact one (export.compact_checkpoint: first moments left out,
    second moments in bfloat16) is brought back to float32 with zero first moments."""
    if not compact:
        return optimizer
    return {
        "param_groups": optimizer["param_groups"],
        "state": {
            i: {
                "step": s["step"],
                "exp_avg": torch.zeros_like(s["exp_avg_sq"], dtype=torch.float32),
                "exp_avg_sq": s["exp_avg_sq"].float(),
            }
            for i, s in optimizer["state"].items()
        },
    }


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
