"""The performer's main window: a view of one :class:`~lincae.rig.Rig` (as Friture's view-model).

The rig holds the session: model, sources, engine settings, chains, the parameter registry, MIDI
mappings and program changes, the live session, and the preset it turns back into. The window builds
it (from the Setup box, a preset, or the rig it replaces), binds its panels to the rig's registry,
and sends every action through it: Start/Stop (:meth:`Rig.start_live` with the live worker's thread
count, :meth:`Rig.stop`), MIDI (:meth:`Rig.attach_midi`), presets (:meth:`Rig.recall`,
:meth:`Rig.to_preset`) and renders (a rig of the render's own, from :meth:`Rig.to_preset`, on its own
model copy; see :mod:`lincae_gui.render_dialog`).

Panels, one module each: :mod:`~lincae_gui.setup_panel` (devices, model, Start/Stop),
:mod:`~lincae_gui.mixer_panel` (strips and master), :mod:`~lincae_gui.latent_panel` (heat map);
behaviours: :mod:`~lincae_gui.midi_learn`, :mod:`~lincae_gui.preset_actions`; the *Plugin folders*
dialog: :mod:`~lincae_gui.plugin_folders`.

Threads. Everything here runs on the GUI thread except model loading (:class:`ModelLoader`) and
renders (a ``QThread`` each). Controls write the registry by name; registry changes made elsewhere
(MIDI, presets, other threads) reach the controls through ``registry.subscribe`` → the
:attr:`MainWindow.param_changed` signal, which Qt delivers on the GUI thread. A ``QTimer`` (~30 Hz) only
*reads* ``StreamingEngine.metrics`` and ``LiveSession.status``; another (50 Hz) polls MIDI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QByteArray, QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from lincae.engine.config import EngineConfig
from lincae.engine.params import ParameterRegistry
from lincae.presets import Preset
from lincae.rig import Rig
from lincae_gui.latent_panel import LatentPanel
from lincae_gui.midi_learn import MidiLearn
from lincae_gui.mixer_panel import MixerPanel
from lincae_gui.model_loader import ModelLoader, describe, load_model
from lincae_gui.osc_panel import OscPanel
from lincae_gui.preset_actions import PresetActions
from lincae_gui.record_panel import RecordPanel
from lincae_gui.setup_panel import SetupPanel, select_device
from lincae_gui.threads import keep_alive
from lincae_gui.widgets import ParamControl

log = logging.getLogger(__name__)

ORGANIZATION = "lincae"
APPLICATION = "lincae-gui"


def default_settings() -> QSettings:
    """The GUI's settings store (``QSettings(ORGANIZATION, APPLICATION)``; redirect it in tests with
    ``QSettings.setPath`` or pass a ``QSettings`` to :class:`MainWindow`)."""
    return QSettings(ORGANIZATION, APPLICATION)


class MainWindow(PresetActions, MidiLearn, QMainWindow):
    """The performer's window, a view of :attr:`rig`.

    Args:
        settings: where geometry, devices and recent presets are remembered (default
            :func:`default_settings`).
        engine_config: engine settings of the first rig (its ``sources`` follow the Sources box).
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
        self.model_loader = model_loader or load_model
        self.midi_api = midi_api
        self.popups = popups
        self.loaded_model_id: str | None = None  # what the rig's model was loaded as
        self.preset_path: Path | None = None
        self.last_error = ""
        self.controls: dict[str, ParamControl] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._loader: ModelLoader | None = None
        self._start_after_load = False
        self._shown_plugin_errors = 0
        self._last_status = ""
        #: Audio status changes seen by the metrics timer (``running``, ``⚠ device lost; …``), oldest first.
        self.audio_events: list[str] = []

        self.setWindowTitle("lincae")
        self._build_ui()
        self._build_menus()
        self.param_changed.connect(self._on_param_changed)
        self._restore_settings()
        self.refresh_devices()
        self.setup.restore_devices(self.settings)
        n = self.setup.sources_box.value()
        engine = engine_config or EngineConfig()
        layout = list(engine.sources) if engine.num_sources == n else [1] * n
        self.rig = Rig(None, layout, engine=engine, on_load_error="bypass", model_id=self.setup.model_choice())
        self._use_rig(self.rig, self._new_midi())
        self._open_midi_port(self.setup.midi_port_choice())

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
        self.setup = SetupPanel()
        root.addWidget(self.setup)
        self.record = RecordPanel(lambda: self.rig, self.settings)
        self.osc_panel = OscPanel(lambda: self.rig, self.settings)
        for panel in (self.record, self.osc_panel):
            panel.error.connect(self.show_error)
            panel.info.connect(self.show_info)
        session_row = QHBoxLayout()
        session_row.setContentsMargins(4, 0, 4, 0)
        session_row.addWidget(self.record, 1)
        session_row.addSpacing(16)
        session_row.addWidget(self.osc_panel)
        root.addLayout(session_row)
        self.mixer = MixerPanel()
        root.addWidget(self.mixer, 0)
        self.latent = LatentPanel()
        root.addWidget(self.latent, 1)
        self.setCentralWidget(central)
        self.run_label = QLabel("stopped")
        self.statusBar().addPermanentWidget(self.run_label)

        s = self.setup
        s.refresh_button.clicked.connect(lambda: self.refresh_devices(rescan=True))
        s.model_button.clicked.connect(lambda: self.load_model())
        s.model_browse.clicked.connect(self._browse_model)
        s.start_button.clicked.connect(self.start)
        s.stop_button.clicked.connect(self.stop)
        s.midi_combo.activated.connect(lambda _i: self._midi_port_chosen())
        s.sources_box.valueChanged.connect(self._set_sources)
        s.model_edit.textChanged.connect(self._model_field_changed)
        # the panels' widgets, by their old names (scripts and tests drive them)
        self.input_combo, self.output_combo, self.midi_combo = s.input_combo, s.output_combo, s.midi_combo
        self.rate_combo, self.block_combo, self.sources_box = s.rate_combo, s.block_combo, s.sources_box
        self.model_edit, self.start_button, self.stop_button = s.model_edit, s.start_button, s.stop_button
        self.master_box, self.strip_holder, self.heatmap = (
            self.mixer.master_box,
            self.mixer.strip_holder,
            self.latent.heatmap,
        )
        self.latency_label = self.mixer.latency_label

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
        self.act_record = self._action(audio_menu, "&Record / stop recording", "Ctrl+Shift+R", self.record.toggle)
        audio_menu.addSeparator()
        self.act_plugin_folders = self._action(audio_menu, "&Plugin folders…", None, self.open_plugin_folders)
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
            self.show_error("Error", describe(e))

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

    # ------------------------------------------------------------------------------------- the rig
    @property
    def registry(self) -> ParameterRegistry:
        return self.rig.registry

    @property
    def session(self) -> Any:
        """The rig's live session, or ``None``."""
        return self.rig.session

    @property
    def engine(self) -> Any:
        """The rig's streaming engine (the last one started), or ``None``."""
        return self.rig.engine

    @property
    def engine_config(self) -> EngineConfig:
        return self.rig.engine_config

    @property
    def model(self) -> Any:
        return self.rig.model

    @property
    def num_sources(self) -> int:
        return self.rig.num_sources

    def _build_rig(self, sources: list[int], preset: Preset | None) -> Rig:
        """A rig for ``sources`` from ``preset`` with the loaded model (a plugin that fails to load is bypassed
        and reported, as live)."""
        return Rig(
            self.rig.model,
            sources,
            preset,
            on_load_error="bypass",
            model_id=self.setup.model_choice() or (preset.model if preset is not None else None),
        )

    def _use_rig(self, rig: Rig, midi: Any = None) -> None:
        """Make ``rig`` the window's: bind the panels to its registry and hand it the MIDI controller."""
        old = getattr(self, "rig", rig)
        midi = midi if midi is not None else old.midi
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.rig = rig
        self.osc_panel.follow(old, rig)
        self._unsubscribe = rig.registry.subscribe(self._registry_listener)
        self.controls = {}
        for control in self.mixer.bind(rig.registry, rig.num_sources):
            self.controls[control.name] = control
            control.edited.connect(self._on_control_edited)
            control.refused.connect(lambda _name, message: self.show_error("Parameter", message))
            control.learn_requested.connect(self.toggle_learn)
            control.forget_requested.connect(self.forget_mapping)
            control.show_value(rig.registry.get(control.name))
        self.strips = self.mixer.strips
        self.latent.set_sources(rig.num_sources)
        self.sources_box.blockSignals(True)
        self.sources_box.setValue(rig.num_sources)
        self.sources_box.blockSignals(False)
        if midi is not None:
            self._attach_midi(midi)
        order = [*self.setup.tab_order(), *self.mixer.tab_order(), self.latent.combo]
        for a, b in pairwise(order):
            QWidget.setTabOrder(a, b)
        self._update_title()

    def _set_sources(self, n: int) -> None:
        """A rig of ``n`` sources (only while stopped): this one's state, sources past ``n`` left out."""
        if self.rig.running:
            self.sources_box.blockSignals(True)
            self.sources_box.setValue(self.num_sources)
            self.sources_box.blockSignals(False)
            return
        if n == self.num_sources:
            return
        layout = (list(self.rig.engine_config.sources) + [1] * n)[:n]
        try:
            self._use_rig(self._build_rig(layout, self.rig.to_preset().for_sources(layout)))
        except (KeyError, OSError, ValueError) as e:
            self.show_error("Sources", describe(e))

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
            self.show_error("Parameter", describe(e))

    # --------------------------------------------------------------------------------------- devices
    def refresh_devices(self, rescan: bool = False) -> None:
        """Fill the device and MIDI pickers (``rescan``: re-initialise PortAudio; only while stopped)."""
        if rescan and getattr(self, "rig", None) is not None and self.rig.running:
            self.show_info("Stop audio before rescanning devices")
            return
        for problem in self.setup.refresh_devices(self.midi_api, rescan):
            if problem.startswith("MIDI"):
                self.show_info(problem)
            else:
                self.show_error("Audio devices", problem)

    select_device = staticmethod(select_device)

    # ------------------------------------------------------------------------------------------ model
    def _model_field_changed(self, text: str) -> None:
        if getattr(self, "rig", None) is not None:
            self.rig.model_id = text.strip() or None  # what presets saved from now on name

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
        if self.rig.running:
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
        """Give the rig an already loaded model."""
        self.rig.use_model(model)
        self.loaded_model_id = model_id
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
        """Channels per source (the rig's)."""
        return list(self.rig.engine_config.sources)

    def start(self) -> None:
        """Start the rig live (loads the model first when needed). Errors become messages."""
        if self.rig.running:
            return
        wanted = self.setup.model_choice() or "default"
        if self.rig.model is None or (self.loaded_model_id not in (None, wanted) and self.setup.model_choice()):
            self._start_after_load = True
            self.load_model()
            return
        from lincae.io.live import LiveConfig

        channels: list[tuple[int, ...]] = []
        ch = 1
        for c in self.source_layout():
            channels.append(tuple(range(ch, ch + c)))
            ch += c
        if self.midi is not None:
            try:  # a MIDI client must exist before our JACK audio client runs (see JackStream)
                self.midi.start_client()
            except OSError as e:
                log.info("MIDI client not started: %s", e)
        block = self.setup.block()
        config = LiveConfig(
            input_device=self.input_combo.currentData(),
            output_device=self.output_combo.currentData(),
            source_channels=tuple(channels),
            output_channels=(1, 2),  # a mono engine output feeds both
            block=block,
            sample_rate=self.setup.rate(self.rig.model.sample_rate),
            max_block=max(4096, block),
        )
        try:
            session = self.rig.start_live(config)
        except Exception as e:
            log.exception("start failed")
            self.show_error("Cannot start audio", describe(e))
            return
        self._shown_plugin_errors = 0
        self._last_status = ""
        self.latent.restart()
        self.setup.save(self.settings)
        notice = session.engine.metrics.notice  # e.g. a streaming preset with a model that cannot stream
        self.show_info(
            f"Live: {self.num_sources} source(s), latency {session.engine.metrics.latency_ms:.0f} ms"
            + (f"; {notice}" if notice else ""),
            timeout=0 if notice else 8000,  # a standing remark stays until something else is said
        )
        self._update_run_state()
        self.session_started.emit()

    def stop(self) -> None:
        self._start_after_load = False
        if self.rig.running:
            try:
                self.rig.stop()
            except Exception as e:
                self.show_error("Stop", describe(e))
            self.show_info("Stopped")
            self.session_stopped.emit()
        self._update_run_state()

    def _update_run_state(self) -> None:
        running, loading = self.rig.running, self._loader is not None
        self.setup.set_running(running, loading)
        self.record.refresh()
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
            self.statusBar().showMessage(f"Display error: {describe(e)}", 5000)

    def _show_metrics(self) -> None:
        engine, session = self.rig.engine, self.rig.session
        if engine is None:
            return
        m = engine.metrics
        self.record.refresh()
        self.mixer.show_metrics(m)
        self.latent.show_metrics(m)
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

    # ----------------------------------------------------------------------------------------- render
    def open_render_dialog(self) -> QWidget:
        """The render dialog, rendering this rig's state (a copy of its model, its preset) on a worker thread."""
        from lincae_gui.render_dialog import RenderDialog

        dialog = RenderDialog(
            self,
            model=self.rig.model,
            model_id=self.setup.model_choice() or self.loaded_model_id or "default",
            model_loader=self.model_loader,
            preset=self.current_preset(),
            settings=self.settings,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def open_plugin_folders(self) -> QWidget:
        """The *Plugin folders* dialog (``plugin_path`` of the settings file; see :mod:`lincae_gui.plugin_folders`)."""
        from lincae_gui.plugin_folders import PluginFoldersDialog

        dialog = PluginFoldersDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(lambda path: self.show_info(f"Plugin folders saved in {path}"))
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
        self.setup.restore(self.settings)
        self._fill_recent_menu()

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.setup.save(self.settings)
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
        self.rig.stop_osc()
        if self.midi is not None:
            try:
                self.midi.close()
            except Exception:
                log.exception("closing MIDI")
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
