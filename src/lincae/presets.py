"""Preset files: engine settings, parameter values, MIDI mappings and effect chains in one JSON file.

Schema version 1::

    {
      "format": "lincae.preset",
      "schema_version": 1,
      "name": "Two inputs",
      "description": "Two mono inputs mixed in latent space; CC 1 and 2 ride the gains.",
      "model": null,                                    # model id or path, or null for the default
      "engine": {"sources": [1, 1], "window_frames": 8, "step_frames": 4, ...},   # EngineConfig fields
      "parameters": {"source.2.gain_db": -6.0, "post.0.reverb.room_size": 0.4},
      "midi": [{"parameter": "source.1.gain_db", "cc": 1, "soft_takeover": true, ...}],   # MidiMapping
      "chains": {"pre": {"1": [...], "2": [...]}, "post": [...]}                # chain specs, per source
    }

``engine`` may leave fields out (they take EngineConfig's defaults); :meth:`Preset.to_dict` writes
them all. ``parameters`` are registry names: the latent mixer's (:func:`~lincae.engine.params.
mixer_parameters` for the preset's sources) and the chains' (``pre.N.SLOT.PLUGIN.PARAM``,
``post.SLOT.PLUGIN.PARAM``, ``….SLOT.bypass``; see :func:`lincae.engine.effects.chain_parameter_specs`).
Values of chain parameters are applied after the chain is built, so they override the chain's
``params``. Names under an external (VST3/AU) slot are checked only when that plugin is loaded.

Migrations. :data:`MIGRATIONS` maps a schema version to the function that upgrades a dict of that
version to the next (register one with ``@migration(n)``); :meth:`Preset.from_dict` applies them in
turn. Every preset lincae has shipped is version 1, so none is registered yet; the next schema
change registers ``@migration(1)``. A file of a version with no migration (the unshipped draft
layout 0, say) fails with ``no migration from schema_version N``.

Files newer than this lincae reads fail with ``schema_version N not supported``.

Presets ship inside the package (``lincae/assets/presets``, the source of truth) and, as an identical
copy, in the repository's top-level ``presets/`` folder; ``chains/`` beside them holds chain-only files
for ``--pre``/``--post``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lincae.config import names_a_file, parse_json, read_config_text
from lincae.engine.config import EngineConfig
from lincae.engine.params import ParameterRegistry, ParameterSpec, mixer_parameters
from lincae.files.atomic import write_atomically
from lincae.io.mapping import MidiMapping

if TYPE_CHECKING:
    from lincae.engine.effects import EffectChain

__all__ = [
    "MIGRATIONS",
    "PRESET_FORMAT",
    "SCHEMA_VERSION",
    "Preset",
    "PresetError",
    "list_presets",
    "load_preset",
    "migration",
    "preset_path",
    "shipped_presets_dir",
    "upgrade",
]

PRESET_FORMAT = "lincae.preset"
SCHEMA_VERSION = 1
_KEYS = ("format", "schema_version", "name", "description", "model", "engine", "parameters", "midi", "chains")


class PresetError(ValueError):
    """An invalid preset. ``field`` is the offending path (``engine.step_frames``, ``midi[0].cc``)."""

    def __init__(self, field: str, detail: str, where: str | None = None) -> None:
        self.field, self.detail, self.where = field, detail, where
        text = f"{field}: {detail}" if field else detail
        super().__init__(f"{where}: {text}" if where else text)

    def located(self, where: str | None) -> PresetError:
        """The same error, prefixed with ``where`` (a file name) unless it already is."""
        return self if not where or self.where else PresetError(self.field, self.detail, where)


# --------------------------------------------------------------------------------------------------
# Migrations

Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {}


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register ``fn`` as the upgrade of a version-``from_version`` preset dict to ``from_version + 1``."""

    def register(fn: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise ValueError(f"a migration from schema_version {from_version} is already registered")
        MIGRATIONS[from_version] = fn
        return fn

    return register


def upgrade(data: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
    """Check ``format`` and ``schema_version`` and migrate ``data`` to :data:`SCHEMA_VERSION`."""
    if not isinstance(data, Mapping):
        raise PresetError("", f"a preset is a JSON object, got {type(data).__name__}", where)
    data = dict(data)
    if data.get("format") != PRESET_FORMAT:
        raise PresetError("format", f"expected {PRESET_FORMAT!r}, got {data.get('format')!r}", where)
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise PresetError("schema_version", f"must be an integer 0..{SCHEMA_VERSION}, got {version!r}", where)
    if version > SCHEMA_VERSION:
        raise PresetError(
            "", f"schema_version {version} not supported, this lincae reads up to {SCHEMA_VERSION}", where
        )
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise PresetError("", f"no migration from schema_version {version}", where)
        try:
            data = MIGRATIONS[version](data)
        except PresetError as e:
            raise PresetError(e.field, f"{e.detail} (migrating from schema_version {version})", where) from None
        version += 1
        data["schema_version"] = version
    return data


# --------------------------------------------------------------------------------------------------
# Field checks


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _engine(values: Any) -> EngineConfig:
    if values is None:
        return EngineConfig()
    if not isinstance(values, Mapping):
        raise PresetError("engine", f"must be an object of EngineConfig fields, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(EngineConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise PresetError("engine", f"unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    try:
        config = EngineConfig(**values)
    except ValueError as e:
        msg = str(e).removeprefix("engine: ")
        m = re.match(r"(\w+) (.*)$", msg)
        if m and m.group(1) in fields:
            detail = m.group(2) if "got" in m.group(2) else f"{m.group(2)}, got {values.get(m.group(1))!r}"
            raise PresetError(f"engine.{m.group(1)}", detail) from None
        if "source" in msg:
            raise PresetError("engine.sources", msg) from None
        raise PresetError("engine", msg) from None
    window, step, lookahead = config.window_frames, config.step_frames, config.lookahead_frames
    if window < step + lookahead:
        raise PresetError(
            "engine.window_frames", f"must hold step_frames ({step}) + lookahead_frames ({lookahead}), got {window}"
        )
    return config


_CHAIN_NAME = re.compile(r"^(post|pre\.(\d+))\.(\d+)\.(.+)$")
_SOURCE_NAME = re.compile(r"^source\.(\d+)\.")


@dataclass
class _ChainCheck:
    """Chains as probe boards: one single-plugin board per built-in slot, ``None`` for external ones."""

    slots: dict[tuple[str, int], Any]
    names: set[str]  # registry names of the built-in slots
    deferred: set[str]  # name prefixes ``{prefix}.{i}.`` of external slots

    @classmethod
    def build(cls, chains: Mapping[str, Sequence[Mapping[str, Any]]]) -> _ChainCheck:
        from lincae.engine.effects import EXTERNAL_KINDS, PluginLoadError, build_chain, chain_parameter_specs

        slots: dict[tuple[str, int], Any] = {}
        names: set[str] = set()
        deferred: set[str] = set()
        for prefix, entries in chains.items():
            for i, entry in enumerate(entries):
                board = None
                if entry["plugin"] not in EXTERNAL_KINDS:
                    try:
                        board = build_chain([entry], f"chains.{prefix}[{i}]")
                    except (FileNotFoundError, PluginLoadError):  # an impulse response missing or not audio:
                        board = None  # refused when the chain is built (bypassed live)
                    except ValueError as e:
                        raise PresetError(f"chains.{prefix}[{i}]", str(e).split(": ", 1)[-1]) from None
                slots[(prefix, i)] = board
                if board is None:
                    deferred.add(f"{prefix}.{i}.")
                else:
                    names.update(
                        s.name.replace(f"{prefix}.0.", f"{prefix}.{i}.", 1)
                        for s in chain_parameter_specs(board, prefix)
                    )
        return cls(slots, names, deferred)

    def known(self, name: str) -> bool:
        return name in self.names or any(name.startswith(p) for p in self.deferred)

    def check(self, name: str, value: Any, num_sources: int, chain_lengths: Mapping[str, int]) -> float:
        from lincae.engine.effects import apply_parameter

        field_path = f"parameters.{name}"
        m = _CHAIN_NAME.match(name)
        assert m is not None
        prefix, index = m.group(1), int(m.group(3))
        if prefix not in chain_lengths:
            if prefix.startswith("pre.") and not 1 <= int(m.group(2)) <= num_sources:
                raise PresetError(field_path, f"unknown parameter (the preset has {_count(num_sources, 'source')})")
            raise PresetError(field_path, f"unknown parameter (there is no {prefix} chain)")
        if index >= chain_lengths[prefix]:
            raise PresetError(
                field_path, f"unknown parameter (the {prefix} chain has {_count(chain_lengths[prefix], 'plugin')})"
            )
        if isinstance(value, bool):
            value = float(value)
        if not _is_number(value) or not math.isfinite(value):
            raise PresetError(field_path, f"must be a finite number, got {value!r}")
        board = self.slots[(prefix, index)]
        if board is None:
            return float(value)  # an external plugin: checked when it is loaded
        if name not in self.names:
            slot = f"{prefix}.{index}."
            here = sorted(n.removeprefix(slot) for n in self.names if n.startswith(slot))
            raise PresetError(field_path, f"unknown parameter; slot {prefix}.{index} has: {', '.join(here)}")
        local = name.replace(f"{prefix}.{index}.", f"{prefix}.0.", 1)
        try:
            return apply_parameter(board, local, value)
        except ValueError as e:
            raise PresetError(field_path, str(e).removeprefix(f"{local}: ")) from None


# --------------------------------------------------------------------------------------------------
# The preset


@dataclass
class Preset:
    """One preset: see the module docstring for the file layout.

    Attributes:
        name, description: shown in the GUI and ``lincae presets``.
        engine: the engine configuration (sources, windowing, crossfade, ...).
        parameters: registry values (mixer and chain parameters) applied when the preset loads.
        midi: controller mappings.
        pre: chain spec per source number (1-based), run before encoding.
        post: chain spec run on the decoded output.
        model: model id or path, or ``None`` for the default model.
    """

    name: str = ""
    description: str = ""
    engine: EngineConfig = field(default_factory=EngineConfig)
    parameters: dict[str, float] = field(default_factory=dict)
    midi: list[MidiMapping] = field(default_factory=list)
    pre: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    post: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None

    @property
    def num_sources(self) -> int:
        return self.engine.num_sources

    def for_sources(self, sources: Sequence[int]) -> Preset:
        """This preset for another source layout (channels per source): what concerns sources past the
        new count (their parameters, pre chains and mappings) is left out, the rest is kept."""
        n = len(sources)

        def kept(name: str) -> bool:
            m = re.match(r"(source|pre)\.(\d+)\.", name)
            return m is None or int(m.group(2)) <= n

        return Preset(
            name=self.name,
            description=self.description,
            engine=EngineConfig.from_dict({**self.engine.to_dict(), "sources": list(sources)}),
            parameters={k: v for k, v in self.parameters.items() if kept(k)},
            midi=[m for m in self.midi if kept(m.parameter)],
            pre={k: list(v) for k, v in self.pre.items() if k <= n},
            post=list(self.post),
            model=self.model,
        )

    # -- reading -----------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str | None = None) -> Preset:
        """Validate (after migrating older schema versions) and build a preset.

        Raises:
            PresetError: a ``ValueError`` whose message starts with the offending field's path and
                shows the value, e.g. ``engine.step_frames: must be >= 1, got 0``.
        """
        data = upgrade(data, where)
        try:
            return cls._from_current(data)
        except PresetError as e:
            raise e.located(where) from None

    @classmethod
    def _from_current(cls, data: dict[str, Any]) -> Preset:
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise PresetError("", f"unknown preset key(s): {', '.join(unknown)}; known: {', '.join(_KEYS)}")
        name = data.get("name", "")
        if not isinstance(name, str):
            raise PresetError("name", f"must be a string, got {name!r}")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise PresetError("description", f"must be a string, got {description!r}")
        model = data.get("model")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise PresetError("model", f"must be a model id or path, or null, got {model!r}")
        engine = _engine(data.get("engine"))
        n = engine.num_sources
        pre, post = cls._chains(data.get("chains"), n)

        chain_sets: dict[str, list[dict[str, Any]]] = {f"pre.{k}": v for k, v in pre.items()}
        chain_sets["post"] = post
        checker = _ChainCheck.build(chain_sets)
        lengths = {k: len(v) for k, v in chain_sets.items()}
        mixer = {s.name: s for s in mixer_parameters(n)}

        raw = data.get("parameters", {})
        if not isinstance(raw, Mapping):
            raise PresetError("parameters", f"must map parameter names to values, got {raw!r}")
        parameters: dict[str, float] = {}
        for pname, value in raw.items():
            if not isinstance(pname, str):
                raise PresetError("parameters", f"names must be strings, got {pname!r}")
            if pname in mixer:
                parameters[pname] = _check_mixer(mixer[pname], value)
            elif _CHAIN_NAME.match(pname):
                parameters[pname] = checker.check(pname, value, n, lengths)
            else:
                raise PresetError(f"parameters.{pname}", _unknown(pname, n))

        midi_raw = data.get("midi", [])
        if not isinstance(midi_raw, list):
            raise PresetError("midi", f"must be a list of mappings, got {midi_raw!r}")
        midi = []
        for i, item in enumerate(midi_raw):
            if not isinstance(item, Mapping):
                raise PresetError(f"midi[{i}]", f"must be an object, got {item!r}")
            try:
                mapping = MidiMapping.from_dict(dict(item))
            except (TypeError, ValueError) as e:
                raise PresetError(f"midi[{i}]", str(e)) from None
            if mapping.parameter not in mixer and not checker.known(mapping.parameter):
                raise PresetError(f"midi[{i}].parameter", f"{mapping.parameter!r}: {_unknown(mapping.parameter, n)}")
            midi.append(mapping)
        return cls(name, description, engine, parameters, midi, pre, post, model)

    @staticmethod
    def _chains(value: Any, num_sources: int) -> tuple[dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
        from lincae.engine.effects import validate_chain_spec

        if value is None:
            return {}, []
        if not isinstance(value, Mapping):
            raise PresetError("chains", f"must be an object with 'pre' and 'post', got {value!r}")
        unknown = sorted(set(value) - {"pre", "post"})
        if unknown:
            raise PresetError("chains", f"unknown key(s) {', '.join(unknown)}; known: pre, post")
        pre_raw = value.get("pre") or {}
        if not isinstance(pre_raw, Mapping):
            raise PresetError("chains.pre", f"must map source numbers to chains, got {pre_raw!r}")
        pre: dict[int, list[dict[str, Any]]] = {}
        for key, spec in pre_raw.items():
            k = str(key)
            if not k.isdigit() or not 1 <= int(k) <= num_sources:
                raise PresetError(f"chains.pre.{k}", f"no source {k} (the preset has {_count(num_sources, 'source')})")
            try:
                chain = validate_chain_spec(spec, f"chains.pre.{k}")
            except ValueError as e:
                raise PresetError("", str(e)) from None
            if chain:
                pre[int(k)] = chain
        try:
            post = validate_chain_spec(value.get("post") or [], "chains.post")
        except ValueError as e:
            raise PresetError("", str(e)) from None
        return dict(sorted(pre.items())), post

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Preset:
        """Read and validate a preset file."""
        p = Path(path)
        try:
            text = read_config_text(p)
        except FileNotFoundError:
            raise FileNotFoundError(f"preset file not found: {p}") from None
        except ValueError as e:
            raise PresetError("", str(e).removeprefix(f"{p}: "), str(p)) from None
        try:
            data = parse_json(text, str(p))
        except json.JSONDecodeError as e:
            raise PresetError("", f"not valid JSON: {e}", str(p)) from None
        except ValueError as e:
            raise PresetError("", str(e).removeprefix(f"{p}: "), str(p)) from None
        return cls.from_dict(data, where=str(p))

    # -- writing -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The schema-version-1 dict (every engine field written out)."""
        return {
            "format": PRESET_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "engine": self.engine.to_dict(),
            "parameters": dict(sorted(self.parameters.items())),
            "midi": [m.to_dict() for m in self.midi],
            "chains": {
                "pre": {str(k): [dict(e) for e in v] for k, v in sorted(self.pre.items())},
                "post": [dict(e) for e in self.post],
            },
        }

    def to_json(self) -> str:
        """Sorted, indented JSON text, as :meth:`save` writes it."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def validate(self) -> Preset:
        """Check the preset as it stands (fields may have been edited); returns the normalised copy."""
        return Preset.from_dict(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Validate, then write atomically (a temporary file in the same folder, renamed over ``path``)."""
        text = self.validate().to_json()

        def write(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())

        return write_atomically(path, write)

    # -- using -------------------------------------------------------------------------------------

    def build_chains(self, on_load_error: str = "raise") -> tuple[dict[int, EffectChain], EffectChain]:
        """Build the pre chains (by source number) and the post chain, with chain parameters applied.

        ``on_load_error`` is :func:`lincae.engine.effects.build_chain`'s: ``"bypass"`` (live use) keeps a
        plugin file that does not load as a bypassed slot that reports its error, instead of raising.
        """
        from lincae.engine.effects import apply_parameter, build_chain

        pre = {k: build_chain(v, f"chains.pre.{k}", on_load_error=on_load_error) for k, v in self.pre.items()}
        post = build_chain(self.post, "chains.post", on_load_error=on_load_error)
        for name, value in self.parameters.items():
            m = _CHAIN_NAME.match(name)
            if m:
                board = post if m.group(1) == "post" else pre[int(m.group(2))]
                apply_parameter(board, name, value)
        return pre, post

    def parameter_specs(self, chains: tuple[Mapping[int, Any], Any] | None = None) -> list[ParameterSpec]:
        """Mixer parameters plus those of the chains (built with :meth:`build_chains` unless given)."""
        specs = mixer_parameters(self.num_sources)
        if not self.pre and not self.post and chains is None:
            return specs
        from lincae.engine.effects import chain_parameter_specs

        pre, post = chains if chains is not None else self.build_chains()
        for k, board in sorted(pre.items()):
            specs += chain_parameter_specs(board, f"pre.{k}")
        return specs + chain_parameter_specs(post, "post")

    def registry(self, chains: tuple[Mapping[int, Any], Any] | None = None) -> ParameterRegistry:
        """A registry of :meth:`parameter_specs` holding this preset's values."""
        reg = ParameterRegistry(self.parameter_specs(chains))
        reg.update({k: v for k, v in self.parameters.items() if k in reg})
        return reg


def _check_mixer(spec: ParameterSpec, value: Any) -> float:
    if not _is_number(value) and not isinstance(value, bool):
        raise PresetError(f"parameters.{spec.name}", f"must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or not spec.minimum <= v <= spec.maximum:
        unit = f" {spec.unit}" if spec.unit else ""
        raise PresetError(f"parameters.{spec.name}", f"{value!r} is outside [{spec.minimum:g}, {spec.maximum:g}]{unit}")
    return spec.check(v)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _unknown(name: str, num_sources: int) -> str:
    m = _SOURCE_NAME.match(name)
    if m and int(m.group(1)) > num_sources:
        return f"unknown parameter (the preset has {_count(num_sources, 'source')})"
    return (
        "unknown parameter; known: source.N.{gain_db,invert,mute,solo}, master.gain_db, mix.dry_wet, "
        "pre.N.SLOT.PLUGIN.PARAM, post.SLOT.PLUGIN.PARAM, (pre.N|post).SLOT.bypass"
    )


# --------------------------------------------------------------------------------------------------
# Shipped presets


def shipped_presets_dir() -> Path:
    """The folder of presets shipped with the package (``lincae/assets/presets``)."""
    return Path(str(resources.files("lincae") / "assets" / "presets"))


def list_presets(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Names (file stems) of the presets in ``directory`` (default: the shipped ones), sorted."""
    d = Path(directory) if directory is not None else shipped_presets_dir()
    return sorted(p.stem for p in d.glob("*.json") if p.is_file())


def preset_path(name: str) -> Path:
    """The shipped preset called ``name`` (with or without ``.json``); a name never leaves the presets folder."""
    folder = shipped_presets_dir()
    if not name or "/" in name or "\\" in name or name.startswith(".") or Path(name).is_absolute():
        raise FileNotFoundError(
            f"{name!r} is not a preset name (a name has no '/', '\\' or leading '.'; a preset file is named by "
            f"its path, like ./mine or mine.json); shipped: {', '.join(list_presets())}"
        )
    p = folder / (name if name.endswith(".json") else f"{name}.json")
    if p.resolve().parent != folder.resolve():  # a symbolic link out of the folder
        raise FileNotFoundError(f"no shipped preset {name!r}; shipped: {', '.join(list_presets())}")
    if not p.is_file():
        raise FileNotFoundError(f"no shipped preset {name!r}; shipped: {', '.join(list_presets())}")
    return p


def load_preset(name_or_path: str | os.PathLike[str]) -> Preset:
    """Load a shipped preset by name (``two-inputs``), or a preset file.

    A string names a file only as a path (:func:`lincae.config.names_a_file`: ``./mine``, ``mine.json``);
    a bare name is always the shipped preset, never a file of that name in the current folder. A
    :class:`~pathlib.Path` is a file.
    """
    if not isinstance(name_or_path, str) or names_a_file(name_or_path):
        return Preset.load(Path(name_or_path))
    try:
        return Preset.load(preset_path(name_or_path))
    except FileNotFoundError as e:
        if Path(name_or_path).is_file():
            raise FileNotFoundError(f"{e} (for the file {name_or_path}, write ./{name_or_path})") from None
        raise
