"""Which way a render started from the GUI runs faster: in the GUI's process on a copy of the model, or
in a ``lincae render`` child process.

    PYTHONPATH=src python benchmarks/gui_render.py [--seconds 60] [--repeats 2] [--model default]

This process is set up as the GUI's is (``prepare_process("gui")``: idle OpenMP threads sleep; the live
thread count set, as a live session leaves it). Each repeat renders the same input (a tone with noise,
default engine settings, reverb + brickwall limiter as post chain) three ways:

* ``copy``: a :class:`~lincae.rig.Rig` of its own on ``copy.deepcopy(model)``, on a thread that takes
  the offline thread count, as the GUI's render worker does;
* ``child-passive``: ``lincae render`` in a child process that inherits ``OMP_WAIT_POLICY=PASSIVE``;
* ``child``: ``lincae render`` in a child process with OpenMP's default (spinning) wait policy, as a
  ``lincae render`` typed in a shell runs.

Wall times include the child's start (imports, model load). The load average is printed with each line:
spinning threads suffer most on a busy machine.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import cpu_name

from lincae.cli import prepare_process

prepare_process("gui")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lincae.files.audiofile import write_audio  # noqa: E402
from lincae.models.base import load_model  # noqa: E402
from lincae.models.runtime import keep_freed_memory  # noqa: E402
from lincae.presets import Preset  # noqa: E402
from lincae.rig import LIVE_THREADS, Rig, offline_threads  # noqa: E402

POST = [{"plugin": "Reverb", "params": {"room_size": 0.3, "wet_level": 0.2}}, {"plugin": "BrickwallLimiter"}]


def render_copy(model: object, preset: Preset, src: Path, out: Path) -> None:
    def work() -> None:
        torch.set_num_threads(offline_threads())
        Rig(copy.deepcopy(model), [1], preset).render([src], out, overwrite=True)  # type: ignore[arg-type]

    t = threading.Thread(target=work)
    t.start()
    t.join()


def render_child(model_id: str, preset_path: Path, src: Path, out: Path, passive: bool) -> None:
    env = dict(os.environ)
    if not passive:
        env.pop("OMP_WAIT_POLICY", None)
    cmd = [sys.executable, "-m", "lincae", "render", str(src), "-o", str(out), "--preset", str(preset_path)]
    cmd += ["--model", model_id, "--overwrite", "--no-progress"]
    subprocess.run(cmd, check=True, env=env, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the rendered input")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    keep_freed_memory()
    torch.set_num_threads(LIVE_THREADS)  # as a live session leaves the process
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs, PyTorch {torch.__version__}, offline threads {offline_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        n = int(args.seconds * 44100)
        rng = np.random.default_rng(0)
        t = np.arange(n) / 44100
        x = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)[None]
        src = write_audio(d / "in.flac", x, 44100)
        preset = Preset(post=POST)
        preset.save(d / "p.json")
        model = load_model(args.model, max_batch_size=8)
        ways = {
            "copy": lambda: render_copy(model, preset, src, d / "a.wav"),
            "child-passive": lambda: render_child(args.model, d / "p.json", src, d / "b.wav", True),
            "child": lambda: render_child(args.model, d / "p.json", src, d / "c.wav", False),
        }
        for _ in range(args.repeats):
            for name, run in ways.items():
                load = os.getloadavg()[0]
                start = time.perf_counter()
                run()
                wall = time.perf_counter() - start
                print(f"{name:14s} {wall:7.1f} s  {args.seconds / wall:5.1f}x real time  (load {load:.1f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
