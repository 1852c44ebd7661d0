"""The base of lincae's typed configuration objects (model, training, engine, MIDI mappings, presets).

A neutral module: importing it loads nothing heavy, so light modules (presets, MIDI mappings) can use it
without PyTorch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T", bound="ConfigBase")

__all__ = ["ConfigBase"]


class ConfigBase:
    """Shared ``from_dict``/``to_dict`` of lincae's frozen configuration dataclasses."""

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any] | T | None, *, where: str | None = None) -> T:
        """Build from a plain mapping, rejecting keys the constructor does not know.

        Args:
            values: keyword arguments (e.g. loaded from YAML or JSON), or an instance to pass through.
            where: a label for error messages (a file name, say).
        """
        if isinstance(values, cls):
            return values
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            src = f" in {where}" if where else ""
            raise ValueError(
                f"unknown {cls.__name__} key(s){src}: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-serialisable mapping of every field."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]
