"""Inference speed settings leave outputs unchanged: channels-last weights, accurate group norm, allocator."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_model

from lincae.models.blocks import Attention, GroupNorm, ResBlock, group_norm
from lincae.models.runtime import is_channels_last, keep_freed_memory, prepare_for_inference, use_channels_last

CL = torch.channels_last


def _is_cl(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=CL) and not x.is_contiguous()


def test_group_norm_is_accurate_on_large_channels_last_inputs() -> None:
    # 200 x 300 positions per channel: above the size where PyTorch's channels-last kernel drifts.
    g = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(2, 16, 200, 300, generator=g) + 1.5
    norm = group_norm(16)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(16, generator=g))
        norm.bias.copy_(torch.randn(16, generator=g))
        ref = F.group_norm(x.double(), 4, norm.weight.double(), norm.bias.double())
        out = norm(x.contiguous(memory_format=CL))
    assert isinstance(norm, GroupNorm) and _is_cl(out)
    assert (out.double() - ref).abs().max() < 1e-5
    # small inputs take nn.GroupNorm's own path and agree with it exactly
    small = x[:, :, :20, :30].contiguous(memory_format=CL)
    with torch.no_grad():
        assert torch.equal(norm(small), F.group_norm(small, 4, norm.weight, norm.bias))


@pytest.mark.parametrize("shape", [(16, 64, 32, 24), (2, 64, 8, 12), (3, 16, 20, 30)])
def test_group_norm_in_bfloat16_on_small_channels_last_maps_matches_float64(shape: tuple[int, ...]) -> None:
    # The small-frequency levels of the UNet in bfloat16: normalised by GroupNorm's own two reductions.
    g = torch.Generator().manual_seed(1)
    c = shape[1]
    x = (2.0 * torch.randn(*shape, generator=g) + 3.0).to(torch.bfloat16).contiguous(memory_format=CL)
    norm = group_norm(c)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(c, generator=g))
        norm.bias.copy_(torch.randn(c, generator=g))
        ref = F.group_norm(x.double(), norm.num_groups, norm.weight.double(), norm.bias.double())
        out = norm(x)
        native = F.group_norm(x, norm.num_groups, norm.weight, norm.bias)
    assert out.dtype == torch.bfloat16 and _is_cl(out)
    err = (out.double() - ref).abs().max().item()
    # within bfloat16 rounding of the output (8 bits: ~0.4 % of |y| <= ~12), as PyTorch's own kernel
    assert err < 0.08, err
    assert err < 2.0 * (native.double() - ref).abs().max().item() + 1e-3


def test_group_norm_of_large_float16_values_does_not_overflow() -> None:
    # Squares of float16 values above ~256 overflow; the moments must not.
    g = torch.Generator().manual_seed(4)
    x = (50.0 * torch.randn(1, 16, 200, 100, generator=g) + 300.0).half().contiguous(memory_format=CL)
    norm = group_norm(16)
    with torch.no_grad():
        out = norm(x)
        ref = F.group_norm(x.double(), 4, norm.weight.double(), norm.bias.double())
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert (out.double() - ref).abs().max() < 0.02


def test_group_norm_state_dict_is_that_of_nn_group_norm() -> None:
    ours, theirs = group_norm(32), torch.nn.GroupNorm(8, 32)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    ours.load_state_dict(theirs.state_dict())


def test_attention_keeps_channels_last() -> None:
    block = ResBlock(16, 16, attention=True, use_2d=True, init_as_zero=False).eval()
    x = torch.randn(1, 16, 8, 12)
    with torch.no_grad():
        ref = block(x)
        use_channels_last(block)
        out = block(x.contiguous(memory_format=CL))
    assert _is_cl(out)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert isinstance(Attention(16).norm, GroupNorm)


def test_resblock_with_one_embedding_for_the_batch_equals_one_per_item() -> None:
    # A [1, C] embedding is folded into conv1's bias; it must equal adding it to every item.
    block = ResBlock(16, 32, cond_channels=8, use_2d=True, init_as_zero=False).eval()
    g = torch.Generator().manual_seed(2)
    x, emb = torch.randn(3, 16, 10, 12, generator=g), torch.randn(1, 8, generator=g)
    with torch.no_grad():
        shared, per_item = block(x, emb), block(x, emb.expand(3, 8))
        other = block(x, torch.randn(1, 8, generator=g))
    torch.testing.assert_close(shared, per_item, atol=1e-5, rtol=1e-5)
    assert (other - per_item).abs().max() > 1e-3  # the embedding matters


def test_decoder_step_with_a_scalar_noise_level_equals_one_level_per_item(tiny_model) -> None:
    unet = tiny_model.generator
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, tiny_model.latent_channels, 4, generator=g)
    pyramid = unet.decoder(z)
    frames = 4 * 2**unet.config.temporal_downsamples
    x = torch.randn(2, 2, 2 * unet.config.hop, frames, generator=g)
    with torch.no_grad():
        scalar = unet.forward_generator(None, x, 5.0, pyramid)
        per_item = unet.forward_generator(None, x, torch.full((2,), 5.0), pyramid)
        other = unet.forward_generator(None, x, torch.tensor([5.0, 0.5]), pyramid)
    torch.testing.assert_close(scalar, per_item, atol=1e-5, rtol=1e-5)
    assert (other[1] - per_item[1]).abs().max() > 1e-3


def test_channels_last_model_gives_the_same_latents_and_audio(audio: torch.Tensor) -> None:
    plain = make_tiny_model()
    fast = prepare_for_inference(make_tiny_model())
    assert is_channels_last(fast) and not is_channels_last(plain)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    assert all(a.shape == b.shape for a, b in zip(fast.state_dict().values(), plain.state_dict().values(), strict=True))
    z_ref, z = plain.encode(audio), fast.encode(audio)
    assert (z - z_ref).abs().max() < 1e-4
    y_ref, y = plain.decode(z_ref, seed=3), fast.decode(z_ref, seed=3)
    assert y.shape == y_ref.shape and (y - y_ref).abs().max() < 1e-4
    assert (y_ref - plain.decode(z_ref, seed=4)).abs().max() > 1e-3  # the comparison can fail


def test_channels_last_model_saves_and_reloads(tmp_path, audio: torch.Tensor) -> None:
    from lincae import Autoencoder

    fast = use_channels_last(make_tiny_model())
    fast.save_pretrained(tmp_path / "m")
    again = Autoencoder.from_pretrained(tmp_path / "m")
    assert not is_channels_last(again)
    torch.testing.assert_close(again.encode(audio), make_tiny_model().encode(audio), atol=0, rtol=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_applies_once() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
    x = torch.ones(4_000_000)  # 16 MB: above glibc's default mmap threshold
    del x
    assert torch.ones(4_000_000).sum() == 4_000_000


def test_cuda_float32_policy_flags() -> None:
    """float32 on a GPU means float32: TF32 only when asked (the flags exist on CPU builds too)."""
    from lincae.models.runtime import set_cuda_fp32

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        set_cuda_fp32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        set_cuda_fp32()
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
