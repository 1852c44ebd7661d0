"""Render synthetic music, train until a deadline, and write a model and a resumable checkpoint.

Run by ``scripts/train_on_device.sh`` on a machine without pedalboard (the rendered WAV files are read
with lincae's own reader and held in memory). Everything it writes to ``--out`` stays under 16 MiB a
file: ``model/`` (a lincae model folder, fp16), ``last.ckpt`` (compact, resumable) and
``history.jsonl``. With an adversarial config (``configs/small-hifi.yaml``) the checkpoint carries the
discriminators too (float16, about 3 MB more).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lincae.data.synth import PIECE_FILES, SynthConfig, read_wav, write_synth_dataset
from lincae.training.config import TrainConfig
from lincae.training.data import TensorCrops
from lincae.training.export import compact_checkpoint, export_model
from lincae.training.trainer import Trainer, TrainingDidNotLearn


def load_pieces(folders: list[Path], names: tuple[str, ...] = PIECE_FILES) -> torch.Tensor:
    """The ``names`` files (default: mix and stems) of the rendered pieces as rows of one ``[N, T]`` tensor.

    Read with the synthetic dataset's own WAV reader: the GPU machine has no pedalboard.
    """
    rows = [read_wav(folder / name)[0].reshape(-1).astype(np.float32) for folder in folders for name in names]
    return torch.from_numpy(np.stack(rows))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/small.yaml")
    ap.add_argument("--out", required=True, help="where the model, checkpoint and history go")
    ap.add_argument("--work", required=True, help="scratch folder for data and the run")
    ap.add_argument("--minutes", type=float, required=True, help="training time")
    ap.add_argument("--hours", type=float, default=2.0, help="synthetic music to render for training")
    ap.add_argument("--val-hours", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=12, help="rendering processes")
    ap.add_argument("--soundfont", help="General MIDI .sf2 (default: lincae's search path)")
    ap.add_argument("--resume-from", help="a (compact) training checkpoint of the same model to continue")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--steps", type=int, help="override the schedule's length (config.steps)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()

    t_start = time.monotonic()
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    synth = SynthConfig(soundfont=args.soundfont)
    train_dirs = write_synth_dataset(work / "train", args.hours, seed=100, config=synth, workers=args.workers)
    val_dirs = write_synth_dataset(work / "val", args.val_hours, seed=101, config=synth, workers=args.workers)
    print(f"[device] rendered {len(train_dirs)} + {len(val_dirs)} pieces in {time.monotonic() - t_start:.0f} s")

    values = TrainConfig.from_yaml(args.config).to_dict()
    if args.batch_size:
        values["data"]["batch_size"] = args.batch_size
    if args.steps:
        values["steps"] = args.steps
    cfg = TrainConfig.from_dict(values)
    audio = load_pieces(train_dirs)
    val_len = max(cfg.crop_samples(), 2 * 44100)
    val = load_pieces(val_dirs, ("mix.wav",))[: cfg.data.val_pieces, 2 * 44100 : 2 * 44100 + val_len]
    run = work / "run"
    resume = False
    if args.resume_from:
        run.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.resume_from, run / "last.ckpt")
        resume = True
    trainer = Trainer(
        cfg,
        run,
        TensorCrops(audio, cfg.crop_samples(), seed=cfg.seed),
        val_audio=val,
        device=args.device,
        resume=resume,
        progress=False,
        compile=args.compile,
    )
    start_step = trainer.step
    t_train = time.monotonic()
    try:
        trainer.fit(deadline=t_train + 60.0 * args.minutes)
    except TrainingDidNotLearn as e:  # still bring back what there is, to look at
        print(f"[device] {e}")
    seconds = time.monotonic() - t_train
    steps = trainer.step - start_step
    rate = steps * cfg.data.batch_size / max(seconds, 1e-9)
    print(f"[device] {steps} steps in {seconds:.0f} s ({rate:.0f} examples/s)")

    best = run / "best" if (run / "best").is_dir() else trainer.export(run / "last-model")
    stem = Path(args.config).stem
    export_model(best, out / "model", name="lincae-small" if stem == "small" else f"lincae-{stem}", half=True)
    compact_checkpoint(run / "last.ckpt", out / "last.ckpt")
    shutil.copy(run / "history.jsonl", out / "history.jsonl")
    summary = {"steps": trainer.step, "trained_steps": steps, "seconds": seconds, "best_score": trainer.best}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for f in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"[device] {f} {f.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
