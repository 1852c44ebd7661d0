"""The base of lincae's typed configuration objects (model, training, engine, MIDI mappings, presets).

A neutral module: importing it loads nothing heavy, so light modules (presets, MIDI mappings) can use it
without PyTorch.

Values are checked where they enter: :meth:`ConfigBase.check_fields` holds every field to the type of its
annotation and to the class's :attr:`~ConfigBase.LIMITS`, and :func:`check_int` / :func:`check_number` do
the same for single values (command-line options, constructor arguments). The readers
(:func:`read_json_file`, :func:`parse_json`, :func:`parse_yaml`) cap what a configuration file can make
the program allocate: its size, its nesting depth and its number of entries.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="ConfigBase")

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MAX_SEED",
    "ConfigBase",
    "check_int",
    "check_nesting",
    "check_number",
    "names_a_file",
    "parse_json",
    "parse_yaml",
    "read_config_text",
    "read_json_file",
]

#: Largest seed anywhere (engine, training, commands): every random generator lincae uses takes it.
MAX_SEED = 2**32 - 1
#: Largest configuration file (preset, chain, model config, training YAML) read, in bytes.
MAX_CONFIG_BYTES = 4 * 2**20
#: Deepest nesting of lists and mappings in a configuration file.
MAX_DEPTH = 32
#: Most lists, mappings and scalars in one configuration file.
MAX_ENTRIES = 100_000


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"in [{_fmt(lo)}, {_fmt(hi)}]"
    return f">= {_fmt(lo)}" if lo is not None else f"<= {_fmt(hi)}" if hi is not None else ""


def _what(kind: str, bounds: str) -> str:
    return f"{kind} {bounds}" if bounds else kind


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) in ``[lo, hi]``; else a ``ValueError`` naming ``name``
    and the range (``steps must be an integer in [1, 1000000000], got 'ten'``)."""
    if not _is_int(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be {_what('an integer', _range(lo, hi))}, got {value!r}")
    return int(value)


def check_number(
    value: Any, name: str, lo: float | None = None, hi: float | None = None, *, above: bool = False
) -> float:
    """``value`` as a float if it is a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``above``); else a
    ``ValueError`` naming ``name`` and the range. NaN and infinities are refused, never clamped."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if above else value >= lo
    if ok and hi is not None:
        ok = value <= hi
    if not ok:
        if above and lo is not None:
            what = f"> {_fmt(lo)}" + (f" and <= {_fmt(hi)}" if hi is not None else "")
        else:
            what = _range(lo, hi)
        raise ValueError(f"{name} must be {_what('a finite number', what)}, got {value!r}")
    return float(value)


class ConfigBase:
    """Shared ``from_dict``/``to_dict`` and field checks of lincae's frozen configuration dataclasses.

    Subclasses list the inclusive ``(low, high)`` bounds of their numeric fields in :attr:`LIMITS` (for a
    list field, the bounds of each entry) and the ``(shortest, longest)`` of their list fields in
    :attr:`LENGTHS`, and call :meth:`check_fields` first thing in ``__post_init__``.
    """

    LIMITS: ClassVar[Mapping[str, tuple[float, float]]] = {}
    LENGTHS: ClassVar[Mapping[str, tuple[int, int]]] = {}

    @classmethod
    def from_dict(cls: type[T], values: Mapping[str, Any] | T | None, *, where: str | None = None) -> T:
        """Build from a plain mapping, rejecting keys the constructor does not know.

        Args:
            values: keyword arguments (e.g. loaded from YAML or JSON), or an instance to pass through.
            where: a label for error messages (a file name, say).
        """
        if isinstance(values, cls):
            return values
        src = f" in {where}" if where else ""
        if values is not None and not isinstance(values, Mapping):
            raise ValueError(f"{cls.__name__}{src}: expected a mapping of settings, got {values!r}"[:300])
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(map(str, set(values) - known))
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} key(s){src}: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def from_yaml(cls: type[T], path: str | os.PathLike[str]) -> T:
        """Build from a YAML file read with the caps of :func:`read_config_text` (a mapping at the top)."""
        values = parse_yaml(read_config_text(path), str(path)) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(values, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-serialisable mapping of every field."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def check_fields(self, prefix: str = "") -> None:
        """Hold every field to its annotation (``int``, ``float``, ``bool``, ``str``, ``list[int]``, ``… | None``,
        ``tuple[float, float]``) and to :attr:`LIMITS` / :attr:`LENGTHS`.

        Errors read ``{prefix}{field} must be an integer in [1, 1024], got 5000``. Floats must be finite;
        integers are not bools; fields of other types are left to the subclass.
        """
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            kind = str(f.type).replace(" ", "")
            value = getattr(self, f.name)
            optional = kind.endswith("|None")
            kind = kind.removesuffix("|None")
            if value is None and optional:
                continue
            name = f"{prefix}{f.name}"
            lo, hi = self.LIMITS.get(f.name, (None, None))
            if kind == "int":
                check_int(value, name, _int_or_none(lo), _int_or_none(hi))
            elif kind == "float":
                check_number(value, name, lo, hi)
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false, got {value!r}")
            elif kind == "str":
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a string, got {value!r}")
            elif kind in ("list[int]", "list[float]", "tuple[float,float]"):
                shortest, longest = self.LENGTHS.get(f.name, (2, 2) if kind.startswith("tuple") else (0, 64))
                if not isinstance(value, (list, tuple)) or not shortest <= len(value) <= longest:
                    size = f"{shortest}" if shortest == longest else f"{shortest} to {longest}"
                    raise ValueError(f"{name} must be a list of {size} numbers, got {value!r}"[:300])
                for i, v in enumerate(value):
                    if kind == "list[int]":
                        check_int(v, f"{name}[{i}]", _int_or_none(lo), _int_or_none(hi))
                    else:
                        check_number(v, f"{name}[{i}]", lo, hi)


def _int_or_none(v: float | None) -> int | None:
    return None if v is None else int(v)


# --------------------------------------------------------------------------------------------------
# Reading configuration files


def names_a_file(text: str) -> bool:
    """Whether ``text``, typed where a preset or a chain is expected, names a file rather than something shipped.

    A file is named as a path: ``text`` holds a path separator (``./default``, ``presets/mine``) or ends in
    ``.json``. Anything else is a name (the shipped preset ``default``, the built-in effect ``reverb``),
    whatever files the current folder holds, so a file there cannot stand in for it.
    """
    separators = {"/", os.sep, os.altsep} - {None}
    return any(sep in text for sep in separators) or text.lower().endswith(".json")


def read_config_text(path: str | os.PathLike[str], max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of a configuration file, refused (``ValueError``) beyond ``max_bytes``.

    A file that is not regular (a pipe, ``/dev/zero``) is read up to the cap, never to its end.
    """
    p = Path(path)
    with open(p, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{p}: larger than {max_bytes // 2**20} MiB, too large for a configuration file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not UTF-8 text ({e})") from None


def check_nesting(data: Any, where: str, max_depth: int = MAX_DEPTH, max_entries: int = MAX_ENTRIES) -> Any:
    """``data`` unless it nests lists/mappings deeper than ``max_depth`` or holds more than ``max_entries``
    values (YAML aliases count each time they are reached, so an alias bomb is refused too)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_entries:
            raise ValueError(f"{where}: more than {max_entries} entries, too many for a configuration file")
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth >= max_depth:
            raise ValueError(f"{where}: nested deeper than {max_depth} levels")
        stack.extend((c, depth + 1) for c in children)
    return data


def parse_json(text: str, where: str) -> Any:
    """JSON text → data, with :func:`check_nesting`'s caps; every failure is a ``ValueError`` naming ``where``
    (``json.JSONDecodeError`` for bad syntax, so callers may tell it apart)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ValueError(f"{where}: larger than {MAX_CONFIG_BYTES // 2**20} MiB, too large for a configuration file")
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise ValueError(f"{where}: not valid JSON: {e}") from None
    return check_nesting(data, where)


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """:func:`read_config_text` then :func:`parse_json` (``json.JSONDecodeError`` for bad syntax)."""
    return parse_json(read_config_text(path), str(path))


def parse_yaml(text: str, where: str) -> Any:
    """YAML text (``yaml.safe_load``) → data, with :func:`check_nesting`'s caps; failures are ``ValueError``."""
    import yaml

    if len(text) > MAX_CONFIG_BYTES:
        raise ValueError(f"{where}: larger than {MAX_CONFIG_BYTES // 2**20} MiB, too large for a configuration file")
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML: {_yaml_error(e)}") from None
    return check_nesting(data, where)


def _yaml_error(e: Exception) -> str:
    """A YAML error in one line: what is wrong and where (PyYAML's own text quotes the line over several)."""
    problem = getattr(e, "problem", None)
    if not problem:
        return " ".join(str(e).split())
    context, mark = getattr(e, "context", None), getattr(e, "problem_mark", None)
    text = f"{context}: {problem}" if context else str(problem)
    if mark is not None:
        text += f" (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(text.split())
