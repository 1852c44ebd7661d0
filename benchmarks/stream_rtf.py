"""Worker load of the cached-convolution (streaming) path: compute per step over the step's audio time.

    python benchmarks/stream_rtf.py [--model PATH | --config configs/framenet.yaml] [--frames 1 2 4]
        [--sources 1 2] [--steps 400] [--threads 1]

For a FrameNet model it first prints the one-frame step of encoder and decoder (one source, one
thread) in each back end: eager PyTorch, TorchScript (traced and frozen) and ONNX Runtime (when
installed), with the largest difference from eager over 200 steps of the same stream.

Runs a :class:`~lincae.engine.cached.CachedMixer` step after step on music-like noise, as the live worker
does (inside its session: the engine's precision), and prints one row per (frames per step, sources):
the declared latency at block 256 (compute budget 0.45, as the low-latency preset), the mean, median
and 95th-percentile step time and the mean load. Load below the budget is what keeps a stream
without dropouts; the low-latency target is a mean of 0.5 or less with one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as lincae live

import numpy as np
from machine import cpu_name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--config", default="configs/small-stream.yaml", help="architecture to use without --model")
    ap.add_argument("--frames", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--sources", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()

    import torch

    from lincae.engine.cached import CachedMixer
    from lincae.engine.config import EngineConfig
    from lincae.models.autoencoder import Autoencoder
    from lincae.models.base import load_model
    from lincae.models.frame_autoencoder import FrameAutoencoder
    from lincae.training.config import TrainConfig
    from lincae.training.frame_trainer import FrameTrainConfig, is_frame_config

    torch.set_num_threads(args.threads)
    if args.model:
        model = load_model(args.model, max_batch_size=16)
    else:
        import yaml

        with open(args.config) as f:
            raw = yaml.safe_load(f)
        torch.manual_seed(0)
        if is_frame_config(raw):
            model = FrameAutoencoder(FrameTrainConfig.from_yaml(args.config).model, name="framenet-architecture")
        else:
            cfg = TrainConfig.from_yaml(args.config).model
            model = Autoencoder(cfg.frontend, cfg.generator, cfg.diffusion, name="stream-architecture")
    print(
        f"model: {args.model or args.config + ' (random weights)'}; CPU: {cpu_name()}; threads {args.threads}; "
        f"precision {args.precision}"
    )
    if isinstance(model, FrameAutoencoder):
        step_table(model.eval(), args.steps)
    print("| frames/step | sources | latency ms (block 256) | step ms mean | median | p95 | load mean |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for frames in args.frames:
        for sources in args.sources:
            cfg = EngineConfig(
                sources=[1] * sources,
                mode="stream",
                stream_frames=frames,
                compute_budget=0.45,
                precision=args.precision,
            )
            mixer = CachedMixer(model, cfg)
            mixer.warm_up()
            times = []
            with mixer.session():
                for k in range(args.steps + 20):
                    window = (0.1 * rng.standard_normal((1, sources, mixer.window))).astype(np.float32)
                    t0 = time.perf_counter()
                    mixer.process_many(k, window)
                    if k >= 20:
                        times.append(time.perf_counter() - t0)
            step_s = mixer.step / mixer.sample_rate
            ms = [1000 * t for t in times]
            latency = 1000 * mixer.latency_samples(256) / mixer.sample_rate
            print(
                f"| {frames} | {sources} | {latency:.1f} | {statistics.mean(ms):.2f} | {statistics.median(ms):.2f} | "
                f"{np.percentile(ms, 95):.2f} | {statistics.mean(times) / step_s:.2f} |"
            )


def step_table(model: object, steps: int) -> None:
    """One-frame encoder + decoder steps (one source) per back end: median and p95 ms, largest difference."""
    import torch

    from lincae.models.frame_step import DecoderStep, EncoderStep, FrameDecoderStream, FrameEncoderStream

    net = model.net  # type: ignore[attr-defined]
    rng = np.random.default_rng(1)
    blocks = [
        torch.from_numpy((0.1 * rng.standard_normal((1, net.config.hop))).astype(np.float32)) for _ in range(steps)
    ]

    def run(enc: FrameEncoderStream, dec: FrameDecoderStream) -> tuple[list[float], torch.Tensor]:
        for b in blocks[:20]:
            dec.push(enc.push(b))
        enc.reset()
        dec.reset()
        times, outs = [], []
        with torch.no_grad():
            for b in blocks:
                t0 = time.perf_counter()
                y = dec.push(enc.push(b))
                times.append(1000 * (time.perf_counter() - t0))
                outs.append(y)
        return times, torch.cat(outs, -1)

    eager_t, eager_y = run(FrameEncoderStream(net, 1), FrameDecoderStream(net, 1))
    rows = [("eager PyTorch", eager_t, eager_y)]

    enc_ts, dec_ts = FrameEncoderStream(net, 1), FrameDecoderStream(net, 1)
    for stream, step_cls in ((enc_ts, EncoderStep), (dec_ts, DecoderStep)):
        module = step_cls(net.encoder if step_cls is EncoderStep else net.decoder, 1).eval()
        example = tuple(torch.zeros(s) for s in stream._input_shapes(1))
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(module, example))
        stream._steps[1] = traced
    ts_t, ts_y = run(enc_ts, dec_ts)
    rows.append(("TorchScript (traced, frozen)", ts_t, ts_y))
    enc_o, dec_o = FrameEncoderStream(net, 1, onnx_frames=1), FrameDecoderStream(net, 1, onnx_frames=1)
    o_t, o_y = run(enc_o, dec_o)
    if enc_o.backend == "onnxruntime":
        rows.append(("ONNX Runtime", o_t, o_y))
    else:
        print("ONNX Runtime: not installed (pip install 'lincae[onnx]')")
    print("| one-frame step, encoder + decoder, 1 source | median ms | p95 ms | max abs diff vs eager |")
    print("|---|---:|---:|---:|")
    for name, t, y in rows:
        diff = float((y - eager_y).abs().max())
        print(f"| {name} | {statistics.median(t):.3f} | {np.percentile(t, 95):.3f} | {diff:.1e} |")
    print()


if __name__ == "__main__":
    sys.exit(main())
