"""Keep worker ``QThread`` s alive until they have finished.

A ``QThread`` destroyed while it runs aborts the process ("QThread: Destroyed while thread is still
running"). Workers therefore have no Qt parent and are held here, not by the widget that started
them: closing or deleting a dialog or window in the middle of a job is safe (its result is dropped).
"""

from __future__ import annotations

import atexit

from PyQt6.QtCore import QThread

_workers: list[QThread] = []


def keep_alive(thread: QThread) -> QThread:
    """Hold ``thread`` until it has finished (finished ones are released at the next call)."""
    _workers[:] = [t for t in _workers if not _finished(t)]
    _workers.append(thread)
    return thread


def _finished(thread: QThread) -> bool:
    try:
        return thread.isFinished()
    except RuntimeError:  # the C++ object is gone already
        return True


@atexit.register
def _wait_all() -> None:
    for t in _workers:
        try:
            t.wait(30000)
        except RuntimeError:
            pass
    _workers.clear()
