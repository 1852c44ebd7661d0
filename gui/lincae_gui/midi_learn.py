"""MIDI in the window: the input port, MIDI learn on any control, the mapping labels, program changes.

The window's :class:`~lincae.rig.Rig` owns the :class:`~lincae.io.midi.MidiController` (its mappings
and program changes, :meth:`Rig.attach_midi`); this part of the window opens the chosen port, polls the
controller on the GUI thread (a 50 Hz timer: CCs with soft takeover, finished learns, program changes)
and shows on each control the CC that drives it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lincae.io.mapping import MidiMapping
from lincae_gui.model_loader import describe
from lincae_gui.setup_panel import VIRTUAL_MIDI

if TYPE_CHECKING:
    from pathlib import Path

    from PyQt6.QtCore import QSettings, QTimer

    from lincae.io.midi import MidiController
    from lincae.rig import Rig
    from lincae_gui.setup_panel import SetupPanel
    from lincae_gui.widgets import ParamControl

log = logging.getLogger(__name__)


class MidiLearn:
    """The window's MIDI behaviour (mixed into :class:`~lincae_gui.main_window.MainWindow`)."""

    rig: Rig
    controls: dict[str, ParamControl]
    setup: SetupPanel
    midi_timer: QTimer
    midi_api: str | None
    settings: QSettings
    preset_path: Path | None

    if TYPE_CHECKING:  # the window's

        def show_info(self, message: str, timeout: int = 8000) -> None: ...
        def show_error(self, title: str, message: str) -> None: ...
        def _update_title(self) -> None: ...

    @property
    def midi(self) -> MidiController | None:
        """The rig's MIDI controller."""
        return self.rig.midi

    def _new_midi(self) -> MidiController:
        from lincae.io.midi import MidiController

        return MidiController(
            self.rig.registry,
            self.rig.mappings,
            api=self.midi_api,
            client_name="lincae",
            on_learned=self._on_learned,
            on_connection=self._on_midi_connection,
        )

    def _attach_midi(self, midi: MidiController) -> None:
        """Give the rig ``midi`` (rebound to the rig's registry and mappings); program changes recall presets
        exactly as in ``lincae live``: program n is the n-th shipped preset (alphabetical, as in the File menu)."""
        try:
            self.rig.attach_midi(midi, report=self._on_recalled)
        except OSError as e:  # no MIDI API could start (no JACK server, no ALSA sequencer): ports retry later
            log.info("MIDI client not started yet: %s", e)
        self._refresh_mapping_labels()

    def _on_recalled(self, line: str) -> None:
        """A program change went through the rig's :class:`~lincae.programs.ProgramRecall`."""
        if self.rig.programs is not None and self.rig.programs.current is self.rig.preset:
            self.preset_path = None
            self._update_title()
        self._refresh_mapping_labels()
        self.show_info(line[0].upper() + line[1:])

    def _midi_port_chosen(self) -> None:
        self._open_midi_port(self.setup.midi_port_choice())
        self.settings.setValue("midi/port", self.setup.midi_combo.currentText())

    def _open_midi_port(self, port: str | None) -> None:
        midi = self.midi
        if midi is None:
            return
        try:
            if port is None:
                midi.close_port()  # the client stays: a port opened later needs no new one
            elif port == VIRTUAL_MIDI:
                midi.open_virtual("in")
                self.show_info("MIDI: virtual input port lincae:in is open")
            elif not midi.watch(port):
                self.show_info(f"MIDI: waiting for {port!r} ({midi.last_error or 'not present'})")
        except Exception as e:
            self.show_error("MIDI", describe(e))

    def poll_midi(self) -> None:
        """Apply pending MIDI and OSC (:meth:`Rig.poll`; timer slot, also called directly by tests)."""
        try:
            self.rig.poll()
        except Exception as e:
            self.midi_timer.stop()
            self.show_error("MIDI", f"{describe(e)} (MIDI and OSC polling stopped; choose the port again)")

    def toggle_learn(self, name: str) -> None:
        """Arm MIDI learn for ``name`` (or cancel it when it is already armed for ``name``)."""
        if self.midi is None:
            return
        if self.midi.learning == name:
            self.cancel_learn()
            return
        self.cancel_learn()
        self.midi.learn(name)
        self.controls[name].set_learning(True)
        self.show_info(f"MIDI learn: move a knob or fader for {name} (Esc cancels)", 0)

    def cancel_learn(self) -> None:
        if self.midi is None:
            return
        armed = self.midi.learning
        self.midi.cancel_learn()
        if armed and armed in self.controls:
            self.controls[armed].set_learning(False)
            self.show_info("MIDI learn cancelled")

    def _on_learned(self, mapping: MidiMapping) -> None:
        control = self.controls.get(mapping.parameter)
        if control is not None:
            control.set_learning(False)
        self._refresh_mapping_labels()
        self.show_info(
            f"MIDI: {mapping.parameter} ← CC {mapping.cc}" + (f" ch {mapping.channel}" if mapping.channel else "")
        )

    def _on_midi_connection(self, port: str, connected: bool) -> None:
        self.show_info(f"MIDI input {port} {'connected' if connected else 'disconnected'}")

    def forget_mapping(self, name: str) -> None:
        if self.midi is None:
            return
        self.midi.set_mappings([m for m in self.midi.mappings if m.parameter != name])
        self._refresh_mapping_labels()

    def forget_all(self) -> None:
        if self.midi is not None:
            self.midi.set_mappings([])
            self._refresh_mapping_labels()

    def _refresh_mapping_labels(self) -> None:
        by_name = {m.parameter: m for m in (self.midi.mappings if self.midi is not None else [])}
        for name, control in self.controls.items():
            control.set_mapping(by_name.get(name))
