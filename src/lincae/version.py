"""The version of lincae, written into every model file it saves (``lincae_version``)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
