"""Offline render speed (× real time) and peak memory for long inputs, against an older lincae.

    python benchmarks/render_speed.py --minutes 1 60 [--model default] [--data data/synth-test]
        [--baseline-rev REV [--baseline-minutes 1]]

Each length is rendered in a fresh process (so its peak RSS is its own), set up as ``lincae render``
sets up its own, from a FLAC made by tiling the mixes of a synth dataset (or a generated signal when
there is none), through the default engine settings and a post chain (reverb + brickwall limiter).
``--model default`` is the shipped model; an empty ``--model`` builds configs/small.yaml's
architecture with random weights (speed does not depend on the weights). ``--baseline-rev`` renders
the same input in the same run with ``src/`` of that git revision and *its* shipped default model and
engine defaults: the product as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_name

# The child sets its process up as that tree's ``lincae render`` does before rendering: this tree's
# prepare_process (OpenMP's default wait policy) and keep_freed_memory; older trees set
# OMP_WAIT_POLICY=PASSIVE for every command.
CHILD = r"""
import json, os, resource, sys, time
try:
    from lincae.cli import prepare_process
    prepare_process("render")
except ImportError:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
torch.set_num_threads(int(sys.argv[4]))
try:
    from lincae.models.runtime import keep_freed_memory
    keep_freed_memory()
except ImportError:
    pass
from lincae.render.files import render_files
from lincae.models.base import load_model
from lincae.training.config import TrainConfig
from lincae.models.autoencoder import Autoencoder
if sys.argv[3]:
    model = load_model(sys.argv[3], max_batch_size=8)
else:
    cfg = TrainConfig.from_yaml("configs/small.yaml").model
    model = Autoencoder(cfg.frontend, cfg.generator, cfg.diffusion)
post = [{"plugin": "Reverb", "params": {"room_size": 0.3, "wet_level": 0.2}},
        {"plugin": "BrickwallLimiter", "params": {}}]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
r = render_files(model, [sys.argv[1]], sys.argv[2], post=post, overwrite=True)
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": r.seconds, "wall": wall, "peak_rss_mb": peak / 1024, "rss_before_render_mb": rss0 / 1024}))
"""


def make_input(path: Path, minutes: float, data: Path) -> None:
    import numpy as np
    from pedalboard.io import AudioFile

    mixes = sorted(data.glob("*/mix.wav")) if data.is_dir() else []
    need = int(minutes * 60 * 44100)
    with AudioFile(str(path), "w", samplerate=44100, num_channels=1, bit_depth=16) as out:
        written, i = 0, 0
        while written < need:
            if mixes:
                with AudioFile(str(mixes[i % len(mixes)])) as f:
                    block = f.read(f.frames)[:1]
            else:
                t = np.arange(30 * 44100) / 44100
                block = (0.3 * np.sin(2 * np.pi * (220 + 20 * (i % 12)) * t))[None].astype(np.float32)
            block = block[:, : need - written]
            out.write(block)
            written += block.shape[-1]
            i += 1


def render_child(src_dir: Path, audio: Path, out: Path, model: str, threads: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src_dir.resolve()), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(audio), str(out), model, str(threads)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        raise RuntimeError(f"render in {src_dir} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 60.0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default="data/synth-test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-rev", help="also render with src/ of this git revision (its own default model)")
    ap.add_argument("--baseline-minutes", type=float, nargs="+", help="lengths the baseline renders (default: all)")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; threads {args.threads}; model "
        f"{args.model or 'configs/small.yaml architecture (random weights)'}"
    )
    print("| lincae | input | render wall s | × real time | peak RSS MB | RSS before render MB |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        trees = [("this tree", root / "src", args.model)]
        if args.baseline_rev:
            git = ["git", "archive", args.baseline_rev, "src"]
            archive = subprocess.run(git, cwd=root, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            trees.append((args.baseline_rev, Path(tmp) / "src", "default"))
        for minutes in args.minutes:
            src = Path(tmp) / f"in-{minutes:g}.flac"
            make_input(src, minutes, Path(args.data))
            for label, tree, model in trees:
                if label == args.baseline_rev and args.baseline_minutes and minutes not in args.baseline_minutes:
                    continue
                r = render_child(tree, src, Path(tmp) / "out.flac", model, args.threads)
                print(
                    f"| {label} | {minutes:g} min | {r['wall']:.1f} | {r['seconds'] / r['wall']:.2f} | "
                    f"{r['peak_rss_mb']:.0f} | {r['rss_before_render_mb']:.0f} |",
                    flush=True,
                )
            src.unlink()


if __name__ == "__main__":
    main()
