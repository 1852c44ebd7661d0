"""Hostile values: each is refused where it enters, with an error naming the field and the allowed range.

Command-line cases run the real entry point (:func:`lincae.cli.main`) and expect exit code 2 with one line
on stderr and no traceback; loader cases build the configuration objects and read the files directly.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_FRONTEND, TINY_GENERATOR

from lincae.cli import main, parse_gain
from lincae.config import MAX_CONFIG_BYTES, parse_json, parse_yaml
from lincae.engine.config import EngineConfig
from lincae.engine.effects.parse import load_chain_file
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.models.config import DiffusionConfig, FrontendConfig, GeneratorConfig
from lincae.models.registry import shipped_models
from lincae.presets import Preset, PresetError
from lincae.training.config import TrainConfig

HUGE = str(10**30)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and the one stderr line of ``lincae ARGV`` (asserts there is one line and no traceback)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return code, lines[0]


@pytest.fixture
def wav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One second of noise; the working folder is ``tmp_path`` so that nothing lands in the repository."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "in.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(44100)).astype(np.float32), 44100)
    return path


# --------------------------------------------------------------------------------------------------
# Command-line options

CLI_CASES: list[tuple[list[str], str]] = [
    (["presets", "--block", "-5"], "argument --block: must be an integer in [0, 4096], got '-5'"),
    (["presets", "--block", HUGE], "argument --block: must be an integer in [0, 4096]"),
    (["render", "{wav}", "-o", "o.wav", "--rate", "0"], "argument --rate: must be an integer in [8000, 384000]"),
    (["render", "{wav}", "-o", "o.wav", "--rate", "-44100"], "argument --rate: must be an integer in [8000, 384000]"),
    (["render", "{wav}", "-o", "o.wav", "--rate", HUGE], "argument --rate: must be an integer in [8000, 384000]"),
    (["decode", "x.latent", "-o", "o.wav", "--rate", "0"], "argument --rate: must be an integer in [8000, 384000]"),
    (["live", "--rate", "0"], "argument --rate: must be an integer in [8000, 384000], got '0'"),
    (["live", "--block", "100000"], "argument --block: must be an integer in [0, 4096], got '100000'"),
    (["live", "--threads", "0"], "argument --threads: must be an integer in [1, 1024], got '0'"),
    (["live", "--duration", "nan"], "argument --duration: must be a number > 0 and <= 1000000000, got 'nan'"),
    (["live", "--duration", "-1"], "argument --duration: must be a number > 0"),
    (["live", "--outputs", "1,x"], "argument --outputs: must be channel numbers in [1, 1024] like '1,2', got '1,x'"),
    (["live", "--outputs", "0"], "argument --outputs: must be channel numbers in [1, 1024]"),
    (["demo", "--seconds", "nan"], "argument --seconds: must be a number > 1 and <= 600, got 'nan'"),
    (["demo", "--seconds", "1e9"], "argument --seconds: must be a number > 1 and <= 600"),
    (["demo", "--seed", str(2**64)], "argument --seed: must be an integer in [0, 4294967295]"),
    (["decode", "x.latent", "-o", "o.wav", "--seed", "-1"], "argument --seed: must be an integer in [0, 4294967295]"),
    (["encode", "{wav}", "-o", "x.latent", "--chunk-seconds", "0"], "argument --chunk-seconds: must be a number > 0.1"),
    (["encode", "{wav}", "-o", "x.latent", "--chunk-seconds", "inf"], "argument --chunk-seconds: must be a number"),
    (["encode", "{wav}", "-o", "x.latent", "--batch", "0"], "argument --batch: must be an integer in [1, 1024]"),
    (["encode", "{wav}", "-o", "x.latent", "--batch", HUGE], "argument --batch: must be an integer in [1, 1024]"),
    (["dataset", "synth", "--out", "d", "--hours", "inf"], "argument --hours: must be a number > 0 and <= 1000"),
    (["dataset", "synth", "--out", "d", "--hours", "0"], "argument --hours: must be a number > 0 and <= 1000"),
    (["dataset", "synth", "--out", "d", "--piece-seconds", "0"], "argument --piece-seconds: must be a number > 1"),
    (["dataset", "synth", "--out", "d", "--workers", "0"], "argument --workers: must be an integer in [1, 256]"),
    (
        ["dataset", "synth", "--out", "d", "--seed", str(2**64)],
        "argument --seed: must be an integer in [0, 4294967295]",
    ),
    (["eval", "m", "--data", "d", "--pieces", "0"], "argument --pieces: must be an integer in [1, 1000000]"),
    (["eval", "m", "--data", "d", "--seconds", "nan"], "argument --seconds: must be a number > 0.1 and <= 600"),
    (["eval", "m", "--data", "d", "--batch", "-3"], "argument --batch: must be an integer in [1, 1024]"),
    (["train", "--config", "c", "--data", "d", "--out", "r", "--threads", "0"], "argument --threads: must be an"),
    (["train", "--config", "c", "--data", "d", "--out", "r", "--until", "0"], "argument --until: must be an integer"),
    (["train", "--config", "c", "--data", "d", "--out", "r", "--minutes", "nan"], "argument --minutes: must be a"),
    (["train", "--config", "c", "--data", "d", "--out", "r", "--seed", str(2**64)], "argument --seed: must be an"),
    (["render", "{wav}", "-o", "o.wav", "--gain", "in=nan"], "--gain 'in=nan': 'nan' is not a finite number"),
    (["render", "{wav}", "-o", "o.wav", "--gain", "1=-infdB"], "--gain '1=-infdB': '-infdB' is not a finite number"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_refuses_hostile_options(
    argv: list[str], message: str, wav: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = run_cli([a.replace("{wav}", str(wav)) for a in argv], capsys)
    assert code == 2
    assert line.startswith(f"lincae {argv[0]}")
    assert message in line


def test_gain_that_is_not_a_number_is_not_silence() -> None:
    with pytest.raises(ValueError, match=r"--gain '2=nan': 'nan' is not a finite number"):
        parse_gain("2=nan", ["a", "b"])
    assert parse_gain("2=0", ["a", "b"]) == (2, -60.0, False)  # a factor of 0 still means silence


# --------------------------------------------------------------------------------------------------
# Files given to commands: presets, chains, training configurations, model folders


def _preset(**fields: Any) -> dict[str, Any]:
    return {"format": "lincae.preset", "schema_version": 1, **fields}


FILE_CASES: list[tuple[str, str, str]] = [
    ("preset", json.dumps(_preset(engine={"window_frames": 10**9})), "engine.window_frames: must be an integer in"),
    ("preset", json.dumps(_preset(engine={"sources": [1] * 500})), "engine.sources: must be a list of 1 to 32"),
    ("preset", json.dumps(_preset(engine={"seed": 2**70})), "engine.seed: must be an integer in [0, 4294967295]"),
    ("preset", "[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    ("chain", "[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    ("train", "steps: ten\n", "steps must be an integer in [1, 1000000000], got 'ten'"),
    ("train", f"seed: {2**70}\n", "seed must be an integer in [0, 4294967295]"),
    ("train", "data: {batch_size: 100000000}\n", "data.batch_size must be an integer in [2, 4096]"),
    ("train", "optim: {lr: .nan}\n", "optim.lr must be a finite number in [0, 10], got nan"),
    ("train", "model: {frontend: {hop_size: 0}}\n", "FrontendConfig: hop_size must be an integer in [1, 8192]"),
    ("train", "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 32 levels"),
    (
        "train",
        "steps: !!python/object/apply:os.system [echo ran]\n",
        "not valid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system' (line 1, column 8)",
    ),
    ("train", "steps: [1, 2\n", "not valid YAML: while parsing a flow sequence: expected ',' or ']'"),
    ("model", '{"scale_factor": 0}', "scale_factor must be a finite number > 0"),
    ("model", '{"scale_factor": NaN}', "scale_factor must be a finite number > 0"),
    ("model", '{"generator": {"base_channels": 1000000}}', "base_channels must be an integer in [1, 1024]"),
    ("model", '{"inference": {"max_batch_size": 1000000000}}', "max_batch_size must be an integer in [1, 4096]"),
]


def _write_case(kind: str, text: str, tmp_path: Path) -> list[str]:
    """Write the hostile file for ``kind``; the command that reads it."""
    if kind == "preset":
        (tmp_path / "p.json").write_text(text)
        return ["render", "in.wav", "-o", "o.wav", "--preset", str(tmp_path / "p.json")]
    if kind == "chain":
        (tmp_path / "c.json").write_text(text)
        return ["render", "in.wav", "-o", "o.wav", "--post", str(tmp_path / "c.json")]
    if kind == "train":
        (tmp_path / "c.yaml").write_text(text)
        return ["train", "--config", str(tmp_path / "c.yaml"), "--data", str(tmp_path), "--out", str(tmp_path / "r")]
    folder = tmp_path / "model"
    shutil.copytree(shipped_models()["default"], folder)
    config = json.loads((folder / "config.json").read_text())
    for key, value in json.loads(text).items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    (folder / "config.json").write_text(json.dumps(config))
    return ["info", "--model", str(folder)]


@pytest.mark.parametrize(("kind", "text", "message"), FILE_CASES, ids=[f"{k}-{m[:30]}" for k, _, m in FILE_CASES])
def test_commands_refuse_hostile_files(
    kind: str, text: str, message: str, wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = run_cli(_write_case(kind, text, tmp_path), capsys)
    assert code == 2
    assert message in line


def test_preset_file_too_large_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_preset(description="x" * (MAX_CONFIG_BYTES + 10))))
    with pytest.raises(PresetError, match=r"big\.json: larger than 4 MiB, too large for a configuration file"):
        Preset.load(path)


def test_chain_file_deeply_nested_is_an_error_not_a_recursion(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"chain": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(ValueError, match=r"c\.json: nested deeper than 32 levels"):
        load_chain_file(path)


def test_yaml_alias_bomb_is_refused() -> None:
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    with pytest.raises(ValueError, match=r"bomb\.yaml: more than 100000 entries"):
        parse_yaml("\n".join(lines), "bomb.yaml")


def test_json_with_an_endless_integer_names_the_file() -> None:
    with pytest.raises(ValueError, match=r"p\.json: not valid JSON: Exceeds the limit"):
        parse_json('{"seed": ' + "9" * 5000 + "}", "p.json")


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"minimum": "0.5"}, "minimum must be a finite number, got '0.5'"),
        ({"maximum": math.nan}, "maximum must be a finite number, got nan"),
        ({"soft_takeover": "yes"}, "soft_takeover must be true or false, got 'yes'"),
        ({"cc": 7.0}, "cc must be an integer, got 7.0"),
    ],
)
def test_preset_midi_mappings_are_typed(mapping: dict[str, Any], message: str) -> None:
    data = _preset(midi=[{"parameter": "source.1.gain_db", "cc": 7, **mapping}])
    with pytest.raises(PresetError) as e:
        Preset.from_dict(data)
    assert f"midi[0]: MIDI mapping for 'source.1.gain_db': {message}" in str(e.value)


# --------------------------------------------------------------------------------------------------
# Configuration objects built in Python

ENGINE_CASES: list[tuple[dict[str, Any], str]] = [
    ({"window_frames": 10**9}, "engine: window_frames must be an integer in [1, 2048], got 1000000000"),
    ({"step_frames": 10**9}, "engine: step_frames must be an integer in [1, 2048]"),
    ({"lookahead_frames": 10**9}, "engine: lookahead_frames must be an integer in [0, 2048]"),
    ({"crossfade": 10**12}, "engine: crossfade must be an integer in [0, 65536]"),
    ({"sources": [1] * 1000}, "engine: sources must be a list of 1 to 32 numbers"),
    ({"sources": "12"}, "engine: sources must be a list of 1 to 32 numbers"),
    ({"compute_budget": math.inf}, "engine: compute_budget must be a finite number in [0.25, 16], got inf"),
    ({"compute_budget": 1e9}, "engine: compute_budget must be a finite number in [0.25, 16]"),
    ({"smoothing_ms": math.nan}, "engine: smoothing_ms must be a finite number in [0, 60000], got nan"),
    ({"diffusion_steps": 10**6}, "engine: diffusion_steps must be an integer in [1, 64]"),
    ({"seed": 2**64}, "engine: seed must be an integer in [0, 4294967295]"),
    ({"seed": -1}, "engine: seed must be an integer in [0, 4294967295]"),
    ({"window_frames": "24"}, "engine: window_frames must be an integer in [1, 2048], got '24'"),
    ({"output_channels": True}, "engine: output_channels must be an integer in [0, 2], got True"),
]


@pytest.mark.parametrize(("values", "message"), ENGINE_CASES, ids=[m[8:40] for _, m in ENGINE_CASES])
def test_engine_config_refuses_hostile_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as e:
        EngineConfig(**values)
    assert message in str(e.value)


def test_engine_windows_are_bounded_in_samples_for_the_model_they_run() -> None:
    config = EngineConfig(sources=[2] * 32, window_frames=2048, step_frames=16)  # every field in its range
    with pytest.raises(ValueError, match=r"engine: window_frames 2048 of 256 samples × 64 input channel\(s\) is "):
        config.check_model(256)  # 33 M samples per window, 16 windows per model call offline
    EngineConfig(sources=[2] * 32, window_frames=32, step_frames=16).check_model(256)  # 524288: the limit


MODEL_CASES: list[tuple[type, dict[str, Any], str]] = [
    (FrontendConfig, {"hop_size": 10**9}, "FrontendConfig: hop_size must be an integer in [1, 8192]"),
    (FrontendConfig, {"n_fft_factor": 10**6}, "FrontendConfig: n_fft_factor must be an integer in [1, 16]"),
    (FrontendConfig, {"alpha_rescale": math.nan}, "FrontendConfig: alpha_rescale must be a finite number"),
    (FrontendConfig, {"sample_rate": 10**9}, "FrontendConfig: sample_rate must be an integer in [1000, 384000]"),
    (GeneratorConfig, {"heads": 0}, "GeneratorConfig: heads must be an integer in [1, 64], got 0"),
    (GeneratorConfig, {"base_channels": 10**6}, "GeneratorConfig: base_channels must be an integer in [1, 1024]"),
    (GeneratorConfig, {"layers_list": [10**6] * 5}, "GeneratorConfig: layers_list[0] must be an integer in [0, 16]"),
    (GeneratorConfig, {"layers_list": "22222"}, "GeneratorConfig: layers_list must be a list of 1 to 8 numbers"),
    (
        GeneratorConfig,
        {"base_channels": 1024, "multipliers_list": [1, 2, 4, 4, 64]},
        "GeneratorConfig: base_channels × multipliers must stay <= 4096 channels, got 65536",
    ),
    (GeneratorConfig, {"sigma_max": math.inf}, "GeneratorConfig: sigma_max must be a finite number in [0, 10000]"),
    (DiffusionConfig, {"rho": math.nan}, "DiffusionConfig: rho must be a finite number in [0, 100], got nan"),
    (DiffusionConfig, {"total_iters": -5}, "DiffusionConfig: total_iters must be an integer in [1, 1000000000]"),
]


@pytest.mark.parametrize(("cls", "values", "message"), MODEL_CASES, ids=[m[:45] for _, _, m in MODEL_CASES])
def test_model_configs_refuse_hostile_values(cls: type, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as e:
        cls.from_dict(values)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale_factor": 0.0}, "scale_factor must be a finite number > 0 and <= 1000000, got 0.0"),
        ({"scale_factor": -33.0}, "scale_factor must be a finite number > 0"),
        ({"scale_factor": math.nan}, "scale_factor must be a finite number > 0"),
        ({"scale_factor": math.inf}, "scale_factor must be a finite number > 0"),
        ({"max_batch_size": 10**9}, "max_batch_size must be an integer in [1, 4096]"),
        ({"diffusion_steps": 0}, "diffusion_steps must be an integer in [1, 1000]"),
        ({"max_chunk_size": 10}, "max_chunk_size must be an integer in [128, 2147483647], got 10"),
    ],
)
def test_autoencoder_refuses_hostile_arguments(kwargs: dict[str, Any], message: str) -> None:
    from lincae import Autoencoder

    with pytest.raises(ValueError) as e:
        Autoencoder(TINY_FRONTEND, TINY_GENERATOR, {}, **kwargs)
    assert message in str(e.value)


def test_a_config_cannot_ask_for_a_network_of_tens_of_gb() -> None:
    from lincae import Autoencoder

    # every field inside its own range; together 80 G parameters (320 GB), counted without allocating
    generator = {"base_channels": 1024, "layers_list": [16] * 5, "layers_list_encoder": [16] * 5}
    with pytest.raises(ValueError, match=r"GeneratorConfig: the network would have \d+ M parameters, more than"):
        Autoencoder({}, generator, {})


TRAIN_CASES: list[tuple[dict[str, Any], str]] = [
    ({"steps": "ten"}, "steps must be an integer in [1, 1000000000], got 'ten'"),
    ({"steps": 2.5}, "steps must be an integer in [1, 1000000000], got 2.5"),
    ({"seed": 2**64}, "seed must be an integer in [0, 4294967295]"),
    ({"log_every": "often"}, "log_every must be an integer in [1, 1000000000], got 'often'"),
    ({"data": {"batch_size": "8"}}, "data.batch_size must be an integer in [2, 4096], got '8'"),
    ({"data": {"crop_frames": 10**9}}, "data.crop_frames must be an integer in [8, 65536]"),
    ({"data": {"rms_floor": math.nan}}, "data.rms_floor must be a finite number in [0, 1], got nan"),
    ({"data": 5}, "DataSection in data: expected a mapping of settings, got 5"),
    ({"optim": {"betas": [0.9]}}, "optim.betas must be a list of 2 numbers"),
    ({"optim": {"lr": math.inf}}, "optim.lr must be a finite number in [0, 10], got inf"),
    ({"optim": {"mixed_precision": "yes please"}}, "optim.mixed_precision must be true or false"),
    ({"augment": {"gain_max": 1e30}}, "augment.gain_max must be a finite number in [1, 100]"),
    ({"objective": {"stft_fft_sizes": [2**40]}}, "objective.stft_fft_sizes[0] must be an integer in [16, 65536]"),
    ({"objective": {"stft_fft_sizes": [512] * 100}}, "objective.stft_fft_sizes must be a list of 1 to 16 numbers"),
    ({"model": {"generator": {"heads": 0}}}, "GeneratorConfig: heads must be an integer in [1, 64], got 0"),
    ({"adversarial": {"start": "ten"}}, "adversarial.start must be an integer in [0, 1000000000], got 'ten'"),
    ({"adversarial": {"periods": [2, "x"]}}, "adversarial.periods[1] must be an integer in [1, 1024], got 'x'"),
    ({"adversarial": {"stft_fft_sizes": [512] * 100}}, "adversarial.stft_fft_sizes must be a list of 0 to 16"),
    ({"adversarial": {"lr": math.nan}}, "adversarial.lr must be a finite number in [0, 10], got nan"),
    ({"adversarial": {"enabled": "yes"}}, "adversarial.enabled must be true or false, got 'yes'"),
    ({"model": {"generator": {"lookahead": 3}}}, "GeneratorConfig: lookahead must be an integer in [0, 2], got 3"),
    ({"model": {"generator": {"streamable": "yes"}}}, "GeneratorConfig: streamable must be true or false"),
]


@pytest.mark.parametrize(("values", "message"), TRAIN_CASES, ids=[m[:40] for _, m in TRAIN_CASES])
def test_training_config_refuses_hostile_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as e:
        TrainConfig.from_dict(values)
    assert message in str(e.value)


# --------------------------------------------------------------------------------------------------
# Parameter values: refused with the parameter's name, never clamped


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_parameter_positions_that_are_not_finite_are_refused(value: float) -> None:
    registry = ParameterRegistry(mixer_parameters(1))
    with pytest.raises(ValueError, match=r"parameter source\.1\.gain_db: position .* is not a finite number"):
        registry.set_normalized("source.1.gain_db", value)
    with pytest.raises(ValueError, match=r"parameter master\.gain_db: .* outside \[-60, 12\] dB"):
        registry.set("master.gain_db", value)
    assert registry.get("source.1.gain_db") == 0.0 and registry.get("master.gain_db") == 0.0
