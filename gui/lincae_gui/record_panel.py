"""Recording the live set: a Record button, the file it records into, and the time recorded so far.

Recording goes through the window's :class:`~lincae.rig.Rig` (:meth:`Rig.start_recording`,
:meth:`Rig.stop_recording`): what the outputs play, at the device rate, into a ``.wav`` (float32) or
``.flac`` (24-bit) file, and with *Inputs too* each source's input beside it. It needs a running
session; stopping audio finishes the recording. An existing file is replaced only when it was chosen
(and confirmed) in the file chooser.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QSettings, pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from lincae_gui.model_loader import describe

if TYPE_CHECKING:
    from lincae.rig import Rig

RECORD_FILTER = "Audio (*.wav *.flac)"


def clock(seconds: float) -> str:
    """``83.4`` → ``1:23`` (``h:mm:ss`` from an hour on)."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class RecordPanel(QWidget):
    """Record button, file field and chooser, *Inputs too*, and the recording-time indicator.

    Args:
        rig: returns the window's rig (it changes when a preset is loaded).
        settings: remembers the last folder recorded into.
    """

    error = pyqtSignal(str, str)  # title, message
    info = pyqtSignal(str)

    def __init__(self, rig: Callable[[], Rig], settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rig = rig
        self.settings = settings
        self._confirmed: Path | None = None  # a path whose replacement the chooser confirmed
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record what the outputs play into the file (Ctrl+Shift+R); again to stop")
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("recording file (.wav or .flac)")
        self.path_edit.setToolTip("The file the next recording goes into (.wav: float32, .flac: 24-bit)")
        self.browse = QPushButton("…")
        self.browse.setMaximumWidth(32)
        self.browse.setToolTip("Choose the recording file")
        self.inputs_box = QCheckBox("Inputs too")
        self.inputs_box.setToolTip("Also record each source's input beside it (FILE.input1.wav, …)")
        self.time_label = QLabel("")
        self.time_label.setToolTip("Time recorded so far")
        self.time_label.setMinimumWidth(70)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.record_button)
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.browse)
        row.addWidget(self.inputs_box)
        row.addWidget(self.time_label)
        self.record_button.clicked.connect(lambda _checked=False: self.toggle())
        self.browse.clicked.connect(lambda: self.choose_file())
        self.path_edit.textEdited.connect(lambda _t: setattr(self, "_confirmed", None))
        self.record_button.setEnabled(False)  # until a session runs (see refresh)

    def choose_file(self) -> bool:
        """Ask for the recording file (the chooser confirms replacing one); ``False`` when cancelled."""
        start = self.path_edit.text() or str(self.settings.value("record/dir", str(Path.home())))
        path, _ = QFileDialog.getSaveFileName(self, "Record into", start, RECORD_FILTER)
        if not path:
            return False
        if Path(path).suffix.lower() not in (".wav", ".flac"):
            path += ".wav"
        self.set_path(path, confirmed=True)
        return True

    def set_path(self, path: str | Path, *, confirmed: bool = False) -> None:
        """Record into ``path`` next; ``confirmed``: the user agreed to replace an existing file."""
        self.path_edit.setText(str(path))
        self._confirmed = Path(path) if confirmed else None

    def toggle(self) -> None:
        """Start a recording, or stop the one that runs."""
        if self._rig().recording:
            self.stop()
        else:
            self.start()
        self.refresh()

    def start(self) -> bool:
        """Start recording into the file field's path (asking for one when it is empty)."""
        rig = self._rig()
        if not rig.running:
            self.error.emit("Record", "start audio before recording")
            self.refresh()
            return False
        if not self.path_edit.text().strip() and not self.choose_file():
            self.refresh()
            return False
        path = Path(self.path_edit.text().strip())
        try:
            files = rig.start_recording(path, inputs=self.inputs_box.isChecked(), force=path == self._confirmed)
        except (OSError, ValueError) as e:
            self.error.emit("Cannot record", describe(e))
            self.refresh()
            return False
        self._confirmed = None  # the next take does not replace this one unless confirmed again
        self.settings.setValue("record/dir", str(path.parent))
        self.info.emit(f"Recording into {', '.join(str(f) for f in files)}")
        self.refresh()
        return True

    def stop(self) -> list[Path]:
        """Finish the recording; returns the files written."""
        rig = self._rig()
        files = rig.stop_recording()
        problems = rig.session.recording_problems() if rig.session is not None else []
        warnings = rig.session.recording_warnings if rig.session is not None else []
        if problems:
            self.error.emit("Recording", problems[-1])
        elif files:
            self.info.emit(f"Recorded {', '.join(str(f) for f in files)}" + "".join(f"; {w}" for w in warnings))
        self.refresh()
        return files

    def refresh(self) -> None:
        """Timer slot: the indicator, and the button's state (a recording ends with the session)."""
        rig = self._rig()
        session = rig.session if rig.running else None
        recorders = session.recorders if session is not None else []
        self.record_button.setEnabled(session is not None)
        self.record_button.setChecked(bool(recorders))
        self.record_button.setText("■ Stop recording" if recorders else "● Record")
        for w in (self.path_edit, self.browse, self.inputs_box):
            w.setEnabled(not recorders)
        if recorders:
            self.time_label.setText(f"REC {clock(recorders[0].seconds)}")
            self.time_label.setStyleSheet("color: #d33; font-weight: bold")
        else:
            self.time_label.setText("")
            self.time_label.setStyleSheet("")
