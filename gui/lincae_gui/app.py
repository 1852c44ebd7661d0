"""Entry point: ``main(argv)`` builds the ``QApplication`` and the :class:`~lincae_gui.main_window.MainWindow`.

Usage::

    python -m lincae_gui [--preset NAME_OR_PATH] [--model ID_OR_PATH] [--midi-api jack|alsa] [--theme system|light|dark]

An exception that escapes a Qt slot would make PyQt abort the process; :func:`install_excepthook`
turns it into a message box (and a log line) instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from types import TracebackType

log = logging.getLogger("lincae_gui")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lincae gui", description="lincae's performer GUI (PyQt6)")
    p.add_argument("--preset", help="preset to load at start (shipped name or .json path)")
    p.add_argument("--model", help="model id, folder or file (default: the last one used, else the shipped model)")
    p.add_argument("--midi-api", choices=("jack", "alsa"), default=None, help="MIDI API (default: automatic)")
    p.add_argument("--start", action="store_true", help="start live audio right away")
    p.add_argument("--theme", choices=("system", "light", "dark"), default="system", help="palette (default: system)")
    return p


def install_excepthook() -> None:
    """Show unexpected errors in a message box instead of aborting (PyQt6 aborts on slot exceptions)."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        try:
            from PyQt6.QtWidgets import QApplication, QMessageBox

            if QApplication.instance() is not None:
                QMessageBox.warning(None, "lincae: unexpected error", f"{kind.__name__}: {value}")
        except Exception:
            pass

    sys.excepthook = hook


def main(argv: list[str] | None = None) -> int:
    """Run the GUI; returns the process exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PyQt6.QtWidgets import QApplication

    from lincae_gui.main_window import APPLICATION, ORGANIZATION, MainWindow
    from lincae_gui.theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "lincae"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("lincae")
    install_excepthook()
    apply_theme(app, args.theme)
    window = MainWindow(midi_api=args.midi_api)
    if args.model:
        window.model_edit.setText(args.model)
    if args.preset:
        window.load_preset(args.preset)
    app.aboutToQuit.connect(window.shutdown)
    window.show()
    if args.start:
        window.start()
    return int(app.exec())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
