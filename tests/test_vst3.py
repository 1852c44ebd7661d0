"""A real VST3 plugin in effect chains: loading by path, parameters, state, renders and presets.

The plugin is ``lincae-test-gain`` (``tests/plugins/``), built once per session by ``vst3_fixture``:
stereo in/out, ``gain_db`` (-60..+12 dB) and ``mute`` parameters, and a DPF state ``polarity``
(``normal``/``inverted``) that only a restored ``raw_state`` can change.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

pedalboard = pytest.importorskip("pedalboard")

from conftest import make_tiny_model  # noqa: E402

from lincae.cli import main  # noqa: E402
from lincae.engine import effects as chains  # noqa: E402
from lincae.engine.config import EngineConfig  # noqa: E402
from lincae.engine.effects import (  # noqa: E402
    ChainProcessor,
    PluginLoadError,
    apply_parameter,
    build_chain,
    chain_latency,
    chain_parameter_specs,
    chain_to_spec,
    is_bypassed,
    parse_chain_arg,
)
from lincae.files.audiofile import read_audio, write_audio  # noqa: E402
from lincae.presets import Preset  # noqa: E402

pytest_plugins = ["vst3_fixture"]

SR = 48000
SLOT = "post.0.lincae_test_gain"


def noise(seconds: float = 0.1, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((channels, int(seconds * SR)))).astype(np.float32)


def db_change(y: np.ndarray, x: np.ndarray) -> float:
    """The level of ``y`` relative to ``x`` in dB, from their RMS."""
    rms = [np.sqrt(np.mean(np.asarray(a, np.float64) ** 2)) for a in (y, x)]
    return float(20 * np.log10(rms[0] / rms[1]))


def entry(bundle: Path, **params: object) -> dict:
    return {"plugin": "vst3", "path": str(bundle), "params": params}


# JUCE (inside pedalboard) wraps a VST3's own state as ``VC2!``, a 4-byte little-endian length, and XML
# whose <IComponent> holds the plugin's bytes in JUCE's base64 ("SIZE." then 6 bits per character, least
# significant first). The test plugin's bytes are DPF's: "key\0value\0" pairs between markers.
_JUCE_B64 = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
_COMPONENT = re.compile(rb"<IComponent>([^<]*)</IComponent>")


def component_state(raw: bytes) -> bytes:
    assert raw[:4] == b"VC2!", raw[:16]
    size, _, chars = _COMPONENT.search(raw).group(1).decode().partition(".")  # type: ignore[union-attr]
    n = sum(_JUCE_B64.index(c) << (6 * i) for i, c in enumerate(chars))
    return n.to_bytes(int(size), "little")


def with_component_state(raw: bytes, data: bytes) -> bytes:
    n = int.from_bytes(data, "little")
    chars = "".join(_JUCE_B64[(n >> (6 * i)) & 63] for i in range((len(data) * 8 + 5) // 6))
    xml = _COMPONENT.sub(b"<IComponent>%d.%s</IComponent>" % (len(data), chars.encode()), raw[8:].rstrip(b"\0"))
    return b"VC2!" + len(xml).to_bytes(4, "little") + xml + b"\0"


# -- loading --------------------------------------------------------------------------------------


def test_a_json_chain_file_loads_the_plugin_by_path(vst3_plugin: Path, tmp_path: Path) -> None:
    spec_file = tmp_path / "chain.json"
    spec = [entry(vst3_plugin, gain_db=-6.0), {"plugin": "Gain", "params": {"gain_db": 6.0}}]
    spec_file.write_text(json.dumps({"format": "lincae.chain", "chain": spec}))
    board = build_chain(parse_chain_arg(str(spec_file)))
    plugin = board[0]
    assert isinstance(plugin, pedalboard.VST3Plugin) and plugin.name == "lincae test gain"
    assert sorted(plugin.parameters) == ["gain_db", "mute"]
    assert plugin.gain_db == pytest.approx(-6.0, abs=1e-4) and not plugin.mute
    x = noise()
    np.testing.assert_allclose(board(x, SR), x, atol=1e-6)  # -6 dB in the plugin, +6 dB after it
    # The command-line form, with the bundle's plugin picked by name, loads the same plugin.
    board = build_chain(parse_chain_arg(f"vst3('{vst3_plugin}', name='lincae test gain', gain_db=-6)"))
    assert board[0].gain_db == pytest.approx(-6.0, abs=1e-4)
    assert chain_to_spec(board)[0]["name"] == "lincae test gain"
    # A name the bundle does not hold is an error naming the plugin it does hold.
    with pytest.raises(PluginLoadError, match="holds the plugin 'lincae test gain', not 'Other Verb'"):
        build_chain([{"plugin": "vst3", "path": str(vst3_plugin), "name": "Other Verb"}])


def test_gain_db_sets_the_level(vst3_plugin: Path) -> None:
    x = noise()
    for gain_db in (-6.0, 0.0, -30.0, 12.0):
        y = build_chain([entry(vst3_plugin, gain_db=gain_db)])(x, SR)
        assert y.shape == x.shape and db_change(y, x) == pytest.approx(gain_db, abs=0.1)
    assert not build_chain([entry(vst3_plugin, gain_db=-6.0, mute=True)])(x, SR).any()


def test_files_that_are_not_plugins_fail_to_load_clearly(
    vst3_plugin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINCAE_PLUGIN_PATH", os.pathsep.join([str(vst3_plugin.parent), str(tmp_path)]))
    text = tmp_path / "Text.vst3"
    text.write_text("not a plugin\n")
    bundle = tmp_path / "Garbage.vst3" / "Contents" / "x86_64-linux"
    bundle.mkdir(parents=True)
    (bundle / "Garbage.so").write_bytes(np.random.default_rng(0).bytes(4096))
    for path in (text, tmp_path / "Garbage.vst3"):
        message = rf"chain\[0\]: could not load vst3 plugin {re.escape(str(path))}"
        with pytest.raises(chains.PluginLoadError, match=message):
            build_chain([{"plugin": "vst3", "path": str(path)}])
        board = build_chain([{"plugin": "vst3", "path": str(path)}, entry(vst3_plugin)], on_load_error="bypass")
        assert isinstance(board[0], chains.UnloadedPlugin) and is_bypassed(board, 0)
        assert isinstance(board[1], pedalboard.VST3Plugin) and not is_bypassed(board, 1)
        (failure,) = chains.load_failures(board)
        assert failure.plugin == f"vst3:{path.name}" and "unsupported plugin format" in failure.message
    # A VST3 named as an Audio Unit is refused on Linux, where there are none.
    if not hasattr(pedalboard, "AudioUnitPlugin"):
        with pytest.raises(chains.PluginLoadError, match="Audio Unit plugins need macOS"):
            build_chain([{"plugin": "au", "path": str(vst3_plugin)}])


# -- parameters -----------------------------------------------------------------------------------


def test_unknown_parameter_names_list_the_plugins_parameters(vst3_plugin: Path) -> None:
    with pytest.raises(
        chains.ChainSpecError,
        match=r"chain\[0\]: vst3:lincae-test-gain.vst3 has no parameter 'volume'; its parameters: gain_db, mute$",
    ):
        build_chain([entry(vst3_plugin, volume=0.5)])
    board = build_chain([entry(vst3_plugin)])
    with pytest.raises(
        chains.ChainSpecError,
        match=rf"{SLOT}.volume: lincae_test_gain has no parameter 'volume'; its parameters: gain_db, mute$",
    ):
        apply_parameter(board, f"{SLOT}.volume", 0.5)
    with pytest.raises(chains.ChainSpecError, match="slot 0 holds lincae_test_gain, not gain"):
        apply_parameter(board, "post.0.gain.gain_db", -6.0)


def test_out_of_range_values_are_refused_clearly(vst3_plugin: Path) -> None:
    with pytest.raises(
        chains.ChainSpecError,
        match=r"chain\[0\]: vst3:lincae-test-gain.vst3.gain_db = 20 rejected: .*out of range \[-60.0dB, 12.0dB\]",
    ):
        build_chain([entry(vst3_plugin, gain_db=20)])
    with pytest.raises(chains.ChainSpecError, match=r"vst3:lincae-test-gain.vst3.mute = 'yes' rejected: .*boolean"):
        build_chain([entry(vst3_plugin, mute="yes")])
    board = build_chain([entry(vst3_plugin, gain_db=-6.0)])
    with pytest.raises(chains.ChainSpecError, match=rf"{SLOT}.gain_db = -61 rejected: .*out of range \[-60.0dB"):
        apply_parameter(board, f"{SLOT}.gain_db", -61)
    assert board[0].gain_db == pytest.approx(-6.0, abs=1e-4)  # the refused value changed nothing


def test_parameter_specs_drive_the_plugin(vst3_plugin: Path) -> None:
    board = build_chain([entry(vst3_plugin, gain_db=-6.0)])
    specs = {s.name: s for s in chain_parameter_specs(board, "post")}
    assert sorted(specs) == ["post.0.bypass", f"{SLOT}.gain_db", f"{SLOT}.mute"]
    gain, mute = specs[f"{SLOT}.gain_db"], specs[f"{SLOT}.mute"]
    assert (gain.minimum, gain.maximum, gain.unit, gain.toggle) == (-60.0, 12.0, "dB", False)
    assert gain.default == pytest.approx(-6.0, abs=1e-4)
    assert gain.smoothed  # a continuous parameter: the engine ramps it
    assert mute.toggle and not mute.smoothed and mute.default == 0.0
    x = noise()
    proc = ChainProcessor(board)
    assert db_change(proc.process(x, SR), x) == pytest.approx(-6.0, abs=0.1)
    assert apply_parameter(board, f"{SLOT}.gain_db", -12.0) == -12.0
    assert db_change(proc.process(x, SR), x) == pytest.approx(-12.0, abs=0.1)
    assert apply_parameter(board, f"{SLOT}.mute", 1.0) == 1.0 and board[0].mute
    assert not proc.process(x, SR).any()
    assert chain_to_spec(board)[0]["params"] == {"gain_db": pytest.approx(-12.0, abs=0.05)}  # the spec's params only
    apply_parameter(board, f"{SLOT}.mute", 0.0)
    apply_parameter(board, "post.0.bypass", 1.0)
    np.testing.assert_array_equal(proc.process(x, SR), x)
    assert proc.errors == [] and chain_latency(board, SR) == 0 and proc.latency == 0
    # A plain list of plugins (not built by build_chain) has no bypass slots, but the same parameters.
    plain = [board[0]]
    assert [s.name for s in chain_parameter_specs(plain, "post")] == [f"{SLOT}.gain_db", f"{SLOT}.mute"]
    assert apply_parameter(plain, f"{SLOT}.gain_db", -6.0) == -6.0
    assert plain[0].gain_db == pytest.approx(-6.0, abs=1e-4)


def test_streaming_in_blocks_and_ramps(vst3_plugin: Path) -> None:
    x = noise(0.2)
    board = build_chain([entry(vst3_plugin, gain_db=-6.0)])
    whole = board(x, SR)
    proc = ChainProcessor(board)
    parts, pos = [], 0
    for size in [100, 512, 37, 2000, 1]:
        parts.append(proc.process(x[:, pos : pos + size], SR))
        pos += size
    parts.append(proc.process(x[:, pos:], SR))
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-7)
    # A ramp from -6 to 0 dB over 4 sub-blocks of 128 holds -4.5, -3, -1.5 and 0 dB in turn.
    y = proc.process_ramped(x[:, :512], SR, [(f"{SLOT}.gain_db", -6.0, 0.0)], sub_block=128)
    levels = [db_change(y[:, k : k + 128], x[:, k : k + 128]) for k in range(0, 512, 128)]
    assert levels == pytest.approx([-4.5, -3.0, -1.5, 0.0], abs=0.1) and proc.parameter_errors == []


# -- state ----------------------------------------------------------------------------------------


def test_state_round_trips_through_the_spec(vst3_plugin: Path) -> None:
    board = build_chain([entry(vst3_plugin, gain_db=-6.0, mute=False)])
    x = noise()
    board(x, SR)  # a VST3 processor takes parameter changes with audio; its saved state follows them then
    spec = chain_to_spec(board)
    assert set(spec[0]) == {"plugin", "path", "params", "state"}
    assert spec[0]["params"] == {"gain_db": -6.0, "mute": False}
    raw = base64.b64decode(spec[0]["state"])
    assert raw == bytes(board[0].raw_state)
    state = component_state(raw)
    assert b"polarity\0normal\0" in state and b"gain\0-6\0" in state and b"mute\0000\0" in state
    again = build_chain(json.loads(json.dumps(spec)))
    plugin = again[0]
    assert (plugin.gain_db, bool(plugin.mute)) == (pytest.approx(-6.0, abs=1e-4), False)
    assert bytes(plugin.raw_state) == raw and chain_to_spec(again) == spec
    np.testing.assert_array_equal(again(x, SR), board(x, SR))


def test_a_modified_state_is_restored(vst3_plugin: Path) -> None:
    board = build_chain([entry(vst3_plugin, gain_db=-6.0)])
    x = noise()
    board(x, SR)
    raw = bytes(board[0].raw_state)
    state = component_state(raw)
    changed = state.replace(b"polarity\0normal\0", b"polarity\0inverted\0").replace(b"gain\0-6\0", b"gain\0-3\0")
    assert changed != state
    modified = base64.b64encode(with_component_state(raw, changed)).decode()
    # The state alone sets everything: the polarity (no parameter reaches it) and the gain.
    restored = build_chain([{"plugin": "vst3", "path": str(vst3_plugin), "state": modified}])
    plugin = restored[0]
    assert plugin.gain_db == pytest.approx(-3.0, abs=1e-4)
    np.testing.assert_allclose(restored(x, SR), -x * 10 ** (-3 / 20), atol=1e-6)
    assert b"polarity\0inverted\0" in component_state(bytes(plugin.raw_state))
    assert component_state(base64.b64decode(chain_to_spec(restored)[0]["state"])) == changed
    # The spec's params are set after the state, so they win over the state's values.
    both = build_chain([{**entry(vst3_plugin, gain_db=-6.0), "state": modified}])
    np.testing.assert_allclose(both(x, SR), -x * 10 ** (-6 / 20), atol=1e-6)


# -- renders and presets --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model().save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


def music(channels: int, seconds: float, rate: int = 44100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f = rng.uniform(110, 880, size=(channels, 1))
    return (0.3 * np.exp(-3 * (t % 0.5)) * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_render_with_the_vst3_equals_the_builtin_gain(
    vst3_plugin: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(write_audio(tmp_path / "in.wav", music(2, 1.0), 44100))
    base = ["render", src, "--model", str(model_dir), "--no-progress"]
    outputs = {}
    for name, post in [("vst3", f"vst3('{vst3_plugin}', gain_db=-6)"), ("builtin", "gain(gain_db=-6)"), ("none", "")]:
        out = tmp_path / f"{name}.wav"
        assert main([*base, "-o", str(out), *(["--post", post] if post else [])]) == 0
        assert "warning" not in capsys.readouterr().err
        outputs[name] = read_audio(out, 44100)
    vst3, builtin, dry = outputs["vst3"], outputs["builtin"], outputs["none"]
    assert vst3.shape == builtin.shape == dry.shape and vst3.shape[0] == 2
    assert np.abs(vst3 - builtin).max() < 1e-5
    assert db_change(vst3, dry) == pytest.approx(-6.0, abs=0.1)
    # A mono render cannot run the stereo-only plugin: it is bypassed, and the warning says why.
    mono = str(write_audio(tmp_path / "mono.wav", music(1, 0.5), 44100))
    mono_base = ["render", mono, "--model", str(model_dir), "--no-progress"]
    assert main([*mono_base, "-o", str(tmp_path / "mono-out.wav"), "--post", f"vst3('{vst3_plugin}')"]) == 0
    err = capsys.readouterr().err
    assert "plugin bypassed after an error" in err and "does not support 1-channel" in err


def test_a_preset_with_the_vst3_round_trips(vst3_plugin: Path, tmp_path: Path) -> None:
    board = build_chain([entry(vst3_plugin, gain_db=-12.0)])
    board(noise(), SR)
    preset = Preset(
        name="With a VST3",
        engine=EngineConfig(sources=[2]),
        parameters={f"{SLOT}.gain_db": -6.0, f"{SLOT}.mute": 0.0, "post.1.gain.gain_db": 6.0},
        post=[*chain_to_spec(board), {"plugin": "Gain", "params": {"gain_db": 0.0}}],
    )
    path = preset.save(tmp_path / "p.json")
    loaded = Preset.load(path)
    assert loaded == preset and loaded.post[0]["state"] == preset.post[0]["state"]
    loaded.save(tmp_path / "q.json")
    assert (tmp_path / "q.json").read_text() == path.read_text()
    _, post = loaded.build_chains()
    plugin = post[0]
    assert isinstance(plugin, pedalboard.VST3Plugin) and plugin.gain_db == pytest.approx(-6.0, abs=1e-4)
    registry = loaded.registry(({}, post))
    assert registry.get(f"{SLOT}.gain_db") == pytest.approx(-6.0, abs=1e-4) and registry.get(f"{SLOT}.mute") == 0.0
    x = noise()
    np.testing.assert_allclose(ChainProcessor(post).process(x, SR), x, atol=1e-6)  # -6 dB, then +6 dB
    # A name the plugin does not have passes validation (the plugin is not loaded then) but not loading.
    wrong = Preset(name="typo", engine=EngineConfig(sources=[2]), parameters={f"{SLOT}.volume": 0.5}, post=preset.post)
    wrong.save(tmp_path / "typo.json")
    with pytest.raises(chains.ChainSpecError, match="has no parameter 'volume'; its parameters: gain_db, mute"):
        Preset.load(tmp_path / "typo.json").build_chains()


@pytest.fixture(autouse=True)
def _plugin_folder_allowed(vst3_plugin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chains from files and Python specs load plugins from the plugin folders only: add the build folder."""
    monkeypatch.setenv("LINCAE_PLUGIN_PATH", str(vst3_plugin.parent))


@pytest.fixture(autouse=True)
def _release_plugins_inside_the_test() -> object:
    """Destroy each test's plugin instances (they sit in reference cycles) while pytest still captures
    output: DPF prints a warning when a plugin is torn down, which would otherwise follow the summary."""
    import gc

    yield
    gc.collect()
