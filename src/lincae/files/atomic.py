"""Atomic file writes that end with the permissions a plain ``open(path, "w")`` would give.

``tempfile.mkstemp`` creates its file with mode 0600 whatever the user's umask says; a file renamed
over the destination would keep that mode. :func:`publish` gives the temporary file the usual mode
(``0666`` less the umask) before the rename.

Every temporary file made by :func:`new_temp` is remembered until it is published or discarded.
:func:`stop_on_signals` turns the catchable signals that would end the process (SIGTERM, SIGHUP,
SIGQUIT, SIGUSR1, ...) into a :class:`Terminated` exception, so the writers' ``finally``/``__exit__``
clean-ups run as they do for Ctrl-C; :func:`discard_all` removes whatever is left. Old outputs are
untouched: they are only ever replaced by a rename.
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

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

_live: set[Path] = set()  # temporary files not yet published or discarded

#: Signals whose default action ends the process and that a process may catch (SIGINT is Python's
#: KeyboardInterrupt already; SIGPIPE and SIGXFSZ are ignored by Python, so writes fail with an error).
TERMINATING_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGXCPU")
    if hasattr(signal, name)
)


class Terminated(BaseException):
    """The process received a terminating signal (:attr:`signum`); raised where the main thread was."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def stop_on_signals() -> dict[int, Any]:
    """Raise :class:`Terminated` in the main thread on any of :data:`TERMINATING_SIGNALS`.

    Signals the process ignores (``nohup`` ignores SIGHUP) stay ignored. Returns the previous handlers
    for :func:`restore_signals`; does nothing outside the main thread.
    """
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for sig in TERMINATING_SIGNALS:
        old = signal.getsignal(sig)
        if old is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, _raise_terminated)
    return previous


def restore_signals(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`stop_on_signals` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def discard_all() -> None:
    """Remove every temporary file of this process that was neither published nor discarded."""
    for tmp in list(_live):
        discard(tmp)


def check_not_input(path: str | os.PathLike[str], inputs: list[str | os.PathLike[str]]) -> None:
    """Refuse an output that is one of the ``inputs`` (by path, relative path or symbolic link)."""
    out = Path(path)
    for given in inputs:
        src = Path(given)
        try:
            same = out.exists() and src.exists() and os.path.samefile(out, src)
        except OSError:
            same = False
        if same or out.resolve() == src.resolve():
            raise ValueError(f"{out}: is the input file {given}; write the output to another file")


def check_writable(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written: not existing (or ``overwrite``), not a
    folder, in an existing writable folder."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p}: is a folder")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p}: already exists (pass --overwrite to replace it)")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{p}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{p}: folder {folder} is not writable")
    return p


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where it can be, else set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Characters ``tempfile.mkstemp`` puts between a prefix and a suffix.
_RANDOM_CHARS = 8


def _name_max(folder: str) -> int:
    """The longest file name (bytes) ``folder``'s file system takes (255 where it does not say)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def temp_prefix(name: str, suffix: str, name_max: int = 255) -> str:
    """The prefix of a temporary name for ``name``: ``.NAME.``, or where ``.NAME.XXXXXXXX{suffix}`` would
    pass ``name_max`` bytes, ``.`` + the start of NAME + ``~`` + 8 hex digits of its hash + ``.``, cut so
    that the whole temporary name fits (a legal output name always gets a legal temporary name)."""
    prefix = f".{name}."
    room = name_max - _RANDOM_CHARS - len(os.fsencode(suffix))
    if len(os.fsencode(prefix)) <= room:
        return prefix
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    keep = max(0, room - len(f".~{digest}."))
    start = os.fsencode(name)[:keep].decode("utf-8", "ignore")  # (a character cut in two is dropped)
    return f".{start}~{digest}."


def new_temp(path: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """A new empty file beside ``path`` (same folder, so the final rename is atomic), named
    ``.NAME.XXXXXXXX{suffix}`` (shortened by :func:`temp_prefix` where that would be too long)."""
    p = Path(path)
    folder = str(p.parent) if str(p.parent) else "."
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(p.name, suffix, _name_max(folder)), suffix=suffix, dir=folder)
    os.close(fd)
    _live.add(Path(tmp))
    return Path(tmp)


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Give ``tmp`` the user's default file mode and rename it over ``path``."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)
    _live.discard(Path(tmp))
    return Path(path)


def discard(tmp: str | os.PathLike[str]) -> None:
    """Remove a temporary file if it is still there."""
    Path(tmp).unlink(missing_ok=True)
    _live.discard(Path(tmp))


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` into a temporary file beside ``path``, then :func:`publish` it over ``path``.

    A failed or interrupted write leaves ``path`` as it was and no temporary file behind.
    """
    tmp = new_temp(path)
    try:
        write(tmp)
        return publish(tmp, path)
    finally:
        discard(tmp)
