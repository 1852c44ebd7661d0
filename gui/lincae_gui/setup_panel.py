"""The setup box: audio devices, MIDI port, sample rate, block size, sources, model, Start/Stop.

The panel lists devices and remembers its choices (:meth:`SetupPanel.restore`, :meth:`SetupPanel.save`);
what the choices do (a live session, a MIDI port, a model load) is the window's.
"""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from lincae_gui.model_loader import describe

BLOCK_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
SAMPLE_RATES = (0, 44100, 48000, 88200, 96000)  # 0: the model's rate
NO_MIDI = "(no MIDI input)"
VIRTUAL_MIDI = "Virtual port (lincae:in)"


def select_device(combo: QComboBox, name: str | None) -> None:
    """Select the device called ``name`` (added to the list, marked missing, when it is not there)."""
    if name is None:
        combo.setCurrentIndex(0)
        return
    i = combo.findData(name)
    if i < 0:
        for j in range(combo.count()):
            data = combo.itemData(j)
            if isinstance(data, str) and data.casefold() == str(name).casefold():
                i = j
                break
    if i < 0:
        combo.addItem(f"{name} (not found)", name)
        i = combo.count() - 1
    combo.setCurrentIndex(i)


def select_text(combo: QComboBox, text: str) -> None:
    """Select the entry ``text`` (added when it is not there)."""
    i = combo.findText(text)
    if i < 0:
        combo.addItem(text)
        i = combo.count() - 1
    combo.setCurrentIndex(i)


class SetupPanel(QGroupBox):
    """Device, MIDI, rate, block, sources and model pickers with Start/Stop."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Setup", parent)
        grid = QGridLayout(self)
        self.input_combo = QComboBox()
        self.input_combo.setToolTip("Audio input device (sources take its channels 1, 2, …)")
        self.output_combo = QComboBox()
        self.output_combo.setToolTip("Audio output device")
        self.midi_combo = QComboBox()
        self.midi_combo.setToolTip("MIDI input port for knobs and faders (reconnected when it comes back)")
        self.refresh_button = QPushButton("Rescan")
        self.refresh_button.setToolTip("Rescan audio devices and MIDI ports (only while stopped)")
        self.block_combo = QComboBox()
        for b in BLOCK_SIZES:
            self.block_combo.addItem(str(b), b)
        self.block_combo.setCurrentIndex(BLOCK_SIZES.index(256))
        self.block_combo.setToolTip("Audio block size in frames (part of the latency)")
        self.rate_combo = QComboBox()
        for r in SAMPLE_RATES:
            self.rate_combo.addItem("Model rate" if r == 0 else f"{r} Hz", r)
        self.rate_combo.setToolTip(
            "Device sample rate; a rate other than the model's (44.1 kHz) is resampled, and the latency says so"
        )
        self.sources_box = QSpinBox()
        self.sources_box.setRange(1, 8)
        self.sources_box.setToolTip("Number of sources: source N takes input channel N (mono)")
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("default")
        self.model_edit.setToolTip("Model id, folder or file (empty: the shipped default model)")
        self.model_button = QPushButton("Load model")
        self.model_button.setToolTip("Load the model now (on a background thread) — Ctrl+L")
        self.model_browse = QPushButton("…")
        self.model_browse.setToolTip("Choose a model folder")
        self.model_browse.setMaximumWidth(32)
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Start live audio (F5)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop live audio (Shift+F5)")
        labels = [("&Input", self.input_combo), ("&Output", self.output_combo), ("MI&DI", self.midi_combo)]
        for col, (text, w) in enumerate(labels):
            lab = QLabel(text)
            lab.setBuddy(w)
            grid.addWidget(lab, 0, 2 * col)
            grid.addWidget(w, 0, 2 * col + 1)
            grid.setColumnStretch(2 * col + 1, 1)
        grid.addWidget(self.refresh_button, 0, 6)
        self.row = QHBoxLayout()
        fields = (
            ("&Rate", self.rate_combo),
            ("&Block", self.block_combo),
            ("&Sources", self.sources_box),
            ("&Model", self.model_edit),
        )
        for text, w in fields:
            lab = QLabel(text)
            lab.setBuddy(w)
            self.row.addWidget(lab)
            self.row.addWidget(w, 1 if w is self.model_edit else 0)
        self.row.addWidget(self.model_browse)
        self.row.addWidget(self.model_button)
        self.row.addSpacing(12)
        self.row.addWidget(self.start_button)
        self.row.addWidget(self.stop_button)
        grid.addLayout(self.row, 1, 0, 1, 7)

    # ------------------------------------------------------------------------------------- choices
    def model_choice(self) -> str | None:
        """The Model field: a model id, folder or file, or ``None`` for the shipped default."""
        return self.model_edit.text().strip() or None

    def midi_port_choice(self) -> str | None:
        text = self.midi_combo.currentText()
        return None if not text or text == NO_MIDI else text

    def block(self) -> int:
        return int(self.block_combo.currentData() or 256)

    def rate(self, model_rate: int) -> int:
        """The device rate in Hz (``model_rate`` for "Model rate")."""
        return int(self.rate_combo.currentData() or model_rate)

    def set_running(self, running: bool, loading: bool) -> None:
        """Lock what cannot change while audio runs (or a model loads)."""
        for w in (self.input_combo, self.output_combo, self.rate_combo, self.block_combo, self.sources_box):
            w.setEnabled(not running)
        self.refresh_button.setEnabled(not running)
        for w in (self.model_edit, self.model_button, self.model_browse):
            w.setEnabled(not running and not loading)
        self.start_button.setEnabled(not running and not loading)
        self.stop_button.setEnabled(running)

    def tab_order(self) -> list[QWidget]:
        return [
            self.input_combo,
            self.output_combo,
            self.midi_combo,
            self.refresh_button,
            self.rate_combo,
            self.block_combo,
            self.sources_box,
            self.model_edit,
            self.model_browse,
            self.model_button,
            self.start_button,
            self.stop_button,
        ]

    # ------------------------------------------------------------------------------------- devices
    def refresh_devices(self, midi_api: str | None, rescan: bool = False) -> list[str]:
        """Fill the device and MIDI pickers, keeping the choices; returns the problems met (one line each)."""
        problems: list[str] = []
        keep = (self.input_combo.currentData(), self.output_combo.currentData(), self.midi_combo.currentText())
        devices: list[Any] = []
        try:
            from lincae.io.devices import list_audio_devices

            devices = list_audio_devices(refresh=rescan)
        except Exception as e:
            problems.append(f"cannot list audio devices: {describe(e)}")
        for combo, direction in ((self.input_combo, "input"), (self.output_combo, "output")):
            combo.clear()
            combo.addItem("System default", None)
            usable = [d for d in devices if d.channels(direction) > 0]
            names = [d.name for d in usable]
            for d in usable:
                key = d.name if names.count(d.name) == 1 else d.label
                combo.addItem(f"{d.name} — {d.hostapi} ({d.channels(direction)} ch)", key)
        ports: list[str] = []
        try:
            from lincae.io.devices import list_midi_inputs

            ports = [p.name for p in list_midi_inputs(midi_api)]
        except Exception as e:
            problems.append(f"MIDI ports unavailable: {describe(e)}")
        self.midi_combo.clear()
        self.midi_combo.addItems([NO_MIDI, VIRTUAL_MIDI, *ports])
        select_device(self.input_combo, keep[0])
        select_device(self.output_combo, keep[1])
        if keep[2]:
            select_text(self.midi_combo, keep[2])
        return problems

    # ------------------------------------------------------------------------------------ settings
    def restore(self, settings: QSettings) -> None:
        """Rate, block, sources and model as last saved (devices: :meth:`restore_devices`, after a scan)."""
        for key, combo in (("audio/rate", self.rate_combo), ("audio/block", self.block_combo)):
            value = settings.value(key)
            if value is not None:
                i = combo.findData(int(value))
                if i >= 0:
                    combo.setCurrentIndex(i)
        sources = settings.value("audio/sources")
        if sources is not None:
            self.sources_box.blockSignals(True)
            self.sources_box.setValue(int(sources))
            self.sources_box.blockSignals(False)
        model = settings.value("model/id")
        if model:
            self.model_edit.setText(str(model))

    def restore_devices(self, settings: QSettings) -> None:
        for key, combo in (("audio/input", self.input_combo), ("audio/output", self.output_combo)):
            value = settings.value(key)
            if value:
                select_device(combo, str(value))
        port = settings.value("midi/port")
        if port:
            select_text(self.midi_combo, str(port))

    def save(self, settings: QSettings) -> None:
        settings.setValue("audio/input", self.input_combo.currentData() or "")
        settings.setValue("audio/output", self.output_combo.currentData() or "")
        settings.setValue("audio/block", self.block())
        settings.setValue("audio/rate", int(self.rate_combo.currentData()))
        settings.setValue("audio/sources", self.sources_box.value())
        settings.setValue("midi/port", self.midi_combo.currentText())
        settings.setValue("model/id", self.model_edit.text().strip())
