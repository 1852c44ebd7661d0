"""Worker real-time factor and latency of the streaming engine.

    python benchmarks/engine_rtf.py [--model PATH] [--sources 1 2 4] [--windows 40] [--threads 2]

RTF = compute time of one window / audio time of one step (below 1 keeps up; the default model must
stay at or below 0.5 on a 2-core CPU). Without --model, the architecture of configs/small.yaml is
built with random weights (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the lincae command does; before torch loads

import numpy as np
import torch

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import window_slice
from lincae.models.autoencoder import Autoencoder
from lincae.models.registry import load_model
from lincae.training.config import TrainConfig


def build(model_arg: str | None) -> Autoencoder:
    if model_arg:
        return load_model(model_arg)
    cfg = TrainConfig.from_yaml("configs/small.yaml").model
    torch.manual_seed(0)
    return Autoencoder(cfg.frontend, cfg.generator, cfg.diffusion, name="small-architecture")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--sources", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--window-frames", type=int, default=None)
    ap.add_argument("--step-frames", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.model)
    base = EngineConfig()
    overrides = {k: v for k, v in (("window_frames", args.window_frames), ("step_frames", args.step_frames)) if v}
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {args.device}"
    )
    print(
        f"model: {model.name}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"hop {model.hop_length} samples"
    )
    print(
        "| sources | window/step/lookahead (frames) | step ms | latency ms (block 256) | RTF mean | RTF p95 | RTF max |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in args.sources:
        cfg = EngineConfig.from_dict({**base.to_dict(), "sources": [1] * n, **overrides})
        mixer = LatentMixer(model, cfg, device=args.device)
        rng = np.random.default_rng(0)
        audio = (0.1 * rng.standard_normal((n, mixer.window_end(args.windows + 3)))).astype(np.float32)
        window = np.zeros((n, mixer.window), np.float32)
        rtf = []
        for k in range(args.windows + 3):
            window_slice(audio, mixer.window_end(k) - mixer.window, window)
            mixer.process(k, window)
            if k >= 3:  # warm-up
                rtf.append(mixer.last_compute_s / (mixer.step / mixer.sample_rate))
        latency = cfg.latency_samples(mixer.hop, 256)
        rtf.sort()
        print(
            f"| {n} | {cfg.window_frames}/{cfg.step_frames}/{cfg.lookahead_frames} | "
            f"{1000 * mixer.step / mixer.sample_rate:.1f} | {1000 * latency / mixer.sample_rate:.1f} | "
            f"{statistics.mean(rtf):.3f} | {rtf[int(0.95 * (len(rtf) - 1))]:.3f} | {rtf[-1]:.3f} |"
        )


if __name__ == "__main__":
    main()
