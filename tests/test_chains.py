"""Effect chains: specs build real pedalboard plugins, stream block by block, and expose parameters.

External (VST3) plugins are tested with a real one in test_vst3.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pedalboard = pytest.importorskip("pedalboard")

from lincae.engine import effects as chains  # noqa: E402
from lincae.engine.effects import (  # noqa: E402
    ChainProcessor,
    EffectChain,
    apply_parameter,
    build_chain,
    chain_latency,
    chain_parameter_specs,
    chain_to_spec,
    is_bypassed,
    parse_chain_arg,
    set_bypass,
    validate_chain_spec,
)
from lincae.engine.params import ParameterRegistry  # noqa: E402

SR = 48000


def noise(seconds: float, channels: int = 2, seed: int = 0, level: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal((channels, int(seconds * SR)))).astype(np.float32)


def stream(proc: ChainProcessor, x: np.ndarray, sizes: list[int], sr: int = SR) -> np.ndarray:
    out, pos, k = [], 0, 0
    while pos < x.shape[1]:
        block = x[:, pos : pos + sizes[k % len(sizes)]]
        y = proc.process(block, sr)
        assert y.shape == block.shape and y.dtype == np.float32
        out.append(y)
        pos += block.shape[1]
        k += 1
    return np.concatenate(out, axis=1)


# -- specs ----------------------------------------------------------------------------------------


def test_builtin_spec_builds_real_plugins_and_round_trips() -> None:
    spec = [
        {"plugin": "reverb", "params": {"room_size": 0.3, "wet_level": 0.25}},
        {"plugin": "Compressor", "params": {"threshold_db": -18, "ratio": 2.5}},
        {"plugin": "ladder_filter", "params": {"mode": "hpf24", "cutoff_hz": 120}},
        {"plugin": "BrickwallLimiter", "params": {"true_peak": True}, "bypass": True},
        {"plugin": "Invert"},
    ]
    board = build_chain(spec)
    assert isinstance(board, pedalboard.Pedalboard) and isinstance(board, EffectChain)
    kinds = [pedalboard.Reverb, pedalboard.Compressor, pedalboard.LadderFilter, pedalboard.BrickwallLimiter]
    for plugin, cls in zip(board, [*kinds, pedalboard.Invert], strict=True):
        assert type(plugin) is cls
    assert board[0].room_size == pytest.approx(0.3) and board[1].ratio == pytest.approx(2.5)
    assert board[2].mode == pedalboard.LadderFilter.Mode.HPF24 and board[3].true_peak is True
    assert is_bypassed(board, 3) and not is_bypassed(board, 0)

    back = chain_to_spec(board)
    assert [e["plugin"] for e in back] == ["Reverb", "Compressor", "LadderFilter", "BrickwallLimiter", "Invert"]
    assert back[0]["params"] == {
        "room_size": 0.3,
        "damping": 0.5,
        "wet_level": 0.25,
        "dry_level": 0.4,
        "width": 1.0,
        "freeze_mode": 0.0,
    }
    assert back[2]["params"]["mode"] == "HPF24" and back[3]["bypass"] is True
    assert json.loads(json.dumps(back)) == back  # JSON-able
    assert chain_to_spec(build_chain(back)) == back  # a fixed point
    assert validate_chain_spec(back) == back


def test_plugin_names_are_case_insensitive_with_short_filter_names() -> None:
    spec = validate_chain_spec([{"plugin": "REVERB"}, {"plugin": "high_shelf_filter"}, {"plugin": "highpass"}])
    assert [e["plugin"] for e in spec] == ["Reverb", "HighShelfFilter", "HighpassFilter"]


def test_unknown_plugin_lists_the_builtins() -> None:
    with pytest.raises(ValueError, match="unknown plugin 'Reverbb'") as e:
        build_chain([{"plugin": "Gain"}, {"plugin": "Reverbb"}])
    msg = str(e.value)
    assert msg.startswith("chain[1]")
    for name in ("Reverb", "Compressor", "Gain", "Limiter", "NoiseGate", "HighpassFilter", "Delay", "Chorus"):
        assert name in msg


def test_unknown_parameter_lists_the_plugins_parameters() -> None:
    with pytest.raises(ValueError, match="Reverb has no parameter 'size'") as e:
        build_chain([{"plugin": "Reverb", "params": {"size": 0.5}}])
    assert "room_size, damping, wet_level, dry_level, width, freeze_mode" in str(e.value)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"plugin": "Reverb", "params": {"room_size": 2}}, "Reverb.room_size = 2: outside the valid range [0, 1]"),
        ({"plugin": "Gain", "params": {"gain_db": "loud"}}, "Gain.gain_db = 'loud': expected a number"),
        ({"plugin": "Gain", "params": {"gain_db": True}}, "Gain.gain_db = True: expected a number"),
        ({"plugin": "Compressor", "params": {"ratio": 0.5}}, "Compressor.ratio = 0.5: outside the valid range"),
        ({"plugin": "Delay", "params": {"delay_seconds": float("nan")}}, "Delay.delay_seconds = nan: must be finite"),
        ({"plugin": "LadderFilter", "params": {"mode": "notch"}}, "mode = 'notch': expected one of LPF12, HPF12"),
        ({"plugin": "Reverb", "bypass": "yes"}, "bypass must be true or false, got 'yes'"),
        ({"plugin": "Reverb", "gain": 1}, "unknown key(s) 'gain' for Reverb"),
        ({"plugin": "Convolution"}, "Convolution needs impulse_response_filename"),
        ({"plugin": "vst3"}, "a vst3 entry needs a 'path'"),
        ({"plugin": "vst3", "path": "x.vst3", "state": "not base64!"}, "state must be a base64 string"),
    ],
)
def test_bad_values_name_plugin_parameter_and_value(entry: dict, expected: str) -> None:
    with pytest.raises(ValueError) as e:
        build_chain([entry])
    assert expected in str(e.value)
    assert str(e.value).startswith("chain[0]")


def test_missing_plugin_files_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINCAE_PLUGIN_PATH", str(tmp_path))  # specs load plugins from the plugin folders only
    missing = tmp_path / "Nope.vst3"
    with pytest.raises(FileNotFoundError, match=r"chain\[0\]: vst3 plugin not found: .*Nope.vst3"):
        build_chain([{"plugin": "vst3", "path": str(missing)}])
    with pytest.raises(FileNotFoundError, match="impulse_response_filename: file not found"):
        build_chain([{"plugin": "Convolution", "params": {"impulse_response_filename": str(tmp_path / "ir.wav")}}])


# -- command line ---------------------------------------------------------------------------------


def test_parse_chain_arg_command_line_form() -> None:
    spec = parse_chain_arg("reverb(room_size=0.3),gain(gain_db=-3)")
    assert spec == [
        {"plugin": "Reverb", "params": {"room_size": 0.3}},
        {"plugin": "Gain", "params": {"gain_db": -3.0}},
    ]
    spec = parse_chain_arg(" ladder( mode = LPF24 , cutoff_hz=800, bypass=true ) , invert ,compressor() ")
    assert spec == [
        {"plugin": "LadderFilter", "params": {"mode": "LPF24", "cutoff_hz": 800.0}, "bypass": True},
        {"plugin": "Invert", "params": {}},
        {"plugin": "Compressor", "params": {}},
    ]
    spec = parse_chain_arg("vst3('/plugins/My, Verb.vst3', mix=0.5, name=\"Verb (Stereo)\")")
    assert spec == [
        {"plugin": "vst3", "path": "/plugins/My, Verb.vst3", "name": "Verb (Stereo)", "params": {"mix": 0.5}}
    ]
    assert parse_chain_arg("") == []
    with pytest.raises(ValueError, match="expected key=value"):
        parse_chain_arg("reverb(room_size 0.3)")
    with pytest.raises(ValueError, match="expected ',' or '\\)'"):
        parse_chain_arg("reverb(room_size=0.3")
    with pytest.raises(ValueError, match="unknown plugin 'reverbb'"):
        parse_chain_arg("reverbb(room_size=0.3)")


def test_parse_chain_arg_reads_json_files(tmp_path) -> None:
    entries = [{"plugin": "gain", "params": {"gain_db": -6}}]
    (tmp_path / "list.json").write_text(json.dumps(entries))
    (tmp_path / "obj.json").write_text(json.dumps({"format": "lincae.chain", "name": "g", "chain": entries}))
    expected = [{"plugin": "Gain", "params": {"gain_db": -6.0}}]
    assert parse_chain_arg(str(tmp_path / "list.json")) == expected
    assert parse_chain_arg(str(tmp_path / "obj.json")) == expected
    (tmp_path / "bad.json").write_text(json.dumps({"chain": entries, "extra": 1}))
    with pytest.raises(ValueError, match="unknown key"):
        parse_chain_arg(str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError, match="chain file not found"):
        parse_chain_arg(str(tmp_path / "missing.json"))


# -- streaming ------------------------------------------------------------------------------------


def test_blocks_with_reset_false_equal_the_whole_signal_and_tails_continue() -> None:
    x = noise(1.0)
    x[:, SR // 4 :] = 0.0  # a burst, then silence where only the tails sound
    spec = [{"plugin": "Reverb", "params": {"room_size": 0.9}}, {"plugin": "Delay", "params": {"delay_seconds": 0.1}}]
    whole = build_chain(spec)(x, SR)  # one call, reset=True
    # Irregular blocks: single samples, blocks larger than the chunk size and than any before.
    blocks = stream(ChainProcessor(build_chain(spec)), x, [1, 3, 700, 64, 5000, 7, 512, 1])
    np.testing.assert_allclose(blocks, whole, atol=1e-6)
    assert np.abs(blocks[:, SR // 2 :]).max() > 1e-3  # the reverb still rings half a second after the burst

    # What it guards against: processing blocks independently cuts every tail at the block edge.
    naive = np.concatenate([build_chain(spec)(x[:, i : i + 4800], SR) for i in range(0, SR, 4800)], axis=1)
    assert np.abs(naive - whole).max() > 1e-2


def test_buffering_plugins_are_padded_and_their_latency_reported() -> None:
    board = build_chain([{"plugin": "BrickwallLimiter", "params": {"ceiling_db": -1.0, "lookahead_ms": 5.0}}])
    assert chain_latency(board) == 0  # pedalboard's built-ins declare no latency
    expected = chain_latency(board, SR)
    assert expected == 240  # the 5 ms lookahead at 48 kHz
    proc = ChainProcessor(board)
    x = noise(0.25, level=0.05)  # well below the ceiling: the limiter only delays
    y = stream(proc, x, [100, 1000, 3])
    assert proc.latency == expected
    np.testing.assert_allclose(y[:, expected:], x[:, :-expected], atol=1e-6)
    assert not y[:, :expected].any()


def test_a_real_plugin_that_raises_is_bypassed_and_audio_keeps_flowing() -> None:
    sr = 96000  # MP3Compressor refuses rates above 48 kHz: it raises here
    spec = [{"plugin": "Gain", "params": {"gain_db": -6}}, {"plugin": "MP3Compressor"}, {"plugin": "Reverb"}]
    proc = ChainProcessor(build_chain(spec))
    x = noise(0.5)
    y = stream(proc, x, [1000], sr)
    assert len(proc.errors) == 1 and proc.failed == [1]
    err = proc.errors[0]
    assert (err.index, err.plugin, err.block) == (1, "MP3Compressor", 0)
    assert "MP3 only supports" in err.message
    expected = build_chain([spec[0], spec[2]])(x, sr)  # the other plugins still run
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_a_plugin_producing_nan_is_bypassed() -> None:
    # A high-pass above Nyquist blows up: the slot is dropped instead of poisoning the output.
    proc = ChainProcessor(build_chain([{"plugin": "HighpassFilter", "params": {"cutoff_frequency_hz": 30000}}]))
    x = noise(0.1)
    y = stream(proc, x, [512])
    assert np.array_equal(y, x)
    assert proc.errors[0].plugin == "HighpassFilter" and "non-finite" in proc.errors[0].message


class _Explodes:
    """Works for a few blocks, then raises: a failure in the middle of a stream."""

    def __init__(self, good_blocks: int) -> None:
        self.good, self.calls = good_blocks, 0

    def process(self, x: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True) -> np.ndarray:
        self.calls += 1
        if self.calls > self.good + 1:  # +1: the priming block
            raise RuntimeError("license check failed")
        return -x

    def reset(self) -> None:
        pass


def test_a_plugin_failing_mid_stream_is_bypassed_from_then_on() -> None:
    gain = pedalboard.Gain(gain_db=-6.0)
    fragile = _Explodes(good_blocks=3)
    proc = ChainProcessor([gain, fragile])
    x = noise(0.1)
    y = stream(proc, x, [480])
    scaled = pedalboard.Gain(gain_db=-6.0)(x, SR)
    np.testing.assert_allclose(y[:, : 3 * 480], -scaled[:, : 3 * 480], atol=1e-6)
    np.testing.assert_allclose(y[:, 3 * 480 :], scaled[:, 3 * 480 :], atol=1e-6)
    assert [(e.index, e.plugin, e.block) for e in proc.errors] == [(1, "_Explodes", 3)]
    assert "license check failed" in proc.errors[0].message
    calls = fragile.calls
    proc.process(x[:, :480], SR)
    assert fragile.calls == calls  # not called again
    proc.retry_failed()
    proc.process(x[:, :480], SR)
    assert len(proc.errors) == 2  # retried, and it failed again


def test_bypass_passes_audio_unchanged_and_can_be_switched_live() -> None:
    board = build_chain([{"plugin": "Gain", "params": {"gain_db": -20}}, {"plugin": "Reverb"}])
    set_bypass(board, 1)
    proc = ChainProcessor(board)
    x = noise(0.05)
    np.testing.assert_allclose(proc.process(x, SR), pedalboard.Gain(gain_db=-20)(x, SR), atol=1e-6)
    np.testing.assert_allclose(board(x, SR), pedalboard.Gain(gain_db=-20)(x, SR), atol=1e-6)
    apply_parameter(board, "post.0.bypass", 1.0)
    assert np.array_equal(proc.process(x, SR), x)
    apply_parameter(board, "post.0.bypass", 0.0)
    apply_parameter(board, "post.1.bypass", 0.0)
    assert not np.allclose(proc.process(x, SR), pedalboard.Gain(gain_db=-20)(x, SR), atol=1e-3)
    assert "bypass" not in chain_to_spec(board)[1]


def test_reset_clears_tails_and_mono_blocks_work() -> None:
    proc = ChainProcessor(build_chain([{"plugin": "Reverb", "params": {"room_size": 0.9}}]))
    proc.process(noise(0.1), SR)
    assert np.abs(proc.flush(4800, SR)).max() > 1e-3
    proc.reset()
    assert not proc.process(np.zeros((2, 4800), np.float32), SR).any()
    mono = proc.process(noise(0.05, channels=1)[0], SR)  # 1-D in, 1-D out
    assert mono.shape == (2400,) and np.isfinite(mono).all()


# -- parameters -----------------------------------------------------------------------------------


def test_parameter_specs_and_apply_by_name() -> None:
    board = build_chain(
        [
            {"plugin": "Reverb", "params": {"room_size": 0.3}},
            {"plugin": "Gain", "params": {"gain_db": -3}},
            {"plugin": "Delay", "params": {"delay_seconds": 5.0}},
            {"plugin": "BrickwallLimiter"},
        ]
    )
    specs = {s.name: s for s in chain_parameter_specs(board, "post")}
    room = specs["post.0.reverb.room_size"]
    assert (room.minimum, room.maximum, room.default) == (0.0, 1.0, 0.3)
    gain = specs["post.1.gain.gain_db"]
    assert (gain.minimum, gain.maximum, gain.default, gain.unit) == (-60.0, 24.0, -3.0, "dB")
    assert specs["post.2.delay.delay_seconds"].maximum == 5.0  # widened to hold the current value
    assert specs["post.3.brickwalllimiter.true_peak"].toggle and specs["post.0.bypass"].toggle
    registry = ParameterRegistry(list(specs.values()))
    assert registry.get("post.0.reverb.room_size") == 0.3

    assert apply_parameter(board, "post.0.reverb.room_size", 0.8) == 0.8
    assert board[0].room_size == pytest.approx(0.8)
    assert apply_parameter(board, "pre.2.1.gain.gain_db", -12) == -12.0  # any prefix, dots included
    assert board[1].gain_db == pytest.approx(-12.0)
    assert apply_parameter(board, "post.3.brickwalllimiter.true_peak", 1) == 1.0 and board[3].true_peak is True

    with pytest.raises(ValueError, match="slot 0 holds reverb, not gain"):
        apply_parameter(board, "post.0.gain.gain_db", 0)
    with pytest.raises(ValueError, match=r"Reverb.room_size = 1.5: outside the valid range \[0, 1\]"):
        apply_parameter(board, "post.0.reverb.room_size", 1.5)
    with pytest.raises(ValueError, match="Reverb has no numeric parameter 'size'; numeric: room_size"):
        apply_parameter(board, "post.0.reverb.size", 0.5)
    with pytest.raises(ValueError, match="no slot 9"):
        apply_parameter(board, "post.9.reverb.room_size", 0.5)


def test_process_ramped_moves_a_parameter_linearly_in_sub_blocks() -> None:
    board = build_chain([{"plugin": "Gain", "params": {"gain_db": 0.0}}])
    proc = ChainProcessor(board)
    x = np.full((1, 1024), 0.5, np.float32)
    y = proc.process_ramped(x, SR, [("post.0.gain.gain_db", 0.0, -24.0)])  # 8 sub-blocks of 128 samples
    assert y.shape == x.shape and board[0].gain_db == pytest.approx(-24.0)
    levels = 0.5 * 10 ** (-3.0 * np.arange(1, 9) / 20)  # -3, -6, ... -24 dB: |Δ| / 8 per sub-block
    np.testing.assert_allclose(y[0], np.repeat(levels, 128), rtol=1e-5)
    # A write the plugin refuses drops that ramp and is reported; the audio still flows.
    y = proc.process_ramped(x, SR, [("post.0.gain.gain_db", -24.0, 500.0)])
    assert "outside the valid range" in proc.parameter_errors[0]
    np.testing.assert_allclose(y, x * 10 ** (-24 / 20), rtol=1e-5)
    # Continuous parameters are marked smoothed; switches and re-initialising ones are not.
    specs = {s.name: s for s in chain_parameter_specs(build_chain([{"plugin": "Reverb"}]), "post")}
    assert specs["post.0.reverb.room_size"].smoothed and not specs["post.0.reverb.freeze_mode"].smoothed
    assert not specs["post.0.bypass"].smoothed


def test_plugins_that_fail_to_load_can_be_bypassed_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINCAE_PLUGIN_PATH", str(tmp_path))
    not_a_plugin = tmp_path / "Broken.vst3"
    not_a_plugin.write_text("not a plugin")
    spec = [
        {"plugin": "vst3", "path": str(tmp_path / "Nope.vst3"), "params": {"mix": 0.5}},
        {"plugin": "vst3", "path": str(not_a_plugin)},
        {"plugin": "Convolution", "params": {"impulse_response_filename": str(tmp_path / "ir.wav")}},
        {"plugin": "Gain", "params": {"gain_db": -6.0}},
    ]
    with pytest.raises(FileNotFoundError, match=r"Nope\.vst3"):
        build_chain(spec)  # strict by default
    with pytest.raises(chains.PluginLoadError, match=r"chain\[0\]: could not load vst3 plugin .*Broken.vst3"):
        build_chain(spec[1:])
    board = build_chain(spec, on_load_error="bypass")
    assert len(board) == 4 and all(isinstance(p, chains.UnloadedPlugin) for p in list(board)[:3])
    assert [is_bypassed(board, i) for i in range(4)] == [True, True, True, False]
    failures = chains.load_failures(board)
    labels = [(f.index, f.plugin) for f in failures]
    assert labels == [(0, "vst3:Nope.vst3"), (1, "vst3:Broken.vst3"), (2, "Convolution")]
    assert "failed to load, bypassed: chain[0]: vst3 plugin not found" in failures[0].message
    assert "unsupported plugin format" in failures[1].message and "file not found" in failures[2].message
    proc = ChainProcessor(board)
    assert proc.errors == failures and proc.failed == [0, 1, 2]
    x = noise(0.05)
    np.testing.assert_allclose(stream(proc, x, [512]), pedalboard.Gain(gain_db=-6.0)(x, SR), atol=1e-6)
    proc.retry_failed()  # loading is not retried: still bypassed
    np.testing.assert_allclose(proc.process(x, SR), pedalboard.Gain(gain_db=-6.0)(x, SR), atol=1e-6)
    assert chain_latency(board, SR) == 0
    # Saving writes the entries back as given; only bypass is exposed for the slots that did not load,
    # and a preset's values for them are accepted and ignored.
    assert chain_to_spec(board)[:3] == validate_chain_spec(spec)[:3]
    names = [s.name for s in chain_parameter_specs(board, "post")]
    assert names[:3] == ["post.0.bypass", "post.1.bypass", "post.2.bypass"] and "post.3.gain.gain_db" in names
    assert apply_parameter(board, "post.0.nope_vst3.mix", 0.25) == 0.25
    apply_parameter(board, "post.0.bypass", 0.0)
    assert is_bypassed(board, 0)
    # Mistakes in the spec itself still raise: they are typos, not missing files.
    with pytest.raises(ValueError, match=r"unknown plugin 'Reverbb'; built-in plugins: .*Reverb"):
        build_chain([{"plugin": "Reverbb"}], on_load_error="bypass")
    with pytest.raises(ValueError, match="Gain has no parameter 'gain'; its parameters: gain_db"):
        build_chain([{"plugin": "Gain", "params": {"gain": 1.0}}], on_load_error="bypass")
    with pytest.raises(ValueError, match="on_load_error must be one of raise, bypass"):
        build_chain(spec, on_load_error="ignore")
