"""Audio device and MIDI port listing/resolution: pure matching logic, then against a JACK server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lincae.io.devices import (
    AudioDevice,
    MidiPort,
    list_audio_devices,
    list_midi_inputs,
    match_names,
    resolve_audio_device,
    resolve_midi_input,
)

pytest_plugins = ["jackd_fixture"]

DEVICES = [
    AudioDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "ALSA", 2, 2, 44100.0),
    AudioDevice(1, "HDA Intel PCH: HDMI 0 (hw:0,3)", "ALSA", 0, 8, 44100.0),
    AudioDevice(2, "USB Audio Interface", "ALSA", 4, 0, 48000.0),
    AudioDevice(3, "system", "JACK Audio Connection Kit", 2, 2, 44100.0),
    AudioDevice(4, "system monitor", "PulseAudio", 2, 0, 44100.0),
]


def test_match_names_prefers_exact_matches() -> None:
    names = ["system", "system monitor", "USB"]
    assert match_names(names, "SYSTEM") == [0]
    assert match_names(names, "syst") == [0, 1]
    assert match_names(names, "usb") == [2]
    assert match_names(names, "") == [] and match_names(names, "nope") == []


def test_resolve_audio_device_by_name_and_index() -> None:
    assert resolve_audio_device("usb", "input", DEVICES).index == 2
    assert resolve_audio_device("hdmi", "output", DEVICES).index == 1
    assert resolve_audio_device("System", "input", DEVICES).index == 3  # exact beats "system monitor"
    assert resolve_audio_device("monitor", "input", DEVICES).index == 4
    assert resolve_audio_device("system, JACK", "output", DEVICES).index == 3  # name, host API
    assert resolve_audio_device(0, "output", DEVICES).index == 0


def test_resolve_audio_device_errors_list_candidates() -> None:
    with pytest.raises(ValueError, match="several") as e:
        resolve_audio_device("HDA Intel", "output", DEVICES)
    assert "ALC3246" in str(e.value) and "HDMI" in str(e.value)
    with pytest.raises(ValueError, match="no audio input device matches 'nope'") as e:
        resolve_audio_device("nope", "input", DEVICES)
    assert "USB Audio Interface" in str(e.value) and "HDMI" not in str(e.value)  # inputs only
    with pytest.raises(ValueError, match="no audio output device matches 'usb'"):
        resolve_audio_device("usb", "output", DEVICES)  # direction respected
    with pytest.raises(ValueError, match="has no input channels"):
        resolve_audio_device(1, "input", DEVICES)
    with pytest.raises(ValueError, match="no audio output device with index 9"):
        resolve_audio_device(9, "output", DEVICES)
    with pytest.raises(ValueError, match="direction"):
        resolve_audio_device(0, "both", DEVICES)  # type: ignore[arg-type]


def test_importing_has_no_side_effects() -> None:
    code = (
        "import sys, lincae.io.devices, lincae.io.midi; "
        "bad = [m for m in ('sounddevice', 'rtmidi', '_rtmidi') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------------------------------------- JACK


def test_jack_system_device_is_listed_and_resolved(jack_server) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("sounddevice", reason="sounddevice is in the audio extra (scripts/setup.sh)")
    devices = list_audio_devices()
    jack = [d for d in devices if d.hostapi == "JACK Audio Connection Kit"]
    system = next(d for d in jack if d.name == "system")
    assert (system.max_input_channels, system.max_output_channels) == (2, 2)
    assert system.default_samplerate == jack_server.sample_rate
    assert resolve_audio_device("SYSTEM", "input") == system  # exact name, any case
    assert resolve_audio_device("stem, jack audio", "input") == system  # substring of "name, host API"
    assert resolve_audio_device("system, jack", "output") == system
    assert resolve_audio_device(system.index, "input") == system
    with pytest.raises(ValueError, match="no audio output device matches 'no-such-card'") as e:
        resolve_audio_device("no-such-card", "output")
    assert "system, JACK Audio Connection Kit (2 in, 2 out" in str(e.value)
    assert list_audio_devices(refresh=True) == devices  # re-initialising PortAudio finds the same


def test_jack_midi_ports_are_listed_and_resolved(jack_server) -> None:  # type: ignore[no-untyped-def]
    rtmidi = pytest.importorskip("rtmidi", reason="python-rtmidi is in the audio extra (scripts/setup.sh)")
    name = f"devtest-{os.getpid()}"
    outs = []
    try:
        for client in (name, f"{name}-b"):
            out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=client)
            out.open_virtual_port("out")
            outs.append(out)
        jack_server.wait_for_port(f"{name}-b:out")
        ports = list_midi_inputs("jack")
        assert MidiPort(ports[[p.name for p in ports].index(f"{name}:out")].index, f"{name}:out", "jack") in ports
        assert {p.name for p in list_midi_inputs()} >= {f"{name}:out", f"{name}-b:out"}  # every API that starts
        assert resolve_midi_input(f"{name}:OUT", "jack").name == f"{name}:out"  # exact beats substring
        assert resolve_midi_input(f"{name}-b", "jack").name == f"{name}-b:out"
        with pytest.raises(ValueError, match="matches several MIDI input ports") as e:
            resolve_midi_input(name, "jack")
        assert f"{name}-b:out" in str(e.value)
        with pytest.raises(ValueError, match="no MIDI input port matches"):
            resolve_midi_input("no-such-port", "jack")
    finally:
        for out in outs:
            out.delete()


def test_devices_without_an_audio_server_says_so_in_one_line() -> None:
    """No JACK server, no sound card: a hint to start one, and none of the libraries' probing messages."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if Path("/dev/snd").exists():
        pytest.skip("this machine has sound devices")
    env = {**os.environ, "JACK_DEFAULT_SERVER": "lincae-no-such-server", "JACK_NO_START_SERVER": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "lincae", "devices"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "no audio devices found" in out and "jackd -d dummy" in out
    assert "Cannot connect to server" not in out and "ALSA lib" not in out and "JackShm" not in out
