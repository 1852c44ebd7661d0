"""One side of ``official_compare.py``: loads a model and times the encode/decode commands it is sent.

Runs under either interpreter (ours, or the one with the official ``linear-cae`` package), so it
imports nothing of lincae unless ``--impl lincae``. Commands arrive as JSON lines on stdin; each
answer is one JSON line on stdout.

    {"op": "encode", "seconds": 10, "batch": 1, "seed": 0, "save": "z.pt"}
    {"op": "decode", "seconds": 10, "batch": 1, "seed": 0, "latents": "z.pt", "save": "y.pt", "steps": 1}
    -> {"seconds": 1.23}

The audio of an encode is ``0.1 * randn`` from a ``torch.Generator`` seeded with ``seed``, so both
sides encode the same samples; a decode seeds the global RNG with ``seed`` first, so both draw the
same decoder noise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

SAMPLE_RATE = 44100


def _keep_freed_memory() -> None:
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-4, 0)  # M_MMAP_MAX
    libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD


def load(args: argparse.Namespace):
    import torch
    import yaml

    folder = Path(args.weights)
    chunk = int(args.max_chunk_seconds * SAMPLE_RATE) if args.max_chunk_seconds else None
    common = dict(max_batch_size=1, max_chunk_size=chunk, scale_factor=args.scale_factor, name="benchmark")
    if args.impl == "official":
        from linear_cae import Autoencoder

        parts = [
            yaml.safe_load((folder / f"{p}_kwargs_last.yaml").read_text())
            for p in ("frontend", "generator", "diffusion")
        ]
        model = Autoencoder(*parts, **common)
        model.load_state_dict(torch.load(folder / "autoencoder_inference_model_last.pth", map_location="cpu"))
        return model.eval()
    from lincae.models.autoencoder import Autoencoder
    from lincae.models.runtime import use_channels_last

    model = Autoencoder.from_pretrained(folder, **common).eval()
    if args.channels_last:
        use_channels_last(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["official", "lincae"], required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale-factor", type=float, default=1.0)
    ap.add_argument("--max-chunk-seconds", type=float, default=0.0)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--keep-freed-memory", action="store_true")
    ap.add_argument("--inference-mode", action="store_true", help="inference_mode instead of no_grad")
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoder, upsampler and generator")
    args = ap.parse_args()
    if args.keep_freed_memory:
        _keep_freed_memory()
    import torch

    torch.set_num_threads(args.threads)
    model = load(args)
    if args.compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        g = model.generator
        g.encoder.forward = torch.compile(g.encoder.forward)
        g.decoder.forward = torch.compile(g.decoder.forward)
        g.forward_generator = torch.compile(g.forward_generator)
    grad_off = torch.inference_mode if args.inference_mode else torch.no_grad
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        samples = int(cmd["seconds"] * SAMPLE_RATE)
        with grad_off():
            if cmd["op"] == "encode":
                gen = torch.Generator().manual_seed(cmd["seed"])
                audio = 0.1 * torch.randn(cmd["batch"], samples, generator=gen)
                t0 = time.perf_counter()
                out = model.encode(audio)
                dt = time.perf_counter() - t0
            else:
                z = torch.load(cmd["latents"])
                torch.manual_seed(cmd["seed"])
                t0 = time.perf_counter()
                out = model.decode(z, full_length=samples, diffusion_steps=cmd.get("steps", 1))
                dt = time.perf_counter() - t0
        if cmd.get("save"):
            with contextlib.suppress(RuntimeError):
                out = out.clone()  # an inference tensor saves like any other once cloned
            torch.save(out.contiguous(), cmd["save"])
        print(json.dumps({"seconds": dt, "shape": list(out.shape)}), flush=True)


if __name__ == "__main__":
    main()
