"""The latency / quality trade-off of the engine's window settings, one table.

    python benchmarks/latency_quality.py [--model default] [--music data/synth-test] [--real data/real-eval]
        [--write-load src/lincae/assets/models/lincae-small/worker_load.json]

For each setting (window / step / lookahead frames, crossfade samples, compute budget) with one mono
source, and for each shipped preset's settings with its own sources: the declared latency at block 256,
the worker's real-time factor (one thread, window by window as live, the model without effect chains),
the boundary error: how far the fully wet output of that setting is from the offline render with a
long window (96 / 64 / 16 frames, 1024-sample crossfade), as 10·log10(‖y − y_long‖² / ‖y_long‖²) dB
over held-out music (lower is better; the error comes from the windows' edges), and the chroma
correlation of that output with the input (pitch kept: 1). The presets' settings
are marked. ``--write-load`` writes the measured loads as the model's ``worker_load.json``, which
``lincae presets``, ``lincae live --help`` and the GUI's preset menu quote (lincae.profiles).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from engine_rtf import measure
from machine import cpu_name

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.evaluation.metrics import chroma_correlation
from lincae.models.base import load_model
from lincae.models.runtime import keep_freed_memory
from lincae.presets import list_presets, load_preset

LONG = {"window_frames": 96, "step_frames": 64, "lookahead_frames": 16, "crossfade": 1024}
SETTINGS = [  # window, step, lookahead, crossfade, compute budget
    (12, 8, 1, 256, 0.5),
    (12, 8, 2, 256, 0.5),
    (16, 12, 2, 256, 0.5),
    (16, 12, 2, 256, 0.75),
    (20, 12, 3, 256, 0.75),
    (20, 14, 2, 256, 0.5),
    (18, 14, 2, 256, 0.4),
    (19, 14, 2, 256, 0.4),
    (20, 15, 2, 256, 0.35),
    (20, 16, 2, 256, 0.5),
    (24, 16, 4, 512, 0.5),
    (32, 24, 4, 512, 1.0),
]


def held_out(music: str | None, real: str | None, seconds: float) -> list[np.ndarray]:
    """Mono clips of held-out music: synth mixes and real recordings, ``seconds`` each."""
    from lincae.files.audiofile import read_audio

    clips = []
    n = int(seconds * 44100)
    if music:
        for path in sorted(Path(music).rglob("mix.wav"))[:3]:
            clips.append(read_audio(path, 44100).mean(0, keepdims=True)[:, :n])
    if real:
        for path in sorted(Path(real).glob("*.flac"))[:3]:
            clips.append(read_audio(path, 44100).mean(0, keepdims=True)[:, :n])
    if not clips:
        t = np.arange(n) / 44100
        clips.append((0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32)[None])
    return [c.astype(np.float32) for c in clips]


def wet_render(model: torch.nn.Module, engine: dict, clip: np.ndarray) -> np.ndarray:
    reg = ParameterRegistry(mixer_parameters(1))
    reg.set("mix.dry_wet", 100.0)
    cfg = EngineConfig.from_dict({**EngineConfig().to_dict(), **engine, "sources": [1]})
    return render(LatentMixer(model, cfg, reg, device="cpu"), [clip])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--music", help="held-out synth folder")
    ap.add_argument("--real", help="folder of held-out real recordings (FLAC)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--windows", type=int, default=30, help="windows timed per setting (0: no timing)")
    ap.add_argument("--write-load", help="write the measured worker loads to this JSON file")
    args = ap.parse_args()
    if args.write_load and not args.windows:
        ap.error("--write-load needs timed windows (--windows > 0)")
    keep_freed_memory()
    torch.set_num_threads(1)
    model = load_model(args.model, max_batch_size=64)
    clips = held_out(args.music, args.real, args.seconds)
    refs = [wet_render(model, LONG, c) for c in clips]
    presets: dict[tuple, list[str]] = {}
    for name in list_presets():
        e = load_preset(name).engine
        key = (e.window_frames, e.step_frames, e.lookahead_frames, e.crossfade, e.compute_budget, tuple(e.sources))
        presets.setdefault(key, []).append(name)
    settings = list(dict.fromkeys([*((*x, (1,)) for x in SETTINGS), *presets]))
    print(f"model {model.name}, hop {model.hop_length} samples; {len(clips)} clips of {args.seconds:g} s")
    print(
        "| window/step/lookahead (frames) | crossfade | budget | sources (channels) | latency ms (block 256) "
        "| RTF mean | RTF p95 | boundary error dB | chroma vs input | presets |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    rows = []
    quality: dict[tuple, tuple[float, float]] = {}
    for w, s, la, xf, b, sources in settings:
        engine = {"window_frames": w, "step_frames": s, "lookahead_frames": la, "crossfade": xf, "compute_budget": b}
        cfg = EngineConfig.from_dict({**EngineConfig().to_dict(), **engine, "sources": list(sources)})
        try:
            cfg.check_model(model.hop_length)
        except ValueError:
            continue
        if (w, s, la, xf, b) not in quality:  # the windowing's quality, on mono clips
            wets = [wet_render(model, engine, c) for c in clips]
            err = sum(float(np.sum((y - r) ** 2)) for y, r in zip(wets, refs, strict=True))
            energy = sum(float(np.sum(r**2)) for r in refs)
            chroma = np.mean(
                [
                    float(chroma_correlation(torch.from_numpy(y), torch.from_numpy(c)))
                    for y, c in zip(wets, clips, strict=True)
                ]
            )
            quality[(w, s, la, xf, b)] = (float(10 * np.log10(err / energy)), float(chroma))
        error_db, chroma = quality[(w, s, la, xf, b)]
        m = measure(model, cfg, args.windows, "cpu") if args.windows else {"mean": float("nan"), "p95": float("nan")}
        latency = 1000 * cfg.latency_samples(model.hop_length, 256) / model.sample_rate
        names = ", ".join(presets.get((w, s, la, xf, b, sources), []))
        print(
            f"| {w}/{s}/{la} | {xf} | {b:g} | {'+'.join(map(str, sources))} | {latency:.0f} | {m['mean']:.3f} | "
            f"{m['p95']:.3f} | {error_db:.1f} | {chroma:.3f} | {names} |",
            flush=True,
        )
        rows.append(
            {
                **engine,
                "sources": list(sources),
                "diffusion_steps": cfg.diffusion_steps,
                "latency_ms": round(latency, 1),
                "rtf_mean": round(m["mean"], 3),
                "rtf_p95": round(m["p95"], 3),
                "boundary_error_db": round(error_db, 1),
                "chroma": round(chroma, 3),
            }
        )
    if args.write_load:
        record = {
            "model": model.name,
            "machine": f"{cpu_name()}, {os.cpu_count()} cores",
            "date": datetime.date.today().isoformat(),
            "measured": "mean worker load (compute / audio time of a step) for the sources' layout, model only "
            "(no effect chains), one PyTorch thread",
            "command": "python benchmarks/latency_quality.py " + " ".join(sys.argv[1:]),
            "settings": rows,
        }
        Path(args.write_load).write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.write_load}")


if __name__ == "__main__":
    main()
