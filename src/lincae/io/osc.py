"""OSC control over UDP (python-osc): every registry parameter, program changes, and meters to subscribers.

The address table (``N`` counts sources from 1; values in the parameter's unit)::

    /lincae/source/N/gain <dB>        source.N.gain_db
    /lincae/source/N/mute <0|1>       source.N.mute        (also solo, invert)
    /lincae/master/gain <dB>          master.gain_db
    /lincae/dry_wet <%>               mix.dry_wet
    /lincae/param/<name> <value>      any registry parameter by name, e.g. /lincae/param/post.0.reverb.room_size
    /lincae/program <n>               recall program n (as a MIDI program change)
    /lincae/subscribe                 send meters, latency and load to the sender 5 times a second (for 60 s;
    /lincae/unsubscribe               subscribe again to keep them coming)

A parameter address without an argument is a query: the value in force is sent back to the sender at the
same address. Subscribers receive ``/lincae/meters <in 1 dB> ... <in N dB> <out dB>``, ``/lincae/latency
<ms> <samples>`` (input to output at the device rate) and ``/lincae/load <last> <peak>`` (worker time per
step of audio; 1.0 is just real time).

Threads, as for MIDI (:mod:`lincae.io.midi`): the server thread only parses and checks each message (a
known address, one finite number inside the parameter's range) and stores the latest value per
parameter; :meth:`OscControl.poll`, called from the control thread (the command's loop, the GUI's
timer), writes them into the :class:`~lincae.engine.params.ParameterRegistry`, recalls programs, answers
queries and sends the subscriptions. Nothing reaches the audio thread but registry values. Unknown
addresses, wrong types, NaN/Inf, values out of range and floods (more than :data:`MAX_RATE` messages a
second, by default) are dropped, counted in :attr:`OscControl.ignored` and logged at most once every
:data:`LOG_INTERVAL` seconds per reason.

The server binds to 127.0.0.1 unless another interface is asked for.

Packets are checked before python-osc parses them (:func:`malformed`): a type tag it does not know or
a bundle part that is neither a message nor a bundle would make it log to the root logger (configuring
the process's logging on the way), so such a packet is dropped here, counted as ``malformed packet``
and logged at most once every :data:`LOG_INTERVAL` seconds like the others. Bundles are handled at
once, whatever their time tag (python-osc would hold the server thread until a tag set in the future).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from lincae.engine.params import ParameterRegistry

__all__ = ["MAX_RATE", "OscControl", "malformed", "parameter_for", "parse_osc_address"]

log = logging.getLogger(__name__)

MAX_RATE = 2000
"""Messages a second the server takes; the rest of a flood is dropped."""
LOG_INTERVAL = 5.0
SUBSCRIPTION_S = 60.0
MAX_SUBSCRIBERS = 8
MAX_QUERIES = 256  # queries waiting for the next poll
_SOURCE = re.compile(r"^/lincae/source/(\d+)/(gain|mute|solo|invert)$")
_FIELD = {"gain": "gain_db", "mute": "mute", "solo": "solo", "invert": "invert"}
_FIXED = {"/lincae/master/gain": "master.gain_db", "/lincae/dry_wet": "mix.dry_wet"}

Status = Callable[[], Sequence[tuple[str, Sequence[float]]]]

_TYPE_TAGS = frozenset("ihfdsbrmtTFN[]")  # the argument types python-osc parses
_BUNDLE = b"#bundle\0"
MAX_BUNDLE_DEPTH = 4


def malformed(dgram: bytes, depth: int = 0) -> str | None:
    """Why ``dgram`` is not an OSC packet python-osc takes whole (the reason, in a few words), or ``None``.

    Checks what python-osc would otherwise log about or skip: every part of a bundle must be a message
    or a bundle (nested at most :data:`MAX_BUNDLE_DEPTH` deep), and every message's type tags must be
    ones it parses.
    """
    from pythonosc.parsing import osc_types

    try:
        if dgram.startswith(_BUNDLE):
            if depth >= MAX_BUNDLE_DEPTH:
                return "bundle nested too deep"
            index = len(_BUNDLE) + 8  # the time tag
            if len(dgram) < index:
                return "malformed bundle"
            while index < len(dgram):
                size, index = osc_types.get_int(dgram, index)
                if size <= 0 or index + size > len(dgram):
                    return "malformed bundle"
                why = malformed(dgram[index : index + size], depth + 1)
                if why is not None:
                    return why
                index += size
            return None
        if not dgram.startswith(b"/"):
            return "not an OSC message"
        _, index = osc_types.get_string(dgram, 0)
        if index >= len(dgram):
            return None  # a message without arguments
        tags, _ = osc_types.get_string(dgram, index)
        if not tags.startswith(",") or not set(tags[1:]) <= _TYPE_TAGS:
            return "unknown argument type"
        return None
    except (osc_types.ParseError, IndexError, ValueError):
        return "cannot be parsed"


def parse_osc_address(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (``lincae live --osc``, the GUI's OSC field) → ``(host, port)``; the host
    defaults to ``127.0.0.1`` (this machine). ``ValueError`` names the text and the form expected."""
    host, sep, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--osc {text!r}: expected PORT or HOST:PORT, e.g. 9000 or 0.0.0.0:9000")
    return (host if sep and host else "127.0.0.1"), int(port)


def parameter_for(address: str) -> str | None:
    """The registry name an OSC address sets, or ``None`` (checking that it exists is the caller's)."""
    if address in _FIXED:
        return _FIXED[address]
    m = _SOURCE.match(address)
    if m:
        return f"source.{int(m.group(1))}.{_FIELD[m.group(2)]}"
    if address.startswith("/lincae/param/") and len(address) > len("/lincae/param/"):
        return address[len("/lincae/param/") :]
    return None


def _number(args: Sequence[Any]) -> tuple[float | None, str]:
    """``(value, "")`` for one finite number (booleans count as 0/1), else ``(None, reason)``."""
    if len(args) != 1 or not isinstance(args[0], (int, float)):
        return None, "wrong type"
    value = float(args[0])
    return (value, "") if math.isfinite(value) else (None, "not finite")


class OscControl:
    """An OSC server driving ``registry`` (see the module docstring for the addresses).

    Args:
        registry: the parameters to drive.
        host, port: where to listen (port 0: any free port; :attr:`address` tells which).
        status: returns the subscription messages, ``[(address, values), ...]`` (meters, latency, load).
        program: recalls a program by number and returns its one-line report.
        interval: seconds between subscription messages.
        max_rate: messages a second taken (a flood beyond is dropped).
    """

    def __init__(
        self,
        registry: ParameterRegistry,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        status: Status | None = None,
        program: Callable[[int], str] | None = None,
        interval: float = 0.2,
        max_rate: int = MAX_RATE,
    ) -> None:
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.registry = registry
        self.status = status
        self.program = program
        self.interval = float(interval)
        self.max_rate = int(max_rate)
        self.ignored: Counter[str] = Counter()
        self.received = 0
        self.reports: list[str] = []  # the last 20 program recalls, one line each
        self.current_program = -1
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._programs: list[int] = []
        self._queries: list[tuple[tuple[str, int], str, str]] = []
        self._subscribers: dict[tuple[str, int], float] = {}
        self._window = (0.0, 0)  # (second started, messages in it)
        self._logged: dict[str, float] = {}
        self._last_sent = -math.inf
        try:
            self._server = BlockingOSCUDPServer((host, port), _dispatcher(self._receive, self._ignore))
        except OSError as e:
            raise OSError(f"OSC: cannot listen on {host}:{port} ({e.strerror or e})") from None
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="lincae-osc", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    # ------------------------------------------------------------------ server thread
    def _ignore(self, reason: str, address: str) -> None:
        with self._lock:
            self.ignored[reason] += 1
            now = time.monotonic()
            if now - self._logged.get(reason, -math.inf) < LOG_INTERVAL:
                return
            self._logged[reason] = now
            count = self.ignored[reason]
        log.warning("OSC: ignored %s (%s; %d so far)", address[:80], reason, count)

    def _receive(self, client: tuple[str, int], address: str, *args: Any) -> None:
        try:
            now = time.monotonic()
            started, count = self._window
            if now - started >= 1.0:
                started, count = now, 0
            self._window = (started, count + 1)
            if count >= self.max_rate:
                self._ignore("flood", address)
                return
            if address in ("/lincae/subscribe", "/lincae/unsubscribe"):
                with self._lock:
                    if address == "/lincae/unsubscribe":
                        self._subscribers.pop(client, None)
                    elif client in self._subscribers or len(self._subscribers) < MAX_SUBSCRIBERS:
                        self._subscribers[client] = now + SUBSCRIPTION_S
                    else:
                        self.ignored["too many subscribers"] += 1
                return
            if address == "/lincae/program":
                if not args:
                    with self._lock:
                        if len(self._queries) < MAX_QUERIES:
                            self._queries.append((client, address, ""))
                    return
                value, why = _number(args)
                if value is None or value != int(value) or not 0 <= value <= 127:
                    self._ignore(why or "program out of range", address)
                    return
                with self._lock:
                    self._programs.append(int(value))
                    self.received += 1
                return
            name = parameter_for(address)
            if name is None or name not in self.registry:
                self._ignore("unknown address", address)
                return
            if not args:
                with self._lock:
                    if len(self._queries) < MAX_QUERIES:
                        self._queries.append((client, address, name))
                return
            value, why = _number(args)
            if value is None:
                self._ignore(why, address)
                return
            try:
                value = self.registry.spec(name).check(value)
            except ValueError:
                self._ignore("out of range", address)
                return
            with self._lock:
                self._pending[name] = value
                self.received += 1
        except Exception:  # never raise into the server: count it
            log.exception("OSC message %s", address)
            self.ignored["error"] += 1

    # ------------------------------------------------------------------ control thread
    def poll(self, now: float | None = None) -> dict[str, float]:
        """Apply what arrived, answer queries, send subscriptions when due. Returns the parameters written."""
        now = time.monotonic() if now is None else now
        with self._lock:
            pending, self._pending = self._pending, {}
            programs, self._programs = self._programs, []
            queries, self._queries = self._queries, []
            self._subscribers = {c: t for c, t in self._subscribers.items() if t > now}
            subscribers = list(self._subscribers)
        for program in programs:
            if self.program is not None:
                self.current_program = program
                self.reports = [*self.reports[-19:], self.program(program)]
        written = {}
        for name, value in pending.items():
            try:
                written[name] = self.registry.set(name, value)
            except (KeyError, ValueError) as e:  # a parameter gone since (a rebuilt rig): drop it
                self._ignore(str(e).split(";")[0], name)
        for client, address, name in queries:
            value = float(self.current_program) if not name else self.registry.get(name)
            self._send(client, address, [value])
        if subscribers and self.status is not None and now - self._last_sent >= self.interval:
            self._last_sent = now
            for address, values in self.status():
                for client in subscribers:
                    self._send(client, address, values)
        return written

    def _send(self, client: tuple[str, int], address: str, values: Sequence[float]) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        builder = OscMessageBuilder(address)
        for v in values:
            builder.add_arg(float(v), OscMessageBuilder.ARG_TYPE_FLOAT)
        try:
            self._server.socket.sendto(builder.build().dgram, client)
        except OSError:
            self.ignored["send failed"] += 1

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)


def _dispatcher(receive: Callable[..., None], ignore: Callable[[str, str], None]) -> Any:
    """A python-osc dispatcher that hands every message of a whole packet to ``receive(client, address,
    *args)`` and drops the others through ``ignore(reason, where)`` (see :func:`malformed`)."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_packet import OscPacket, ParseError

    class _Checked(Dispatcher):
        def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list:
            why = malformed(data)
            if why is None:
                try:
                    packet = OscPacket(data)
                except ParseError:
                    why = "cannot be parsed"
            if why is not None:
                ignore("malformed packet", f"packet from {client_address[0]}:{client_address[1]}: {why}")
                return []
            for timed in packet.messages:
                receive(client_address, timed.message.address, *timed.message.params)
            return []

    return _Checked()
