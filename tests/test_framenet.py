"""The FrameNet family: streams equal the offline pass, homogeneity by construction, files, the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from stream_contract import assert_stream_contract, run_streams

from lincae import Autoencoder
from lincae.engine.cached import CachedMixer, make_mixer
from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.models.frame_autoencoder import FrameAutoencoder
from lincae.models.frame_step import onnx_available
from lincae.models.framenet import FrameNetConfig

TINY = dict(
    hop=64,
    n_fft=256,
    analysis_fall=64,
    synthesis=96,
    channels=16,
    mlp_ratio=2,
    kernel=3,
    encoder_blocks=1,
    decoder_blocks=2,
    latent_channels=8,
    level_frames=4,
)


def make_frame_model(seed: int = 0, **overrides: object) -> FrameAutoencoder:
    """A tiny FrameNet with weights far from their initial values (layer scales included)."""
    torch.manual_seed(seed)
    model = FrameAutoencoder({**TINY, **overrides}, name="tiny-frame").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def _signal(samples: int, channels: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    t = torch.arange(samples) / 44100
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
    rows = [tone, 0.1 * torch.randn(samples, generator=g)]
    return torch.stack(rows[:channels])


CASES = [(b, "torch") for b in (64, 100, 333, 1024, 2048)]
CASES += [(b, "onnxruntime") for b in (64, 333, 2048)] if onnx_available() else []


@pytest.mark.parametrize(("block", "backend"), CASES)
def test_stream_equals_offline_pass_delayed(block: int, backend: str) -> None:
    """Blocks of 64 to 2048 samples; in PyTorch to float rounding, in ONNX Runtime within 1e-4."""
    model = make_frame_model()
    x = _signal(64 * 80)
    z = model.encode(x)
    y = model.decode(z)
    frames = block // 64 if backend == "onnxruntime" and block % 64 == 0 else None
    step = 1 if backend == "onnxruntime" else None
    enc = model.open_encoder_stream(2, step_frames=frames or step)
    dec = model.open_decoder_stream(2, step_frames=frames or step)
    z_stream, y_stream = run_streams(enc, dec, x, block)
    assert model.stream_delay == 96 - 64
    atol = 1e-4 if backend == "onnxruntime" else 2e-6
    assert_stream_contract(model, x, y, y_stream, atol=atol)
    torch.testing.assert_close(z_stream, z[..., : z_stream.shape[-1]], atol=atol, rtol=1e-4)
    if backend == "onnxruntime" and frames:
        assert enc.backend == dec.backend == "onnxruntime"  # the fused step ran, and matched


def test_encode_and_decode_lengths_and_pieces() -> None:
    model = make_frame_model()
    for t in (1, 63, 64, 65, 1000):
        z = model.encode(torch.zeros(1, t) + 0.1)
        assert z.shape == (1, 8, model.get_latent_size(t)) == (1, 8, -(-(t + 32) // 64))
        assert model.decode(z).shape[-1] == model.get_decoded_size(z.shape[-1]) >= t
        assert model.decode(z, full_length=t).shape == (1, t)
    # long audio goes through the streams in pieces: exactly the one-piece result
    x = _signal(64 * 50)
    pieces = FrameAutoencoder(dict(TINY), max_chunk_size=64 * 7)
    pieces.load_state_dict(model.state_dict())
    torch.testing.assert_close(pieces.encode(x), model.encode(x), atol=1e-7, rtol=1e-5)
    z = model.encode(x)
    torch.testing.assert_close(pieces.decode(z), model.decode(z), atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("gain", [0.5, 0.25, 2.0])
def test_encoder_and_decoder_are_homogeneous_by_construction(gain: float) -> None:
    model = make_frame_model()
    x = _signal(64 * 40)
    z = model.encode(x)
    torch.testing.assert_close(model.encode(gain * x), gain * z, atol=1e-6, rtol=1e-4)
    y = model.decode(z)
    torch.testing.assert_close(model.decode(gain * z), gain * y, atol=1e-7, rtol=1e-4)
    half_db = 20 * np.log10(float(model.decode(0.5 * z).square().mean().sqrt() / y.square().mean().sqrt()))
    assert abs(half_db + 6.0206) < 0.01


def test_save_and_load_keep_the_family_and_the_output(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_frame_model()
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["family"] == "framenet" and config["format_version"] == 2
    again = Autoencoder.from_pretrained(tmp_path / "m")
    assert isinstance(again, FrameAutoencoder) and again.config == model.config
    x = _signal(3000)
    torch.testing.assert_close(again.decode(again.encode(x)), model.decode(model.encode(x)))
    one = FrameAutoencoder.from_pretrained(model.save_pretrained(tmp_path / "one.safetensors"))
    torch.testing.assert_close(one.encode(x), model.encode(x))


def test_config_files_that_mix_families_or_come_from_a_newer_lincae_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_frame_model()
    folder = model.save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())

    def load_with(values: dict) -> None:  # type: ignore[type-arg]
        (folder / "config.json").write_text(json.dumps(values))
        Autoencoder.from_pretrained(folder)

    with pytest.raises(ValueError, match="field 'generator' belongs to family 'unet'"):
        load_with({**config, "generator": {"hop": 64}})
    with pytest.raises(ValueError, match="family 'framenet' needs format version 2, got 1"):
        load_with({**config, "format_version": 1})
    with pytest.raises(ValueError, match="format version 3 not supported"):
        load_with({**config, "format_version": 3})
    with pytest.raises(ValueError, match="unknown model family 'vocoder'"):
        load_with({**config, "family": "vocoder"})
    with pytest.raises(ValueError, match="synthesis must be in"):
        load_with({**config, "framenet": {**config["framenet"], "synthesis": 200}})
    with pytest.raises(ValueError, match="unknown"):
        load_with({**config, "framenet": {**config["framenet"], "blocks": 3}})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_fft", 300, "n_fft must be a multiple of hop"),
        ("synthesis", 64, "synthesis must be in"),
        ("analysis_fall", 200, "analysis_fall must be <="),
        ("channels", 0, "channels"),
    ],
)
def test_a_geometry_the_model_cannot_serve_names_the_field(field: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FrameNetConfig(**{**TINY, field: value})  # type: ignore[arg-type]


def test_the_engine_streams_it_and_a_half_gain_is_half_the_audio() -> None:
    model = make_frame_model()
    cfg = EngineConfig(sources=[1], stream_frames=2)
    mixer = make_mixer(model, cfg, device="cpu")
    assert isinstance(mixer, CachedMixer) and not mixer.notice
    assert mixer.latency_samples(128) == round(2 * 64 * (1 + cfg.compute_budget)) + 32 + 128
    x = _signal(6000, 1).numpy()
    outs = []
    for gain_db in (0.0, -6.0206):
        reg = ParameterRegistry(mixer_parameters(1))
        reg.set("source.1.gain_db", gain_db)
        outs.append(render(CachedMixer(model, cfg, reg, device="cpu"), [x], batch=3))
    # the render is the model's own stream from the first sample, aligned: the offline pass
    expected = model.decode(model.encode(torch.from_numpy(x)), full_length=6000).numpy()
    np.testing.assert_allclose(outs[0], expected, atol=2e-6, rtol=1e-4)
    np.testing.assert_allclose(outs[1], 0.5 * outs[0], atol=1e-6, rtol=1e-4)
    assert np.abs(expected).max() > 1e-3


def test_the_engine_sets_its_precision_without_touching_the_model() -> None:
    """``EngineConfig.precision`` decides how a FrameNet model computes in the engine (bfloat16 stays
    within 1 % of float32's energy), and the model's own setting is left as it was."""
    x = (0.1 * np.random.default_rng(0).standard_normal((1, 4000))).astype(np.float32)
    outs = {}
    for precision in ("fp32", "bf16"):
        model = make_frame_model()
        cfg = EngineConfig(sources=[1], precision=precision, mode="stream", stream_frames=2)
        outs[precision] = render(CachedMixer(model, cfg, device="cpu"), [x])
        assert not model.mixed_precision
    mixed = make_frame_model()
    mixed.mixed_precision = True
    assert mixed.network_dtype() == torch.bfloat16
    cfg = EngineConfig(sources=[1], precision="fp32", mode="stream", stream_frames=2)
    assert np.array_equal(render(CachedMixer(mixed, cfg, device="cpu"), [x]), outs["fp32"])
    assert not np.array_equal(outs["bf16"], outs["fp32"])
    err = np.sum((outs["bf16"] - outs["fp32"]) ** 2) / np.sum(outs["fp32"] ** 2)
    assert err < 1e-2, err


@pytest.mark.skipif(not onnx_available(), reason="needs ONNX Runtime (lincae[onnx])")
def test_auto_precision_streams_framenet_in_float32_where_onnx_runtime_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU that computes bfloat16 natively, ``precision: auto`` is bfloat16 for whole windows, but a
    FrameNet stream stays float32: its step then runs in ONNX Runtime, several times faster. A UNet keeps
    the common policy in both."""
    monkeypatch.setattr("lincae.models.precision.cpu_has_native_bf16", lambda: True)
    model = make_frame_model()
    stream = CachedMixer(
        model, EngineConfig(sources=[1], precision="auto", mode="stream", stream_frames=1), device="cpu"
    )
    windows = LatentMixer(model, EngineConfig(sources=[1], precision="auto", window_frames=40), device="cpu")
    assert (stream.precision, windows.precision) == ("fp32", "bf16")
    with stream.session():
        stream.process_many(0, np.zeros((1, 1, stream.window), np.float32))
    assert stream.encoder.backend == stream.decoder.backend == "onnxruntime"
    unet = make_tiny_model()
    assert unet.auto_dtype("cpu", streaming=True) == unet.auto_dtype("cpu") == torch.bfloat16
