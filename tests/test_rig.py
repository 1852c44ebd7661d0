"""lincae.rig.Rig: one place builds a session's chains, registry and engine; live, render and presets."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model

from lincae.engine.config import EngineConfig
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.files.audiofile import read_audio, write_audio
from lincae.io.live import wait_until
from lincae.io.mapping import MidiMapping
from lincae.presets import Preset
from lincae.rig import Rig, file_sources, parse_pre_args

ENGINE = EngineConfig(sources=[1], window_frames=8, step_frames=4, lookahead_frames=1, crossfade=256)


def tone(channels: int, n: int, f: float = 330.0) -> np.ndarray:
    t = np.arange(n) / 44100
    return np.repeat((0.2 * np.sin(2 * np.pi * f * t)).astype(np.float32)[None], channels, 0)


def chained_preset() -> Preset:
    return Preset(
        name="chained",
        engine=ENGINE,
        post=[{"plugin": "Gain", "params": {"gain_db": -6.0}}],
        parameters={"post.0.gain.gain_db": -12.0, "source.1.gain_db": -3.0},
        midi=[MidiMapping(parameter="post.0.gain.gain_db", cc=20)],
    )


def test_a_rig_owns_the_mixer_and_chain_parameters_with_the_presets_values() -> None:
    rig = Rig(make_tiny_model(), [1], chained_preset())
    assert rig.chain_parameters == ["post.0.bypass", "post.0.gain.gain_db"]
    assert rig.registry.get("post.0.gain.gain_db") == -12.0 and rig.registry.get("source.1.gain_db") == -3.0
    assert rig.engine_config.window_frames == 8 and [m.cc for m in rig.mappings] == [20]
    with pytest.raises(ValueError, match="is for 1 source"):
        Rig(make_tiny_model(), [1, 1], chained_preset())
    with pytest.raises(ValueError, match="pre chain for source 3"):
        Rig(make_tiny_model(), [1], None, pre={3: [{"plugin": "Gain"}]})


def test_a_given_registry_keeps_its_values_and_gains_the_chain_parameters() -> None:
    registry = ParameterRegistry(mixer_parameters(1))
    registry.set("source.1.gain_db", -9.0)  # a knob the user turned
    rig = Rig(make_tiny_model(), [1], chained_preset(), registry=registry)
    assert rig.registry is registry
    assert registry.get("source.1.gain_db") == -9.0  # kept
    assert registry.get("post.0.gain.gain_db") == -12.0  # gained, with the preset's value


def test_render_runs_the_chains_and_parameters_exactly_as_the_engine(tmp_path: Path) -> None:
    x = tone(1, 12000)
    src = write_audio(tmp_path / "in.wav", x, 44100)
    model = make_tiny_model()
    rig = Rig(model, file_sources([src]), chained_preset())
    result = rig.render([src], tmp_path / "out.wav")
    y = read_audio(result.output, 44100)
    reg = ParameterRegistry(mixer_parameters(1))
    reg.set("source.1.gain_db", -3.0)
    from lincae.engine.mixer import LatentMixer

    dry = render(LatentMixer(make_tiny_model(), ENGINE, reg, device="cpu"), [x])
    assert np.abs(y - 10 ** (-12 / 20) * dry).max() < 1e-5  # the preset's chain value, not the spec's -6
    again = rig.render([src], tmp_path / "again.wav")  # chains are reset between renders
    assert np.array_equal(read_audio(again.output, 44100), y)
    stereo = write_audio(tmp_path / "st.wav", tone(2, 12000), 44100)
    with pytest.raises(ValueError, match=r"the files give sources of \[2\] channel"):
        rig.render([stereo], tmp_path / "x.wav")


def test_recall_and_back_to_a_preset() -> None:
    rig = Rig(make_tiny_model(), [1], chained_preset(), model_id="tiny")
    rig.registry.set("master.gain_db", -4.0)
    saved = rig.to_preset("take")
    assert saved.name == "take" and saved.model == "tiny" and saved.post == chained_preset().post
    assert saved.parameters["master.gain_db"] == -4.0 and saved.parameters["post.0.gain.gain_db"] == -12.0
    assert Preset.from_dict(saved.to_dict()) == saved  # a valid preset file
    other = Preset(engine=ENGINE, parameters={"source.1.gain_db": -20.0})
    assert rig.recall(other) == 0
    assert rig.registry.get("source.1.gain_db") == -20.0 and rig.registry.get("master.gain_db") == 0.0
    assert rig.registry.get("post.0.gain.gain_db") == -6.0  # the chain parameter's default: its spec value
    with pytest.raises(ValueError, match="preset is for 2 source"):
        rig.recall(Preset(engine=EngineConfig(sources=[1, 1])))


def test_pre_arguments_are_parsed_once() -> None:
    assert parse_pre_args(["1=gain(gain_db=-3)"]) == {1: [{"plugin": "Gain", "params": {"gain_db": -3.0}}]}
    with pytest.raises(ValueError, match="expected SOURCE_NUMBER=CHAIN"):
        parse_pre_args(["gain(gain_db=-3)"])


def test_a_rig_without_a_model_holds_its_state_and_refuses_to_run(tmp_path: Path) -> None:
    from lincae.io.live import LiveConfig
    from lincae.rig import offline_threads

    rig = Rig(None, [1], chained_preset())
    assert rig.to_preset().parameters["post.0.gain.gain_db"] == -12.0 and not rig.running
    src = write_audio(tmp_path / "in.wav", tone(1, 4000), 44100)
    with pytest.raises(ValueError, match="no model loaded"):
        rig.render([src], tmp_path / "out.wav")
    with pytest.raises(ValueError, match="no model loaded"):
        rig.start_live(LiveConfig(source_channels=((1,),)))
    with pytest.raises(ValueError, match="threads must be >= 1"):
        rig.start_live(LiveConfig(source_channels=((1,),)), threads=0)
    rig.use_model(make_tiny_model(), "tiny")
    assert rig.model_id == "tiny" and rig.render([src], tmp_path / "out.wav").output.is_file()
    assert offline_threads() >= 1


def test_a_midi_controller_moves_to_the_rig_that_replaces_another() -> None:
    from lincae.io.midi import MidiController

    first = Rig(make_tiny_model(), [1], None)
    midi = MidiController(first.registry, [MidiMapping("master.gain_db", cc=7)], api=None)
    try:
        first.attach_midi(midi)
    except OSError:  # no MIDI API on this machine: the mappings and program changes are attached all the same
        pass
    assert first.midi is midi and midi.on_program is first.programs
    second = Rig(first.model, [1], chained_preset())
    try:
        second.attach_midi(midi)
    except OSError:
        pass
    assert midi.registry is second.registry and midi.on_program is second.programs
    assert [m.parameter for m in midi.mappings] == ["post.0.gain.gain_db"]  # the new rig's mappings
    for value in (0, 127):  # soft takeover: the knob crosses the value, then drives it
        midi.handle_message([0xB0, 20, value])
        midi.poll()
    assert second.registry.get("post.0.gain.gain_db") == second.registry.spec("post.0.gain.gain_db").maximum
    assert first.registry.get("master.gain_db") == 0.0
    with pytest.raises(KeyError, match="unknown parameter"):
        midi.rebind(first.registry, [MidiMapping("post.0.gain.gain_db", cc=20)])
    assert midi.registry is second.registry  # unchanged
    midi.close()


def test_recording_needs_a_session_and_osc_drives_the_registry_without_one(tmp_path: Path) -> None:
    rig = Rig(make_tiny_model(), [1], engine=ENGINE)
    with pytest.raises(ValueError, match="no live session runs"):
        rig.start_recording(tmp_path / "set.wav")
    assert rig.stop_recording() == [] and not rig.recording and not (tmp_path / "set.wav").exists()
    builder = pytest.importorskip("pythonosc.osc_message_builder", reason="python-osc is in the audio extra")
    osc = rig.start_osc(port=0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            msg = builder.OscMessageBuilder("/lincae/master/gain")
            msg.add_arg(-9.0)
            s.sendto(msg.build().dgram, osc.address)
            assert wait_until(lambda: (rig.poll(), rig.registry.get("master.gain_db") == -9.0)[1], timeout=5)
    finally:
        rig.stop_osc()
    assert rig.osc is None
