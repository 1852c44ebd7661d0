"""The *Plugin folders* dialog: the folders presets and chain files may load VST3/AU plugins from.

It edits ``plugin_path`` in lincae's settings file (``$XDG_CONFIG_HOME/lincae/settings.json``, default
``~/.config/lincae/settings.json``; see :mod:`lincae.engine.effects.plugin_paths`), the same list the
commands read, keeping the file's other keys. A folder is added by choosing it or by typing its
absolute path; an empty or relative entry is refused with a message (it would trust whatever folder
lincae runs in). A settings file that cannot be read is shown as such and left as it is. The folders
count from the next chain that is built (a preset loaded, audio started, a render).
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from lincae.engine.effects.plugin_paths import (
    STANDARD_FOLDERS,
    save_settings_plugin_path,
    settings_file,
    settings_plugin_path,
)
from lincae_gui.model_loader import describe


class PluginFoldersDialog(QDialog):
    """Edit the settings file's ``plugin_path``; :attr:`saved` carries the file once written."""

    saved = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Plugin folders")
        self.file = settings_file()
        standard = ", ".join([*STANDARD_FOLDERS["vst3"]])
        intro = QLabel(
            "Presets and chain files may load VST3/AU plugins from these folders, besides the standard "
            f"ones ({standard}) and $LINCAE_PLUGIN_PATH.\nSaved in {self.file}."
        )
        intro.setWordWrap(True)
        self.list = QListWidget()
        self.list.setToolTip("Folders plugins named by presets and chain files may come from")
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("/absolute/folder")
        self.path_edit.setToolTip("A folder to add, by its absolute path")
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add the folder typed beside")
        self.browse_button = QPushButton("Choose…")
        self.browse_button.setToolTip("Choose a folder to add")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected folder")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.add_button)
        row.addWidget(self.browse_button)
        row.addWidget(self.remove_button)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.list, 1)
        lay.addLayout(row)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)
        self.add_button.clicked.connect(lambda: self.add_folder(self.path_edit.text()))
        self.path_edit.returnPressed.connect(lambda: self.add_folder(self.path_edit.text()))
        self.browse_button.clicked.connect(self.choose_folder)
        self.remove_button.clicked.connect(self.remove_selected)
        self.readable = True
        try:
            entries = settings_plugin_path()
        except ValueError as e:  # (PluginLoadError is one): the file is left alone, nothing can be saved
            self.readable = False
            entries = []
            self.message.setText(f"{describe(e)}. Fix or remove the file to edit the folders here.")
        self.list.addItems(entries)
        save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        if save is not None:
            save.setEnabled(self.readable)
        self.resize(560, 320)

    def folders(self) -> list[str]:
        """The folders listed, in order."""
        return [item.text() for item in (self.list.item(i) for i in range(self.list.count())) if item is not None]

    def add_folder(self, text: str) -> bool:
        """Add ``text`` (an absolute folder; ``~`` is the home folder). An empty or relative entry is refused
        with a message and nothing is added; one listed already is not listed twice."""
        folder = text.strip()
        if not folder or not Path(folder).expanduser().is_absolute():
            self.message.setText(
                f"Not added: {folder or 'an empty entry'!r} is not an absolute folder (a relative one would trust "
                "whatever folder lincae runs in)"
            )
            return False
        if folder not in self.folders():
            self.list.addItem(folder)
        missing = "" if Path(folder).expanduser().is_dir() else " (it does not exist yet)"
        self.message.setText(f"Added {folder}{missing}")
        self.path_edit.clear()
        return True

    def choose_folder(self) -> bool:
        """Ask for a folder and add it; ``False`` when cancelled."""
        folder = QFileDialog.getExistingDirectory(self, "Plugin folder", str(Path.home()))
        return bool(folder) and self.add_folder(folder)

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))

    def save(self) -> bool:
        """Write the folders into the settings file and close; a refusal shows its message instead."""
        if not self.readable:
            return False
        try:
            path = save_settings_plugin_path(self.folders())
        except (OSError, ValueError) as e:
            self.message.setText(f"Not saved: {describe(e)}")
            return False
        self.saved.emit(str(path))
        self.accept()
        return True
