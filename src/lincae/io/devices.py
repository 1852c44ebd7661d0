"""Audio devices (PortAudio through ``sounddevice``) and MIDI input ports (``python-rtmidi``).

Nothing here is imported or initialised when this module is imported: ``sounddevice`` and
``rtmidi`` are imported inside the functions that need them (both are in the ``audio`` extra).

PortAudio scans its host APIs once, when it is initialised (at ``import sounddevice``). A JACK
server started later is only seen after :func:`refresh_audio_devices`, which re-initialises
PortAudio; that must not be done while a stream is open.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

Direction = Literal["input", "output"]

#: MIDI API names accepted by :func:`list_midi_inputs`, :func:`resolve_midi_input` and the MIDI controller.
MIDI_APIS = ("jack", "alsa")


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device.

    Attributes:
        index: PortAudio device index (valid until PortAudio is re-initialised).
        name: device name, e.g. ``system`` for the JACK server's hardware ports.
        hostapi: host API name, e.g. ``JACK Audio Connection Kit`` or ``ALSA``.
        max_input_channels, max_output_channels: channel counts (0: not usable in that direction).
        default_samplerate: the device's default sample rate in Hz.
    """

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    @property
    def label(self) -> str:
        """``name, host API`` as ``sounddevice`` writes it (what name queries are matched against)."""
        return f"{self.name}, {self.hostapi}"

    def channels(self, direction: Direction) -> int:
        """Channel count in ``direction``."""
        return self.max_input_channels if direction == "input" else self.max_output_channels

    def __str__(self) -> str:
        return (
            f"[{self.index}] {self.label} ({self.max_input_channels} in, {self.max_output_channels} out, "
            f"{self.default_samplerate:g} Hz)"
        )


@dataclass(frozen=True)
class MidiPort:
    """One MIDI input port as ``python-rtmidi`` lists it.

    Attributes:
        index: port number for ``MidiIn.open_port`` on ``api`` (valid until ports come or go).
        name: port name, e.g. ``ctl:out`` (JACK) or ``Midi Through:Midi Through Port-0 14:0`` (ALSA).
        api: ``jack`` or ``alsa``.
    """

    index: int
    name: str
    api: str

    def __str__(self) -> str:
        return f"[{self.index}] {self.name} ({self.api})"


# --------------------------------------------------------------------------------------------- matching


def match_names(names: Sequence[str], query: str) -> list[int]:
    """Indices of ``names`` that ``query`` selects: exact (case-insensitive) matches win over substrings.

    Returns every exact match if there is one, else every name containing ``query``
    (case-insensitive); an empty query matches nothing.
    """
    q = query.strip().casefold()
    if not q:
        return []
    folded = [n.casefold() for n in names]
    exact = [i for i, n in enumerate(folded) if n == q]
    return exact or [i for i, n in enumerate(folded) if q in n]


def _choose(candidates: Sequence[Any], query: int | str, what: str, keys: Sequence[Sequence[str]]) -> Any:
    """The one candidate ``query`` names; ``ValueError`` listing the candidates otherwise.

    ``keys[i]`` are the strings of candidate ``i`` tried in order (name first, then a longer label).
    """
    listing = "\n  ".join(str(c) for c in candidates) or "(none)"
    if isinstance(query, bool) or not isinstance(query, (int, str)):
        raise TypeError(f"{what}: expected an index or a name, got {query!r}")
    if isinstance(query, int):
        for c in candidates:
            if c.index == query:
                return c
        raise ValueError(f"no {what} with index {query}; candidates:\n  {listing}")
    found: list[int] = []
    for level in range(max((len(k) for k in keys), default=0)):
        names = [k[level] if level < len(k) else "" for k in keys]
        found = match_names(names, query)
        if found:
            break
    if len(found) == 1:
        return candidates[found[0]]
    if not found:
        raise ValueError(f"no {what} matches {query!r}; candidates:\n  {listing}")
    several = "\n  ".join(str(candidates[i]) for i in found)
    raise ValueError(f"{query!r} matches several {what}s; be more specific:\n  {several}")


# ------------------------------------------------------------------------------------------------ audio


@contextlib.contextmanager
def native_messages_hidden() -> Iterator[list[str]]:
    """Hold back what native libraries write to the process's stderr (file descriptor 2) meanwhile.

    PortAudio and RtMidi probe JACK and ALSA when they start and print their failures ("Cannot connect
    to server socket", "ALSA lib seq_hw.c ...") straight to file descriptor 2. Inside this block those
    lines go to a temporary file; the yielded list receives them afterwards (for logging or a hint).
    """
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += sink.read().decode(errors="replace").splitlines()
            for line in lines:
                log.debug("native: %s", line)


NO_AUDIO_HINT = (
    "no audio devices found. lincae plays through a JACK server (as a client of its own) or PortAudio; "
    "without a sound card start JACK with its dummy driver: jackd -d dummy -r 44100 -p 256 &"
)


def refresh_audio_devices() -> None:
    """Re-initialise PortAudio so that host APIs and devices that appeared since (a JACK server) are seen.

    Every open ``sounddevice`` stream breaks; call this only when none is open.
    """
    import sounddevice as sd

    if getattr(sd, "_initialized", 1) > 0:
        sd._terminate()
    sd._initialize()


def list_audio_devices(*, refresh: bool = False) -> list[AudioDevice]:
    """Every PortAudio device, in PortAudio's index order.

    Args:
        refresh: re-initialise PortAudio first (see :func:`refresh_audio_devices`).
    """
    import sounddevice as sd

    if refresh:
        refresh_audio_devices()
    hostapis = [h["name"] for h in sd.query_hostapis()]
    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append(
            AudioDevice(
                index=i,
                name=str(d["name"]),
                hostapi=hostapis[d["hostapi"]] if 0 <= d["hostapi"] < len(hostapis) else "?",
                max_input_channels=int(d["max_input_channels"]),
                max_output_channels=int(d["max_output_channels"]),
                default_samplerate=float(d["default_samplerate"]),
            )
        )
    return out


def resolve_audio_device(
    query: int | str, direction: Direction, devices: Iterable[AudioDevice] | None = None
) -> AudioDevice:
    """The audio device that ``query`` names, with channels in ``direction``.

    Args:
        query: a PortAudio index, or a case-insensitive substring of the device name (or of
            ``name, host API``, e.g. ``"system, JACK"``); an exact name match wins over substrings.
        direction: ``input`` or ``output``; devices without channels that way are not candidates.
        devices: the devices to choose from (default: :func:`list_audio_devices`).

    Raises:
        ValueError: no device or several match (the message lists the candidates), or the
            device at index ``query`` has no channels in ``direction``.
    """
    if direction not in ("input", "output"):
        raise ValueError(f"direction must be 'input' or 'output', got {direction!r}")
    everything = list(list_audio_devices() if devices is None else devices)
    candidates = [d for d in everything if d.channels(direction) > 0]
    if isinstance(query, int) and not isinstance(query, bool):
        hit = [d for d in everything if d.index == query]
        if hit and hit[0] not in candidates:
            listing = "\n  ".join(str(c) for c in candidates) or "(none)"
            raise ValueError(f"audio device {hit[0]} has no {direction} channels; {direction} devices:\n  {listing}")
    return _choose(candidates, query, f"audio {direction} device", [(d.name, d.label) for d in candidates])


# ------------------------------------------------------------------------------------------------- MIDI


def midi_api_id(api: str) -> int:
    """``rtmidi`` API constant for ``jack`` or ``alsa``."""
    import rtmidi

    ids = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}
    try:
        return ids[api]
    except KeyError:
        raise ValueError(f"MIDI API must be one of {MIDI_APIS}, got {api!r}") from None


def compiled_midi_apis() -> list[str]:
    """The MIDI APIs this ``python-rtmidi`` build supports, of :data:`MIDI_APIS`."""
    import rtmidi

    compiled = set(rtmidi.get_compiled_api())
    return [a for a in MIDI_APIS if midi_api_id(a) in compiled]


def list_midi_inputs(api: str | None = None, *, client_name: str = "lincae-scan") -> list[MidiPort]:
    """MIDI ports that can be opened as inputs (other programs' and devices' output ports).

    Args:
        api: ``jack``, ``alsa``, or ``None`` for every compiled API. An API that cannot start
            (no JACK server running, no ALSA sequencer) contributes no ports when ``api`` is
            ``None`` and raises ``OSError`` when asked for by name.
        client_name: the name of the short-lived scanning client.
    """
    import rtmidi

    apis = compiled_midi_apis() if api is None else [api]
    out: list[MidiPort] = []
    for name in apis:
        try:
            midi_in = rtmidi.MidiIn(rtapi=midi_api_id(name), name=client_name)
        except rtmidi.RtMidiError as e:
            if api is not None:
                raise OSError(f"MIDI API {name} is not available: {e}") from e
            log.debug("MIDI API %s not available: %s", name, e)
            continue
        try:
            out += [MidiPort(i, p, name) for i, p in enumerate(midi_in.get_ports())]
        finally:
            midi_in.delete()
    return out


def resolve_midi_input(query: int | str, api: str | None = None) -> MidiPort:
    """The MIDI input port that ``query`` (port index on ``api``, or name substring) names.

    An index needs ``api`` when several APIs are compiled (indices are per API).

    Raises:
        ValueError: none or several ports match (the message lists the candidates).
    """
    ports = list_midi_inputs(api)
    if isinstance(query, int) and not isinstance(query, bool) and api is None and len({p.api for p in ports}) > 1:
        raise ValueError(f"MIDI port index {query} is ambiguous across APIs; pass api='jack' or api='alsa'")
    return _choose(ports, query, "MIDI input port", [(p.name,) for p in ports])
