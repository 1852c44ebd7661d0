"""Our model reproduces the official linear-cae package on its own weights and outputs.

The fixtures in tests/fixtures/official were written by make_fixture.py with the official package.
"""

from pathlib import Path

import pytest
import torch

from lincae import Autoencoder

FIXTURES = Path(__file__).parent / "fixtures" / "official"
TOL = 1e-4


def load(name: str) -> tuple[Autoencoder, dict[str, torch.Tensor]]:
    io = torch.load(FIXTURES / name / "io.pt", weights_only=True)
    kwargs = {"max_batch_size": 2}
    if name == "custom":
        kwargs["scale_factor"] = float(io["scale_factor"])
    return Autoencoder.from_pretrained(FIXTURES / name, **kwargs), io


@pytest.fixture(params=["0a3afbec_weights", "custom"])
def official(request: pytest.FixtureRequest) -> tuple[Autoencoder, dict[str, torch.Tensor]]:
    return load(request.param)


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.detach() - b.detach()).abs().max())


def test_scale_factor_inferred_from_official_hash() -> None:
    model, io = load("0a3afbec_weights")
    assert model.name == "lin-cae"
    assert model.scale_factor == pytest.approx(33.0) == float(io["scale_factor"])


def test_encode_matches_official(official: tuple[Autoencoder, dict[str, torch.Tensor]]) -> None:
    model, io = official
    assert maxdiff(model.encode(io["audio"]), io["z"]) <= TOL
    # Features come out multiplied by the scale factor (33 for lin-cae): compare them at the network's scale,
    # where float32 rounding across CPUs (AVX2 or AVX-512 kernels) stays far below TOL.
    features = model.encode(io["audio"], extract_features=True)
    assert maxdiff(features / model.scale_factor, io["features"] / model.scale_factor) <= TOL


def test_decode_matches_official(official: tuple[Autoencoder, dict[str, torch.Tensor]]) -> None:
    model, io = official
    length = io["audio"].shape[-1]
    assert maxdiff(model.decode(io["z"], full_length=length, seed=123), io["decoded_seed123"]) <= TOL
    two = model.decode(io["z"], full_length=length, diffusion_steps=2, seed=321)
    assert maxdiff(two, io["decoded_2steps_seed321"]) <= TOL


def test_chunked_matches_official(official: tuple[Autoencoder, dict[str, torch.Tensor]]) -> None:
    model, io = official
    model.max_chunk_size = int(io["chunk"])
    z = model.encode(io["audio_long"])
    assert z.dim() == 4
    assert maxdiff(z, io["z_long"]) <= TOL
    y = model.decode(io["z_long"], full_length=io["audio_long"].shape[-1], seed=7)
    assert maxdiff(y, io["decoded_long_seed7"]) <= TOL


def test_state_dict_names_are_official() -> None:
    model, _ = load("0a3afbec_weights")
    official = torch.load(FIXTURES / "0a3afbec_weights" / "autoencoder_inference_model_last.pth", weights_only=True)
    assert set(model.state_dict()) == set(official)
