"""Training and evaluation data: procedural multi-stem music and streamed crops of audio folders.

Optional dependencies are imported lazily: ``tinysoundfont`` when music is rendered, ``pedalboard``
when audio files other than lincae's own float WAVs are decoded.
"""

from lincae.data.audio_folder import AudioFolderDataset, StemFolder, load_audio, read_piece
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
    "AudioFolderDataset",
    "Piece",
    "StemFolder",
    "SynthConfig",
    "generate_piece",
    "load_audio",
    "read_piece",
    "read_wav",
    "write_synth_dataset",
    "write_wav",
]
