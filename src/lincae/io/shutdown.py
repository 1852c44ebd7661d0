"""Stopping a live command in order, whatever signals come and whatever a thread is doing.

A live command (``lincae live``) holds threads that must be stopped in order (the audio client, the
inference worker, the recorders' writers, MIDI and OSC) and files that must be left whole. Python's
Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread happens to be: inside a C callback (libjack's
message hook) it is printed as "Exception ignored" and dropped, and the command runs on; in the middle
of the stop (a second Ctrl-C) it leaves native threads running while the interpreter ends, which can
crash the process.

:class:`StopRequest` turns the first SIGINT or terminating signal (SIGTERM, SIGHUP, ...; see
:data:`lincae.files.atomic.TERMINATING_SIGNALS`) into a request that the command's loop sees
(:attr:`StopRequest.requested`); later signals are counted and otherwise absorbed, and once the
command is done (:meth:`StopRequest.restore`) ignored until the process ends. Signals that arrive
together are handled in the order of their numbers (Python's), so the first of them is SIGINT's.
Until :meth:`StopRequest.arm` (while a model loads, before anything needs an orderly stop) the first
signal also raises as it always did, so that a long load can still be interrupted.

:class:`StopWatchdog` bounds the stop: if the stop has not finished after its time, the watchdog
salvages the recordings (:meth:`lincae.io.record.Recorder.salvage`: valid WAV files of what was
recorded), removes temporary files, writes one line and ends the process with :func:`os._exit` and the
status the stop would have given, whatever a thread is doing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType
from typing import Any

from lincae.files.atomic import TERMINATING_SIGNALS, Terminated, discard_all

__all__ = ["SALVAGE_SECONDS", "STOP_SECONDS", "StopRequest", "StopWatchdog", "stop_began"]

STOP_SECONDS = 4.0
"""Seconds an orderly stop may take before the watchdog ends the process (plus FLAC encoding time)."""
SALVAGE_SECONDS = 1.5
"""Seconds the watchdog gives the recordings to be left valid before it ends the process anyway."""

_stop_began = False


def stop_began() -> bool:
    """Whether a :class:`StopRequest` of this process received its signal: the process is ending, and
    signal handlers must stay as they are (absorbing) until it has."""
    return _stop_began


class StopRequest:
    """The first of ``signals`` requests a stop; later ones are absorbed (see the module docstring).

    Args:
        signals: the signals to take (default: SIGINT and :data:`~lincae.files.atomic.TERMINATING_SIGNALS`).
            One the process ignores (``nohup`` ignores SIGHUP) stays ignored.

    Attributes:
        signum: the signal that requested the stop (``None`` until one came).
        count: signals received, the first included.
        armed: whether the first signal only requests the stop (else it also raises
            ``KeyboardInterrupt`` or :class:`~lincae.files.atomic.Terminated`).
    """

    def __init__(self, signals: Sequence[int] | None = None) -> None:
        self.signals = tuple(signals) if signals is not None else (signal.SIGINT, *TERMINATING_SIGNALS)
        self.signum: int | None = None
        self.count = 0
        self.armed = False
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    def install(self) -> StopRequest:
        """Take the signals (main thread only; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in self.signals:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def arm(self) -> None:
        """From now on, the first signal only requests the stop (the command's loop does it in order)."""
        self.armed = True

    def restore(self) -> None:
        """Give the signals back to their previous handlers, unless a stop was requested: then the process
        is ending, and later signals are ignored until it has ended (``SIG_IGN``, which the interpreter
        keeps while it finalises, where it would put back the default action that ends the process)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if self.signum is None else signal.SIG_IGN)
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once when a stop is requested; returns whether one was."""
        return self._event.wait(timeout)

    def exit_status(self, failed: bool = False) -> int:
        """The command's exit status: ``128 + N`` after signal ``N`` other than SIGINT, else 2 when
        something ``failed`` (a recording) and 0 when all went well (Ctrl-C is how a live set ends)."""
        if self.signum is not None and self.signum != signal.SIGINT:
            return 128 + self.signum
        return 2 if failed else 0

    def describe(self) -> str:
        """``stopped by SIGTERM`` (empty before a signal, or for Ctrl-C)."""
        if self.signum is None or self.signum == signal.SIGINT:
            return ""
        return f"stopped by {signal.Signals(self.signum).name}"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        global _stop_began
        self.count += 1
        if self.signum is not None:
            return  # absorbed: a stop is under way
        self.signum = signum
        _stop_began = True
        self._event.set()
        if not self.armed:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise Terminated(signum)

    def __enter__(self) -> StopRequest:
        return self.install()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.restore()


class StopWatchdog:
    """Ends the process if a stop takes longer than ``seconds`` (see the module docstring).

    Args:
        seconds: how long the stop may take, from :meth:`start`.
        salvage: leaves the recordings valid; returns one line per take that is not complete under
            its name (say, a FLAC take left as its partial WAV). Given :data:`SALVAGE_SECONDS`.
        status: the exit status, given whether ``salvage`` reported a take that is not complete.
        prefix: how the line starts (``lincae live``).
    """

    def __init__(
        self,
        seconds: float,
        *,
        salvage: Callable[[], list[str]],
        status: Callable[[bool], int],
        prefix: str = "lincae live",
    ) -> None:
        self.seconds = float(seconds)
        self.salvage = salvage
        self.status = status
        self.prefix = prefix
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lincae-stop-watchdog", daemon=True)

    def start(self) -> StopWatchdog:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """The stop finished in time: the watchdog ends without doing anything."""
        self._done.set()

    def _run(self) -> None:
        if self._done.wait(self.seconds):
            return
        lines: list[str] = []

        def salvage() -> None:
            try:
                lines.extend(line for line in self.salvage() if line)
            except Exception as e:  # never keep the process from ending
                lines.append(f"recordings may be incomplete ({type(e).__name__}: {e})")

        helper = threading.Thread(target=salvage, name="lincae-salvage", daemon=True)
        helper.start()
        helper.join(SALVAGE_SECONDS)
        try:
            discard_all()
        except Exception:
            pass
        limit = f"{self.seconds:.1f}".removesuffix(".0")
        text = f"\n{self.prefix}: the stop took longer than {limit} s; ending now\n"
        text += "".join(f"{self.prefix}: error: {line}\n" for line in lines)
        try:
            os.write(2, text.encode("utf-8", "replace"))  # not sys.stderr: the main thread may hold its lock
        except OSError:
            pass
        os._exit(self.status(bool(lines)))
