"""Training: augmentations, schedules, objective, resume, divergence, DDP, and the command line."""

from __future__ import annotations

import csv
import json
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from conftest import TINY_FRONTEND, TINY_GENERATOR

from lincae.cli import main
from lincae.files.audiofile import write_audio
from lincae.models.config import DiffusionConfig
from lincae.training.augment import augment, cap_gains, mix_with_previous
from lincae.training.config import TrainConfig
from lincae.training.data import TensorCrops
from lincae.training.losses import relative_mse
from lincae.training.objective import pseudo_huber
from lincae.training.schedules import gain_range, learning_rate, lognormal_weights, sample_sigmas, step_size
from lincae.training.trainer import DistInfo, Trainer, TrainingDiverged, step_generator


def tiny_config(**overrides: object) -> TrainConfig:
    values = {
        "model": {"frontend": TINY_FRONTEND, "generator": TINY_GENERATOR},
        "data": {"crop_frames": 8, "batch_size": 4, "val_pieces": 2},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "ema_decay": 0.9},
        "steps": 40,
        "log_every": 5,
        "val_every": 1000,
        "ckpt_every": 2,
    }
    values.update(overrides)
    return TrainConfig.from_dict(values)


def music(n: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 44100
    f = 100 + 400 * torch.rand(n, 1, generator=g)
    return 0.3 * torch.sin(2 * math.pi * f * t) + 0.01 * torch.randn(n, length, generator=g)


def step_counting_host_reads(
    trainer: Trainer, monkeypatch: pytest.MonkeyPatch, exempt: set[int]
) -> tuple[dict[str, float], list[str]]:
    """One ``trainer.train_step()`` with every tensor read to the host recorded (by method name), except
    reads of the tensors whose ids are in ``exempt`` (host-side optimiser counters). Returns its values
    and the reads."""
    reads: list[str] = []
    for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *a: object, _name: str = name, _f=original, **k: object) -> object:  # type: ignore[no-untyped-def]
            if id(self) not in exempt:
                reads.append(_name)
            return _f(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    values = trainer.train_step()
    monkeypatch.undo()
    return values, reads


# ----------------------------------------------------------------------------- augmentations
def test_additivity_batch_is_exactly_the_described_mixture() -> None:
    x = torch.randn(4, 100)
    g = torch.Generator().manual_seed(5)
    batch = augment(x, g, additivity=True, homogeneity=False)
    w = torch.rand(4, generator=torch.Generator().manual_seed(5)) * 0.5 + 0.5  # the first draw
    assert torch.equal(batch.mix_weights, w)
    assert torch.all((w >= 0.5) & (w < 1.0))
    expected = torch.stack([w[i] * x[i] + (1 - w[i]) * x[i - 1] for i in range(4)])
    assert torch.allclose(batch.encoder_audio[4:], expected, atol=1e-7)
    assert torch.equal(batch.encoder_audio[:4], x) and torch.equal(batch.target_audio, batch.encoder_audio)
    assert torch.equal(batch.gains, torch.ones(8))
    z = torch.randn(8, 3, 5)
    replaced = batch.latents_for_decoder(z)
    assert torch.equal(replaced[:4], z[:4])
    assert torch.allclose(replaced[4:], mix_with_previous(z[:4], w), atol=1e-7)
    assert torch.allclose(replaced[5], w[1] * z[1] + (1 - w[1]) * z[0], atol=1e-7)


def test_homogeneity_gains_scale_targets_and_latents() -> None:
    x = 0.1 * torch.randn(64, 50)
    x[0] *= 9.0  # a loud example whose gain must be capped
    batch = augment(
        x,
        torch.Generator().manual_seed(1),
        additivity=False,
        homogeneity=True,
        gain_prob=0.8,
        gain_lo=0.0,
        gain_hi=3.0,
        zero_threshold=0.05,
    )
    g = torch.Generator().manual_seed(1)
    apply = torch.rand(64, generator=g) < 0.8
    raw = torch.rand(64, generator=g) * 3.0
    raw = torch.where(raw < 0.05, torch.zeros_like(raw), raw)
    expected = cap_gains(torch.where(apply, raw, torch.ones_like(raw)), x)
    assert torch.equal(batch.gains, expected)
    assert (batch.gains == 1).sum() >= (~apply).sum() - 1  # unaugmented examples keep gain 1 (unless capped)
    assert torch.all(batch.target_audio.abs().amax(-1) <= 1.0 + 1e-6)
    assert batch.gains[0] < float(raw[0]) or not apply[0]
    assert torch.allclose(batch.target_audio, x * batch.gains[:, None])
    assert torch.equal(batch.encoder_audio, x)  # the encoder sees unscaled audio
    z = torch.randn(64, 2, 3)
    assert torch.allclose(batch.latents_for_decoder(z), z * batch.gains[:, None, None])


def test_gains_below_the_threshold_become_zero() -> None:
    batch = augment(
        torch.full((200, 10), 0.1),
        torch.Generator().manual_seed(0),
        additivity=False,
        homogeneity=True,
        gain_prob=1.0,
        gain_lo=0.0,
        gain_hi=0.1,
        zero_threshold=0.05,
    )
    assert torch.all((batch.gains == 0) | (batch.gains >= 0.05))
    assert (batch.gains == 0).sum() > 50


def test_m2l_mode_turns_both_augmentations_off() -> None:
    aug = tiny_config(augment={"mode": "m2l"}).augment
    assert aug.additivity is False and aug.homogeneity is False
    lin = tiny_config().augment
    assert lin.additivity is True and lin.homogeneity is True


# ----------------------------------------------------------------------------- schedules
def test_gain_range_holds_anneals_and_ends_at_one() -> None:
    assert gain_range(100, 1000, 0.0, 3.0, True, 0.2, 0.1) == (0.0, 3.0)
    lo, hi = gain_range(550, 1000, 0.0, 3.0, True, 0.2, 0.1)  # half way through the annealing
    assert lo == pytest.approx(0.5) and hi == pytest.approx(2.0)
    assert gain_range(950, 1000, 0.0, 3.0, True, 0.2, 0.1) == (1.0, 1.0)
    assert gain_range(950, 1000, 0.0, 3.0, False, 0.2, 0.1) == (0.0, 3.0)


def test_learning_rate_warms_up_then_decays() -> None:
    assert learning_rate(0, 100, 1e-3, 1e-5, 10) == 0.0
    assert learning_rate(5, 100, 1e-3, 1e-5, 10) == pytest.approx(5e-4)
    assert learning_rate(10, 100, 1e-3, 1e-5, 10) == pytest.approx(1e-3)
    assert learning_rate(100, 100, 1e-3, 1e-5, 10) == pytest.approx(1e-5)


def test_noise_levels() -> None:
    cfg = DiffusionConfig(end_exp=2.0)
    assert step_size(0, 100, cfg) == pytest.approx(0.1) and step_size(100, 100, cfg) == pytest.approx(0.01)
    sig, sig_step = sample_sigmas(5000, 0, 100, cfg, torch.Generator().manual_seed(0))
    assert torch.all(sig > sig_step) and torch.all(sig_step >= cfg.sigma_min) and torch.all(sig <= cfg.sigma_max)
    # Indices u are drawn with weights pdf_N(log sigma(u); p_mean, p_std) on a uniform grid (as in the
    # official recipe): the share of draws per tenth of [0, 1] follows the share of the weights.
    lo, hi = cfg.sigma_min ** (1 / cfg.rho), cfg.sigma_max ** (1 / cfg.rho)
    u = (sig.double() ** (1 / cfg.rho) - lo) / (hi - lo)
    drawn = torch.histc(u, bins=10, min=0, max=1) / u.numel()
    w = lognormal_weights(cfg)
    expected = torch.stack([part.sum() for part in torch.tensor_split(w, 10)]) / w.sum()
    assert torch.allclose(drawn, expected.to(drawn.dtype), atol=0.02)


def test_pseudo_huber_known_values() -> None:
    x, y = torch.zeros(2, 4), torch.tensor([[0.0, 0.0, 0.0, 0.0], [3.0, 4.0, 0.0, 0.0]])
    c = 0.00054 * 2.0
    expected = torch.tensor([0.0, math.sqrt(25 + c * c) - c])
    assert float(pseudo_huber(x, y)) == pytest.approx(float(expected.mean()), rel=1e-6)
    assert float(pseudo_huber(x, y, torch.tensor([1.0, 2.0]))) == pytest.approx(float(expected[1]), rel=1e-6)


# ----------------------------------------------------------------------------- the loop
def _trainer(tmp: Path, cfg: TrainConfig, resume: bool = False, audio: torch.Tensor | None = None) -> Trainer:
    crops = audio if audio is not None else music(6, cfg.crop_samples() * 3)
    source = TensorCrops(crops, cfg.crop_samples(), seed=0)
    val = music(2, 4096, seed=9)
    return Trainer(cfg, tmp, source, val_audio=val, device="cpu", resume=resume, progress=False)


def _fixed_loss(trainer: Trainer) -> float:
    """Distance of one-shot denoising from fixed noise levels to the clean target, on a fixed batch.

    A yardstick that, unlike the training loss, does not move with the weights: the relative MSE of
    the generator's output at sigma 0.5, 2, 10 and 80 (the decoding level) against the clean
    representation, from fixed noise.
    """
    g = step_generator(123, 0, 0)
    audio = trainer.source.batch(0, 4)  # type: ignore[attr-defined]
    unet, frontend = trainer.model.generator, trainer.model.frontend
    sig = torch.tensor([0.5, 2.0, 10.0, 80.0])
    with torch.no_grad():
        rep = frontend.to_representation(audio)
        noise = torch.randn(rep.shape, generator=g)
        out = unet.forward_generator(None, rep + sig.reshape(-1, 1, 1, 1) * noise, sig, unet.decoder(unet.encoder(rep)))
        return float(relative_mse(out, rep))


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(tmp_path: Path) -> None:
    cfg = tiny_config(
        augment={"mode": "m2l"}, steps=60, optim={"lr": 5e-3, "final_lr": 5e-3, "warmup_steps": 0, "ema_decay": 0.9}
    )
    crop = cfg.crop_samples()
    trainer = _trainer(tmp_path, cfg, audio=music(4, crop, seed=3))  # one crop per row: a fixed batch
    before = _fixed_loss(trainer)
    trainer.fit()
    after = _fixed_loss(trainer)
    assert after < 0.95 * before, (before, after)  # measured: about 12 % lower after 60 steps
    assert (tmp_path / "final" / "model.safetensors").is_file() and (tmp_path / "config.yaml").is_file()
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert any("val_mrstft" in h for h in history) and any("loss" in h for h in history)
    assert (tmp_path / "best" / "model.safetensors").is_file()


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = tiny_config(steps=6)
    straight = _trainer(tmp_path / "a", cfg)
    straight.fit()
    first = _trainer(tmp_path / "b", cfg)
    first.fit(until=3)
    resumed = _trainer(tmp_path / "b", cfg, resume=True)
    assert resumed.step == 3
    resumed.fit()
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    for k, v in straight.ema.shadow.items():
        assert torch.equal(v, resumed.ema.shadow[k]), k


def test_resume_refuses_another_model_config(tmp_path: Path) -> None:
    _trainer(tmp_path, tiny_config(steps=2)).fit()
    other = tiny_config(model={"frontend": TINY_FRONTEND, "generator": {**TINY_GENERATOR, "cond_channels": 16}})
    with pytest.raises(ValueError, match="another model configuration"):
        _trainer(tmp_path, other, resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = tiny_config(steps=10, ckpt_every=2)
    crop = cfg.crop_samples()

    class Poisoned(TensorCrops):
        def batch(self, step: int, batch_size: int, rank: int = 0) -> torch.Tensor:
            out = super().batch(step, batch_size, rank)
            return out * float("nan") if step >= 4 else out

    trainer = Trainer(cfg, tmp_path, Poisoned(music(4, crop * 2), crop), device="cpu", progress=False)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 4.*last\.ckpt"):
        trainer.fit()
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_bad_training_config_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.crop_frames: must be a multiple of 8"):
        tiny_config(data={"crop_frames": 12})
    with pytest.raises(ValueError, match=r"augment\.mode: must be 'lin-cae' or 'm2l'"):
        tiny_config(augment={"mode": "linear"})
    with pytest.raises(ValueError, match=r"unknown DataSection key.*batchsize"):
        tiny_config(data={"batchsize": 4})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"stepz": 3}))
    with pytest.raises(ValueError, match=r"unknown TrainConfig key.*stepz"):
        TrainConfig.from_yaml(path)


# ----------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, out: str, adversarial: dict[str, object]) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = tiny_config(steps=2, adversarial=adversarial)
        crop = cfg.crop_samples()
        trainer = Trainer(
            cfg,
            Path(out),
            TensorCrops(music(6, crop * 3), crop),
            device="cpu",
            progress=False,
            dist_info=DistInfo(rank, world, rank),
        )
        trainer.fit()
        params = [*trainer.model.generator.parameters(), *(trainer.critic.parameters() if trainer.critic else [])]
        flat = torch.cat([p.detach().flatten() for p in params])
        torch.save(flat, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


#: The adversarial phase from the first step, with a small critic (tests/test_adversarial.py tests it alone).
ADVERSARIAL_ON = {"enabled": True, "periods": [2, 3], "period_channels": 4, "stft_fft_sizes": [64], "stft_channels": 4}


@pytest.mark.parametrize("adversarial", [{}, ADVERSARIAL_ON], ids=["plain", "adversarial"])
def test_ddp_with_gloo_on_two_processes_keeps_ranks_identical(tmp_path: Path, adversarial: dict[str, object]) -> None:
    tmp_path.mkdir(exist_ok=True)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), adversarial), nprocs=2, join=True)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(a, b)  # generator and discriminators alike
    single = _trainer(tmp_path / "single", tiny_config(steps=2, adversarial=adversarial))
    single.fit()
    params = [*single.model.generator.parameters(), *(single.critic.parameters() if single.critic else [])]
    flat = torch.cat([p.detach().flatten() for p in params])
    assert not torch.equal(a, flat)  # the ranks trained on different data than one process alone
    assert (tmp_path / "last.ckpt").is_file() and not (tmp_path / "rank1").exists()


# ----------------------------------------------------------------------------- command line
def test_dataset_train_eval_from_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("tinysoundfont")
    data = tmp_path / "synth"
    assert (
        main(["dataset", "synth", "--out", str(data), "--hours", str(12 / 3600), "--seed", "0", "--piece-seconds", "6"])
        == 0
    )
    pieces = sorted(p for p in data.iterdir() if p.is_dir())
    assert len(pieces) == 2 and (pieces[0] / "mix.wav").is_file()
    cfg = tiny_config(steps=3).to_dict()
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(tmp_path / "tiny.yaml"),
                "--data",
                str(data),
                "--out",
                str(run),
                "--until",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((run / "history.jsonl").read_text().splitlines()[-1])["step"] == 2
    assert (
        main(
            [
                "train",
                "--config",
                str(tmp_path / "tiny.yaml"),
                "--data",
                str(data),
                "--out",
                str(run),
                "--resume",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (run / "final" / "config.json").is_file() and (run / "best" / "config.json").is_file()
    meta = json.loads((run / "final" / "config.json").read_text())["metadata"]
    assert meta["step"] == 3 and meta["mode"] == "lin-cae" and meta["train_config"]["seed"] == 0
    report = tmp_path / "report"
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    write_audio(recordings / "take.wav", music(2, 44100, seed=5).numpy(), 44100)  # a stereo file, no stems
    assert (
        main(
            [
                "eval",
                f"a={run / 'final'}",
                f"b={run / 'best'}",
                "--data",
                str(data),
                "--real",
                str(recordings),
                "--out",
                str(report),
                "--seconds",
                "1",
                "--pieces",
                "1",
            ]
        )
        == 0
    )
    table = (report / "results.md").read_text()
    assert "| metric | unit | better | a | b | mel64+GL |" in table and "separation" in table
    assert "Reconstruction of real recordings" in table and "chroma" in table
    rows = list(csv.DictReader((report / "results.csv").open()))
    metrics = {r["metric"] for r in rows}
    assert {"reconstruction/si_sdr", "enc_homogeneity/rel_l2_mean", "latent/erank"} <= metrics
    assert {"reconstruction/visqol", "reconstruction/hf_mrstft", "real_reconstruction/visqol"} <= metrics
    by_metric = {r["metric"]: r for r in rows}
    # The reference is scored on its reconstruction only, and a 3-step model is far below it.
    assert by_metric["latent/erank"]["mel64+GL"] == "nan"
    assert float(by_metric["reconstruction/visqol"]["mel64+GL"]) > float(by_metric["reconstruction/visqol"]["a"])
    assert all(math.isfinite(float(r["a"])) for r in rows if r["a"])


def test_torchrun_trains_with_two_processes(tmp_path: Path) -> None:
    """``torchrun --nproc-per-node 2 -m lincae train`` on CPU (gloo): one run folder, written by rank 0."""
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    data = tmp_path / "audio"
    data.mkdir()
    from lincae.data.synth import write_wav

    for i in range(3):
        write_wav(data / f"{i}.wav", music(1, 20000, seed=i)[0].numpy(), 44100)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(steps=2).to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [
            torchrun,
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
            "-m",
            "lincae",
            "train",
            "--config",
            str(tmp_path / "tiny.yaml"),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 2/2" in done.stderr
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    # The final model's latent scale comes from rank 0's validation audio, not a rank without any (1.0).
    final = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert final["scale_factor"] != 1.0
    # Only rank 0 logs: each logged step appears once.
    lines = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    val_steps = [r["step"] for r in lines if "val_loss" in r]
    assert val_steps == sorted(set(val_steps)) and val_steps[-1] == 2


def test_export_stores_half_precision_and_loads_as_float32(tmp_path: Path) -> None:
    from lincae.models.base import load_model
    from lincae.training.export import export_model

    trainer = _trainer(tmp_path / "run", tiny_config(steps=1))
    trainer.fit()
    out = export_model(tmp_path / "run" / "final", tmp_path / "shipped", name="tiny-shipped", default=True)
    meta = json.loads((out / "config.json").read_text())["metadata"]
    assert meta["default"] is True and meta["stored_dtype"] == "float16" and meta["step"] == 1
    assert (out / "model.safetensors").stat().st_size < 0.6 * (
        tmp_path / "run" / "final" / "model.safetensors"
    ).stat().st_size
    model = load_model(out)
    assert model.name == "tiny-shipped" and all(p.dtype == torch.float32 for p in model.parameters())
    x = music(1, 4096)
    assert torch.allclose(model.encode(x), load_model(tmp_path / "run" / "final").encode(x), atol=0.05)


# ----------------------------------------------------------------------------- throughput plumbing
def test_a_step_reads_the_device_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The losses and the gradient norm come back in one transfer; nothing else asks the device for a value."""
    trainer = _trainer(tmp_path, tiny_config(steps=4))
    trainer.train_step()  # first step: lazy initialisation of the optimiser state
    # RAdam's step counters are host-side bookkeeping (CPU tensors even when training on a GPU).
    counters = {id(s["step"]) for s in trainer.optimizer.state.values()}
    values, reads = step_counting_host_reads(trainer, monkeypatch, counters)
    assert reads == ["tolist"], reads
    assert set(values) == {"loss", "recon", "stft", "consistency", "grad_norm"}
    assert all(math.isfinite(v) for v in values.values())


def test_prefetched_batches_are_the_steps_batches_in_any_order() -> None:
    from lincae.training.data import Prefetcher

    source = TensorCrops(music(3, 5000), 1000, seed=4)
    pre = Prefetcher(source, 2, depth=2)
    try:
        for step in (0, 1, 2, 7, 8, 3):  # a jump (resume) restarts the worker there
            assert torch.equal(pre.get(step), source.batch(step, 2))
    finally:
        pre.close()

    class Broken(TensorCrops):
        def batch(self, step: int, batch_size: int, rank: int = 0) -> torch.Tensor:
            if step == 2:
                raise OSError("disk gone")
            return super().batch(step, batch_size, rank)

    pre = Prefetcher(Broken(music(3, 5000), 1000), 2)
    try:
        pre.get(0)
        pre.get(1)
        with pytest.raises(OSError, match="disk gone"):
            pre.get(2)
    finally:
        pre.close()


def test_folder_crops_are_drawn_by_duration_not_by_file(tmp_path: Path) -> None:
    from lincae.data.synth import write_wav
    from lincae.training.data import FolderCrops

    write_wav(tmp_path / "short.wav", 0.5 * torch.ones(44100).numpy(), 44100)  # 1 s
    write_wav(tmp_path / "long.wav", -0.5 * torch.ones(9 * 44100).numpy(), 44100)  # 9 s
    crops = FolderCrops(tmp_path, 4410, seed=0).batch(0, 400)
    share_long = float((crops.mean(-1) < 0).float().mean())
    assert 0.85 < share_long < 0.95, share_long  # 9 of 10 seconds


def test_version_1_configs_train_with_consistency_alone() -> None:
    v1 = {**tiny_config().to_dict(), "config_version": 1}
    del v1["objective"]
    cfg = TrainConfig.from_dict(v1)
    assert cfg.config_version == 2 and cfg.objective.recon_fraction == 0.0
    assert tiny_config().objective.recon_fraction == 0.5  # the current default
    warm = tiny_config(objective={"recon_fraction": 0.5, "consistency_start": 10}).objective
    assert warm.recon_count(8, step=9) == 8 and warm.recon_count(8, step=10) == 4 and warm.recon_count(8) == 4
    with pytest.raises(ValueError, match=r"objective\.recon_fraction must be a finite number in \[0, 1\]"):
        tiny_config(objective={"recon_fraction": 1.5})
    with pytest.raises(ValueError, match=r"config_version: 7 not supported"):
        tiny_config(config_version=7)


def test_a_run_that_cannot_learn_ends_with_a_clear_message(tmp_path: Path) -> None:
    from lincae.training.trainer import TrainingDidNotLearn

    cfg = tiny_config(steps=100, val_every=50, ckpt_every=50, optim={"lr": 1e-12, "final_lr": 0, "warmup_steps": 0})
    trainer = _trainer(tmp_path, cfg)
    with pytest.raises(TrainingDidNotLearn, match=r"did not learn.*no better than the untrained model.*optim\.lr"):
        trainer.fit()
    assert (tmp_path / "final" / "model.safetensors").is_file()  # kept for inspection
    with pytest.raises(ValueError, match=r"optim: lr must be > 0"):
        tiny_config(optim={"lr": 0.0})


def test_a_compact_checkpoint_resumes_close_to_the_full_one(tmp_path: Path) -> None:
    import shutil

    from lincae.training.export import compact_checkpoint

    cfg = tiny_config(steps=6)
    first = _trainer(tmp_path / "a", cfg)
    first.fit(until=3)
    full = tmp_path / "a" / "last.ckpt"
    small = compact_checkpoint(full, tmp_path / "kept" / "last.ckpt")
    assert small.stat().st_size < 0.45 * full.stat().st_size
    (tmp_path / "b").mkdir()
    shutil.copy(small, tmp_path / "b" / "last.ckpt")
    resumed = _trainer(tmp_path / "b", cfg, resume=True)
    assert resumed.step == 3
    for (k, a), b in zip(first.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert b.dtype == a.dtype and torch.allclose(a, b, rtol=1e-3, atol=1e-4), k
    assert torch.equal(first.model.frontend.window, resumed.model.frontend.window)  # buffers stay float32
    second_moment = next(iter(resumed.optimizer.state.values()))["exp_avg_sq"]
    assert second_moment.dtype == torch.float32 and bool(second_moment.abs().sum() > 0)
    resumed.fit()
    assert resumed.step == 6 and (tmp_path / "b" / "final" / "model.safetensors").is_file()
    assert main(["export", str(full), str(tmp_path / "cli.ckpt")]) == 0 and (tmp_path / "cli.ckpt").is_file()


def test_an_abandoned_prefetcher_stops_its_thread() -> None:
    import gc
    import threading
    import time

    from lincae.training.data import Prefetcher

    before = sum(t.name == "lincae-batches" for t in threading.enumerate())
    pre = Prefetcher(TensorCrops(music(2, 5000), 1000), 2)
    pre.get(0)
    assert sum(t.name == "lincae-batches" for t in threading.enumerate()) == before + 1
    del pre
    gc.collect()
    deadline = time.monotonic() + 5
    while sum(t.name == "lincae-batches" for t in threading.enumerate()) > before:
        assert time.monotonic() < deadline, "the batch thread outlived its Prefetcher"
        time.sleep(0.05)


def test_losses_stay_finite_on_a_silent_batch() -> None:
    from lincae.training.losses import multi_resolution_stft

    silent = torch.zeros(3, 4096)
    small = 1e-4 * torch.randn(3, 4096, generator=torch.Generator().manual_seed(0))
    assert float(relative_mse(small, silent)) < 10.0  # absolute, not divided by ~0
    assert float(multi_resolution_stft(small, silent)) < 20.0
    assert float(relative_mse(silent, silent)) == 0.0
