"""The Lin-CAE model: configuration, network, sampling and weight files."""

from lincae.models.autoencoder import Autoencoder, fold_channels, unfold_channels
from lincae.models.config import DiffusionConfig, FrontendConfig, GeneratorConfig
from lincae.models.registry import ModelDownloadError, ModelNotFoundError

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
