"""Built-in plugins and their parameter ranges, discovered from pedalboard; the chain errors."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import pedalboard

EXTERNAL_KINDS = ("vst3", "au")
DEFAULT_BUFFER_SIZE = 512  # largest chunk handed to a plugin at once (see ChainProcessor)
RAMP_BLOCK = 128  # a parameter ramp holds each intermediate value for this many samples at most
_BUILTIN_KEYS = {"plugin", "params", "bypass"}
_EXTERNAL_KEYS = {"plugin", "path", "name", "params", "state", "bypass"}
_CHAIN_FILE_KEYS = {"format", "name", "description", "chain"}
CHAIN_FILE_FORMAT = "lincae.chain"

# Classes that are containers, abstract bases or wrappers rather than effects one can name in a spec.
_NOT_BUILTIN = {
    "Plugin",
    "ExternalPlugin",
    "PluginContainer",
    "Pedalboard",
    "Chain",
    "Mix",
    "VST3Plugin",
    "AudioUnitPlugin",
    "IIRFilter",
}

_INF = math.inf
_UNIT = (0.0, 1.0, 0.0, 1.0, "")
_FREQ = (1.0, 200_000.0, 20.0, 20_000.0, "Hz")
_MS = (0.0, 10_000.0, 1.0, 1000.0, "ms")
_ATTACK = (0.0, 10_000.0, 0.1, 100.0, "ms")

#: Built-in float parameters that act as switches or re-initialise the plugin: they change at a block
#: boundary instead of ramping (``ParameterSpec.smoothed`` is false for them).
UNSMOOTHED: dict[str, set[str]] = {
    "MP3Compressor": {"vbr_quality"},
    "Resample": {"target_sample_rate"},
    "Reverb": {"freeze_mode"},
}

#: ``plugin: {parameter: (valid_min, valid_max, control_min, control_max, unit)}``. The valid range is
#: enforced when a spec is validated or a parameter applied (pedalboard itself accepts e.g. a negative
#: release time); the control range is what a MIDI knob or GUI slider sweeps (widened to include the
#: current value). Numeric parameters of built-ins not listed here are type-checked only and are not
#: exposed as registry parameters.
BUILTIN_RANGES: dict[str, dict[str, tuple[float, float, float, float, str]]] = {
    "Bitcrush": {"bit_depth": (0.0, 32.0, 1.0, 24.0, "bits")},
    "BrickwallLimiter": {
        "ceiling_db": (-100.0, 24.0, -24.0, 0.0, "dB"),
        "release_ms": _MS,
        "lookahead_ms": (0.0, 100.0, 0.0, 20.0, "ms"),
    },
    "Chorus": {
        "rate_hz": (0.0, 100.0, 0.01, 10.0, "Hz"),
        "depth": _UNIT,
        "centre_delay_ms": (1.0, 100.0, 1.0, 50.0, "ms"),
        "feedback": (-1.0, 1.0, -1.0, 1.0, ""),
        "mix": _UNIT,
    },
    "Clipping": {"threshold_db": (-100.0, 24.0, -60.0, 0.0, "dB")},
    "Compressor": {
        "threshold_db": (-100.0, 24.0, -60.0, 0.0, "dB"),
        "ratio": (1.0, 1000.0, 1.0, 20.0, ":1"),
        "attack_ms": _ATTACK,
        "release_ms": _MS,
    },
    "Convolution": {"mix": _UNIT},
    "Delay": {"delay_seconds": (0.0, 30.0, 0.0, 2.0, "s"), "feedback": _UNIT, "mix": _UNIT},
    "Distortion": {"drive_db": (-60.0, 100.0, 0.0, 60.0, "dB")},
    "Gain": {"gain_db": (-200.0, 100.0, -60.0, 24.0, "dB")},
    "HighShelfFilter": {
        "cutoff_frequency_hz": _FREQ,
        "gain_db": (-100.0, 100.0, -24.0, 24.0, "dB"),
        "q": (0.01, 100.0, 0.1, 10.0, ""),
    },
    "HighpassFilter": {"cutoff_frequency_hz": _FREQ},
    "LadderFilter": {"cutoff_hz": _FREQ, "resonance": _UNIT, "drive": (1.0, 100.0, 1.0, 10.0, "")},
    "Limiter": {"threshold_db": (-100.0, 24.0, -60.0, 0.0, "dB"), "release_ms": _MS},
    "LowShelfFilter": {
        "cutoff_frequency_hz": _FREQ,
        "gain_db": (-100.0, 100.0, -24.0, 24.0, "dB"),
        "q": (0.01, 100.0, 0.1, 10.0, ""),
    },
    "LowpassFilter": {"cutoff_frequency_hz": _FREQ},
    "MP3Compressor": {"vbr_quality": (0.0, 10.0, 0.0, 10.0, "")},
    "NoiseGate": {
        "threshold_db": (-200.0, 24.0, -100.0, 0.0, "dB"),
        "ratio": (1.0, 1000.0, 1.0, 20.0, ":1"),
        "attack_ms": _ATTACK,
        "release_ms": _MS,
    },
    "PeakFilter": {
        "cutoff_frequency_hz": _FREQ,
        "gain_db": (-100.0, 100.0, -24.0, 24.0, "dB"),
        "q": (0.01, 100.0, 0.1, 10.0, ""),
    },
    "Phaser": {
        "rate_hz": (0.0, 100.0, 0.01, 10.0, "Hz"),
        "depth": _UNIT,
        "centre_frequency_hz": _FREQ,
        "feedback": (-1.0, 1.0, -1.0, 1.0, ""),
        "mix": _UNIT,
    },
    "PitchShift": {"semitones": (-72.0, 72.0, -24.0, 24.0, "st")},
    "Resample": {"target_sample_rate": (1.0, 1_000_000.0, 1000.0, 48_000.0, "Hz")},
    "Reverb": {k: _UNIT for k in ("room_size", "damping", "wet_level", "dry_level", "width", "freeze_mode")},
}


class ChainSpecError(ValueError):
    """A chain spec (or a parameter write) that cannot be honoured; the message says where and why."""


class PluginLoadError(ChainSpecError):
    """A plugin file that exists but cannot be loaded: not a plugin, the wrong kind, or a state it refuses."""


# --------------------------------------------------------------------------------------------------
# Built-in plugins, discovered from pedalboard itself


_REQUIRED = object()


@dataclass(frozen=True)
class _Arg:
    """One constructor argument of a built-in: ``kind`` is float, bool, enum, file or optional_float."""

    name: str
    kind: str
    default: Any
    enum: Any = None
    has_property: bool = True


@dataclass(frozen=True)
class _Builtin:
    name: str
    cls: type
    args: tuple[_Arg, ...]

    def arg(self, name: str) -> _Arg | None:
        return next((a for a in self.args if a.name == name), None)


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside brackets (``[]``, ``()``, ``<>``)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "[(<":
            depth += 1
        elif c in "])>":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _resolve_type(path: str) -> Any:
    obj: Any = pedalboard
    for part in path.split(".")[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _parse_arg(cls: type, text: str) -> _Arg | None:
    name, _, rest = text.partition(":")
    type_text, _, default_text = rest.partition("=")
    name, type_text, default_text = name.strip(), type_text.strip(), default_text.strip()
    enum = None
    if type_text in ("float", "int"):
        kind = "float"
    elif type_text == "bool":
        kind = "bool"
    elif type_text == "Optional[float]":
        kind = "optional_float"
    elif "str" in type_text:
        kind = "file"
    elif type_text.startswith("pedalboard_native."):
        enum = _resolve_type(type_text)
        if enum is None or not hasattr(enum, "__members__"):
            return None
        kind = "enum"
    else:
        return None
    default: Any = _REQUIRED
    if default_text:
        if kind == "enum":
            m = re.match(r"<\w+\.(\w+):", default_text)
            default = m.group(1) if m else _REQUIRED
        elif default_text in ("True", "False"):
            default = default_text == "True"
        elif default_text == "None":
            default = None
        else:
            try:
                default = float(default_text)
            except ValueError:
                default = _REQUIRED
    has_property = isinstance(getattr(cls, name, None), property)
    return _Arg(name, kind, default, enum, has_property)


def _introspect(cls: type) -> tuple[_Arg, ...] | None:
    doc = (cls.__init__.__doc__ or "").strip().splitlines()
    m = re.match(r"__init__\(self: [\w.]+(?:, (.*))?\) -> None$", doc[0]) if doc else None
    if not m:
        return None
    args = []
    for text in _split_top(m.group(1) or ""):
        arg = _parse_arg(cls, text)
        if arg is None:
            return None  # an argument we cannot represent in JSON: leave the plugin out
        args.append(arg)
    return tuple(args)


@functools.cache
def _builtins() -> dict[str, _Builtin]:
    found = {}
    for name in dir(pedalboard):
        cls = getattr(pedalboard, name)
        if name.startswith("_") or name in _NOT_BUILTIN or not isinstance(cls, type):
            continue
        if not issubclass(cls, pedalboard.Plugin) or issubclass(cls, pedalboard.PluginContainer):
            continue
        if issubclass(cls, getattr(pedalboard, "ExternalPlugin", ())):
            continue
        args = _introspect(cls)
        if args is not None:
            found[name] = _Builtin(name, cls, args)
    return dict(sorted(found.items()))


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@functools.cache
def _builtin_keys() -> dict[str, str]:
    return {_key(n): n for n in _builtins()}


def available_plugins() -> list[str]:
    """Canonical names of the built-in plugins a spec may name (pedalboard's effect classes)."""
    return list(_builtins())


def _canonical(name: str, where: str) -> str:
    """A built-in's canonical name, or ``vst3``/``au``; a ChainSpecError listing the choices otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ChainSpecError(f"{where}: 'plugin' must be a plugin name, got {name!r}")
    if name.strip().lower() in EXTERNAL_KINDS:
        return name.strip().lower()
    keys = _builtin_keys()
    k = _key(name)
    found = keys.get(k) or keys.get(k + "filter")
    if found is None:
        raise ChainSpecError(
            f"{where}: unknown plugin {name!r}; built-in plugins: {', '.join(available_plugins())} "
            f"(or {' / '.join(EXTERNAL_KINDS)} with a 'path')"
        )
    return found


def plugin_parameters(name: str) -> list[str]:
    """Constructor parameters of a built-in plugin (any accepted spelling of its name)."""
    kind = _canonical(name, "plugin")
    if kind in EXTERNAL_KINDS:
        raise ValueError("an external plugin's parameters are known once it is loaded (plugin.parameters)")
    return [a.name for a in _builtins()[kind].args]


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that raised (or produced non-finite samples) and is bypassed from then on.

    ``block`` counts the processor's blocks before the failure (0 for a plugin that failed to load).
    """

    index: int
    plugin: str
    message: str
    block: int
