"""Deterministic procedural multi-stem music, rendered per stem with a General MIDI SoundFont.

Every piece is a short 4/4 song with four parts (:data:`ROLES`): ``drums`` (GM percussion kit on
channel 10 / bank 128), ``bass``, ``chords`` and ``melody``. The composition is driven by a single
``numpy.random.Generator`` seeded with the piece seed: tempo, key and mode, a chord progression from a
table of common progressions (two per piece, arranged in 8-bar A/B sections), a drum style with
per-bar variations, fills and crashes, bass patterns that follow the chords, voice-led comping and a
motif-based melody that lands on chord tones on strong beats. Timing (a few ms) and velocities are
humanised. The same seed always gives bit-identical audio.

Each part is rendered alone with `tinysoundfont <https://pypi.org/project/tinysoundfont/>`_ from a clean
synthesiser state (all voices stopped and flushed, channels reset), so no release tail of one stem can
leak into another. The stems of a piece share one gain factor chosen so that the mix peak is at most
:attr:`SynthConfig.mix_peak`, and are quantised to the 24-bit grid (multiples of ``2**-23``), which makes
the mix an exact float32 sum of the stems.

Files are written as 32-bit IEEE-float mono WAV by :func:`write_wav`, which embeds no timestamp, so a
dataset written twice with the same seed is byte-identical, and ``mix.wav`` read back is exactly the sum
of the stem files read back.

``tinysoundfont`` is imported only when audio is rendered; importing this module has no side effects.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import json
import math
import multiprocessing
import os
import shutil
import struct
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "DEFAULT_SOUNDFONT_PATHS",
    "PIECE_FILES",
    "ROLES",
    "SOUNDFONT_ENV",
    "Note",
    "Part",
    "Piece",
    "ProgressCallback",
    "SoundFontNotFoundError",
    "SynthConfig",
    "compose",
    "generate_piece",
    "piece_id",
    "piece_seed",
    "read_wav",
    "render_part",
    "tqdm_progress",
    "write_piece",
    "write_synth_dataset",
    "write_wav",
]

#: The stems of every piece, in the fixed order used to sum the mix.
ROLES: tuple[str, ...] = ("drums", "bass", "chords", "melody")
#: Files written per piece directory (besides ``meta.json``).
PIECE_FILES: tuple[str, ...] = ("mix.wav", *(f"{role}.wav" for role in ROLES))
DATASET_FORMAT = "lincae-synth"
DATASET_VERSION = 1
#: Environment variable that can point at a ``.sf2`` file.
SOUNDFONT_ENV = "LINCAE_SOUNDFONT"
#: Searched in order when neither ``SynthConfig.soundfont`` nor ``$LINCAE_SOUNDFONT`` is set.
DEFAULT_SOUNDFONT_PATHS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each piece."""

_PCM24_STEP = 2.0**-23  # stems are quantised to this grid so float32 sums are exact
_DRUM_CHANNEL = 9  # GM channel 10
_CHANNELS = {"drums": _DRUM_CHANNEL, "bass": 0, "chords": 1, "melody": 2}

# --------------------------------------------------------------------------------------------------
# Instrument tables (General MIDI program numbers, 0-based)
# --------------------------------------------------------------------------------------------------

_DRUM_KITS: dict[int, str] = {
    0: "Standard",
    8: "Room",
    16: "Power",
    24: "Electronic",
    25: "TR-808",
    32: "Jazz",
    40: "Brush",
}

_BASS_PROGRAMS: dict[int, str] = {
    32: "Acoustic Bass",
    33: "Electric Bass (finger)",
    34: "Electric Bass (pick)",
    35: "Fretless Bass",
    36: "Slap Bass 1",
    37: "Slap Bass 2",
    38: "Synth Bass 1",
    39: "Synth Bass 2",
}


@dataclass(frozen=True)
class _ChordInstrument:
    name: str
    sustained: bool  # pads/strings/organs: long comping patterns only
    low: int  # lowest voicing note
    strum_ms: float  # spread of the chord notes (guitars strum, pianos roll slightly)


_CHORD_PROGRAMS: dict[int, _ChordInstrument] = {
    0: _ChordInstrument("Acoustic Grand Piano", False, 52, 4.0),
    1: _ChordInstrument("Bright Acoustic Piano", False, 52, 4.0),
    2: _ChordInstrument("Electric Grand Piano", False, 52, 4.0),
    4: _ChordInstrument("Electric Piano 1", False, 52, 5.0),
    5: _ChordInstrument("Electric Piano 2", False, 52, 5.0),
    7: _ChordInstrument("Clavinet", False, 52, 2.0),
    16: _ChordInstrument("Drawbar Organ", True, 53, 0.0),
    17: _ChordInstrument("Percussive Organ", False, 53, 0.0),
    18: _ChordInstrument("Rock Organ", True, 53, 0.0),
    21: _ChordInstrument("Accordion", True, 53, 0.0),
    24: _ChordInstrument("Acoustic Guitar (nylon)", False, 48, 18.0),
    25: _ChordInstrument("Acoustic Guitar (steel)", False, 48, 15.0),
    26: _ChordInstrument("Electric Guitar (jazz)", False, 48, 12.0),
    27: _ChordInstrument("Electric Guitar (clean)", False, 48, 12.0),
    46: _ChordInstrument("Orchestral Harp", False, 50, 25.0),
    48: _ChordInstrument("String Ensemble 1", True, 53, 0.0),
    49: _ChordInstrument("String Ensemble 2", True, 53, 0.0),
    50: _ChordInstrument("Synth Strings 1", True, 53, 0.0),
    52: _ChordInstrument("Choir Aahs", True, 53, 0.0),
    61: _ChordInstrument("Brass Section", True, 53, 0.0),
    88: _ChordInstrument("Pad 1 (new age)", True, 53, 0.0),
    89: _ChordInstrument("Pad 2 (warm)", True, 53, 0.0),
    90: _ChordInstrument("Pad 3 (polysynth)", True, 53, 0.0),
    91: _ChordInstrument("Pad 4 (choir)", True, 53, 0.0),
    94: _ChordInstrument("Pad 7 (halo)", True, 53, 0.0),
    95: _ChordInstrument("Pad 8 (sweep)", True, 53, 0.0),
}


@dataclass(frozen=True)
class _MelodyInstrument:
    name: str
    low: int
    high: int
    legato: bool  # held notes (winds, strings, leads) vs. decaying ones (mallets, plucked, keys)


_MELODY_PROGRAMS: dict[int, _MelodyInstrument] = {
    0: _MelodyInstrument("Acoustic Grand Piano", 64, 88, False),
    4: _MelodyInstrument("Electric Piano 1", 64, 88, False),
    11: _MelodyInstrument("Vibraphone", 62, 86, False),
    12: _MelodyInstrument("Marimba", 62, 86, False),
    13: _MelodyInstrument("Xylophone", 67, 91, False),
    22: _MelodyInstrument("Harmonica", 62, 84, True),
    26: _MelodyInstrument("Electric Guitar (jazz)", 59, 81, False),
    40: _MelodyInstrument("Violin", 64, 91, True),
    56: _MelodyInstrument("Trumpet", 60, 82, True),
    59: _MelodyInstrument("Muted Trumpet", 60, 82, True),
    64: _MelodyInstrument("Soprano Sax", 62, 86, True),
    65: _MelodyInstrument("Alto Sax", 60, 82, True),
    66: _MelodyInstrument("Tenor Sax", 57, 79, True),
    68: _MelodyInstrument("Oboe", 62, 86, True),
    71: _MelodyInstrument("Clarinet", 60, 84, True),
    73: _MelodyInstrument("Flute", 67, 93, True),
    74: _MelodyInstrument("Recorder", 72, 91, True),
    75: _MelodyInstrument("Pan Flute", 67, 91, True),
    79: _MelodyInstrument("Ocarina", 67, 89, True),
    80: _MelodyInstrument("Lead 1 (square)", 60, 86, True),
    81: _MelodyInstrument("Lead 2 (sawtooth)", 60, 86, True),
    85: _MelodyInstrument("Lead 6 (voice)", 60, 81, True),
}

# --------------------------------------------------------------------------------------------------
# Harmony tables
# --------------------------------------------------------------------------------------------------

_SCALES: dict[str, tuple[int, ...]] = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_NUMERALS = ("I", "II", "III", "IV", "V", "VI", "VII")

#: Common progressions as 0-based scale degrees (one chord per harmonic-rhythm slot).
_PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": (
        (0, 4, 5, 3),  # I V vi IV
        (0, 5, 3, 4),  # I vi IV V
        (5, 3, 0, 4),  # vi IV I V
        (0, 3, 4, 3),  # I IV V IV
        (1, 4, 0, 0),  # ii V I I
        (0, 3, 5, 4),  # I IV vi V
        (0, 2, 3, 4),  # I iii IV V
        (0, 3, 0, 4),  # I IV I V
        (3, 4, 2, 5),  # IV V iii vi
        (0, 5, 1, 4),  # I vi ii V
    ),
    "minor": (
        (0, 5, 2, 6),  # i VI III VII
        (0, 3, 4, 0),  # i iv v i
        (0, 6, 5, 6),  # i VII VI VII
        (0, 3, 6, 2),  # i iv VII III
        (0, 5, 3, 4),  # i VI iv v
        (0, 3, 0, 4),  # i iv i v
        (0, 6, 5, 4),  # i VII VI v (Andalusian with a harmonic V)
        (0, 2, 6, 5),  # i III VII VI
    ),
}
_FORMS = ("AABA", "ABAB", "AABB", "ABBA")
_SECTION_BARS = 8

# --------------------------------------------------------------------------------------------------
# Rhythm tables
# --------------------------------------------------------------------------------------------------

# GM percussion keys
_KICK, _SNARE, _CLAP, _CLOSED_HAT, _PEDAL_HAT, _OPEN_HAT, _CRASH, _RIDE = 36, 38, 39, 42, 44, 46, 49, 51
_TOMS = (50, 48, 47, 45, 43, 41)  # high to low


@dataclass(frozen=True)
class _DrumStyle:
    """One bar of 16 steps per voice: 'X' accent, 'x' normal, 'o' ghost, '.' rest."""

    kick: str
    snare: str
    hat: str
    open_hat: str = "................"
    kits: tuple[int, ...] = (0, 8, 16)
    tempo: tuple[float, float] = (0.0, 999.0)  # preferred tempo range (BPM)
    swing_prob: float = 0.0
    bass: tuple[str, ...] = ("quarters", "eighths", "root_fifth")
    hat_key: int = _CLOSED_HAT


_DRUM_STYLES: dict[str, _DrumStyle] = {
    "rock": _DrumStyle(
        kick="x.......x.x.....",
        snare="....X.......X...",
        hat="x.x.x.x.x.x.x.x.",
        kits=(0, 8, 16),
        bass=("eighths", "quarters", "root_fifth", "half"),
    ),
    "pop": _DrumStyle(
        kick="x.....x.x.......",
        snare="....X.......X...",
        hat="x.xxx.x.x.xxx.x.",
        kits=(0, 8, 24),
        bass=("root_fifth", "syncopated", "eighths", "half"),
    ),
    "disco": _DrumStyle(
        kick="x...x...x...x...",
        snare="....X.......X...",
        hat="x...x...x...x...",
        open_hat="..x...x...x...x.",
        kits=(0, 24, 25),
        tempo=(108.0, 999.0),
        bass=("octaves", "eighths"),
    ),
    "halftime": _DrumStyle(
        kick="x.........x.....",
        snare="........X.......",
        hat="x.x.x.x.x.x.x.x.",
        kits=(0, 8, 24, 25),
        tempo=(115.0, 999.0),
        bass=("whole", "half", "syncopated"),
    ),
    "funk": _DrumStyle(
        kick="x..x......x..x..",
        snare="....X..o.o..X..o",
        hat="xoxoxoxoxoxoxoxo",
        kits=(0, 8),
        tempo=(85.0, 125.0),
        bass=("syncopated", "octaves"),
    ),
    "boombap": _DrumStyle(
        kick="x......x..x.....",
        snare="....X.......X...",
        hat="x.x.x.x.x.x.x.x.",
        kits=(0, 8, 25),
        tempo=(0.0, 105.0),
        swing_prob=0.6,
        bass=("half", "syncopated", "whole"),
    ),
    "jazz": _DrumStyle(
        kick="x.......x.......",
        snare="......o.......o.",
        hat="x...x.x.x...x.x.",
        open_hat="....x.......x...",  # played on the pedal hat
        kits=(32, 40),
        swing_prob=0.9,
        bass=("walking",),
        hat_key=_RIDE,
    ),
}

_VELOCITY = {"X": 112, "x": 92, "o": 48}

# Bass patterns: (beat, duration in beats, tone) with tone in
#   R root, 5 fifth, 8 octave, C chord tone (3rd or 5th), S scale tone, A approach to the next chord root.
_BASS_PATTERNS: dict[str, tuple[tuple[float, float, str], ...]] = {
    "whole": ((0.0, 4.0, "R"),),
    "half": ((0.0, 2.0, "R"), (2.0, 2.0, "5")),
    "quarters": ((0.0, 1.0, "R"), (1.0, 1.0, "R"), (2.0, 1.0, "5"), (3.0, 1.0, "R")),
    "eighths": tuple((i * 0.5, 0.5, "R") for i in range(8)),
    "octaves": tuple((i * 0.5, 0.5, "R" if i % 2 == 0 else "8") for i in range(8)),
    "root_fifth": ((0.0, 1.5, "R"), (1.5, 0.5, "5"), (2.0, 1.0, "8"), (3.0, 0.5, "5"), (3.5, 0.5, "A")),
    "syncopated": (
        (0.0, 0.75, "R"),
        (0.75, 0.75, "R"),
        (1.5, 1.0, "5"),
        (2.5, 0.5, "R"),
        (3.0, 0.5, "8"),
        (3.5, 0.5, "A"),
    ),
    "walking": ((0.0, 1.0, "R"), (1.0, 1.0, "C"), (2.0, 1.0, "S"), (3.0, 1.0, "A")),
}

# Comping patterns: (beat, duration in beats). "arpeggio" plays one voicing note per hit.
_COMPING: dict[str, tuple[tuple[float, float], ...]] = {
    "sustain": ((0.0, 4.0),),
    "halves": ((0.0, 2.0), (2.0, 2.0)),
    "charleston": ((0.0, 1.5), (1.5, 2.5)),
    "quarters": ((0.0, 0.9), (1.0, 0.9), (2.0, 0.9), (3.0, 0.9)),
    "offbeats": ((0.5, 0.4), (1.5, 0.4), (2.5, 0.4), (3.5, 0.4)),
    "pop8": ((0.0, 0.9), (1.0, 0.45), (1.5, 0.9), (2.5, 0.45), (3.0, 0.9)),
    "stabs": ((0.0, 0.25), (0.75, 0.25), (1.5, 0.5), (2.5, 0.25), (2.75, 0.25), (3.5, 0.25)),
    "arpeggio": tuple((i * 0.5, 1.0) for i in range(8)),
}
_SUSTAINED_COMPING = ("sustain", "halves", "charleston")

# Melody rhythm cells: (length in beats, ((onset, duration), ...), weight when sparse, weight when dense).
_CELLS: tuple[tuple[float, tuple[tuple[float, float], ...], float, float], ...] = (
    (1.0, ((0.0, 1.0),), 3.0, 1.0),
    (1.0, ((0.0, 0.5), (0.5, 0.5)), 1.5, 4.0),
    (1.0, ((0.0, 0.75), (0.75, 0.25)), 0.5, 1.5),
    (1.0, ((0.5, 0.5),), 1.0, 1.0),
    (1.0, ((0.0, 0.5),), 1.0, 0.5),
    (1.0, (), 1.2, 0.3),
    (2.0, ((0.0, 2.0),), 1.5, 0.3),
    (2.0, ((0.0, 1.5), (1.5, 0.5)), 1.0, 1.0),
    (1.0, ((0.0, 0.25), (0.25, 0.25), (0.5, 0.5)), 0.1, 1.0),
    (2.0, ((0.0, 0.5), (0.5, 1.0), (1.5, 0.5)), 0.5, 1.2),
)
_INTERVALS = (-4, -3, -2, -1, 0, 1, 2, 3, 4)
_INTERVAL_WEIGHTS = (0.03, 0.05, 0.14, 0.27, 0.08, 0.27, 0.1, 0.04, 0.02)


# --------------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------------


class SoundFontNotFoundError(FileNotFoundError):
    """No General MIDI SoundFont (``.sf2``) could be found."""


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the procedural generator.

    Attributes:
        sample_rate: Output sample rate in Hz (the lincae model runs at 44100).
        seconds: Length of every piece in seconds; a piece has ``round(seconds * sample_rate)`` samples.
        soundfont: Path of a General MIDI ``.sf2`` file. ``None`` uses ``$LINCAE_SOUNDFONT`` or the first
            existing file of :data:`DEFAULT_SOUNDFONT_PATHS` (Debian: ``apt-get install fluid-soundfont-gm``).
        tempo_range: Tempo is drawn uniformly from this range, in BPM.
        mix_peak: The stems of a piece are scaled by one common factor so that ``max|mix| <= mix_peak``
            (the mix peak is normalised to just below this value).
        timing_jitter_ms: Standard deviation of the humanised onset shift, in milliseconds (clipped at
            2.5 sigma; drums get half of it).
        velocity_jitter: Standard deviation of the humanised MIDI velocity offset.
        stem_gain_db: Stems are first balanced (gated RMS: drums 0, bass -1, chords -3, melody -1 dB), then
            each gets a random offset uniformly drawn from ``[-stem_gain_db, +stem_gain_db]`` dB before the
            common normalisation, so the balance varies but no stem is buried.
        fade_out_seconds: Linear fade applied to the end of every stem (cut release tails end without a click).
    """

    sample_rate: int = 44100
    seconds: float = 30.0
    soundfont: str | Path | None = None
    tempo_range: tuple[float, float] = (80.0, 150.0)
    mix_peak: float = 0.9
    timing_jitter_ms: float = 4.0
    velocity_jitter: float = 6.0
    stem_gain_db: float = 3.0
    fade_out_seconds: float = 0.02

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if not self.seconds > 0:
            raise ValueError(f"seconds must be positive, got {self.seconds}")
        lo, hi = self.tempo_range
        if not 20.0 <= lo <= hi <= 400.0:
            raise ValueError(f"tempo_range must satisfy 20 <= low <= high <= 400, got {self.tempo_range}")
        if not 0.0 < self.mix_peak <= 1.0:
            raise ValueError(f"mix_peak must be in (0, 1], got {self.mix_peak}")
        if self.timing_jitter_ms < 0 or self.velocity_jitter < 0 or self.stem_gain_db < 0:
            raise ValueError("jitter and gain ranges must be non-negative")
        if self.fade_out_seconds < 0:
            raise ValueError(f"fade_out_seconds must be non-negative, got {self.fade_out_seconds}")

    @property
    def num_samples(self) -> int:
        """Samples per piece."""
        return round(self.seconds * self.sample_rate)

    def resolve_soundfont(self) -> Path:
        """The SoundFont file to use.

        Raises:
            SoundFontNotFoundError: with installation instructions when no file is found.
        """
        if self.soundfont is not None:
            path = Path(self.soundfont).expanduser()
            if not path.is_file():
                raise SoundFontNotFoundError(
                    f"SoundFont {path} does not exist. Install the FluidR3 General MIDI SoundFont with "
                    "`apt-get install fluid-soundfont-gm` or pass the path of another GM .sf2 file."
                )
            return path
        env = os.environ.get(SOUNDFONT_ENV)
        if env:
            path = Path(env).expanduser()
            if not path.is_file():
                raise SoundFontNotFoundError(f"${SOUNDFONT_ENV} points at {path}, which does not exist.")
            return path
        for candidate in DEFAULT_SOUNDFONT_PATHS:
            if Path(candidate).is_file():
                return Path(candidate)
        raise SoundFontNotFoundError(
            "No General MIDI SoundFont found (looked in "
            + ", ".join(DEFAULT_SOUNDFONT_PATHS)
            + "). Install one with `apt-get install fluid-soundfont-gm`, or pass a path to a GM .sf2 file "
            f"(SynthConfig(soundfont=...) or ${SOUNDFONT_ENV})."
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly settings; the SoundFont is recorded by file name only (machine-independent)."""
        data = asdict(self)
        data["tempo_range"] = list(self.tempo_range)
        data["soundfont"] = self.resolve_soundfont().name
        return data


@dataclass(frozen=True)
class Note:
    """One MIDI note. ``start``/``end`` are in seconds from the start of the piece."""

    start: float
    end: float
    key: int
    velocity: int


@dataclass(frozen=True)
class Part:
    """The notes of one stem and the GM instrument that plays them.

    Attributes:
        role: One of :data:`ROLES`.
        channel: MIDI channel (0-based; drums use 9, i.e. GM channel 10).
        bank: SoundFont bank (128 for percussion kits).
        program: GM program (0-based) or drum-kit preset.
        is_drums: Whether the channel is in percussion mode.
        notes: Notes sorted by start time, with no two notes of the same key overlapping.
    """

    role: str
    channel: int
    bank: int
    program: int
    is_drums: bool
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Piece:
    """One rendered piece.

    Attributes:
        seed: The seed it was generated from.
        sample_rate: Sample rate in Hz.
        stems: ``{role: audio}`` for every role of :data:`ROLES`; float32, shape ``(samples,)``, mono,
            values on the 24-bit grid, already scaled by the common gain ``meta["gain"]``.
        parts: ``{role: Part}``: the score that was rendered.
        meta: JSON-serialisable description (tempo, key, mode, progressions, programs, seed, ...).
    """

    seed: int
    sample_rate: int
    stems: dict[str, np.ndarray]
    parts: dict[str, Part]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        """Length of every stem in samples."""
        return int(next(iter(self.stems.values())).shape[0])

    @property
    def mix(self) -> np.ndarray:
        """The mix, float32 shape ``(samples,)``: the float32 sum of the stems in :data:`ROLES` order.

        Because the stems lie on the 24-bit grid this sum is exact (equal to the float64 sum)."""
        return _sum_stems(self.stems)


# --------------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chord:
    start: float  # beats
    end: float  # beats
    degree: int
    root: int  # pitch class
    pcs: tuple[int, ...]  # pitch classes, root first
    scale: tuple[int, ...]  # pitch classes of the scale in effect (harmonic minor on a major V)
    numeral: str
    section: str


@dataclass
class _Beat:
    """An event in beats before humanisation: [start, start + dur)."""

    start: float
    dur: float
    key: int
    velocity: float


@dataclass(frozen=True)
class _Plan:
    tempo: float
    tonic: int
    mode: str
    harmonic_v: bool
    sevenths: bool
    progressions: dict[str, tuple[int, ...]]
    form: str
    chord_beats: float
    swing: float
    drum_style: str
    drum_kit: int
    bass_program: int
    bass_pattern: str
    bass_low: int
    chord_program: int
    comping: str
    melody_program: int
    melody_density: float
    total_beats: float


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _pick_weighted(rng: np.random.Generator, items: Sequence[Any], weights: Sequence[float]) -> Any:
    w = np.asarray(weights, dtype=np.float64)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def _plan(rng: np.random.Generator, config: SynthConfig) -> _Plan:
    lo, hi = config.tempo_range
    tempo = round(float(rng.uniform(lo, hi)), 1)
    tonic = int(rng.integers(12))
    mode = "major" if rng.random() < 0.5 else "minor"
    harmonic_v = mode == "minor" and bool(rng.random() < 0.6)
    sevenths = bool(rng.random() < 0.35)
    table = _PROGRESSIONS[mode]
    ia = int(rng.integers(len(table)))
    ib = (ia + 1 + int(rng.integers(len(table) - 1))) % len(table)
    form = str(_pick(rng, _FORMS))
    chord_beats = float(_pick_weighted(rng, (4.0, 8.0, 2.0), (0.6, 0.2, 0.2)))

    names = list(_DRUM_STYLES)
    weights = [1.0 if s.tempo[0] <= tempo <= s.tempo[1] else 0.05 for s in _DRUM_STYLES.values()]
    drum_style = str(_pick_weighted(rng, names, weights))
    style = _DRUM_STYLES[drum_style]
    swing = round(float(rng.uniform(0.35, 0.8)), 3) if rng.random() < style.swing_prob else 0.0
    drum_kit = int(_pick(rng, style.kits))

    bass_program = int(_pick(rng, list(_BASS_PROGRAMS)))
    if drum_style == "jazz":
        bass_program = int(_pick(rng, (32, 33, 35)))
    bass_pattern = str(_pick(rng, style.bass))
    bass_low = int(rng.integers(28, 34))

    chord_program = int(_pick(rng, list(_CHORD_PROGRAMS)))
    instrument = _CHORD_PROGRAMS[chord_program]
    comping_choices = _SUSTAINED_COMPING if instrument.sustained else tuple(_COMPING)
    comping = str(_pick(rng, comping_choices))

    melody_choices = [p for p in _MELODY_PROGRAMS if p != chord_program]
    melody_program = int(_pick(rng, melody_choices))
    melody_density = float(rng.uniform(0.2, 0.9))
    if tempo > 130:
        melody_density *= 0.7

    seconds_per_beat = 60.0 / tempo
    total_beats = config.seconds / seconds_per_beat
    return _Plan(
        tempo=tempo,
        tonic=tonic,
        mode=mode,
        harmonic_v=harmonic_v,
        sevenths=sevenths,
        progressions={"A": table[ia], "B": table[ib]},
        form=form,
        chord_beats=chord_beats,
        swing=swing,
        drum_style=drum_style,
        drum_kit=drum_kit,
        bass_program=bass_program,
        bass_pattern=bass_pattern,
        bass_low=bass_low,
        chord_program=chord_program,
        comping=comping,
        melody_program=melody_program,
        melody_density=melody_density,
        total_beats=total_beats,
    )


def _make_chord(plan: _Plan, degree: int, start: float, end: float, section: str) -> _Chord:
    steps = list(_SCALES[plan.mode])
    if plan.harmonic_v and degree == 4:
        steps[6] += 1  # raised leading tone: major V in minor
    count = 4 if plan.sevenths else 3
    pcs = tuple((plan.tonic + steps[(degree + 2 * k) % 7]) % 12 for k in range(count))
    third = (pcs[1] - pcs[0]) % 12
    fifth = (pcs[2] - pcs[0]) % 12
    numeral = _NUMERALS[degree] if third == 4 else _NUMERALS[degree].lower()
    if fifth == 6:
        numeral += "dim"
    if plan.sevenths:
        numeral += "maj7" if (pcs[3] - pcs[0]) % 12 == 11 else "7"
    scale = tuple(sorted((plan.tonic + s) % 12 for s in steps))
    return _Chord(start, end, degree, pcs[0], pcs, scale, numeral, section)


def _sections(plan: _Plan) -> list[tuple[str, float]]:
    """(label, start beat) of every 8-bar section covering the piece."""
    section_beats = 4.0 * _SECTION_BARS
    count = max(1, math.ceil(plan.total_beats / section_beats))
    return [(plan.form[i % len(plan.form)], i * section_beats) for i in range(count)]


def _chord_timeline(plan: _Plan) -> list[_Chord]:
    chords: list[_Chord] = []
    section_beats = 4.0 * _SECTION_BARS
    for label, start in _sections(plan):
        progression = plan.progressions[label]
        t, i = start, 0
        while t < start + section_beats - 1e-9:
            degree = progression[i % len(progression)]
            chords.append(_make_chord(plan, degree, t, t + plan.chord_beats, label))
            t += plan.chord_beats
            i += 1
    return chords


def _chord_at(chords: Sequence[_Chord], beat: float) -> int:
    starts = [c.start for c in chords]
    return max(0, bisect.bisect_right(starts, beat + 1e-9) - 1)


def _limit_to_chord_changes(notes: list[_Beat], chords: Sequence[_Chord]) -> None:
    """Shorten notes so none rings over a chord change."""
    for n in notes:
        chord = chords[_chord_at(chords, n.start)]
        n.dur = min(n.dur, chord.end - n.start)


def _with_chord_change_onsets(
    hits: Sequence[tuple[float, float]], bar: float, chords: Sequence[_Chord]
) -> list[tuple[float, float]]:
    """Bar-relative hits plus one hit at every chord change inside the bar that has none."""
    out = list(hits)
    onsets = {round(b, 6) for b, _ in hits}
    for c in chords:
        rel = c.start - bar
        if 0.0 < rel < 4.0 and round(rel, 6) not in onsets:
            following = [b for b, _ in hits if b > rel]
            out.append((rel, (min(following) if following else 4.0) - rel))
    return sorted(out)


def _drums(rng: np.random.Generator, plan: _Plan) -> list[_Beat]:
    style = _DRUM_STYLES[plan.drum_style]
    out: list[_Beat] = []
    n_bars = math.ceil(plan.total_beats / 4.0)
    section_beats = 4.0 * _SECTION_BARS
    snare_key = _CLAP if plan.drum_kit in (24, 25) and rng.random() < 0.5 else _SNARE
    use_ride_in_b = bool(rng.random() < 0.5) and style.hat_key != _RIDE
    for bar in range(n_bars):
        b0 = 4.0 * bar
        in_section = bar % _SECTION_BARS
        label = plan.form[int(b0 // section_beats) % len(plan.form)]
        kick = list(style.kick)
        snare = list(style.snare)
        hat = list(style.hat)
        open_hat = list(style.open_hat)
        # per-bar variations
        if rng.random() < 0.3:
            free = [s for s in (3, 6, 7, 10, 11, 14, 15) if kick[s] == "." and snare[s] == "."]
            if free:
                kick[int(_pick(rng, free))] = "x"
        if rng.random() < 0.25:
            free = [s for s in range(16) if snare[s] == "." and kick[s] == "." and s % 4 != 0]
            if free:
                snare[int(_pick(rng, free))] = "o"
        if rng.random() < 0.15 and open_hat[14] == "." and style.hat_key == _CLOSED_HAT:
            open_hat[14] = "x"
            hat[14] = "."
        hat_key = _RIDE if (use_ride_in_b and label == "B") else style.hat_key
        # fills: end of a section (likely) or of its first half (sometimes)
        fill_steps = 0
        if in_section == _SECTION_BARS - 1 and rng.random() < 0.85:
            fill_steps = int(_pick(rng, (4, 8)))
        elif in_section == _SECTION_BARS // 2 - 1 and rng.random() < 0.35:
            fill_steps = 4
        fill_from = 16 - fill_steps
        for step in range(16):
            beat = b0 + step / 4.0
            if step >= fill_from:
                continue
            for pattern, key in ((kick, _KICK), (snare, snare_key), (hat, hat_key)):
                if pattern[step] != ".":
                    out.append(_Beat(beat, 0.5, key, _VELOCITY[pattern[step]]))
            if open_hat[step] != ".":
                key = _PEDAL_HAT if style.hat_key == _RIDE else _OPEN_HAT
                out.append(_Beat(beat, 0.5, key, _VELOCITY[open_hat[step]] - 8))
        if fill_steps:
            toms = sorted(_pick(rng, (_TOMS[:3], _TOMS[1:4], _TOMS[2:], (50, 47, 43))), reverse=True)
            for i in range(fill_steps):
                if rng.random() < 0.15:
                    continue
                step = fill_from + i
                beat = b0 + step / 4.0
                velocity = 70 + 40 * (i + 1) / fill_steps
                if rng.random() < 0.35:
                    key = _SNARE
                else:
                    key = toms[min(len(toms) - 1, i * len(toms) // fill_steps)]
                out.append(_Beat(beat, 0.5, key, velocity))
            out.append(_Beat(b0 + 3.75, 0.25, _KICK, 90))
        # crash on the downbeat of a new section (and sometimes on the very first beat)
        if (in_section == 0 and bar > 0) or (bar == 0 and rng.random() < 0.5):
            out.append(_Beat(b0, 3.0, _CRASH, 105))
            if kick[0] == ".":
                out.append(_Beat(b0, 0.5, _KICK, 100))
    # drums ring on; durations only matter for the note-off of long cymbals
    for n in out:
        if n.key in (_CRASH, _RIDE, _OPEN_HAT):
            n.dur = max(n.dur, 1.0)
    return out


def _nearest_with_pc(target: int, pcs: Sequence[int], low: int, high: int) -> int:
    candidates = [k for k in range(low, high + 1) if k % 12 in pcs]
    return min(candidates, key=lambda k: (abs(k - target), k))


def _bass(rng: np.random.Generator, plan: _Plan, chords: Sequence[_Chord]) -> list[_Beat]:
    pattern = _BASS_PATTERNS[plan.bass_pattern]
    low = plan.bass_low
    out: list[_Beat] = []
    n_bars = math.ceil(plan.total_beats / 4.0)
    base_velocity = float(rng.uniform(88, 104))
    for bar in range(n_bars):
        b0 = 4.0 * bar
        hits = _with_chord_change_onsets([(b, d) for b, d, _ in pattern], b0, chords)
        tones = {round(b, 6): t for b, _, t in pattern}
        prev_key: int | None = None
        for rel, dur in hits:
            beat = b0 + rel
            ci = _chord_at(chords, beat)
            chord = chords[ci]
            root = low + (chord.root - low) % 12
            tone = tones.get(round(rel, 6), "R")
            if abs(beat - chord.start) < 1e-6:
                tone = "R"  # every chord change starts on its root
            nxt = chords[ci + 1] if ci + 1 < len(chords) else None
            if tone == "5":
                key = root + 7
            elif tone == "8":
                key = root + 12
            elif tone == "C":
                key = _nearest_with_pc(root + 5, chord.pcs[1:3], root + 1, root + 12)
            elif tone == "S":
                ref = prev_key if prev_key is not None else root
                target_root = low + (nxt.root - low) % 12 if nxt is not None else root
                direction = 1 if target_root >= ref else -1
                key = _step_in_scale(ref, direction, chord.scale)
            elif tone == "A" and nxt is not None and nxt.root != chord.root:
                target = low + (nxt.root - low) % 12
                ref = prev_key if prev_key is not None else root
                key = target - 1 if ref < target else target + 1
            else:
                key = root
            prev_key = key
            accent = 8.0 if rel == 0 else (0.0 if rel % 1 == 0 else -8.0)
            out.append(_Beat(beat, dur * 0.9, key, base_velocity + accent))
    _limit_to_chord_changes(out, chords)
    return out


def _voicing(chord: _Chord, previous: Sequence[int] | None, low: int, rng: np.random.Generator) -> list[int]:
    """Close-position voicing of the chord in [low, low + 26], voice-led from the previous one."""
    candidates: list[list[int]] = []
    n = len(chord.pcs)
    for inversion in range(n):
        order = chord.pcs[inversion:] + chord.pcs[:inversion]
        first = low + (order[0] - low) % 12
        for octave in (0, 12):
            notes = [first + octave]
            for pc in order[1:]:
                notes.append(notes[-1] + (pc - notes[-1]) % 12)
            if notes[-1] <= low + 26:
                candidates.append(notes)
    if previous is None:
        center = low + 9 + int(rng.integers(-2, 3))
        return min(candidates, key=lambda v: (abs(float(np.mean(v)) - center), v))

    def motion(v: list[int]) -> tuple[float, list[int]]:
        return (sum(min(abs(a - b) for b in previous) for a in v) + abs(np.mean(v) - np.mean(previous)), v)

    return min(candidates, key=motion)


def _chords_part(rng: np.random.Generator, plan: _Plan, chords: Sequence[_Chord]) -> list[_Beat]:
    instrument = _CHORD_PROGRAMS[plan.chord_program]
    pattern = _COMPING[plan.comping]
    voicings: list[list[int]] = []
    previous: list[int] | None = None
    for chord in chords:
        previous = _voicing(chord, previous, instrument.low, rng)
        voicings.append(previous)
    base_velocity = float(rng.uniform(62, 84))
    out: list[_Beat] = []
    n_bars = math.ceil(plan.total_beats / 4.0)
    arpeggio_up = [0, 1, 2, 3, 2, 1]
    for bar in range(n_bars):
        b0 = 4.0 * bar
        for i, (rel, dur) in enumerate(_with_chord_change_onsets(pattern, b0, chords)):
            beat = b0 + rel
            ci = _chord_at(chords, beat)
            voicing = voicings[ci]
            accent = 8.0 if rel == 0 else (0.0 if rel % 1 == 0 else -4.0)
            if plan.comping == "arpeggio":
                idx = arpeggio_up[i % len(arpeggio_up)] % len(voicing)
                out.append(_Beat(beat, dur, voicing[idx], base_velocity + accent))
                continue
            strum_beats = instrument.strum_ms / 1000.0 * plan.tempo / 60.0
            downstroke = rel % 1 == 0 or instrument.strum_ms < 10
            order = voicing if downstroke else voicing[::-1]
            for k, key in enumerate(order):
                out.append(_Beat(beat + k * strum_beats, dur - k * strum_beats, key, base_velocity + accent))
    _limit_to_chord_changes(out, chords)
    return out


def _step_in_scale(key: int, steps: int, scale: Sequence[int]) -> int:
    """Move ``steps`` scale steps from ``key`` (snapping a chromatic note into the scale first)."""
    notes = [k for k in range(0, 128) if k % 12 in scale]
    i = bisect.bisect_left(notes, key)
    i = min(i, len(notes) - 1)
    return notes[int(np.clip(i + steps, 0, len(notes) - 1))]


def _motif(rng: np.random.Generator, density: float, beats: float = 8.0) -> list[tuple[float, float, int]]:
    """Rhythm and contour of a 2-bar motif: (onset beat, duration, interval in scale steps)."""
    for _ in range(20):
        notes: list[tuple[float, float, int]] = []
        pos = 0.0
        while pos < beats - 1e-9:
            fitting = [c for c in _CELLS if c[0] <= beats - pos + 1e-9]
            weights = [c[2] * (1.0 - density) + c[3] * density for c in fitting]
            length, cell, _, _ = _pick_weighted(rng, fitting, weights)
            for onset, dur in cell:
                interval = int(_pick_weighted(rng, _INTERVALS, _INTERVAL_WEIGHTS))
                notes.append((pos + onset, dur, interval))
            pos += length
        if len(notes) >= 4:
            return notes
    return [(float(b), 1.0, 1 if b % 2 else -1) for b in range(int(beats))]


def _melody(rng: np.random.Generator, plan: _Plan, chords: Sequence[_Chord]) -> list[_Beat]:
    instrument = _MELODY_PROGRAMS[plan.melody_program]
    low, high = instrument.low, instrument.high
    center = (low + high) // 2
    motifs = {label: _motif(rng, plan.melody_density) for label in ("A", "B")}
    base_velocity = float(rng.uniform(84, 100))
    articulation = 0.92 if instrument.legato else 0.75
    out: list[_Beat] = []
    for label, s0 in _sections(plan):
        motif = motifs[label]
        register = center + (3 if label == "B" else 0)
        for phrase in range(2):
            p0 = s0 + 16.0 * phrase
            # bars 1-2: the motif; bar 3: its first bar, slightly varied; bar 4: cadence note, then rest
            events = [(b, d, iv) for b, d, iv in motif]
            events += [
                (4.0 + b, d, iv + (int(_pick(rng, (-1, 1))) if rng.random() < 0.3 else 0))
                for b, d, iv in motif
                if b < 4.0
            ]
            first_chord = chords[_chord_at(chords, p0)]
            key = _nearest_with_pc(register, first_chord.pcs[:3], low, high)
            for i, (rel, dur, interval) in enumerate(events):
                beat = p0 + rel
                chord = chords[_chord_at(chords, beat)]
                if i > 0:
                    key = _step_in_scale(key, interval, chord.scale)
                    if key > high or key < low:
                        key = _step_in_scale(key, -2 * interval, chord.scale)
                strong = rel % 2 == 0 or dur >= 1.0
                if strong:
                    key = _nearest_with_pc(key, chord.pcs, low, high)
                key = int(np.clip(key, low, high))
                if key % 12 not in chord.scale:
                    key = _step_in_scale(key, 0, chord.scale)
                accent = 10.0 if rel % 4 == 0 else (5.0 if rel % 1 == 0 else 0.0)
                out.append(_Beat(beat, max(0.1, dur * articulation), key, base_velocity + accent))
            cadence_beat = p0 + 12.0
            chord = chords[_chord_at(chords, cadence_beat)]
            targets = chord.pcs[:1] if phrase == 1 else chord.pcs[1:3]
            key = _nearest_with_pc(key, targets, low, high)
            hold = float(_pick(rng, (2.0, 3.0)))
            out.append(_Beat(cadence_beat, hold * articulation, key, base_velocity + 4.0))
    return out


def _to_seconds(
    rng: np.random.Generator,
    beats: Sequence[_Beat],
    plan: _Plan,
    config: SynthConfig,
    jitter_scale: float,
) -> tuple[Note, ...]:
    """Swing, humanise and convert beat events to notes in seconds; removes same-key overlaps."""
    spb = 60.0 / plan.tempo

    def swung(b: float) -> float:
        frac = b % 1.0
        # offbeat 8ths move towards the triplet position; 16ths in between follow proportionally
        if plan.swing > 0:
            shift = plan.swing / 6.0
            if frac <= 0.5:
                frac = frac * (0.5 + shift) / 0.5
            else:
                frac = 0.5 + shift + (frac - 0.5) * (0.5 - shift) / 0.5
        return (math.floor(b) + frac) * spb

    sigma = config.timing_jitter_ms / 1000.0 * jitter_scale
    notes: list[Note] = []
    for b in beats:
        if b.start >= plan.total_beats or b.dur <= 0:
            continue
        jitter = float(np.clip(rng.normal(0.0, sigma), -2.5 * sigma, 2.5 * sigma)) if sigma > 0 else 0.0
        start = max(0.0, swung(b.start) + jitter)
        end = max(start + 0.02, swung(b.start + b.dur) + jitter)
        if start >= config.seconds:
            continue
        velocity = b.velocity + rng.normal(0.0, config.velocity_jitter) if config.velocity_jitter else b.velocity
        notes.append(Note(start, end, int(b.key), int(np.clip(round(velocity), 1, 127))))
    notes.sort(key=lambda n: (n.start, n.key))
    # no two notes of one key overlap (a note-off must not cut a newer note of the same key)
    keep = [True] * len(notes)
    last: dict[int, int] = {}  # key -> index of the last kept note
    for i, n in enumerate(notes):
        j = last.get(n.key)
        if j is not None:
            prev = notes[j]
            if n.start - prev.start < 1e-3:
                keep[i] = False  # duplicate onset
                continue
            if prev.end > n.start:
                notes[j] = replace(prev, end=n.start)
        last[n.key] = i
    return tuple(n for n, k in zip(notes, keep, strict=True) if k)


def compose(seed: int, config: SynthConfig | None = None) -> tuple[dict[str, Part], dict[str, Any]]:
    """Compose (but do not render) a piece.

    Args:
        seed: Any non-negative integer; the whole piece is a function of it and ``config``.
        config: Generator settings (defaults to :class:`SynthConfig()`).

    Returns:
        ``(parts, meta)``: one :class:`Part` per role of :data:`ROLES` and a JSON-friendly description.
    """
    config = config or SynthConfig()
    rng = np.random.default_rng(seed)
    plan = _plan(rng, config)
    chords = _chord_timeline(plan)
    beats = {
        "drums": _drums(rng, plan),
        "bass": _bass(rng, plan, chords),
        "chords": _chords_part(rng, plan, chords),
        "melody": _melody(rng, plan, chords),
    }
    programs = {
        "drums": (128, plan.drum_kit, f"{_DRUM_KITS[plan.drum_kit]} kit"),
        "bass": (0, plan.bass_program, _BASS_PROGRAMS[plan.bass_program]),
        "chords": (0, plan.chord_program, _CHORD_PROGRAMS[plan.chord_program].name),
        "melody": (0, plan.melody_program, _MELODY_PROGRAMS[plan.melody_program].name),
    }
    parts: dict[str, Part] = {}
    for role in ROLES:
        bank, program, _ = programs[role]
        notes = _to_seconds(rng, beats[role], plan, config, 0.5 if role == "drums" else 1.0)
        parts[role] = Part(role, _CHANNELS[role], bank, program, role == "drums", notes)
    stem_gains_db = {role: round(float(rng.uniform(-config.stem_gain_db, config.stem_gain_db)), 3) for role in ROLES}
    scale = _SCALES[plan.mode]
    meta: dict[str, Any] = {
        "seed": int(seed),
        "tempo_bpm": plan.tempo,
        "key": _KEY_NAMES[plan.tonic],
        "tonic_pitch_class": plan.tonic,
        "mode": plan.mode,
        "scale": [(plan.tonic + s) % 12 for s in scale],
        "time_signature": "4/4",
        "swing": plan.swing,
        "form": plan.form,
        "section_bars": _SECTION_BARS,
        "chord_beats": plan.chord_beats,
        "progressions": {
            label: [_make_chord(plan, d, 0, 1, label).numeral for d in prog]
            for label, prog in plan.progressions.items()
        },
        "progression_degrees": {label: list(prog) for label, prog in plan.progressions.items()},
        "chords": [[c.start, c.end, c.numeral] for c in chords if c.start < plan.total_beats],
        "drum_style": plan.drum_style,
        "bass_pattern": plan.bass_pattern,
        "comping": plan.comping,
        "programs": {
            role: {"bank": bank, "program": program, "name": name} for role, (bank, program, name) in programs.items()
        },
        "note_counts": {role: len(parts[role].notes) for role in ROLES},
        "stem_gain_db": stem_gains_db,
        "sample_rate": config.sample_rate,
        "seconds": config.seconds,
        "samples": config.num_samples,
    }
    return parts, meta


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


class _Renderer:
    """One tinysoundfont synthesiser with the SoundFont loaded (about 0.5 s and 450 MB for FluidR3)."""

    _FLUSH_BLOCK = 1024
    _FLUSH_MAX_BLOCKS = 512  # ~12 s at 44.1 kHz: far longer than any quick-release

    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        try:
            import tinysoundfont
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "lincae.data.synth needs tinysoundfont: `pip install --no-deps tinysoundfont` "
                "(its optional pyaudio dependency is only needed for live playback)."
            ) from err
        self.sample_rate = sample_rate
        self.synth = tinysoundfont.Synth(samplerate=sample_rate)
        self.sfid = self.synth.sfload(str(soundfont))
        self._scratch = np.zeros(2 * self._FLUSH_BLOCK, dtype=np.float32)

    def reset(self) -> None:
        """Stop every voice, let their quick releases run out (flush), and reset all channels."""
        self.synth.sounds_off()
        soundfont = getattr(self.synth, "soundfonts", {}).get(self.sfid)
        if soundfont is not None and hasattr(soundfont, "reset"):
            soundfont.reset()
        view = memoryview(self._scratch).cast("B")
        for _ in range(self._FLUSH_MAX_BLOCKS):
            self.synth.generate_simple(self._FLUSH_BLOCK, buffer=view)
            if not np.any(self._scratch):
                break
        else:  # pragma: no cover - would need a voice that never decays
            raise RuntimeError("tinysoundfont voices did not stop after sounds_off/reset")
        if soundfont is not None and hasattr(soundfont, "reset"):
            soundfont.reset()

    def render(self, part: Part, num_samples: int) -> np.ndarray:
        """Render ``part`` from a clean state; float32 mono ``(num_samples,)`` (mean of L and R)."""
        self.reset()
        synth, chan = self.synth, part.channel
        synth.program_select(chan, self.sfid, part.bank, part.program, is_drums=part.is_drums)
        events: list[tuple[int, int, int, int]] = []  # (sample, 0=off/1=on, key, velocity)
        for note in part.notes:
            events.append((round(note.start * self.sample_rate), 1, note.key, note.velocity))
            events.append((round(note.end * self.sample_rate), 0, note.key, 0))
        events.sort()
        stereo = np.zeros(2 * num_samples, dtype=np.float32)
        cursor = 0
        for sample, kind, key, velocity in events:
            if sample >= num_samples:
                break
            if sample > cursor:
                synth.generate_simple(sample - cursor, buffer=memoryview(stereo[2 * cursor : 2 * sample]).cast("B"))
                cursor = sample
            if kind:
                synth.noteon(chan, key, velocity)
            else:
                synth.noteoff(chan, key)
        if cursor < num_samples:
            synth.generate_simple(num_samples - cursor, buffer=memoryview(stereo[2 * cursor :]).cast("B"))
        return ((stereo[0::2] + stereo[1::2]) * np.float32(0.5)).astype(np.float32)


@lru_cache(maxsize=2)
def _renderer(soundfont: Path, sample_rate: int) -> _Renderer:
    return _Renderer(soundfont, sample_rate)


def render_part(part: Part, num_samples: int, config: SynthConfig | None = None) -> np.ndarray:
    """Render one part alone, from a clean synthesiser state.

    The synthesiser is created once per process (and SoundFont/sample rate) and reset and flushed
    before every part, so the result does not depend on what was rendered before.
    Not thread-safe.

    Returns:
        float32 array of shape ``(num_samples,)`` at ``config.sample_rate``, unscaled.
    """
    config = config or SynthConfig()
    return _renderer(config.resolve_soundfont(), config.sample_rate).render(part, num_samples)


def _sum_stems(stems: dict[str, np.ndarray]) -> np.ndarray:
    mix = np.zeros_like(stems[ROLES[0]], dtype=np.float32)
    for role in ROLES:
        mix += stems[role]
    return mix


#: Relative level (gated RMS, dB) of each stem before the random offset and the common normalisation.
_ROLE_LEVEL_DB = {"drums": 0.0, "bass": -1.0, "chords": -3.0, "melody": -1.0}


def _gated_rms_db(audio: np.ndarray, sample_rate: int, gate_db: float = 40.0) -> float:
    """RMS level in dB over the 50 ms frames within ``gate_db`` of the loudest frame (ignores rests)."""
    hop = max(1, round(0.05 * sample_rate))
    frames = audio[: audio.shape[0] // hop * hop].astype(np.float64).reshape(-1, hop)
    if frames.size == 0:
        frames = audio.astype(np.float64)[None, :]
    power = np.mean(frames**2, axis=1)
    top = float(power.max()) if power.size else 0.0
    if top <= 0.0:
        return -math.inf
    return float(10.0 * np.log10(np.mean(power[power >= top * 10.0 ** (-gate_db / 10.0)])))


def generate_piece(seed: int, config: SynthConfig | None = None) -> Piece:
    """Compose and render one piece.

    Args:
        seed: Non-negative integer; the output is bit-identical for the same seed and config.
        config: Generator settings (defaults to :class:`SynthConfig()`: 30 s at 44.1 kHz).

    Returns:
        A :class:`Piece` whose stems are float32 ``(config.num_samples,)`` mono arrays at
        ``config.sample_rate``; ``piece.mix`` is their exact sum with ``max|mix| <= config.mix_peak``.

    Raises:
        SoundFontNotFoundError: if no SoundFont is available.
    """
    config = config or SynthConfig()
    parts, meta = compose(seed, config)
    n = config.num_samples
    fade = min(n, round(config.fade_out_seconds * config.sample_rate))
    ramp = np.linspace(1.0, 0.0, fade, dtype=np.float64) if fade else None
    raw: dict[str, np.ndarray] = {}
    for role in ROLES:
        audio = render_part(parts[role], n, config).astype(np.float64)
        # balance: gated RMS of every stem to its role level, plus the random per-stem offset
        level = _gated_rms_db(audio, config.sample_rate)
        if math.isfinite(level):
            audio *= 10.0 ** ((_ROLE_LEVEL_DB[role] + meta["stem_gain_db"][role] - level) / 20.0)
        if ramp is not None:
            audio[n - fade :] *= ramp
        raw[role] = audio
    peak = float(np.max(np.abs(sum(raw[r] for r in ROLES))))
    if peak <= 0.0:
        raise RuntimeError(f"piece {seed} rendered silent; is {config.resolve_soundfont()} a GM SoundFont?")
    # a hair below the target so that quantisation (<= 4 * 2**-24) cannot push the peak over it
    gain = (config.mix_peak - 1e-6) / peak
    stems = {role: (np.round(raw[role] * gain / _PCM24_STEP) * _PCM24_STEP).astype(np.float32) for role in ROLES}
    meta = {
        **meta,
        "gain": gain,
        "mix_peak": float(np.max(np.abs(_sum_stems(stems)))),
        "stem_rms_dbfs": {role: round(_gated_rms_db(stems[role], config.sample_rate), 3) for role in ROLES},
    }
    return Piece(seed=int(seed), sample_rate=config.sample_rate, stems=stems, parts=parts, meta=meta)


# --------------------------------------------------------------------------------------------------
# WAV I/O (no timestamps, byte-reproducible)
# --------------------------------------------------------------------------------------------------

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write a 32-bit IEEE-float WAV (format tag 3) with ``fmt``, ``fact`` and ``data`` chunks only.

    Args:
        path: Output file; written atomically (temporary file + rename).
        audio: float array, shape ``(samples,)`` (mono) or ``(channels, samples)``; stored as float32
            without clipping, so reading it back gives the same float32 values.
        sample_rate: Sample rate in Hz.
    """
    data = np.asarray(audio, dtype=np.float32)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise ValueError(f"audio must have shape (samples,) or (channels, samples), got {data.shape}")
    channels, frames = data.shape
    payload = np.ascontiguousarray(data.T).astype("<f4").tobytes()
    fmt = struct.pack(
        "<HHIIHHH", _WAVE_FORMAT_IEEE_FLOAT, channels, sample_rate, sample_rate * 4 * channels, 4 * channels, 32, 0
    )
    body = b"".join(
        [
            b"WAVE",
            b"fmt ", struct.pack("<I", len(fmt)), fmt,
            b"fact", struct.pack("<II", 4, frames),
            b"data", struct.pack("<I", len(payload)), payload,
        ]
    )  # fmt: skip
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    os.replace(tmp, path)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM (8/16/24/32-bit) or IEEE-float (32/64-bit) WAV file without extra dependencies.

    Returns:
        ``(audio, sample_rate)`` with ``audio`` float32 of shape ``(channels, samples)``; PCM is scaled
        to [-1, 1), float data is returned as stored.

    Raises:
        ValueError: if the file is not a WAV file this reader understands.
    """
    raw = Path(path).read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a RIFF/WAVE file")
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        (size,) = struct.unpack("<I", raw[pos + 4 : pos + 8])
        body = raw[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None or len(fmt) < 16:
        raise ValueError(f"{path} has no fmt/data chunk")
    tag, channels, sample_rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        (tag,) = struct.unpack("<H", fmt[24:26])
    width = bits // 8
    if channels < 1 or block_align != width * channels:
        raise ValueError(f"{path}: unsupported WAV layout ({channels} channels, {bits} bits)")
    frames = len(data) // block_align
    data = data[: frames * block_align]
    if tag == _WAVE_FORMAT_IEEE_FLOAT and bits in (32, 64):
        samples = np.frombuffer(data, dtype=f"<f{width}").astype(np.float32)
    elif tag == _WAVE_FORMAT_PCM and bits == 8:
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _WAVE_FORMAT_PCM and bits in (16, 32):
        ints = np.frombuffer(data, dtype=f"<i{width}")
        samples = (ints.astype(np.float64) / float(2 ** (bits - 1))).astype(np.float32)
    elif tag == _WAVE_FORMAT_PCM and bits == 24:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        samples = (ints / float(1 << 23)).astype(np.float32)
    else:
        raise ValueError(f"{path}: unsupported WAV encoding (format tag {tag}, {bits} bits)")
    return np.ascontiguousarray(samples.reshape(frames, channels).T), int(sample_rate)


# --------------------------------------------------------------------------------------------------
# Dataset writing
# --------------------------------------------------------------------------------------------------


def piece_seed(seed: int, index: int) -> int:
    """Seed of piece ``index`` of a dataset generated with ``seed`` (independent streams per piece)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def piece_id(seed: int, index: int) -> str:
    """Stable directory name of piece ``index`` of the dataset with ``seed``, e.g. ``synth-s0-000042``.

    Ids depend only on ``(seed, index)``: a longer dataset with the same seed extends a shorter one,
    and datasets with different seeds (e.g. a test set) never share ids or pieces."""
    return f"synth-s{int(seed)}-{int(index):06d}"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_piece(piece: Piece, piece_dir: str | Path) -> Path:
    """Write ``mix.wav``, one ``<role>.wav`` per stem (float32 mono) and ``meta.json`` into ``piece_dir``.

    ``mix.wav`` holds :attr:`Piece.mix`, so the mix read back equals the sum of the stems read back.
    The directory is written under a temporary name and renamed when complete.
    """
    piece_dir = Path(piece_dir)
    tmp = piece_dir.with_name(f".{piece_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_wav(tmp / "mix.wav", piece.mix, piece.sample_rate)
    for role in ROLES:
        write_wav(tmp / f"{role}.wav", piece.stems[role], piece.sample_rate)
    (tmp / "meta.json").write_text(_dumps(piece.meta), encoding="utf-8")
    if piece_dir.exists():
        shutil.rmtree(piece_dir)
    os.replace(tmp, piece_dir)
    return piece_dir


def _is_complete(piece_dir: Path, seed: int, config_json: dict[str, Any]) -> bool:
    meta_path = piece_dir / "meta.json"
    if not meta_path.is_file() or not all((piece_dir / name).is_file() for name in PIECE_FILES):
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("seed") == seed and meta.get("config") == config_json


def _write_one(job: tuple[Path, int, SynthConfig, dict[str, Any]]) -> int:
    piece_dir, seed, config, config_json = job
    if _is_complete(piece_dir, seed, config_json):
        return config.num_samples
    piece = generate_piece(seed, config)
    piece = replace(piece, meta={**piece.meta, "id": piece_dir.name, "config": config_json})
    write_piece(piece, piece_dir)
    return piece.num_samples


def write_synth_dataset(
    out_dir: str | Path,
    hours: float,
    seed: int,
    piece_seconds: float | None = None,
    config: SynthConfig | None = None,
    *,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Render ``hours`` of multi-stem music into ``out_dir``.

    Layout::

        out_dir/index.json                 {"format": "lincae-synth", "version": 1, "pieces": [...], ...}
        out_dir/<piece_id>/mix.wav         float32 mono WAV, exactly drums + bass + chords + melody
        out_dir/<piece_id>/{drums,bass,chords,melody}.wav
        out_dir/<piece_id>/meta.json       tempo, key, mode, programs, progressions, seed, ...

    Piece ``i`` has id :func:`piece_id` ``(seed, i)`` and is generated from :func:`piece_seed` ``(seed, i)``,
    so the output is byte-identical for the same arguments, independent of ``workers``, and a dataset
    made with another seed (e.g. a test set) shares no piece. Complete pieces already present with the
    same seed and settings are kept (an interrupted run resumes).

    Args:
        out_dir: Output directory (created).
        hours: Total duration; ``ceil(hours * 3600 / piece_seconds)`` pieces are written.
        seed: Dataset seed.
        piece_seconds: Length of each piece; defaults to ``config.seconds`` (30 s).
        config: Generator settings.
        workers: Processes rendering in parallel (each loads the SoundFont: ~0.5 s, ~450 MB).
        progress: Called as ``progress(done, total)`` after each piece (see :func:`tqdm_progress`).

    Returns:
        The piece directories, in index order.
    """
    config = config or SynthConfig()
    if piece_seconds is not None:
        config = replace(config, seconds=float(piece_seconds))
    if not hours > 0:
        raise ValueError(f"hours must be positive, got {hours}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    config.resolve_soundfont()  # fail early, with instructions
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    count = math.ceil(hours * 3600.0 / config.seconds - 1e-9)
    config_json = config.to_json()
    jobs = [(out / piece_id(seed, i), piece_seed(seed, i), config, config_json) for i in range(count)]
    lengths: list[int] = []
    if workers == 1 or count == 1:
        for i, job in enumerate(jobs):
            lengths.append(_write_one(job))
            if progress is not None:
                progress(i + 1, count)
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for i, length in enumerate(pool.map(_write_one, jobs)):
                lengths.append(length)
                if progress is not None:
                    progress(i + 1, count)
    index = {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "seed": int(seed),
        "hours": float(hours),
        "sample_rate": config.sample_rate,
        "piece_seconds": config.seconds,
        "roles": list(ROLES),
        "files": list(PIECE_FILES),
        "config": config_json,
        "pieces": [
            {"id": job[0].name, "seed": job[1], "samples": length} for job, length in zip(jobs, lengths, strict=True)
        ],
    }
    (out / "index.json").write_text(_dumps(index), encoding="utf-8")
    return [job[0] for job in jobs]


def tqdm_progress(desc: str = "synth") -> ProgressCallback | None:
    """A :data:`ProgressCallback` drawing a tqdm bar, or ``None`` when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit="piece"))
        bar[0].update(done - bar[0].n)
        if done >= total:
            bar[0].close()

    return update
