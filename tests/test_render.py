"""Offline rendering of files through the engine and effect chains (lincae render)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model

from lincae.cli import main, parse_gain
from lincae.engine.config import EngineConfig
from lincae.engine.effects import build_chain
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.files.audiofile import AudioReader, read_audio, write_audio
from lincae.presets import list_presets, load_preset
from lincae.render.files import render_files

SRC = str(Path(__file__).parents[1] / "src")


def music(channels: int, seconds: float, rate: int = 44100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f = rng.uniform(110, 880, size=(channels, 1))
    env = np.exp(-3 * (t % 0.5))
    return (0.3 * env * np.sin(2 * np.pi * f * t) + 0.005 * rng.standard_normal((channels, t.size))).astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model().save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


def test_render_with_a_chain_equals_the_offline_engine_then_the_chain_by_hand(tmp_path: Path, model_dir: Path) -> None:
    a, b = music(1, 1.5, seed=1), music(2, 1.2, seed=2)  # mono and stereo sources, different lengths
    fa, fb = write_audio(tmp_path / "a.wav", a, 44100), write_audio(tmp_path / "b.wav", b, 44100)
    post = [
        {"plugin": "Reverb", "params": {"room_size": 0.4, "wet_level": 0.3}},
        {"plugin": "Gain", "params": {"gain_db": -3.0}},
    ]
    values = {"source.1.gain_db": -6.0, "source.2.invert": 1.0}
    model = make_tiny_model().__class__.from_pretrained(model_dir)
    result = render_files(model, [fa, fb], tmp_path / "out.wav", parameters=values, post=post, block=1000)
    assert result.plugin_errors == [] and result.channels == 2
    rendered = read_audio(result.output, 44100)
    # By hand: the engine's offline render of the same arrays, then the same chain over the whole signal.
    reg = ParameterRegistry(mixer_parameters(2))
    reg.update(values)
    mixer = LatentMixer(make_tiny_model().__class__.from_pretrained(model_dir), EngineConfig(sources=[1, 2]), reg)
    offline = render(mixer, [a, np.pad(b, ((0, 0), (0, a.shape[-1] - b.shape[-1])))])
    expected = build_chain(post).process(offline, 44100)
    assert rendered.shape == expected.shape == (2, a.shape[-1])
    assert np.abs(rendered - expected).max() < 1e-5


def test_rendering_resamples_in_and_back_out(tmp_path: Path, model_dir: Path) -> None:
    src = write_audio(tmp_path / "in.flac", music(1, 1.0, rate=48000), 48000)
    assert main(["render", str(src), "-o", str(tmp_path / "out.wav"), "--model", str(model_dir), "--no-progress"]) == 0
    with AudioReader(tmp_path / "out.wav", 48000) as r:
        assert round(r.source_rate) == 48000 and abs(r.frames - 48000) <= 2
    assert (
        main(
            [
                "render",
                str(src),
                "-o",
                str(tmp_path / "out22.ogg"),
                "--rate",
                "22050",
                "--model",
                str(model_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    with AudioReader(tmp_path / "out22.ogg", 22050) as r:
        assert round(r.source_rate) == 22050 and abs(r.frames - 22050) <= 64


@pytest.mark.parametrize("name", list_presets())
def test_every_shipped_preset_renders(tmp_path: Path, model_dir: Path, name: str) -> None:
    preset = load_preset(name)
    files = [
        str(write_audio(tmp_path / f"s{i}.wav", music(c, 0.6, seed=i), 44100))
        for i, c in enumerate(preset.engine.sources)
    ]
    out = tmp_path / "out.wav"
    assert main(["render", *files, "-o", str(out), "--preset", name, "--model", str(model_dir), "--no-progress"]) == 0
    audio = read_audio(out, 44100)
    assert audio.shape[-1] == int(0.6 * 44100) and np.isfinite(audio).all()


def test_gain_arguments() -> None:
    names = ["vocals", "drums"]
    assert parse_gain("vocals=-6dB", names) == (1, -6.0, False)
    index, db, inverted = parse_gain("drums=0.5", names)
    assert index == 2 and db == pytest.approx(-6.0206, abs=1e-4) and not inverted
    assert parse_gain("2=-1", names) == (2, 0.0, True)
    assert parse_gain("1=0", names) == (1, -60.0, False)
    with pytest.raises(ValueError, match="no source 'bass'; sources are vocals, drums"):
        parse_gain("bass=1", names)
    with pytest.raises(ValueError, match="neither a dB value"):
        parse_gain("vocals=loud", names)


def test_bad_inputs_fail_cleanly_and_write_nothing(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = str(write_audio(tmp_path / "good.wav", music(1, 0.5), 44100))
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(400))
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not audio\n" * 50)
    truncated = (tmp_path / "good.wav").read_bytes()[:30]  # a RIFF header cut before its data
    (tmp_path / "truncated.wav").write_bytes(truncated)
    inf = music(1, 0.5)
    inf[0, 100] = np.inf
    bad_inf = str(write_audio(tmp_path / "inf.wav", inf, 44100))
    nan = music(1, 0.5)
    nan[0, 200] = np.nan
    bad_nan = str(write_audio(tmp_path / "nan.wav", nan, 44100))
    out = tmp_path / "out.wav"
    cases = [
        ([str(tmp_path / "corrupt.wav")], "not a readable audio file"),
        ([str(tmp_path / "empty.wav")], "the file is empty"),
        ([str(tmp_path / "truncated.wav")], "truncated.wav"),
        ([str(tmp_path / "notes.txt")], "notes.txt"),
        ([bad_inf], "NaN or Inf sample"),
        ([bad_nan], "NaN or Inf sample"),
        ([good, "--post", "vst3(path=/nonexistent/plug.vst3)"], "plug.vst3"),
        ([good, "--post", "reverbb"], "unknown plugin"),
        ([good, "--gain", "nope=1"], "no source 'nope'"),
    ]
    for args, message in cases:
        code = main(["render", *args, "-o", str(out), "--model", str(model_dir), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert message in err, (message, err)
        assert not out.exists() and not list(tmp_path.glob(".out*")), args
    write_audio(out, music(1, 0.1), 44100)
    assert main(["render", good, "-o", str(out), "--model", str(model_dir), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_render_into_a_read_only_folder_fails_cleanly(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, chmod cannot make a folder read-only; ``os.access`` is what the writer consults."""
    good = str(write_audio(tmp_path / "good.wav", music(1, 0.5), 44100))
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != folder and real_access(p, mode, **kw))
    code = main(["render", good, "-o", str(folder / "out.wav"), "--model", str(model_dir), "--no-progress"])
    assert code == 2
    assert "not writable" in capsys.readouterr().err
    assert list(folder.iterdir()) == []


def test_full_disk_during_render_leaves_no_file(tmp_path: Path, model_dir: Path) -> None:
    src = str(write_audio(tmp_path / "in.wav", music(2, 2.0), 44100))
    out = tmp_path / "out" / "x.wav"
    out.parent.mkdir()

    def limit() -> None:
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    done = subprocess.run(
        [sys.executable, "-m", "lincae", "render", src, "-o", str(out), "--model", str(model_dir), "--no-progress"],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert done.returncode == 2, done.stderr
    assert "write failed" in done.stderr and "nothing was written" in done.stderr
    assert list(out.parent.iterdir()) == []


def test_progress_reports_audio_seconds_and_speed_and_stays_silent_on_quick_errors(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = str(write_audio(tmp_path / "good.wav", music(1, 1.0), 44100))
    missing = str(tmp_path / "missing.wav")
    assert main(["render", missing, "-o", str(tmp_path / "x.wav"), "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert "% |" not in err and "s of audio" not in err and "no such file" in err
    assert main(["render", good, "-o", str(tmp_path / "out.wav"), "--model", str(model_dir)]) == 0
    err = capsys.readouterr().err
    assert "1.0/1.0 s of audio" in err and "× real time" in err and "s/s" not in err
