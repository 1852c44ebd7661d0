"""Effect chains inside the engine: live equals offline, plugin latency declared, failures bypassed,
plugin parameters driven by MIDI."""

from __future__ import annotations

import numpy as np
import pytest
from test_chains import _Explodes
from test_engine import CONFIG, LinearTestCodec, stream_through, tones

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.engine.stream import StreamingEngine
from lincae.io.mapping import MidiMapping
from lincae.io.midi import MidiController
from lincae.render.chains import ChainProcessor, build_chain, chain_latency, chain_parameter_specs

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
            wire_player(jack_server)
            player.playing.set()
            assert wait_until(lambda: player.pos >= player.recorded.size, timeout=20)
    finally:
        session.stop()
    heard = int(np.argmax(np.abs(player.recorded) > 0.25))
    declared = session.latency
    assert declared == eng.engine_latency + 220 + eng.metrics.device_latency_samples
    assert declared <= heard - 1000 <= declared + jack_server.period, (heard - 1000, declared)
