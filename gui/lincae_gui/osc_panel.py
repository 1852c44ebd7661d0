"""OSC control: a switch (off by default) and the UDP ``host:port`` it listens on.

The server is the window rig's (:meth:`Rig.start_osc`; see :mod:`lincae.io.osc` for the addresses);
when the window builds another rig (a preset, another number of sources) the server moves to it. The
window's MIDI timer polls it (:meth:`Rig.poll`), on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PyQt6.QtCore import QSettings, pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QHBoxLayout, QLineEdit, QWidget

from lincae.io.osc import parse_osc_address
from lincae_gui.model_loader import describe

if TYPE_CHECKING:
    from lincae.rig import Rig

DEFAULT_ADDRESS = "127.0.0.1:9000"


def parse_address(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` → ``(host, port)`` (the host defaults to 127.0.0.1), as ``lincae live --osc``."""
    try:
        return parse_osc_address(text.strip())
    except ValueError as e:
        raise ValueError(f"OSC address {text.strip()!r}: {str(e).split(': ', 1)[-1]}") from None


class OscPanel(QWidget):
    """The OSC switch and address field.

    Args:
        rig: returns the window's rig.
        settings: remembers the address (the switch always starts off).
    """

    error = pyqtSignal(str, str)  # title, message
    info = pyqtSignal(str)

    def __init__(self, rig: Callable[[], Rig], settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rig = rig
        self.settings = settings
        self.enable_box = QCheckBox("OSC")
        self.enable_box.setToolTip("Serve OSC control (parameters, programs, meters) on UDP HOST:PORT")
        self.address_edit = QLineEdit(str(settings.value("osc/address", DEFAULT_ADDRESS)))
        self.address_edit.setToolTip("OSC address: PORT or HOST:PORT (127.0.0.1: this machine only)")
        self.address_edit.setMaximumWidth(150)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.enable_box)
        row.addWidget(self.address_edit)
        self.enable_box.toggled.connect(self.set_enabled)

    def set_enabled(self, on: bool) -> bool:
        """Serve OSC on the address field's address (or stop); ``False`` (with a message) when it cannot."""
        rig = self._rig()
        if not on:
            rig.stop_osc()
            self.address_edit.setEnabled(True)
            self._check(False)
            return True
        try:
            host, port = parse_address(self.address_edit.text())
            osc = rig.start_osc(host, port, report=lambda line: self.info.emit(line[0].upper() + line[1:]))
        except (OSError, ValueError) as e:
            self.error.emit("OSC", describe(e))
            self._check(False)
            return False
        self.settings.setValue("osc/address", self.address_edit.text().strip())
        self.address_edit.setEnabled(False)
        self._check(True)
        self.info.emit(f"OSC on {osc.address[0]}:{osc.address[1]} (/lincae/...)")
        return True

    def follow(self, old: Rig, new: Rig) -> None:
        """The window replaced ``old`` by ``new``: the server follows (on the same address)."""
        if old is new or old.osc is None:
            return
        old.stop_osc()
        self.set_enabled(True)

    def _check(self, on: bool) -> None:
        self.enable_box.blockSignals(True)
        self.enable_box.setChecked(on)
        self.enable_box.blockSignals(False)
