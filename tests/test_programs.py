"""MIDI program changes recall presets: parameter values and mappings, never the stream's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.io.mapping import MidiMapping
from lincae.io.midi import MidiController
from lincae.presets import Preset, load_preset
from lincae.programs import ProgramRecall


def write(tmp_path: Path, name: str, preset: Preset) -> str:
    return str(preset.save(tmp_path / f"{name}.json"))


@pytest.fixture
def programs(tmp_path: Path) -> list[str]:
    loud = Preset(
        name="loud",
        engine=load_preset("two-inputs").engine,
        parameters={"source.1.gain_db": 6.0, "master.gain_db": -3.0},
        midi=[MidiMapping(parameter="source.2.gain_db", cc=7)],
    )
    quiet = Preset(name="quiet", engine=load_preset("two-inputs").engine, parameters={"source.2.mute": 1.0})
    return [write(tmp_path, "loud", loud), write(tmp_path, "quiet", quiet), "half-volume"]


def test_program_change_recalls_values_and_mappings(programs: list[str]) -> None:
    registry = ParameterRegistry(mixer_parameters(2))
    ctl = MidiController(registry, [MidiMapping(parameter="source.1.gain_db", cc=1)])
    lines: list[str] = []
    recall = ProgramRecall(registry, programs, num_sources=2, report=lines.append)
    recall.attach(ctl)

    ctl.handle_message([0xC0, 0])  # program 0 on channel 1, applied at the next poll
    assert registry.get("source.1.gain_db") == 0.0
    ctl.poll()
    assert registry.get("source.1.gain_db") == 6.0 and registry.get("master.gain_db") == -3.0
    assert [m.cc for m in ctl.mappings] == [7] and lines[-1] == "program 0: preset loud"

    ctl.handle_message([0xC3, 1])
    ctl.poll()
    # What the second preset leaves out returns to its default.
    assert registry.get("source.1.gain_db") == 0.0 and registry.get("master.gain_db") == 0.0
    assert registry.get("source.2.mute") == 1.0 and ctl.mappings == []


def test_programs_that_do_not_fit_leave_the_stream_unchanged(programs: list[str], tmp_path: Path) -> None:
    registry = ParameterRegistry(mixer_parameters(2))
    registry.set("master.gain_db", 2.0)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    recall = ProgramRecall(registry, [*programs, str(broken)], num_sources=2)
    assert "is for 1 source(s), the stream has 2; unchanged" in recall.recall(2)
    assert recall.recall(3).startswith("program 3: cannot load preset")
    assert recall.recall(9) == "program 9: no preset (programs 0–3 are set)"
    assert registry.get("master.gain_db") == 2.0


def test_default_programs_are_the_shipped_presets() -> None:
    from lincae.presets import list_presets

    registry = ParameterRegistry(mixer_parameters(1))
    recall = ProgramRecall(registry, num_sources=1)
    assert recall.presets == list_presets()
    program = recall.presets.index("half-volume")
    assert recall.recall(program) == f"program {program}: preset Half volume"
    assert registry.get("master.gain_db") == -6.0
