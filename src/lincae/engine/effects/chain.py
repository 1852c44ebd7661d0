"""Building an :class:`EffectChain` from a spec, bypass switches, and reading a board back."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pedalboard

from lincae.engine.effects.catalog import (
    EXTERNAL_KINDS,
    ChainSpecError,
    PluginFailure,
    PluginLoadError,
    _Arg,
    _builtins,
)
from lincae.engine.effects.plugin_paths import resolve_plugin_path
from lincae.engine.effects.spec import validate_chain_spec
from lincae.files.audiofile import AudioFileError, check_audio_file


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
            _check_parameter_file(kind, arg.name, value, where)
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


def _check_parameter_file(kind: str, name: str, value: str, where: str) -> None:
    """A file a built-in reads (``Convolution``'s impulse response) must be whole, real audio: pedalboard
    would otherwise pass the signal through unchanged."""
    try:
        check_audio_file(value)
    except AudioFileError as e:
        raise PluginLoadError(f"{where}: {kind}.{name}: {e}") from None


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
    kind = entry["plugin"]
    path = resolve_plugin_path(kind, entry["path"], where)  # before anything is opened
    if not Path(path).exists():
        raise FileNotFoundError(f"{where}: {kind} plugin not found: {path}")
    if kind == "au" and not hasattr(pedalboard, "AudioUnitPlugin"):
        raise PluginLoadError(f"{where}: Audio Unit plugins need macOS; cannot load {path}")
    try:
        plugin = pedalboard.load_plugin(path, plugin_name=entry.get("name"))
    except Exception as e:
        detail = " ".join(str(e).split())  # JUCE's message spans lines; errors are one line
        raise PluginLoadError(f"{where}: could not load {kind} plugin {path}: {detail}") from e
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
