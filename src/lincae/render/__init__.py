"""Audio around the latent mixer: pedalboard effect chains (:mod:`lincae.render.chains`).

Names are imported on first use, so ``import lincae.render`` works without pedalboard installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_CHAINS = (
    "ChainProcessor",
    "ChainSpecError",
    "EffectChain",
    "PluginFailure",
    "apply_parameter",
    "available_plugins",
    "build_chain",
    "chain_latency",
    "chain_parameter_specs",
    "chain_to_spec",
    "load_chain_file",
    "parse_chain_arg",
    "validate_chain_spec",
)

__all__ = list(_CHAINS)


def __getattr__(name: str) -> Any:
    if name in _CHAINS:
        return getattr(importlib.import_module("lincae.render.chains"), name)
    raise AttributeError(f"module 'lincae.render' has no attribute {name!r}")
