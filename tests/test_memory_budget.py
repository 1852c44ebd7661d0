"""Inference in bounded memory: the UNet's lean no-grad pass, noise groups split from the network's batch,
the measured memory of a pass and the budget of ``lincae encode`` / ``lincae decode``.

Memory figures of whole commands are measured in ``benchmarks/encode_decode_memory.py`` (BENCHMARKS.md);
these tests check the mechanisms: the same values whatever the memory, and fewer items at once under a
tighter budget or with a larger model.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_FRONTEND, TINY_GENERATOR, make_tiny_model

from lincae import Autoencoder
from lincae.models.blocks import UpsampleFreqConv


def _model_without_attention() -> Autoencoder:
    """The tiny model without attention (PyTorch's attention has a faster path of its own without
    autograd, with other rounding)."""
    torch.manual_seed(0)
    generator = {**TINY_GENERATOR, "attention_list": [0] * 5, "attention_list_encoder": [0] * 5}
    model = Autoencoder(TINY_FRONTEND, generator, {}, name="plain", scale_factor=2.0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _pyramid_and_noise(model: object, frames: int, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(batch, 64, frames, generator=g)
    cfg = model.generator.config  # type: ignore[attr-defined]
    x = torch.randn(batch, 2, 2 * cfg.hop, frames * 2**cfg.temporal_downsamples, generator=g)
    return z, x


def test_the_no_grad_pass_equals_the_autograd_pass_and_leaves_its_inputs() -> None:
    """Without autograd, blocks and the generator sum in place into maps they made: the same values, and
    neither the caller's input nor the pyramid changes (a last step may release the pyramid's levels)."""
    model = _model_without_attention()
    z, x = _pyramid_and_noise(model, frames=40)
    unet = model.generator
    with torch.enable_grad():
        pyramid = unet.decoder(z)
        expected = unet.forward_generator(None, x, 3.0, pyramid).detach()
        features = unet.encoder(x).detach()
    with torch.no_grad():
        lean_pyramid = unet.decoder(z)
        for a, b in zip(lean_pyramid, pyramid, strict=True):
            assert torch.equal(a, b.detach())
        kept = [p.clone() for p in lean_pyramid]
        x_before = x.clone()
        assert torch.equal(unet.forward_generator(None, x, 3.0, lean_pyramid), expected)
        assert torch.equal(x, x_before) and all(torch.equal(a, b) for a, b in zip(lean_pyramid, kept, strict=True))
        assert torch.equal(unet.forward_generator(None, x, 3.0, lean_pyramid, release_pyramid=True), expected)
        assert lean_pyramid == []  # released level by level
        assert torch.equal(unet.encoder(x), features)


def test_a_long_frequency_upsampling_runs_in_slices_with_the_same_values() -> None:
    """Without autograd, the ×4 frequency upsampling of a long map is made a slice of frames at a time."""
    torch.manual_seed(0)
    layer = UpsampleFreqConv(8, 4).eval()
    for layout in (torch.contiguous_format, torch.channels_last):
        layer = layer.to(memory_format=layout)
        x = torch.randn(2, 8, 16, 300).contiguous(memory_format=layout)  # 300 frames: five slices
        with torch.enable_grad():
            whole = layer(x).detach()
        with torch.no_grad():
            sliced = layer(x)
        torch.testing.assert_close(sliced, whole, rtol=0, atol=1e-6)
        assert sliced.is_contiguous(memory_format=layout)


# -- noise groups: drawn for max_batch_size items, or noise_batch_size, whatever the network's batch --------------


def _network_batches(model: Autoencoder) -> list[int]:
    """Batch sizes the latent upsampler (once per network pass of the decode) is called with, from now on."""
    sizes: list[int] = []
    model.generator.decoder.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    return sizes


@pytest.mark.parametrize(("steps", "shared"), [(1, False), (1, True), (2, False), (2, True)])
def test_noise_groups_do_not_depend_on_the_network_batch(steps: int, shared: bool) -> None:
    """``decode(max_batch_size=1, noise_batch_size=4)`` is ``decode(max_batch_size=4)``, run one item at a time."""
    torch.manual_seed(5)
    z, chunked = torch.randn(5, 64, 12), torch.randn(2, 3, 64, 12)  # groups of 4 and 1; of 4 and 2
    reference = make_tiny_model(max_batch_size=4, diffusion_steps=steps, max_chunk_size=2048)
    model = make_tiny_model(max_batch_size=4, diffusion_steps=steps, max_chunk_size=2048)
    batches = _network_batches(model)
    for lat, length in ((z, None), (chunked, 5000)):
        expected = reference.decode(lat, length, generator=torch.Generator().manual_seed(3), shared_noise=shared)
        got = model.decode(
            lat,
            length,
            generator=torch.Generator().manual_seed(3),
            shared_noise=shared,
            max_batch_size=1,
            noise_batch_size=4,
        )
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-7)  # the network's batch: float rounding only
    assert set(batches) == {1}
    if not shared:  # (shared noise restarts every group from the generator's state: groups do not matter)
        # The noise groups are what make the output: a decode that draws for groups of one differs.
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        other = model.decode(z, generator=g1, max_batch_size=1)
        assert (other - reference.decode(z, generator=g2)).abs().max() > 1e-4
