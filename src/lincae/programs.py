"""MIDI program changes recall presets while audio runs.

Program change ``n`` (0–127) on any channel recalls preset ``n`` of a list: its parameter values (every
parameter the running engine has; those the preset leaves out return to their defaults) and its MIDI
mappings. What cannot change without restarting the stream — the number of sources, the engine's
windowing and the chains' plugins — stays as started; a preset for another number of sources is refused
with a message, and the audio goes on unchanged.

The recall runs on the thread that calls :meth:`lincae.io.midi.MidiController.poll` (the terminal's loop
or the GUI thread), never on an audio thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lincae.presets import Preset, list_presets, load_preset

if TYPE_CHECKING:
    from lincae.engine.params import ParameterRegistry
    from lincae.io.midi import MidiController


def recall_preset(preset: Preset, registry: ParameterRegistry, midi: MidiController | None = None) -> int:
    """Set every parameter of ``registry`` to ``preset``'s value (its default where the preset has none)
    and give ``midi`` the preset's mappings; returns how many mappings were left out (their parameters are
    not in ``registry``). Raises ``KeyError``/``ValueError`` before anything changes if a value does not fit.
    """
    values = {spec.name: preset.parameters.get(spec.name, spec.default) for spec in registry}
    mappings = [m for m in preset.midi if m.parameter in registry]
    registry.update(values)
    if midi is not None:
        midi.set_mappings(mappings)
        midi.reset_takeover()  # knobs catch the recalled values again before they move them
    return len(preset.midi) - len(mappings)


class ProgramRecall:
    """Recall ``presets[program]`` into a registry (and a MIDI controller's mappings).

    Args:
        registry: the running engine's parameters.
        presets: preset names or paths in program order (program 0 is the first); default: the shipped
            presets in alphabetical order.
        num_sources: the running engine's number of sources; presets for another number are refused.
        report: called with a one-line message after each program change (recalled or refused).
    """

    def __init__(
        self,
        registry: ParameterRegistry,
        presets: Sequence[str | os.PathLike[str]] | None = None,
        *,
        num_sources: int,
        report: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.registry = registry
        self.presets = list(presets) if presets is not None else list(list_presets())
        self.num_sources = num_sources
        self.report = report
        self.midi: MidiController | None = None
        self.current: Preset | None = None

    def attach(self, midi: MidiController) -> None:
        """Receive ``midi``'s program changes, and replace its mappings on each recall."""
        self.midi = midi
        midi.on_program = self

    def __call__(self, channel: int, program: int) -> None:
        """Handle program change ``program`` (0–127) received on MIDI channel ``channel`` (1–16)."""
        self.report(self.recall(program))

    def recall(self, program: int) -> str:
        """Apply preset ``program``; returns what happened, in one line. Never raises for a bad preset."""
        if not 0 <= program < len(self.presets):
            return f"program {program}: no preset (programs 0–{len(self.presets) - 1} are set)"
        entry = self.presets[program]
        try:
            preset = load_preset(entry)
        except (OSError, ValueError) as e:
            return f"program {program}: cannot load preset {entry}: {e}"
        if preset.num_sources != self.num_sources:
            return (
                f"program {program}: preset {entry} is for {preset.num_sources} source(s), "
                f"the stream has {self.num_sources}; unchanged"
            )
        try:
            left_out = recall_preset(preset, self.registry, self.midi)
        except (KeyError, ValueError) as e:
            return f"program {program}: preset {entry} does not fit this stream: {e}"
        self.current = preset
        note = f"; {left_out} MIDI mapping(s) for parameters this stream lacks left out" if left_out else ""
        return f"program {program}: preset {preset.name or entry}{note}"
