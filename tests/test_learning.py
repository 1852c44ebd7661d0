"""Training learns: the default architecture and recipe reproduce a pitched clip after a few CPU minutes.

Slow (about 3 minutes on 2 cores); CI runs it (``LINCAE_RUN_SLOW=1`` in ``.ci/run``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lincae.evaluation.metrics import chroma_correlation, mrstft_distance
from lincae.models.base import load_model
from lincae.training.config import TrainConfig
from lincae.training.data import TensorCrops
from lincae.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
STEPS = 300


def overfit_config() -> TrainConfig:
    """The shipped model's architecture and objective, with a schedule for one clip and a few hundred steps."""
    shipped = TrainConfig.from_yaml(ROOT / "configs" / "small.yaml")
    values = shipped.to_dict()
    values.update(
        data={"crop_frames": 32, "batch_size": 6, "val_pieces": 1},
        optim={"lr": 1e-3, "final_lr": 1e-4, "warmup_steps": 10, "ema_decay": 0.95},
        augment={"mode": "m2l"},
        # the shipped recipe with its phases compressed: reconstruction alone, the STFT term from step
        # 100, consistency on a quarter of each batch from step 200
        objective={**values["objective"], "stft_start": 100, "stft_ramp": 50, "consistency_start": 200},
        steps=STEPS,
        log_every=10,
        val_every=STEPS,
        ckpt_every=STEPS,
    )
    return TrainConfig.from_dict(values)


def rms_db(x: torch.Tensor) -> float:
    return float(20 * torch.log10(x.pow(2).mean().sqrt()))


@pytest.mark.slow
def test_a_pitched_clip_is_learned_in_a_few_cpu_minutes(tmp_path: Path) -> None:
    pytest.importorskip("tinysoundfont")
    from lincae.data.synth import SynthConfig, generate_piece

    clip = torch.from_numpy(generate_piece(12345, SynthConfig(seconds=3.0)).stems["chords"])[None]  # sustained chords
    cfg = overfit_config()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        trainer = Trainer(cfg, tmp_path, TensorCrops(clip, cfg.crop_samples(), seed=0), val_audio=clip, progress=False)
        trainer.fit()
    finally:
        torch.set_num_threads(threads)

    model = load_model(tmp_path / "final")  # the exported EMA model, as a user would load it
    y = model.decode(model.encode(clip), full_length=clip.shape[-1], seed=0)
    chroma = float(chroma_correlation(y, clip))
    level = rms_db(y) - rms_db(clip)
    distance = float(mrstft_distance(y, clip))
    # The untrained model scores chroma 0.46 (noise level), MR-STFT 3.7, and is 64 dB too quiet.
    assert chroma >= 0.9, (chroma, level, distance)
    assert abs(level) <= 2.0, (chroma, level, distance)
    assert distance < 1.5, (chroma, level, distance)
