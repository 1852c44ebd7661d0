"""Streamable models: the block-by-block pass through cached convolutions equals the offline pass."""

from __future__ import annotations

import pytest
import torch
from stream_contract import assert_stream_contract, run_streams

from lincae import Autoencoder
from lincae.models.blocks import FrameGroupNorm, StreamState, TimeConv2d, streaming
from lincae.models.config import GeneratorConfig
from lincae.models.streaming import StreamingEncoder, frame_noise

STREAM_GENERATOR = dict(
    base_channels=8,
    layers_list=[1, 1, 1],
    multipliers_list=[1, 2, 2],
    attention_list=[0, 0, 1],
    freq_downsample_list=[1, 1],
    layers_list_encoder=[1, 1, 1],
    attention_list_encoder=[0, 0, 1],
    bottleneck_base_channels=32,
    bottleneck_channels=16,
    num_bottleneck_layers=2,
    hop=64,
    cond_channels=16,
    init_as_zero=False,
    streamable=True,
)


def make_stream_model(lookahead: int = 0, seed: int = 0) -> Autoencoder:
    torch.manual_seed(seed)
    gen = dict(STREAM_GENERATOR, lookahead=lookahead)
    return Autoencoder({"hop_size": 64, "sample_rate": 44100}, gen, {}, name="tiny-stream", scale_factor=2.0).eval()


def _signal(samples: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    t = torch.arange(samples) / 44100
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
    return torch.stack([tone, 0.1 * torch.randn(samples, generator=g)])


@pytest.mark.parametrize("lookahead", [0, 1, 2])
@pytest.mark.parametrize("block", [64, 100, 333, 1024, 2048])
def test_stream_equals_offline_pass_delayed(lookahead: int, block: int) -> None:
    model = make_stream_model(lookahead)
    x = _signal(64 * 60)
    z = model.encode(x)
    y = model.decode(z, seed=7, diffusion_steps=2)
    enc, dec = model.open_encoder_stream(2), model.open_decoder_stream(2, seed=7, steps=2)
    z_stream, y_stream = run_streams(enc, dec, x, block)
    assert model.stream_delay == 3 * 64 + lookahead * 64
    assert_stream_contract(model, x, y, y_stream)
    # the stream's first frames lie in the silence before it; then they are the offline latents
    lead = model.stream_delay // 64
    n = z_stream.shape[-1] - lead
    assert n == z.shape[-1] - lookahead
    torch.testing.assert_close(z_stream[..., lead:], z[..., :n], atol=1e-5, rtol=1e-4)


def test_each_frame_depends_on_no_later_input_than_its_lookahead() -> None:
    model = make_stream_model(lookahead=1)
    x = _signal(64 * 40)[:1]
    z = model.encode(x)
    x2 = x.clone()
    x2[:, 64 * 30 :] += 0.5  # change the audio from frame 30's hop on
    z2 = model.encode(x2)
    # STFT frame j covers samples [64 j, 64 j + 256): frames up to 26 are untouched, and latent frame j sees
    # STFT frames up to j + 1 (lookahead 1): latents up to 25 are equal, 26 on differ.
    torch.testing.assert_close(z[..., :26], z2[..., :26])
    assert (z[..., 26:] - z2[..., 26:]).abs().max() > 1e-4


def test_frame_noise_depends_on_seed_step_and_frame_only() -> None:
    whole = frame_noise(3, 0, 10, 8)
    assert whole.shape == (1, 2, 8, 10)
    torch.testing.assert_close(frame_noise(3, 4, 3, 8), whole[..., 4:7])
    assert not torch.equal(frame_noise(4, 0, 10, 8), whole)
    assert not torch.equal(frame_noise(3, 0, 10, 8, step=1), whole)
    assert abs(float(whole.std()) - 1.0) < 0.3


def test_frame_group_norm_looks_at_one_frame() -> None:
    norm = FrameGroupNorm(2, 8)
    x = torch.randn(1, 8, 5, 6)
    y = norm(x)
    x2 = x.clone()
    x2[..., 3:] *= 10.0
    torch.testing.assert_close(norm(x2)[..., :3], y[..., :3])
    # each frame and group has zero mean and unit variance
    g = y.reshape(1, 2, 4 * 5, 6)
    torch.testing.assert_close(g.mean(2), torch.zeros(1, 2, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(g.var(2, unbiased=False), torch.ones(1, 2, 6), atol=1e-3, rtol=0)


def test_time_conv_streams_its_own_offline_output() -> None:
    conv = TimeConv2d(3, 4, 3, (1, 1))
    x = torch.randn(2, 3, 5, 12)
    offline = conv(x)
    state = StreamState()
    with streaming(state):
        parts = [conv(x[..., :2]), conv(x[..., 2:3]), conv(x[..., 3:12])]
    streamed = torch.cat(parts, -1)  # one frame behind: the layer looks one frame ahead
    torch.testing.assert_close(streamed, offline[..., :11])
    with streaming(StreamState()), pytest.raises(ValueError, match="first call needs more than 1 frame"):
        conv(x[..., :1])


def test_streamable_config_is_checked_and_saved(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="freq_downsample_list must be all 1"):
        GeneratorConfig(**dict(STREAM_GENERATOR, freq_downsample_list=[1, 0]))
    with pytest.raises(ValueError, match=r"lookahead must be an integer in \[0, 2\]"):
        GeneratorConfig(**dict(STREAM_GENERATOR, lookahead=3))
    with pytest.raises(ValueError, match="lookahead is an option of streamable models"):
        GeneratorConfig(**dict(STREAM_GENERATOR, streamable=False, lookahead=1))
    model = make_stream_model(lookahead=2)
    model.save_pretrained(tmp_path / "m")
    again = Autoencoder.from_pretrained(tmp_path / "m")
    assert again.streamable and again.generator.config.lookahead == 2
    x = _signal(4096)
    torch.testing.assert_close(again.encode(x), model.encode(x))


def test_streaming_refuses_a_model_that_cannot_stream(tiny_model: Autoencoder) -> None:
    assert not tiny_model.streamable
    with pytest.raises(ValueError, match="'tiny' is not streamable"):
        StreamingEncoder(tiny_model, 1)


def test_a_streamable_variant_starts_from_a_trained_models_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lincae.training.trainer import load_weights

    trained = Autoencoder({"hop_size": 64}, dict(STREAM_GENERATOR, streamable=False), {}, scale_factor=2.0)
    trained.save_pretrained(tmp_path / "trained")
    variant = make_stream_model(seed=5)
    load_weights(variant, tmp_path / "trained")
    for (name, a), b in zip(
        variant.generator.state_dict().items(), trained.generator.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    other = Autoencoder({"hop_size": 64}, dict(STREAM_GENERATOR, base_channels=4), {}, scale_factor=2.0)
    with pytest.raises(ValueError, match="its parameters differ from the config's"):
        load_weights(other, tmp_path / "trained")
