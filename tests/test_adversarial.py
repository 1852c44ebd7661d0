"""The adversarial phase: its losses by hand, the discriminators, and training with it on and resumed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from test_training import music, step_counting_host_reads
from test_training import tiny_config as training_tiny_config

from lincae.training.adversarial import build_critic, discriminator_loss, feature_matching, generator_loss
from lincae.training.config import AdversarialSection, TrainConfig
from lincae.training.data import TensorCrops
from lincae.training.discriminators import Critic, PeriodDiscriminator, SpectrogramDiscriminator
from lincae.training.losses import frequency_weighted_log_stft, frequency_weights
from lincae.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
#: A small critic for the tiny model's 352-sample crops.
TINY_ADVERSARIAL = {
    "enabled": True,
    "start": 2,
    "periods": [2, 3],
    "period_channels": 4,
    "stft_fft_sizes": [64, 128],
    "stft_channels": 4,
    "hf_stft_weight": 0.5,
}


def tiny_config(**overrides: object) -> TrainConfig:
    """The training tests' tiny config with the adversarial phase on, 6 steps."""
    return training_tiny_config(**{"adversarial": TINY_ADVERSARIAL, "steps": 6, **overrides})


def _trainer(tmp: Path, cfg: TrainConfig, resume: bool = False) -> Trainer:
    source = TensorCrops(music(6, cfg.crop_samples() * 3), cfg.crop_samples(), seed=0)
    return Trainer(cfg, tmp, source, val_audio=music(2, 4096, seed=9), device="cpu", resume=resume, progress=False)


def _out(*logits: list[float]) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    return [(torch.tensor([v]), []) for v in logits]


# ----------------------------------------------------------------------------- losses by hand
def test_hinge_and_least_squares_losses_by_hand() -> None:
    real = _out([2.0, 0.5], [-1.0, 1.0])  # two discriminators, one item, two logits each
    fake = _out([-3.0, 0.0], [0.5, -0.5])
    # hinge, discriminators: mean(relu(1 - r)) + mean(relu(1 + f)), averaged over the two
    d1 = (0 + 0.5) / 2 + (0 + 1) / 2
    d2 = (2 + 0) / 2 + (1.5 + 0.5) / 2
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx((d1 + d2) / 2)
    # hinge, generator: mean(-f)
    assert float(generator_loss(fake, "hinge")) == pytest.approx(((3 + 0) / 2 + (-0.5 + 0.5) / 2) / 2)
    # least squares: mean((1 - r)²) + mean(f²); generator mean((1 - f)²)
    l1 = (1 + 0.25) / 2 + (9 + 0) / 2
    l2 = (4 + 0) / 2 + (0.25 + 0.25) / 2
    assert float(discriminator_loss(real, fake, "lsgan")) == pytest.approx((l1 + l2) / 2)
    g1, g2 = (16 + 1) / 2, (0.25 + 2.25) / 2
    assert float(generator_loss(fake, "lsgan")) == pytest.approx((g1 + g2) / 2)
    with pytest.raises(ValueError, match="hinge' or 'lsgan'"):
        generator_loss(fake, "wasserstein")


def test_feature_matching_by_hand_and_only_the_decode_gets_gradients() -> None:
    r1, r2 = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0]])
    f1 = torch.tensor([[0.0, 4.0]], requires_grad=True)
    f2 = torch.tensor([[3.0]], requires_grad=True)
    q1 = torch.tensor([[1.0, 1.0, 1.0]], requires_grad=True)
    real = [(torch.zeros(1, 1), [r1, r2]), (torch.zeros(1, 1), [torch.zeros(1, 3)])]
    fake = [(torch.zeros(1, 1), [f1, f2]), (torch.zeros(1, 1), [q1])]
    # discriminator 1: layers (|1-0| + |2-4|)/2 = 1.5 and 3 → 2.25; discriminator 2: 1 → mean 1.625
    loss = feature_matching(real, fake)
    assert float(loss.detach()) == pytest.approx(1.625)
    loss.backward()
    assert f1.grad is not None and torch.allclose(f1.grad, torch.tensor([[-0.125, 0.125]]))


def test_frequency_weighted_log_stft_by_hand() -> None:
    w = frequency_weights(64, 2000.0)
    freqs = torch.fft.rfftfreq(64, 1 / 44100)
    assert float(w.mean()) == pytest.approx(1.0) and float(w[-1] / w[0]) == pytest.approx(1 + 22050 / 2000)
    assert torch.allclose(w, (1 + freqs / 2000) / (1 + freqs / 2000).mean())
    x = music(2, 512, seed=1)
    assert float(frequency_weighted_log_stft(x, x, [64, 128])) == 0.0
    # A gain g changes every log magnitude by log(g) (far above the floor): the weights average to 1.
    quiet = 0.5 * x
    by_hand = math.log(2.0)
    assert float(frequency_weighted_log_stft(quiet, x, [64])) == pytest.approx(by_hand, rel=0.05)
    # High-frequency errors count more than low ones of the same size.
    t = torch.arange(4096) / 44100
    low, high = torch.sin(2 * math.pi * 500 * t), torch.sin(2 * math.pi * 12000 * t)
    base = low + high
    assert float(frequency_weighted_log_stft(low + 0.5 * high, base, [256])) > float(
        frequency_weighted_log_stft(0.5 * low + high, base, [256])
    )


# ----------------------------------------------------------------------------- discriminators
def test_discriminator_shapes_and_features() -> None:
    audio = torch.randn(3, 1000)
    logits, feats = PeriodDiscriminator(5, channels=4)(audio)
    assert logits.shape[0] == 3 and len(feats) == 6 and feats[0].shape[-1] == 5  # columns of period 5
    logits, feats = SpectrogramDiscriminator(256, channels=4)(audio)
    assert logits.shape[0] == 3 and len(feats) == 6
    out = Critic((2, 3), 4, (128,), 4)(audio)
    assert len(out) == 3 and all(lg.shape[0] == 3 for lg, _ in out)
    section = AdversarialSection(**TINY_ADVERSARIAL)  # type: ignore[arg-type]
    a, b = build_critic(section, 0), build_critic(section, 0)
    state = torch.get_rng_state()
    build_critic(section, 0)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left alone
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def test_the_critic_learns_to_tell_harmonic_audio_from_a_noise_floor() -> None:
    """A toy case: bright harmonic tones (real) against the same tones low-passed plus a noise floor (fake)."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(2048) / 44100

    def tones(n: int) -> torch.Tensor:
        f0 = 200 + 200 * torch.rand(n, 1, 1, generator=g)
        k = torch.arange(1, 30).reshape(1, -1, 1)
        return (torch.sin(2 * math.pi * k * f0 * t) / k).sum(1) * 0.1

    def degrade(x: torch.Tensor) -> torch.Tensor:
        spec = torch.fft.rfft(x)
        spec[:, torch.fft.rfftfreq(x.shape[-1], 1 / 44100) > 2000] = 0
        return torch.fft.irfft(spec, n=x.shape[-1]) + 0.003 * torch.randn(x.shape, generator=g)

    torch.manual_seed(0)
    critic = Critic((2, 3, 5), 4, (256, 512), 4)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.8, 0.99))
    losses = []
    for _ in range(60):
        real = tones(8)
        loss = discriminator_loss(critic(real), critic(degrade(real)), "hinge")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        real = tones(16)
        r = torch.cat([lg.mean(1, keepdim=True) for lg, _ in critic(real)], 1).mean(1)
        f = torch.cat([lg.mean(1, keepdim=True) for lg, _ in critic(degrade(real))], 1).mean(1)
    assert losses[-1] < 0.7 * losses[0], losses  # from 2 (chance: all logits 0)
    assert bool((r > f).all()), (r, f)  # every held-out pair told apart


# ----------------------------------------------------------------------------- the trainer
def test_config_is_off_by_default_and_checked() -> None:
    cfg = TrainConfig.from_yaml(ROOT / "configs" / "small.yaml")
    assert not cfg.adversarial.enabled and not cfg.adversarial.active(10**6)
    hifi = TrainConfig.from_yaml(ROOT / "configs" / "small-hifi.yaml")
    assert hifi.model == cfg.model and hifi.adversarial.enabled and hifi.adversarial.periods == [2, 3, 5, 7, 11]
    assert TrainConfig.from_dict(yaml.safe_load(hifi.to_yaml())) == hifi
    with pytest.raises(ValueError, match=r"adversarial\.loss: must be 'hinge' or 'lsgan'"):
        tiny_config(adversarial={"enabled": True, "loss": "wgan"})
    with pytest.raises(ValueError, match=r"adversarial: needs at least one discriminator"):
        tiny_config(adversarial={"enabled": True, "periods": [], "stft_fft_sizes": []})
    with pytest.raises(ValueError, match=r"unknown AdversarialSection key.*strat"):
        tiny_config(adversarial={"strat": 3})


def test_adversarial_phase_trains_both_and_saves_the_discriminators(tmp_path: Path) -> None:
    cfg = tiny_config(steps=4)
    trainer = _trainer(tmp_path, cfg)
    critic0 = {k: v.clone() for k, v in trainer.critic.state_dict().items()}  # type: ignore[union-attr]
    before = trainer.train_step()  # step 0: before the phase
    assert before["adversarial"] == before["feature"] == before["hf_stft"] == before["disc"] == 0.0
    after = trainer.train_step()
    trainer.train_step()  # step 2: the phase starts
    during = trainer.train_step()
    assert after["disc"] == 0.0 and during["disc"] > 0 and during["feature"] > 0 and during["hf_stft"] > 0
    assert all(math.isfinite(v) for v in during.values())
    changed = [k for k, v in trainer.critic.state_dict().items() if not torch.equal(v, critic0[k])]  # type: ignore[union-attr]
    assert changed  # the discriminators trained
    trainer.save_checkpoint()
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert set(state["critic"]) == set(critic0) and state["critic_optimizer"]["state"]


def test_without_the_section_nothing_changes(tmp_path: Path) -> None:
    """The phase configured but not started trains the generator exactly as without the section."""
    off = _trainer(tmp_path / "off", tiny_config(adversarial={}, steps=2))
    on = _trainer(tmp_path / "on", tiny_config(adversarial={**TINY_ADVERSARIAL, "start": 100}, steps=2))
    off.fit()
    on.fit()
    assert off.critic is None and "critic" not in torch.load(tmp_path / "off" / "last.ckpt", weights_only=True)
    for (k, a), b in zip(off.model.state_dict().items(), on.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("freeze", [False, True])
def test_resume_in_the_adversarial_phase_is_exact(tmp_path: Path, freeze: bool) -> None:
    cfg = tiny_config(adversarial={**TINY_ADVERSARIAL, "freeze_encoder": freeze}, steps=6)
    straight = _trainer(tmp_path / "a", cfg)
    straight.fit()
    first = _trainer(tmp_path / "b", cfg)
    first.fit(until=4)  # inside the phase (start 2)
    resumed = _trainer(tmp_path / "b", cfg, resume=True)
    assert resumed.step == 4
    resumed.fit()
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    for (k, a), b in zip(straight.critic.state_dict().items(), resumed.critic.state_dict().values(), strict=True):  # type: ignore[union-attr]
        assert torch.equal(a, b), k
    for k, v in straight.ema.shadow.items():
        assert torch.equal(v, resumed.ema.shadow[k]), k
    # The frozen encoder keeps the weights of step 2, the start of the phase; otherwise it trains on.
    check = _trainer(tmp_path / "c", cfg)
    check.fit(until=2)
    at_start = check.model.generator.encoder.state_dict()
    same = [torch.equal(at_start[k], v) for k, v in straight.model.generator.encoder.state_dict().items()]
    assert all(same) if freeze else not all(same)


def test_a_plain_checkpoint_continues_into_the_adversarial_phase(tmp_path: Path) -> None:
    """A run trained without the section (the shipped model's) resumes with it: fresh discriminators."""
    _trainer(tmp_path, tiny_config(adversarial={}, steps=2)).fit()
    cfg = tiny_config(adversarial={**TINY_ADVERSARIAL, "start": 2}, steps=4)
    with pytest.warns(UserWarning, match="adversarial"):
        resumed = _trainer(tmp_path, cfg, resume=True)
    fresh = build_critic(cfg.adversarial, cfg.seed)
    for (k, a), b in zip(fresh.state_dict().items(), resumed.critic.state_dict().values(), strict=True):  # type: ignore[union-attr]
        assert torch.equal(a, b), k
    resumed.fit()
    assert resumed.step == 4 and "critic" in torch.load(tmp_path / "last.ckpt", weights_only=True)


def test_an_adversarial_step_reads_the_device_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer(tmp_path, tiny_config(adversarial={**TINY_ADVERSARIAL, "start": 0}, steps=4))
    trainer.train_step()  # lazy optimiser state
    counters = {id(s["step"]) for s in trainer.optimizer.state.values()}
    counters |= {id(s["step"]) for s in trainer.critic_optimizer.state.values()}  # type: ignore[union-attr]
    values, reads = step_counting_host_reads(trainer, monkeypatch, counters)
    assert reads == ["tolist"], reads
    assert {"adversarial", "feature", "hf_stft", "disc", "grad_norm"} <= set(values)


def test_a_compact_checkpoint_keeps_the_discriminators(tmp_path: Path) -> None:
    import shutil

    from lincae.training.export import compact_checkpoint

    cfg = tiny_config(steps=5)
    first = _trainer(tmp_path / "a", cfg)
    first.fit(until=4)
    small = compact_checkpoint(tmp_path / "a" / "last.ckpt", tmp_path / "kept.ckpt")
    state = torch.load(small, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state["critic"].values() if v.is_floating_point())
    (tmp_path / "b").mkdir()
    shutil.copy(small, tmp_path / "b" / "last.ckpt")
    resumed = _trainer(tmp_path / "b", cfg, resume=True)
    for (k, a), b in zip(first.critic.state_dict().items(), resumed.critic.state_dict().values(), strict=True):  # type: ignore[union-attr]
        assert b.dtype == a.dtype and torch.allclose(a, b, rtol=1e-3, atol=1e-4), k
    moments = next(iter(resumed.critic_optimizer.state.values()))  # type: ignore[union-attr]
    assert moments["exp_avg_sq"].dtype == torch.float32 and bool(moments["exp_avg_sq"].abs().sum() > 0)
    resumed.fit()
    assert resumed.step == 5


def test_a_step_without_reconstructed_examples_leaves_the_discriminators_alone(tmp_path: Path) -> None:
    """All examples are reconstructed at step 0, none from step 1 (recon_fraction 0): no stale gradients."""
    cfg = tiny_config(
        objective={"recon_fraction": 0.0, "consistency_start": 1}, adversarial={**TINY_ADVERSARIAL, "start": 0}
    )
    trainer = _trainer(tmp_path, cfg)
    assert trainer.train_step()["disc"] > 0
    after_first = {k: v.clone() for k, v in trainer.critic.state_dict().items()}  # type: ignore[union-attr]
    values = trainer.train_step()
    assert values["disc"] == values["adversarial"] == 0.0
    for k, v in trainer.critic.state_dict().items():  # type: ignore[union-attr]
        assert torch.equal(v, after_first[k]), k
