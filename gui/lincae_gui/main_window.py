"""The performer's main window: devices, source strips, master section, latent view, presets, MIDI learn.

Threads. Everything here runs on the GUI thread except model loading (:class:`ModelLoader`, a
``QThread``). The window talks to the engine only through its public API:

* controls write the :class:`~lincae.engine.params.ParameterRegistry` by name (``registry.set``);
* registry changes made elsewhere (MIDI, presets, another thread) reach the controls through
  ``registry.subscribe`` → the :attr:`MainWindow.param_changed` signal, which Qt delivers on the GUI
  thread (queued when emitted from another thread);
* a ``QTimer`` (~30 Hz) only *reads* ``StreamingEngine.metrics`` (levels, latency, load, dropouts,
  xruns, the latest latent frame) and ``LiveSession.status``;
* another ``QTimer`` (50 Hz) calls ``MidiController.poll`` (the controller's control thread is the GUI
  thread), which applies CCs with soft takeover and finishes MIDI learns.

Latent view. ``metrics.latents`` is ``[sources, 64]``, the latest latent frame of each source. The heat
map shows, per processed window, one column: by default the **mean over the sources** (what the sources
share); the view menu next to it switches to the mix (``metrics.mix_latents``: gains, inversions, mutes
applied) or one source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QByteArray, QSettings, Qt, QThread, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lincae.engine.config import EngineConfig
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.io.mapping import MidiMapping
from lincae.presets import Preset
from lincae_gui.threads import keep_alive
from lincae_gui.widgets import LatentHeatMap, LevelMeter, ParamControl, ParamKnob, ParamToggle

log = logging.getLogger(__name__)

ORGANIZATION = "lincae"
APPLICATION = "lincae-gui"
BLOCK_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
SAMPLE_RATES = (0, 44100, 48000, 88200, 96000)  # 0: the model's rate
MAX_RECENT = 8
NO_MIDI = "(no MIDI input)"
VIRTUAL_MIDI = "Virtual port (lincae:in)"


def default_settings() -> QSettings:
    """The GUI's settings store (``QSettings(ORGANIZATION, APPLICATION)``; redirect it in tests with
    ``QSettings.setPath`` or pass a ``QSettings`` to :class:`MainWindow`)."""
    return QSettings(ORGANIZATION, APPLICATION)


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if isinstance(e, (ValueError, OSError, KeyError)) else f"{type(e).__name__}: {text}"


class ModelLoader(QThread):
    """Loads a model off the GUI thread; emits :attr:`loaded` (model, id) or :attr:`failed` (message)."""

    loaded = pyqtSignal(object, str)
    failed = pyqtSignal(str)

    def __init__(self, model_id: str, loader: Callable[[str], Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_id = model_id
        self.loader = loader

    def run(self) -> None:
        try:
            model = self.loader(self.model_id)
        except BaseException as e:  # a worker thread must not let anything escape
            self.failed.emit(_describe(e))
            return
        self.loaded.emit(model, self.model_id)


def _load_model(model_id: str) -> Any:
    from lincae.models.registry import load_model

    return load_model(model_id or "default")


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


class MainWindow(QMainWindow):
    """The performer's window.

    Args:
        settings: where geometry, devices and recent presets are remembered (default
            :func:`default_settings`).
        engine_config: engine settings for live sessions (its ``sources`` follow the Sources box).
        model_loader: ``model_loader(id_or_path) -> Autoencoder`` (runs on a worker thread).
        midi_api: MIDI API for the controller (``jack``, ``alsa`` or ``None`` for automatic).
        popups: show errors in message boxes as well as in the status bar (tests turn this off).
    """

    param_changed = pyqtSignal(str, float)
    model_ready = pyqtSignal(object)
    session_started = pyqtSignal()
    session_stopped = pyqtSignal()
    error_shown = pyqtSignal(str)

    def __init__(
        self,
        settings: QSettings | None = None,
        *,
        engine_config: EngineConfig | None = None,
        model_loader: Callable[[str], Any] | None = None,
        midi_api: str | None = None,
        popups: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else default_settings()
        self.engine_config = engine_config or EngineConfig()
        self.model_loader = model_loader or _load_model
        self.midi_api = midi_api
        self.popups = popups
        self.model: Any = None
        self.model_id: str | None = None
        self.session: Any = None
        self.engine: Any = None
        self.midi: Any = None
        self.programs: Any = None  # the ProgramRecall that MIDI program changes go through
        self._adopted_program: Preset | None = None
        self.preset: Preset | None = None
        self._live_chain_params: set[str] = set()  # the loaded preset's chain parameters, once audio ran
        self._shown_plugin_errors = 0
        self.preset_path: Path | None = None
        self.last_error = ""
        self.registry = ParameterRegistry(mixer_parameters(1))
        self.controls: dict[str, ParamControl] = {}
        self.strips: list[SourceStrip] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._loader: ModelLoader | None = None
        self._start_after_load = False
        self._last_windows = -1
        self._last_status = ""
        #: Audio status changes seen by the metrics timer (``running``, ``⚠ device lost; …``), oldest first.
        self.audio_events: list[str] = []

        self.setWindowTitle("lincae")
        self._build_ui()
        self._build_menus()
        self.param_changed.connect(self._on_param_changed)
        self._restore_settings()
        self.refresh_devices()
        self._restore_devices()
        self._set_sources(self.sources_box.value())

        self.meter_timer = QTimer(self)
        self.meter_timer.setInterval(33)  # ~30 Hz
        self.meter_timer.timeout.connect(self._poll_metrics)
        self.meter_timer.start()
        self.midi_timer = QTimer(self)
        self.midi_timer.setInterval(20)
        self.midi_timer.timeout.connect(self.poll_midi)
        self.midi_timer.start()
        self._update_run_state()

    # ------------------------------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        central = QWidget()
        root = QVBoxLayout(central)
        root.setContentsMargins(8, 8, 8, 4)

        # Setup: devices, MIDI, block size, sources, model, start/stop
        setup = QGroupBox("Setup")
        grid = QGridLayout(setup)
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
        row = QHBoxLayout()
        fields = (
            ("&Rate", self.rate_combo),
            ("&Block", self.block_combo),
            ("&Sources", self.sources_box),
            ("&Model", self.model_edit),
        )
        for text, w in fields:
            lab = QLabel(text)
            lab.setBuddy(w)
            row.addWidget(lab)
            row.addWidget(w, 1 if w is self.model_edit else 0)
        row.addWidget(self.model_browse)
        row.addWidget(self.model_button)
        row.addSpacing(12)
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        grid.addLayout(row, 1, 0, 1, 7)
        root.addWidget(setup)

        # Mixer: strips + master
        mixer_row = QHBoxLayout()
        self.strip_area = QScrollArea()
        self.strip_area.setWidgetResizable(True)
        self.strip_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.strip_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip_holder = QWidget()
        self.strip_layout = QHBoxLayout(self.strip_holder)
        self.strip_layout.setContentsMargins(0, 0, 0, 0)
        self.strip_area.setWidget(self.strip_holder)
        mixer_row.addWidget(self.strip_area, 1)

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
        mixer_row.addWidget(self.master_box, 0)
        root.addLayout(mixer_row, 0)

        # Latent view
        latent_box = QGroupBox("Latent space")
        lv = QVBoxLayout(latent_box)
        lv.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        self.latent_combo = QComboBox()
        self.latent_combo.setToolTip(
            "What the heat map shows: the mean of the sources' latent frames, the mix, or one source"
        )
        top.addWidget(QLabel("Show"))
        top.addWidget(self.latent_combo)
        top.addStretch(1)
        self.latent_info = QLabel("64 latent channels × time (one column per processed window)")
        top.addWidget(self.latent_info)
        lv.addLayout(top)
        self.heatmap = LatentHeatMap()
        lv.addWidget(self.heatmap, 1)
        root.addWidget(latent_box, 1)

        self.setCentralWidget(central)
        self.run_label = QLabel("stopped")
        self.statusBar().addPermanentWidget(self.run_label)

        self.refresh_button.clicked.connect(lambda: self.refresh_devices(rescan=True))
        self.model_button.clicked.connect(lambda: self.load_model())
        self.model_browse.clicked.connect(self._browse_model)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.midi_combo.activated.connect(lambda _i: self._midi_port_chosen())
        self.sources_box.valueChanged.connect(self._set_sources)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        assert bar is not None
        file_menu = bar.addMenu("&File")
        self.act_open = self._action(
            file_menu, "&Open preset…", QKeySequence.StandardKey.Open, self._open_preset_dialog
        )
        self.recent_menu = QMenu("Recent presets", self)
        file_menu.addMenu(self.recent_menu)
        self.shipped_menu = QMenu("Shipped presets", self)
        file_menu.addMenu(self.shipped_menu)
        self.act_save = self._action(file_menu, "&Save preset", QKeySequence.StandardKey.Save, self.save_preset)
        self.act_save_as = self._action(file_menu, "Save preset &as…", "Ctrl+Shift+S", self._save_preset_as_dialog)
        file_menu.addSeparator()
        self.act_render = self._action(file_menu, "&Render files…", "Ctrl+R", self.open_render_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        audio_menu = bar.addMenu("&Audio")
        self.act_start = self._action(audio_menu, "&Start", "F5", self.start)
        self.act_stop = self._action(audio_menu, "S&top", "Shift+F5", self.stop)
        self.act_load_model = self._action(audio_menu, "&Load model", "Ctrl+L", lambda: self.load_model())
        midi_menu = bar.addMenu("&MIDI")
        self.act_cancel_learn = self._action(midi_menu, "&Cancel MIDI learn", "Esc", self.cancel_learn)
        self._action(midi_menu, "&Forget all mappings", None, self.forget_all)
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&About", None, self._about)
        self._fill_shipped_menu()
        self.block_combo.currentIndexChanged.connect(lambda _i: self._fill_shipped_menu())  # latency counts the block

    def _action(self, menu: QMenu | None, text: str, shortcut: Any, slot: Callable[[], Any]) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda _checked=False: self._guard(slot))
        if menu is not None:
            menu.addAction(act)
        self.addAction(act)
        return act

    def _guard(self, slot: Callable[[], Any]) -> None:
        """Run ``slot``; an exception becomes a readable message instead of a crash."""
        try:
            slot()
        except Exception as e:
            log.exception("GUI action failed")
            self.show_error("Error", _describe(e))

    # ------------------------------------------------------------------------------------ messages
    def show_error(self, title: str, message: str) -> None:
        """Status bar message (and a non-blocking message box when ``popups``)."""
        self.last_error = f"{title}: {message}"
        self.statusBar().showMessage(self.last_error, 15000)
        self.error_shown.emit(self.last_error)
        if self.popups:
            box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    def show_info(self, message: str, timeout: int = 8000) -> None:
        self.statusBar().showMessage(message, timeout)

    # ------------------------------------------------------------------------------- sources/registry
    @property
    def num_sources(self) -> int:
        return len(self.strips)

    def _set_sources(self, n: int) -> None:
        """Rebuild registry, strips and MIDI controller for ``n`` sources (only while stopped)."""
        if self.session is not None:
            self.sources_box.blockSignals(True)
            self.sources_box.setValue(self.num_sources)
            self.sources_box.blockSignals(False)
            return
        if n == self.num_sources and self.strips:
            return
        old_values = self.registry.values()
        old_mappings = self.midi.mappings if self.midi is not None else []
        wanted_port = self._midi_port_choice()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.registry = ParameterRegistry(mixer_parameters(n))
        self.registry.update({k: v for k, v in old_values.items() if k in self.registry})
        self._unsubscribe = self.registry.subscribe(self._registry_listener)
        while self.strip_layout.count():  # strips and the trailing stretch
            item = self.strip_layout.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().setParent(None)
                item.widget().deleteLater()
        self.strips = []
        while self.master_holder.count():  # off the window now: deleteLater alone waits for the event loop
            item = self.master_holder.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().setParent(None)
                item.widget().deleteLater()
        self.controls = {}
        for i in range(1, n + 1):
            strip = SourceStrip(i, self.registry)
            self.strip_layout.addWidget(strip)
            self.strips.append(strip)
            for c in strip.controls():
                self._bind(c)
        self.strip_layout.addStretch(1)
        bar = self.strip_area.horizontalScrollBar()
        extra = 2 * self.strip_area.frameWidth() + (bar.sizeHint().height() if bar is not None else 16)
        self.strip_area.setMinimumHeight(self.strip_holder.sizeHint().height() + extra)
        self.master_gain = ParamKnob(self.registry.spec("master.gain_db"), "Master")
        self.dry_wet = ParamKnob(self.registry.spec("mix.dry_wet"), "Dry/Wet")
        for c in (self.master_gain, self.dry_wet):
            self.master_holder.addWidget(c)
            self._bind(c)
        for name, value in self.registry.values().items():
            self.controls[name].show_value(value)
        self._make_midi([m for m in old_mappings if m.parameter in self.registry], wanted_port)
        current = self.latent_combo.currentIndex()
        self.latent_combo.clear()
        self.latent_combo.addItem("Mean of sources", "mean")
        self.latent_combo.addItem("Mix (after gains)", "mix")
        for i in range(1, n + 1):
            self.latent_combo.addItem(f"Source {i}", i)
        self.latent_combo.setCurrentIndex(max(0, min(current, self.latent_combo.count() - 1)))
        self._fix_tab_order()

    def _bind(self, control: ParamControl) -> None:
        self.controls[control.name] = control
        control.edited.connect(self._on_control_edited)
        control.learn_requested.connect(self.toggle_learn)
        control.forget_requested.connect(self.forget_mapping)

    def _fix_tab_order(self) -> None:
        order: list[QWidget] = [
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
        for strip in self.strips:
            order += [strip.gain.dial, strip.invert.button, strip.mute.button, strip.solo.button]
        order += [self.master_gain.dial, self.dry_wet.dial, self.latent_combo]
        for a, b in pairwise(order):
            QWidget.setTabOrder(a, b)

    def _registry_listener(self, name: str, value: float) -> None:
        """Registry subscriber: may run on any thread; the signal carries it to the GUI thread."""
        try:
            self.param_changed.emit(name, value)
        except RuntimeError:  # the window is gone (deleted without closing): stop listening
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    def _on_param_changed(self, name: str, value: float) -> None:
        control = self.controls.get(name)
        if control is not None:
            control.show_value(self.registry.get(name) if name in self.registry else value)

    def _on_control_edited(self, name: str, value: float) -> None:
        try:
            self.registry.set(name, value)
        except (KeyError, ValueError) as e:
            self.show_error("Parameter", _describe(e))

    # ------------------------------------------------------------------------------------------ MIDI
    def _make_midi(self, mappings: list[MidiMapping], port: str | None) -> None:
        from lincae.io.midi import MidiController
        from lincae.io.programs import ProgramRecall

        if self.midi is not None:
            try:
                self.midi.close()
            except Exception:
                log.exception("closing MIDI")
        self.midi = MidiController(
            self.registry,
            mappings,
            api=self.midi_api,
            client_name="lincae",
            on_learned=self._on_learned,
            on_connection=self._on_midi_connection,
        )
        # Program changes recall presets exactly as in ``lincae live``: program n is the n-th shipped preset
        # (alphabetical, as in the File menu); values and mappings change, the sources stay.
        self.programs = ProgramRecall(self.registry, None, num_sources=self.num_sources, report=self._on_recalled)
        self.programs.attach(self.midi)
        try:
            self.midi.start_client()  # now, before any audio stream of ours runs on JACK (see JackStream)
        except OSError as e:  # no MIDI API could start (no JACK server, no ALSA sequencer): ports retry later
            log.info("MIDI client not started yet: %s", e)
        self._open_midi_port(port)
        self._refresh_mapping_labels()

    def _on_recalled(self, line: str) -> None:
        """A program change went through :class:`~lincae.io.programs.ProgramRecall`; adopt what it recalled."""
        recalled = self.programs.current if self.programs is not None else None
        if recalled is not None and recalled is not self._adopted_program:
            self._adopted_program = recalled
            self.preset, self.preset_path = recalled, None
            if self.session is None:
                self.engine_config = recalled.engine
            self._refresh_mapping_labels()
            self._update_title()
        self.show_info(line[0].upper() + line[1:])

    def _midi_port_choice(self) -> str | None:
        text = self.midi_combo.currentText()
        return None if not text or text == NO_MIDI else text

    def _midi_port_chosen(self) -> None:
        self._open_midi_port(self._midi_port_choice())
        self.settings.setValue("midi/port", self.midi_combo.currentText())

    def _open_midi_port(self, port: str | None) -> None:
        if self.midi is None:
            return
        try:
            if port is None:
                self.midi.close_port()  # the client stays: a port opened later needs no new one
            elif port == VIRTUAL_MIDI:
                self.midi.open_virtual("in")
                self.show_info("MIDI: virtual input port lincae:in is open")
            else:
                if not self.midi.watch(port):
                    self.show_info(f"MIDI: waiting for {port!r} ({self.midi.last_error or 'not present'})")
        except Exception as e:
            self.show_error("MIDI", _describe(e))

    def poll_midi(self) -> None:
        """Apply pending MIDI (timer slot; also called directly by tests)."""
        if self.midi is None:
            return
        try:
            self.midi.poll()
        except Exception as e:
            self.midi_timer.stop()
            self.show_error("MIDI", f"{_describe(e)} (MIDI polling stopped; choose the port again)")

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

    # --------------------------------------------------------------------------------------- devices
    def refresh_devices(self, rescan: bool = False) -> None:
        """Fill the device and MIDI pickers (``rescan``: re-initialise PortAudio; only while stopped)."""
        if rescan and self.session is not None:
            self.show_info("Stop audio before rescanning devices")
            return
        keep = (self.input_combo.currentData(), self.output_combo.currentData(), self.midi_combo.currentText())
        devices: list[Any] = []
        try:
            from lincae.io.devices import list_audio_devices

            devices = list_audio_devices(refresh=rescan)
        except Exception as e:
            self.show_error("Audio devices", f"cannot list audio devices: {_describe(e)}")
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

            ports = [p.name for p in list_midi_inputs(self.midi_api)]
        except Exception as e:
            self.show_info(f"MIDI ports unavailable: {_describe(e)}")
        self.midi_combo.clear()
        self.midi_combo.addItems([NO_MIDI, VIRTUAL_MIDI, *ports])
        self.select_device(self.input_combo, keep[0])
        self.select_device(self.output_combo, keep[1])
        if keep[2]:
            self._select_text(self.midi_combo, keep[2])

    @staticmethod
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

    @staticmethod
    def _select_text(combo: QComboBox, text: str) -> None:
        i = combo.findText(text)
        if i < 0:
            combo.addItem(text)
            i = combo.count() - 1
        combo.setCurrentIndex(i)

    # ------------------------------------------------------------------------------------------ model
    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", self.model_edit.text() or str(Path.home()))
        if folder:
            self.model_edit.setText(folder)
            self.load_model()

    def load_model(self, model_id: str | None = None) -> None:
        """Load ``model_id`` (default: the Model field) on a worker thread; :attr:`model_ready` follows."""
        if self._loader is not None:
            self.show_info("A model is already loading")
            return
        if self.session is not None:
            self.show_info("Stop audio before loading another model")
            return
        mid = (model_id if model_id is not None else self.model_edit.text()).strip() or "default"
        self.model_edit.setText("" if mid == "default" and not self.model_edit.text() else mid)
        self._loader = keep_alive(ModelLoader(mid, self.model_loader))
        self._loader.loaded.connect(self._on_model_loaded)
        self._loader.failed.connect(self._on_model_failed)
        self._loader.finished.connect(self._on_loader_finished)
        self.run_label.setText(f"loading model {mid}…")
        self._update_run_state()
        self._loader.start()

    def set_model(self, model: Any, model_id: str = "") -> None:
        """Use an already loaded model."""
        self.model, self.model_id = model, model_id
        name = getattr(model, "name", "") or model_id
        self.show_info(f"Model {name} ready ({getattr(model, 'sample_rate', '?')} Hz)")
        self.model_ready.emit(model)

    def _on_model_loaded(self, model: Any, model_id: str) -> None:
        self.set_model(model, model_id)
        self.run_label.setText("stopped")
        if self._start_after_load:
            self._start_after_load = False
            QTimer.singleShot(0, self.start)

    def _on_model_failed(self, message: str) -> None:
        self._start_after_load = False
        self.run_label.setText("stopped")
        self.show_error("Model load failed", message)

    def _on_loader_finished(self) -> None:
        self._loader = None
        self._update_run_state()

    # ------------------------------------------------------------------------------------------ audio
    def source_layout(self) -> list[int]:
        """Channels per source: the engine config's when its source count matches, else mono sources."""
        if self.engine_config.num_sources == self.num_sources:
            return list(self.engine_config.sources)
        return [1] * self.num_sources

    def start(self) -> None:
        """Start live audio (loads the model first when needed). Errors become messages."""
        if self.session is not None:
            return
        wanted = self.model_edit.text().strip() or "default"
        if self.model is None or (self.model_id is not None and self.model_id != wanted and self.model_edit.text()):
            self._start_after_load = True
            self.load_model()
            return
        from lincae.io.live import LiveConfig
        from lincae.rig import Rig

        block = int(self.block_combo.currentData())
        layout = self.source_layout()
        channels: list[tuple[int, ...]] = []
        ch = 1
        for c in layout:
            channels.append(tuple(range(ch, ch + c)))
            ch += c
        if self.midi is not None:
            try:  # a MIDI client must exist before our JACK audio client runs (see JackStream)
                self.midi.start_client()
            except OSError as e:
                log.info("MIDI client not started: %s", e)
        try:
            # The loaded preset's chains run live (a plugin file that fails to load is bypassed and reported);
            # their parameters join the window's registry, which MIDI mappings and presets drive by name.
            preset = self.preset if self.preset is not None and self.preset.num_sources == len(layout) else None
            rig = Rig(
                self.model,
                layout,
                preset,
                engine=self.engine_config,
                parameters={},
                registry=self.registry,
                on_load_error="bypass",
                model_id=self.model_edit.text().strip() or self.model_id,
            )
            self._live_chain_params = set(rig.chain_parameters)
            if self.midi is not None:
                current = self.midi.mappings
                extra = [m for m in rig.mappings if m.parameter in self._live_chain_params and m not in current]
                self.midi.set_mappings([*current, *extra])
            live_cfg = LiveConfig(
                input_device=self.input_combo.currentData(),
                output_device=self.output_combo.currentData(),
                source_channels=tuple(channels),
                output_channels=(1, 2),  # a mono engine output feeds both
                block=block,
                sample_rate=int(self.rate_combo.currentData() or self.model.sample_rate),
                max_block=max(4096, block),
            )
            session = rig.start_live(live_cfg)
            engine = session.engine
        except Exception as e:
            log.exception("start failed")
            self.show_error("Cannot start audio", _describe(e))
            return
        self.engine, self.session = engine, session
        self._shown_plugin_errors = 0
        self._last_windows = -1
        self._last_status = ""
        self._save_device_settings()
        self.show_info(f"Live: {len(layout)} source(s), latency {engine.metrics.latency_ms:.0f} ms")
        self._update_run_state()
        self.session_started.emit()

    def stop(self) -> None:
        self._start_after_load = False
        session, self.session = self.session, None
        if session is not None:
            try:
                session.stop()
            except Exception as e:
                self.show_error("Stop", _describe(e))
            self.show_info("Stopped")
            self.session_stopped.emit()
        self._update_run_state()

    def _update_run_state(self) -> None:
        running = self.session is not None
        loading = self._loader is not None
        running_locked = (self.input_combo, self.output_combo, self.rate_combo, self.block_combo, self.sources_box)
        for w in (*running_locked, self.refresh_button):
            w.setEnabled(not running)
        self.model_edit.setEnabled(not running and not loading)
        self.model_button.setEnabled(not running and not loading)
        self.model_browse.setEnabled(not running and not loading)
        self.start_button.setEnabled(not running and not loading)
        self.stop_button.setEnabled(running)
        self.act_start.setEnabled(not running)
        self.act_stop.setEnabled(running)
        if not loading:
            self.run_label.setText("running" if running else "stopped")

    def _poll_metrics(self) -> None:
        """Timer slot: read (never write) the engine's metrics and the session status."""
        try:
            self._show_metrics()
        except Exception as e:  # a display problem must not take the performance down
            log.exception("metrics display")
            self.statusBar().showMessage(f"Display error: {_describe(e)}", 5000)

    def _show_metrics(self) -> None:
        engine, session = self.engine, self.session
        if engine is None:
            return
        m = engine.metrics
        peaks = list(m.input_peak_db)
        for i, strip in enumerate(self.strips):
            strip.meter.set_level(peaks[i] if i < len(peaks) else -200.0)
        self.output_meter.set_level(m.output_peak_db)
        self.latency_label.setText(f"{m.latency_ms:.1f} ms")
        self.load_label.setText(f"{m.rtf_last:.2f} (peak {m.rtf_peak:.2f})")
        self.dropouts_label.setText(str(m.dropouts))
        self.xruns_label.setText(str(m.xruns))
        if m.windows != self._last_windows:
            self._last_windows = m.windows
            frame = self._latent_frame(m)
            if frame is not None:
                self.heatmap.push(frame)
        if len(m.plugin_errors) > self._shown_plugin_errors:  # a plugin was bypassed; the audio goes on
            self._shown_plugin_errors = len(m.plugin_errors)
            self.audio_events.append(f"⚠ plugin bypassed: {m.plugin_errors[-1]}")
            self.statusBar().showMessage(f"Plugin bypassed: {m.plugin_errors[-1]}", 15000)
        if session is not None:
            status = session.status
            text = status if status == "running" else f"⚠ {status}"
            if m.error:
                text += f" — {m.error}"
            self.run_label.setText(text)
            if text != self._last_status:
                self._last_status = text
                self.audio_events.append(text)
                if status != "running" or m.error:
                    self.statusBar().showMessage(f"Audio: {text}", 10000)

    def _latent_frame(self, m: Any) -> np.ndarray | None:
        latents = m.latents
        choice = self.latent_combo.currentData()
        if choice == "mix":
            return None if m.mix_latents is None else np.asarray(m.mix_latents)
        if latents is None:
            return None
        latents = np.asarray(latents)
        if isinstance(choice, int):
            return latents[choice - 1] if 0 < choice <= latents.shape[0] else None
        return latents.mean(axis=0)

    # ---------------------------------------------------------------------------------------- presets
    def _fill_shipped_menu(self) -> None:
        """One entry per shipped preset, with the latency and worker load its settings cost (description as tooltip)."""
        from lincae.profiles import engine_profiles

        self.shipped_menu.clear()
        self.shipped_menu.setToolTipsVisible(True)
        try:
            profiles = engine_profiles(int(self.block_combo.currentData() or 256))
        except Exception:
            profiles = []
        for p in profiles:
            act = self.shipped_menu.addAction(f"{p.name}  ({p.cost()})")
            assert act is not None
            act.setToolTip(p.description)
            act.triggered.connect(lambda _c=False, n=p.name: self._guard(lambda: self.load_preset(n)))

    def _open_preset_dialog(self) -> None:
        start = str(self.settings.value("presets/dir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open preset", start, "lincae presets (*.json);;All files (*)")
        if path:
            self.load_preset(path)

    def load_preset(self, name_or_path: str | Path) -> bool:
        """Load a preset file (or a shipped preset by name) into every control; ``False`` on errors."""
        from lincae.io.programs import recall_preset
        from lincae.presets import load_preset

        try:
            preset = load_preset(name_or_path)
        except (OSError, ValueError) as e:
            self.show_error("Cannot load preset", _describe(e))
            return False
        if preset.num_sources != self.num_sources and self.session is not None:
            self.show_error(
                "Cannot load preset",
                f"{preset.name or name_or_path} is for {preset.num_sources} source(s); stop audio first",
            )
            return False
        self.engine_config = preset.engine
        self._live_chain_params = set()  # the chains are this preset's from now on
        if preset.num_sources != self.num_sources:
            self.sources_box.setValue(preset.num_sources)  # rebuilds registry, strips and MIDI
        recall_preset(preset, self.registry, self.midi)
        self._refresh_mapping_labels()
        if preset.model and self.session is None and preset.model != (self.model_edit.text().strip() or None):
            self.model_edit.setText(preset.model)
        self.preset = preset
        p = Path(name_or_path)
        self.preset_path = p.resolve() if p.is_file() else None
        if self.preset_path is not None:
            self._add_recent(str(self.preset_path))
            self.settings.setValue("presets/dir", str(self.preset_path.parent))
        self._update_title()
        note = " (its effect chains run live and in renders)" if preset.pre or preset.post else ""
        self.show_info(f"Preset {preset.name or p.stem} loaded{note}")
        return True

    def _mixer_names(self) -> list[str]:
        return [s.name for s in mixer_parameters(self.num_sources)]

    def current_preset(self, name: str | None = None) -> Preset:
        """The window's state as a :class:`Preset` (chains and description kept from the loaded preset)."""
        base = self.preset or Preset()
        layout = self.source_layout()
        engine = EngineConfig.from_dict({**self.engine_config.to_dict(), "sources": layout})
        params = {k: v for k, v in base.parameters.items() if k not in self.registry}
        mixer = set(self._mixer_names())
        params.update({k: v for k, v in self.registry.values().items() if k in mixer or k in self._live_chain_params})
        return Preset(
            name=name if name is not None else base.name,
            description=base.description,
            engine=engine,
            parameters=params,
            midi=self.midi.mappings if self.midi is not None else [],
            pre={k: list(v) for k, v in base.pre.items() if k <= len(layout)},
            post=list(base.post),
            model=(self.model_edit.text().strip() or None) or base.model,
        )

    def save_preset(self) -> bool:
        if self.preset_path is None:
            return self._save_preset_as_dialog()
        return self.save_preset_as(self.preset_path)

    def _save_preset_as_dialog(self) -> bool:
        start = str(self.preset_path or Path(str(self.settings.value("presets/dir", str(Path.home())))) / "preset.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", start, "lincae presets (*.json)")
        if not path:
            return False
        if not path.endswith(".json"):
            path += ".json"
        return self.save_preset_as(path)

    def save_preset_as(self, path: str | Path) -> bool:
        p = Path(path)
        name = self.preset.name if self.preset is not None and self.preset_path == p.resolve() else p.stem
        try:
            preset = self.current_preset(name or p.stem)
            preset.save(p)
        except (OSError, ValueError) as e:
            self.show_error("Cannot save preset", _describe(e))
            return False
        self.preset, self.preset_path = preset, p.resolve()
        self._add_recent(str(self.preset_path))
        self.settings.setValue("presets/dir", str(self.preset_path.parent))
        self._update_title()
        self.show_info(f"Preset saved to {p}")
        return True

    def recent_presets(self) -> list[str]:
        value = self.settings.value("presets/recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str) -> None:
        recent = [path] + [r for r in self.recent_presets() if r != path]
        self.settings.setValue("presets/recent", recent[:MAX_RECENT])
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_presets()
        for i, path in enumerate(recent):
            act = self.recent_menu.addAction(f"&{i + 1} {Path(path).name}")
            assert act is not None
            act.setToolTip(path)
            act.setShortcut(QKeySequence(f"Ctrl+{i + 1}") if i < 9 else QKeySequence())
            act.triggered.connect(lambda _c=False, p=path: self._guard(lambda: self.load_preset(p)))
        self.recent_menu.setEnabled(bool(recent))

    def _update_title(self) -> None:
        name = self.preset.name if self.preset is not None and self.preset.name else None
        where = f" ({self.preset_path.name})" if self.preset_path is not None else ""
        self.setWindowTitle(f"lincae — {name}{where}" if name else "lincae")

    # ----------------------------------------------------------------------------------------- render
    def open_render_dialog(self) -> QWidget:
        from lincae_gui.render_dialog import RenderDialog

        dialog = RenderDialog(
            self,
            model=self.model,
            model_id=self.model_edit.text().strip() or self.model_id or "default",
            model_loader=self.model_loader,
            preset=self.current_preset(),
            settings=self.settings,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About lincae",
            "lincae mixes audio in the latent space of a Linear Consistency Autoencoder.\n\n"
            "Right-click any control for MIDI learn. F5 starts, Shift+F5 stops.",
        )

    # --------------------------------------------------------------------------------------- settings
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 720)
        rate = self.settings.value("audio/rate")
        if rate is not None:
            i = self.rate_combo.findData(int(rate))
            if i >= 0:
                self.rate_combo.setCurrentIndex(i)
        block = self.settings.value("audio/block")
        if block is not None:
            i = self.block_combo.findData(int(block))
            if i >= 0:
                self.block_combo.setCurrentIndex(i)
        sources = self.settings.value("audio/sources")
        if sources is not None:
            self.sources_box.blockSignals(True)
            self.sources_box.setValue(int(sources))
            self.sources_box.blockSignals(False)
        model = self.settings.value("model/id")
        if model:
            self.model_edit.setText(str(model))
        self._fill_recent_menu()

    def _restore_devices(self) -> None:
        for key, combo in (("audio/input", self.input_combo), ("audio/output", self.output_combo)):
            value = self.settings.value(key)
            if value:
                self.select_device(combo, str(value))
        port = self.settings.value("midi/port")
        if port:
            self._select_text(self.midi_combo, str(port))

    def _save_device_settings(self) -> None:
        s = self.settings
        s.setValue("audio/input", self.input_combo.currentData() or "")
        s.setValue("audio/output", self.output_combo.currentData() or "")
        s.setValue("audio/block", int(self.block_combo.currentData()))
        s.setValue("audio/rate", int(self.rate_combo.currentData()))
        s.setValue("audio/sources", self.sources_box.value())
        s.setValue("midi/port", self.midi_combo.currentText())
        s.setValue("model/id", self.model_edit.text().strip())

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self._save_device_settings()
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self.shutdown()
        if event is not None:
            event.accept()

    def shutdown(self) -> None:
        """Stop audio, close MIDI, remember settings (idempotent)."""
        self.meter_timer.stop()
        self.midi_timer.stop()
        self.stop()
        if self._loader is not None:
            self._loader.wait(30000)
        try:
            self.save_settings()
        except Exception:
            log.exception("saving settings")
        if self.midi is not None:
            try:
                self.midi.close()
            except Exception:
                log.exception("closing MIDI")
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
