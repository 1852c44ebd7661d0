"""A JACK client with the interface of ``sounddevice.Stream``, for live sessions on a JACK server.

PortAudio (through ``sounddevice``) reaches JACK too, but when the JACK server goes away under it, its
stream cannot be stopped or closed any more (``Pa_AbortStream`` waits forever), and it cannot see a
restarted server without ``Pa_Terminate``, which then aborts the process. A client made with
JACK-Client (``jack``) survives both: the server's shutdown is a callback, the dead client closes at
once, and a new client connects to the restarted server. :class:`lincae.io.live.LiveSession` uses this
stream when a JACK server is running (``LiveConfig.backend``), so a session recovers from a JACK restart
by itself.

One limit: while this stream runs, a library that opens a new JACK client while holding Python's GIL
(python-rtmidi does) cannot register it, because the server waits for this stream's process callback,
which waits for the GIL. lincae's MIDI controller therefore starts its client before the audio
(:meth:`lincae.io.midi.MidiController.start_client`) and keeps it.

The client (``lincae`` by default) registers ``in_1 … in_N`` and ``out_1 … out_M`` and connects them to
the ports of the chosen device: a JACK client name such as ``system`` (its capture ports feed the
inputs, its playback ports take the outputs), or the physical ports when no device is named. The
callback runs in JACK's process thread with the block JACK gives (its period); it receives
``(indata[frames, N], outdata[frames, M], frames, None, status)`` like a sounddevice callback, in
buffers allocated once (JACK-Client still wraps each port's buffer in a new array every period). An
exception in it silences that period and is counted (:attr:`JackStream.errors`), as JACK would otherwise
drop the client.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["JackStream", "jack_available", "jack_period", "route_jack_messages"]

_CAPTURE, _PLAYBACK = 0, 1  # jack_latency_callback_mode_t

log = logging.getLogger("lincae.jack")
_routing = 0  # sessions that asked for libjack's messages to go to the logger


def route_jack_messages(on: bool) -> None:
    """While ``on`` (counted: each ``True`` needs its ``False``), libjack's own messages (``Cannot connect to
    server socket``, ... which it prints on stderr, into a terminal's status line) go to the ``lincae.jack``
    logger instead: errors at INFO, the rest at DEBUG. A live session routes them while it runs, outages
    included; it reports what matters itself (device lost, outages).

    Process-wide, and the logger runs Python in JACK's threads: outside a session libjack's default
    (stderr, no Python) is restored, so that python-rtmidi, which keeps the GIL while it closes its JACK
    client, never waits for a thread that waits for the GIL to log.
    """
    global _routing
    try:
        import jack
    except (ImportError, OSError):
        return
    _routing = max(0, _routing + (1 if on else -1))
    if on and _routing == 1:
        jack.set_error_function(lambda message: log.info("libjack: %s", message))
        jack.set_info_function(lambda message: log.debug("libjack: %s", message))
    elif not on and _routing == 0:
        jack.set_error_function(None)
        jack.set_info_function(None)


def jack_period(client_name: str = "lincae-probe") -> int | None:
    """The running JACK server's period in frames, or ``None`` (no server, or JACK-Client not installed)."""
    try:
        import jack
    except (ImportError, OSError):
        return None
    try:
        client = jack.Client(client_name, no_start_server=True)
    except jack.JackOpenError:
        return None
    try:
        return int(client.blocksize)
    finally:
        client.close()


def jack_available(client_name: str = "lincae-probe") -> bool:
    """Whether JACK-Client is installed and a JACK server answers (without starting one)."""
    return jack_period(client_name) is not None


class _Range(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


def _latency(port: Any, mode: int) -> int:
    """The JACK latency range maximum of ``port`` (frames) for ``mode``, read through libjack (0 if unknown)."""
    name = ctypes.util.find_library("jack")
    if name is None or port is None:
        return 0
    try:
        import jack

        lib = ctypes.CDLL(name)
        lib.jack_port_get_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Range)]
        lib.jack_port_get_latency_range.restype = None
        rng = _Range()
        pointer = int(jack._ffi.cast("uintptr_t", port._ptr))
        lib.jack_port_get_latency_range(pointer, mode, ctypes.byref(rng))
        return int(rng.max)
    except Exception:
        return 0


_LatencyCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)


def _libjack() -> Any:
    """libjack through ctypes (JACK-Client does not wrap its latency API), or ``None``."""
    name = ctypes.util.find_library("jack")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.jack_port_get_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Range)]
    lib.jack_port_get_latency_range.restype = None
    lib.jack_port_set_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Range)]
    lib.jack_port_set_latency_range.restype = None
    lib.jack_set_latency_callback.argtypes = [ctypes.c_void_p, _LatencyCallback, ctypes.c_void_p]
    lib.jack_set_latency_callback.restype = ctypes.c_int
    return lib


def _pointer(obj: Any) -> int:
    import jack

    return int(jack._ffi.cast("uintptr_t", obj._ptr))


class JackStream:
    """A duplex audio stream on the running JACK server (see the module docstring).

    Args:
        device: ``(input, output)``: JACK client names whose ports to connect (``None``: physical ports).
        samplerate: must be the server's rate (JACK does not convert); else ``ValueError`` at start.
        blocksize: ignored (JACK's period decides; the callback gets whatever JACK gives).
        channels: ``(inputs, outputs)`` port counts.
        dtype: must be ``"float32"`` (JACK's sample type).
        callback: ``callback(indata, outdata, frames, time, status)``.
        finished_callback: called when the stream ends by itself (the server shut down).
        client_name: the JACK client's name.
        max_block: the longest period served (buffers are sized for it).
        latency_frames: the stream's own latency from input to output in frames (the engine's, declared
            by the session): JACK's latency callback adds it to the capture latency its outputs report
            and the playback latency its inputs report, so hosts (Ardour, Carla) can line it up.
    """

    def __init__(
        self,
        device: tuple[str | int | None, str | int | None] = (None, None),
        samplerate: float | None = None,
        blocksize: int = 0,
        channels: tuple[int, int] = (1, 1),
        dtype: str = "float32",
        callback: Callable[[np.ndarray, np.ndarray, int, Any, Any], None] | None = None,
        finished_callback: Callable[[], None] | None = None,
        client_name: str = "lincae",
        max_block: int = 8192,
        latency_frames: int = 0,
    ) -> None:
        if dtype != "float32":
            raise ValueError(f"JACK streams carry float32 samples, not {dtype}")
        self.device = device
        self.samplerate = samplerate
        self.blocksize = blocksize
        self.channels = channels
        self.callback = callback
        self.finished_callback = finished_callback
        self.client_name = client_name
        self._in = np.zeros((max_block, channels[0]), np.float32)
        self._out = np.zeros((max_block, channels[1]), np.float32)
        self._client: Any = None
        self._lib: Any = None
        self._inports: list[Any] = []
        self._outports: list[Any] = []
        self.errors = 0
        self.last_error = ""
        self._xrun = False
        self._active = False
        self._lock = threading.Lock()
        self.latency: tuple[float, float] = (0.0, 0.0)
        self.port_names: tuple[list[str], list[str]] = ([], [])
        self.period = 0
        self.latency_frames = int(latency_frames)
        self._on_latency_c = _LatencyCallback(self._on_latency)  # kept alive as long as the client

    # ------------------------------------------------------------------ the process callback
    def _process(self, frames: int) -> None:
        inports, outports = self._inports, self._outports
        try:
            if frames > self._in.shape[0]:  # JACK's period grew beyond what the buffers hold: silence
                raise ValueError(f"JACK period of {frames} frames exceeds {self._in.shape[0]}")
            indata, outdata = self._in[:frames], self._out[:frames]
            for c, port in enumerate(inports):
                indata[:, c] = port.get_array()
            status, self._xrun = self._xrun, False
            if self.callback is not None:
                self.callback(indata, outdata, frames, None, status)
            for c, port in enumerate(outports):
                port.get_array()[:] = outdata[:, c]
        except Exception as e:  # never raise into JACK (it would drop the client): silence, and count
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            for port in outports:
                port.get_array().fill(0.0)

    def _on_latency(self, mode: int, arg: Any) -> None:
        """JACK's latency callback (a non-real-time JACK thread): our ports' ranges are the other side's plus
        :attr:`latency_frames` (capture: outputs from inputs; playback: inputs from outputs)."""
        try:
            lib = self._lib
            ours, theirs = (self._outports, self._inports) if mode == _CAPTURE else (self._inports, self._outports)
            rng = _Range()
            lo, hi = None, 0
            for port in theirs:
                lib.jack_port_get_latency_range(_pointer(port), mode, ctypes.byref(rng))
                lo = rng.min if lo is None else min(lo, rng.min)
                hi = max(hi, rng.max)
            rng.min = (lo or 0) + self.latency_frames
            rng.max = hi + self.latency_frames
            for port in ours:
                lib.jack_port_set_latency_range(_pointer(port), mode, ctypes.byref(rng))
        except Exception as e:  # never raise into JACK
            self.last_error = f"latency callback: {type(e).__name__}: {e}"

    def _on_xrun(self, delay: float) -> None:
        self._xrun = True

    def _on_shutdown(self, status: Any, reason: str) -> None:
        self._active = False
        if self.finished_callback is not None:
            self.finished_callback()

    # ------------------------------------------------------------------ sounddevice.Stream's interface
    def start(self) -> None:
        """Connect to the JACK server, register and wire the ports, and start processing."""
        import jack

        try:
            client = jack.Client(self.client_name, no_start_server=True)
        except jack.JackOpenError as e:
            raise OSError(f"no JACK server is running ({e}); start one, e.g. jackd -d dummy -r 44100 &") from e
        try:
            if self.samplerate is not None and round(self.samplerate) != client.samplerate:
                raise ValueError(
                    f"the JACK server runs at {client.samplerate} Hz, not {round(self.samplerate)} Hz "
                    f"(choose the server's rate with --rate {client.samplerate})"
                )
            if client.blocksize > self._in.shape[0]:
                raise ValueError(f"JACK's period of {client.blocksize} frames exceeds {self._in.shape[0]}")
            self._inports = [client.inports.register(f"in_{i + 1}") for i in range(self.channels[0])]
            self._outports = [client.outports.register(f"out_{i + 1}") for i in range(self.channels[1])]
            client.set_process_callback(self._process)
            client.set_xrun_callback(self._on_xrun)
            client.set_shutdown_callback(self._on_shutdown)
            self._lib = _libjack()
            if self._lib is not None:
                self._lib.jack_set_latency_callback(_pointer(client), self._on_latency_c, None)
            self._client = client
            client.activate()
            self._active = True
            sources = self._ports(client, self.device[0], is_output=True)  # capture ports are outputs in JACK
            sinks = self._ports(client, self.device[1], is_input=True)
            for own, other in zip(self._inports, sources, strict=False):
                client.connect(other, own)
            for own, other in zip(self._outports, sinks, strict=False):
                client.connect(own, other)
            capture = _latency(sources[0] if sources else None, _CAPTURE)
            playback = _latency(sinks[0] if sinks else None, _PLAYBACK)
            rate = float(client.samplerate)
            self.latency = (capture / rate, playback / rate)
            self.port_names = ([p.name for p in self._inports], [p.name for p in self._outports])
            self.period = int(client.blocksize)
        except BaseException:
            self._active = False
            self._client = None
            client.close()
            raise

    @staticmethod
    def _ports(client: Any, device: str | int | None, **kind: bool) -> Sequence[Any]:
        """The ports of JACK client ``device`` (a name: ``system``, ``Scarlett``...); ``None``: the physical ones."""
        if device is None:
            return client.get_ports(is_audio=True, is_physical=True, **kind)
        what = "capture" if kind.get("is_output") else "playback"
        clients = sorted({p.name.split(":", 1)[0] for p in client.get_ports(is_audio=True, **kind)} - {client.name})
        if isinstance(device, int):
            raise ValueError(
                f"on JACK, devices are JACK clients named by name (JACK audio {what} clients: "
                f"{', '.join(clients) or 'none'}), not PortAudio's index {device}"
            )
        ports = client.get_ports(f"^{re.escape(device)}:", is_audio=True, **kind)
        if not ports:
            listed = ", ".join(clients) or "none"
            raise ValueError(f"no JACK audio {what} ports of {device!r}; JACK clients with such ports: {listed}")
        return ports

    @property
    def active(self) -> bool:
        return self._active

    @property
    def stopped(self) -> bool:
        return not self._active

    def abort(self, ignore_errors: bool = True) -> None:
        """Stop processing (the ports stay until :meth:`close`); safe after the server went away."""
        with self._lock:
            client, self._active = self._client, False
            if client is not None:
                try:
                    client.deactivate()
                except Exception:
                    if not ignore_errors:
                        raise

    stop = abort

    def close(self, ignore_errors: bool = True) -> None:
        """Leave the JACK server; safe after it went away."""
        with self._lock:
            client, self._active = self._client, False
            if client is not None:
                try:
                    client.deactivate()  # the process callback stops before the client goes
                    client.close()
                except Exception:
                    if not ignore_errors:
                        raise
            self._client = None
