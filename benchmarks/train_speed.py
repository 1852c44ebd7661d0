"""Training throughput: examples per second and where a step's time goes.

    python benchmarks/train_speed.py [--config configs/small.yaml] [--steps 20] [--threads 2]
    python benchmarks/train_speed.py --baseline-rev 8b93a90     # the same config on an older trainer too
    python benchmarks/train_speed.py --device cuda --batch-size 64 [--compile]
    python benchmarks/train_speed.py --config configs/small-hifi.yaml   # with the adversarial phase
    python benchmarks/train_speed.py --config configs/small-hifi.yaml --adversarial-cost   # with vs without it

An example is one clean training crop (``data.batch_size`` per step; the additivity augmentation doubles
the items that go through the network, shown as items/s). The step is split into batch making (crops,
augmentation, noise levels and noise, on the device), forward and backward (with the discriminators' own
forward and backward when the config has an adversarial phase, timed from its start), the optimisers and the EMA;
each part is timed with a device synchronisation after it, so the parts add up to slightly more than an
unsynchronised step. ``--baseline-rev`` extracts ``src/`` of that git revision into a temporary folder
and times its ``Trainer.train_step`` on the same model, data sizes and device in a subprocess (only
the total: older trainers have no parts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch  # OpenMP's default wait policy, as ``lincae train`` runs (lincae.cli.prepare_process)
from machine import cpu_name

from lincae.training.config import TrainConfig
from lincae.training.data import TensorCrops
from lincae.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def synthetic_music(seconds: float, seed: int = 0) -> torch.Tensor:
    """``[4, T]`` chords of sines with a little noise: speed does not depend on the audio."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 44100)) / 44100
    f = 110 * 2 ** (torch.randint(0, 24, (4, 3, 1), generator=g) / 12)
    return 0.1 * torch.sin(2 * torch.pi * f * t).sum(1) + 0.01 * torch.randn(4, t.shape[0], generator=g)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_config(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig.from_yaml(args.config).to_dict()
    if args.batch_size:
        cfg["data"]["batch_size"] = args.batch_size
    cfg["steps"] = 100_000  # a long schedule: the timed steps sit inside it, past the STFT term's start
    cfg["objective"]["stft_start"] = 0  # every term from the first step: the full cost of a step
    cfg["objective"]["consistency_start"] = 0
    cfg["adversarial"] = {**cfg["adversarial"], "start": 0}  # the discriminators too, when the config has them
    cfg["val_every"] = cfg["ckpt_every"] = 1_000_000
    cfg["optim"]["cpu_bf16"] = args.cpu_bf16
    return TrainConfig.from_dict(cfg)


def measure(args: argparse.Namespace, cfg: TrainConfig) -> dict[str, float]:
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as out:
        source = TensorCrops(synthetic_music(30.0), cfg.crop_samples(), seed=0)
        trainer = Trainer(
            cfg,
            out,
            source,
            device=device,
            progress=False,
            channels_last=not args.no_channels_last,
            compile=args.compile,
        )
        for _ in range(args.warmup):
            trainer.train_step()
        parts: dict[str, list[float]] = {k: [] for k in ("batch", "forward_backward", "optimizer", "ema", "step")}
        for _ in range(args.steps):  # parts, each followed by a synchronisation
            sync(device)
            t0 = time.perf_counter()
            trainer.set_learning_rate(trainer.step)
            sb = trainer.make_batch(trainer.step)
            sync(device)
            t1 = time.perf_counter()
            stats = trainer.forward_backward(sb)
            stats.tolist()
            t2 = time.perf_counter()
            trainer.optimizer_step()
            sync(device)
            t3 = time.perf_counter()
            trainer.step += 1
            trainer.ema_step()
            sync(device)
            t4 = time.perf_counter()
            times = (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
            for k, v in zip(("batch", "forward_backward", "optimizer", "ema"), times, strict=True):
                parts[k].append(v)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):  # whole steps, as training runs them
            trainer.train_step()
        sync(device)
        parts["step"] = [(time.perf_counter() - t0) / args.steps]
        trainer.prefetcher.close()
    return {k: statistics.median(v) for k, v in parts.items()}


def measure_adversarial_cost(args: argparse.Namespace, cfg: TrainConfig) -> tuple[float, float]:
    """Median whole-step seconds of ``cfg`` and of ``cfg`` without its adversarial phase, steps interleaved.

    One step of each in turn, so a machine whose load changes (a shared CPU) slows both alike.
    """
    device = torch.device(args.device)
    plain = TrainConfig.from_dict({**cfg.to_dict(), "adversarial": {"enabled": False}})
    with tempfile.TemporaryDirectory() as out:
        trainers = [
            Trainer(
                c,
                Path(out) / name,
                TensorCrops(synthetic_music(30.0), c.crop_samples(), seed=0),
                device=device,
                progress=False,
                channels_last=not args.no_channels_last,
                compile=args.compile,
            )
            for name, c in (("adversarial", cfg), ("plain", plain))
        ]
        for trainer in trainers:
            for _ in range(args.warmup):
                trainer.train_step()
        times: list[list[float]] = [[], []]
        for _ in range(args.steps):
            for trainer, bucket in zip(trainers, times, strict=True):
                sync(device)
                t0 = time.perf_counter()
                trainer.train_step()
                sync(device)
                bucket.append(time.perf_counter() - t0)
        for trainer in trainers:
            trainer.prefetcher.close()
    return statistics.median(times[0]), statistics.median(times[1])


# The baseline sets its process up as that tree's ``lincae train`` did: trees without prepare_process
# made idle OpenMP threads sleep for every command.
BASELINE = r"""
import json, os, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
try:
    from lincae.cli import prepare_process
    prepare_process("train")
except ImportError:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
from lincae.training.config import TrainConfig
from lincae.training.data import TensorCrops
from lincae.training.trainer import Trainer
spec = json.loads(sys.argv[2])
torch.set_num_threads(spec["threads"])
cfg = TrainConfig.from_dict(spec["config"])
g = torch.Generator().manual_seed(0)
t = torch.arange(30 * 44100) / 44100
f = 110 * 2 ** (torch.randint(0, 24, (4, 3, 1), generator=g) / 12)
audio = 0.1 * torch.sin(2 * torch.pi * f * t).sum(1) + 0.01 * torch.randn(4, t.shape[0], generator=g)
with tempfile.TemporaryDirectory() as out:
    tr = Trainer(cfg, out, TensorCrops(audio, cfg.crop_samples(), seed=0), device=spec["device"], progress=False)
    for _ in range(spec["warmup"]):
        tr.train_step()
    if spec["device"].startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(spec["steps"]):
        tr.train_step()
    if spec["device"].startswith("cuda"):
        torch.cuda.synchronize()
    print(json.dumps({"step": (time.perf_counter() - t0) / spec["steps"]}))
"""


def measure_baseline(args: argparse.Namespace, cfg: TrainConfig) -> dict[str, float]:
    """Time ``Trainer.train_step`` of ``src/`` at ``args.baseline_rev`` (config without newer sections)."""
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("objective", "config_version")}
    old["optim"] = {k: v for k, v in old["optim"].items() if k != "cpu_bf16"}
    spec = {"config": old, "threads": args.threads, "device": args.device, "steps": args.steps, "warmup": args.warmup}
    with tempfile.TemporaryDirectory() as tmp:
        git = ["git", "archive", args.baseline_rev, "src"]
        archive = subprocess.run(git, cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        done = subprocess.run(
            [sys.executable, "-c", BASELINE, str(Path(tmp) / "src"), json.dumps(spec)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": ""},
        )
        if done.returncode != 0:
            raise RuntimeError(f"baseline trainer failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "small.yaml"))
    ap.add_argument("--steps", type=int, default=20, help="timed steps (each way)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, help="override data.batch_size")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--cpu-bf16", action="store_true", help="bfloat16 autocast on the CPU (optim.cpu_bf16)")
    ap.add_argument("--baseline-rev", help="also time the trainer of this git revision (same config and sizes)")
    ap.add_argument(
        "--adversarial-cost",
        action="store_true",
        help="time whole steps of the config with and without its adversarial phase, interleaved",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args)
    bs = cfg.data.batch_size
    items = bs * (2 if cfg.augment.additivity else 1)
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else cpu_name()
    print(f"machine: {dev}, {os.cpu_count()} cores, torch {torch.__version__}, threads {args.threads}")
    print(
        f"config: {Path(args.config).name}, batch {bs} crops of {cfg.data.crop_frames} frames ({items} items with "
        f"augmentation), recon_fraction {cfg.objective.recon_fraction}, channels_last {not args.no_channels_last}, "
        f"compile {args.compile}, cpu bf16 {args.cpu_bf16}, adversarial phase {cfg.adversarial.enabled}"
    )
    if args.adversarial_cost:
        if not cfg.adversarial.enabled:
            raise SystemExit(f"{args.config}: no adversarial phase to compare (adversarial.enabled is false)")
        with_adv, without = measure_adversarial_cost(args, cfg)
        print("| steps (interleaved) | examples/s | step ms |")
        print("|---|---:|---:|")
        print(f"| with the adversarial phase | {bs / with_adv:.1f} | {1000 * with_adv:.0f} |")
        print(f"| without it | {bs / without:.1f} | {1000 * without:.0f} |")
        print(f"cost: {with_adv / without:.2f}x the step time")
        return
    print("| trainer | examples/s | items/s | step ms | batch ms | forward+backward ms | optimiser ms | EMA ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ours = measure(args, cfg)
    ms = {k: 1000 * v for k, v in ours.items()}
    print(
        f"| this tree | {bs / ours['step']:.1f} | {items / ours['step']:.1f} | {ms['step']:.0f} | {ms['batch']:.1f} | "
        f"{ms['forward_backward']:.0f} | {ms['optimizer']:.1f} | {ms['ema']:.1f} |"
    )
    if args.baseline_rev:
        base = measure_baseline(args, cfg)
        print(
            f"| {args.baseline_rev} | {bs / base['step']:.1f} | {items / base['step']:.1f} | {1000 * base['step']:.0f} "
            "| | | | |"
        )
        print(f"speed-up: {base['step'] / ours['step']:.2f}x examples/s")


if __name__ == "__main__":
    main()
