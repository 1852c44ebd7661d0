"""Loading a model off the GUI thread, and the one-line text an error shows as."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QThread, pyqtSignal
from PyQt6.QtWidgets import QWidget


def describe(e: BaseException) -> str:
    """An exception as one line: its message, with its type unless it is an ordinary input error."""
    text = str(e).strip() or type(e).__name__
    return text if isinstance(e, (ValueError, OSError, KeyError)) else f"{type(e).__name__}: {text}"


def load_model(model_id: str) -> Any:
    """The model named ``model_id`` (id, folder or file; empty: the shipped default)."""
    from lincae.models.base import load_model as load

    return load(model_id or "default")


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
            self.failed.emit(describe(e))
            return
        self.loaded.emit(model, self.model_id)
