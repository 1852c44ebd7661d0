"""Turn a trained run's model folder into a model that ships with the package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lincae.models.registry import CONFIG_FILE, load_model


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
