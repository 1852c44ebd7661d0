"""Inference in bounded memory: the UNet's lean no-grad pass, noise groups split from the network's batch,
the measured memory of a pass and the budget of ``lincae encode`` / ``lincae decode``.

Memory figures of whole commands are measured in ``benchmarks/encode_decode_memory.py`` (BENCHMARKS.md);
these tests check the mechanisms: the same values whatever the memory, and fewer items at once under a
tighter budget or with a larger model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_FRONTEND, TINY_GENERATOR, make_tiny_model

from lincae import Autoencoder
from lincae.cli import main
from lincae.io.audiofile import read_audio, write_audio
from lincae.io.latent_codec import decode_to_file, encode_to_file
from lincae.io.latents import load_latents
from lincae.models.blocks import UpsampleFreqConv
from lincae.models.memory import MB, RESERVE_BYTES, fit_budget, pass_bytes, peak_tensor_bytes


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


def _network_batches(module: torch.nn.Module) -> list[int]:
    """Batch sizes ``module`` is called with from now on (the latent upsampler: once per pass of a decode)."""
    sizes: list[int] = []
    module.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    return sizes


@pytest.mark.parametrize(("steps", "shared"), [(1, False), (1, True), (2, False), (2, True)])
def test_noise_groups_do_not_depend_on_the_network_batch(steps: int, shared: bool) -> None:
    """``decode(max_batch_size=1, noise_batch_size=4)`` is ``decode(max_batch_size=4)``, run one item at a time."""
    torch.manual_seed(5)
    z, chunked = torch.randn(5, 64, 12), torch.randn(2, 3, 64, 12)  # groups of 4 and 1; of 4 and 2
    reference = make_tiny_model(max_batch_size=4, diffusion_steps=steps, max_chunk_size=2048)
    model = make_tiny_model(max_batch_size=4, diffusion_steps=steps, max_chunk_size=2048)
    batches = _network_batches(model.generator.decoder)
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


# -- the measured memory of a pass, and the budget of lincae encode / decode ---------------------------------------


def test_tensor_peak_counts_the_tensors_alive_at_one_time() -> None:
    def work() -> torch.Tensor:
        a = torch.zeros(1 << 18)  # 1 MB
        b = a.view(512, 512)  # a view: no new storage
        c = torch.ones(1 << 19)  # 2 MB while a lives
        del a, b, c
        return torch.zeros(1 << 16)  # 0.25 MB, after the others were freed

    assert peak_tensor_bytes(work) == 3 * MB


def _wider_model(base_channels: int) -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(TINY_FRONTEND, {**TINY_GENERATOR, "base_channels": base_channels}, {}, name="w").eval()


@pytest.mark.parametrize("what", ["encode", "decode"])
def test_a_pass_is_measured_on_a_short_probe(what: str) -> None:
    """The 1 s probe, scaled, gives a longer pass's peak; a wider model's pass holds more."""
    model = make_tiny_model()
    n = 3 * model.sample_rate
    model.decode(model.encode(torch.zeros(1, 4096)), seed=0)  # whatever a first call sets up once
    if what == "encode":
        audio = torch.zeros(1, n)
        direct = peak_tensor_bytes(lambda: model.encode(audio))
    else:
        z = torch.zeros(1, 64, model.get_latent_size(n))
        direct = peak_tensor_bytes(lambda: model.decode(z, seed=0))
    estimate = pass_bytes(model, n, what)  # type: ignore[arg-type]
    assert direct <= estimate <= 1.15 * direct
    assert pass_bytes(_wider_model(16), n, what) > pass_bytes(_wider_model(8), n, what)  # type: ignore[arg-type]


def test_fewer_items_fit_a_tighter_budget_or_a_larger_model() -> None:
    small, large = _wider_model(8), _wider_model(16)
    n = 2 * small.sample_rate
    item = fit_budget(small, n, "decode", 1 << 40, most=64, resident=0).item_bytes
    budget = RESERVE_BYTES + 4 * item + 1
    assert fit_budget(small, n, "decode", budget, most=64, resident=0).items == 4
    assert fit_budget(small, n, "decode", budget, most=3, resident=0).items == 3  # at most `most`
    assert fit_budget(small, n, "decode", budget - 2 * item, most=64, resident=0).items == 2  # tighter budget
    assert fit_budget(large, n, "decode", budget, most=64, resident=0).items < 4  # larger model
    assert fit_budget(small, n, "decode", budget, most=64, resident=3 * item).items == 1  # what the process holds
    over = fit_budget(small, n, "decode", RESERVE_BYTES + item // 2, most=64, resident=0)
    assert over.items == 1 and not over.fits  # one at a time, over budget


@pytest.mark.parametrize("channels", [1, 2])
def test_a_tiny_budget_encodes_and_decodes_as_a_large_one(channels: int, tmp_path: Path) -> None:
    """A budget too small for even one chunk: one chunk through the model at a time, with a warning, and the
    latents and the audio of an unbounded run (to float rounding: the noise is drawn for groups of 4 either way)."""
    rng = np.random.default_rng(channels)
    src = write_audio(tmp_path / "in.wav", 0.1 * rng.standard_normal((channels, 44100), np.float32), 44100)
    model, free = make_tiny_model(max_batch_size=4), make_tiny_model(max_batch_size=4)
    encode_to_file(free, src, tmp_path / "free.latent", chunk_seconds=0.1)
    batches = _network_batches(model.generator.encoder)
    with pytest.warns(UserWarning, match="goes through alone, over budget"):
        encode_to_file(model, src, tmp_path / "bounded.latent", chunk_seconds=0.1, memory_mb=1)
    assert set(batches[1:]) == {1}  # (the first: the probe that measured the pass)
    a, b = load_latents(tmp_path / "free.latent"), load_latents(tmp_path / "bounded.latent")
    assert a.shape == b.shape and a.shape[1] > 4  # chunked, in more than one batch of 4
    torch.testing.assert_close(b.latents, a.latents, rtol=0, atol=1e-5)

    batches = _network_batches(model.generator.decoder)
    decode_to_file(free, tmp_path / "free.latent", tmp_path / "free.wav", seed=3)
    with pytest.warns(UserWarning, match="chunk length was chosen when encoding"):
        decode_to_file(model, tmp_path / "free.latent", tmp_path / "bounded.wav", seed=3, memory_mb=1)
    assert set(batches) == {1}
    expected, got = read_audio(tmp_path / "free.wav", 44100), read_audio(tmp_path / "bounded.wav", 44100)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_the_commands_take_a_memory_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = make_tiny_model().save_pretrained(tmp_path / "model")
    rng = np.random.default_rng(0)
    src = write_audio(tmp_path / "in.wav", 0.1 * rng.standard_normal((2, 22050), np.float32), 44100)
    common = ["--model", str(model_dir), "--memory-mb", "4000"]
    assert main(["encode", str(src), "-o", str(tmp_path / "a.latent"), "--chunk-seconds", "0.2", *common]) == 0
    assert main(["decode", str(tmp_path / "a.latent"), "-o", str(tmp_path / "a.wav"), *common]) == 0
    assert read_audio(tmp_path / "a.wav", 44100).shape == (2, 22050)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["decode", str(tmp_path / "a.latent"), "-o", str(tmp_path / "b.wav"), "--memory-mb", "100"])
    assert "--memory-mb: must be an integer in [200, 1048576]" in capsys.readouterr().err


def test_only_a_budget_asked_for_warns_when_one_chunk_is_over_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """This test process already holds more than 200 MB: a chunk is over any budget of 200 MB. Asked for,
    the command says so in one line; with the default budget it goes through quietly. The audio is the same
    (to float rounding)."""
    model_dir = make_tiny_model().save_pretrained(tmp_path / "model")
    rng = np.random.default_rng(1)
    src = write_audio(tmp_path / "in.wav", 0.1 * rng.standard_normal((1, 44100), np.float32), 44100)
    capsys.readouterr()
    outputs = []
    for name, extra in (("asked", ["--memory-mb", "200"]), ("default", [])):
        latent = tmp_path / f"{name}.latent"
        model = ["--model", str(model_dir), *extra]
        assert main(["encode", str(src), "-o", str(latent), "--chunk-seconds", "0.5", *model]) == 0
        assert main(["decode", str(latent), "-o", str(tmp_path / f"{name}.wav"), "--seed", "3", *model]) == 0
        warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
        if name == "default":
            assert warned == []
        else:
            assert [line.split(":")[0] for line in warned] == ["lincae encode", "lincae decode"], warned
            assert "over budget" in warned[0] and "budget of 200 MB" in warned[0]
        outputs.append(read_audio(tmp_path / f"{name}.wav", 44100))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)  # batched apart: float rounding only


def test_a_decode_in_pieces_holds_one_piece_of_activations() -> None:
    """The tensors alive at the peak: four items through the network at once against one at a time."""
    model = make_tiny_model(max_batch_size=4)
    z = torch.randn(4, 64, model.get_latent_size(2 * model.sample_rate), generator=torch.Generator().manual_seed(0))
    whole = peak_tensor_bytes(lambda: model.decode(z, generator=torch.Generator().manual_seed(1)))
    pieces = peak_tensor_bytes(
        lambda: model.decode(z, generator=torch.Generator().manual_seed(1), max_batch_size=1, noise_batch_size=4)
    )
    assert pieces < 0.4 * whole
