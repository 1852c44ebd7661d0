"""The streaming engine: ring buffers, windowing, latent mixing, offline == live, overload, ramps."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer, crossfade_curves
from lincae.engine.offline import render, stack_sources
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.engine.ringbuffer import RingBuffer
from lincae.engine.stream import StreamingEngine
from lincae.models.base import LatentAutoencoder


class LinearTestCodec(LatentAutoencoder):
    """A perfectly linear stand-in for the autoencoder: latent frame j holds audio samples j·H..(j+1)·H.

    Windows carry ``E`` extra leading samples (as the real model's STFT framing does), which decode to
    zeros; the engine never emits them. Decoding is the identity, so the engine's output must equal its
    input exactly: any error in windowing, crossfades or alignment shows.
    """

    name = "linear"
    hop_length = 256  # type: ignore[assignment]
    latent_channels = 256  # type: ignore[assignment]
    sample_rate = 44100  # type: ignore[assignment]
    extra = 192

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s

    def get_decoded_size(self, frames: int) -> int:
        return frames * self.hop_length + self.extra

    def encode(self, x: torch.Tensor, **_: object) -> torch.Tensor:
        if self.delay_s:
            time.sleep(self.delay_s)
        b = x.shape[0]
        return x[:, self.extra :].reshape(b, -1, self.hop_length).transpose(1, 2)

    def decode(self, z: torch.Tensor, full_length: int, **_: object) -> torch.Tensor:
        audio = z.transpose(1, 2).reshape(z.shape[0], -1)
        return torch.nn.functional.pad(audio, (self.extra, 0))[..., :full_length]


CONFIG = dict(window_frames=8, step_frames=4, lookahead_frames=1, crossfade=256)


def tones(channels: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 44100
    f = rng.uniform(100, 1000, size=(channels, 1))
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal((channels, length))).astype(np.float32)


# ----------------------------------------------------------------------------- ring buffer
@pytest.mark.parametrize("seed", range(5))
def test_ring_buffer_matches_a_plain_list(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ring = RingBuffer(2, 100)
    model: list[float] = []  # what a reader can still get, oldest first
    lost = underrun = 0
    counter = 0
    for _ in range(500):
        if rng.random() < 0.5:
            n = int(rng.integers(0, 140))
            block = np.arange(counter, counter + n, dtype=np.float32)
            counter += n
            ring.write(np.stack([block, -block]))
            model.extend(block.tolist())
            if len(model) > 100:
                lost += len(model) - 100
                del model[: len(model) - 100]
        else:
            n = int(rng.integers(0, 60))
            out = np.full((2, n), 7.0, np.float32)
            got = ring.read(out)
            expected = model[:n]
            del model[:n]
            underrun += n - len(expected)
            assert got == len(expected)
            assert out[0, :got].tolist() == expected and out[1, :got].tolist() == [-v for v in expected]
            assert not out[:, got:].any()
        assert ring.available == len(model)
    assert ring.underruns == underrun
    assert ring.overruns <= lost  # overruns are counted when the reader notices them


def test_ring_buffer_read_at_refuses_overwritten_or_future_samples() -> None:
    ring = RingBuffer(1, 10)
    ring.write(np.arange(25, dtype=np.float32)[None])
    out = np.zeros((1, 5), np.float32)
    assert ring.read_at(15, out) and out[0].tolist() == [15, 16, 17, 18, 19]
    assert not ring.read_at(14, out)  # overwritten
    assert not ring.read_at(21, out)  # not written yet


# ----------------------------------------------------------------------------- windowing
@pytest.mark.parametrize("shape", ["linear", "hann"])
def test_crossfades_are_amplitude_complementary(shape: str) -> None:
    fade_in, fade_out = crossfade_curves(300, shape)
    assert np.allclose(fade_in + fade_out, 1.0)
    assert np.all(np.diff(fade_in) > 0) and fade_in[0] < 0.01 and fade_in[-1] > 0.99


@pytest.mark.parametrize("shape", ["linear", "hann"])
def test_linear_codec_passes_signals_unchanged(shape: str) -> None:
    mixer = LatentMixer(LinearTestCodec(), EngineConfig(sources=[1], crossfade_shape=shape, **CONFIG), device="cpu")
    constant = np.full((1, 9000), 0.25, np.float32)
    assert np.allclose(render(mixer, [constant]), constant, atol=1e-6)
    mixer = LatentMixer(LinearTestCodec(), EngineConfig(sources=[1], crossfade_shape=shape, **CONFIG), device="cpu")
    x = tones(1, 9000, 0)
    assert np.allclose(render(mixer, [x]), x, atol=1e-6)


def test_latent_gain_scales_and_sources_add() -> None:
    a, b = tones(1, 12000, 1), tones(2, 12000, 2)  # a mono and a stereo source
    reg = ParameterRegistry(mixer_parameters(2))
    reg.update({"source.1.gain_db": -6.0206, "source.2.gain_db": 0.0})
    mixer = LatentMixer(LinearTestCodec(), EngineConfig(sources=[1, 2], **CONFIG), reg, device="cpu")
    y = render(mixer, [a, b])
    assert y.shape == (2, 12000)
    # The smoother starts at the initial values, so the gains hold from the first sample.
    assert np.allclose(y, 0.5 * a + b, atol=1e-5)


def test_inverted_source_separates_by_subtraction() -> None:
    stem, rest = tones(1, 10000, 3), tones(1, 10000, 4)
    reg = ParameterRegistry(mixer_parameters(2))
    reg.set("source.2.invert", 1)
    mixer = LatentMixer(LinearTestCodec(), EngineConfig(sources=[1, 1], **CONFIG), reg, device="cpu")
    assert np.allclose(render(mixer, [stem + rest, stem]), rest, atol=1e-5)


def test_mute_solo_and_dry_wet() -> None:
    a, b = tones(1, 8000, 5), tones(1, 8000, 6)
    reg = ParameterRegistry(mixer_parameters(2))
    reg.update({"source.2.solo": 1})
    y = render(LatentMixer(LinearTestCodec(), EngineConfig(sources=[1, 1], **CONFIG), reg, device="cpu"), [a, b])
    assert np.allclose(y, b, atol=1e-5)
    reg = ParameterRegistry(mixer_parameters(2))
    reg.update({"source.1.mute": 1, "mix.dry_wet": 0.0})  # fully dry: the plain input sum, mute or not
    y = render(LatentMixer(LinearTestCodec(), EngineConfig(sources=[1, 1], **CONFIG), reg, device="cpu"), [a, b])
    assert np.allclose(y, a + b, atol=1e-5)


def test_declared_latency_and_config_checks() -> None:
    cfg = EngineConfig(sources=[1], **CONFIG)
    assert cfg.latency_samples(256, block=64) == 2 * 1024 + 256 + 256 + 64
    with pytest.raises(ValueError, match="window_frames 5 must hold"):
        LatentMixer(LinearTestCodec(), EngineConfig(sources=[1], **{**CONFIG, "window_frames": 5}), device="cpu")
    with pytest.raises(ValueError, match="sources must be 1 or 2 channels"):
        EngineConfig(sources=[3])
    with pytest.raises(ValueError, match="unknown EngineConfig key"):
        EngineConfig.from_dict({"window": 3})


# ----------------------------------------------------------------------------- offline == live
def stream_through(engine: StreamingEngine, sources: list[np.ndarray], block: int, extra: int) -> np.ndarray:
    """Drive the engine block by block (worker run inline after each push): returns the output stream."""
    rows = np.concatenate(sources)
    total = rows.shape[-1] + extra
    rows = np.pad(rows, ((0, 0), (0, extra)))
    out = np.zeros((engine.out_channels, total), np.float32)
    for i in range(0, total, block):
        n = min(block, total - i)
        engine.push(rows[:, i : i + n])
        engine.pump()
        engine.pull(out[:, i : i + n])
    return out


@pytest.mark.parametrize("block", [1, 64, 333, 4096, 8193])
def test_streamed_output_equals_offline_shifted_by_the_latency(block: int) -> None:
    model = make_tiny_model()
    cfg = EngineConfig(sources=[1, 2], seed=7, **CONFIG)
    reg = ParameterRegistry(mixer_parameters(2))
    reg.update({"source.1.gain_db": -3.0, "source.2.invert": 1.0, "mix.dry_wet": 80.0})
    sources = [tones(1, 5000, 8), tones(2, 5000, 9)]
    offline = render(LatentMixer(model, cfg, reg, device="cpu"), sources, batch=1)  # window by window, as live
    engine = StreamingEngine(LatentMixer(model, cfg, reg, device="cpu"), block=block, max_block=max(block, 64))
    d = engine.latency
    assert d == cfg.latency_samples(model.hop_length, block)
    live = stream_through(engine, sources, block, extra=d + block)
    assert np.array_equal(live[:, d : d + 5000], offline)
    assert engine.metrics.dropouts == 0 and engine.metrics.fallback_samples == 0
    assert engine.metrics.windows > 0 and engine.metrics.rtf_last > 0
    assert engine.metrics.latents is not None and engine.metrics.latents.shape == (2, 64)


def test_input_the_worker_never_read_is_counted_as_overrun() -> None:
    """A worker held up for longer than the input ring holds loses input: counted, then it catches up."""
    model = make_tiny_model()
    cfg = EngineConfig(sources=[1], seed=7, **CONFIG)
    engine = StreamingEngine(LatentMixer(model, cfg, device="cpu"), block=64, max_block=64)
    audio = tones(1, engine.inputs.capacity * 3, 1)
    for i in range(0, audio.shape[-1], 64):  # the audio side runs on; the worker does not
        engine.push(audio[:, i : i + 64])
    assert engine.metrics.input_overruns == 0
    engine.pump()
    assert engine.metrics.input_overruns >= engine.mixer.window  # the first window's input was overwritten
    assert engine.metrics.dropouts == 1 and engine.metrics.windows == 1  # it skipped to the newest window
    healthy = StreamingEngine(LatentMixer(model, cfg, device="cpu"), block=64, max_block=64)
    stream_through(healthy, [audio[:, :5000]], 64, extra=0)
    assert healthy.metrics.input_overruns == 0 and healthy.metrics.windows > 0


def test_parameter_ramps_never_step_more_than_the_smoothing_allows() -> None:
    reg = ParameterRegistry(mixer_parameters(1))
    cfg = EngineConfig(sources=[1], smoothing_ms=40.0, **CONFIG)
    mixer = LatentMixer(LinearTestCodec(), cfg, reg, device="cpu")
    ramp = mixer.coef.ramp
    assert ramp == int(np.ceil(40.0 / (1000 * 256 / 44100)))
    coefs = [mixer._frame_values(0, 8)[0][:, 0]]
    reg.set("source.1.gain_db", -60.0)  # 1.0 → 0.0
    coefs.append(mixer._frame_values(8, 12)[0][:, 0])
    reg.set("source.1.gain_db", 12.0)  # 0.0 → 3.98
    coefs.append(mixer._frame_values(20, 12)[0][:, 0])
    c = np.concatenate(coefs)
    steps = np.abs(np.diff(c))
    assert steps[:8].max() <= 1.0 / ramp + 1e-9
    assert steps[20:].max() <= 10 ** (12 / 20) / ramp + 1e-9
    assert c[19] == 0.0 and c[-1] == pytest.approx(10 ** (12 / 20))
    # Overlapping windows see the same value for the same frame.
    assert np.array_equal(mixer._frame_values(28, 8)[0][:4, 0], c[28:32])


def test_gain_ramp_in_audio_has_no_click() -> None:
    """A sudden -60 dB request fades over the smoothing time instead of cutting the signal."""
    reg = ParameterRegistry(mixer_parameters(1))
    cfg = EngineConfig(sources=[1], smoothing_ms=50.0, **CONFIG)
    engine = StreamingEngine(LatentMixer(LinearTestCodec(), cfg, reg, device="cpu"), block=256)
    x = np.full((1, 30000), 0.5, np.float32)
    out = np.zeros((1, 30000), np.float32)
    for i in range(0, 30000, 256):
        if i == 12800:
            reg.set("source.1.gain_db", -60.0)
        engine.push(x[:, i : i + 256])
        engine.pump()
        engine.pull(out[:, i : i + 256])
    played = out[0, engine.latency :]
    assert played.max() == pytest.approx(0.5, abs=1e-5) and played[-2000:].max() < 1e-6
    # Gains move once per latent frame by at most |change| / ramp: with this identity codec that is a staircase
    # of small steps (a decoder interpolates between frames), never the 0.5 cut of an unsmoothed change.
    ramp = engine.mixer.coef.ramp
    assert ramp >= 8
    assert np.abs(np.diff(played)).max() <= 0.5 / ramp + 1e-5


# ----------------------------------------------------------------------------- overload
def test_overload_drops_windows_keeps_latency_and_recovers() -> None:
    codec = LinearTestCodec()
    cfg = EngineConfig(sources=[1], **CONFIG)
    engine = StreamingEngine(LatentMixer(codec, cfg, device="cpu"), block=512)
    step_s = engine.mixer.step / 44100
    x = tones(1, int(44100 * 3.0), 10)
    out = np.zeros_like(x)
    engine.start()
    try:
        t0 = time.perf_counter()
        slow_until = int(44100 * 1.2)
        for i in range(0, x.shape[-1], 512):
            codec.delay_s = 2.5 * step_s if i < slow_until else 0.0  # worker 2.5× slower than real time
            engine.push(x[:, i : i + 512])
            engine.pull(out[:, i : i + 512])
            ahead = (i + 512) / 44100 - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)  # play at the audio clock's pace
    finally:
        engine.stop()
    m = engine.metrics
    assert m.dropouts >= 1 and m.dropped_windows >= 1 and m.fallback_samples > 0
    assert np.isfinite(out).all() and np.abs(out).max() < 1.0
    # After recovery the output is the input delayed by exactly the declared latency: latency did not grow.
    d = engine.latency
    tail = slice(x.shape[-1] - 22050, x.shape[-1])
    assert np.allclose(out[:, tail], x[:, tail.start - d : tail.stop - d], atol=1e-5)


# ----------------------------------------------------------------------------- real-time discipline
def test_push_and_pull_do_not_allocate_arrays_even_through_a_dropout() -> None:
    """The audio-callback side works in preallocated buffers: per call, tracemalloc's peak stays at numpy's
    constant per-call overhead (about 1 KB) instead of growing with the block, gaps and fades included."""
    block = 4096
    cfg = EngineConfig(sources=[1, 2], fallback="dry", **CONFIG)  # a mono and a stereo source, stereo out
    engine = StreamingEngine(LatentMixer(LinearTestCodec(), cfg, device="cpu"), block=block, max_block=block)
    cycle = 30  # blocks per cycle; in each the worker stalls for 4 of them (output runs dry: fallback, fades)
    x = np.concatenate([tones(1, 2 * cycle * block, 20), tones(2, 2 * cycle * block, 21)])
    out = np.zeros((2, block), np.float32)
    peaks = {"push": 0, "pull": 0}

    def measured(name: str, call: Callable[[], None]) -> None:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        peaks[name] = max(peaks[name], tracemalloc.get_traced_memory()[1] - before)

    tracemalloc.start()
    try:
        for i in range(2 * cycle):
            if i == cycle:  # the first cycle is the warm-up
                peaks = {"push": 0, "pull": 0}
                fallback, dropouts = engine.metrics.fallback_samples, engine.metrics.dropouts
            measured("push", lambda i=i: engine.push(x[:, i * block : (i + 1) * block]))
            if not 15 <= i % cycle < 19:
                engine.pump()  # worker side: allowed to allocate, not measured
            measured("pull", lambda: engine.pull(out))
    finally:
        tracemalloc.stop()
    assert engine.metrics.fallback_samples > fallback and engine.metrics.dropouts > dropouts
    assert engine._gain == 1.0  # faded out to the fallback and back in
    # One temporary row of one block would be 16 KB.
    assert peaks["push"] < 4096 and peaks["pull"] < 4096, peaks


def test_a_dual_mono_source_stays_dual_mono() -> None:
    """Both channels of a stereo source decode with the same noise: equal latents give equal audio."""
    model = make_tiny_model()
    mono = tones(1, 6000, 3)
    out = render(LatentMixer(model, EngineConfig(sources=[2], seed=5, **CONFIG), device="cpu"), [np.repeat(mono, 2, 0)])
    assert out.shape == (2, 6000) and np.abs(out).max() > 0
    assert np.array_equal(out[0], out[1])
    # decode_channels keeps the stereo image the same way
    x = torch.from_numpy(np.repeat(mono, 2, 0))[None]
    y = model.decode_channels(model.encode_channels(x), full_length=6000, seed=1)
    assert torch.equal(y[0, 0], y[0, 1])
    # ...and without shared noise the channels differ (what the mixer did before)
    z = model.encode(x[0])
    assert not torch.equal(*model.decode(z, full_length=6000, seed=1))


@pytest.mark.parametrize("batch", [2, 5, 16])
def test_batched_windows_equal_window_by_window_within_rounding(batch: int) -> None:
    """Offline rendering mixes many windows per model call; the result is the live engine's."""
    model = make_tiny_model()
    cfg = EngineConfig(sources=[1, 2], seed=7, **CONFIG)
    reg = ParameterRegistry(mixer_parameters(2))
    reg.update({"source.1.gain_db": -3.0, "source.2.invert": 1.0, "mix.dry_wet": 80.0})
    sources = [tones(1, 9000, 8), tones(2, 9000, 9)]
    one = render(LatentMixer(model, cfg, reg, device="cpu"), sources, batch=1)
    engine = StreamingEngine(LatentMixer(model, cfg, reg, device="cpu"), block=0, max_block=4096)
    rows = stack_sources(engine.mixer, sources)
    out = np.zeros((2, rows.shape[-1] + engine.latency + 4096), np.float32)
    padded = np.pad(rows, ((0, 0), (0, out.shape[-1] - rows.shape[-1])))
    for i in range(0, padded.shape[-1], 4096):
        engine.push(padded[:, i : i + 4096])
        engine.pump(batch)
        engine.pull(out[:, i : i + 4096])
    d = engine.latency
    assert np.abs(out[:, d : d + 9000] - one).max() < 1e-5 * max(1.0, float(np.abs(one).max()))
    assert not np.array_equal(out[:, d : d + 9000], np.zeros_like(one))


def test_one_mixer_renders_one_stream_after_another() -> None:
    """Each render (and each live stream) starts the mixer at window 0: the second equals the first."""
    mixer = LatentMixer(make_tiny_model(), EngineConfig(sources=[1], seed=3, **CONFIG), device="cpu")
    x = tones(1, 6000, 4)
    first = render(mixer, [x], batch=4)
    second = render(mixer, [x], batch=4)
    np.testing.assert_array_equal(first, second)
    render(mixer, [tones(1, 2500, 5)], batch=1)  # another stream in between leaves nothing behind
    np.testing.assert_array_equal(render(mixer, [x], batch=4), first)


def test_metrics_show_the_mix_latents_after_gains() -> None:
    """The GUI's "Mix (after gains)" view reads metrics.mix_latents: the newest frame of the decoded mix."""
    model = make_tiny_model()
    reg = ParameterRegistry(mixer_parameters(2))
    reg.update({"source.2.invert": 1.0})
    engine = StreamingEngine(LatentMixer(model, EngineConfig(sources=[1, 1], **CONFIG), reg, device="cpu"), block=256)
    stream_through(engine, [tones(1, 6000, 4), tones(1, 6000, 5)], 256, extra=256)
    m = engine.metrics
    assert m.mix_latents is not None and m.mix_latents.shape == (64,)
    assert np.allclose(m.mix_latents, m.latents[0] - m.latents[1], atol=1e-5)
    assert np.abs(m.mix_latents).max() > 0


def test_engine_precision_bf16_is_close_to_fp32_and_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from lincae.models import precision as precision_module

    for native, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda native=native: native)
        mixer = LatentMixer(make_tiny_model(), EngineConfig(sources=[1], **CONFIG), device="cpu")
        assert mixer.autocast_dtype == expected and mixer.precision == ("bf16" if native else "fp32")
    x = tones(1, 9000, 6)
    outs = {}
    for precision in ("fp32", "bf16"):
        model = make_tiny_model()
        mixer = LatentMixer(model, EngineConfig(sources=[1], precision=precision, **CONFIG), device="cpu")
        assert mixer.precision == precision
        assert not model.mixed_precision and model.autocast_dtype is None  # the model's own setting is kept
        outs[precision] = render(mixer, [x])
    err = np.sum((outs["bf16"] - outs["fp32"]) ** 2) / np.sum(outs["fp32"] ** 2)
    assert 0 < err < 1e-2, err  # bfloat16 rounding, more than 20 dB below the signal
    with pytest.raises(ValueError, match="precision must be one of"):
        EngineConfig(precision="fp8")


def test_a_bf16_session_changes_no_sample() -> None:
    """Renders hold the bfloat16 weights for the whole stream (LatentMixer.session); live pumping here does not."""
    model = make_tiny_model()
    cfg = EngineConfig(sources=[1], seed=5, precision="bf16", **CONFIG)
    x = tones(1, 7000, 3)
    offline = render(LatentMixer(model, cfg, device="cpu"), [x], batch=1)
    engine = StreamingEngine(LatentMixer(model, cfg, device="cpu"), block=256, max_block=256)
    live = stream_through(engine, [x], 256, extra=engine.latency + 256)
    assert np.array_equal(live[:, engine.latency : engine.latency + 7000], offline)
    fp32 = render(LatentMixer(model, EngineConfig(sources=[1], seed=5, precision="fp32", **CONFIG), device="cpu"), [x])
    assert not np.array_equal(fp32, offline)  # bfloat16 was in use
