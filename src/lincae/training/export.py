"""Turn a trained run's model folder into a model that ships with the package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lincae.models.base import load_model
from lincae.models.registry import CONFIG_FILE


def export_model(
    source: str | Path,
    dest: str | Path,
    *,
    name: str,
    default: bool = False,
    half: bool = True,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Copy the model at ``source`` to ``dest`` (a lincae model folder), optionally storing fp16 weights.

    fp16 halves the size; the weights are cast back to float32 when loaded. ``default`` marks it as the
    model ``from_pretrained("default")`` returns. The training metadata is kept and ``metadata`` added.
    """
    model = load_model(source)
    meta = json.loads((Path(source) / CONFIG_FILE).read_text()).get("metadata", {}) if Path(source).is_dir() else {}
    meta.update(metadata or {})
    meta["default"] = default
    meta["exported_from"] = str(source)
    meta["stored_dtype"] = "float16" if half else "float32"
    model.name = name
    if half:
        model = model.half()
    out = model.save_pretrained(dest, metadata=meta)
    # The saved model must load back into float32 and produce finite output.
    check = load_model(out)
    if not all(p.dtype == torch.float32 for p in check.parameters()):
        raise RuntimeError(f"{out}: exported weights did not load as float32")
    return out


def compact_checkpoint(source: str | Path, dest: str | Path) -> Path:
    """Write a small resumable copy of the training checkpoint ``source`` (a run's ``last.ckpt``) to ``dest``.

    Weights and EMA weights (and the discriminators of an adversarial phase) are stored as float16, the
    optimisers' second moments as bfloat16 (their range
    needs the float32 exponent), and its first moments are left out: they rebuild within a few dozen
    steps, while the second moments take thousands. For the default model this is about a third of
    the full checkpoint. Resuming from it is close to, not bit-identical with, resuming from
    ``source``; :meth:`lincae.training.trainer.Trainer.load_checkpoint` reads both. A FrameNet run's
    checkpoint goes to :func:`lincae.training.frame_trainer.compact_checkpoint`.
    """
    from lincae.training import frame_trainer
    from lincae.training.trainer import CKPT_FORMAT, CKPT_VERSION

    state = torch.load(source, map_location="cpu", weights_only=True)
    if state.get("format") == frame_trainer.CKPT_FORMAT:  # a FrameNet run keeps its own compact form
        return frame_trainer.compact_checkpoint(source, dest)
    if state.get("format") != CKPT_FORMAT or state.get("format_version") != CKPT_VERSION:
        raise ValueError(f"{source}: not a lincae training checkpoint of version {CKPT_VERSION}")

    def half(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # the network's weights only: buffers such as the STFT window stay float32
        return {k: v.half() if v.is_floating_point() and k.startswith(weights) else v for k, v in tensors.items()}

    weights = ("generator.",)

    def second_moments(optimizer: dict) -> dict:
        moments = {
            i: {"step": s["step"], "exp_avg_sq": s["exp_avg_sq"].to(torch.bfloat16)}
            for i, s in optimizer["state"].items()
        }
        return {"state": moments, "param_groups": optimizer["param_groups"]}

    out = {
        **state,
        "compact": True,
        "model": half(state["model"]),
        "ema": {**state["ema"], "shadow": {k: v.half() for k, v in state["ema"]["shadow"].items()}},
        "optimizer": second_moments(state["optimizer"]),
    }
    if "critic" in state:  # the adversarial phase's discriminators (Adam), kept the same way
        out["critic"] = {k: v.half() if v.is_floating_point() else v for k, v in state["critic"].items()}
        out["critic_optimizer"] = second_moments(state["critic_optimizer"])
    from lincae.files.atomic import write_atomically

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(dest, lambda tmp: torch.save(out, tmp))
