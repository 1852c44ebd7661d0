"""Declared parameters: every control of the engine has a name, range, default and unit.

The GUI, MIDI mappings and presets all address parameters by name through one
:class:`ParameterRegistry`. Values are plain Python floats: a write from a GUI or MIDI thread is a
single atomic assignment, and the inference worker reads the latest value without a lock.

Names of the latent mixer's parameters (``N`` counts sources from 1)::

    source.N.gain_db   latent gain of source N in dB (-60 dB or below is silence)
    source.N.invert    1: subtract the source's latents (``mix - source`` separates it)
    source.N.mute      1: leave the source out
    source.N.solo      1: only soloed sources are heard
    master.gain_db     latent gain of the mix in dB
    mix.dry_wet        0 %: the dry input sum, 100 %: the decoded latent mix
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

SILENT_DB = -60.0


def db_to_gain(db: float) -> float:
    """Decibels → linear amplitude; ``SILENT_DB`` or below is 0."""
    return 0.0 if db <= SILENT_DB else 10.0 ** (db / 20.0)


@dataclass(frozen=True)
class ParameterSpec:
    """What a parameter is.

    Attributes:
        name: dotted identifier, e.g. ``source.1.gain_db``.
        minimum, maximum: the allowed range (inclusive).
        default: initial value, inside the range.
        unit: shown next to the value (``dB``, ``%``, or empty).
        toggle: a switch (0 or 1) rather than a continuous control.
        description: one line for tooltips and documentation.
        smoothed: changes are ramped per latent frame instead of applied at once.
    """

    name: str
    minimum: float
    maximum: float
    default: float
    unit: str = ""
    toggle: bool = False
    description: str = ""
    smoothed: bool = True

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"parameter name {self.name!r} must be non-empty without spaces")
        if not (math.isfinite(self.minimum) and math.isfinite(self.maximum) and self.minimum < self.maximum):
            raise ValueError(
                f"parameter {self.name}: need finite minimum < maximum, got {self.minimum}, {self.maximum}"
            )
        if not self.minimum <= self.default <= self.maximum:
            raise ValueError(f"parameter {self.name}: default {self.default} outside [{self.minimum}, {self.maximum}]")
        if self.toggle and (self.minimum, self.maximum) != (0.0, 1.0):
            raise ValueError(f"parameter {self.name}: a toggle ranges over [0, 1]")

    def check(self, value: float) -> float:
        """``value`` as a float inside the range; a ``ValueError`` naming the parameter otherwise."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name}: {value!r} is not a number") from None
        if not math.isfinite(v) or not self.minimum <= v <= self.maximum:
            raise ValueError(
                f"parameter {self.name}: {value!r} outside [{self.minimum:g}, {self.maximum:g}] {self.unit}"
            )
        return 1.0 if self.toggle and v >= 0.5 else (0.0 if self.toggle else v)

    def to_normalized(self, value: float) -> float:
        """Value → position in ``[0, 1]``."""
        return (value - self.minimum) / (self.maximum - self.minimum)

    def from_normalized(self, position: float) -> float:
        """Position in ``[0, 1]`` (clamped) → value (toggles snap to 0 or 1); NaN or infinity is refused."""
        try:
            p = float(position)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name}: position {position!r} is not a number") from None
        if not math.isfinite(p):
            raise ValueError(f"parameter {self.name}: position {position!r} is not a finite number in [0, 1]")
        p = min(1.0, max(0.0, p))
        v = self.minimum + p * (self.maximum - self.minimum)
        return (1.0 if v >= 0.5 else 0.0) if self.toggle else v


Listener = Callable[[str, float], None]


class ParameterRegistry:
    """Named parameters with their current values; thread-safe writes, lock-free reads."""

    def __init__(self, specs: list[ParameterSpec] | None = None) -> None:
        self._specs: dict[str, ParameterSpec] = {}
        self._values: dict[str, float] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.version = 0  # incremented on every change; cheap to poll
        for spec in specs or []:
            self.add(spec)

    def add(self, spec: ParameterSpec) -> ParameterSpec:
        if spec.name in self._specs:
            raise ValueError(f"parameter {spec.name} is declared twice")
        self._specs[spec.name] = spec
        self._values[spec.name] = spec.default
        return spec

    def spec(self, name: str) -> ParameterSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown parameter {name!r}; known: {', '.join(self._specs)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ParameterSpec]:
        return iter(self._specs.values())

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> float:
        """Current value (no lock: a dict read of a float)."""
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"unknown parameter {name!r}; known: {', '.join(self._specs)}") from None

    def set(self, name: str, value: float) -> float:
        """Validate and store ``value``; listeners hear of it. Returns the stored value."""
        v = self.spec(name).check(value)
        with self._lock:
            changed = self._values[name] != v
            self._values[name] = v
            if changed:
                self.version += 1
            listeners = list(self._listeners)
        if changed:
            for listener in listeners:
                listener(name, v)
        return v

    def set_normalized(self, name: str, position: float) -> float:
        return self.set(name, self.spec(name).from_normalized(position))

    def values(self) -> dict[str, float]:
        return dict(self._values)

    def update(self, values: Mapping[str, float]) -> None:
        """Set several values; unknown names or bad values fail before anything changes."""
        checked = {}
        unknown = sorted(set(values) - set(self._specs))
        if unknown:
            raise KeyError(f"unknown parameter(s): {', '.join(unknown)}")
        for name, value in values.items():
            checked[name] = self._specs[name].check(value)
        for name, value in checked.items():
            self.set(name, value)

    def reset(self) -> None:
        self.update({s.name: s.default for s in self._specs.values()})

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(name, value)`` after each change; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe


def mixer_parameters(num_sources: int) -> list[ParameterSpec]:
    """The latent mixer's parameters for ``num_sources`` sources."""
    if num_sources < 1:
        raise ValueError(f"need at least one source, got {num_sources}")
    specs = []
    for i in range(1, num_sources + 1):
        p = f"source.{i}"
        specs += [
            ParameterSpec(f"{p}.gain_db", SILENT_DB, 12.0, 0.0, "dB", description=f"Latent gain of source {i}"),
            ParameterSpec(
                f"{p}.invert",
                0.0,
                1.0,
                0.0,
                toggle=True,
                description=f"Subtract source {i}'s latents (separation by latent arithmetic)",
            ),
            ParameterSpec(f"{p}.mute", 0.0, 1.0, 0.0, toggle=True, description=f"Mute source {i}"),
            ParameterSpec(f"{p}.solo", 0.0, 1.0, 0.0, toggle=True, description=f"Solo source {i}"),
        ]
    specs += [
        ParameterSpec("master.gain_db", SILENT_DB, 12.0, 0.0, "dB", description="Latent gain of the mix"),
        ParameterSpec("mix.dry_wet", 0.0, 100.0, 100.0, "%", description="Dry input sum (0 %) to decoded mix (100 %)"),
    ]
    return specs


def source_coefficients(values: Mapping[str, float], num_sources: int) -> list[float]:
    """Per-source latent coefficients (master gain included) from parameter values.

    ``c_i = master · sign_i · gain_i`` for audible sources, 0 for muted ones and, when any source is
    soloed, for the sources that are not.
    """
    master = db_to_gain(values["master.gain_db"])
    solo = any(values[f"source.{i}.solo"] >= 0.5 for i in range(1, num_sources + 1))
    out = []
    for i in range(1, num_sources + 1):
        p = f"source.{i}"
        audible = values[f"{p}.mute"] < 0.5 and (not solo or values[f"{p}.solo"] >= 0.5)
        sign = -1.0 if values[f"{p}.invert"] >= 0.5 else 1.0
        out.append(master * sign * db_to_gain(values[f"{p}.gain_db"]) if audible else 0.0)
    return out
