"""The mixer: one strip per source (latent gain, invert/mute/solo, input meter) and the master section
(master gain, dry/wet, output meter, latency, worker load, dropouts, xruns).

The panel builds its controls for a registry (:meth:`MixerPanel.bind`) and shows the engine's metrics
(:meth:`MixerPanel.show_metrics`); it writes nothing itself: the window connects the controls.
"""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLayout, QScrollArea, QWidget

from lincae.engine.params import ParameterRegistry
from lincae_gui.widgets import LevelMeter, ParamControl, ParamKnob, ParamToggle


class SourceStrip(QGroupBox):
    """One source: latent gain knob, invert/mute/solo, input level meter."""

    def __init__(self, index: int, registry: ParameterRegistry, parent: QWidget | None = None) -> None:
        super().__init__(f"Source {index}", parent)
        p = f"source.{index}"
        self.gain = ParamKnob(registry.spec(f"{p}.gain_db"), "Gain")
        self.invert = ParamToggle(registry.spec(f"{p}.invert"), "Invert")
        self.mute = ParamToggle(registry.spec(f"{p}.mute"), "Mute")
        self.solo = ParamToggle(registry.spec(f"{p}.solo"), "Solo")
        self.meter = LevelMeter()
        self.meter.setToolTip(f"Input level of source {index} (dBFS)")
        lay = QGridLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.gain, 0, 0)
        lay.addWidget(self.meter, 0, 1, 4, 1)
        lay.addWidget(self.invert, 1, 0)
        lay.addWidget(self.mute, 2, 0)
        lay.addWidget(self.solo, 3, 0)

    def controls(self) -> list[ParamControl]:
        return [self.gain, self.invert, self.mute, self.solo]


def _empty(layout: QLayout) -> None:
    """Remove every item; widgets leave the window at once (``deleteLater`` alone waits for the event loop)."""
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget() if item is not None else None
        if widget is not None:
            widget.setParent(None)
            widget.deleteLater()


class MixerPanel(QWidget):
    """Source strips (scrolling sideways) beside the master box."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.strip_area = QScrollArea()
        self.strip_area.setWidgetResizable(True)
        self.strip_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.strip_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip_holder = QWidget()
        self.strip_layout = QHBoxLayout(self.strip_holder)
        self.strip_layout.setContentsMargins(0, 0, 0, 0)
        self.strip_area.setWidget(self.strip_holder)
        row.addWidget(self.strip_area, 1)

        self.master_box = QGroupBox("Master")
        mgrid = QGridLayout(self.master_box)
        mgrid.setContentsMargins(6, 6, 6, 6)
        self.master_holder = QHBoxLayout()
        mgrid.addLayout(self.master_holder, 0, 0)
        self.output_meter = LevelMeter()
        self.output_meter.setToolTip("Output level (dBFS)")
        mgrid.addWidget(self.output_meter, 0, 1, 2, 1)
        stats = QFormLayout()
        stats.setContentsMargins(0, 0, 0, 0)
        self.latency_label = QLabel("–")
        self.latency_label.setToolTip("Declared input-to-output latency")
        self.load_label = QLabel("–")
        self.load_label.setToolTip("Worker load: compute time / audio time per step (RTF); above 1 drops out")
        self.dropouts_label = QLabel("0")
        self.dropouts_label.setToolTip("Gaps the worker could not fill in time (the fallback played)")
        self.xruns_label = QLabel("0")
        self.xruns_label.setToolTip("Over/underflows reported by the audio device")
        stats.addRow("Latency", self.latency_label)
        stats.addRow("Load (RTF)", self.load_label)
        stats.addRow("Dropouts", self.dropouts_label)
        stats.addRow("Xruns", self.xruns_label)
        mgrid.addLayout(stats, 1, 0)
        row.addWidget(self.master_box, 0)
        self.strips: list[SourceStrip] = []
        self.master_gain: ParamKnob | None = None
        self.dry_wet: ParamKnob | None = None

    def bind(self, registry: ParameterRegistry, num_sources: int) -> list[ParamControl]:
        """Rebuild the strips and master knobs for ``registry``'s mixer parameters; returns every control."""
        _empty(self.strip_layout)
        _empty(self.master_holder)
        self.strips = [SourceStrip(i, registry) for i in range(1, num_sources + 1)]
        for strip in self.strips:
            self.strip_layout.addWidget(strip)
        self.strip_layout.addStretch(1)
        bar = self.strip_area.horizontalScrollBar()
        extra = 2 * self.strip_area.frameWidth() + (bar.sizeHint().height() if bar is not None else 16)
        self.strip_area.setMinimumHeight(self.strip_holder.sizeHint().height() + extra)
        self.master_gain = ParamKnob(registry.spec("master.gain_db"), "Master")
        self.dry_wet = ParamKnob(registry.spec("mix.dry_wet"), "Dry/Wet")
        self.master_holder.addWidget(self.master_gain)
        self.master_holder.addWidget(self.dry_wet)
        return [c for strip in self.strips for c in strip.controls()] + [self.master_gain, self.dry_wet]

    def tab_order(self) -> list[QWidget]:
        """The dials and buttons in reading order."""
        order: list[QWidget] = []
        for strip in self.strips:
            order += [strip.gain.dial, strip.invert.button, strip.mute.button, strip.solo.button]
        if self.master_gain is not None and self.dry_wet is not None:
            order += [self.master_gain.dial, self.dry_wet.dial]
        return order

    def show_metrics(self, m: Any) -> None:
        """Meters and figures of ``m`` (:class:`~lincae.engine.stream.EngineMetrics`)."""
        peaks = list(m.input_peak_db)
        for i, strip in enumerate(self.strips):
            strip.meter.set_level(peaks[i] if i < len(peaks) else -200.0)
        self.output_meter.set_level(m.output_peak_db)
        self.latency_label.setText(f"{m.latency_ms:.1f} ms")
        self.load_label.setText(f"{m.rtf_last:.2f} (peak {m.rtf_peak:.2f})")
        self.dropouts_label.setText(str(m.dropouts))
        self.xruns_label.setText(str(m.xruns))
