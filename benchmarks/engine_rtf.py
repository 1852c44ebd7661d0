"""Worker real-time factor and latency of the streaming engine.

    python benchmarks/engine_rtf.py [--model PATH] [--sources 1 2 4] [--windows 40] [--threads 2]
    python benchmarks/engine_rtf.py --model default --sweep   # cost against sources, window and step

RTF = compute time of one window / audio time of one step (below 1 keeps up; the default model must
stay at or below 0.5 on a 2-core CPU). Without --model, the architecture of configs/small.yaml is
built with random weights (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as lincae live and gui run; before torch loads

import numpy as np
import torch

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import window_slice
from lincae.models.autoencoder import Autoencoder
from lincae.models.base import load_model
from lincae.models.runtime import keep_freed_memory
from lincae.training.config import TrainConfig


def build(model_arg: str | None) -> Autoencoder:
    if model_arg:
        return load_model(model_arg, max_batch_size=16)  # the live commands batch all sources' channels
    cfg = TrainConfig.from_yaml("configs/small.yaml").model
    torch.manual_seed(0)
    return Autoencoder(cfg.frontend, cfg.generator, cfg.diffusion, name="small-architecture", max_batch_size=16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--sources", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--window-frames", type=int, default=None)
    ap.add_argument("--step-frames", type=int, default=None)
    ap.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc malloc as it is (lincae commands keep freed memory)",
    )
    ap.add_argument("--sweep", action="store_true", help="cost per step against sources, window and step")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.default_allocator:
        keep_freed_memory()
    model = build(args.model)  # the mixer stores its weights channels-last on CPU, as in lincae live
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
    if args.sweep:
        sweep(model, base, args)
        return
    print(
        "| sources | window/step/lookahead (frames) | step ms | latency ms (block 256) | RTF mean | RTF p95 | RTF max |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in args.sources:
        cfg = EngineConfig.from_dict({**base.to_dict(), "sources": [1] * n, **overrides})
        m = measure(model, cfg, args.windows, args.device)
        latency = cfg.latency_samples(model.hop_length, 256)
        print(
            f"| {n} | {cfg.window_frames}/{cfg.step_frames}/{cfg.lookahead_frames} | {m['step_ms']:.1f} | "
            f"{1000 * latency / model.sample_rate:.1f} | {m['mean']:.3f} | {m['p95']:.3f} | {m['max']:.3f} |"
        )


def measure(model: Autoencoder, cfg: EngineConfig, windows: int, device: str) -> dict[str, float]:
    """Run ``windows`` windows (after 3 of warm-up) of noise through a mixer; RTF and per-step costs."""
    mixer = LatentMixer(model, cfg, device=device)
    spent = {"encode": 0.0, "decode": 0.0}
    encode, decode = mixer.model.encode, mixer.model.decode

    def timed(fn, key):
        def run(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            spent[key] += time.perf_counter() - t0
            return out

        return run

    mixer.model.encode, mixer.model.decode = timed(encode, "encode"), timed(decode, "decode")
    try:
        rng = np.random.default_rng(0)
        n = len(mixer.rows)
        audio = (0.1 * rng.standard_normal((n, mixer.window_end(windows + 3)))).astype(np.float32)
        window = np.zeros((n, mixer.window), np.float32)
        rtf = []
        with mixer.session():  # as the live worker runs
            for k in range(windows + 3):
                if k == 3:
                    spent.update(encode=0.0, decode=0.0)
                window_slice(audio, mixer.window_end(k) - mixer.window, window)
                mixer.process(k, window)
                if k >= 3:  # warm-up
                    rtf.append(mixer.last_compute_s / (mixer.step / mixer.sample_rate))
    finally:
        del mixer.model.encode, mixer.model.decode
    rtf.sort()
    step_ms = 1000 * mixer.step / mixer.sample_rate
    return {
        "step_ms": step_ms,
        "mean": statistics.mean(rtf),
        "p95": rtf[int(0.95 * (len(rtf) - 1))],
        "max": rtf[-1],
        "encode_ms": 1000 * spent["encode"] / windows,
        "decode_ms": 1000 * spent["decode"] / windows,
        "total_ms": statistics.mean(rtf) * step_ms,
    }


def sweep(model: Autoencoder, base: EngineConfig, args: argparse.Namespace) -> None:
    """How the worker's cost per step grows with sources, window and step (one table)."""
    cases = [(n, base.window_frames, base.step_frames) for n in (1, 2, 4, 8)]
    cases += [(1, w, base.step_frames) for w in (16, 32)]
    cases += [(1, base.window_frames, s) for s in (2, 6)]
    print("| sources | window/step (frames) | encode ms | decode ms | worker ms per step | step ms | RTF mean |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n, w, st in cases:
        cfg = EngineConfig.from_dict({**base.to_dict(), "sources": [1] * n, "window_frames": w, "step_frames": st})
        m = measure(model, cfg, args.windows, args.device)
        print(
            f"| {n} | {w}/{st} | {m['encode_ms']:.1f} | {m['decode_ms']:.1f} | {m['total_ms']:.1f} | "
            f"{m['step_ms']:.1f} | {m['mean']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
