"""Controls and displays: parameter knob and toggle (with MIDI learn menus), level meter, latent heat map.

Controls know their registry parameter by name and its :class:`~lincae.engine.params.ParameterSpec`;
they never write the registry themselves. A user edit emits ``edited(name, value)`` (the window writes
the registry); :meth:`ParamControl.show_value` shows a value coming from the registry without emitting.
A value that is not a finite number (NaN, an infinity) is refused, not clamped: the control keeps its
value and emits ``refused(name, message)`` (the window shows the message).
Colours are left to the system palette except in the meter and the heat map.
"""

from __future__ import annotations

import math

import numpy as np
from PyQt6.QtCore import QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QAction, QColor, QContextMenuEvent, QImage, QPainter
from PyQt6.QtWidgets import QDial, QLabel, QMenu, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from lincae.engine.params import ParameterSpec
from lincae.io.mapping import MidiMapping

DIAL_STEPS = 1000


def format_value(spec: ParameterSpec, value: float) -> str:
    """``-6.0 dB``, ``-inf dB`` at the silent floor, ``75 %``, ``on``/``off`` for toggles."""
    if spec.toggle:
        return "on" if value >= 0.5 else "off"
    if spec.unit == "dB":
        return "-inf dB" if value <= spec.minimum and spec.minimum <= -60 else f"{value:+.1f} dB"
    if spec.unit == "%":
        return f"{value:.0f} %"
    return f"{value:.3g} {spec.unit}".strip()


def mapping_text(mapping: MidiMapping | None) -> str:
    """``CC 7`` / ``CC 7 ch 2`` / ``CC 1+33`` (14 bits), or an empty string."""
    if mapping is None:
        return ""
    cc = f"CC {mapping.cc}" + (f"+{mapping.cc_lsb}" if mapping.cc_lsb is not None else "")
    return cc + (f" ch {mapping.channel}" if mapping.channel else "")


class ParamControl(QWidget):
    """Base of controls bound to one parameter: context menu with MIDI learn / forget / reset."""

    edited = pyqtSignal(str, float)  # the user moved the control: (parameter, value)
    refused = pyqtSignal(str, str)  # a value that is not a finite number was refused: (parameter, message)
    learn_requested = pyqtSignal(str)
    forget_requested = pyqtSignal(str)

    def __init__(self, spec: ParameterSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.name = spec.name
        self.mapping: MidiMapping | None = None
        self.learning = False

    # -- to be provided by subclasses
    def value(self) -> float:
        raise NotImplementedError

    def show_value(self, value: float) -> None:
        """Show ``value`` (from the registry) without emitting :attr:`edited`."""
        raise NotImplementedError

    def _refresh_midi(self) -> None:
        raise NotImplementedError

    # -- MIDI state
    def set_mapping(self, mapping: MidiMapping | None) -> None:
        self.mapping = mapping
        self._refresh_midi()

    def set_learning(self, on: bool) -> None:
        self.learning = on
        self._refresh_midi()

    def _refuse_non_finite(self, value: float) -> bool:
        """Whether ``value`` is not a finite number, in which case :attr:`refused` says so (nothing changes)."""
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            self.refused.emit(
                self.name,
                f"parameter {self.name}: {value!r} is not a finite number; it stays at "
                f"{format_value(self.spec, self.value())}",
            )
        return not finite

    def midi_text(self) -> str:
        if self.learning:
            return "learning…"
        return mapping_text(self.mapping)

    def base_tooltip(self) -> str:
        s = self.spec
        rng = "off / on" if s.toggle else f"{s.minimum:g} … {s.maximum:g} {s.unit}".strip()
        tip = f"{s.description or s.name}\n{s.name} ({rng})"
        midi = self.midi_text()
        tip += f"\nMIDI: {midi}" if midi else "\nRight-click → MIDI learn"
        return tip

    def contextMenuEvent(self, event: QContextMenuEvent | None) -> None:
        if event is None:
            return
        self.context_menu().exec(event.globalPos())

    def context_menu(self) -> QMenu:
        menu = QMenu(self)
        learn = QAction("Cancel MIDI learn" if self.learning else "MIDI learn", menu)
        learn.triggered.connect(lambda: self.learn_requested.emit(self.name))
        menu.addAction(learn)
        forget = QAction(f"Forget MIDI mapping ({mapping_text(self.mapping)})" if self.mapping else "Forget", menu)
        forget.setEnabled(self.mapping is not None)
        forget.triggered.connect(lambda: self.forget_requested.emit(self.name))
        menu.addAction(forget)
        menu.addSeparator()
        reset = QAction(f"Reset to {format_value(self.spec, self.spec.default)}", menu)
        reset.triggered.connect(lambda: self.edited.emit(self.name, self.spec.default))
        menu.addAction(reset)
        return menu


class ParamKnob(ParamControl):
    """A dial for a continuous parameter with its value (``-6.0 dB``) and its MIDI CC below."""

    def __init__(self, spec: ParameterSpec, title: str, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.title = QLabel(title)
        self.title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.dial = QDial()
        self.dial.setRange(0, DIAL_STEPS)
        self.dial.setNotchesVisible(True)
        self.dial.setWrapping(False)
        self.dial.setSingleStep(5)
        self.dial.setPageStep(50)
        self.dial.setFixedSize(64, 64)
        self.dial.setAccessibleName(f"{title} ({spec.name})")
        self.readout = QLabel()
        self.readout.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.cc_label = QLabel()
        self.cc_label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        font = self.cc_label.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        self.cc_label.setFont(font)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(1)
        lay.addWidget(self.title)
        lay.addWidget(self.dial, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(self.readout)
        lay.addWidget(self.cc_label)
        self.setFocusProxy(self.dial)
        self._value = spec.default
        self._quiet = False
        self.dial.valueChanged.connect(self._on_dial)
        self.show_value(spec.default)
        self._refresh_midi()

    def value(self) -> float:
        return self._value

    def _on_dial(self, position: int) -> None:
        if self._quiet:
            return
        self._value = self.spec.from_normalized(position / DIAL_STEPS)
        self.readout.setText(format_value(self.spec, self._value))
        self.edited.emit(self.name, self._value)

    def set_value(self, value: float) -> None:
        """Move the knob as a user would (emits :attr:`edited`; a value past an end stops at it). NaN and
        infinities are refused (:attr:`refused`), the knob unmoved."""
        if self._refuse_non_finite(value):
            return
        v = min(self.spec.maximum, max(self.spec.minimum, float(value)))
        self._value = v
        self._quiet = True
        try:
            self.dial.setValue(round(self.spec.to_normalized(v) * DIAL_STEPS))
        finally:
            self._quiet = False
        self.readout.setText(format_value(self.spec, v))
        self.edited.emit(self.name, v)

    def show_value(self, value: float) -> None:
        self._value = float(value)
        self._quiet = True
        try:
            self.dial.setValue(round(self.spec.to_normalized(self._value) * DIAL_STEPS))
        finally:
            self._quiet = False
        self.readout.setText(format_value(self.spec, self._value))

    def _refresh_midi(self) -> None:
        self.cc_label.setText(self.midi_text() or " ")
        tip = self.base_tooltip()
        for w in (self, self.dial, self.readout, self.title, self.cc_label):
            w.setToolTip(tip)


class ParamToggle(ParamControl):
    """A checkable button for a toggle parameter (invert, mute, solo); its CC is shown in the label."""

    def __init__(self, spec: ParameterSpec, text: str, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.text = text
        self.button = QPushButton(text)
        self.button.setCheckable(True)
        self.button.setAccessibleName(f"{text} ({spec.name})")
        self.button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.button.setMinimumWidth(self.button.fontMetrics().horizontalAdvance(f"{text} CC127") + 16)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.button)
        self.setFocusProxy(self.button)
        self._quiet = False
        self.button.toggled.connect(self._on_toggled)
        self.show_value(spec.default)
        self._refresh_midi()

    def value(self) -> float:
        return 1.0 if self.button.isChecked() else 0.0

    def _on_toggled(self, checked: bool) -> None:
        if not self._quiet:
            self.edited.emit(self.name, 1.0 if checked else 0.0)

    def set_value(self, value: float) -> None:
        """Click as a user would: emits :attr:`edited` (also when the state does not change). NaN and
        infinities are refused (:attr:`refused`), the button unchanged."""
        if self._refuse_non_finite(value):
            return
        on = float(value) >= 0.5
        if self.button.isChecked() == on:
            self.edited.emit(self.name, 1.0 if on else 0.0)
        else:
            self.button.setChecked(on)

    def show_value(self, value: float) -> None:
        self._quiet = True
        try:
            self.button.setChecked(float(value) >= 0.5)
        finally:
            self._quiet = False

    def _refresh_midi(self) -> None:
        # compact on the button (``Mute CC64``, ``Mute …`` while learning); the full mapping is in the tooltip
        if self.learning:
            self.button.setText(f"{self.text} …")
        elif self.mapping is not None:
            self.button.setText(f"{self.text} CC{self.mapping.cc}")
        else:
            self.button.setText(self.text)
        tip = self.base_tooltip()
        self.setToolTip(tip)
        self.button.setToolTip(tip)


class LevelMeter(QWidget):
    """Vertical peak meter from ``floor_db`` to +6 dBFS with a decaying peak hold."""

    def __init__(self, floor_db: float = -60.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.floor_db = floor_db
        self.top_db = 6.0
        self.level_db = -200.0
        self.hold_db = -200.0
        self._hold_age = 0
        self.setMinimumSize(14, 80)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.setToolTip("Peak level (dBFS)")

    def sizeHint(self) -> QSize:
        return QSize(16, 120)

    def set_level(self, db: float) -> None:
        db = -200.0 if not math.isfinite(db) else float(db)
        # fall at most 1.5 dB per update (about 45 dB/s at 30 Hz): easier to read than raw block peaks
        self.level_db = db if db >= self.level_db else max(db, self.level_db - 1.5)
        if db >= self.hold_db or self._hold_age > 40:
            self.hold_db, self._hold_age = db, 0
        else:
            self._hold_age += 1
        self.setToolTip(f"Peak level: {'-inf' if self.level_db <= -120 else f'{self.level_db:.1f}'} dBFS")
        self.update()

    def _frac(self, db: float) -> float:
        return min(1.0, max(0.0, (db - self.floor_db) / (self.top_db - self.floor_db)))

    def paintEvent(self, event: object) -> None:
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        p.fillRect(r, QColor(20, 20, 20))
        h = r.height()
        frac = self._frac(self.level_db)
        for lo, hi, colour in ((-200.0, -12.0, QColor(40, 200, 80)), (-12.0, 0.0, QColor(230, 200, 40))):
            a, b = self._frac(max(lo, self.floor_db)), min(frac, self._frac(hi))
            if b > a:
                p.fillRect(QRectF(r.left(), r.bottom() - b * h, r.width(), (b - a) * h), colour)
        if frac > self._frac(0.0):
            a = self._frac(0.0)
            p.fillRect(QRectF(r.left(), r.bottom() - frac * h, r.width(), (frac - a) * h), QColor(230, 50, 40))
        if self.hold_db > self.floor_db:
            y = r.bottom() - self._frac(self.hold_db) * h
            p.fillRect(QRectF(r.left(), y, r.width(), 2), QColor(240, 240, 240))
        p.setPen(QColor(110, 110, 110))
        for tick in (0.0, -6.0, -12.0, -24.0, -48.0):  # scale marks; 0 dBFS spans the width
            y = round(r.bottom() - self._frac(tick) * h)
            p.drawLine(round(r.left()), y, round(r.right() if tick == 0.0 else r.left() + r.width() / 3), y)
        p.end()


def _diverging_lut() -> np.ndarray:
    """256 × RGB: blue (negative) → near black (0) → orange/yellow (positive)."""
    t = np.linspace(-1.0, 1.0, 256)
    pos, neg = np.clip(t, 0, 1), np.clip(-t, 0, 1)
    r = 12 + 243 * pos**0.8 + 30 * neg
    g = 12 + 200 * pos**1.6 + 120 * neg**1.5
    b = 18 + 40 * pos + 237 * neg**0.8
    return np.stack([r, g, b], axis=1).clip(0, 255).astype(np.uint8)


class LatentHeatMap(QWidget):
    """Scrolling heat map of latent frames: one column per frame (newest on the right), one row per channel.

    Values are shown as ``tanh(x / scale)`` on a diverging map (blue negative, black 0, orange
    positive); ``scale`` follows the running peak magnitude (slow decay) so that quiet and loud
    passages both stay readable.
    """

    def __init__(self, channels: int = 64, history: int = 160, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.channels = channels
        self.history = history
        self._lut = _diverging_lut()
        self._rgb = np.zeros((channels, history, 3), np.uint8)
        self._rgb[...] = self._lut[128]
        self.scale = 1.0
        self.frames = 0
        self.setMinimumSize(200, 96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("Latent channels (rows, 0 at the top) over time (newest on the right)")

    def sizeHint(self) -> QSize:
        return QSize(600, 160)

    def push(self, frame: np.ndarray) -> None:
        """Append one latent frame (``[C]``); channels beyond the map's rows are ignored, missing ones are 0."""
        x = np.zeros(self.channels, np.float32)
        f = np.asarray(frame, np.float32).reshape(-1)[: self.channels]
        x[: f.size] = np.nan_to_num(f)
        peak = float(np.abs(x).max()) if x.size else 0.0
        self.scale = max(peak, self.scale * 0.995, 1e-3)
        idx = np.clip(((np.tanh(x / self.scale) + 1.0) * 127.5).astype(np.int32), 0, 255)
        self._rgb = np.roll(self._rgb, -1, axis=1)
        self._rgb[:, -1] = self._lut[idx]
        self.frames += 1
        self.update()

    def image(self) -> QImage:
        data = np.ascontiguousarray(self._rgb)
        img = QImage(data.data, self.history, self.channels, 3 * self.history, QImage.Format.Format_RGB888)
        return img.copy()  # own the pixels (the array may be replaced)

    def paintEvent(self, event: object) -> None:
        p = QPainter(self)
        p.drawImage(QRectF(self.rect()), self.image())
        p.end()
