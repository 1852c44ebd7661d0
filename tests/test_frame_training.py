"""FrameNet training: it learns a clip, resumes exactly, keeps a compact checkpoint, runs the adversarial phase."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lincae.models.frame_autoencoder import FrameAutoencoder
from lincae.training.data import TensorCrops
from lincae.training.frame_trainer import (
    FrameTrainConfig,
    FrameTrainer,
    compact_checkpoint,
    critic_rows,
    export_checkpoint,
)
from lincae.training.losses import multi_resolution_stft

TINY_MODEL = dict(
    hop=64, n_fft=256, analysis_fall=64, synthesis=96, channels=32, mlp_ratio=2, kernel=3, encoder_blocks=1,
    decoder_blocks=2, latent_channels=16, level_frames=4,
)  # fmt: skip


def _music(seconds: float = 1.0) -> torch.Tensor:
    """A chord with harmonics and a slow tremolo: ``[1, T]`` at 44.1 kHz."""
    t = torch.arange(int(44100 * seconds)) / 44100
    x = sum(0.1 / k * torch.sin(2 * math.pi * f * k * t) for f in (220.0, 277.2, 329.6) for k in (1, 2, 3))
    return (x * (1 + 0.3 * torch.sin(2 * math.pi * 2 * t)))[None].float()


def _config(**overrides: object) -> FrameTrainConfig:
    values: dict = {  # type: ignore[type-arg]
        "model": TINY_MODEL,
        "data": {"crop_frames": 16, "batch_size": 4, "val_pieces": 1},
        "optim": {"lr": 3e-3, "final_lr": 1e-4, "warmup_steps": 10, "grad_clip": 5.0, "ema_decay": 0.9},
        "steps": 160,
        "log_every": 10,
        "val_every": 50,
        "ckpt_minutes": 1000,
    }
    values.update(overrides)
    return FrameTrainConfig.from_dict(values)


def _trainer(tmp: Path, config: FrameTrainConfig, resume: bool = True) -> FrameTrainer:
    audio = _music()
    return FrameTrainer(config, tmp, TensorCrops(audio, config.crop_samples(), seed=0), audio, resume, progress=False)


def test_training_learns_to_reconstruct_music(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, _config())
    x = _music()

    def distance() -> float:
        net = trainer.export_net()
        with torch.no_grad():
            return float(multi_resolution_stft(net.decode(net.encode(x))[:, : x.shape[-1]], x))

    before = distance()
    trainer.fit()
    after = distance()
    assert after < 0.6 * before, (before, after)
    # the exported model is the trainer's EMA network, through the streams
    model = FrameAutoencoder.from_pretrained(export_checkpoint(tmp_path / "last.ckpt", tmp_path / "model"))
    net = trainer.export_net()
    with torch.no_grad():
        want = net.decode(net.encode(x))[:, : x.shape[-1]]
    torch.testing.assert_close(model.decode(model.encode(x), full_length=x.shape[-1]), want, atol=1e-5, rtol=1e-4)
    assert (tmp_path / "history.jsonl").read_text().count("val_mrstft") == 3


def test_a_resumed_run_continues_as_an_uninterrupted_one(tmp_path: Path) -> None:
    config = _config(steps=8)
    straight = _trainer(tmp_path / "a", config)
    straight.fit()
    first = _trainer(tmp_path / "b", config)
    first.fit(until=4)
    second = _trainer(tmp_path / "b", config)
    assert second.step == 4
    second.fit()
    for (name, a), b in zip(straight.net.state_dict().items(), second.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_the_compact_checkpoint_resumes_and_leaves_the_critic_out_before_its_phase(tmp_path: Path) -> None:
    config = _config(steps=6, adversarial={"enabled": True, "start": 100, "periods": [2], "stft_fft_sizes": [256]})
    trainer = _trainer(tmp_path / "run", config)
    trainer.fit(until=3)
    small = compact_checkpoint(tmp_path / "run" / "last.ckpt", tmp_path / "keep" / "last.ckpt")
    assert small.stat().st_size < (tmp_path / "run" / "last.ckpt").stat().st_size
    state = torch.load(small, weights_only=True)
    assert state["critic"] is None and state["step"] == 3
    again = _trainer(tmp_path / "keep", config)
    assert again.step == 3
    torch.testing.assert_close(again.net.state_dict(), trainer.net.state_dict())
    again.fit()
    assert again.step == 6


def test_lincae_export_compacts_a_framenet_checkpoint_that_resumes(tmp_path: Path) -> None:
    from lincae.cli import main

    config = _config(steps=4)
    trainer = _trainer(tmp_path / "run", config)
    trainer.fit(until=2)
    assert main(["export", str(tmp_path / "run" / "last.ckpt"), str(tmp_path / "keep" / "last.ckpt")]) == 0
    state = torch.load(tmp_path / "keep" / "last.ckpt", weights_only=True)
    assert state["format"] == "lincae.frame-train-checkpoint" and state["step"] == 2
    again = _trainer(tmp_path / "keep", config)
    torch.testing.assert_close(again.net.state_dict(), trainer.net.state_dict())
    again.fit()
    assert again.step == 4


def test_the_adversarial_phase_trains_the_critic_beside_the_model(tmp_path: Path) -> None:
    config = _config(steps=3, adversarial={"enabled": True, "start": 1, "periods": [2], "stft_fft_sizes": [256]})
    trainer = _trainer(tmp_path, config)
    assert trainer.critic is not None
    before = [p.detach().clone() for p in trainer.critic.parameters()]
    first = trainer.train_step()
    assert "disc" not in first  # step 0 is before the phase
    stats = trainer.train_step()
    assert {"disc", "adversarial", "feature"} <= set(stats) and all(math.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.critic.parameters(), strict=True))


def test_the_critic_judges_mixtures_as_well_as_reconstructions() -> None:
    """With additivity the decoded batch is 16 reconstructions then 16 mixtures: half the critic's
    examples are mixtures (the odd one a reconstruction); without mixtures, the first ones; never more
    than there are."""
    assert critic_rows(4, 16, 32).tolist() == [0, 1, 16, 17]
    assert critic_rows(5, 16, 32).tolist() == [0, 1, 2, 16, 17]
    assert critic_rows(4, 16, 16).tolist() == [0, 1, 2, 3]
    assert critic_rows(1, 16, 32).tolist() == [0]
    assert critic_rows(100, 16, 32).tolist() == list(range(32))


def test_an_interrupted_run_keeps_its_last_whole_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or SIGTERM under lincae train) in step 3 saves the run at step 3 and goes on up; the run
    then resumes from there."""
    config = _config(steps=8)
    trainer = _trainer(tmp_path / "run", config)
    step = trainer.train_step

    def interrupted() -> dict[str, float]:
        if trainer.step == 3:
            raise KeyboardInterrupt
        return step()

    monkeypatch.setattr(trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["step"] == 3
    assert _trainer(tmp_path / "run", config).step == 3
