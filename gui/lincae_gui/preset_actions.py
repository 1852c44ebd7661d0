"""Presets in the window: open, save, recent and shipped presets, program changes' title.

A preset loaded while stopped becomes the window's :class:`~lincae.rig.Rig` (its sources, engine
settings, chains, values and MIDI mappings); while audio runs it is recalled into the running rig
(values and mappings; sources, windowing and chain plugins stay as started, as with a MIDI program
change). What is saved is :meth:`Rig.to_preset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtGui import QKeySequence
from PyQt6.QtWidgets import QFileDialog, QMenu, QWidget

from lincae.config import names_a_file
from lincae.presets import Preset
from lincae_gui.model_loader import describe

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from PyQt6.QtCore import QSettings

    from lincae.rig import Rig
    from lincae_gui.setup_panel import SetupPanel

MAX_RECENT = 8


class PresetActions:
    """The window's preset behaviour (mixed into :class:`~lincae_gui.main_window.MainWindow`)."""

    rig: Rig
    settings: QSettings
    setup: SetupPanel
    preset_path: Path | None
    recent_menu: QMenu
    shipped_menu: QMenu

    if TYPE_CHECKING:  # the window's

        def show_info(self, message: str, timeout: int = 8000) -> None: ...
        def show_error(self, title: str, message: str) -> None: ...
        def _guard(self, slot: Callable[[], Any]) -> None: ...
        def _build_rig(self, sources: list[int], preset: Preset | None) -> Rig: ...
        def _use_rig(self, rig: Rig) -> None: ...
        def _refresh_mapping_labels(self) -> None: ...
        def setWindowTitle(self, title: str | None) -> None: ...

    @property
    def preset(self) -> Preset | None:
        """The preset the rig was built from or last recalled (``None``: none loaded)."""
        return self.rig.preset

    def _fill_shipped_menu(self) -> None:
        """One entry per shipped preset, with the latency and worker load its settings cost (description as tooltip)."""
        from lincae.profiles import engine_profiles

        self.shipped_menu.clear()
        self.shipped_menu.setToolTipsVisible(True)
        try:
            profiles = engine_profiles(self.setup.block())
        except Exception:
            profiles = []
        for p in profiles:
            act = self.shipped_menu.addAction(f"{p.name}  ({p.cost()})")
            assert act is not None
            act.setToolTip(p.description)
            act.triggered.connect(lambda _c=False, n=p.name: self._guard(lambda: self.load_preset(n)))

    def _open_preset_dialog(self) -> None:
        start = str(self.settings.value("presets/dir", str(Path.home())))
        parent = self if isinstance(self, QWidget) else None
        path, _ = QFileDialog.getOpenFileName(parent, "Open preset", start, "lincae presets (*.json);;All files (*)")
        if path:
            self.load_preset(path)

    def load_preset(self, name_or_path: str | Path) -> bool:
        """Load a preset file (or a shipped preset by name) into the rig and every control; ``False`` on errors."""
        from lincae.presets import load_preset

        try:
            preset = load_preset(name_or_path)
        except (OSError, ValueError) as e:
            self.show_error("Cannot load preset", describe(e))
            return False
        note = " (its effect chains run live and in renders)" if preset.pre or preset.post else ""
        try:
            if self.rig.running:
                if preset.num_sources != self.rig.num_sources:
                    raise ValueError(
                        f"{preset.name or name_or_path} is for {preset.num_sources} source(s); stop audio first"
                    )
                self.rig.recall(preset)
                self._refresh_mapping_labels()
                if (preset.pre, preset.post) != (self.rig.pre_specs, self.rig.post_spec):
                    note = " (values and mappings; the running effect chains stay until audio stops)"
            else:
                if preset.model and preset.model != self.setup.model_choice():
                    self.setup.model_edit.setText(preset.model)
                self._use_rig(self._build_rig(list(preset.engine.sources), preset))
        except (KeyError, OSError, ValueError) as e:
            self.show_error("Cannot load preset", describe(e))
            return False
        p = Path(name_or_path)
        named_a_file = not isinstance(name_or_path, str) or names_a_file(name_or_path)  # else a shipped preset
        self.preset_path = p.resolve() if named_a_file and p.is_file() else None
        if self.preset_path is not None:
            self._add_recent(str(self.preset_path))
            self.settings.setValue("presets/dir", str(self.preset_path.parent))
        self._update_title()
        self.show_info(f"Preset {preset.name or p.stem} loaded{note}")
        return True

    def current_preset(self, name: str | None = None) -> Preset:
        """The window's state as a :class:`Preset`: the rig's (:meth:`Rig.to_preset`)."""
        return self.rig.to_preset(name)

    def save_preset(self) -> bool:
        if self.preset_path is None:
            return self._save_preset_as_dialog()
        return self.save_preset_as(self.preset_path)

    def _save_preset_as_dialog(self) -> bool:
        start = str(self.preset_path or Path(str(self.settings.value("presets/dir", str(Path.home())))) / "preset.json")
        parent = self if isinstance(self, QWidget) else None
        path, _ = QFileDialog.getSaveFileName(parent, "Save preset", start, "lincae presets (*.json)")
        if not path:
            return False
        if not path.endswith(".json"):
            path += ".json"
        return self.save_preset_as(path)

    def save_preset_as(self, path: str | Path) -> bool:
        p = Path(path)
        loaded = self.rig.preset
        name = loaded.name if loaded is not None and self.preset_path == p.resolve() else p.stem
        try:
            preset = self.current_preset(name or p.stem)
            preset.save(p)
        except (OSError, ValueError) as e:
            self.show_error("Cannot save preset", describe(e))
            return False
        self.rig.preset, self.preset_path = preset, p.resolve()
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
        loaded = self.rig.preset
        name = loaded.name if loaded is not None and loaded.name else None
        where = f" ({self.preset_path.name})" if self.preset_path is not None else ""
        self.setWindowTitle(f"lincae — {name}{where}" if name else "lincae")
