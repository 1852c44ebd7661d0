"""MIDI control: controller knobs and faders drive registry parameters through :class:`MidiMapping`.

Incoming messages go through :meth:`MidiController.handle_message`, which only parses the message
and stores the latest value per ``(channel, controller)`` (the ``ccstore`` pattern): no registry
write, no callback into the application, and a lock held only for a dictionary store. The
application calls :meth:`MidiController.poll` from its control thread (a GUI ``QTimer`` or a control
loop, 50–100 Hz); ``poll`` swaps the pending values out under the lock, then applies them to the
registry through the mappings (curves, ranges, 14-bit pairs, soft takeover), finishes a MIDI learn,
reports program changes and, when a wanted port is configured, rescans for it.

rtmidi's backend thread only queues messages in rtmidi's C++ ring buffer (``queue_size`` messages)
and ``poll`` drains it into ``handle_message``: no Python runs on the MIDI backend thread, which on
JACK is the client's *real-time process thread*. (An rtmidi callback instead would take the GIL on
that thread for every message, stalling the JACK cycle, and python-rtmidi 1.5.8 keeps the GIL in
``close_port`` while ``jack_deactivate`` waits for that thread: processes hung or crashed in close.)

Everything but :meth:`~MidiController.handle_message` (and the read-only statistics) belongs to the
control thread: call ``poll``, ``set_mappings``, ``learn``, ``open`` and ``close`` from one thread.

MIDI channels are numbered 1–16 throughout, as on the front panel of a controller.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lincae.engine.params import ParameterRegistry
from lincae.io.devices import compiled_midi_apis, match_names, midi_api_id
from lincae.io.mapping import MidiMapping

log = logging.getLogger(__name__)

#: Reasons a message is ignored, the keys of :attr:`MidiController.ignored`.
IGNORE_REASONS = (
    "empty",  # no bytes
    "malformed",  # not a list of ints, wrong length for its status, or a data byte above 127
    "running_status",  # starts with a data byte: a fragment sent with running status
    "sysex",  # system exclusive (0xF0 ... 0xF7)
    "system",  # system common: MTC quarter frame, song position/select, tune request
    "realtime",  # clock, start/continue/stop, active sensing, reset
    "note",  # note off/on, polyphonic aftertouch
    "channel",  # channel aftertouch, pitch bend
    "unmapped",  # a control change no mapping listens to (or a program change nobody listens to)
    "error",  # the handler itself failed (a bug; never raised into rtmidi's thread)
)

CC = 0xB0
PROGRAM = 0xC0
_DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_IGNORED_KIND = {0x80: "note", 0x90: "note", 0xA0: "note", 0xD0: "channel", 0xE0: "channel"}


@dataclass
class _Takeover:
    """Soft-takeover state of one mapping."""

    caught: bool = False  # the knob drives the parameter
    last_target: float | None = None  # the knob's previous position (parameter position, 0–1)
    written: float | None = None  # the value this mapping last stored (to notice changes made elsewhere)


class MidiController:
    """Applies MIDI control changes to a :class:`ParameterRegistry` through :class:`MidiMapping` s.

    Args:
        registry: the parameters to drive.
        mappings: initial mappings (see :meth:`set_mappings`).
        api: ``"jack"``, ``"alsa"``, or ``None`` to let ``python-rtmidi`` choose (falling back to the
            other compiled APIs when its choice cannot start).
        client_name: the MIDI client name other programs see (``lincae:in`` on JACK).
        on_learned: called from :meth:`poll` with the mapping a MIDI learn created.
        on_program: called from :meth:`poll` with ``(channel 1–16, program 0–127)`` of each program change
            (the latest per channel since the previous poll).
        on_connection: called from :meth:`poll`/:meth:`open` with ``(port name, connected)`` when a
            hardware port is opened or noticed gone.
        takeover_tolerance: soft takeover catches when the knob comes this close to the parameter's
            current position (a fraction of the parameter range; default 2 %, about 2.5 steps of a
            7-bit knob) or crosses it.
        rescan_interval: seconds between rescans for a wanted port that is not (or no longer) present.
        port_label: name of this client's own input port when opening a hardware port.
        queue_size: capacity of rtmidi's input queue in messages. 16384 holds about
            16 s of a busy 14-bit fader sent over USB; when full, rtmidi drops the newest messages.

    Example::

        ctl = MidiController(registry, [MidiMapping("source.1.gain_db", cc=7)])
        ctl.watch("nanoKONTROL")   # open it now or whenever it is plugged in
        timer.timeout.connect(ctl.poll)  # 50-100 Hz
    """

    def __init__(
        self,
        registry: ParameterRegistry,
        mappings: Iterable[MidiMapping | Mapping[str, Any]] = (),
        *,
        api: str | None = "jack",
        client_name: str = "lincae",
        on_learned: Callable[[MidiMapping], None] | None = None,
        on_program: Callable[[int, int], None] | None = None,
        on_connection: Callable[[str, bool], None] | None = None,
        takeover_tolerance: float = 0.02,
        rescan_interval: float = 1.0,
        port_label: str = "in",
        queue_size: int = 16384,
    ) -> None:
        if api is not None and api not in ("jack", "alsa"):
            raise ValueError(f"MIDI api must be 'jack', 'alsa' or None, got {api!r}")
        if not 0.0 <= takeover_tolerance < 1.0:
            raise ValueError(f"takeover_tolerance must be in [0, 1), got {takeover_tolerance}")
        if rescan_interval < 0:
            raise ValueError(f"rescan_interval must be >= 0 s, got {rescan_interval}")
        self.registry = registry
        self.api = api
        self.client_name = client_name
        self.on_learned = on_learned
        self.on_program = on_program
        self.on_connection = on_connection
        self.takeover_tolerance = float(takeover_tolerance)
        self.rescan_interval = float(rescan_interval)
        self.port_label = port_label
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1 message, got {queue_size}")
        self.queue_size = int(queue_size)
        #: The last problem met while scanning or opening ports (``None`` when all is well).
        self.last_error: str | None = None

        # Shared with the rtmidi thread (guarded by _lock, held only for dictionary stores/swaps).
        self._lock = threading.Lock()
        self._pending_cc: dict[tuple[int, int], int] = {}
        self._pending_program: dict[int, int] = {}
        self._learn_hit: tuple[int, int, int] | None = None
        self._ignored: Counter[str] = Counter()
        self._received = 0
        # Read by the rtmidi thread, replaced (never mutated) by the control thread.
        self._learn_parameter: str | None = None
        self._index: tuple[frozenset[int], frozenset[tuple[int, int]]] = (frozenset(), frozenset())

        # Control-thread state.
        self._mappings: tuple[MidiMapping, ...] = ()
        self._takeover: dict[MidiMapping, _Takeover] = {}
        self._last_cc: dict[tuple[int, int], int] = {}
        self._learn_fields: dict[str, Any] = {}
        self._learn_fourteen_bit = False
        self._midi_in: Any = None
        self._api_used: str | None = None
        self._port_name: str | None = None
        self._virtual = False
        self._wanted: str | None = None
        self._last_scan = -math.inf
        self.set_mappings(mappings)

    # ------------------------------------------------------------------------------------ mappings

    @property
    def mappings(self) -> list[MidiMapping]:
        """The current mappings (a copy)."""
        return list(self._mappings)

    def set_mappings(self, mappings: Iterable[MidiMapping | Mapping[str, Any]]) -> None:
        """Replace every mapping; plain dicts are read with :meth:`MidiMapping.from_dict`.

        Soft-takeover state is kept for mappings that stay the same.

        Raises:
            KeyError: a mapping names a parameter the registry does not have.
        """
        new = tuple(MidiMapping.from_dict(m) for m in mappings)
        unknown = sorted({m.parameter for m in new if m.parameter not in self.registry})
        if unknown:
            raise KeyError(
                f"MIDI mapping for unknown parameter(s) {', '.join(unknown)}; known: {self.registry.names()}"
            )
        self._mappings = new
        self._takeover = {m: self._takeover.get(m) or _Takeover() for m in new}
        any_channel: set[int] = set()
        on_channel: set[tuple[int, int]] = set()
        for m in new:
            for cc in (m.cc, m.cc_lsb):
                if cc is None:
                    continue
                if m.channel == 0:
                    any_channel.add(cc)
                else:
                    on_channel.add((m.channel, cc))
        self._index = (frozenset(any_channel), frozenset(on_channel))

    def rebind(self, registry: ParameterRegistry, mappings: Iterable[MidiMapping | Mapping[str, Any]]) -> None:
        """Drive another registry (a session rebuilt with other sources or chains) with ``mappings``.

        The MIDI client and its port stay open; a learn in progress is cancelled, and every knob must
        catch its parameter's value again (soft takeover). Raises ``KeyError`` (nothing changed) when a
        mapping names a parameter ``registry`` lacks.
        """
        new = tuple(MidiMapping.from_dict(m) for m in mappings)
        unknown = sorted({m.parameter for m in new if m.parameter not in registry})
        if unknown:
            raise KeyError(f"MIDI mapping for unknown parameter(s) {', '.join(unknown)}; known: {registry.names()}")
        self.cancel_learn()
        self.registry = registry
        self._takeover = {}
        self.set_mappings(new)

    def caught(self, parameter: str) -> bool:
        """Whether a mapping of ``parameter`` has caught it (soft takeover), i.e. its knob now drives it."""
        return any(st.caught for m, st in self._takeover.items() if m.parameter == parameter)

    def reset_takeover(self, parameter: str | None = None) -> None:
        """Make the mappings of ``parameter`` (of every parameter when ``None``) catch the value again.

        Not needed after ordinary changes made elsewhere (the GUI, a preset): :meth:`poll` notices
        those by itself.
        """
        for m, st in self._takeover.items():
            if parameter is None or m.parameter == parameter:
                st.caught = False

    # --------------------------------------------------------------------------------------- learn

    @property
    def learning(self) -> str | None:
        """The parameter a MIDI learn is armed for, or ``None``."""
        return self._learn_parameter

    def learn(self, parameter: str, *, fourteen_bit: bool = False, **fields: Any) -> None:
        """Arm MIDI learn: the next control change received maps to ``parameter``.

        The new mapping replaces every mapping of ``parameter`` and every mapping that listens to the
        same controller on the same channel (or on any channel); :attr:`on_learned` hears of it from
        :meth:`poll`, which also disarms the learn. The learning message then counts as the knob's
        first move (with soft takeover: its position, from which it must cross the value).

        Args:
            parameter: registry name.
            fourteen_bit: pair the learned controller (0–31) with its LSB (controller + 32).
            fields: other :class:`MidiMapping` fields of the new mapping (``minimum``, ``maximum``,
                ``curve``, ``soft_takeover``).
        """
        self.registry.spec(parameter)  # KeyError for unknown names
        bad = sorted(set(fields) - {"minimum", "maximum", "curve", "soft_takeover"})
        if bad:
            raise TypeError(f"learn() got unexpected mapping field(s) {', '.join(bad)}")
        MidiMapping(parameter, 0, **fields)  # validate the fields now, not when the message arrives
        self._learn_fields = dict(fields)
        self._learn_fourteen_bit = fourteen_bit
        with self._lock:
            self._learn_hit = None
        self._learn_parameter = parameter

    def cancel_learn(self) -> None:
        """Disarm MIDI learn (nothing changes)."""
        self._learn_parameter = None
        with self._lock:
            self._learn_hit = None

    # ---------------------------------------------------------------------------- message handling

    @property
    def ignored(self) -> dict[str, int]:
        """How many messages were ignored, by reason (see :data:`IGNORE_REASONS`)."""
        with self._lock:
            return dict(self._ignored)

    @property
    def received(self) -> int:
        """How many messages were accepted (control and program changes that someone listens to)."""
        return self._received

    def reset_statistics(self) -> None:
        """Zero :attr:`ignored` and :attr:`received`."""
        with self._lock:
            self._ignored.clear()
            self._received = 0

    def _ignore(self, reason: str) -> bool:
        with self._lock:
            self._ignored[reason] += 1
        return False

    def handle_message(self, message: Sequence[int], delta: float = 0.0) -> bool:
        """Parse one raw MIDI message and store it for the next :meth:`poll`; never raises.

        Runs inside :meth:`poll` (draining rtmidi's queue), and may be fed
        directly (tests, other transports). It accepts complete control
        changes (``0xBn cc value``) and program changes (``0xCn program``); everything else is
        counted in :attr:`ignored`.

        Args:
            message: the message bytes, status first.
            delta: seconds since the previous message (rtmidi's timestamp; unused).

        Returns:
            Whether the message was accepted.
        """
        try:
            if not isinstance(message, (list, tuple, bytes, bytearray)):
                return self._ignore("malformed")
            if not message:
                return self._ignore("empty")
            status = message[0]
            if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status <= 0xFF:
                return self._ignore("malformed")
            if status < 0x80:
                return self._ignore("running_status")
            if status in (0xF0, 0xF7):
                return self._ignore("sysex")
            if status >= 0xF8:
                return self._ignore("realtime")
            if status >= 0xF0:
                return self._ignore("system")
            kind, channel = status & 0xF0, (status & 0x0F) + 1
            data = message[1:]
            if len(data) != _DATA_BYTES[kind] or not all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 127 for b in data
            ):
                return self._ignore("malformed")
            if kind == CC:
                cc, value = data[0], data[1]
                any_channel, on_channel = self._index
                learning = self._learn_parameter is not None
                if not (learning or cc in any_channel or (channel, cc) in on_channel):
                    return self._ignore("unmapped")
                key = (channel, cc)
                with self._lock:
                    self._pending_cc.pop(key, None)  # re-insert: dict order = order of last arrival
                    self._pending_cc[key] = value
                    if learning and self._learn_hit is None:
                        self._learn_hit = (channel, cc, value)
                    self._received += 1
                return True
            if kind == PROGRAM:
                if self.on_program is None:
                    return self._ignore("unmapped")
                with self._lock:
                    self._pending_program.pop(channel, None)
                    self._pending_program[channel] = data[0]
                    self._received += 1
                return True
            return self._ignore(_IGNORED_KIND[kind])
        except Exception:  # pragma: no cover - defensive: nothing may escape into rtmidi's thread
            log.exception("MIDI message %r", message)
            return self._ignore("error")

    def _on_rtmidi(self, event: tuple[Sequence[int], float], data: object = None) -> None:
        """One rtmidi event, ``(message, delta seconds)``, from the queue."""
        try:
            message, delta = event
        except (TypeError, ValueError):
            self._ignore("malformed")
            return
        self.handle_message(message, delta)

    # ----------------------------------------------------------------------------------------- poll

    def poll(self, now: float | None = None) -> dict[str, float]:
        """Apply what arrived since the previous call; call it 50–100 times a second from one thread.

        In order: rescan for a wanted port (at most every :attr:`rescan_interval` seconds), finish
        a MIDI learn (calling :attr:`on_learned`), report program changes (:attr:`on_program`), then
        write the mapped control changes into the registry.

        Args:
            now: the current ``time.monotonic()`` in seconds (for the rescan schedule; tests pass it).

        Returns:
            The parameters written, with the values stored.
        """
        self._scan(time.monotonic() if now is None else now)
        if self._port_name is not None:
            self._drain()
        with self._lock:
            batch, self._pending_cc = self._pending_cc, {}
            programs, self._pending_program = self._pending_program, {}
            learn_hit = self._learn_hit
            if learn_hit is not None:
                self._learn_hit = None
        if learn_hit is not None and self._learn_parameter is not None:
            self._finish_learn(*learn_hit)
        for channel, program in programs.items():
            if self.on_program is not None:
                self.on_program(channel, program)
        if not batch:
            return {}
        order = {key: i for i, key in enumerate(batch)}
        changed: dict[str, float] = {}
        for m in self._mappings:
            ccs = (m.cc, m.cc_lsb)
            if m.channel:
                channels: Iterable[int] = (m.channel,)
            else:  # any channel: each channel that sent this controller, in order of arrival
                channels = dict.fromkeys(ch for ch, cc in batch if cc in ccs)
            for ch in channels:
                raw = self._raw_position(m, ch, batch, order)
                if raw is not None:
                    self._apply(m, raw, changed)
        self._last_cc.update(batch)
        return changed

    def _raw_position(
        self, m: MidiMapping, channel: int, batch: dict[tuple[int, int], int], order: dict[tuple[int, int], int]
    ) -> float | None:
        """Controller position in ``[0, 1]`` of mapping ``m`` on ``channel`` from ``batch``, or ``None``.

        7 bits: ``value / 127``. 14 bits: ``(msb << 7 | lsb) / 16383``, where an MSB that arrives
        without a later LSB resets the LSB to 0 (as the MIDI specification asks) and an LSB alone
        completes the last MSB seen.
        """
        msb_key = (channel, m.cc)
        if m.cc_lsb is None:
            return batch[msb_key] / 127.0 if msb_key in batch else None
        lsb_key = (channel, m.cc_lsb)
        if msb_key in batch:
            msb = batch[msb_key]
            lsb = batch[lsb_key] if lsb_key in batch and order[lsb_key] > order[msb_key] else 0
        elif lsb_key in batch:
            msb, lsb = self._last_cc.get(msb_key, 0), batch[lsb_key]
        else:
            return None
        return ((msb << 7) | lsb) / 16383.0

    def _apply(self, m: MidiMapping, raw: float, changed: dict[str, float]) -> None:
        """Write mapping ``m``'s parameter for controller position ``raw``, honouring soft takeover."""
        spec = self.registry.spec(m.parameter)
        target = m.position(raw)
        st = self._takeover.setdefault(m, _Takeover())
        if m.soft_takeover and not spec.toggle:  # a switch has no position to catch: it always follows
            current = self.registry.get(m.parameter)
            if st.caught and st.written != current:  # changed elsewhere (GUI, preset): catch it again
                st.caught = False
            if not st.caught:
                position = spec.to_normalized(current)
                prev = st.last_target
                crossed = prev is not None and (prev - position) * (target - position) <= 0.0
                st.caught = crossed or abs(target - position) <= self.takeover_tolerance
            st.last_target = target
            if not st.caught:
                return
        st.last_target = target
        st.written = self.registry.set_normalized(m.parameter, target)
        changed[m.parameter] = st.written

    def _finish_learn(self, channel: int, cc: int, value: int) -> None:
        parameter = self._learn_parameter
        assert parameter is not None
        cc_lsb = cc + 32 if self._learn_fourteen_bit and cc < 32 else None
        new = MidiMapping(parameter, cc, channel=channel, cc_lsb=cc_lsb, **self._learn_fields)
        mine = {cc} | ({cc_lsb} if cc_lsb is not None else set())

        def conflicts(m: MidiMapping) -> bool:
            same_channel = m.channel in (0, channel)
            return m.parameter == parameter or (same_channel and bool(mine & {m.cc, m.cc_lsb}))

        self.set_mappings([m for m in self._mappings if not conflicts(m)] + [new])
        self._takeover[new] = _Takeover()
        self._learn_parameter = None
        if self.on_learned is not None:
            self.on_learned(new)

    # ---------------------------------------------------------------------------------------- ports

    @property
    def connected(self) -> bool:
        """Whether an input port (hardware or virtual) is open."""
        return self._port_name is not None

    @property
    def port_name(self) -> str | None:
        """The name of the port that is open: the source port, or this client's virtual port."""
        return self._port_name

    @property
    def wanted(self) -> str | None:
        """The port name (substring) that :meth:`poll` keeps connected, or ``None``."""
        return self._wanted

    def _client(self) -> Any:
        """The rtmidi input client, created on first use."""
        if self._midi_in is not None:
            return self._midi_in
        import rtmidi

        if self.api is not None:
            tries: list[tuple[str, int]] = [(self.api, midi_api_id(self.api))]
        else:
            tries = [("auto", rtmidi.API_UNSPECIFIED)] + [(a, midi_api_id(a)) for a in compiled_midi_apis()]
        errors = []
        for name, api_id in tries:
            try:
                midi_in = rtmidi.MidiIn(rtapi=api_id, name=self.client_name, queue_size_limit=self.queue_size)
            except rtmidi.RtMidiError as e:
                errors.append(f"{name}: {e}")
                continue
            # Default filters: sysex, clock and active sensing never reach the queue (cheaper).
            midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
            self._midi_in = midi_in
            api = midi_in.get_current_api()
            self._api_used = {midi_api_id(a): a for a in compiled_midi_apis()}.get(api, str(api))
            return midi_in
        raise OSError(f"cannot start a MIDI input client ({'; '.join(errors)}); is the JACK server running?")

    def start_client(self) -> str:
        """Start the MIDI client now (else the first port operation does); returns the API it runs on.

        With a JACK audio stream of lincae's own (:class:`lincae.io.jack_stream.JackStream`) running, a
        new JACK MIDI client cannot register (python-rtmidi holds the GIL while it connects, and the
        stream's process callback needs it): start the client before the audio.
        """
        self._client()
        return self._api_used or ""

    def close_port(self) -> None:
        """Close the open port and stop watching; the client stays (ports open again without a new one)."""
        self._wanted = None
        self._close_port()

    def available_ports(self) -> list[str]:
        """Names of the ports that :meth:`open` can connect to, in index order."""
        return list(self._client().get_ports())

    def open(self, port: int | str) -> str:
        """Open an input from ``port``: an index of :meth:`available_ports` or a name substring.

        The port is then also :attr:`wanted`: if it disappears, :meth:`poll` notices and reopens it
        when it is back (a name substring as given, an index as the name it resolved to).

        Returns:
            The name of the opened port.

        Raises:
            ValueError: no port or several match (the message lists the ports).
            OSError: no MIDI client could be started.
        """
        ports = self.available_ports()
        listing = ", ".join(f"[{i}] {p}" for i, p in enumerate(ports)) or "(none)"
        if isinstance(port, int) and not isinstance(port, bool):
            if not 0 <= port < len(ports):
                raise ValueError(f"no MIDI input port {port}; ports: {listing}")
            index = port
        else:
            hits = match_names(ports, str(port))
            if len(hits) != 1:
                what = "no MIDI input port matches" if not hits else "several MIDI input ports match"
                raise ValueError(f"{what} {port!r}; ports: {listing}")
            index = hits[0]
        self._open_index(index, ports[index])
        self._wanted = port if isinstance(port, str) else ports[index]
        return ports[index]

    def open_virtual(self, name: str = "in") -> str:
        """Open a virtual input port ``name`` that other programs connect to (``<client>:<name>`` on JACK).

        Clears :attr:`wanted` (nothing to rescan for). Returns ``name``.
        """
        self._close_port()
        self._wanted = None
        midi_in = self._client()
        midi_in.open_virtual_port(name)
        self._port_name, self._virtual = name, True
        return name

    def watch(self, name: str | None, *, scan_now: bool = True) -> bool:
        """Keep the port whose name contains ``name`` connected (``None``: stop watching).

        :meth:`poll` rescans at most every :attr:`rescan_interval` seconds while the port is absent,
        opens it when it appears, and notices when it disappears. Returns :attr:`connected`.
        """
        self._wanted = name
        self._last_scan = -math.inf
        if scan_now and name is not None:
            self._scan(time.monotonic())
        return self.connected

    def _open_index(self, index: int, name: str) -> None:
        self._close_port()
        midi_in = self._client()
        midi_in.open_port(index, self.port_label)
        self._port_name, self._virtual = name, False
        self.last_error = None
        log.info("MIDI input connected to %s", name)
        if self.on_connection is not None:
            self.on_connection(name, True)

    def _close_port(self) -> None:
        midi_in = self._midi_in
        if midi_in is not None and midi_in.is_port_open():
            self._drain()
            midi_in.close_port()
        self._port_name, self._virtual = None, False

    def _drain(self) -> None:
        """Move what rtmidi queued into :meth:`handle_message` (at most one queue's worth)."""
        midi_in = self._midi_in
        if midi_in is None:
            return
        for _ in range(self.queue_size):
            event = midi_in.get_message()
            if event is None:
                break
            self._on_rtmidi(event)

    def _scan(self, now: float) -> None:
        """Rescan for the wanted port (rate-limited): notice it gone, open it when it appears."""
        if self._wanted is None or self._virtual or 0.0 <= now - self._last_scan < self.rescan_interval:
            return  # (a clock that went backwards makes the rescan due)
        self._last_scan = now
        try:
            ports = self.available_ports()
        except Exception as e:  # no JACK server (yet): try again later
            self.last_error = str(e)
            return
        if self._port_name is not None:
            if self._port_name in ports:
                return
            gone = self._port_name
            self._close_port()
            log.info("MIDI input %s disappeared", gone)
            if self.on_connection is not None:
                self.on_connection(gone, False)
        hits = match_names(ports, self._wanted)
        if len(hits) == 1:
            try:
                self._open_index(hits[0], ports[hits[0]])
            except Exception as e:  # it vanished again between the scan and the open
                self.last_error = f"cannot open MIDI input {ports[hits[0]]}: {e}"
        elif hits:
            self.last_error = f"several MIDI input ports match {self._wanted!r}: {', '.join(ports[i] for i in hits)}"

    def close(self) -> None:
        """Close the port and the MIDI client; stop watching. The mappings stay; ``open`` works again."""
        self._wanted = None
        self._close_port()
        if self._midi_in is not None:
            self._midi_in.delete()  # closes the backend client now, not whenever the GC runs
            self._midi_in = None

    def __enter__(self) -> MidiController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        port = self._port_name or (f"waiting for {self._wanted!r}" if self._wanted else "closed")
        return f"MidiController({len(self._mappings)} mappings, {self._api_used or self.api or 'auto'}: {port})"


__all__ = ["IGNORE_REASONS", "MidiController", "MidiMapping"]
