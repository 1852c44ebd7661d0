"""Validation of chain specs (JSON-able lists of plugin entries)."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lincae.engine.effects.catalog import (
    _BUILTIN_KEYS,
    _EXTERNAL_KEYS,
    _REQUIRED,
    BUILTIN_RANGES,
    EXTERNAL_KINDS,
    ChainSpecError,
    _Arg,
    _Builtin,
    _builtins,
    _canonical,
)


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
