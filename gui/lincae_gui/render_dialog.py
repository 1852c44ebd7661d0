"""Offline render dialog: input files (one source each), optional post chain, output file.

The render is a :class:`lincae.rig.Rig` of its own, built from the window rig's preset
(:meth:`Rig.to_preset`: engine settings, every parameter, the effect chains) for the chosen files, so a
render sounds like the live mix. It runs on a :class:`RenderWorker` ``QThread`` with a copy of the
window's model (or one it loads), so the render's engine sets the copy's device and weight layout,
never those of the model a live session runs (its precision is a scope and changes no model), and with
the offline commands' PyTorch thread count (:func:`lincae.rig.offline_threads`) while the live worker
keeps its one thread. (A ``lincae render``
child process was measured too: on a busy two-core machine it ran at 2.6x real time with idle threads
sleeping and 0.9x with OpenMP's spinning default, against 3.9x for the copy in this process.)
Progress reaches the progress bar through a queued signal, so the GUI stays responsive. Errors are shown
in the dialog, never as tracebacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QSettings, Qt, QThread, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from lincae.presets import Preset
from lincae_gui.threads import keep_alive

log = logging.getLogger(__name__)

AUDIO_FILTER = "Audio files (*.wav *.flac *.ogg *.mp3 *.aif *.aiff);;All files (*)"


class RenderWorker(QThread):
    """Runs one render; emits :attr:`progress` (done, total samples), then :attr:`done` or :attr:`failed`."""

    progress = pyqtSignal(int, int)
    status = pyqtSignal(str)
    done = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(
        self,
        inputs: list[str],
        output: str,
        *,
        model: Any,
        model_id: str,
        model_loader: Callable[[str], Any],
        post: list[dict[str, Any]] | None,
        preset: Preset | None,
        overwrite: bool,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.inputs, self.output = inputs, output
        self.model, self.model_id, self.model_loader = model, model_id, model_loader
        self.post, self.preset = post, preset
        self.overwrite = overwrite
        self.cancelled = False
        #: What the render ran with (set on the worker thread): its model and PyTorch thread count.
        self.render_model: Any = None
        self.threads = 0

    def _progress(self, done: int, total: int) -> None:
        if self.cancelled:
            raise RuntimeError("render cancelled")
        self.progress.emit(int(done), int(total))

    def run(self) -> None:
        try:
            import copy

            import torch

            from lincae.rig import Rig, file_sources, offline_threads

            torch.set_num_threads(offline_threads())  # this thread's; a live worker keeps its own
            self.threads = torch.get_num_threads()
            if self.model is None:
                self.status.emit(f"Loading model {self.model_id}…")
                model = self.model_loader(self.model_id)
            else:
                model = copy.deepcopy(self.model)  # the render's engine prepares this copy, not the live one
            self.render_model = model
            self.status.emit("Rendering…")
            layout = file_sources(self.inputs)
            preset = self.preset.for_sources(layout) if self.preset is not None else None
            rig = Rig(model, layout, preset, post=self.post or None, model_id=self.model_id)
            result = rig.render(self.inputs, self.output, overwrite=self.overwrite, progress=self._progress)
        except BaseException as e:  # nothing escapes a worker thread
            text = str(e).strip() or type(e).__name__
            self.failed.emit(text if isinstance(e, (ValueError, OSError)) else f"{type(e).__name__}: {text}")
            return
        self.done.emit(result)


class RenderDialog(QDialog):
    """Choose files, a post chain and an output path; render on a worker thread with a progress bar.

    Args:
        model: a loaded model, or ``None`` to load ``model_id`` on the worker thread.
        preset: what to render with: engine settings, parameter values and effect chains (the main
            window's current state); its sources follow the chosen files (see :meth:`Preset.for_sources`).
    """

    finished_render = pyqtSignal(str)  # output path, or "" on failure

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        model: Any = None,
        model_id: str = "default",
        model_loader: Callable[[str], Any] | None = None,
        preset: Preset | None = None,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Render files")
        self.model, self.model_id = model, model_id
        self.model_loader = model_loader or _default_loader
        self.preset = preset
        self.settings = settings
        self.worker: RenderWorker | None = None
        self.result: Any = None
        self.error = ""
        self._reported = False  # the running worker has emitted done/failed

        self.files = QListWidget()
        self.files.setToolTip("Input files, one source each (mono or stereo), mixed in latent space")
        self.add_button = QPushButton("&Add files…")
        self.add_button.setToolTip("Add input audio files")
        self.remove_button = QPushButton("Re&move")
        self.remove_button.setToolTip("Remove the selected input files")
        self.post_edit = QLineEdit()
        self.post_edit.setPlaceholderText("e.g. reverb(room_size=0.3), gain(gain_db=-3)")
        self.post_edit.setToolTip(
            "Optional post chain applied to the decoded mix (same syntax as --post), or a JSON chain file; "
            "it replaces the preset's post chain"
        )
        if preset is not None and preset.post:
            self.post_edit.setPlaceholderText("the preset's post chain (type a chain to replace it)")
        self.output_edit = QLineEdit()
        self.output_edit.setToolTip("Output file (.wav, .flac or .ogg)")
        self.output_browse = QPushButton("…")
        self.output_browse.setToolTip("Choose the output file")
        self.overwrite_box = QCheckBox("Overwrite an existing file")
        self.overwrite_box.setToolTip("Replace the output file when it exists")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setToolTip("Render progress")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.render_button = QPushButton("&Render")
        self.render_button.setDefault(True)
        self.render_button.setToolTip("Start the render (runs in the background)")
        self.cancel_button = QPushButton("&Cancel")
        self.cancel_button.setToolTip("Cancel a running render")
        self.close_button = QPushButton("C&lose")
        self.close_button.setToolTip("Close this dialog")

        files_row = QHBoxLayout()
        files_row.addWidget(self.files, 1)
        buttons = QVBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        files_row.addLayout(buttons)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(self.output_browse)
        form = QFormLayout()
        form.addRow("Inputs", files_row)
        lab = QLabel("&Post chain")
        lab.setBuddy(self.post_edit)
        form.addRow(lab, self.post_edit)
        lab = QLabel("&Output")
        lab.setBuddy(self.output_edit)
        form.addRow(lab, out_row)
        form.addRow("", self.overwrite_box)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.render_button)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.close_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.message)
        lay.addLayout(bottom)
        self.resize(640, 380)

        self.add_button.clicked.connect(self._browse_inputs)
        self.remove_button.clicked.connect(self._remove_selected)
        self.output_browse.clicked.connect(self._browse_output)
        self.render_button.clicked.connect(self.start_render)
        self.cancel_button.clicked.connect(self.cancel_render)
        self.close_button.clicked.connect(self.close)
        self._set_running(False)

    # ---------------------------------------------------------------------------------------- inputs
    def add_inputs(self, paths: list[str | Path]) -> None:
        for p in paths:
            self.files.addItem(str(p))
        if paths and not self.output_edit.text():
            first = Path(paths[0])
            self.output_edit.setText(str(first.with_name(f"{first.stem}-lincae.wav")))

    def inputs(self) -> list[str]:
        return [item.text() for item in (self.files.item(i) for i in range(self.files.count())) if item is not None]

    def _start_dir(self) -> str:
        if self.settings is not None:
            return str(self.settings.value("render/dir", str(Path.home())))
        return str(Path.home())

    def _browse_inputs(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Input files", self._start_dir(), AUDIO_FILTER)
        if paths:
            self.add_inputs(list(paths))
            if self.settings is not None:
                self.settings.setValue("render/dir", str(Path(paths[0]).parent))

    def _remove_selected(self) -> None:
        for item in self.files.selectedItems():
            self.files.takeItem(self.files.row(item))

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Output file", self.output_edit.text() or self._start_dir(), "Audio (*.wav *.flac *.ogg)"
        )
        if path:
            self.output_edit.setText(path)

    # ---------------------------------------------------------------------------------------- render
    def _set_running(self, running: bool) -> None:
        for w in (self.files, self.add_button, self.remove_button, self.post_edit, self.output_edit):
            w.setEnabled(not running)
        self.output_browse.setEnabled(not running)
        self.overwrite_box.setEnabled(not running)
        self.render_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _fail(self, message: str) -> None:
        self._reported = True
        self.error = message
        self.message.setText(f"⚠ {message}")
        self._set_running(False)
        self.finished_render.emit("")

    def start_render(self) -> bool:
        """Check the form and start the worker; ``False`` (with a message) when the form is incomplete."""
        if self.worker is not None:
            # a worker that reported its result is only returning from run(): let it end
            if not (self._reported and self.worker.wait(5000)):
                return False
            self.worker = None
        self.error, self.result, self._reported = "", None, False
        inputs = self.inputs()
        output = self.output_edit.text().strip()
        if not inputs:
            self._fail("Add at least one input file")
            return False
        if not output:
            self._fail("Choose an output file")
            return False
        try:
            from lincae.engine.effects import parse_chain_arg

            post = parse_chain_arg(self.post_edit.text()) if self.post_edit.text().strip() else None
        except Exception as e:
            self._fail(f"Post chain: {e}")
            return False
        self.progress.setValue(0)
        self.message.setText("Starting…")
        self.worker = RenderWorker(
            inputs,
            output,
            model=self.model,
            model_id=self.model_id,
            model_loader=self.model_loader,
            post=post,
            preset=self.preset,
            overwrite=self.overwrite_box.isChecked(),
        )
        keep_alive(self.worker)
        self.worker.progress.connect(self._on_progress)
        self.worker.status.connect(self.message.setText)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._fail)
        self.worker.finished.connect(self._on_worker_finished)
        self._set_running(True)
        self.worker.start()
        return True

    def cancel_render(self) -> None:
        if self.worker is not None:
            self.worker.cancelled = True
            self.message.setText("Cancelling…")

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setValue(round(1000 * done / total) if total else 1000)

    def _on_done(self, result: Any) -> None:
        self._reported = True
        self.result = result
        self.progress.setValue(1000)
        extra = f"; plugin errors: {', '.join(result.plugin_errors)}" if getattr(result, "plugin_errors", None) else ""
        self.message.setText(f"Wrote {result.output} ({result.seconds:.1f} s, {result.sample_rate} Hz){extra}")
        self._set_running(False)
        self.finished_render.emit(str(result.output))

    def _on_worker_finished(self) -> None:
        if self.worker is not None and not self.worker.isRunning():
            self.worker = None

    def done(self, r: int) -> None:  # closing the dialog
        if self.worker is not None:
            self.worker.cancelled = True
            self.worker.wait(30000)
        super().done(r)

    def closeEvent(self, event: Any) -> None:
        if self.worker is not None:
            self.worker.cancelled = True
            self.worker.wait(30000)
        super().closeEvent(event)


def _default_loader(model_id: str) -> Any:
    from lincae.models.base import load_model

    return load_model(model_id or "default")
