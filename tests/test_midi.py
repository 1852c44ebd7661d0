"""MIDI control: mapping logic through the real message handler, then end to end over a JACK server."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.io.mapping import MidiMapping
from lincae.io.midi import IGNORE_REASONS, MidiController

pytest_plugins = ["jackd_fixture"]

GAIN = "source.1.gain_db"  # -60 .. 12 dB, default 0 dB (position 60/72)
WET = "mix.dry_wet"  # 0 .. 100 %, default 100
MUTE = "source.1.mute"  # toggle


def cc(channel: int, number: int, value: int) -> list[int]:
    """A control change on ``channel`` 1-16."""
    return [0xB0 | (channel - 1), number, value]


@pytest.fixture
def registry() -> ParameterRegistry:
    return ParameterRegistry(mixer_parameters(2))


def make(registry: ParameterRegistry, *mappings: MidiMapping, **kwargs: object) -> MidiController:
    return MidiController(registry, list(mappings), **kwargs)  # type: ignore[arg-type]


def send(ctl: MidiController, *messages: list[int]) -> dict[str, float]:
    for m in messages:
        ctl.handle_message(m)
    return ctl.poll()


def gain_at(position: float) -> float:
    return -60.0 + 72.0 * position


# ---------------------------------------------------------------------------------------------- mapping


def test_linear_cc_spans_the_range(registry: ParameterRegistry) -> None:
    ctl = make(registry, MidiMapping(GAIN, cc=7, soft_takeover=False))
    assert send(ctl, cc(1, 7, 127)) == {GAIN: 12.0}
    assert send(ctl, cc(1, 7, 0)) == {GAIN: -60.0}
    send(ctl, cc(1, 7, 64))
    assert registry.get(GAIN) == pytest.approx(gain_at(64 / 127))
    assert ctl.poll() == {}  # nothing new: nothing written
    assert ctl.received == 3 and ctl.ignored == {}


def test_latest_value_wins_between_polls(registry: ParameterRegistry) -> None:
    ctl = make(registry, MidiMapping(GAIN, cc=7, soft_takeover=False))
    for v in range(0, 128, 3):
        ctl.handle_message(cc(1, 7, v))
    ctl.handle_message(cc(1, 7, 32))
    assert ctl.poll() == {GAIN: pytest.approx(gain_at(32 / 127))}


def test_minimum_above_maximum_inverts(registry: ParameterRegistry) -> None:
    ctl = make(registry, MidiMapping(WET, cc=1, minimum=0.75, maximum=0.25, soft_takeover=False))
    send(ctl, cc(1, 1, 0))
    assert registry.get(WET) == pytest.approx(75.0)
    send(ctl, cc(1, 1, 127))
    assert registry.get(WET) == pytest.approx(25.0)
    send(ctl, cc(1, 1, 127 // 2))
    assert registry.get(WET) == pytest.approx(75.0 - 50.0 * (63 / 127))


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ("linear", lambda x: x),
        ("log", lambda x: math.log10(1.0 + 9.0 * x)),
        ("exp", lambda x: (10.0**x - 1.0) / 9.0),
    ],
)
def test_curves(registry: ParameterRegistry, curve: str, expected: Callable[[float], float]) -> None:
    ctl = make(registry, MidiMapping(WET, cc=2, curve=curve, soft_takeover=False))
    for v in (0, 16, 64, 100, 127):
        send(ctl, cc(1, 2, v))
        assert registry.get(WET) == pytest.approx(100.0 * expected(v / 127), abs=1e-9), (curve, v)
    if curve == "log":  # fine control at the bottom: the first half of the knob covers most of the range
        send(ctl, cc(1, 2, 64))
        assert registry.get(WET) > 70.0


def test_fourteen_bit_pairs(registry: ParameterRegistry) -> None:
    ctl = make(registry, MidiMapping(WET, cc=1, cc_lsb=33, soft_takeover=False))
    send(ctl, cc(1, 1, 64), cc(1, 33, 0))
    assert registry.get(WET) == pytest.approx(100.0 * 8192 / 16383)
    send(ctl, cc(1, 1, 127), cc(1, 33, 127))
    assert registry.get(WET) == 100.0
    send(ctl, cc(1, 1, 0), cc(1, 33, 1))  # one step above zero: finer than any 7-bit step
    assert registry.get(WET) == pytest.approx(100.0 / 16383)
    send(ctl, cc(1, 33, 100))  # LSB alone completes the last MSB
    assert registry.get(WET) == pytest.approx(100.0 * 100 / 16383)
    send(ctl, cc(1, 1, 3))  # MSB alone: LSB resets to 0 (MIDI specification)
    assert registry.get(WET) == pytest.approx(100.0 * (3 << 7) / 16383)
    send(ctl, cc(1, 33, 5), cc(1, 1, 2))  # an LSB before the MSB belongs to the previous MSB
    assert registry.get(WET) == pytest.approx(100.0 * (2 << 7) / 16383)
    assert ctl.ignored == {}


def test_channels(registry: ParameterRegistry) -> None:
    ctl = make(
        registry,
        MidiMapping(GAIN, cc=7, channel=2, soft_takeover=False),
        MidiMapping(WET, cc=8, channel=0, soft_takeover=False),
    )
    assert send(ctl, cc(3, 7, 0)) == {}  # channel 3 is nobody's
    assert send(ctl, cc(2, 9, 0)) == {}  # controller 9 is nobody's
    assert ctl.ignored == {"unmapped": 2}
    assert registry.get(GAIN) == 0.0
    assert send(ctl, cc(2, 7, 0)) == {GAIN: -60.0}
    assert send(ctl, cc(16, 8, 0)) == {WET: 0.0}  # channel 0 = any channel
    assert send(ctl, cc(1, 8, 127)) == {WET: 100.0}


def test_soft_takeover_waits_until_the_knob_crosses(registry: ParameterRegistry) -> None:
    ctl = make(registry, MidiMapping(GAIN, cc=7))  # soft takeover is the default
    here = registry.get(GAIN)  # 0 dB, position 0.833 (knob ~105.8)
    for v in (10, 30, 60, 90, 100):  # far below, creeping up: nothing yet
        assert send(ctl, cc(1, 7, v)) == {}
        assert registry.get(GAIN) == here
        assert not ctl.caught(GAIN)
    send(ctl, cc(1, 7, 110))  # crossed 105.8 on the way from 100 to 110: caught
    assert ctl.caught(GAIN)
    assert registry.get(GAIN) == pytest.approx(gain_at(110 / 127))
    send(ctl, cc(1, 7, 20))  # once caught, it follows anywhere
    assert registry.get(GAIN) == pytest.approx(gain_at(20 / 127))

    registry.set(GAIN, 6.0)  # the GUI (or a preset) moves the parameter: position 0.917 (knob ~116.4)
    for v in (25, 60, 100):
        assert send(ctl, cc(1, 7, v)) == {}
        assert registry.get(GAIN) == 6.0
    assert not ctl.caught(GAIN)
    send(ctl, cc(1, 7, 127))  # jumps over it in one message: crossing counts too
    assert registry.get(GAIN) == 12.0 and ctl.caught(GAIN)

    registry.set(GAIN, -30.0)  # position 0.417 (knob ~52.9)
    assert send(ctl, cc(1, 7, 90)) == {}
    send(ctl, cc(1, 7, 53))  # within the tolerance without crossing: caught
    assert registry.get(GAIN) == pytest.approx(gain_at(53 / 127))


def test_soft_takeover_catches_near_the_value_on_the_first_message(registry: ParameterRegistry) -> None:
    ctl = make(registry, MidiMapping(WET, cc=7), MidiMapping(GAIN, cc=8), takeover_tolerance=0.02)
    assert send(ctl, cc(1, 7, 126)) == {WET: pytest.approx(100.0 * 126 / 127)}  # 0.8 % away from 100 %
    assert send(ctl, cc(1, 8, 100)) == {}  # 0.787 vs 0.833: 4.6 % away
    ctl.reset_takeover()
    assert not ctl.caught(WET)


def test_toggles_follow_buttons_without_takeover(registry: ParameterRegistry) -> None:
    ctl = make(registry, MidiMapping(MUTE, cc=20))
    assert send(ctl, cc(1, 20, 127)) == {MUTE: 1.0}
    assert send(ctl, cc(1, 20, 0)) == {MUTE: 0.0}


def test_learn_replaces_mappings_of_the_parameter_and_the_controller(registry: ParameterRegistry) -> None:
    same_parameter = MidiMapping("source.2.gain_db", cc=5)
    same_controller = MidiMapping(GAIN, cc=21, channel=0)
    other_channel = MidiMapping(MUTE, cc=21, channel=4)
    unrelated = MidiMapping(WET, cc=22, channel=1)
    learned: list[MidiMapping] = []
    ctl = make(registry, same_parameter, same_controller, other_channel, unrelated, on_learned=learned.append)

    ctl.learn("source.2.gain_db", soft_takeover=False, curve="log")
    assert ctl.learning == "source.2.gain_db"
    ctl.handle_message([0xF8])  # clock: not a control change, does not end the learn
    ctl.handle_message(cc(3, 21, 64))
    ctl.handle_message(cc(3, 99, 1))  # only the first control change is learned
    assert learned == []  # callbacks come from poll(), never from the MIDI thread
    ctl.poll()
    new = MidiMapping("source.2.gain_db", cc=21, channel=3, curve="log", soft_takeover=False)
    assert learned == [new]
    assert ctl.mappings == [other_channel, unrelated, new]
    assert ctl.learning is None
    send(ctl, cc(3, 21, 127))
    assert registry.get("source.2.gain_db") == 12.0
    assert send(ctl, cc(3, 99, 1)) == {} and ctl.ignored["unmapped"] == 1


def test_learn_fourteen_bit_and_cancel(registry: ParameterRegistry) -> None:
    learned: list[MidiMapping] = []
    ctl = make(registry, on_learned=learned.append)
    ctl.learn(WET, fourteen_bit=True)
    send(ctl, cc(1, 2, 10))
    assert learned == [MidiMapping(WET, cc=2, channel=1, cc_lsb=34)]

    ctl.learn(GAIN)
    ctl.cancel_learn()
    assert send(ctl, cc(1, 50, 3)) == {}
    assert ctl.learning is None and len(learned) == 1 and ctl.ignored == {"unmapped": 1}
    with pytest.raises(KeyError):
        ctl.learn("no.such.parameter")
    with pytest.raises(ValueError, match="curve"):
        ctl.learn(GAIN, curve="cubic")


def test_program_change(registry: ParameterRegistry) -> None:
    programs: list[tuple[int, int]] = []
    ctl = make(registry)
    ctl.handle_message([0xC4, 10])
    assert ctl.ignored == {"unmapped": 1}  # no one listens yet
    ctl.on_program = lambda channel, program: programs.append((channel, program))
    ctl.handle_message([0xC4, 10])
    ctl.handle_message([0xC4, 11])  # the latest per channel
    ctl.handle_message([0xC0, 0])
    assert programs == []
    ctl.poll()
    assert programs == [(5, 11), (1, 0)]
    ctl.handle_message([0xC0, 128])  # data byte out of range
    ctl.handle_message([0xC0, 1, 2])  # too long
    ctl.poll()
    assert programs == [(5, 11), (1, 0)] and ctl.ignored == {"unmapped": 1, "malformed": 2}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([], "empty"),
        ([0xB0, 7], "malformed"),  # truncated control change
        ([0xB0, 7, 64, 1], "malformed"),  # too long
        ([0xB0, 7, 128], "malformed"),  # data byte > 127
        ([0xB0, -1, 5], "malformed"),
        ([0xB0, 7.5, 5], "malformed"),
        ([0xB0, True, 5], "malformed"),
        ([300, 1, 2], "malformed"),
        ("abc", "malformed"),
        (None, "malformed"),
        ([7, 64], "running_status"),  # running-status fragment: data bytes only
        ([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7], "sysex"),
        ([0xF7], "sysex"),
        ([0xF2, 0, 0], "system"),  # song position
        ([0xF1, 0x10], "system"),  # MTC quarter frame
        ([0xF8], "realtime"),  # clock
        ([0xFA], "realtime"),  # start
        ([0xFE], "realtime"),  # active sensing
        ([0xFF], "realtime"),  # reset
        ([0x90, 60, 100], "note"),
        ([0x80, 60, 0], "note"),
        ([0xA0, 60, 10], "note"),
        ([0xD0, 5], "channel"),
        ([0xE0, 0, 64], "channel"),
        ([0xB5, 7, 64], "unmapped"),  # channel 6 is not mapped
    ],
)
def test_other_and_malformed_messages_are_ignored_and_counted(
    registry: ParameterRegistry, message: object, reason: str
) -> None:
    assert reason in IGNORE_REASONS
    ctl = make(registry, MidiMapping(GAIN, cc=7, channel=1, soft_takeover=False))
    before = registry.values()
    assert ctl.handle_message(message) is False  # type: ignore[arg-type]
    assert ctl.poll() == {}
    assert registry.values() == before
    assert ctl.ignored == {reason: 1} and ctl.received == 0
    ctl.reset_statistics()
    assert ctl.ignored == {}


def test_rtmidi_queue_entry_point(registry: ParameterRegistry) -> None:
    """What rtmidi's queue gives: ``(message, delta)`` pairs, and garbage that must not raise."""
    ctl = make(registry, MidiMapping(GAIN, cc=7, soft_takeover=False))
    ctl._on_rtmidi(([0xB0, 7, 0], 0.001), None)
    ctl._on_rtmidi(None, None)  # type: ignore[arg-type]
    assert ctl.poll() == {GAIN: -60.0}
    assert ctl.ignored == {"malformed": 1}


def test_set_mappings(registry: ParameterRegistry) -> None:
    ctl = make(registry)
    ctl.set_mappings([{"parameter": WET, "cc": 3, "soft_takeover": False}])
    assert ctl.mappings == [MidiMapping(WET, cc=3, soft_takeover=False)]
    assert send(ctl, cc(1, 3, 0)) == {WET: 0.0}
    with pytest.raises(KeyError, match=r"no\.such"):
        ctl.set_mappings([MidiMapping("no.such", cc=3)])
    with pytest.raises(ValueError, match="unknown MidiMapping key"):
        ctl.set_mappings([{"parameter": WET, "cc": 3, "knob": 1}])
    assert ctl.mappings == [MidiMapping(WET, cc=3, soft_takeover=False)]  # unchanged after errors
    ctl.set_mappings([])
    assert send(ctl, cc(1, 3, 127)) == {} and registry.get(WET) == 0.0


def test_handler_and_poll_on_different_threads(registry: ParameterRegistry) -> None:
    ctl = make(registry, MidiMapping(WET, cc=7, soft_takeover=False))
    n = 20000

    def midi_thread() -> None:
        for i in range(n):
            ctl.handle_message(cc(1, 7, i % 128))
        ctl.handle_message(cc(1, 7, 42))

    t = threading.Thread(target=midi_thread)
    t.start()
    while t.is_alive():
        ctl.poll()
    t.join()
    ctl.poll()
    assert registry.get(WET) == pytest.approx(100.0 * 42 / 127)
    assert ctl.received == n + 1 and ctl.ignored == {}


def test_constructor_checks(registry: ParameterRegistry) -> None:
    with pytest.raises(ValueError, match="api"):
        MidiController(registry, api="coreaudio")
    with pytest.raises(KeyError):
        MidiController(registry, [MidiMapping("nope", cc=1)])


# ------------------------------------------------------------------------------------- end to end (JACK)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, step: Callable[[], object] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if condition():
            return True
        time.sleep(0.005)
    return condition()


@pytest.fixture
def midi_out(jack_server: object) -> Iterator[Callable[[str], Any]]:
    """Create JACK MIDI outputs (the 'hardware controller'); each is ``<client>:out``."""
    rtmidi = pytest.importorskip("rtmidi", reason="python-rtmidi is in the audio extra (scripts/setup.sh)")

    made: list[Any] = []

    def create(client: str) -> Any:
        out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=client)
        out.open_virtual_port("out")
        made.append(out)
        return out

    yield create
    for out in made:
        out.delete()  # idempotent in python-rtmidi


def unique(name: str) -> str:
    return f"{name}-{os.getpid()}"


def test_end_to_end_over_jack(registry: ParameterRegistry, jack_server, midi_out) -> None:  # type: ignore[no-untyped-def]
    client, source = unique("lincae-e2e"), unique("ctl-e2e")
    mapping = MidiMapping(GAIN, cc=7, channel=1, soft_takeover=False)
    with make(registry, mapping, client_name=client) as ctl:
        assert ctl.open_virtual("in") == "in"
        assert ctl.connected
        out = midi_out(source)
        jack_server.connect(f"{source}:out", f"{client}:in")

        assert wait_until(
            lambda: registry.get(GAIN) == 12.0, step=lambda: (out.send_message(cc(1, 7, 127)), ctl.poll())
        )
        assert wait_until(
            lambda: registry.get(GAIN) == pytest.approx(gain_at(32 / 127)),
            step=lambda: (out.send_message(cc(1, 7, 32)), ctl.poll()),
        )
        # a note arrives and is counted (in queue mode when poll() drains it); clock and sysex never
        # reach the handler (rtmidi filters them), so they are not counted
        out.send_message([0xF8])
        out.send_message([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7])
        assert wait_until(
            lambda: ctl.ignored.get("note", 0) > 0, step=lambda: (out.send_message([0x90, 60, 1]), ctl.poll())
        )
        assert "realtime" not in ctl.ignored and "sysex" not in ctl.ignored
        assert registry.get(GAIN) == pytest.approx(gain_at(32 / 127))
    assert not ctl.connected


def test_open_port_by_name_and_index(registry: ParameterRegistry, jack_server, midi_out) -> None:  # type: ignore[no-untyped-def]
    source = unique("ctl-open")
    out = midi_out(source)
    with make(registry, MidiMapping(WET, cc=1, soft_takeover=False), client_name=unique("lincae-open")) as ctl:
        ports = ctl.available_ports()
        assert f"{source}:out" in ports
        with pytest.raises(ValueError, match=r"no MIDI input port matches 'no-such-port'; ports: .*ctl-open"):
            ctl.open("no-such-port")
        assert ctl.open(source.upper()) == f"{source}:out"  # case-insensitive substring
        assert wait_until(lambda: registry.get(WET) == 0.0, step=lambda: (out.send_message(cc(1, 1, 0)), ctl.poll()))
        assert ctl.open(ports.index(f"{source}:out")) == f"{source}:out"
        assert ctl.wanted == f"{source}:out"
        assert wait_until(
            lambda: registry.get(WET) == 100.0, step=lambda: (out.send_message(cc(1, 1, 127)), ctl.poll())
        )


def test_hot_plug(registry: ParameterRegistry, jack_server, midi_out) -> None:  # type: ignore[no-untyped-def]
    """A wanted port that does not exist yet is opened when it appears, and noticed when it goes."""
    source = unique("hotplug")
    events: list[tuple[str, bool]] = []
    ctl = make(
        registry,
        MidiMapping(WET, cc=1, soft_takeover=False),
        client_name=unique("lincae-hp"),
        rescan_interval=10.0,
        on_connection=lambda name, up: events.append((name, up)),
    )
    try:
        assert ctl.watch(source) is False
        t0 = time.monotonic()
        ctl.poll(now=t0)
        out = midi_out(source)
        jack_server.wait_for_port(f"{source}:out")
        ctl.poll(now=t0 + 1.0)  # rescans are rate-limited: not yet
        assert not ctl.connected
        ctl.poll(now=t0 + 10.5)
        assert ctl.connected and ctl.port_name == f"{source}:out"
        assert events == [(f"{source}:out", True)]
        assert wait_until(lambda: registry.get(WET) == 0.0, step=lambda: (out.send_message(cc(1, 1, 0)), ctl.poll()))

        ctl.rescan_interval = 0.02
        out.delete()  # unplugged
        assert wait_until(lambda: not ctl.connected, step=ctl.poll)
        assert events[-1] == (f"{source}:out", False)

        out = midi_out(source)  # plugged in again
        assert wait_until(lambda: ctl.connected, step=ctl.poll)
        assert wait_until(
            lambda: registry.get(WET) == 100.0, step=lambda: (out.send_message(cc(1, 1, 127)), ctl.poll())
        )
        assert [up for _, up in events] == [True, False, True]
    finally:
        ctl.close()
