"""Light and dark palettes that follow the system's colour scheme (Qt ≥ 6.5 reports it).

The Fusion style draws every control from the palette, so one palette switch restyles the whole window.
``theme`` is ``"system"`` (follow the desktop, live), ``"light"`` or ``"dark"``.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QGuiApplication, QPalette
from PyQt6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")


def dark_palette() -> QPalette:
    """A dark palette with orange highlights (the latent view's positive colour)."""
    p = QPalette()
    window, base, text, dim = QColor(37, 38, 41), QColor(26, 27, 30), QColor(226, 226, 226), QColor(130, 130, 130)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: window,
        QPalette.ColorRole.ToolTipBase: base,
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: dim,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(49, 50, 54),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Highlight: QColor(232, 140, 40),
        QPalette.ColorRole.HighlightedText: QColor(0, 0, 0),
        QPalette.ColorRole.Link: QColor(240, 160, 70),
    }
    for role, colour in roles.items():
        p.setColor(role, colour)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, dim)
    return p


def system_is_dark() -> bool:
    """Whether the desktop asks for a dark scheme (``False`` where the platform does not say)."""
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply_theme(app: QApplication, theme: str = "system") -> str:
    """Style ``app`` with Fusion and the palette for ``theme``; returns ``"light"`` or ``"dark"``.

    With ``"system"``, the palette follows later changes of the desktop's scheme too.
    """
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {', '.join(THEMES)}, got {theme!r}")
    app.setStyle("Fusion")
    dark = system_is_dark() if theme == "system" else theme == "dark"
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    if theme == "system" and not app.property("lincae_follows_scheme"):
        app.setProperty("lincae_follows_scheme", True)
        QGuiApplication.styleHints().colorSchemeChanged.connect(lambda _scheme: apply_theme(app, "system"))
    return "dark" if dark else "light"
