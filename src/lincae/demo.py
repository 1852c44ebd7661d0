"""``lincae demo``: encode and decode a generated signal and write what comes out."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from lincae.models.autoencoder import Autoencoder
from lincae.models.registry import DEFAULT_MODEL_ALIAS, ModelNotFoundError, load_model

# Used only while no trained default model is shipped: the architecture of the small default model.
SMALL_RANDOM = {
    "frontend": {"hop_size": 256, "alpha_rescale": 0.65, "beta_rescale": 0.34, "sample_rate": 44100},
    "generator": {
        "base_channels": 16,
        "hop": 256,
        "layers_list": [1, 1, 1, 1, 1],
        "bottleneck_base_channels": 128,
        "cond_channels": 64,
    },
}


def test_signal(seconds: float, sample_rate: int = 44100, seed: int = 0) -> np.ndarray:
    """A short arpeggio of decaying harmonic notes: float32 ``(samples,)``, peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    note_len = 0.25
    for k in range(int(seconds / note_len)):
        f0 = 220.0 * 2 ** (rng.choice([0, 3, 5, 7, 10, 12]) / 12)
        start = k * note_len
        env = np.where(t >= start, np.exp(-6 * (t - start)), 0.0)
        out += sum(env * np.sin(2 * math.pi * f0 * h * t) / h for h in range(1, 6))
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def _model(model_id: str | None) -> tuple[Autoencoder, str]:
    if model_id is not None:
        return load_model(model_id), str(model_id)
    try:
        return load_model(DEFAULT_MODEL_ALIAS), DEFAULT_MODEL_ALIAS
    except ModelNotFoundError:
        print(
            "no trained default model is shipped yet: using a randomly initialised small model "
            "(the output is noise-like; pass --model to use a trained one)",
            file=sys.stderr,
        )
        torch.manual_seed(0)
        return Autoencoder(SMALL_RANDOM["frontend"], SMALL_RANDOM["generator"], {}, name="random-small"), "random"


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float32 ``(samples,)`` audio as a 32-bit float WAV."""
    from pedalboard.io import AudioFile

    with AudioFile(str(path), "w", samplerate=sample_rate, num_channels=1, bit_depth=32) as f:
        f.write(audio[None, :].astype(np.float32))


def run_basic_demo(out: Path, model_id: str | None = None, seconds: float = 4.0, seed: int = 0) -> Path:
    """Write ``input.wav``, ``reconstruction.wav`` and ``half_gain.wav`` (latents × 0.5) into ``out``."""
    model, used = _model(model_id)
    out.mkdir(parents=True, exist_ok=True)
    x = torch.from_numpy(test_signal(seconds, model.sample_rate, seed)).unsqueeze(0)
    z = model.encode(x)
    results = {
        "input": x,
        "reconstruction": model.decode(z, full_length=x.shape[-1], seed=seed),
        "half_gain": model.decode(0.5 * z, full_length=x.shape[-1], seed=seed),
    }
    levels = {}
    for name, audio in results.items():
        write_wav(out / f"{name}.wav", audio[0].numpy(), model.sample_rate)
        levels[name] = float(20 * torch.log10(audio.pow(2).mean().sqrt() + 1e-12))
    (out / "summary.json").write_text(json.dumps({"model": used, "rms_dbfs": levels}, indent=2) + "\n")
    return out
