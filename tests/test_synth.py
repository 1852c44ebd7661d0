"""Tests of the procedural multi-stem music generator (lincae.data.synth)."""

from __future__ import annotations

import itertools
import json
import os
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from lincae.data import synth
from lincae.data.pieces import StemFolder, read_piece
from lincae.data.synth import (
    DATASET_FORMAT,
    DATASET_VERSION,
    PIECE_FILES,
    ROLES,
    Note,
    Part,
    SoundFontNotFoundError,
    SynthConfig,
    compose,
    generate_piece,
    piece_id,
    piece_seed,
    read_wav,
    render_part,
    write_synth_dataset,
    write_wav,
)

SR = 44100
CFG = SynthConfig(seconds=5.0)


def _soundfont_or_skip() -> Path:
    try:
        return SynthConfig().resolve_soundfont()
    except SoundFontNotFoundError as err:
        pytest.skip(f"General MIDI SoundFont not installed (apt-get install fluid-soundfont-gm): {err}")


@pytest.fixture(scope="module")
def soundfont() -> Path:
    return _soundfont_or_skip()


@pytest.fixture(scope="module")
def piece0(soundfont: Path) -> synth.Piece:
    return generate_piece(0, CFG)


@pytest.fixture(scope="module")
def piece1(soundfont: Path) -> synth.Piece:
    return generate_piece(1, CFG)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ composition (no SoundFont needed)


def test_compose_is_deterministic() -> None:
    parts_a, meta_a = compose(7, CFG)
    parts_b, meta_b = compose(7, CFG)
    assert parts_a == parts_b
    assert meta_a == meta_b
    parts_c, _ = compose(8, CFG)
    assert parts_c != parts_a
    json.dumps(meta_a)  # JSON-serialisable


def test_compose_is_musical_over_many_seeds() -> None:
    config = SynthConfig(seconds=20.0)
    modes, keys, styles, programs = set(), set(), set(), set()
    for seed in range(40):
        parts, meta = compose(seed, config)
        modes.add(meta["mode"])
        keys.add(meta["key"])
        styles.add(meta["drum_style"])
        programs.add(meta["programs"]["melody"]["program"])
        assert 80.0 <= meta["tempo_bpm"] <= 150.0
        assert set(parts) == set(ROLES)
        assert meta["progressions"]["A"] and meta["progressions"]["B"]
        drums = parts["drums"]
        assert drums.is_drums and drums.channel == 9 and drums.bank == 128
        assert 32 <= parts["bass"].program <= 39
        scale = set(meta["scale"])
        if meta["mode"] == "minor":
            scale.add((meta["tonic_pitch_class"] + 11) % 12)  # raised leading tone of a harmonic V
        for role, part in parts.items():
            assert len(part.notes) >= 8, (seed, role)
            starts = [n.start for n in part.notes]
            assert starts == sorted(starts)
            for n in part.notes:
                assert 0.0 <= n.start < config.seconds and n.end > n.start and 1 <= n.velocity <= 127
            # a note-off must never cut a later note of the same key
            last_end: dict[int, float] = {}
            for n in part.notes:
                assert n.start >= last_end.get(n.key, -1.0) - 1e-9, (seed, role, n)
                last_end[n.key] = n.end
            if role in ("chords", "melody"):
                assert {n.key % 12 for n in part.notes} <= scale, (seed, role)
        bass_keys = [n.key for n in parts["bass"].notes]
        melody_keys = [n.key for n in parts["melody"].notes]
        assert 28 <= min(bass_keys) and max(bass_keys) <= 60
        assert np.median(melody_keys) > np.median(bass_keys) + 18
        assert {n.key for n in drums.notes} <= {36, 38, 39, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51}
        # the melody breathes: there is at least one rest of a beat or more
        spb = 60.0 / meta["tempo_bpm"]
        notes = parts["melody"].notes
        gaps = [b.start - a.end for a, b in itertools.pairwise(notes)]
        assert max(gaps) > 0.5 * spb, seed
    assert modes == {"major", "minor"}
    assert len(keys) >= 8 and len(styles) >= 4 and len(programs) >= 8


def test_strong_beats_of_the_melody_are_mostly_chord_tones() -> None:
    hits = total = 0
    for seed in range(20):
        parts, meta = compose(seed, SynthConfig(seconds=20.0, timing_jitter_ms=0.0))
        spb = 60.0 / meta["tempo_bpm"]
        tonic = meta["tonic_pitch_class"]
        if meta["swing"]:
            continue
        for n in parts["melody"].notes:
            beat = n.start / spb
            if abs(beat - round(beat)) > 1e-6 or round(beat) % 2:
                continue  # only notes on beats 1 and 3
            chord = next(c for c in reversed(meta["chords"]) if c[0] <= beat + 1e-6)
            pcs = _chord_pitch_classes(chord[2], tonic, meta["mode"])
            total += 1
            hits += n.key % 12 in pcs
    assert total > 100
    assert hits / total > 0.9


def _chord_pitch_classes(numeral: str, tonic: int, mode: str) -> set[int]:
    """Pitch classes of a chord named like the generator names it (I, vi, V7, iidim, IVmaj7 ...)."""
    base = numeral.replace("maj7", "").replace("7", "").replace("dim", "")
    degree = [r.lower() for r in ("I", "II", "III", "IV", "V", "VI", "VII")].index(base.lower())
    steps = list((0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10))
    if mode == "minor" and degree == 4 and base.isupper():
        steps[6] += 1
    count = 4 if numeral.endswith("7") else 3
    return {(tonic + steps[(degree + 2 * k) % 7]) % 12 for k in range(count)}


def test_config_validation_and_missing_soundfont_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        SynthConfig(seconds=0)
    with pytest.raises(ValueError):
        SynthConfig(mix_peak=1.5)
    with pytest.raises(SoundFontNotFoundError, match="apt-get install fluid-soundfont-gm"):
        SynthConfig(soundfont=tmp_path / "missing.sf2").resolve_soundfont()
    monkeypatch.setenv(synth.SOUNDFONT_ENV, str(tmp_path / "also-missing.sf2"))
    with pytest.raises(SoundFontNotFoundError, match="LINCAE_SOUNDFONT"):
        SynthConfig().resolve_soundfont()
    with pytest.raises(SoundFontNotFoundError):
        write_synth_dataset(tmp_path / "out", hours=0.001, seed=0)
    assert not (tmp_path / "out").exists()


def test_piece_ids_and_seeds_are_stable() -> None:
    assert piece_id(0, 3) == "synth-s0-000003"
    assert piece_id(0, 3) != piece_id(1, 3)
    assert piece_seed(0, 3) == piece_seed(0, 3)
    seeds = {piece_seed(s, i) for s in range(3) for i in range(100)}
    assert len(seeds) == 300


# ------------------------------------------------------------------ WAV I/O


def test_float_wav_roundtrip_is_exact_and_reproducible(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(1001) * 0.5).astype(np.float32)
    audio[3] = 1.7  # float WAV must not clip
    write_wav(tmp_path / "a.wav", audio, SR)
    write_wav(tmp_path / "b.wav", audio, SR)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == SR and back.dtype == np.float32 and back.shape == (1, 1001)
    assert np.array_equal(back[0], audio)
    raw = (tmp_path / "a.wav").read_bytes()
    assert raw[:4] == b"RIFF" and struct.unpack("<H", raw[20:22])[0] == 3  # IEEE float
    assert len(raw) == 4 + 4 + 4 + (8 + 18) + (8 + 4) + (8 + 4 * 1001)

    stereo = rng.uniform(-1, 1, (2, 500)).astype(np.float32)
    write_wav(tmp_path / "s.wav", stereo, 22050)
    back, rate = read_wav(tmp_path / "s.wav")
    assert rate == 22050 and np.array_equal(back, stereo)

    pedalboard_io = pytest.importorskip("pedalboard.io")
    with pedalboard_io.AudioFile(str(tmp_path / "a.wav")) as f:
        assert f.samplerate == SR
        assert np.array_equal(f.read(f.frames)[0], audio)


def test_read_wav_reads_pcm16(tmp_path: Path) -> None:
    ints = np.array([0, 16384, -32768, 32767], dtype="<i2")
    with wave.open(str(tmp_path / "p.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(ints.tobytes())
    audio, rate = read_wav(tmp_path / "p.wav")
    assert rate == 8000
    np.testing.assert_array_equal(audio[0], ints / 32768.0)
    (tmp_path / "bad.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError):
        read_wav(tmp_path / "bad.wav")


# ------------------------------------------------------------------ rendering (needs the SoundFont)


def test_piece_shapes_levels_and_exact_mix(piece0: synth.Piece) -> None:
    n = round(CFG.seconds * SR)
    assert piece0.sample_rate == SR and piece0.num_samples == n
    assert set(piece0.stems) == set(ROLES)
    for role, stem in piece0.stems.items():
        assert stem.dtype == np.float32 and stem.shape == (n,), role
        assert np.all(np.isfinite(stem))
        assert _rms(stem) > 10 ** (-45 / 20), f"{role} is (nearly) silent"
        # on the 24-bit grid, which makes every float32 sum of stems exact
        assert np.array_equal(np.round(stem.astype(np.float64) * 2**23), stem.astype(np.float64) * 2**23)
    mix = piece0.mix
    assert mix.dtype == np.float32 and mix.shape == (n,)
    assert float(np.max(np.abs(mix))) <= CFG.mix_peak
    assert float(np.max(np.abs(mix))) > 0.85  # normalised, not just clipped down
    exact = sum(piece0.stems[r].astype(np.float64) for r in ROLES)
    assert np.array_equal(mix.astype(np.float64), exact)
    reversed_sum = np.zeros(n, np.float32)
    for role in reversed(ROLES):
        reversed_sum += piece0.stems[role]
    assert np.array_equal(reversed_sum, mix)
    assert piece0.meta["seed"] == 0 and piece0.meta["samples"] == n
    for key in ("tempo_bpm", "key", "mode", "programs", "progressions", "gain"):
        assert key in piece0.meta


def test_same_seed_same_audio_different_seed_different_audio(piece0: synth.Piece, piece1: synth.Piece) -> None:
    again = generate_piece(0, CFG)  # rendered after piece1: the synth state must not leak
    for role in ROLES:
        assert np.array_equal(again.stems[role], piece0.stems[role]), role
        assert not np.array_equal(piece1.stems[role], piece0.stems[role]), role
    assert again.meta == piece0.meta
    assert piece1.meta["tempo_bpm"] != piece0.meta["tempo_bpm"] or piece1.meta["key"] != piece0.meta["key"]


def test_stems_have_energy_where_notes_are(piece0: synth.Piece, piece1: synth.Piece) -> None:
    for piece in (piece0, piece1):
        for role in ROLES:
            stem = piece.stems[role]
            notes = piece.parts[role].notes
            first = round(notes[0].start * SR)
            assert not np.any(stem[:first]), f"{role}: sound before the first note"
            peak = float(np.max(np.abs(stem)))
            voiced = 0
            for note in notes:
                a = round(note.start * SR)
                b = min(a + round(0.08 * SR), stem.shape[0])
                voiced += _rms(stem[a:b]) > 1e-3 * peak
            assert voiced >= 0.95 * len(notes), (role, voiced, len(notes))


def test_rendered_part_follows_its_notes(soundfont: Path) -> None:
    organ = Part("chords", 1, 0, 16, False, (Note(1.0, 1.5, 60, 100), Note(1.0, 1.5, 64, 100), Note(3.0, 3.3, 67, 100)))
    audio = render_part(organ, 4 * SR, CFG)
    assert audio.dtype == np.float32 and audio.shape == (4 * SR,)
    assert not np.any(audio[: SR - 1])  # silent before the first note-on
    assert _rms(audio[int(1.05 * SR) : int(1.45 * SR)]) > 1e-2
    assert _rms(audio[int(2.6 * SR) : int(2.99 * SR)]) < 1e-4  # released and decayed
    assert _rms(audio[int(3.05 * SR) : int(3.25 * SR)]) > 1e-2
    # pitch: G4 (392 Hz) is present, its neighbouring semitones are not
    seg = audio[int(3.05 * SR) : int(3.25 * SR)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    freqs = np.fft.rfftfreq(seg.size, 1 / SR)

    def level(f: float) -> float:
        return float(spectrum[np.abs(freqs - f) < 6].max())

    assert level(392.0) > 5 * max(level(370.0), level(415.3))


def test_no_bleed_between_stems(soundfont: Path) -> None:
    melody = Part("melody", 2, 0, 73, False, (Note(0.05, 0.6, 72, 100), Note(0.7, 1.4, 76, 90)))
    # long, loud, never released strings and a crash: tails that would leak without reset + flush
    loud = Part(
        "chords",
        1,
        0,
        48,
        False,
        tuple(Note(0.0, 10.0, k, 127) for k in (48, 55, 60, 64, 67)),
    )
    crash = Part("drums", 9, 128, 0, True, (Note(0.9, 2.0, 49, 127), Note(0.95, 2.0, 57, 127)))
    n = int(1.5 * SR)
    alone = render_part(melody, n, CFG)
    render_part(loud, n, CFG)
    after_pad = render_part(melody, n, CFG)
    render_part(crash, n, CFG)
    after_crash = render_part(melody, n, CFG)
    assert _rms(alone) > 1e-3
    assert np.array_equal(after_pad, alone)
    assert np.array_equal(after_crash, alone)
    # and identical to a brand-new synthesiser
    fresh = synth._Renderer(soundfont, SR).render(melody, n)
    assert np.array_equal(fresh, alone)


def test_bass_is_lower_than_melody(piece0: synth.Piece, piece1: synth.Piece) -> None:
    def centroid(x: np.ndarray) -> float:
        mag = np.abs(np.fft.rfft(x.astype(np.float64)))
        freqs = np.fft.rfftfreq(x.size, 1 / SR)
        return float(np.sum(freqs * mag) / np.sum(mag))

    for piece in (piece0, piece1):
        assert centroid(piece.stems["bass"]) < centroid(piece.stems["melody"])


# ------------------------------------------------------------------ dataset on disk


def test_write_synth_dataset(tmp_path: Path, soundfont: Path) -> None:
    seconds = 3.0
    hours = 2 * seconds / 3600
    calls: list[tuple[int, int]] = []
    dirs = write_synth_dataset(
        tmp_path / "a", hours=hours, seed=5, piece_seconds=seconds, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 2), (2, 2)]
    assert [d.name for d in dirs] == [piece_id(5, 0), piece_id(5, 1)]
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert index["format"] == DATASET_FORMAT and index["version"] == DATASET_VERSION
    assert [p["id"] for p in index["pieces"]] == [d.name for d in dirs]
    assert index["sample_rate"] == SR and index["piece_seconds"] == seconds

    n = round(seconds * SR)
    for i, d in enumerate(dirs):
        assert sorted(p.name for p in d.iterdir()) == sorted([*PIECE_FILES, "meta.json"])
        meta = json.loads((d / "meta.json").read_text())
        assert meta["seed"] == piece_seed(5, i) and meta["id"] == d.name
        stems = read_piece(d)
        assert set(stems) == {"mix", *ROLES}
        for name, audio in stems.items():
            assert audio.dtype == np.float32 and audio.shape == (n,), name
        total = np.zeros(n, np.float32)
        for role in ROLES:
            total += stems[role]
        assert np.array_equal(stems["mix"], total)  # the mix on disk is exactly the sum on disk
        assert np.array_equal(stems["mix"].astype(np.float64), sum(stems[r].astype(np.float64) for r in ROLES))
        assert float(np.max(np.abs(stems["mix"]))) <= 0.9
        # what was written is what generate_piece returns for the piece seed
        piece = generate_piece(piece_seed(5, i), SynthConfig(seconds=seconds))
        for role in ROLES:
            assert np.array_equal(stems[role], piece.stems[role])

    # byte-identical when written again; another seed gives other ids and other audio
    write_synth_dataset(tmp_path / "b", hours=hours, seed=5, piece_seconds=seconds)
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")
    other = write_synth_dataset(tmp_path / "c", hours=hours / 2, seed=6, piece_seconds=seconds)
    assert [d.name for d in other] == [piece_id(6, 0)]
    assert (other[0] / "mix.wav").read_bytes() != (dirs[0] / "mix.wav").read_bytes()

    # resuming keeps complete pieces and re-renders damaged ones
    (dirs[1] / "bass.wav").unlink()
    mtime = (dirs[0] / "mix.wav").stat().st_mtime_ns
    write_synth_dataset(tmp_path / "a", hours=hours, seed=5, piece_seconds=seconds)
    assert (dirs[0] / "mix.wav").stat().st_mtime_ns == mtime
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")

    folder = StemFolder(tmp_path / "a")
    assert len(folder) == 2 and folder.ids[1] == piece_id(5, 1)
    assert folder.meta(1)["seed"] == piece_seed(5, 1)
    assert np.array_equal(folder[0]["mix"], read_piece(dirs[0])["mix"])

    # a folder of datasets (one per SoundFont, say) holds the pieces of each, dataset by dataset
    both = StemFolder(tmp_path)
    assert both.ids[:2] == tuple(f"a/{i}" for i in folder.ids) and len(both) == 2 + 2 + 1
    assert np.array_equal(both[0]["mix"], folder[0]["mix"])


def test_write_synth_dataset_validates(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_synth_dataset(tmp_path, hours=0, seed=0)
    with pytest.raises(ValueError):
        write_synth_dataset(tmp_path, hours=1, seed=0, workers=0)


def test_parallel_workers_write_the_same_bytes(tmp_path: Path, soundfont: Path) -> None:
    hours = 2 * 2.0 / 3600
    write_synth_dataset(tmp_path / "one", hours=hours, seed=9, piece_seconds=2.0)
    write_synth_dataset(tmp_path / "two", hours=hours, seed=9, piece_seconds=2.0, workers=2)
    assert _file_bytes(tmp_path / "one") == _file_bytes(tmp_path / "two")


def test_import_has_no_side_effects() -> None:
    code = (
        "import sys, lincae.data, lincae.data.synth, lincae.data.pieces;"
        "assert not [m for m in sys.modules if m.startswith(('tinysoundfont', 'pedalboard'))], 'eager import'"
    )
    src = Path(synth.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=src.parent)
