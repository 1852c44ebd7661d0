"""Atomic file writes that end with the permissions a plain ``open(path, "w")`` would give.

``tempfile.mkstemp`` creates its file with mode 0600 whatever the user's umask says; a file renamed
over the destination would keep that mode. :func:`publish` gives the temporary file the usual mode
(``0666`` less the umask) before the rename.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["current_umask", "discard", "new_temp", "publish", "write_atomically"]


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


def new_temp(path: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """A new empty file beside ``path`` (same folder, so the final rename is atomic)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=p.parent if str(p.parent) else ".")
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Give ``tmp`` the user's default file mode and rename it over ``path``."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)
    return Path(path)


def discard(tmp: str | os.PathLike[str]) -> None:
    """Remove a temporary file if it is still there."""
    Path(tmp).unlink(missing_ok=True)


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
