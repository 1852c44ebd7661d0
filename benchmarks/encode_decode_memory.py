"""Peak memory (RSS) and wall time of ``lincae encode`` and ``lincae decode`` for long inputs.

    PYTHONPATH=src python benchmarks/encode_decode_memory.py --minutes 1 10 120 [--model default]
        [--channels 2] [--threads 1] [--memory-mb 1000] [--batch 4]

For each length, a FLAC of generated music-like audio (tones with decaying envelopes and a little noise,
44.1 kHz, 16-bit) is written into a temporary folder, then encoded and decoded by the ``lincae`` command
in fresh processes; each process's peak RSS is read from the kernel when it exits (``wait4``). With
chunked streaming, the peaks should not grow with the length, and they should stay within the commands'
``--memory-mb`` (passed on when given; else their default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name


def make_input(path: Path, minutes: float, channels: int, rate: int = 44100) -> None:
    """``minutes`` of audio, written 30 s at a time (memory does not grow with the length)."""
    import numpy as np
    from pedalboard.io import AudioFile

    rng = np.random.default_rng(0)
    need = int(minutes * 60 * rate)
    with AudioFile(str(path), "w", samplerate=rate, num_channels=channels, bit_depth=16) as out:
        written, i = 0, 0
        while written < need:
            t = np.arange(30 * rate) / rate
            f = 110 * 2 ** (rng.integers(0, 24, size=(channels, 1)) / 12)
            block = 0.3 * np.exp(-3 * (t % 0.5)) * np.sin(2 * np.pi * f * t)
            block = (block + 0.01 * rng.standard_normal(block.shape)).astype(np.float32)[:, : need - written]
            out.write(block)
            written += block.shape[-1]
            i += 1


def run(args: list[str], threads: int) -> dict[str, float]:
    """Run ``lincae ARGS`` in a fresh process: its wall time and peak RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lincae", *args], env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"lincae {' '.join(args)} failed ({proc.returncode}):\n{err[-2000:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 120.0], help="input lengths")
    parser.add_argument("--model", default="default", help="model id, folder or file")
    parser.add_argument("--channels", type=int, default=2, help="channels of the generated input")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/PyTorch threads of each process")
    parser.add_argument("--memory-mb", type=int, help="the commands' --memory-mb (default: theirs)")
    parser.add_argument("--batch", type=int, help="the commands' --batch (default: theirs)")
    args = parser.parse_args()
    options = []
    if args.memory_mb is not None:
        options += ["--memory-mb", str(args.memory_mb)]
    if args.batch is not None:
        options += ["--batch", str(args.batch)]
    print(
        f"# CPU: {cpu_name()}; {os.cpu_count()} cores; threads per process: {args.threads}; model {args.model}; "
        f"options: {' '.join(options) or 'the defaults'}"
    )
    print("| input | command | wall s | × real time | peak RSS MB |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="lincae-mem-") as tmp:
        folder = Path(tmp)
        for minutes in args.minutes:
            audio, latent, out = folder / "in.flac", folder / "in.latent", folder / "out.flac"
            make_input(audio, minutes, args.channels)
            results = {
                "encode": run(
                    ["encode", str(audio), "-o", str(latent), "--model", args.model, "--overwrite", *options],
                    args.threads,
                ),
                "decode": run(
                    ["decode", str(latent), "-o", str(out), "--model", args.model, "--overwrite", *options],
                    args.threads,
                ),
            }
            for command, r in results.items():
                speed = minutes * 60 / r["wall_s"]
                label = f"{minutes:g} min, {args.channels} ch"
                print(f"| {label} | {command} | {r['wall_s']:.1f} | {speed:.2f} | {r['peak_rss_mb']:.0f} |", flush=True)
            print(json.dumps({"minutes": minutes, **results}), file=sys.stderr, flush=True)
            for p in (audio, latent, out):
                p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
