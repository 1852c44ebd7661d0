"""OSC control of a live session over UDP on loopback (real jackd, dummy backend): set, query, subscribe,
and bad messages that never reach the registry."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_tiny_model
from test_live import ENGINE

from lincae.engine.config import EngineConfig
from lincae.io.live import LiveConfig, wait_until
from lincae.presets import Preset
from lincae.rig import Rig

pytest_plugins = ["jackd_fixture"]
pytest.importorskip("jack", reason="JACK-Client is installed by scripts/setup.sh (dev extra)")
pytest.importorskip("pythonosc", reason="python-osc is in the audio extra")


def message(address: str, *args: object) -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def receive(sock: socket.socket) -> tuple[str, list[float]]:
    from pythonosc.osc_message import OscMessage

    m = OscMessage(sock.recv(65536))
    return m.address, list(m.params)


@pytest.fixture
def rig(jack_server, tmp_path: Path) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    Preset(name="quiet", engine=EngineConfig(sources=[1], **ENGINE), parameters={"master.gain_db": -20.0}).save(
        tmp_path / "quiet.json"
    )
    rig = Rig(make_tiny_model(), [1], engine=EngineConfig(sources=[1], **ENGINE))
    from lincae.programs import ProgramRecall

    rig.programs = ProgramRecall(rig.registry, [tmp_path / "quiet.json"], num_sources=1)
    rig.start_live(LiveConfig(input_device="system", output_device="system", output_channels=(1,)))
    stop = threading.Event()

    def control_loop() -> None:  # what lincae live's loop and the GUI's timer do
        while not stop.wait(0.02):
            rig.poll()

    loop = threading.Thread(target=control_loop, daemon=True)
    loop.start()
    try:
        yield rig
    finally:
        stop.set()
        loop.join()
        rig.stop_osc()
        rig.stop()


def test_osc_sets_queries_and_subscribes_over_udp(rig: Rig) -> None:
    osc = rig.start_osc("127.0.0.1", 0)
    assert osc.address[0] == "127.0.0.1"
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5.0)
    try:
        client.sendto(message("/lincae/source/1/gain", -6.0), osc.address)
        client.sendto(message("/lincae/source/1/mute", 1), osc.address)
        client.sendto(message("/lincae/param/mix.dry_wet", 25.0), osc.address)
        assert wait_until(lambda: rig.registry.get("mix.dry_wet") == 25.0, timeout=5)
        assert rig.registry.get("source.1.gain_db") == -6.0 and rig.registry.get("source.1.mute") == 1.0
        client.sendto(message("/lincae/source/1/gain"), osc.address)  # no argument: a query
        assert receive(client) == ("/lincae/source/1/gain", [-6.0])

        # bad input is dropped and counted; none of it reaches the registry
        before = rig.registry.values()
        client.sendto(message("/lincae/source/1/gain", float("nan")), osc.address)
        client.sendto(message("/lincae/master/gain", float("inf")), osc.address)
        client.sendto(message("/lincae/dry_wet", "loud"), osc.address)
        client.sendto(message("/lincae/source/9/gain", 0.0), osc.address)
        client.sendto(message("/lincae/master/gain", 500.0), osc.address)
        client.sendto(message("/nothing/here", 1.0), osc.address)
        assert wait_until(lambda: sum(osc.ignored.values()) >= 6, timeout=5), osc.ignored
        assert osc.ignored["not finite"] == 2 and osc.ignored["wrong type"] == 1
        assert osc.ignored["unknown address"] == 2 and osc.ignored["out of range"] == 1
        osc.max_rate = 100  # (the kernel's socket buffer drops a long flood before the server sees it)
        for _ in range(150):  # a flood: beyond max_rate messages a second it is dropped
            client.sendto(message("/lincae/master/gain", -1.0), osc.address)
        assert wait_until(lambda: osc.ignored["flood"] > 0, timeout=5), osc.ignored
        # what the flood's first second let through reaches the registry at the rig's next poll
        expected = {**before, "master.gain_db": -1.0}
        assert wait_until(lambda: rig.registry.values() == expected, timeout=5), rig.registry.values()

        time.sleep(1.1)  # the next second takes messages again
        client.sendto(message("/lincae/program", 0), osc.address)  # program 0: the "quiet" preset
        assert wait_until(lambda: rig.registry.get("master.gain_db") == -20.0, timeout=5)
        assert osc.reports == ["program 0: preset quiet"]

        while True:  # drop any answer still queued, then subscribe
            client.settimeout(0.3)
            try:
                client.recv(65536)
            except TimeoutError:
                break
        client.settimeout(5.0)
        client.sendto(message("/lincae/subscribe"), osc.address)
        got: dict[str, list[list[float]]] = {}
        while len(got.get("/lincae/meters", [])) < 3:
            address, values = receive(client)
            got.setdefault(address, []).append(values)
        assert len(got["/lincae/meters"][-1]) == 2  # the source's input peak, the output peak (dBFS)
        ms, samples = got["/lincae/latency"][-1]
        session = rig.session
        assert session is not None and samples == session.latency and ms == pytest.approx(samples / 44.1, rel=1e-4)
        assert set(got) == {"/lincae/meters", "/lincae/latency", "/lincae/load"}
    finally:
        client.close()


def test_osc_listens_on_loopback_unless_told_and_a_taken_port_is_one_line(rig: Rig) -> None:
    osc = rig.start_osc(port=0)
    assert osc.address[0] == "127.0.0.1"
    with pytest.raises(OSError, match=r"OSC: cannot listen on 127.0.0.1:\d+"):
        from lincae.io.osc import OscControl

        OscControl(rig.registry, "127.0.0.1", osc.address[1])


def test_the_osc_argument_binds_loopback_unless_a_host_is_named() -> None:
    from lincae.io.osc import parse_osc_address

    assert parse_osc_address("9000") == ("127.0.0.1", 9000)
    assert parse_osc_address("0.0.0.0:9001") == ("0.0.0.0", 9001)
    with pytest.raises(ValueError, match="expected PORT or HOST:PORT"):
        parse_osc_address("localhost")
    with pytest.raises(ValueError, match="expected PORT or HOST:PORT"):
        parse_osc_address("70000")


_MALFORMED_CLIENT = r"""
import json, socket, struct, sys, time
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.io.osc import OscControl

def pad(b): return b + bytes(4 - len(b) % 4)
def bundle(*parts, when=b"\0\0\0\0\0\0\0\1"):
    return b"#bundle\0" + when + b"".join(struct.pack(">i", len(p)) + p for p in parts)

good = pad(b"/lincae/master/gain") + pad(b",f") + struct.pack(">f", -6.0)
later = pad(b"/lincae/dry_wet") + pad(b",f") + struct.pack(">f", 50.0)
packets = [
    pad(b"/lincae/master/gain") + pad(b",x") + bytes(4),  # a type python-osc does not know
    bundle(b"garbage!"),  # a part that is no message
    bundle(b""),  # an empty part
    pad(b"/lincae/master/gain") + pad(b",i"),  # the argument is missing
    bundle(bundle(bundle(bundle(bundle(good))))),  # nested too deep
    bundle(later, when=b"\xff\xff\xff\xff\0\0\0\0"),  # dated in 2036: handled now all the same
    good,
]
osc = OscControl(ParameterRegistry(mixer_parameters(1)), port=0)
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in packets:
    client.sendto(p, osc.address)
written, deadline = {}, time.monotonic() + 20
while len(written) < 2 and time.monotonic() < deadline:
    written.update(osc.poll())
    time.sleep(0.02)
import logging
print(json.dumps({"written": written, "ignored": dict(osc.ignored), "root": len(logging.getLogger().handlers)}))
osc.close()
"""


def test_malformed_packets_are_one_rate_limited_line_of_lincae() -> None:
    """python-osc logs some malformed packets to the root logger (``WARNING:root:...``, configuring the
    process's logging on the way); lincae drops them first, into its own rate-limited line."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-c", _MALFORMED_CLIENT], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {
        "written": {"master.gain_db": -6.0, "mix.dry_wet": 50.0},
        "ignored": {"malformed packet": 5},
        "root": 0,
    }
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("OSC: ignored packet from 127.0.0.1:"), done.stderr
    assert lines[0].endswith("(malformed packet; 1 so far)")
