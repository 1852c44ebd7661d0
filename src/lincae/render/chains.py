"""Pedalboard effect chains: JSON specs, building, streaming processing and named parameters.

A *chain spec* is a JSON-able list of plugin entries, applied in order::

    [
        {"plugin": "Compressor", "params": {"threshold_db": -18.0, "ratio": 2.0}},
        {"plugin": "Reverb", "params": {"room_size": 0.5}, "bypass": true},
        {"plugin": "vst3", "path": "/usr/lib/vst3/Foo.vst3", "params": {"mix": 0.5}, "state": "<base64>"},
    ]

Built-in plugins are named by their pedalboard class name, matched case-insensitively and ignoring
``_``/``-`` (``high_shelf_filter`` is ``HighShelfFilter``; a trailing ``Filter`` may be left out:
``highpass``); the canonical name is stored. ``params`` are constructor arguments; numbers are
checked against the plugin's valid range (``BUILTIN_RANGES``), enum arguments (``LadderFilter.mode``,
``Resample.quality``) are given by member name (``"LPF24"``). External plugins are ``"vst3"`` or
``"au"`` (macOS) entries with a ``path`` (and ``name`` to pick one plugin of a multi-plugin bundle),
loaded with :func:`pedalboard.load_plugin`; ``state`` (base64 of ``raw_state``) is restored first,
then ``params`` are set by their pedalboard (Python) names. ``"bypass": true`` keeps a plugin in the
chain without running it. Paths are used as given (relative paths resolve against the working
directory).

:func:`build_chain` turns a spec into an :class:`EffectChain` (a :class:`pedalboard.Pedalboard` that
remembers bypass flags and how external plugins were loaded); :func:`chain_to_spec` reads a board back
(every constructor argument of a built-in, at its current value). ``build_chain(spec,
on_load_error="bypass")`` (for live use) keeps going when a plugin *file* fails to load: the slot holds
a bypassed :class:`UnloadedPlugin` carrying the error, reported by :func:`load_failures` and
:class:`ChainProcessor` like a plugin that fails while running; the default ``"raise"`` fails
loudly. Spec mistakes (an unknown plugin name or parameter) raise either way.
:class:`ChainProcessor` runs a board block by block for streaming (``reset=False``, so reverb tails
continue across blocks), bypasses any plugin that fails, and ramps parameter changes
(:meth:`ChainProcessor.process_ramped`). :func:`chain_parameter_specs` and :func:`apply_parameter`
expose the plugins' numeric parameters to the :class:`~lincae.engine.params.ParameterRegistry` (MIDI,
presets, GUI) under names like ``post.0.reverb.room_size``; ``post.0.bypass`` switches a slot.

Latency. Pedalboard compensates plugin latency when a whole buffer is processed with ``reset=True``,
but when streaming, a plugin that buffers internally (``BrickwallLimiter``'s lookahead, ``Resample``,
``MP3Compressor``, ``GSMFullRateCompressor``, ``PitchShift`` — about a second) returns fewer samples
than it was given until its buffer fills. :class:`ChainProcessor` pads those blocks with leading
silence, so its output is the chain's output delayed by :attr:`ChainProcessor.latency` samples, with
every block as long as its input. :func:`chain_latency` predicts that delay.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pedalboard

from lincae.engine.params import ParameterSpec

__all__ = [
    "BUILTIN_RANGES",
    "DEFAULT_BUFFER_SIZE",
    "EXTERNAL_KINDS",
    "RAMP_BLOCK",
    "UNSMOOTHED",
    "ChainProcessor",
    "ChainSpecError",
    "EffectChain",
    "PluginFailure",
    "PluginLoadError",
    "UnloadedPlugin",
    "apply_parameter",
    "available_plugins",
    "build_chain",
    "chain_latency",
    "chain_parameter_specs",
    "chain_to_spec",
    "is_bypassed",
    "load_chain_file",
    "load_failures",
    "parse_chain_arg",
    "plugin_parameters",
    "set_bypass",
    "validate_chain_spec",
]

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


# --------------------------------------------------------------------------------------------------
# Validation


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: float) -> str:
    return f"{v:g}"


def _check_builtin_value(b: _Builtin, arg: _Arg, value: Any, where: str) -> Any:
    label = f"{where}: {b.name}.{arg.name} = {value!r}"
    if arg.kind == "float" or (arg.kind == "optional_float" and value is not None):
        if not _is_number(value):
            raise ChainSpecError(f"{label}: expected a number")
        v = float(value)
        if not math.isfinite(v):
            raise ChainSpecError(f"{label}: must be finite")
        rng = BUILTIN_RANGES.get(b.name, {}).get(arg.name)
        if rng and not rng[0] <= v <= rng[1]:
            raise ChainSpecError(f"{label}: outside the valid range [{_fmt(rng[0])}, {_fmt(rng[1])}] {rng[4]}".rstrip())
        return v
    if arg.kind == "optional_float":
        return None
    if arg.kind == "bool":
        if isinstance(value, bool) or (_is_number(value) and value in (0, 1)):
            return bool(value)
        raise ChainSpecError(f"{label}: expected true or false")
    if arg.kind == "enum":
        members = list(arg.enum.__members__)
        if isinstance(value, str):
            for m in members:
                if m.lower() == value.lower():
                    return m
        raise ChainSpecError(f"{label}: expected one of {', '.join(members)}")
    if arg.kind == "file":
        if not isinstance(value, str) or not value:
            raise ChainSpecError(f"{label}: expected a file path")
        return value
    raise ChainSpecError(f"{label}: unsupported parameter kind {arg.kind}")  # pragma: no cover


def _check_mapping(value: Any, what: str, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ChainSpecError(f"{where}: {what} must be an object with string keys, got {value!r}")
    return dict(value)


def _validate_entry(entry: Any, where: str) -> dict:
    if not isinstance(entry, Mapping):
        raise ChainSpecError(f"{where}: a chain entry must be an object like {{'plugin': 'Reverb'}}, got {entry!r}")
    if "plugin" not in entry:
        raise ChainSpecError(f"{where}: missing 'plugin'")
    kind = _canonical(entry["plugin"], where)
    allowed = _EXTERNAL_KEYS if kind in EXTERNAL_KINDS else _BUILTIN_KEYS
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ChainSpecError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} for {kind}; allowed: {', '.join(sorted(allowed))}"
        )
    bypass = entry.get("bypass", False)
    if not isinstance(bypass, bool):
        raise ChainSpecError(f"{where}: bypass must be true or false, got {bypass!r}")
    params = _check_mapping(entry.get("params"), "params", where)
    out: dict[str, Any] = {"plugin": kind}
    if kind in EXTERNAL_KINDS:
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise ChainSpecError(f"{where}: a {kind} entry needs a 'path' to the plugin file, got {path!r}")
        out["path"] = path
        if entry.get("name") is not None:
            if not isinstance(entry["name"], str):
                raise ChainSpecError(f"{where}: name must be a string, got {entry['name']!r}")
            out["name"] = entry["name"]
        for k, v in params.items():
            if not (_is_number(v) or isinstance(v, (str, bool))):
                raise ChainSpecError(
                    f"{where}: {kind}:{Path(path).name}.{k} = {v!r}: expected a number, string or bool"
                )
            if _is_number(v) and not math.isfinite(v):
                raise ChainSpecError(f"{where}: {kind}:{Path(path).name}.{k} = {v!r}: must be finite")
        out["params"] = params
        if entry.get("state") is not None:
            state = entry["state"]
            try:
                if not isinstance(state, str):
                    raise TypeError
                base64.b64decode(state, validate=True)
            except (TypeError, binascii.Error):
                raise ChainSpecError(f"{where}: state must be a base64 string of the plugin's raw_state") from None
            out["state"] = state
    else:
        b = _builtins()[kind]
        checked = {}
        for k, v in params.items():
            arg = b.arg(k)
            if arg is None:
                names = ", ".join(a.name for a in b.args) or "(none)"
                raise ChainSpecError(f"{where}: {kind} has no parameter {k!r}; its parameters: {names}")
            checked[k] = _check_builtin_value(b, arg, v, where)
        missing = [a.name for a in b.args if a.default is _REQUIRED and a.name not in checked]
        if missing:
            raise ChainSpecError(f"{where}: {kind} needs {', '.join(missing)}")
        out["params"] = checked
    if bypass:
        out["bypass"] = True
    return out


def validate_chain_spec(spec: Any, where: str = "chain") -> list[dict]:
    """Check a chain spec without loading external plugins; returns it normalised.

    Normalised entries name built-ins canonically, hold ``params`` (floats for numbers, member names for
    enums) and carry ``"bypass": true`` only when set. Errors are :class:`ChainSpecError` (a
    ``ValueError``) starting with ``where[index]``.
    """
    if isinstance(spec, Mapping) and "chain" in spec:
        spec = spec["chain"]
    if not isinstance(spec, (list, tuple)):
        raise ChainSpecError(f"{where}: a chain is a list of plugin entries, got {type(spec).__name__}")
    return [_validate_entry(e, f"{where}[{i}]") for i, e in enumerate(spec)]


# --------------------------------------------------------------------------------------------------
# Building and reading back


@dataclass
class _SlotInfo:
    """How a plugin of an :class:`EffectChain` was specified.

    ``plugin`` is a strong reference: pybind11 hands back the same Python object (and ``id``) for a
    plugin only while one is alive, and slots are looked up by ``id``.
    """

    plugin: Any
    kind: str
    bypass: bool = False
    path: str | None = None
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    load_error: str | None = None  # why the plugin could not be loaded (the slot holds an UnloadedPlugin)
    entry: dict[str, Any] | None = None  # the validated spec entry of an unloaded slot, written back as is


class EffectChain(pedalboard.Pedalboard):
    """A :class:`pedalboard.Pedalboard` that remembers bypass flags and external plugins' origins.

    ``process``/``__call__`` skip bypassed plugins. Plugins added with ``append``/``insert`` behave as
    in a plain board (not bypassed; external ones cannot be written back to a spec).
    """

    def __init__(self, plugins: Iterable[Any] | None = None) -> None:
        super().__init__(list(plugins or []))
        self._lincae_slots: dict[int, _SlotInfo] = {}

    def process(  # type: ignore[override]
        self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True
    ) -> np.ndarray:
        plugins = list(self)
        active = [p for p in plugins if not _bypassed(self, p)]
        if len(active) == len(plugins):
            return super().process(input_array, sample_rate, buffer_size=buffer_size, reset=reset)
        return pedalboard.Pedalboard(active).process(input_array, sample_rate, buffer_size=buffer_size, reset=reset)

    __call__ = process  # type: ignore[assignment]


def _slot_info(board: Any, plugin: Any) -> _SlotInfo | None:
    slots = getattr(board, "_lincae_slots", None)
    info = slots.get(id(plugin)) if slots else None
    return info if info is not None and info.plugin is plugin else None


def _bypassed(board: Any, plugin: Any) -> bool:
    info = _slot_info(board, plugin)
    return bool(info and (info.bypass or info.load_error))


def is_bypassed(board: Any, index: int) -> bool:
    """Whether slot ``index`` of ``board`` is bypassed (always false on a plain Pedalboard).

    A slot whose plugin failed to load is always bypassed, whatever its bypass flag says.
    """
    return _bypassed(board, list(board)[index])


def set_bypass(board: EffectChain, index: int, bypass: bool = True) -> None:
    """Bypass (or re-enable) slot ``index``; takes effect at the next block of a :class:`ChainProcessor`."""
    plugins = list(board)
    if not -len(plugins) <= index < len(plugins):
        raise IndexError(f"chain has {len(plugins)} plugin(s), no slot {index}")
    plugin = plugins[index]
    info = _slot_info(board, plugin)
    if info is None:
        if not isinstance(board, EffectChain):
            raise TypeError("bypass needs an EffectChain (build the board with build_chain)")
        info = board._lincae_slots[id(plugin)] = _SlotInfo(plugin, _kind_of(plugin))
    info.bypass = bool(bypass)


def _kind_of(plugin: Any) -> str:
    name = type(plugin).__name__
    if name in _builtins() and type(plugin) is _builtins()[name].cls:
        return name
    if isinstance(plugin, getattr(pedalboard, "AudioUnitPlugin", ())):
        return "au"
    if isinstance(plugin, getattr(pedalboard, "VST3Plugin", ())) or isinstance(
        getattr(plugin, "parameters", None), Mapping
    ):
        return "vst3"  # anything else exposing named parameters is handled like a VST3
    return name


def _make_builtin(kind: str, params: Mapping[str, Any], where: str) -> Any:
    b = _builtins()[kind]
    ctor: dict[str, Any] = {}
    later: list[tuple[_Arg, Any]] = []
    for arg in b.args:
        if arg.name not in params:
            continue
        value = params[arg.name]
        if arg.kind == "enum":
            value = arg.enum.__members__[value]
        if arg.kind == "file":
            if not Path(value).is_file():
                raise FileNotFoundError(f"{where}: {kind}.{arg.name}: file not found: {value}")
            ctor[arg.name] = value
        elif arg.has_property:
            later.append((arg, value))
        else:
            ctor[arg.name] = value
    try:
        plugin = b.cls(**ctor)
    except Exception as e:
        args = ", ".join(f"{k}={v!r}" for k, v in ctor.items())
        raise ChainSpecError(f"{where}: {kind}({args}) rejected: {e}") from e
    for arg, value in later:
        try:
            setattr(plugin, arg.name, value)
        except Exception as e:
            raise ChainSpecError(f"{where}: {kind}.{arg.name} = {params[arg.name]!r} rejected: {e}") from e
    return plugin


def _configure_external(plugin: Any, entry: Mapping[str, Any], where: str) -> None:
    """Restore ``state`` (base64 ``raw_state``), then set ``params`` by name, on a loaded plugin."""
    label = f"{entry['plugin']}:{Path(entry['path']).name}"
    if entry.get("state"):
        try:
            plugin.raw_state = base64.b64decode(entry["state"], validate=True)
        except Exception as e:
            raise PluginLoadError(f"{where}: {label}: could not restore its state: {e}") from e
    known = plugin.parameters
    for name, value in (entry.get("params") or {}).items():
        if name not in known:
            raise ChainSpecError(
                f"{where}: {label} has no parameter {name!r}; its parameters: {', '.join(sorted(known)) or '(none)'}"
            )
        try:
            setattr(plugin, name, value)
        except Exception as e:
            raise ChainSpecError(f"{where}: {label}.{name} = {value!r} rejected: {e}") from e


def _load_external(entry: Mapping[str, Any], where: str) -> Any:
    kind, path = entry["plugin"], entry["path"]
    if not Path(path).exists():
        raise FileNotFoundError(f"{where}: {kind} plugin not found: {path}")
    if kind == "au" and not hasattr(pedalboard, "AudioUnitPlugin"):
        raise PluginLoadError(f"{where}: Audio Unit plugins need macOS; cannot load {path}")
    try:
        plugin = pedalboard.load_plugin(path, plugin_name=entry.get("name"))
    except Exception as e:
        raise PluginLoadError(f"{where}: could not load {kind} plugin {path}: {e}") from e
    if _kind_of(plugin) != kind:
        raise PluginLoadError(f"{where}: {path} is a {_kind_of(plugin)} plugin, not {kind}")
    wanted, found = entry.get("name"), getattr(plugin, "name", None)
    if wanted and found and wanted != found:  # a one-plugin bundle ignores plugin_name
        raise PluginLoadError(f"{where}: {path} holds the plugin {found!r}, not {wanted!r}")
    _configure_external(plugin, entry, where)
    return plugin


class UnloadedPlugin(pedalboard.Pedalboard):
    """Stands in for a plugin that failed to load (``build_chain(..., on_load_error="bypass")``).

    An empty board (it would pass audio through unchanged); its slot is always bypassed, reports
    :attr:`error` through :func:`load_failures` and :class:`ChainProcessor.errors`, and is written back
    by :func:`chain_to_spec` as the original :attr:`entry`, so saving a preset does not lose the plugin.
    """

    def __init__(self, kind: str, entry: Mapping[str, Any], error: str) -> None:
        super().__init__([])
        self.kind, self.entry, self.error = kind, dict(entry), error

    @property
    def name(self) -> str:
        """The plugin's file name (external plugins) or kind (built-ins)."""
        path = self.entry.get("path")
        return Path(path).name if path else self.kind

    def __repr__(self) -> str:
        return f"<UnloadedPlugin {self.kind}:{self.name}: {self.error}>"


ON_LOAD_ERROR = ("raise", "bypass")


def build_chain(spec: Any, where: str = "chain", *, on_load_error: str = "raise") -> EffectChain:
    """Validate ``spec`` and build its plugins (loading external ones) into an :class:`EffectChain`.

    Args:
        spec: a chain spec (see the module docstring).
        where: prefix of error messages (``chain[2]: ...``).
        on_load_error: what to do when a plugin *file* cannot be loaded — an external plugin whose file
            is missing, is not a plugin or is of the wrong kind, whose ``state`` it refuses, or a
            ``Convolution`` whose impulse response is missing. ``"raise"`` (the default, for renders
            that must fail loudly): raise. ``"bypass"`` (for live use, where the audio must keep
            flowing): put an :class:`UnloadedPlugin` in the slot, permanently bypassed and carrying the
            error, which :func:`load_failures` and :class:`ChainProcessor` (so the engine's
            ``metrics.plugin_errors``) report. Mistakes in the spec itself — an unknown plugin name or
            parameter, a bad value — raise in both modes.

    Raises:
        ChainSpecError: unknown plugin or parameter, bad value (naming plugin, parameter and value), or
            a plugin that refused its settings; :class:`PluginLoadError` (a ChainSpecError) for a file
            that is not a loadable plugin, unless bypassed.
        FileNotFoundError: an external plugin file or a ``Convolution`` impulse response is missing
            (unless bypassed).
    """
    if on_load_error not in ON_LOAD_ERROR:
        raise ValueError(f"on_load_error must be one of {', '.join(ON_LOAD_ERROR)}, got {on_load_error!r}")
    entries = validate_chain_spec(spec, where)
    board = EffectChain()
    for i, entry in enumerate(entries):
        w = f"{where}[{i}]"
        kind = entry["plugin"]
        try:
            if kind in EXTERNAL_KINDS:
                plugin = _load_external(entry, w)
                info = _SlotInfo(plugin, kind, path=entry["path"], name=entry.get("name"), params=dict(entry["params"]))
            else:
                plugin = _make_builtin(kind, entry["params"], w)
                info = _SlotInfo(plugin, kind, params=dict(entry["params"]))
        except (FileNotFoundError, PluginLoadError) as e:
            if on_load_error == "raise":
                raise
            plugin = UnloadedPlugin(kind, entry, str(e))
            info = _SlotInfo(
                plugin, kind, path=entry.get("path"), name=entry.get("name"), load_error=str(e), entry=dict(entry)
            )
        info.bypass = bool(entry.get("bypass", False))
        board.append(plugin)
        board._lincae_slots[id(plugin)] = info
    return board


def load_failures(board: Sequence[Any]) -> list[PluginFailure]:
    """The slots of ``board`` whose plugin failed to load (built with ``on_load_error="bypass"``).

    Each is a :class:`PluginFailure` with ``block`` 0 and a message starting ``failed to load``.
    """
    out = []
    for i, plugin in enumerate(board):
        info = _slot_info(board, plugin)
        if info is not None and info.load_error:
            label = f"{info.kind}:{plugin.name}" if info.kind in EXTERNAL_KINDS else info.kind
            out.append(PluginFailure(i, label, f"failed to load, bypassed: {info.load_error}", 0))
    return out


def _clean(v: Any) -> Any:
    """A plain JSON value; floats are float32 inside plugins: 7 significant digits read 0.3 back as 0.3."""
    if isinstance(v, bool):
        return v
    if isinstance(v, float):
        return float(f"{float(v):.7g}")
    if isinstance(v, int):
        return int(v)
    if isinstance(v, str):
        return str(v)
    if any(t.__name__ == "WrappedBool" for t in type(v).__mro__):  # an external plugin's switch, as read back
        return bool(v)  # (pedalboard 0.9 wraps WrappedBool once more, in a class named WeakTypeWrapper)
    return v


def _read_builtin(plugin: Any, kind: str, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for arg in _builtins()[kind].args:
        if arg.has_property:
            value = getattr(plugin, arg.name)
            if arg.kind == "enum":
                value = value.name
            elif arg.kind == "file" and not isinstance(value, str):
                raise ChainSpecError(f"{where}: {kind}.{arg.name} is not a file (built from an array); cannot save it")
            elif arg.kind == "float":
                value = float(value)
            params[arg.name] = _clean(value)
        elif arg.name in given:
            params[arg.name] = given[arg.name]
    return params


def chain_to_spec(board: Sequence[Any], where: str = "chain") -> list[dict]:
    """Read a board back into a spec: every constructor argument of a built-in at its current value.

    External plugins need the board to come from :func:`build_chain` (their file path is not
    recoverable from the plugin); they are written with their ``path``, the ``params`` the spec set
    (read back at their current values) and ``state`` (base64 of ``raw_state``, which holds the rest).
    A VST3's processor takes parameter changes with audio: a value set after the last processed block
    reaches its ``raw_state`` only with the next block (``params`` are always current).
    """
    out = []
    for i, plugin in enumerate(board):
        w = f"{where}[{i}]"
        info = _slot_info(board, plugin)
        kind = info.kind if info else _kind_of(plugin)
        entry: dict[str, Any]
        if info is not None and info.entry is not None:  # failed to load: the spec as it was given
            entry = {k: v for k, v in info.entry.items() if k != "bypass"}
        elif kind in EXTERNAL_KINDS:
            if info is None or info.path is None:
                raise ChainSpecError(
                    f"{w}: external plugin {plugin!r} has no known file path; build it with build_chain"
                )
            entry = {"plugin": kind, "path": info.path}
            if info.name:
                entry["name"] = info.name
            entry["params"] = {k: _clean(getattr(plugin, k)) for k in info.params}
            entry["state"] = base64.b64encode(bytes(plugin.raw_state)).decode("ascii")
        elif kind in _builtins():
            entry = {"plugin": kind, "params": _read_builtin(plugin, kind, info.params if info else {}, w)}
        else:
            raise ChainSpecError(f"{w}: {kind} cannot be written to a chain spec (containers are not supported)")
        if info and info.bypass:
            entry["bypass"] = True
        out.append(entry)
    return out


# --------------------------------------------------------------------------------------------------
# Command-line form and chain files


def _parse_scalar(token: str) -> Any:
    low = token.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        v = float(token)
    except ValueError:
        return token
    return int(v) if re.fullmatch(r"[+-]?\d+", token) else v


class _CliParser:
    """``name(key=value, ...), name, ...`` with quoted values ('...' or "...") for commas and parens."""

    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def error(self, msg: str) -> ChainSpecError:
        return ChainSpecError(f"chain {self.text!r}: {msg} at position {self.i}")

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.i] if self.i < len(self.text) else ""

    def word(self, stops: str) -> tuple[str, bool]:
        """A bare or quoted token; returns ``(text, quoted)``."""
        self.skip()
        if self.i < len(self.text) and self.text[self.i] in "'\"":
            q = self.text[self.i]
            end = self.text.find(q, self.i + 1)
            if end < 0:
                raise self.error(f"unterminated {q}")
            s, self.i = self.text[self.i + 1 : end], end + 1
            return s, True
        start = self.i
        while self.i < len(self.text) and self.text[self.i] not in stops:
            self.i += 1
        return self.text[start : self.i].strip(), False

    def entries(self) -> list[dict]:
        out = []
        while True:
            name, _ = self.word("(,")
            if not name:
                raise self.error("expected a plugin name")
            entry: dict[str, Any] = {"plugin": name}
            if self.peek() == "(":
                self.i += 1
                self.arguments(entry)
            out.append(entry)
            c = self.peek()
            if c == "":
                return out
            if c != ",":
                raise self.error(f"expected ',' between plugins, got {c!r}")
            self.i += 1

    def arguments(self, entry: dict[str, Any]) -> None:
        external = str(entry["plugin"]).lower() in EXTERNAL_KINDS
        params: dict[str, Any] = {}
        first = True
        while True:
            if self.peek() == ")":
                self.i += 1
                break
            key, quoted = self.word("=,)")
            if self.peek() == "=":
                if quoted or not key:
                    raise self.error("expected a parameter name before '='")
                self.i += 1
                raw, raw_quoted = self.word(",)")
                value = raw if raw_quoted else _parse_scalar(raw)
            elif first and external and key:
                key, value = "path", key  # vst3(/path/to/Plugin.vst3, mix=0.5)
            else:
                raise self.error(f"expected key=value, got {key!r}")
            if key == "bypass" or (external and key in ("path", "name", "state")):
                entry[key] = value
            else:
                params[key] = value
            first = False
            c = self.peek()
            if c == ",":
                self.i += 1
            elif c != ")":
                raise self.error("expected ',' or ')'")
        entry["params"] = params


def load_chain_file(path: str | os.PathLike[str]) -> list[dict]:
    """A chain from a JSON file: a list of entries, or ``{"chain": [...], "name": ..., "description": ...}``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"chain file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ChainSpecError(f"{p}: not valid JSON: {e}") from None
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - _CHAIN_FILE_KEYS)
        if unknown:
            raise ChainSpecError(
                f"{p}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_CHAIN_FILE_KEYS))}"
            )
        if data.get("format", CHAIN_FILE_FORMAT) != CHAIN_FILE_FORMAT:
            raise ChainSpecError(f"{p}: format must be {CHAIN_FILE_FORMAT!r}, got {data['format']!r}")
        if "chain" not in data:
            raise ChainSpecError(f"{p}: missing 'chain'")
        data = data["chain"]
    return validate_chain_spec(data, str(p))


def parse_chain_arg(text: str) -> list[dict]:
    """A chain from the command line: ``"reverb(room_size=0.3),gain(gain_db=-3)"`` or a JSON file path.

    Values are numbers, ``true``/``false``, or strings (quote them to include ``,`` or ``)``); ``bypass``
    is an entry flag; for ``vst3``/``au``, ``path``, ``name`` and ``state`` are entry keys and a first bare
    argument is the path. An empty string is an empty chain. Returns the validated, normalised spec.
    """
    text = text.strip()
    if not text:
        return []
    if text.lower().endswith(".json") or Path(text).is_file():
        return load_chain_file(text)
    return validate_chain_spec(_CliParser(text).entries(), "chain")


# --------------------------------------------------------------------------------------------------
# Named parameters


_PARAM_RE = re.compile(r"(?:^|\.)(\d+)\.([a-z][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
_BYPASS_RE = re.compile(r"(?:^|\.)(\d+)\.bypass$")


def _slug(plugin: Any, board: Any) -> str:
    info = _slot_info(board, plugin)
    kind = info.kind if info else _kind_of(plugin)
    if kind in EXTERNAL_KINDS:
        s = re.sub(r"[^a-z0-9]+", "_", str(getattr(plugin, "name", kind)).lower()).strip("_")
        return s if s[:1].isalpha() else f"p_{s}"
    return kind.lower()


_CONTINUOUS_STEPS = 0x7FFFFFFF  # JUCE's AudioProcessor::getDefaultNumParameterSteps(): not stepped


def _is_discrete(param: Any) -> bool:
    """Whether an external plugin's parameter moves in steps (a choice or switch) rather than continuously.

    JUCE's rule: a parameter is discrete unless it reports the default step count. Pedalboard's
    ``is_discrete`` also says true for continuous VST3 parameters (a plain float ``Gain`` of the test
    plugin, with pedalboard 0.9), so the step count decides where the parameter has one.
    """
    steps = getattr(param, "num_steps", None)
    if isinstance(steps, int) and not isinstance(steps, bool):
        return steps != _CONTINUOUS_STEPS
    return bool(getattr(param, "is_discrete", False))


def chain_parameter_specs(board: Sequence[Any], prefix: str) -> list[ParameterSpec]:
    """Registry parameters for a chain's slots: ``{prefix}.{i}.bypass`` and ``{prefix}.{i}.{plugin}.{param}``.

    Built-ins expose the numeric parameters of ``BUILTIN_RANGES`` over their control range (widened to
    include the current value) and their switches as toggles; external plugins expose float parameters
    over the range pedalboard detected and boolean ones as toggles (text-valued ones are left out).
    Defaults are the current values, so a registry built from these starts where the board is.
    Continuous parameters are ``smoothed`` (the engine ramps them, see
    :meth:`ChainProcessor.process_ramped`); toggles, discrete external parameters and the built-ins of
    :data:`UNSMOOTHED` are not (they switch at a block boundary).
    """
    if not prefix or any(c.isspace() for c in prefix):
        raise ValueError(f"prefix {prefix!r} must be non-empty without spaces")
    specs = []
    for i, plugin in enumerate(board):
        info = _slot_info(board, plugin)
        kind = info.kind if info else _kind_of(plugin)
        slug = _slug(plugin, board)
        base = f"{prefix}.{i}"
        label = f"{prefix} slot {i} ({kind if kind not in EXTERNAL_KINDS else getattr(plugin, 'name', kind)})"
        if isinstance(board, EffectChain):
            specs.append(
                ParameterSpec(
                    f"{base}.bypass",
                    0.0,
                    1.0,
                    1.0 if info and info.bypass else 0.0,
                    toggle=True,
                    description=f"Bypass {label}",
                    smoothed=False,
                )
            )
        if info is not None and info.load_error:
            continue  # not loaded: its parameters are unknown
        if kind in _builtins():
            ranges = BUILTIN_RANGES.get(kind, {})
            for arg in _builtins()[kind].args:
                name = f"{base}.{slug}.{arg.name}"
                if arg.kind == "bool" and arg.has_property:
                    cur = 1.0 if getattr(plugin, arg.name) else 0.0
                    specs.append(
                        ParameterSpec(
                            name, 0.0, 1.0, cur, toggle=True, description=f"{label} {arg.name}", smoothed=False
                        )
                    )
                elif arg.kind == "float" and arg.has_property and arg.name in ranges:
                    lo_valid, hi_valid, lo, hi, unit = ranges[arg.name]
                    cur = min(hi_valid, max(lo_valid, _clean(float(getattr(plugin, arg.name)))))
                    specs.append(
                        ParameterSpec(
                            name,
                            min(lo, cur),
                            max(hi, cur),
                            cur,
                            unit,
                            description=f"{label} {arg.name}",
                            smoothed=arg.name not in UNSMOOTHED.get(kind, ()),
                        )
                    )
        elif kind in EXTERNAL_KINDS:
            for pname, param in plugin.parameters.items():
                name = f"{base}.{slug}.{pname}"
                ptype = getattr(param, "type", None)
                if ptype is bool:
                    cur = 1.0 if getattr(plugin, pname) else 0.0
                    specs.append(
                        ParameterSpec(name, 0.0, 1.0, cur, toggle=True, description=f"{label} {pname}", smoothed=False)
                    )
                elif ptype is float:
                    lo, hi = param.min_value, param.max_value
                    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                        continue
                    cur = min(hi, max(lo, float(getattr(plugin, pname))))
                    unit = param.label or ""
                    specs.append(
                        ParameterSpec(
                            name,
                            float(lo),
                            float(hi),
                            cur,
                            unit.replace(" ", ""),
                            description=f"{label} {pname}",
                            smoothed=not _is_discrete(param),  # choices switch, never ramp
                        )
                    )
    return specs


def apply_parameter(board: Sequence[Any], name: str, value: float) -> float:
    """Set the plugin parameter ``name`` (as from :func:`chain_parameter_specs`, any prefix) to ``value``.

    ``name`` ends in ``{slot}.{plugin}.{param}`` or ``{slot}.bypass``; the plugin part must match the slot
    (a stale mapping fails instead of driving the wrong plugin). Returns the value applied. Raises
    :class:`ChainSpecError` naming the parameter and value when it is unknown or out of range. A slot
    whose plugin failed to load (an :class:`UnloadedPlugin`) accepts and ignores its parameters.
    """
    plugins = list(board)
    m = _PARAM_RE.search(name)
    bypass = None if m else _BYPASS_RE.search(name)
    if not m and not bypass:
        raise ChainSpecError(
            f"{name}: not a chain parameter name (expected PREFIX.SLOT.PLUGIN.PARAM or PREFIX.SLOT.bypass)"
        )
    index = int((m or bypass).group(1))  # type: ignore[union-attr]
    if index >= len(plugins):
        raise ChainSpecError(f"{name}: the chain has {len(plugins)} plugin(s), no slot {index}")
    plugin = plugins[index]
    if not _is_number(value) and not isinstance(value, bool):
        raise ChainSpecError(f"{name} = {value!r}: expected a number")
    v = float(value)
    if not math.isfinite(v):
        raise ChainSpecError(f"{name} = {value!r}: must be finite")
    if bypass:
        set_bypass(board, index, v >= 0.5)  # type: ignore[arg-type]
        return 1.0 if v >= 0.5 else 0.0
    assert m is not None
    info = _slot_info(board, plugin)
    if info is not None and info.load_error:
        return v  # the plugin did not load: a preset's values for it are accepted and ignored
    slug, pname = m.group(2), m.group(3)
    actual = _slug(plugin, board)
    if slug != actual:
        raise ChainSpecError(f"{name}: slot {index} holds {actual}, not {slug}")
    kind = info.kind if info else _kind_of(plugin)
    if kind in _builtins():
        b = _builtins()[kind]
        arg = b.arg(pname)
        if arg is None or not arg.has_property or arg.kind not in ("float", "bool"):
            settable = [a.name for a in b.args if a.has_property and a.kind in ("float", "bool")]
            raise ChainSpecError(f"{name}: {kind} has no numeric parameter {pname!r}; numeric: {', '.join(settable)}")
        checked = _check_builtin_value(b, arg, bool(v >= 0.5) if arg.kind == "bool" else v, name)
        setattr(plugin, pname, checked)
        return float(checked)
    known = plugin.parameters
    if pname not in known:
        raise ChainSpecError(f"{name}: {actual} has no parameter {pname!r}; its parameters: {', '.join(sorted(known))}")
    new: Any = v >= 0.5 if getattr(known[pname], "type", None) is bool else v
    try:
        setattr(plugin, pname, new)
    except Exception as e:
        raise ChainSpecError(f"{name} = {value!r} rejected: {e}") from e
    return float(new)


# --------------------------------------------------------------------------------------------------
# Latency and streaming


def _probe_latency(plugin: Any, kind: str, sample_rate: float, channels: int, buffer_size: int) -> int:
    """Samples a fresh copy of a built-in holds back when streamed (see :class:`ChainProcessor`)."""
    try:
        fresh = _make_builtin(kind, _read_builtin(plugin, kind, {}, "probe"), "probe")
    except (ChainSpecError, FileNotFoundError):
        return 0
    rng = np.random.default_rng(0)
    deficit = 0
    limit = int(4 * sample_rate)  # PitchShift (Rubber Band) holds back about a second
    fed = 0
    block = np.zeros((channels, buffer_size), np.float32)
    while fed < limit:
        y = fresh.process(block, sample_rate, buffer_size=buffer_size, reset=False)
        got = _as_channels_first(y, channels).shape[1]
        deficit += buffer_size - got
        fed += buffer_size
        if got == buffer_size:
            break
        block = (1e-3 * rng.standard_normal((channels, buffer_size))).astype(np.float32)
    return deficit


def chain_latency(
    board: Sequence[Any],
    sample_rate: float | None = None,
    *,
    channels: int = 2,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
) -> int:
    """Samples by which a :class:`ChainProcessor` running ``board`` delays audio (bypassed slots excluded).

    External plugins count their ``reported_latency_samples`` (what the plugin declares; pedalboard
    notes that some plugins under-report). Pedalboard's built-ins declare nothing, so they count 0
    unless ``sample_rate`` is given: then each built-in is measured by streaming silence and noise
    through a fresh copy (``channels`` × ``buffer_size`` blocks, as :class:`ChainProcessor` does). Only
    the buffering ones (``BrickwallLimiter``: its lookahead; ``Resample``, ``MP3Compressor``,
    ``GSMFullRateCompressor``, ``PitchShift``) give non-zero values; some depend on ``buffer_size``.
    """
    total = 0
    for plugin in board:
        if _bypassed(board, plugin):
            continue
        info = _slot_info(board, plugin)
        kind = info.kind if info else _kind_of(plugin)
        if kind in _builtins():
            if sample_rate is not None:
                total += _probe_latency(plugin, kind, float(sample_rate), channels, buffer_size)
        else:
            total += int(getattr(plugin, "reported_latency_samples", 0) or 0)
    return total


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that raised (or produced non-finite samples) and is bypassed from then on.

    ``block`` counts the processor's blocks before the failure (0 for a plugin that failed to load).
    """

    index: int
    plugin: str
    message: str
    block: int


def _as_channels_first(y: np.ndarray, channels: int) -> np.ndarray:
    if y.ndim == 1:
        y = y[None, :]
    if y.size == 0:
        return np.zeros((channels, 0), np.float32)
    if y.shape[0] != channels and y.shape[1] == channels:
        y = y.T
    return y


class _Delay:
    """A fixed delay standing in for a slot's latency when the slot stops running."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.state: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.state is None or self.state.shape[0] != x.shape[0]:
            self.state = np.zeros((x.shape[0], self.samples), np.float32)
        joined = np.concatenate([self.state, x], axis=1)
        self.state = joined[:, x.shape[1] :]
        return joined[:, : x.shape[1]]


@dataclass(eq=False)
class _Stream:
    index: int
    plugin: Any
    label: str
    ready: tuple[float, int] | None = None  # (sample rate, channels) the plugin was primed for
    has_run: bool = False  # processed audio since it was made or reset: priming again needs a reset
    deficit: int = 0  # samples the plugin holds back: the slot's share of the latency
    failed: bool = False
    delay: _Delay | None = None
    unloaded: bool = False  # the plugin failed to load: bypassed for good


class ChainProcessor:
    """Runs a board block by block for live or offline streaming.

    Each plugin processes with ``reset=False``, so state (reverb tails, delay lines, envelopes)
    continues across blocks: any split of a signal into blocks gives the same output as one call. Two
    details make that hold with pedalboard: plugins are handed at most ``buffer_size`` samples at once,
    and before its first block each plugin is primed with ``buffer_size`` samples of silence —
    pedalboard re-prepares (and so clears) a plugin whenever a block is larger than any before it.
    A plugin that buffers internally returns short blocks; they are padded with leading silence, so
    every output block is as long as its input and the stream is delayed by :attr:`latency` samples.

    A plugin that raises, returns the wrong shape or produces NaN/inf is bypassed from then on: the
    failure is appended to :attr:`errors` (which starts with the slots that failed to load, see
    ``build_chain(..., on_load_error="bypass")``), the audio continues unmodified through that slot (delayed by
    the slot's latency so far, keeping the stream's timing) and the other plugins keep running.
    Bypass flags of an :class:`EffectChain` are read at every block. The plugin list is fixed when the
    processor is made; make a new one after inserting or removing plugins.
    """

    def __init__(
        self,
        board: Sequence[Any],
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        check_finite: bool = True,
    ) -> None:
        if buffer_size < 16:
            raise ValueError(f"buffer_size must be >= 16 samples, got {buffer_size}")
        self.board = board
        self.buffer_size = int(buffer_size)
        self.check_finite = check_finite
        self.errors: list[PluginFailure] = load_failures(board)  # slots that failed to load come first
        self.parameter_errors: list[str] = []  # parameter writes refused during process_ramped
        self.blocks = 0
        self._streams = []
        for i, plugin in enumerate(board):
            info = _slot_info(board, plugin)
            kind = info.kind if info else _kind_of(plugin)
            label = f"{kind}:{getattr(plugin, 'name', '?')}" if kind in EXTERNAL_KINDS else kind
            unloaded = info is not None and info.load_error is not None
            self._streams.append(_Stream(i, plugin, label, failed=unloaded, unloaded=unloaded))

    @property
    def latency(self) -> int:
        """Samples of delay the chain has introduced so far (grows until buffering plugins are full)."""
        return sum(s.deficit for s in self._streams)

    @property
    def failed(self) -> list[int]:
        """Indices of the slots bypassed after a failure."""
        return [i for i, s in enumerate(self._streams) if s.failed]

    def reset(self) -> None:
        """Clear every plugin's state (tails, buffers) and the latency count; failed slots stay bypassed."""
        for s in self._streams:
            if not s.failed:
                try:
                    s.plugin.reset()
                except Exception as e:  # pragma: no cover - reset failures are unusual
                    self._fail(s, f"reset: {type(e).__name__}: {e}")
            s.ready, s.has_run, s.deficit, s.delay = None, False, 0, None

    def retry_failed(self) -> None:
        """Run failed slots again (after fixing what made them fail); they restart from a reset.

        Slots whose plugin failed to load stay bypassed (build the chain again to retry loading).
        """
        for s in self._streams:
            if s.failed and not s.unloaded:
                s.failed, s.ready, s.deficit, s.delay = False, None, 0, None  # _prime resets it

    def _fail(self, s: _Stream, message: str) -> None:
        s.failed = True
        s.delay = _Delay(s.deficit) if s.deficit else None
        self.errors.append(PluginFailure(s.index, s.label, message, self.blocks))

    def _prime(self, s: _Stream, sample_rate: float, channels: int) -> None:
        if s.has_run:
            s.plugin.reset()  # sample rate or channel count changed, back from bypass, or retried
        s.has_run = True
        silence = np.zeros((channels, self.buffer_size), np.float32)
        y = s.plugin.process(silence, sample_rate, buffer_size=self.buffer_size, reset=False)
        s.deficit = self.buffer_size - _as_channels_first(y, channels).shape[1]
        s.ready, s.delay = (sample_rate, channels), None

    def process(self, block: np.ndarray, sample_rate: float) -> np.ndarray:
        """Process one block, ``(channels, samples)`` float32 (1-D is mono); returns the same shape."""
        x = np.asarray(block)
        one_d = x.ndim == 1
        if one_d:
            x = x[None, :]
        if x.ndim != 2:
            raise ValueError(f"expected a (channels, samples) block, got shape {np.shape(block)}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        channels, n = x.shape
        if n == 0 or channels == 0:
            return x[0].copy() if one_d else x.copy()
        sr = float(sample_rate)
        for s in self._streams:
            if s.failed or _bypassed(self.board, s.plugin):
                if not s.failed and s.ready is not None:
                    # Newly bypassed: a delay stands in for the latency it had; re-enabling re-primes it.
                    s.delay, s.ready = (_Delay(s.deficit) if s.deficit else None), None
                if s.delay is not None:
                    x = s.delay(x)
                continue
            try:
                if s.ready != (sr, channels):
                    self._prime(s, sr, channels)
                y = _as_channels_first(s.plugin.process(x, sr, buffer_size=self.buffer_size, reset=False), channels)
            except Exception as e:
                self._fail(s, f"{type(e).__name__}: {e}")
                if s.delay is not None:
                    x = s.delay(x)
                continue
            if y.ndim != 2 or y.shape[0] != channels or y.shape[1] > n:
                self._fail(s, f"returned shape {y.shape} for a block of shape {x.shape}")
            elif self.check_finite and not np.isfinite(y).all():
                self._fail(s, "produced non-finite samples (NaN or inf)")
            else:
                if y.shape[1] < n:
                    s.deficit += n - y.shape[1]
                    y = np.concatenate([np.zeros((channels, n - y.shape[1]), np.float32), y], axis=1)
                x = np.ascontiguousarray(y, dtype=np.float32)
                continue
            if s.delay is not None:
                x = s.delay(x)
        self.blocks += 1
        if np.may_share_memory(x, block):
            x = x.copy()  # nothing processed it: never hand back the caller's buffer
        return x[0] if one_d else x

    def process_ramped(
        self,
        block: np.ndarray,
        sample_rate: float,
        ramps: Sequence[tuple[str, float, float]],
        *,
        sub_block: int = RAMP_BLOCK,
    ) -> np.ndarray:
        """Process one block while parameters move linearly, instead of jumping, to new values.

        ``ramps`` holds ``(name, start, end)`` with registry names as for :func:`apply_parameter`. The
        block ``(channels, n)`` (1-D is mono) is split into ``K = ceil(n / sub_block)`` sub-blocks
        processed in order (``reset=False``: state and tails continue); before sub-block ``j`` (0-based)
        each parameter is set to ``start + (end − start)·(j + 1)/K``, so it moves by ``|end − start|/K``
        per sub-block and holds ``end`` in the last. A ramp whose ``end`` the plugin refuses is dropped
        before any audio (the message goes to :attr:`parameter_errors`); the audio still flows. Returns
        the same shape.
        """
        if sub_block < 1:
            raise ValueError(f"sub_block must be >= 1 sample, got {sub_block}")
        x = np.asarray(block)
        n = x.shape[-1]
        active = []
        for ramp in ramps:  # check the targets first (the first sub-block's value then replaces them)
            try:
                apply_parameter(self.board, ramp[0], ramp[2])
                active.append(ramp)
            except ChainSpecError as e:
                self.parameter_errors.append(str(e))
        k = max(1, math.ceil(n / sub_block))
        parts = []
        for j in range(k):
            for ramp in list(active):
                name, start, end = ramp
                try:
                    apply_parameter(self.board, name, end if j == k - 1 else start + (end - start) * (j + 1) / k)
                except ChainSpecError as e:  # an external plugin refusing a value between two it accepts
                    self.parameter_errors.append(str(e))
                    active.remove(ramp)
            parts.append(self.process(x[..., n * j // k : n * (j + 1) // k], sample_rate))
        return parts[0] if k == 1 else np.concatenate(parts, axis=-1)

    def flush(self, samples: int, sample_rate: float, channels: int | None = None) -> np.ndarray:
        """Process ``samples`` of silence (reverb tails, buffered latency) and return it."""
        if channels is None:
            channels = next((s.ready[1] for s in self._streams if s.ready), 1)
        return self.process(np.zeros((channels, int(samples)), np.float32), sample_rate)
