"""The official Lin-CAE checkpoints: where they live on the Hugging Face Hub and their latent scales."""

from __future__ import annotations

OFFICIAL_REPO = "BernardoTorres/linear_consistency_autoencoders"
#: Model id → the ``{hash}_weights`` folder of the Hub repository.
OFFICIAL_HASHES = {"m2l": "1511f18a", "lin-cae": "0a3afbec", "lin-cae-2": "2f4c6d21"}
#: Model id → the factor its encoder outputs are multiplied by to give latents.
OFFICIAL_SCALE_FACTORS = {"m2l": 15.0, "lin-cae": 33.0, "lin-cae-2": 40.0}

__all__ = ["OFFICIAL_HASHES", "OFFICIAL_REPO", "OFFICIAL_SCALE_FACTORS"]
