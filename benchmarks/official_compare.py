"""lincae against the official ``linear-cae`` package: same architecture, same weights, same audio.

    python benchmarks/official_compare.py --configs full small --seconds 10 60 --batch 1 4
    python benchmarks/official_compare.py --ablation --configs full --seconds 3

The first run creates a virtual environment with the official package (``--official-venv``,
default ``.bench/official``: torch from ``LINCAE_TORCH`` (default ``torch==2.13.0``), numpy<2,
PyYAML, huggingface_hub and ``linear-cae==0.1.4`` without its other dependencies). For each
configuration it builds our model with random non-zero weights, writes them in the official
checkpoint layout, and starts two worker processes (``_compare_worker.py``): the official package as
it ships, and lincae as ``lincae`` runs it (channels-last weights, :func:`keep_freed_memory`). Only
one worker computes at a time; each case is timed ``--repeats`` times, alternating which side goes
first. Both sides decode the same latents (ours) with the same seed, so the decoder noise is the same
and the outputs must agree: the table gives the largest absolute difference.

``--ablation`` times one case under several settings of each side instead, to show what each
optimisation contributes. Figures are seconds of compute per second of audio (lower is faster);
"speed-up" is official / lincae. Both sides use ``max_batch_size=1`` (the official default), and
audio longer than ``--max-chunk-seconds`` is encoded in overlapping chunks by both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from lincae.models.autoencoder import Autoencoder
from lincae.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_compare_worker.py"
OFFICIAL_PACKAGES = ["numpy<2", "pyyaml", "huggingface_hub"]
OFFICIAL_WHEEL = "linear-cae==0.1.4"


def full_config() -> dict:
    """The official full-size architecture (hop 512, base_channels 64, 58 M parameters)."""
    return {
        "frontend": {
            "hop_size": 512,
            "n_fft_factor": 4,
            "alpha_rescale": 0.65,
            "beta_rescale": 0.34,
            "sample_rate": 44100,
        },
        "generator": {"hop": 512},
        "diffusion": {},
    }


def small_config() -> dict:
    """The architecture of our default model (configs/small.yaml)."""
    m = TrainConfig.from_yaml(ROOT / "configs" / "small.yaml").model
    return {"frontend": dict(m.frontend), "generator": dict(m.generator), "diffusion": dict(m.diffusion)}


CONFIGS = {"full": full_config, "small": small_config}


def ensure_official_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import linear_cae"], capture_output=True).returncode == 0:
        return python
    print(f"[setup] creating {venv} with the official package", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, os.environ.get("LINCAE_TORCH", "torch==2.13.0"), *OFFICIAL_PACKAGES], check=True)
    subprocess.run([*pip, "--no-deps", OFFICIAL_WHEEL], check=True)
    return python


def write_official_layout(config: dict, folder: Path, seed: int) -> None:
    """Random non-zero weights of ``config`` in the official checkpoint layout."""
    torch.manual_seed(seed)
    model = Autoencoder(config["frontend"], config["generator"], config["diffusion"], scale_factor=1.0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) / max(1, p[0].numel()) ** 0.5)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "autoencoder_inference_model_last.pth")
    generator = model.generator.config.to_dict()
    generator.pop("activation_bottleneck")  # the official default (nn.Tanh()) is ours too; YAML cannot hold a module
    for part, values in (
        ("frontend", model.frontend.config.to_dict()),
        ("generator", generator),
        ("diffusion", model.diffusion.config.to_dict()),
    ):
        (folder / f"{part}_kwargs_last.yaml").write_text(yaml.safe_dump(values))


@dataclass
class Side:
    """One worker process: an implementation with its settings."""

    label: str
    python: Path
    flags: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self, weights: Path, threads: int, chunk_s: float) -> None:
        impl = _impl(self)
        cmd = [str(self.python), str(WORKER), "--impl", impl, "--weights", str(weights), "--threads", str(threads)]
        cmd += ["--max-chunk-seconds", str(chunk_s), *self.flags]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **self.env}
        if impl == "lincae":
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        json.loads(self._line())

    def _line(self) -> str:
        assert self.proc and self.proc.stdout
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label} worker exited (code {self.proc.wait()})")
        return line

    def run(self, **cmd: object) -> float:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return float(json.loads(self._line())["seconds"])

    def stop(self) -> None:
        if self.proc:
            assert self.proc.stdin
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def _impl(side: Side) -> str:
    return "official" if "official" in side.label else "lincae"


def time_case(
    sides: list[Side],
    op: str,
    seconds: float,
    batch: int,
    repeats: int,
    tmp: Path,
    own_latents: bool = False,
    steps: int = 1,
) -> dict[str, float]:
    """Median compute seconds per audio second of each side; outputs saved in ``tmp``.

    A decode takes the latents lincae's encode of the same case saved (so both sides decode the same
    input), or with ``own_latents`` those of the side's own encode.
    """
    times: dict[str, list[float]] = {s.label: [] for s in sides}
    for rep in range(repeats):
        order = sides if rep % 2 == 0 else sides[::-1]
        for s in order:
            cmd: dict[str, object] = {"op": op, "seconds": seconds, "batch": batch, "seed": 7}
            if op == "decode":
                cmd["steps"] = steps
                cmd["latents"] = str(tmp / f"z_{_impl(s) if own_latents else 'lincae'}.pt")
            if rep == 0:
                cmd["save"] = str(tmp / f"{'z' if op == 'encode' else 'y'}_{_impl(s)}.pt")
            times[s.label].append(s.run(**cmd))
    audio_s = seconds * batch
    return {k: statistics.median(v) / audio_s for k, v in times.items()}


def max_diff(tmp: Path, kind: str) -> float:
    a, b = torch.load(tmp / f"{kind}_official.pt"), torch.load(tmp / f"{kind}_lincae.pt")
    if a.shape != b.shape:
        raise AssertionError(f"{kind}: shapes differ: official {tuple(a.shape)}, lincae {tuple(b.shape)}")
    return float((a - b).abs().max())


def warm_up(sides: list[Side], tmp: Path) -> None:
    """One short encode and decode on each side (first calls build oneDNN primitives; compile runs here)."""
    for s in sides:
        s.run(op="encode", seconds=1.0, batch=1, seed=1, save=str(tmp / "z_lincae.pt"))
        s.run(op="decode", seconds=1.0, batch=1, seed=1, latents=str(tmp / "z_lincae.pt"))


def compare(args: argparse.Namespace, official_python: Path) -> None:
    ours = ["--channels-last", "--keep-freed-memory"]
    print("| config | audio | batch | op | official s/s | lincae s/s | speed-up | max abs diff |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name in args.configs:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            write_official_layout(CONFIGS[name](), tmp / "weights", seed=0)
            sides = [Side("official", official_python, []), Side("lincae", Path(sys.executable), ours)]
            for s in sides:
                s.start(tmp / "weights", args.threads, args.max_chunk_seconds)
            warm_up(sides, tmp)
            for seconds in args.seconds:
                for batch in args.batch:
                    if (name, seconds, batch) in args.skip:
                        continue
                    ops = [("encode", "z", 1)] + [("decode", "y", n) for n in args.steps]
                    for op, kind, steps in ops:
                        t = time_case(sides, op, seconds, batch, args.repeats, tmp, steps=steps)
                        diff = max_diff(tmp, kind)
                        label = op if steps == 1 else f"{op}, {steps} steps"
                        print(
                            f"| {name} | {seconds:g} s | {batch} | {label} | {t['official']:.3f} | {t['lincae']:.3f} | "
                            f"{t['official'] / t['lincae']:.2f}× | {diff:.1e} |",
                            flush=True,
                        )
            for s in sides:
                s.stop()


def ablation(args: argparse.Namespace, official_python: Path) -> None:
    variants = [
        Side("official (as shipped)", official_python, []),
        Side("official + keep_freed_memory", official_python, ["--keep-freed-memory"]),
        Side("lincae, no options", Path(sys.executable), []),
        Side("lincae + channels_last", Path(sys.executable), ["--channels-last"]),
        Side("lincae + keep_freed_memory", Path(sys.executable), ["--keep-freed-memory"]),
        Side("lincae + both (shipped)", Path(sys.executable), ["--channels-last", "--keep-freed-memory"]),
        Side(
            "lincae + both + inference_mode",
            Path(sys.executable),
            ["--channels-last", "--keep-freed-memory", "--inference-mode"],
        ),
        Side(
            "lincae + both, OMP_WAIT_POLICY=ACTIVE",
            Path(sys.executable),
            ["--channels-last", "--keep-freed-memory"],
            {"OMP_WAIT_POLICY": "ACTIVE"},
        ),
        Side(
            "lincae + both, 1 thread",
            Path(sys.executable),
            ["--channels-last", "--keep-freed-memory", "--threads", "1"],
        ),
    ]
    if args.compile:
        variants.append(
            Side(
                "lincae + both + torch.compile",
                Path(sys.executable),
                ["--channels-last", "--keep-freed-memory", "--compile"],
            )
        )
    seconds, batch = args.seconds[0], args.batch[0]
    for name in args.configs:
        print(f"\n{name} configuration, {seconds:g} s, batch {batch}, median of {args.repeats}:\n")
        print("| settings | encode s/s | decode s/s | encode+decode vs official |")
        print("|---|---:|---:|---:|")
        base = None
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            write_official_layout(CONFIGS[name](), tmp / "weights", seed=0)
            for v in variants:
                v.start(tmp / "weights", args.threads, args.max_chunk_seconds)
                warm_up([v], tmp)
                enc = time_case([v], "encode", seconds, batch, args.repeats, tmp)[v.label]
                dec = time_case([v], "decode", seconds, batch, args.repeats, tmp, own_latents=True)[v.label]
                v.stop()
                base = base or enc + dec
                print(f"| {v.label} | {enc:.3f} | {dec:.3f} | {base / (enc + dec):.2f}× |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["full", "small"])
    ap.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[1],
        help="decoding steps to time (official: the latent pyramid is recomputed every step; lincae: once per decode)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-chunk-seconds", type=float, default=10.0)
    ap.add_argument("--skip", nargs="*", default=[], metavar="CONFIG:SECONDS:BATCH", help="cases to leave out")
    ap.add_argument("--ablation", action="store_true", help="one case (first --seconds/--batch) under many settings")
    ap.add_argument("--compile", action="store_true", help="add a torch.compile variant to the ablation")
    ap.add_argument("--official-venv", type=Path, default=ROOT / ".bench" / "official")
    args = ap.parse_args()
    args.skip = {(c, float(s), int(b)) for c, s, b in (x.split(":") for x in args.skip)}
    official_python = ensure_official_venv(args.official_venv)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"threads {args.threads}; official linear-cae 0.1.4 in {args.official_venv}"
    )
    (ablation if args.ablation else compare)(args, official_python)


if __name__ == "__main__":
    main()
