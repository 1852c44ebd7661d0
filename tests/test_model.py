"""Autoencoder API: shapes, chunking, saving and loading, bad input."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_FRONTEND, TINY_GENERATOR, make_tiny_model

from lincae import Autoencoder
from lincae.models import ModelDownloadError, ModelNotFoundError, fold_channels, unfold_channels
from lincae.models.autoencoder import overlap_add_crossfade
from lincae.models.registry import OFFICIAL_HASHES, OFFICIAL_REPO

FIXTURE = Path(__file__).parent / "fixtures" / "official" / "0a3afbec_weights"


# ----------------------------------------------------------------------------- shapes
def test_shapes_and_sizes(tiny_model: Autoencoder, audio: torch.Tensor) -> None:
    z = tiny_model.encode(audio)
    assert z.shape == (2, 64, tiny_model.get_latent_size(audio.shape[-1]))
    assert tiny_model.hop_length == 32 * 2**3
    assert tiny_model.sample_rate == 44100
    y = tiny_model.decode(z, full_length=audio.shape[-1], seed=0)
    assert y.shape == audio.shape and y.dtype == torch.float32
    assert tiny_model.decode(z, seed=0).shape[-1] == tiny_model.get_decoded_size(z.shape[-1])


def test_one_dimensional_audio_is_a_batch_of_one(tiny_model: Autoencoder, audio: torch.Tensor) -> None:
    assert torch.equal(tiny_model.encode(audio[0]), tiny_model.encode(audio[:1]))


def test_decoding_is_reproducible_with_a_seed(tiny_model: Autoencoder, audio: torch.Tensor) -> None:
    z = tiny_model.encode(audio)
    a = tiny_model.decode(z, full_length=8192, seed=3)
    b = tiny_model.decode(z, full_length=8192, generator=torch.Generator().manual_seed(3))
    c = tiny_model.decode(z, full_length=8192, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_max_batch_size_splits_without_changing_results(audio: torch.Tensor) -> None:
    whole = make_tiny_model(max_batch_size=8)
    split = make_tiny_model(max_batch_size=1)
    x = torch.cat([audio, audio.flip(-1)])
    assert torch.allclose(whole.encode(x), split.encode(x), atol=1e-5)


def test_stereo_helpers_encode_each_channel_as_mono(tiny_model: Autoencoder, audio: torch.Tensor) -> None:
    stereo = audio.unsqueeze(0)  # [1, 2, T]
    folded, channels = fold_channels(stereo)
    assert folded.shape == (2, 8192) and channels == 2
    assert torch.equal(unfold_channels(folded, 2), stereo)
    z = tiny_model.encode_channels(stereo)
    assert z.shape[:3] == (1, 2, 64)
    assert torch.allclose(z[0, 1], tiny_model.encode(audio[1:2])[0], atol=1e-6)
    y = tiny_model.decode_channels(z, full_length=8192, seed=0)
    assert y.shape == (1, 2, 8192)


def test_chunked_encode_is_the_encoding_of_each_window() -> None:
    model = make_tiny_model(max_batch_size=4)
    model.max_chunk_size = 16384
    x = torch.randn(1, 40000) * 0.1
    z = model.encode(x)
    step = 16384 - int(16384 * 0.25)
    assert z.dim() == 4 and z.shape[1] == 3
    padded = torch.nn.functional.pad(x, (0, 2 * step + 16384 - 40000))
    for i in range(3):
        window = padded[:, i * step : i * step + 16384]
        assert torch.allclose(z[:, i], model.encode(window), atol=1e-5)


@pytest.mark.parametrize(("chunk", "overlap"), [(1000, 0.25), (1024, 0.5), (777, 0.0)])
def test_crossfaded_overlap_add_rebuilds_a_signal_from_its_windows(chunk: int, overlap: float) -> None:
    step = chunk - int(chunk * overlap)
    n = 5
    signal = torch.randn(2, step * (n - 1) + chunk)
    windows = signal.unfold(-1, chunk, step)  # [2, n, chunk]
    rebuilt = overlap_add_crossfade(windows, step, chunk, signal.shape[-1] - 10)
    assert torch.allclose(rebuilt, signal[:, :-10], atol=1e-6)


def test_chunked_decode_covers_the_whole_signal() -> None:
    model = make_tiny_model(max_batch_size=4)
    x = torch.randn(1, 40000) * 0.1
    whole = model.decode(model.encode(x), full_length=x.shape[-1], seed=0)
    model.max_chunk_size = 16384
    chunked = model.decode(model.encode(x), full_length=x.shape[-1], seed=0)
    assert chunked.shape == whole.shape == x.shape
    # No gap or doubled region: every 1000-sample stretch keeps energy within 10 dB of the unchunked decode.
    e_chunked = chunked[0, :39000].reshape(-1, 1000).pow(2).mean(-1)
    e_whole = whole[0, :39000].reshape(-1, 1000).pow(2).mean(-1)
    assert torch.all((e_chunked / e_whole).log10().abs() < 1.0)


def test_chunked_latents_need_full_length(tiny_model: Autoencoder) -> None:
    tiny_model.max_chunk_size = 8192
    z = tiny_model.encode(torch.zeros(1, 20000))
    with pytest.raises(ValueError, match=r"full_length"):
        tiny_model.decode(z)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(1, 2, 8192), "multichannel audio: use encode_channels"),
        (torch.zeros(1, 1, 1, 8192), r"must be \[B, T\]"),
        (torch.zeros(1, 8192, dtype=torch.int16), "floating point"),
        (torch.zeros(1, 0), "empty"),
        (torch.zeros(1, 100), "shorter than one frame"),
        (torch.zeros(1, 8192).index_fill(1, torch.tensor([100]), float("nan")), "1 NaN or Inf"),
        (torch.tensor([[float("inf")] * 8192]), "8192 NaN or Inf"),
    ],
)
def test_bad_audio_is_refused(tiny_model: Autoencoder, bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model.encode(bad)


def test_audio_must_be_a_tensor(tiny_model: Autoencoder) -> None:
    with pytest.raises(ValueError, match=r"torch.Tensor"):
        tiny_model.encode([0.0] * 8192)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(1, 32, 4), "32 channels, this model uses 64"),
        (torch.zeros(64, 4), r"\[B, C, Z\]"),
        (torch.zeros(1, 64, 4, dtype=torch.long), "floating-point"),
        (torch.full((1, 64, 4), float("nan")), "NaN or Inf"),
        (torch.zeros(1, 64, 0), "empty"),
    ],
)
def test_bad_latents_are_refused(tiny_model: Autoencoder, bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model.decode(bad)


def test_bad_configs_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"unknown GeneratorConfig key.*base_chanels"):
        Autoencoder(TINY_FRONTEND, {**TINY_GENERATOR, "base_chanels": 8}, {})
    with pytest.raises(ValueError, match=r"freq_downsample_list needs 4"):
        Autoencoder(TINY_FRONTEND, {**TINY_GENERATOR, "freq_downsample_list": [1, 0]}, {})
    with pytest.raises(ValueError, match=r"hop_size 64 differs from generator hop 32"):
        Autoencoder({"hop_size": 64}, TINY_GENERATOR, {})


# ----------------------------------------------------------------------------- save / load
def test_save_load_round_trip_gives_identical_outputs(
    tmp_path: Path, tiny_model: Autoencoder, audio: torch.Tensor
) -> None:
    tiny_model.max_chunk_size = 20000
    out = tiny_model.save_pretrained(tmp_path / "m", metadata={"note": "test"})
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "lincae.autoencoder" and config["format_version"] == 1
    assert config["generator"]["base_channels"] == 8 and config["scale_factor"] == 2.0
    assert config["inference"]["max_chunk_size"] == 20000 and config["metadata"] == {"note": "test"}
    assert not list(out.glob("*.tmp"))
    again = Autoencoder.from_pretrained(out)
    assert again.max_chunk_size == 20000 and again.scale_factor == 2.0
    z = tiny_model.encode(audio)
    assert torch.equal(again.encode(audio), z)
    assert torch.equal(again.decode(z, full_length=8192, seed=1), tiny_model.decode(z, full_length=8192, seed=1))


def test_single_file_safetensors_round_trip(tmp_path: Path, tiny_model: Autoencoder, audio: torch.Tensor) -> None:
    path = tiny_model.save_pretrained(tmp_path / "tiny.safetensors")
    assert path.is_file()
    assert torch.equal(Autoencoder.from_pretrained(path).encode(audio), tiny_model.encode(audio))


def test_newer_format_version_is_refused(tmp_path: Path, tiny_model: Autoencoder) -> None:
    out = tiny_model.save_pretrained(tmp_path / "m")
    config = json.loads((out / "config.json").read_text())
    config["format_version"] = 99
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"format version 99 not supported"):
        Autoencoder.from_pretrained(out)


def test_official_folder_loads_from_a_file_path_and_a_snapshot_folder(tmp_path: Path) -> None:
    by_file = Autoencoder.from_pretrained(FIXTURE / "autoencoder_inference_model_last.pth")
    snapshot = tmp_path / "snapshot"
    shutil.copytree(FIXTURE, snapshot / FIXTURE.name)
    by_snapshot = Autoencoder.from_pretrained(snapshot)
    x = torch.randn(1, 8192) * 0.1
    assert by_file.name == by_snapshot.name == "lin-cae"
    assert torch.equal(by_file.encode(x), by_snapshot.encode(x))
    renamed = shutil.copytree(FIXTURE, tmp_path / "renamed")
    with pytest.warns(UserWarning, match=r"no latent scale factor known for 'renamed'; using 1\.0"):
        assert Autoencoder.from_pretrained(renamed).scale_factor == 1.0
    assert Autoencoder.from_pretrained(renamed, scale_factor=33.0).scale_factor == 33.0


def test_unknown_id_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'lin-cea'.*lin-cae"):
        Autoencoder.from_pretrained("lin-cea")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"holds no model"):
        Autoencoder.from_pretrained(tmp_path / "empty")
    broken = tmp_path / "broken" / FIXTURE.name
    shutil.copytree(FIXTURE, broken)
    (broken / "generator_kwargs_last.yaml").unlink()
    with pytest.raises(ModelNotFoundError, match=r"missing generator_kwargs_last.yaml"):
        Autoencoder.from_pretrained(broken)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoints_are_refused(tmp_path: Path, damage: str, tiny_model: Autoencoder) -> None:
    official = tmp_path / "official" / FIXTURE.name
    shutil.copytree(FIXTURE, official)
    pth = official / "autoencoder_inference_model_last.pth"
    ours = tiny_model.save_pretrained(tmp_path / "ours") / "model.safetensors"
    for path in (pth, ours):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00garbage" * 100)
    with pytest.raises(ValueError, match=r"cannot read checkpoint"):
        Autoencoder.from_pretrained(official)
    with pytest.raises(ValueError, match=r"corrupt or truncated safetensors"):
        Autoencoder.from_pretrained(ours.parent)


def test_mismatched_shapes_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "official" / FIXTURE.name
    shutil.copytree(FIXTURE, folder)
    gen = yaml.safe_load((folder / "generator_kwargs_last.yaml").read_text())
    gen["bottleneck_base_channels"] = 64
    (folder / "generator_kwargs_last.yaml").write_text(yaml.safe_dump(gen))
    with pytest.raises(ValueError, match=r"shape mismatch: generator\.encoder\.bottleneck_layers\.0\.weight"):
        Autoencoder.from_pretrained(folder)


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.makedirs, (self.marker, 0o755))


def test_checkpoints_never_execute_code(tmp_path: Path) -> None:
    folder = tmp_path / "evil" / FIXTURE.name
    shutil.copytree(FIXTURE, folder)
    marker = tmp_path / "code-ran"
    state = torch.load(FIXTURE / "autoencoder_inference_model_last.pth", weights_only=True)
    state["payload"] = _Payload(str(marker))  # type: ignore[assignment]
    torch.save(state, folder / "autoencoder_inference_model_last.pth", pickle_module=pickle)
    with pytest.raises(ValueError, match=r"never code"):
        Autoencoder.from_pretrained(folder)
    assert not marker.exists()


# ----------------------------------------------------------------------------- the Hub
def _hub_cache(root: Path, model_id: str) -> Path:
    """A Hugging Face cache holding one official model, laid out as huggingface_hub writes it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + OFFICIAL_REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    target = repo / "snapshots" / commit / f"{OFFICIAL_HASHES[model_id]}_weights"
    target.mkdir(parents=True)
    for f in FIXTURE.iterdir():
        if f.name != "io.pt":
            shutil.copy(f, target / f.name)
    return root


_HUB_SCRIPT = """
import sys, torch
from lincae import Autoencoder
from lincae.models import ModelDownloadError
try:
    m = Autoencoder.from_pretrained(sys.argv[1])
except ModelDownloadError as e:
    print("ERROR", e)
    sys.exit(3)
print("OK", m.name, m.scale_factor, tuple(m.encode(torch.zeros(1, 8192)).shape))
"""


def _run_hub(model_id: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent / "hf")}
    return subprocess.run(
        [sys.executable, "-c", _HUB_SCRIPT, model_id], env=env, capture_output=True, text=True, timeout=120
    )


def test_official_id_downloads_through_the_hub_cache(tmp_path: Path) -> None:
    done = _run_hub("lin-cae", _hub_cache(tmp_path / "cache", "lin-cae"))
    assert done.returncode == 0, done.stderr
    assert "OK lin-cae 33.0 (1, 64, 32)" in done.stdout


def test_official_id_without_network_explains_local_loading(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    done = _run_hub("m2l", tmp_path / "cache")
    assert done.returncode == 3, done.stderr
    assert "could not fetch official model 'm2l'" in done.stdout
    assert "from_pretrained('/path/to/1511f18a_weights')" in done.stdout


def test_load_error_is_a_model_download_error_type() -> None:
    assert issubclass(ModelDownloadError, OSError)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (torch.nn.Tanh(), "tanh"),
        (torch.nn.Identity(), "identity"),
        (None, "identity"),
        ("Tanh()", "tanh"),
        ("tanh", "tanh"),
    ],
)
def test_official_spellings_of_the_bottleneck_activation(value: object, stored: str) -> None:
    from lincae.models.config import GeneratorConfig

    assert GeneratorConfig(activation_bottleneck=value).activation_bottleneck == stored  # type: ignore[arg-type]


def test_unknown_bottleneck_activation_is_refused() -> None:
    from lincae.models.config import GeneratorConfig

    with pytest.raises(ValueError, match="activation_bottleneck must be 'tanh' or 'identity'"):
        GeneratorConfig(activation_bottleneck=torch.nn.Sigmoid())  # type: ignore[arg-type]
