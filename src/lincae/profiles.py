"""What each shipped preset's engine settings cost with the shipped model, without loading it.

For help texts and menus: the declared latency follows from a preset's window, step, lookahead,
crossfade and compute budget and the model's frame size (read from the shipped model's
``config.json``); the presets' descriptions state the worker load measured on a 2-core CPU
(BENCHMARKS.md). Importing this module loads neither PyTorch nor pedalboard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lincae.engine.config import EngineConfig
from lincae.presets import list_presets, preset_path, upgrade

__all__ = ["EngineProfile", "engine_profiles", "profiles_help", "shipped_model_frame"]

#: STFT hop, FFT size over hop and halvings of time assumed when no model is shipped (the default model's).
FALLBACK_GEOMETRY = (256, 4, 0)


@dataclass(frozen=True)
class EngineProfile:
    """A shipped preset's engine settings and their declared latency (block 256, 44.1 kHz)."""

    name: str
    title: str
    latency_ms: float
    window_ms: float
    step_ms: float
    description: str


def _shipped_geometry() -> tuple[int, int, int]:
    """STFT hop, FFT size over hop and time halvings of the shipped default model (its ``config.json``)."""
    root = Path(str(resources.files("lincae"))) / "assets" / "models"
    for config_path in sorted(root.glob("*/config.json")) if root.is_dir() else []:
        config = json.loads(config_path.read_text())
        if config.get("metadata", {}).get("default"):
            temporal = [int(v) for v in config["generator"].get("freq_downsample_list", [])].count(0)
            frontend = config["frontend"]
            return int(frontend["hop_size"]), int(frontend.get("n_fft_factor", 4)), temporal
    return FALLBACK_GEOMETRY


def shipped_model_frame() -> int:
    """Samples per latent frame of the shipped default model (no weights loaded)."""
    hop, _, temporal = _shipped_geometry()
    return hop * 2**temporal


def engine_profiles(block: int = 256) -> list[EngineProfile]:
    """The shipped presets' engine settings, with their declared latency for the shipped model."""
    hop, fft_factor, temporal = _shipped_geometry()
    frame = hop * 2**temporal
    out = []
    for name in list_presets():
        # the engine block and texts only: a full load validates the chains, which imports pedalboard
        data = upgrade(json.loads(preset_path(name).read_text()), where=name)
        e = EngineConfig.from_dict(data.get("engine") or {})
        out.append(
            EngineProfile(
                name=name,
                title=data.get("name") or name,
                latency_ms=e.latency_ms(frame, 44100, block),
                window_ms=1000.0 * ((e.window_frames * 2**temporal - 1) * hop + fft_factor * hop) / 44100,
                step_ms=1000.0 * e.step_frames * frame / 44100,
                description=data.get("description", ""),
            )
        )
    return out


def profiles_help(block: int = 256) -> str:
    """One line per shipped preset: its declared latency and step, for ``lincae live --help``."""
    lines = [f"engine latency of the shipped presets with the shipped model (block {block}, plus the device's):"]
    for p in engine_profiles(block):
        window = f"windows of {p.window_ms:.0f} ms every {p.step_ms:.0f} ms"
        lines.append(f"  {p.name:16s} {p.latency_ms:4.0f} ms  ({window})")
    lines.append("the worker load each was measured at: lincae presets (and BENCHMARKS.md)")
    return "\n".join(lines)
