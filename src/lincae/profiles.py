"""What each shipped preset's engine settings cost with the shipped model, without loading it.

For help texts and menus: the declared latency follows from a preset's window, step, lookahead,
crossfade and compute budget and the model's frame size (read from the shipped model's
``config.json``); the worker load (compute time / audio time of a step, one thread) is the one
measured for those settings and that source layout with that model and written beside it as ``worker_load.json`` by
``benchmarks/latency_quality.py --write-load``. Importing this module loads neither PyTorch nor
pedalboard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lincae.engine.config import EngineConfig
from lincae.presets import list_presets, preset_path, upgrade

__all__ = [
    "EngineProfile",
    "engine_profiles",
    "profiles_help",
    "shipped_model_frame",
    "shipped_stream_delay",
    "worker_load_table",
]

#: File beside the shipped model's config.json with the worker load measured for engine settings.
WORKER_LOAD_FILE = "worker_load.json"

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
    worker_load: float | None = None  # mean RTF measured for these settings and sources (one thread), if known
    measured_on: str = ""  # the machine that measured it
    streams: bool = False  # runs through the model's cached convolutions (else in windows)

    def cost(self) -> str:
        """``"141 ms, load 0.25"``: the declared latency and, where measured, the worker load."""
        load = f", load {self.worker_load:.2f}" if self.worker_load is not None else ""
        return f"{self.latency_ms:.0f} ms{load}"


def _shipped_model_dir() -> Path | None:
    """The folder of the shipped default model (marked ``metadata.default`` in its ``config.json``)."""
    root = Path(str(resources.files("lincae"))) / "assets" / "models"
    for config_path in sorted(root.glob("*/config.json")) if root.is_dir() else []:
        if json.loads(config_path.read_text()).get("metadata", {}).get("default"):
            return config_path.parent
    return None


def _shipped_config() -> dict[str, Any] | None:
    """The shipped default model's ``config.json``, or ``None`` when no model is shipped."""
    folder = _shipped_model_dir()
    return None if folder is None else json.loads((folder / "config.json").read_text())


def _geometry(config: dict[str, Any] | None) -> tuple[int, int, int]:
    """STFT hop, FFT size over hop and time halvings of a model ``config.json`` (the fallback's for ``None``).

    A FrameNet model (``family: framenet``) has one STFT frame per latent frame: ``(hop, n_fft / hop, 0)``.
    """
    if config is None:
        return FALLBACK_GEOMETRY
    if config.get("family") == "framenet":
        net = config["framenet"]
        return int(net["hop"]), int(net["n_fft"]) // int(net["hop"]), 0
    temporal = [int(v) for v in config["generator"].get("freq_downsample_list", [])].count(0)
    frontend = config["frontend"]
    return int(frontend["hop_size"]), int(frontend.get("n_fft_factor", 4)), temporal


def _decoded_samples(config: dict[str, Any] | None, frames: int) -> int:
    """Audio samples a window of ``frames`` latent frames decodes to (the model's ``get_decoded_size``)."""
    hop, fft_factor, temporal = _geometry(config)
    if config is not None and config.get("family") == "framenet":
        return frames * hop - (int(config["framenet"]["synthesis"]) - hop)
    return (frames * 2**temporal - 1) * hop + fft_factor * hop


def _stream_delay(config: dict[str, Any] | None) -> int | None:
    """Samples of delay of a model ``config.json`` when it streams, or ``None`` when it is not a
    streamable model (it then runs in windows): ``n_fft − hop + lookahead · hop`` for a streamable
    consistency UNet, ``synthesis − hop`` for FrameNet (which always streams)."""
    if config is not None and config.get("family") == "framenet":
        net = config["framenet"]
        return int(net["synthesis"]) - int(net["hop"])
    if config is None or not config["generator"].get("streamable", False):
        return None
    hop, fft_factor, _ = _geometry(config)
    return (fft_factor - 1) * hop + int(config["generator"].get("lookahead", 0)) * hop


def _shipped_geometry() -> tuple[int, int, int]:
    """STFT hop, FFT size over hop and time halvings of the shipped default model (its ``config.json``)."""
    return _geometry(_shipped_config())


def shipped_stream_delay() -> int | None:
    """Samples of delay of the shipped default model when it streams, or ``None`` (see :func:`_stream_delay`)."""
    return _stream_delay(_shipped_config())


SettingsKey = tuple[int, int, int, int, float, tuple[int, ...], int]


def _settings_key(e: EngineConfig) -> SettingsKey:
    """What a worker load depends on: window, step, lookahead, crossfade, budget, the sources' channels, steps."""
    return (
        e.window_frames,
        e.step_frames,
        e.lookahead_frames,
        e.crossfade,
        float(e.compute_budget),
        tuple(int(c) for c in e.sources),
        e.diffusion_steps,
    )


def worker_load_table(folder: Path | None = None) -> tuple[dict[SettingsKey, float], str]:
    """Measured mean worker load by engine settings and source layout, and the machine that measured it.

    Read from ``worker_load.json`` in ``folder`` (default: the shipped model's); empty when there is none
    or it cannot be read (a menu or help text then shows no load rather than failing).
    """
    folder = folder if folder is not None else _shipped_model_dir()
    path = folder / WORKER_LOAD_FILE if folder is not None else None
    if path is None or not path.is_file():
        return {}, ""
    try:
        data = json.loads(path.read_text())
        table = {
            (
                int(r["window_frames"]),
                int(r["step_frames"]),
                int(r["lookahead_frames"]),
                int(r["crossfade"]),
                float(r["compute_budget"]),
                tuple(int(c) for c in r.get("sources", [1])),
                int(r.get("diffusion_steps", 1)),
            ): float(r["rtf_mean"])
            for r in data["settings"]
        }
        return table, str(data.get("machine", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return {}, ""


def shipped_model_frame() -> int:
    """Samples per latent frame of the shipped default model (no weights loaded)."""
    hop, _, temporal = _shipped_geometry()
    return hop * 2**temporal


def engine_profiles(block: int = 256) -> list[EngineProfile]:
    """The shipped presets' engine settings, with their declared latency for the shipped model."""
    config = _shipped_config()  # read once for all presets
    hop, _, temporal = _geometry(config)
    frame = hop * 2**temporal
    model_delay = _stream_delay(config)
    loads, machine = worker_load_table()
    out = []
    for name in list_presets():
        # the engine block and texts only: a full load validates the chains, which imports pedalboard
        data = upgrade(json.loads(preset_path(name).read_text()), where=name)
        e = EngineConfig.from_dict(data.get("engine") or {})
        key = _settings_key(e)
        streams = e.streams(model_delay is not None)
        if streams:  # the model's own context is its window; the step is what one call adds
            window_ms = 1000.0 * (e.stream_frames * frame + (model_delay or 0)) / 44100
            step_ms = 1000.0 * e.stream_frames * frame / 44100
        else:
            window_ms = 1000.0 * _decoded_samples(config, e.window_frames) / 44100
            step_ms = 1000.0 * e.step_frames * frame / 44100
        out.append(
            EngineProfile(
                name=name,
                title=data.get("name") or name,
                latency_ms=e.latency_ms(frame, 44100, block, model_delay if streams else None),
                window_ms=window_ms,
                step_ms=step_ms,
                description=data.get("description", ""),
                worker_load=None if streams else loads.get(key),
                measured_on=machine if key in loads and not streams else "",
                streams=streams,
            )
        )
    return out


def profiles_help(block: int = 256) -> str:
    """One line per shipped preset: its declared latency, worker load and step, for ``lincae live --help``."""
    profiles = engine_profiles(block)
    lines = [
        f"what the shipped presets cost with the shipped model: engine latency at block {block} (plus the device's) "
        "and worker load (compute / audio time for the preset's sources, one thread; above 1 drops out):"
    ]
    for p in profiles:
        window = (
            f"streaming, {p.step_ms:.0f} ms per model call"
            if p.streams
            else f"windows of {p.window_ms:.0f} ms every {p.step_ms:.0f} ms"
        )
        load = f"load {p.worker_load:.2f}" if p.worker_load is not None else "load not measured"
        lines.append(f"  {p.name:16s} {p.latency_ms:4.0f} ms  {load}  ({window})")
    machines = sorted({p.measured_on for p in profiles if p.measured_on})
    if machines:
        lines.append(f"loads measured on: {'; '.join(machines)} (benchmarks/latency_quality.py)")
    return "\n".join(lines)
