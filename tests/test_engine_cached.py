"""The engine with a streamable model: cached convolutions, per-frame knobs, windows as the fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from test_engine import stream_through
from test_streaming_model import make_stream_model

from lincae.engine.cached import CachedMixer, make_mixer
from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.engine.stream import StreamingEngine


def tones(channels: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 44100
    f = rng.uniform(200, 2000, size=(channels, 1))
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal((channels, length))).astype(np.float32)


@pytest.mark.parametrize("block", [1, 64, 333, 4096])
def test_live_stream_equals_the_offline_render_delayed(block: int) -> None:
    model = make_stream_model(lookahead=1)
    cfg = EngineConfig(sources=[1, 2], seed=3, stream_frames=4)
    reg = ParameterRegistry(mixer_parameters(2))
    reg.update({"source.1.gain_db": -3.0, "source.2.invert": 1.0, "mix.dry_wet": 80.0})
    sources = [tones(1, 6000, 1), tones(2, 6000, 2)]
    offline = render(CachedMixer(model, cfg, reg, device="cpu"), sources, batch=1)
    engine = StreamingEngine(CachedMixer(model, cfg, reg, device="cpu"), block=block, max_block=max(block, 64))
    d = engine.latency
    assert d == 4 * 64 * 2 + model.stream_delay + block == engine.mixer.latency_samples(block)
    live = stream_through(engine, sources, block, extra=d + block)
    assert np.array_equal(live[:, d : d + 6000], offline)
    assert engine.metrics.dropouts == 0 and engine.metrics.fallback_samples == 0
    assert np.abs(offline).max() > 1e-3


@pytest.mark.parametrize("batch", [1, 7])
def test_render_is_the_models_own_stream(batch: int) -> None:
    """Rendering at 0 dB, fully wet, gives the model's encode → decode stream (no windows, no crossfades);
    a −6.02 dB gain decodes the latents times 0.5."""
    model = make_stream_model()
    cfg = EngineConfig(sources=[1], seed=5, stream_frames=2)
    x = tones(1, 5000, 4)
    for gain_db, scale in [(0.0, 1.0), (-6.0206, 0.5)]:
        reg = ParameterRegistry(mixer_parameters(1))
        reg.set("source.1.gain_db", gain_db)
        out = render(CachedMixer(model, cfg, reg, device="cpu"), [x], batch=batch)
        # the engine runs the model's own streams from the input's first sample, delayed by D
        d = model.stream_delay
        enc, dec = model.open_encoder_stream(1), model.open_decoder_stream(1, seed=5)
        expected = dec.push(scale * enc.push(torch.from_numpy(x)))[:, d:].numpy()
        n = expected.shape[-1]
        np.testing.assert_allclose(out[:, :n], expected, atol=2e-6, rtol=1e-4)


def test_a_knob_is_heard_within_the_declared_latency() -> None:
    model = make_stream_model()
    cfg = EngineConfig(sources=[1], stream_frames=1, compute_budget=0.5, smoothing_ms=0.0)
    x = tones(1, 12000, 6)
    block = 64

    def run(mute_at: int | None) -> tuple[np.ndarray, int]:
        reg = ParameterRegistry(mixer_parameters(1))
        engine = StreamingEngine(CachedMixer(model, cfg, reg, device="cpu"), block=block)
        out = np.zeros((1, x.shape[-1]), np.float32)
        for i in range(0, x.shape[-1], block):
            if i == mute_at:
                reg.set("source.1.mute", 1)
            engine.push(x[:, i : i + block])
            engine.pump()
            engine.pull(out[:, i : i + block])
        return out, engine.latency

    plain, latency = run(None)
    t = 6400
    muted, _ = run(t)
    differs = np.flatnonzero(np.abs(muted - plain)[0] > 1e-7)
    assert differs.size and t < differs[0] <= t + latency
    assert latency == round(64 * 1.5) + model.stream_delay + block


def test_make_mixer_streams_what_can_stream_and_says_when_it_cannot() -> None:
    stream_model, tiny = make_stream_model(), make_tiny_model()
    assert isinstance(make_mixer(stream_model, EngineConfig(), device="cpu"), CachedMixer)
    assert isinstance(make_mixer(stream_model, EngineConfig(mode="stream"), device="cpu"), CachedMixer)
    small = dict(window_frames=8, step_frames=4, lookahead_frames=1, crossfade=64)  # windows for 64-sample frames
    windows = make_mixer(stream_model, EngineConfig(mode="windows", **small), device="cpu")
    assert type(windows) is LatentMixer and not windows.notice
    fallback = make_mixer(tiny, EngineConfig(mode="stream", **small), device="cpu")
    assert type(fallback) is LatentMixer
    assert "model 'tiny' cannot stream" in fallback.notice and "using windows" in fallback.notice
    assert "\n" not in fallback.notice
    assert not make_mixer(tiny, EngineConfig(**small), device="cpu").notice
    with pytest.raises(ValueError, match="mode must be one of"):
        EngineConfig(mode="fast")
    with pytest.raises(ValueError, match=r"stream_frames must be an integer in \[1, 64\]"):
        EngineConfig(stream_frames=0)


def test_a_stream_recovers_from_an_overload_at_the_same_latency() -> None:
    """A worker that misses steps (here: not called for 0.3 s) skips to the newest window, which restarts the
    cached state; once it has refilled, the output is the offline render again, delayed as declared."""
    model = make_stream_model()
    cfg = EngineConfig(sources=[1], stream_frames=4, seed=2)
    x = tones(1, int(44100 * 1.5), 7)
    offline = render(CachedMixer(model, cfg, device="cpu"), [x], batch=1)
    engine = StreamingEngine(CachedMixer(model, cfg, device="cpu"), block=256)
    out = np.zeros_like(x)
    stall = range(int(44100 * 0.4), int(44100 * 0.7))
    for i in range(0, x.shape[-1], 256):
        engine.push(x[:, i : i + 256])
        if i not in stall:
            engine.pump()
        engine.pull(out[:, i : i + 256])
    m = engine.metrics
    assert m.dropouts >= 1 and m.dropped_windows >= 1 and m.fallback_samples > 0
    assert np.isfinite(out).all()
    d = engine.latency
    tail = slice(x.shape[-1] - 22050, x.shape[-1])
    np.testing.assert_allclose(out[:, tail], offline[:, tail.start - d : tail.stop - d], atol=2e-7, rtol=1e-4)
    assert np.abs(offline[:, tail]).max() > 1e-4


def test_render_command_streams_a_streamable_model_and_says_when_a_model_cannot(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from lincae.cli import main
    from lincae.files.audiofile import read_audio, write_audio

    x = tones(1, 8000, 3)
    src = write_audio(tmp_path / "in.wav", x, 44100)
    stream_dir = make_stream_model().save_pretrained(tmp_path / "stream")
    tiny_dir = make_tiny_model().save_pretrained(tmp_path / "tiny")
    out = tmp_path / "out.wav"
    assert (
        main(["render", str(src), "-o", str(out), "--preset", "low-latency", "--model", str(tiny_dir), "--no-progress"])
        == 0
    )
    err = capsys.readouterr().err
    assert "note: model 'tiny' cannot stream" in err and "using windows" in err
    out2 = tmp_path / "out2.wav"
    assert (
        main(
            [
                "render",
                str(src),
                "-o",
                str(out2),
                "--preset",
                "low-latency",
                "--model",
                str(stream_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "cannot stream" not in capsys.readouterr().err
    cfg = EngineConfig(mode="stream", stream_frames=1, compute_budget=0.45, smoothing_ms=50.0, crossfade=256)
    expected = render(CachedMixer(make_stream_model(), cfg, device="cpu"), [x], batch=16)
    np.testing.assert_allclose(read_audio(out2, 44100), expected, atol=1e-4)  # 16-bit file


def test_presets_quote_the_streaming_latency_when_the_shipped_model_streams(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import lincae.profiles as profiles

    folder = tmp_path / "shipped"
    model = shipped_like_stream_model()
    model.save_pretrained(folder)
    monkeypatch.setattr(profiles, "_shipped_model_dir", lambda: folder)
    assert profiles.shipped_stream_delay() == 3 * 256
    by_name = {p.name: p for p in profiles.engine_profiles(256)}
    low, default = by_name["low-latency"], by_name["default"]
    assert low.streams and default.streams
    assert low.latency_ms == pytest.approx(1000 * (round(256 * 1.45) + 768 + 256) / 44100)
    assert low.latency_ms <= 40.0 and low.worker_load is None  # not measured for streaming yet
    assert "streaming, 6 ms per model call" in profiles.profiles_help(256)


def shipped_like_stream_model():  # type: ignore[no-untyped-def]
    """The shipped geometry (hop 256, FFT 1024), streamable, tiny channels."""
    from lincae import Autoencoder

    gen = dict(
        base_channels=4,
        hop=256,
        multipliers_list=[1, 1],
        layers_list=[1, 1],
        attention_list=[0, 0],
        layers_list_encoder=[1, 1],
        attention_list_encoder=[0, 0],
        freq_downsample_list=[1],
        bottleneck_base_channels=16,
        num_bottleneck_layers=1,
        bottleneck_channels=8,
        cond_channels=8,
        streamable=True,
    )
    model = Autoencoder({"hop_size": 256, "sample_rate": 44100}, gen, {}, name="s", scale_factor=1.0)
    return model
