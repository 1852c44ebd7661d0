"""lincae: mix, scale and separate audio in the latent space of a Linear Consistency Autoencoder.

``import lincae`` is light: the model (and PyTorch) load on first use of :class:`Autoencoder`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lincae.version import __version__

__all__ = ["Autoencoder", "__version__"]

if TYPE_CHECKING:
    from lincae.models.autoencoder import Autoencoder


def __getattr__(name: str) -> Any:
    if name == "Autoencoder":
        from lincae.models.autoencoder import Autoencoder

        return Autoencoder
    raise AttributeError(f"module 'lincae' has no attribute {name!r}")
