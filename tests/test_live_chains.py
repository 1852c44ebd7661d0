"""Effect chains inside the engine: live equals offline, plugin latency declared, failures bypassed,
plugin parameters driven by MIDI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from test_chains import _Explodes
from test_engine import CONFIG, LinearTestCodec, stream_through, tones

from lincae.engine.config import EngineConfig
from lincae.engine.effects import RAMP_BLOCK, ChainProcessor, build_chain, chain_latency, chain_parameter_specs
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.engine.stream import StreamingEngine
from lincae.io.mapping import MidiMapping
from lincae.io.midi import MidiController

pytest_plugins = ["jackd_fixture"]

PRE = [{"plugin": "Gain", "params": {"gain_db": -6.0}}, {"plugin": "Compressor", "params": {"threshold_db": -20.0}}]
POST = [{"plugin": "Reverb", "params": {"room_size": 0.5, "wet_level": 0.3}}]


def engine(pre: object, post: object, block: int, registry: ParameterRegistry | None = None) -> StreamingEngine:
    mixer = LatentMixer(LinearTestCodec(), EngineConfig(sources=[1], **CONFIG), registry, device="cpu")
    return StreamingEngine(mixer, block=block, max_block=max(block, 64), pre=pre, post=post)  # type: ignore[arg-type]


@pytest.mark.parametrize("block", [1, 64, 333, 4096])
def test_chains_live_equal_offline_then_chains_by_hand(block: int) -> None:
    x = tones(1, 20000, 11)
    eng = engine({1: build_chain(PRE)}, build_chain(POST), block)
    live = stream_through(eng, [x], block, extra=eng.latency + block)[:, eng.latency : eng.latency + x.shape[-1]]
    pre_by_hand = ChainProcessor(build_chain(PRE)).process(x, 44100)
    offline = render(LatentMixer(LinearTestCodec(), EngineConfig(sources=[1], **CONFIG), device="cpu"), [pre_by_hand])
    expected = ChainProcessor(build_chain(POST)).process(offline, 44100)
    assert np.abs(live - expected).max() < 1e-6
    assert eng.metrics.plugin_errors == [] and eng.metrics.dropouts == 0


def test_plugin_latency_is_part_of_the_declared_latency() -> None:
    post = build_chain([{"plugin": "BrickwallLimiter"}])
    plain, limited = engine(None, None, 256), engine(None, post, 256)
    assert limited.latency - plain.latency == chain_latency(post, 44100, channels=1) > 0
    x = tones(1, 20000, 12)  # peaks below the limiter's ceiling: it only delays
    out = stream_through(limited, [x], 256, extra=limited.latency + 256)
    assert np.abs(out[:, limited.latency : limited.latency + x.shape[-1]] - x).max() < 1e-5


def test_a_plugin_failing_mid_stream_is_bypassed_and_the_audio_keeps_flowing() -> None:
    import pedalboard

    post = [pedalboard.Gain(gain_db=-6.0), _Explodes(good_blocks=12)]  # a plain list of plugins is a chain too
    eng = engine(None, post, 512)
    x = tones(1, 44100, 13)
    out = stream_through(eng, [x], 512, extra=eng.latency + 512)[:, eng.latency : eng.latency + x.shape[-1]]
    half = 10 ** (-6 / 20) * x
    assert len(eng.metrics.plugin_errors) == 1 and "license check failed" in eng.metrics.plugin_errors[0]
    assert eng.metrics.dropouts == 0 and eng.metrics.fallback_samples == 0
    assert np.allclose(out[:, -20000:], half[:, -20000:], atol=1e-5)  # after the failure: Gain alone
    assert np.allclose(out[:, 2000:4000], -half[:, 2000:4000], atol=1e-5)  # before it: both plugins


def test_midi_moves_a_plugin_parameter() -> None:
    post = build_chain([{"plugin": "Gain", "params": {"gain_db": 0.0}}])
    reg = ParameterRegistry(mixer_parameters(1) + chain_parameter_specs(post, "post"))
    eng = engine(None, post, 256, reg)
    ctl = MidiController(reg, [MidiMapping("post.0.gain.gain_db", cc=20, channel=1, soft_takeover=False)], api="jack")
    x = np.full((1, 60000), 0.25, np.float32)
    out = np.zeros((1, 60000), np.float32)
    for i in range(0, 60000, 256):
        if i == 30208:
            assert ctl.handle_message([0xB0, 20, 0])  # knob fully down: -60 dB
            ctl.poll()
        eng.push(x[:, i : i + 256])
        eng.pump()
        eng.pull(out[:, i : i + 256])
    assert reg.get("post.0.gain.gain_db") == -60.0
    assert out[0, 20000:29000].min() == pytest.approx(0.25, abs=1e-5)
    assert np.abs(out[0, -10000:]).max() < 0.25 * 10 ** (-55 / 20)
    ctl.close()


def _gain_trace(smoothed: bool) -> tuple[np.ndarray, int]:
    """Per-sample gain of a post Gain moved from 0 to -24 dB mid-stream (constant input); and the step."""
    post = build_chain([{"plugin": "Gain", "params": {"gain_db": 0.0}}])
    specs = [
        s if s.name != "post.0.gain.gain_db" else dataclasses.replace(s, smoothed=smoothed)
        for s in chain_parameter_specs(post, "post")
    ]
    reg = ParameterRegistry(mixer_parameters(1) + specs)
    eng = engine(None, post, 256, reg)
    x = np.full((1, 40000), 0.25, np.float32)
    out = np.zeros_like(x)
    for i in range(0, 40000, 256):
        if i == 20224:
            reg.set("post.0.gain.gain_db", -24.0)
        eng.push(x[:, i : i + 256])
        eng.pump()
        eng.pull(out[:, i : i + 256])
    return out[0, 10000:] / 0.25, eng.mixer.step


def test_a_plugin_parameter_ramps_over_a_step_instead_of_jumping() -> None:
    ramped, step = _gain_trace(smoothed=True)
    jumped, _ = _gain_trace(smoothed=False)
    low = 10 ** (-24 / 20)
    for g in (ramped, jumped):
        assert g[0] == pytest.approx(1.0, abs=1e-5) and g[-1] == pytest.approx(low, rel=1e-4)
    assert np.abs(np.diff(jumped)).max() == pytest.approx(1.0 - low, abs=1e-4)  # one click-sized step
    # Ramped: the value moves 0 → -24 dB linearly in sub-blocks across one step (3 dB per sub-block here).
    sub_blocks = step // RAMP_BLOCK
    assert sub_blocks == 8
    steps = np.abs(np.diff(ramped))
    assert steps.max() <= (1.0 - 10 ** (-24 / 20 / sub_blocks)) + 1e-4
    moving = np.flatnonzero(steps > 1e-4)
    assert len(moving) == sub_blocks and moving[-1] - moving[0] == step - RAMP_BLOCK
    levels = ramped[moving[0] + 1 : moving[-1] + 2 : RAMP_BLOCK]
    np.testing.assert_allclose(levels, 10 ** (-3.0 * np.arange(1, 9) / 20), rtol=1e-4)


class _CountingExternal:
    """A stand-in external plugin that passes audio through and logs every parameter write."""

    name = "Counter"

    class _Param:
        def __init__(self, discrete: bool) -> None:
            self.type, self.min_value, self.max_value, self.label = float, 0.0, 1.0, ""
            self.is_discrete = discrete

    def __init__(self) -> None:
        object.__setattr__(self, "writes", [])
        self.parameters = {"mix": self._Param(False), "drive": self._Param(False), "mode": self._Param(True)}
        self.mix, self.drive, self.mode = 0.0, 0.0, 0.0
        self.writes.clear()

    def __setattr__(self, key: str, value: object) -> None:
        self.writes.append((key, value))
        object.__setattr__(self, key, value)

    def process(self, x: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True) -> np.ndarray:
        return x

    def reset(self) -> None:
        pass


def test_only_changed_plugin_parameters_are_applied_and_choices_switch_at_once() -> None:
    plugin = _CountingExternal()
    specs = chain_parameter_specs([plugin], "post")
    assert [(s.name, s.smoothed) for s in specs] == [
        ("post.0.counter.mix", True),
        ("post.0.counter.drive", True),
        ("post.0.counter.mode", False),
    ]
    reg = ParameterRegistry(mixer_parameters(1) + specs)
    eng = engine(None, [plugin], 256, reg)
    x = tones(1, 3 * 1024, 14)
    eng.push(x[:, :1024])
    eng.pump()  # the first window applies every value once
    assert sorted(k for k, _ in plugin.writes) == ["drive", "mix", "mode"]
    plugin.writes.clear()
    reg.update({"post.0.counter.mix": 0.8, "post.0.counter.mode": 1.0})
    eng.push(x[:, 1024:2048])
    eng.pump()
    assert [v for k, v in plugin.writes if k == "mode"] == [1.0]  # a choice: switched once, at the boundary
    mix = [v for k, v in plugin.writes if k == "mix"]
    assert mix[1:] == pytest.approx([0.1 * j for j in range(1, 9)])  # target check, then 8 ramp steps
    assert "drive" not in {k for k, _ in plugin.writes}  # unchanged: untouched
    plugin.writes.clear()
    eng.push(x[:, 2048:])
    eng.pump()
    assert plugin.writes == []  # nothing changed since


def test_a_plugin_that_fails_to_load_is_bypassed_live_with_a_visible_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINCAE_PLUGIN_PATH", str(tmp_path))  # specs load plugins from the plugin folders only
    spec = [{"plugin": "vst3", "path": str(tmp_path / "Missing.vst3")}, {"plugin": "Gain", "params": {"gain_db": -6.0}}]
    with pytest.raises(FileNotFoundError):
        build_chain(spec)  # strict: what a render wants
    eng = engine(None, build_chain(spec, on_load_error="bypass"), 512)
    assert len(eng.metrics.plugin_errors) == 1  # reported before any audio runs
    assert "vst3:Missing.vst3: failed to load, bypassed" in eng.metrics.plugin_errors[0]
    assert "plugin not found" in eng.metrics.plugin_errors[0]
    x = tones(1, 30000, 15)
    out = stream_through(eng, [x], 512, extra=eng.latency + 512)[:, eng.latency : eng.latency + x.shape[-1]]
    np.testing.assert_allclose(out[:, 1000:], 10 ** (-6 / 20) * x[:, 1000:], atol=1e-5)  # the Gain still applies
    assert eng.metrics.dropouts == 0 and len(eng.metrics.plugin_errors) == 1


def test_measured_latency_through_jack_includes_the_plugin_latency(jack_server) -> None:  # type: ignore[no-untyped-def]
    from test_live import Player, wire_player

    from lincae.io.live import LiveConfig, LiveSession, wait_until

    post = build_chain([{"plugin": "BrickwallLimiter"}])
    eng = engine(None, post, 256)
    session = LiveSession(
        eng,
        LiveConfig(
            input_device="system", output_device="system", block=256, source_channels=((1,),), output_channels=(1,)
        ),
    )
    click = np.zeros(44100, np.float32)
    click[1000] = 0.5
    session.start()
    try:
        with Player(click, record_frames=click.size) as player:
            wire_player(jack_server, session)
            player.playing.set()
            assert wait_until(lambda: player.pos >= player.recorded.size, timeout=20)
    finally:
        session.stop()
    heard = int(np.argmax(np.abs(player.recorded) > 0.25))
    declared = session.latency
    assert declared == eng.engine_latency + 220 + eng.metrics.device_latency_samples
    # the player is wired straight to lincae's ports: the loop holds the declared latency but the device's
    through = declared - eng.metrics.device_latency_samples
    assert through <= heard - 1000 <= through + jack_server.period, (heard - 1000, through)
