"""Reading back multi-stem pieces: :func:`read_piece` and :class:`StemFolder`.

They read the pieces written by :func:`lincae.data.synth.write_synth_dataset` (or any folder of
equally long stem files) through :mod:`lincae.files.audiofile`, like every other audio file lincae reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from lincae.files.audiofile import READ_SUFFIXES, AudioReader, read_mono

__all__ = ["StemFolder", "read_piece"]


def read_piece(
    piece_dir: str | Path, sample_rate: int | None = None, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Read every stem of one piece directory (e.g. ``mix``, ``drums``, ``bass``, ``chords``, ``melody``).

    Float32 WAVs (as :mod:`lincae.data.synth` writes them) come back bit-exactly. Multi-channel files
    are averaged to mono.

    Args:
        piece_dir: Directory holding one audio file per stem (not searched recursively).
        sample_rate: Resample to this rate; ``None`` keeps the files' rate (which must then agree).
        names: Stems to read (file names without suffix); default: every audio file in the directory.

    Returns:
        ``{stem name: float32 array of shape (samples,)}``, all of the same length.

    Raises:
        FileNotFoundError: if the directory or a requested stem does not exist.
        ValueError: if it holds no audio, or the stems differ in length or sample rate.
    """
    piece_dir = Path(piece_dir)
    if not piece_dir.is_dir():
        raise FileNotFoundError(f"piece directory {piece_dir} does not exist")
    files = {
        p.stem: p
        for p in sorted(piece_dir.iterdir())
        if p.is_file() and p.suffix.lower() in READ_SUFFIXES and not p.name.startswith(".")
    }
    if names is not None:
        missing = [n for n in names if n not in files]
        if missing:
            raise FileNotFoundError(f"{piece_dir} has no stem(s) {missing}; found {sorted(files)}")
        files = {n: files[n] for n in names}
    if not files:
        raise ValueError(f"no audio files in {piece_dir}")
    stems: dict[str, np.ndarray] = {}
    rates: set[int] = set()
    for name, path in files.items():
        if sample_rate is None:
            with AudioReader(path, 44100) as r:
                rate = round(r.source_rate)
        else:
            rate = sample_rate
        stems[name] = read_mono(path, rate)
        rates.add(rate)
    if len(rates) > 1:
        raise ValueError(f"stems in {piece_dir} have different sample rates {sorted(rates)}; pass sample_rate")
    lengths = {name: a.shape[0] for name, a in stems.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"stems in {piece_dir} differ in length: {lengths}")
    return stems


def _synth_dataset_ids(folder: Path) -> list[str]:
    """Piece ids listed by ``folder/index.json`` when it is a lincae synth dataset's index, else none."""
    from lincae.data.synth import DATASET_FORMAT

    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(index, dict) or index.get("format") != DATASET_FORMAT:
        return []
    return [str(p["id"]) for p in index.get("pieces", []) if isinstance(p, dict) and "id" in p]


class StemFolder(Dataset[dict[str, np.ndarray]]):
    """Map-style dataset over the pieces of a synth dataset (or any folder of stem folders).

    The pieces are those listed in ``root/index.json`` (as written by
    :func:`lincae.data.synth.write_synth_dataset`), else every sub-directory that holds audio files,
    sorted by name, else the pieces of every synth dataset one level down (ids ``dataset/piece``).
    ``folder[i]`` is :func:`read_piece` of piece ``i``.
    """

    def __init__(self, root: str | Path, sample_rate: int | None = None, names: Sequence[str] | None = None):
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.names = None if names is None else tuple(names)
        index_path = self.root / "index.json"
        if index_path.is_file():
            index = json.loads(index_path.read_text(encoding="utf-8"))
            ids = [str(p["id"]) for p in index.get("pieces", [])]
        elif self.root.is_dir():
            ids = sorted(
                d.name
                for d in self.root.iterdir()
                if d.is_dir()
                and not d.name.startswith(".")
                and any(f.suffix.lower() in READ_SUFFIXES for f in d.iterdir())
            )
            if not ids:  # a folder of synth datasets (one per SoundFont, say): their pieces, dataset by dataset
                ids = [f"{sub.name}/{i}" for sub in sorted(self.root.iterdir()) for i in _synth_dataset_ids(sub)]
        else:
            raise FileNotFoundError(f"stem folder {self.root} does not exist")
        if not ids:
            raise ValueError(f"no pieces in {self.root}")
        self.ids: tuple[str, ...] = tuple(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def path(self, index: int) -> Path:
        """Directory of piece ``index``."""
        return self.root / self.ids[index]

    def meta(self, index: int) -> dict[str, Any]:
        """``meta.json`` of piece ``index`` (empty when there is none)."""
        meta_path = self.path(index) / "meta.json"
        return json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return read_piece(self.path(index), self.sample_rate, self.names)
