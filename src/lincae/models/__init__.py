"""The Lin-CAE model: configuration, network, sampling and weight files.

Importing this package (or :mod:`lincae.models.config`) does not load PyTorch; the names below load
their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lincae.models.autoencoder import Autoencoder, fold_channels, unfold_channels
    from lincae.models.config import DiffusionConfig, FrontendConfig, GeneratorConfig
    from lincae.models.registry import ModelDownloadError, ModelNotFoundError

_WHERE = {
    "Autoencoder": "lincae.models.autoencoder",
    "fold_channels": "lincae.models.autoencoder",
    "unfold_channels": "lincae.models.autoencoder",
    "DiffusionConfig": "lincae.models.config",
    "FrontendConfig": "lincae.models.config",
    "GeneratorConfig": "lincae.models.config",
    "ModelDownloadError": "lincae.models.registry",
    "ModelNotFoundError": "lincae.models.registry",
}

__all__ = [
    "Autoencoder",
    "DiffusionConfig",
    "FrontendConfig",
    "GeneratorConfig",
    "ModelDownloadError",
    "ModelNotFoundError",
    "fold_channels",
    "unfold_channels",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'lincae.models' has no attribute {name!r}")
