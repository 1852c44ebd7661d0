"""A MIDI controller mapping: which CC drives which parameter, over what range and curve."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lincae.config import ConfigBase

CURVES = ("linear", "log", "exp")


@dataclass(frozen=True)
class MidiMapping(ConfigBase):
    """Control change ``cc`` on ``channel`` (1–16, 0 = any) sets ``parameter``.

    Attributes:
        parameter: registry name, e.g. ``source.1.gain_db``.
        cc: controller number 0–127 (the MSB when ``cc_lsb`` is set).
        channel: MIDI channel 1–16, or 0 for any channel.
        minimum, maximum: parameter values at controller 0 and at full scale, as fractions of the
            parameter's range (0–1; ``minimum > maximum`` inverts the knob).
        curve: ``linear``, ``log`` (fine control at the bottom) or ``exp`` (fine control at the top).
        cc_lsb: controller number of the 14-bit pair's LSB (usually ``cc + 32``), or ``None`` for 7 bits.
        soft_takeover: the knob only takes over once it crosses the parameter's current value.
    """

    parameter: str
    cc: int
    channel: int = 0
    minimum: float = 0.0
    maximum: float = 1.0
    curve: str = "linear"
    cc_lsb: int | None = None
    soft_takeover: bool = True

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"MIDI mapping for {self.parameter!r}: {msg}")

        self.check_fields(f"MIDI mapping for {self.parameter!r}: ")  # types; the ranges follow
        need(bool(self.parameter), "parameter name is empty")
        need(isinstance(self.cc, int) and 0 <= self.cc <= 127, f"cc must be 0..127, got {self.cc!r}")
        need(isinstance(self.channel, int) and 0 <= self.channel <= 16, f"channel must be 0..16, got {self.channel!r}")
        need(0.0 <= self.minimum <= 1.0 and 0.0 <= self.maximum <= 1.0, "minimum and maximum must be in [0, 1]")
        need(self.curve in CURVES, f"curve must be one of {CURVES}, got {self.curve!r}")
        need(
            self.cc_lsb is None
            or (isinstance(self.cc_lsb, int) and 0 <= self.cc_lsb <= 127 and self.cc_lsb != self.cc),
            f"cc_lsb must be another controller 0..127, got {self.cc_lsb!r}",
        )

    def position(self, raw: float) -> float:
        """Controller position in ``[0, 1]`` (``raw`` / full scale) → parameter position in ``[0, 1]``."""
        x = min(1.0, max(0.0, raw))
        if self.curve == "log":
            x = math.log1p(9.0 * x) / math.log(10.0)
        elif self.curve == "exp":
            x = (10.0**x - 1.0) / 9.0
        return self.minimum + x * (self.maximum - self.minimum)
