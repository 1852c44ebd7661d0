"""Training and evaluation data: procedural multi-stem music and reading back its pieces.

Optional dependencies are imported lazily: ``tinysoundfont`` when music is rendered, ``pedalboard``
when audio files are decoded.
"""

from lincae.data.pieces import StemFolder, read_piece
from lincae.data.synth import (
    ROLES,
    Piece,
    SynthConfig,
    generate_piece,
    read_wav,
    write_synth_dataset,
    write_wav,
)

__all__ = [
    "ROLES",
    "Piece",
    "StemFolder",
    "SynthConfig",
    "generate_piece",
    "read_piece",
    "read_wav",
    "write_synth_dataset",
    "write_wav",
]
