"""Training of the FrameNet family (:mod:`lincae.models.framenet`): reconstruction with Lin-CAE's
augmentations, multi-resolution spectral and mel losses, then the adversarial phase.

One step, for a batch ``x: [B, T]`` of crops:

1. ``z = Enc(x)``; additivity (Lin-CAE): the batch is doubled with mixtures ``w·z + (1 − w)·roll(z)``
   whose targets are ``w·x + (1 − w)·roll(x)`` (``w ~ U[0.5, 1)``), so the decoder renders a latent
   mixture as the audio mixture; homogeneity: each example's latents and target get a gain ``a``
   (``U[gain_lo, gain_hi]`` with probability ``gain_prob``, capped at full scale) and a sign (``−1`` with
   probability ``negate_prob``), so ``Dec(−z) = −x`` is learned as well (positive gains hold by
   construction in this family).
2. ``y = Dec(·)``; loss = ``mrstft_weight`` · MR-STFT + ``mel_weight`` · multi-resolution log-mel L1,
   and, from ``adversarial.start`` on, the adversarial and feature-matching terms of the existing critic
   (:mod:`lincae.training.adversarial`), which trains on ``(target, y)`` with its own optimiser.

Resumable: ``out/last.ckpt`` (model, EMA, optimisers, critic, step, CPU seconds) is replaced every
``ckpt_minutes``; every draw of step ``s`` comes from ``(seed, s)``, so a resumed run continues as an
uninterrupted one would. ``out/history.jsonl`` has one line per log and validation, with the process
CPU time spent so far (the learning curve's axis).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml
from torch import Tensor

from lincae.config import MAX_SEED, ConfigBase
from lincae.evaluation.reference import mel_filterbank
from lincae.files.atomic import Terminated, write_atomically
from lincae.models.framenet import FAMILY, FrameNet, FrameNetConfig
from lincae.training.adversarial import build_critic, discriminator_loss, feature_matching, generator_loss
from lincae.training.config import AdversarialSection, DataSection, OptimSection
from lincae.training.data import BatchSource, Prefetcher
from lincae.training.ema import EMA
from lincae.training.losses import multi_resolution_stft
from lincae.training.schedules import learning_rate

CKPT_FORMAT = "lincae.frame-train-checkpoint"
CKPT_VERSION = 1
MEL_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 40), (1024, 80), (2048, 128))


@dataclass(frozen=True)
class FrameAugmentSection(ConfigBase):
    """Lin-CAE's augmentations for FrameNet (see the module docstring)."""

    additivity: bool = True
    gain_prob: float = 0.5
    gain_lo: float = 0.1
    gain_hi: float = 2.0
    negate_prob: float = 0.25

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "gain_prob": (0.0, 1.0),
        "gain_lo": (0.0, 100.0),
        "gain_hi": (0.0, 100.0),
        "negate_prob": (0.0, 1.0),
    }

    def __post_init__(self) -> None:
        self.check_fields("augment.")
        if self.gain_lo > self.gain_hi:
            raise ValueError(f"augment: gain_lo {self.gain_lo} is above gain_hi {self.gain_hi}")


@dataclass(frozen=True)
class FrameLossSection(ConfigBase):
    """Weights of the reconstruction terms."""

    mrstft_weight: float = 1.0
    mel_weight: float = 1.0

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"mrstft_weight": (0.0, 1e4), "mel_weight": (0.0, 1e4)}

    def __post_init__(self) -> None:
        self.check_fields("loss.")


@dataclass(frozen=True)
class FrameTrainConfig(ConfigBase):
    """A FrameNet training run (YAML with ``family: framenet``). ``steps`` spans the learning-rate schedule.

    ``critic_examples``: how many of a step's decoded examples the critic judges (:func:`critic_rows`: half
    of them mixtures where additivity makes any, so the critic's detail does not cost linearity).
    Discriminators cost far more than the autoencoder on a CPU; a few examples per step keep the
    adversarial phase affordable there.
    """

    family: str = FAMILY
    model: FrameNetConfig = field(default_factory=FrameNetConfig)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    augment: FrameAugmentSection = field(default_factory=FrameAugmentSection)
    loss: FrameLossSection = field(default_factory=FrameLossSection)
    adversarial: AdversarialSection = field(default_factory=AdversarialSection)
    critic_examples: int = 4
    steps: int = 100_000
    seed: int = 0
    log_every: int = 20
    val_every: int = 500
    ckpt_minutes: float = 10.0

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "critic_examples": (1, 4096),
        "steps": (1, 10**9),
        "seed": (0, MAX_SEED),
        "log_every": (1, 10**9),
        "val_every": (1, 10**9),
        "ckpt_minutes": (0.0, 1e6),
    }

    def __post_init__(self) -> None:
        sections: dict[str, type[ConfigBase]] = {
            "model": FrameNetConfig,
            "data": DataSection,
            "optim": OptimSection,
            "augment": FrameAugmentSection,
            "loss": FrameLossSection,
            "adversarial": AdversarialSection,
        }
        for name, cls in sections.items():
            object.__setattr__(self, name, cls.from_dict(getattr(self, name), where=name))
        self.check_fields()
        if self.family != FAMILY:
            raise ValueError(f"family must be {FAMILY!r} for this trainer, got {self.family!r}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["optim"]["betas"] = list(self.optim.betas)
        out["adversarial"]["betas"] = list(self.adversarial.betas)
        return out

    def crop_samples(self) -> int:
        """Samples per crop: ``crop_frames`` latent frames."""
        return self.data.crop_frames * self.model.hop


def is_frame_config(values: Any) -> bool:
    """Whether a parsed training YAML asks for this family (``family: framenet``)."""
    return isinstance(values, dict) and values.get("family") == FAMILY


# --------------------------------------------------------------------------- losses
class MelDistance:
    """Multi-resolution log-mel L1 (DAC-style): mean over :data:`MEL_RESOLUTIONS` of ``|log10 M̂ − log10 M|``."""

    def __init__(self, sample_rate: int) -> None:
        self.banks = {n: mel_filterbank(m, n, sample_rate).float() for n, m in MEL_RESOLUTIONS}
        self.windows = {n: torch.hann_window(n) for n, _ in MEL_RESOLUTIONS}

    def __call__(self, estimate: Tensor, target: Tensor) -> Tensor:
        total = estimate.new_zeros(())
        for n, bank in self.banks.items():
            w = self.windows[n].to(estimate.device)

            def mel(x: Tensor, n: int = n, w: Tensor = w, bank: Tensor = bank) -> Tensor:
                s = torch.stft(x, n, n // 4, window=w, center=True, pad_mode="constant", return_complex=True).abs()
                return torch.log10(torch.matmul(bank.to(x.device), s).clamp_min(1e-5))

            total = total + (mel(estimate) - mel(target)).abs().mean()
        return total / len(self.banks)


# --------------------------------------------------------------------------- trainer
def _generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7919 + 17)


@dataclass
class StepBatch:
    """The encoder's audio ``[B, T]``, and per decoded example (``N = 2B`` with additivity): mixing
    weights ``[B]``, gains ``[N]`` and the targets ``[N, T]``."""

    audio: Tensor
    mix: Tensor | None
    gains: Tensor
    targets: Tensor


def make_batch(audio: Tensor, aug: FrameAugmentSection, gen: torch.Generator) -> StepBatch:
    """Draw the step's augmentations (see the module docstring) for ``audio: [B, T]``."""
    b = audio.shape[0]
    mix = None
    targets = audio
    if aug.additivity:
        mix = torch.rand(b, generator=gen) * 0.5 + 0.5
        mixed = mix[:, None] * audio + (1.0 - mix[:, None]) * torch.roll(audio, 1, 0)
        targets = torch.cat((audio, mixed))
    n = targets.shape[0]
    gains = torch.ones(n)
    draw = torch.rand(n, generator=gen) < aug.gain_prob
    values = torch.rand(n, generator=gen) * (aug.gain_hi - aug.gain_lo) + aug.gain_lo
    gains = torch.where(draw, values, gains)
    gains = torch.minimum(gains, 1.0 / (targets.abs().amax(-1) + 1e-7))
    negate = torch.rand(n, generator=gen) < aug.negate_prob
    gains = torch.where(negate, -gains, gains)
    return StepBatch(audio, mix, gains, targets * gains[:, None])


def critic_rows(examples: int, batch: int, decoded: int) -> Tensor:
    """Which of ``decoded`` examples the critic judges: ``examples`` of them (at most ``decoded``), the first
    plain reconstructions and, where additivity decodes mixtures after the ``batch`` reconstructions, as
    many of the first mixtures (the odd one a reconstruction)."""
    n = min(examples, decoded)
    if decoded <= batch:
        return torch.arange(n)
    mixtures = min(n // 2, decoded - batch)
    return torch.cat((torch.arange(n - mixtures), batch + torch.arange(mixtures)))


def decoder_latents(z: Tensor, sb: StepBatch) -> Tensor:
    """The latents the decoder renders: ``z``, then its mixtures, times the gains: ``[N, C, Z]``."""
    if sb.mix is not None:
        w = sb.mix.to(z)[:, None, None]
        z = torch.cat((z, w * z + (1.0 - w) * torch.roll(z, 1, 0)))
    return z * sb.gains.to(z)[:, None, None]


class FrameTrainer:
    """Trains a :class:`~lincae.models.framenet.FrameNet` (see the module docstring).

    Args:
        config: the run's configuration.
        out: run folder (``last.ckpt``, ``history.jsonl``, ``config.yaml``, ``final/``).
        source: training crops (``batch(step, size)``) of ``config.crop_samples()`` samples.
        val_audio: fixed validation clips ``[V, T]``, or ``None``.
        resume: continue from ``out/last.ckpt`` when it exists.
    """

    def __init__(
        self,
        config: FrameTrainConfig,
        out: str | Path,
        source: BatchSource,
        val_audio: Tensor | None = None,
        resume: bool = True,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.source = source
        self.batches = Prefetcher(source, config.data.batch_size)
        self.val_audio = val_audio
        self.progress = progress
        torch.manual_seed(config.seed)
        self.net = FrameNet(config.model)
        opt = config.optim
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=opt.lr, betas=opt.betas, weight_decay=opt.weight_decay
        )
        self.ema = EMA(self.net, opt.ema_decay)
        self.mel = MelDistance(config.model.sample_rate)
        adv = config.adversarial
        self.critic = build_critic(adv, config.seed) if adv.enabled else None
        self.critic_optimizer = (
            torch.optim.Adam(self.critic.parameters(), lr=adv.lr, betas=adv.betas) if self.critic else None
        )
        self.step = 0
        self.cpu_seconds = 0.0
        ckpt = self.out / "last.ckpt"
        if resume and ckpt.is_file():
            self.load(ckpt)
        (self.out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "format": CKPT_FORMAT,
            "format_version": CKPT_VERSION,
            "config": self.config.to_dict(),
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "critic": self.critic.state_dict() if self.critic else None,
            "critic_optimizer": self.critic_optimizer.state_dict() if self.critic_optimizer else None,
            "step": self.step,
            "cpu_seconds": self.cpu_seconds,
        }

    def save(self) -> Path:
        path = self.out / "last.ckpt"
        return write_atomically(path, lambda tmp: torch.save(self.state(), tmp))

    def load(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != CKPT_FORMAT or state.get("format_version") != CKPT_VERSION:
            raise ValueError(f"{path}: not a FrameNet training checkpoint of version {CKPT_VERSION}")
        saved = FrameNetConfig.from_dict(state["config"]["model"])
        if saved != self.config.model:
            raise ValueError(f"{path}: its model config differs from the run's ({saved} vs {self.config.model})")
        self.net.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.critic is not None and state.get("critic") is not None:
            self.critic.load_state_dict(state["critic"])
            assert self.critic_optimizer is not None
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.step = int(state["step"])
        self.cpu_seconds = float(state.get("cpu_seconds", 0.0))

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------ one step
    def reconstruction(self, y: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return multi_resolution_stft(y, target), self.mel(y, target)

    def train_step(self) -> dict[str, float]:
        cfg = self.config
        step = self.step
        gen = _generator(cfg.seed, step)
        audio = self.batches.get(step)
        sb = make_batch(audio, cfg.augment, gen)
        lr = learning_rate(step, cfg.steps, cfg.optim.lr, cfg.optim.final_lr, cfg.optim.warmup_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.net.train()
        z = self.net.encode(sb.audio)
        y = self.net.decode(decoder_latents(z, sb))[:, : sb.targets.shape[-1]]
        target = sb.targets
        mr, mel = self.reconstruction(y, target)
        loss = cfg.loss.mrstft_weight * mr + cfg.loss.mel_weight * mel
        stats = {"mrstft": float(mr.detach()), "mel": float(mel.detach())}
        adv_on = self.critic is not None and cfg.adversarial.active(step)
        if adv_on:
            assert self.critic is not None and self.critic_optimizer is not None
            sec = cfg.adversarial
            self.critic.requires_grad_(True)
            rows = critic_rows(cfg.critic_examples, sb.audio.shape[0], y.shape[0])
            y_c, target_c = y[rows], target[rows]
            d_loss = discriminator_loss(self.critic(target_c), self.critic(y_c.detach()), sec.loss)
            self.critic_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.critic_optimizer.step()
            self.critic.requires_grad_(False)
            fake = self.critic(y_c)
            with torch.no_grad():
                real = self.critic(target_c)
            g_adv = generator_loss(fake, sec.loss)
            fm = feature_matching(real, fake)
            loss = loss + sec.adversarial_weight * g_adv + sec.feature_weight * fm
            stats.update(disc=float(d_loss.detach()), adversarial=float(g_adv.detach()), feature=float(fm.detach()))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {float(loss)} at step {step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip:
            stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.optim.grad_clip))
        self.optimizer.step()
        if step % cfg.optim.ema_every == 0:
            self.ema.update(self.net)
        self.step += 1
        stats.update(loss=float(loss.detach()), lr=lr)
        return stats

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """MR-STFT and mel distance of the EMA model on the validation clips (no augmentation)."""
        if self.val_audio is None:
            return {}
        self.net.eval()
        with self.ema.applied(self.net):
            x = self.val_audio
            y = self.net.decode(self.net.encode(x))[:, : x.shape[-1]]
            half = self.net.decode(0.5 * self.net.encode(x))[:, : x.shape[-1]]
        mr, mel = self.reconstruction(y, x)
        rms = lambda a: float(a.square().mean().sqrt())  # noqa: E731
        return {
            "val_mrstft": float(mr),
            "val_mel": float(mel),
            "val_level_db": 20 * math.log10(rms(y) / max(rms(x), 1e-9)),
            "val_half_db": 20 * math.log10(rms(half) / max(rms(y), 1e-9)),
        }

    def fit(self, deadline: float | None = None, until: int | None = None) -> None:
        """Train until ``steps`` (or ``until``) or the monotonic ``deadline``; checkpoint on the way, at the end,
        and when interrupted (Ctrl-C, or a terminating signal under ``lincae train``), before the interruption
        goes on up."""
        cfg = self.config
        last_save = time.monotonic()
        end = min(cfg.steps, until or cfg.steps)
        sums: dict[str, float] = {}
        count = 0
        t_log = time.monotonic()
        cpu0 = time.process_time()
        base = self.cpu_seconds
        try:
            while self.step < end:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                stats = self.train_step()
                self.cpu_seconds = base + time.process_time() - cpu0
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if self.step % cfg.log_every == 0:
                    now = time.monotonic()
                    rec = {k: v / count for k, v in sums.items()}
                    rec.update(step=self.step, cpu_hours=self.cpu_seconds / 3600, sec_per_step=(now - t_log) / count)
                    self._log(rec)
                    if self.progress:
                        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}
                        print(json.dumps(shown), flush=True)
                    sums, count, t_log = {}, 0, now
                if self.step % cfg.val_every == 0:
                    val = self.validate()
                    if val:
                        val.update(step=self.step, cpu_hours=self.cpu_seconds / 3600)
                        self._log(val)
                        if self.progress:
                            print(json.dumps(val), flush=True)
                if time.monotonic() - last_save >= 60 * cfg.ckpt_minutes:
                    self.save()
                    last_save = time.monotonic()
        except (KeyboardInterrupt, Terminated):  # Ctrl-C, SIGTERM: keep what was trained
            self.batches.close()
            self.save()
            raise
        self.batches.close()
        self.save()

    def export_net(self) -> FrameNet:
        """A copy of the network with the EMA weights, in eval mode."""
        net = FrameNet(self.config.model)
        net.load_state_dict(self.net.state_dict())
        self.ema.copy_to(net)
        return net.eval()


def compact_checkpoint(source: str | Path, dest: str | Path) -> Path:
    """A smaller resumable copy of a FrameNet checkpoint, for keeping in a repository.

    The weights and their EMA stay float32; Adam's moments are stored in bfloat16 (the optimiser casts
    them back when loading); the critic and its optimiser are left out before the adversarial phase
    starts (the trainer rebuilds them from the seed, as it does at the start).
    """
    state = torch.load(source, map_location="cpu", weights_only=True)
    if state.get("format") != CKPT_FORMAT:
        raise ValueError(f"{source}: not a FrameNet training checkpoint")
    for per_param in state["optimizer"]["state"].values():
        for key in ("exp_avg", "exp_avg_sq"):
            per_param[key] = per_param[key].to(torch.bfloat16)
    config = FrameTrainConfig.from_dict(state["config"])
    if not config.adversarial.active(int(state["step"])):
        state["critic"] = state["critic_optimizer"] = None
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(Path(dest), lambda tmp: torch.save(state, tmp))


def export_model(net: FrameNet, dest: str | Path, name: str, metadata: dict[str, Any] | None = None) -> Path:
    """Save ``net`` as a lincae model folder (``config.json`` with ``family: framenet``)."""
    from lincae.models.frame_autoencoder import FrameAutoencoder

    model = FrameAutoencoder(net.config, name=name)
    model.net.load_state_dict(net.state_dict())
    return model.save_pretrained(dest, metadata=metadata)


def export_checkpoint(ckpt: str | Path, dest: str | Path, name: str = "framenet") -> Path:
    """The EMA weights of a FrameNet training checkpoint (``last.ckpt``) as a lincae model folder."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    if state.get("format") != CKPT_FORMAT:
        raise ValueError(f"{ckpt}: not a FrameNet training checkpoint")
    config = FrameTrainConfig.from_dict(state["config"], where=str(ckpt))
    net = FrameNet(config.model)
    net.load_state_dict(state["model"])
    ema = EMA(net, config.optim.ema_decay)
    ema.load_state_dict(state["ema"])
    ema.copy_to(net)
    meta = {"step": int(state["step"]), "cpu_hours": float(state.get("cpu_seconds", 0.0)) / 3600}
    return export_model(net.eval(), dest, name, metadata={"training": meta})


def train(
    config_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    val_data: str | Path | None = None,
    resume: bool = False,
    until: int | None = None,
    minutes: float | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> Path:
    """``lincae train`` for a ``family: framenet`` config: train (or resume), then export ``out/final``.

    Without ``resume`` a run folder that already holds ``last.ckpt`` is refused (nothing is overwritten).
    """
    from lincae.training.data import FolderCrops

    if threads:
        torch.set_num_threads(threads)
    config = FrameTrainConfig.from_yaml(config_path)
    if seed is not None:
        config = FrameTrainConfig.from_dict({**config.to_dict(), "seed": seed})
    out = Path(out)
    if (out / "last.ckpt").exists() and not resume:
        raise ValueError(f"{out} already holds a run (last.ckpt): pass --resume to continue it, or another --out")
    source = FolderCrops(data, config.crop_samples(), seed=config.seed, rms_floor=config.data.rms_floor)
    val_source = FolderCrops(val_data or data, 2 * config.model.sample_rate, seed=config.seed + 1)
    trainer = FrameTrainer(config, out, source, val_audio=val_source.fixed(config.data.val_pieces), progress=progress)
    deadline = time.monotonic() + 60 * minutes if minutes else None
    trainer.fit(deadline=deadline, until=until)
    return export_model(trainer.export_net(), out / "final", name=out.name, metadata={"step": trainer.step})


def main(argv: list[str] | None = None) -> int:
    """``python -m lincae.training.frame_trainer CONFIG DATA OUT [--minutes M] [--threads N]`` (resumes)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("config")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--val-data")
    p.add_argument("--minutes", type=float)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    train(
        args.config,
        args.data,
        args.out,
        val_data=args.val_data,
        resume=True,
        minutes=args.minutes,
        threads=args.threads,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
