"""The command-line form of chains (``reverb(room_size=0.3),limiter``) and chain files."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lincae.config import names_a_file, parse_json, read_config_text
from lincae.engine.effects.catalog import _CHAIN_FILE_KEYS, CHAIN_FILE_FORMAT, EXTERNAL_KINDS, ChainSpecError
from lincae.engine.effects.plugin_paths import trust_plugin_file
from lincae.engine.effects.spec import validate_chain_spec


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
        data = parse_json(read_config_text(p), str(p))
    except json.JSONDecodeError as e:
        raise ChainSpecError(f"{p}: not valid JSON: {e}") from None
    except ValueError as e:
        raise ChainSpecError(str(e)) from None
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


def names_a_chain_file(text: str) -> bool:
    """Whether a chain argument names a chain file: a path (:func:`lincae.config.names_a_file`) that ends in
    ``.json`` or holds a separator outside any parentheses (a plugin path inside them is part of the chain).
    A bare word (``reverb``) is the built-in effect, whatever files the current folder holds."""
    return text.lower().endswith(".json") or (names_a_file(text) and "(" not in text)


def parse_chain_arg(text: str) -> list[dict]:
    """A chain from the command line: ``"reverb(room_size=0.3),gain(gain_db=-3)"`` or a chain file's path
    (``chains/tape.json``, ``./tape``: see :func:`names_a_chain_file`).

    Values are numbers, ``true``/``false``, or strings (quote them to include ``,`` or ``)``); ``bypass``
    is an entry flag; for ``vst3``/``au``, ``path``, ``name`` and ``state`` are entry keys and a first bare
    argument is the path. An empty string is an empty chain. Returns the validated, normalised spec.

    Plugin paths typed here are the user's own and may lie anywhere (they are recorded with
    :func:`~lincae.engine.effects.plugin_paths.trust_plugin_file`); those of a chain *file* must lie in
    the plugin folders (:mod:`~lincae.engine.effects.plugin_paths`).
    """
    text = text.strip()
    if not text:
        return []
    if names_a_chain_file(text):
        return load_chain_file(text)  # a file may come from anyone: its plugins must be in the plugin folders
    try:
        spec = validate_chain_spec(_CliParser(text).entries(), "chain")
    except ChainSpecError as e:
        if Path(text).is_file():
            raise ChainSpecError(f"{e} (for the chain file {text}, write ./{text})") from None
        raise
    for entry in spec:
        if entry["plugin"] in EXTERNAL_KINDS:
            trust_plugin_file(entry["path"])  # typed by the user: loaded from where they said
    return spec
