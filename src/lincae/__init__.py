"""lincae: mix, scale and separate audio in the latent space of a Linear Consistency Autoencoder."""

from lincae.models.autoencoder import Autoencoder

__all__ = ["Autoencoder", "__version__"]
__version__ = "0.1.0"
