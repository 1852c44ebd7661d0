"""Preset files: round trips, validation messages, migrations and the shipped presets."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pedalboard")

from lincae.engine.config import EngineConfig
from lincae.engine.effects import ChainProcessor, parse_chain_arg
from lincae.io.mapping import MidiMapping
from lincae.presets import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Preset,
    PresetError,
    list_presets,
    load_preset,
    migration,
    shipped_presets_dir,
)

REPO_PRESETS = Path(__file__).resolve().parents[1] / "presets"
SR = 44100


def full_preset() -> Preset:
    return Preset(
        name="Everything",
        description="uses every field",
        engine=EngineConfig(sources=[1, 2], window_frames=6, step_frames=3, crossfade=256),
        parameters={
            "source.2.gain_db": -6.0,
            "source.2.invert": 1.0,
            "post.0.reverb.room_size": 0.8,
            "post.1.bypass": 1.0,
        },
        midi=[
            MidiMapping("source.1.gain_db", cc=1, soft_takeover=True),
            MidiMapping("post.0.reverb.wet_level", cc=91, channel=2, curve="log"),
        ],
        pre={2: [{"plugin": "HighpassFilter", "params": {"cutoff_frequency_hz": 80.0}}]},
        post=[{"plugin": "Reverb", "params": {"room_size": 0.5}}, {"plugin": "Gain", "params": {"gain_db": -3.0}}],
        model="tiny-test-model",
    )


def v1(**changes: object) -> dict:
    data = {"format": "lincae.preset", "schema_version": 1, "name": "t", "engine": {"sources": [1, 1]}}
    data.update(changes)
    return data


# -- round trip -----------------------------------------------------------------------------------


def test_round_trip_load_save_load(tmp_path: Path) -> None:
    preset = full_preset()
    path = preset.save(tmp_path / "p.json")
    loaded = Preset.load(path)
    assert loaded == preset
    loaded.save(tmp_path / "q.json")
    assert Preset.load(tmp_path / "q.json") == preset
    text = path.read_text()
    assert text == (tmp_path / "q.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # sorted, indented
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "q.json"]  # no temporary files left


def test_save_is_atomic_and_validates_first(tmp_path: Path) -> None:
    path = full_preset().save(tmp_path / "p.json")
    before = path.read_text()
    broken = full_preset()
    broken.parameters["source.9.gain_db"] = 0.0
    with pytest.raises(
        PresetError, match=r"parameters.source.9.gain_db: unknown parameter \(the preset has 2 sources\)"
    ):
        broken.save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def test_registry_and_chains_carry_the_preset_values() -> None:
    preset = full_preset()
    pre, post = preset.build_chains()
    assert set(pre) == {2} and post[0].room_size == pytest.approx(0.8)  # the parameter overrides the chain
    registry = preset.registry((pre, post))
    assert registry.get("source.2.gain_db") == -6.0 and registry.get("source.2.invert") == 1.0
    assert registry.get("post.0.reverb.room_size") == pytest.approx(0.8)
    assert registry.get("post.1.bypass") == 1.0 and "pre.2.0.highpassfilter.cutoff_frequency_hz" in registry
    for mapping in preset.midi:
        assert mapping.parameter in registry


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (v1(engine={"step_frames": 0}), "engine.step_frames: must be an integer in [1, 2048], got 0"),
        (v1(engine={"step_frames": 2.5}), "engine.step_frames: must be an integer in [1, 2048], got 2.5"),
        (v1(engine={"window_frames": 4, "step_frames": 4}), "engine.window_frames: must hold step_frames (4)"),
        (v1(engine={"fallback": "panic"}), "engine.fallback: must be one of ('dry', 'silence'), got 'panic'"),
        (v1(engine={"sources": [1, 3]}), "engine.sources: must be 1 or 2 channels each, got [1, 3]"),
        (
            v1(parameters={"source.3.gain_db": 0.0}),
            "parameters.source.3.gain_db: unknown parameter (the preset has 2 sources)",
        ),
        (v1(parameters={"source.1.gain_db": 20}), "parameters.source.1.gain_db: 20 is outside [-60, 12] dB"),
        (v1(parameters={"master.gain_db": "loud"}), "parameters.master.gain_db: must be a number, got 'loud'"),
        (v1(parameters={"volume": 1}), "parameters.volume: unknown parameter; known: source.N."),
        (
            v1(parameters={"post.0.reverb.room_size": 2}, chains={"post": [{"plugin": "Reverb"}]}),
            "parameters.post.0.reverb.room_size: Reverb.room_size = 2.0: outside the valid range [0, 1]",
        ),
        (
            v1(parameters={"post.0.reverb.size": 0.5}, chains={"post": [{"plugin": "Reverb"}]}),
            "parameters.post.0.reverb.size: unknown parameter; slot post.0 has: bypass, reverb.damping",
        ),
        (
            v1(parameters={"post.2.gain.gain_db": 0}, chains={"post": [{"plugin": "Gain"}]}),
            "parameters.post.2.gain.gain_db: unknown parameter (the post chain has 1 plugin)",
        ),
        (v1(midi=[{"parameter": "source.1.gain_db", "cc": 300}]), "midi[0]: MIDI mapping for 'source.1.gain_db': cc"),
        (v1(midi=[{"parameter": "source.5.mute", "cc": 3}]), "midi[0].parameter: 'source.5.mute': unknown parameter"),
        (v1(chains={"pre": {"3": [{"plugin": "Gain"}]}}), "chains.pre.3: no source 3 (the preset has 2 sources)"),
        (v1(chains={"post": [{"plugin": "Reverbb"}]}), "chains.post[0]: unknown plugin 'Reverbb'; built-in plugins:"),
        (
            v1(chains={"post": [{"plugin": "Gain", "params": {"gain_db": "x"}}]}),
            "chains.post[0]: Gain.gain_db = 'x': expected a number",
        ),
        (v1(name=3), "name: must be a string, got 3"),
        (v1(model=""), "model: must be a model id or path, or null, got ''"),
    ],
)
def test_validation_messages_name_the_field_and_value(data: dict, message: str) -> None:
    with pytest.raises(PresetError) as e:
        Preset.from_dict(data, where="my.json")
    assert str(e.value).startswith("my.json: ")
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (v1(colour="red"), "unknown preset key(s): colour"),
        (v1(engine={"sources": [1], "windw_frames": 8}), "engine: unknown key(s) windw_frames"),
        (v1(chains={"post": [], "side": []}), "chains: unknown key(s) side"),
        (v1(chains={"post": [{"plugin": "Gain", "amount": 1}]}), "unknown key(s) 'amount' for Gain"),
        (v1(midi=[{"parameter": "source.1.gain_db", "cc": 1, "knob": 2}]), "midi[0]: unknown MidiMapping key(s)"),
    ],
)
def test_unknown_keys_are_rejected(data: dict, message: str) -> None:
    with pytest.raises(PresetError) as e:
        Preset.from_dict(data)
    assert message in str(e.value)


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PresetError, match=r"bad.json: not valid JSON"):
        Preset.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="preset file not found"):
        Preset.load(tmp_path / "none.json")


# -- versions -------------------------------------------------------------------------------------


def test_every_shipped_preset_version_has_its_migrations() -> None:
    """Presets of every schema version lincae shipped load; the unshipped draft (version 0) has no migration."""
    shipped = {json.loads(p.read_text())["schema_version"] for p in [*REPO_PRESETS.glob("*.json")]}
    assert shipped == {SCHEMA_VERSION}
    assert all(v in MIGRATIONS for v in range(min(shipped), SCHEMA_VERSION))
    draft = {"format": "lincae.preset", "schema_version": 0, "name": "Old draft", "sources": 2, "gains": {"1": -6}}
    with pytest.raises(PresetError, match=r"^no migration from schema_version 0$"):
        Preset.from_dict(draft)


def test_a_registered_migration_upgrades_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lincae.presets.SCHEMA_VERSION", 2)
    monkeypatch.setitem(MIGRATIONS, 1, lambda d: {**d, "name": d["name"].upper()})
    assert Preset.from_dict(v1(name="up")).name == "UP"
    monkeypatch.setitem(MIGRATIONS, 1, lambda d: (_ for _ in ()).throw(PresetError("engine", "too old")))
    with pytest.raises(PresetError, match=r"engine: too old \(migrating from schema_version 1\)"):
        Preset.from_dict(v1())


def test_newer_versions_and_foreign_files_fail_loudly() -> None:
    with pytest.raises(PresetError, match="schema_version 2 not supported, this lincae reads up to 1"):
        Preset.from_dict(v1(schema_version=2))
    with pytest.raises(PresetError, match=r"schema_version: must be an integer 0\.\.1, got None"):
        Preset.from_dict({k: v for k, v in v1().items() if k != "schema_version"})
    with pytest.raises(PresetError, match=r"format: expected 'lincae\.preset', got 'lincae\.chain'"):
        Preset.from_dict(v1(format="lincae.chain"))


def test_migrations_register_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lincae.presets.MIGRATIONS", {})
    migration(1)(lambda d: d)
    with pytest.raises(ValueError, match="already registered"):
        migration(1)(lambda d: d)


# -- shipped presets ------------------------------------------------------------------------------


def test_at_least_five_presets_ship() -> None:
    names = list_presets()
    assert len(names) >= 5
    assert {"default", "two-inputs", "separate-vocals", "half-volume", "tape-warmth", "low-latency"} <= set(names)


@pytest.mark.parametrize("name", list_presets())
def test_every_shipped_preset_loads_validates_and_its_chains_run(name: str) -> None:
    path = shipped_presets_dir() / f"{name}.json"
    preset = Preset.load(path)
    assert preset.name and preset.description
    assert path.read_text() == preset.to_json()  # shipped files are in canonical form
    assert load_preset(name) == preset
    pre, post = preset.build_chains()
    registry = preset.registry((pre, post))
    for mapping in preset.midi:
        assert mapping.parameter in registry
    x = (0.1 * np.random.default_rng(0).standard_normal((2, SR // 10))).astype(np.float32)
    boards = [(post, preset.engine.out_channels)] + [(b, preset.engine.sources[k - 1]) for k, b in pre.items()]
    for board, channels in boards:
        proc = ChainProcessor(board)
        y = np.concatenate([proc.process(x[:channels, i : i + 512], SR) for i in range(0, x.shape[1], 512)], axis=1)
        assert y.shape == x[:channels].shape and np.isfinite(y).all() and not proc.errors


def test_specific_presets_do_what_they_say() -> None:
    assert load_preset("separate-vocals").parameters["source.2.invert"] == 1.0
    assert load_preset("half-volume").parameters["master.gain_db"] == -6.0
    two = load_preset("two-inputs")
    assert two.num_sources == 2 and [m.cc for m in two.midi] == [1, 2] and all(m.soft_takeover for m in two.midi)
    assert two.registry().spec("source.1.gain_db").from_normalized(two.midi[0].position(1.0)) == pytest.approx(0.0)
    low = load_preset("low-latency").engine
    assert low.latency_samples(256) < load_preset("default").engine.latency_samples(256)
    low.check_model(256)
    tape = load_preset("tape-warmth")
    assert parse_chain_arg(str(shipped_presets_dir() / "chains" / "tape.json")) == tape.post
    assert parse_chain_arg(str(REPO_PRESETS / "chains" / "tape.json")) == tape.post
    with pytest.raises(FileNotFoundError, match="no shipped preset 'nope'; shipped: default"):
        load_preset("nope")


def test_package_and_repository_preset_folders_are_identical() -> None:
    package = shipped_presets_dir()

    def files(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    assert files(package) == files(REPO_PRESETS), "presets/ must mirror src/lincae/assets/presets/"
    _, mismatch, errors = filecmp.cmpfiles(package, REPO_PRESETS, files(package), shallow=False)
    assert not mismatch and not errors, f"differ: {mismatch + errors}; copy src/lincae/assets/presets/ to presets/"


def test_shipped_presets_state_the_latency_they_cost_with_the_shipped_model() -> None:
    """A description that quotes a latency (samples and ms) tells the truth for the shipped model."""
    import re

    from lincae.profiles import engine_profiles, shipped_model_frame

    frame = shipped_model_frame()
    quoted = 0
    for p in engine_profiles(256):
        engine = load_preset(p.name).engine
        assert p.latency_ms == pytest.approx(engine.latency_ms(frame, 44100, 256))
        m = re.search(r"(\d+) samples \((\d+) ms", p.description)
        if m:
            quoted += 1
            assert int(m.group(1)) == engine.latency_samples(frame, 256), p.name
            assert int(m.group(2)) == round(engine.latency_ms(frame, 44100, 256)), p.name
    assert quoted >= 2  # default and low-latency say what they cost
    # what the streaming setting costs a streamable model of the shipped geometry without lookahead
    low_latency = load_preset("low-latency")
    m = re.search(r"(\d+) ms of declared engine latency at block 256 \((\d+) samples", low_latency.description)
    assert m and low_latency.engine.mode == "stream"
    stream = low_latency.engine.latency_samples(frame, 256, stream_delay=3 * frame)
    assert int(m.group(2)) == stream and int(m.group(1)) == round(1000 * stream / 44100)
    low = {p.name: p.latency_ms for p in engine_profiles(256)}
    # measured through JACK: the declared latency plus one period (BENCHMARKS.md, click test)
    assert low["low-latency"] + 1000.0 * 256 / 44100 <= 150.0 < low["default"]


def test_the_presets_command_lists_each_presets_latency(capsys: pytest.CaptureFixture[str]) -> None:
    from lincae.cli import main
    from lincae.profiles import engine_profiles

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for p in engine_profiles(256):
        assert f"{p.name}: " in out and f"engine latency {p.latency_ms:.0f} ms" in out
        assert f"(plus the device's), worker load {p.worker_load:.2f};" in out
    assert "for the preset's sources, model only (effect chains add their own), one PyTorch thread" in out
    with pytest.raises(SystemExit):
        main(["live", "--help"])
    assert "low-latency" in capsys.readouterr().out


def test_every_shipped_preset_has_a_measured_worker_load_and_low_latency_keeps_up() -> None:
    """The shipped model's worker_load.json covers every preset's settings; low-latency is below 0.35 there."""
    from lincae.profiles import engine_profiles

    profiles = {p.name: p for p in engine_profiles(256)}
    for p in profiles.values():
        assert p.worker_load is not None and 0.0 < p.worker_load < 1.0, p.name
        assert p.measured_on and f"load {p.worker_load:.2f}" in p.cost()
    assert profiles["low-latency"].worker_load <= 0.35


def test_worker_load_table_reads_the_benchmark_file_and_tolerates_none(tmp_path: Path) -> None:
    from lincae.profiles import WORKER_LOAD_FILE, worker_load_table

    assert worker_load_table(tmp_path) == ({}, "")
    row = {"window_frames": 16, "step_frames": 12, "lookahead_frames": 2, "crossfade": 256, "compute_budget": 0.5}
    rows = [{**row, "rtf_mean": 0.2}, {**row, "sources": [2, 2], "rtf_mean": 0.5}]
    (tmp_path / WORKER_LOAD_FILE).write_text(json.dumps({"machine": "cpu x", "settings": rows}))
    table, machine = worker_load_table(tmp_path)
    assert table == {(16, 12, 2, 256, 0.5, (1,), 1): 0.2, (16, 12, 2, 256, 0.5, (2, 2), 1): 0.5}
    assert machine == "cpu x"
    for broken in ("{not json", json.dumps({"settings": [{"window_frames": 16}]}), json.dumps({"settings": 3})):
        (tmp_path / WORKER_LOAD_FILE).write_text(broken)
        assert worker_load_table(tmp_path) == ({}, "")  # a damaged file shows no loads; nothing fails
