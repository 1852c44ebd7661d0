"""Moved to :mod:`lincae.files.atomic` (files are below every layer); these names stay importable from here
until the modules still importing them (:mod:`lincae.io.latents`, :mod:`lincae.io.latent_codec`,
:mod:`lincae.training.frame_trainer`) import them from there."""

from __future__ import annotations

from lincae.files.atomic import (
    Terminated,
    check_not_input,
    check_writable,
    current_umask,
    discard,
    discard_all,
    new_temp,
    publish,
    restore_signals,
    stop_on_signals,
    temp_prefix,
    write_atomically,
)

__all__ = [
    "Terminated",
    "check_not_input",
    "check_writable",
    "current_umask",
    "discard",
    "discard_all",
    "new_temp",
    "publish",
    "restore_signals",
    "stop_on_signals",
    "temp_prefix",
    "write_atomically",
]
