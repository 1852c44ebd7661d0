"""Audio files and latent files: reading, resampling, atomic writing, bad input, encode/decode commands."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from lincae import Autoencoder
from lincae.cli import main
from lincae.files.audiofile import AudioFileError, AudioReader, read_audio, resample, write_audio
from lincae.io.latents import decode_latents, encode_file, load_latents, model_fingerprint, read_header, save_latents

SRC = str(Path(__file__).parents[1] / "src")


def sine(rate: int, seconds: float, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * (freq + 110 * c) * t) for c in range(channels)]).astype(np.float32)


def test_read_resamples_to_the_model_rate(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", sine(48000, 1.0, channels=2), 48000)
    audio = read_audio(path, 44100)
    assert audio.shape[0] == 2 and abs(audio.shape[-1] - 44100) <= 2
    spectrum = np.abs(np.fft.rfft(audio[0, 1000:-1000]))
    peak_hz = np.argmax(spectrum) * 44100 / (audio.shape[-1] - 2000)
    assert abs(peak_hz - 440) < 2


def test_resampling_round_trip_keeps_the_signal() -> None:
    x = sine(44100, 1.0, freq=1000)
    y = resample(resample(x, 44100, 22050), 22050, 44100)
    n = min(x.shape[-1], y.shape[-1])
    # Align by the resamplers' group delay (found by cross-correlation), then compare.
    corr = np.correlate(y[0, 2000 : n - 2000], x[0, 2000:6000], mode="valid")
    lag = int(np.argmax(corr))
    aligned = y[0, 2000 + lag : 2000 + lag + 20000]
    err = aligned - x[0, 2000:22000]
    assert 10 * np.log10(np.sum(x[0, 2000:22000] ** 2) / np.sum(err**2)) > 40  # SNR above 40 dB


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "the file is empty"), (b"RIFF\x00\x00garbage" * 40, "not a readable audio file")],
)
def test_corrupt_and_empty_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=message):
        read_audio(path, 44100)
    with pytest.raises(AudioFileError, match="no such file"):
        read_audio(tmp_path / "missing.wav", 44100)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", sine(44100, 1.0), 44100)
    data = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFileError, match=r"cut\.wav: truncated: .*s missing"):
        read_audio(cut, 44100)


def test_nan_samples_are_named(tmp_path: Path) -> None:
    x = sine(44100, 0.5)
    x[0, 11025] = np.nan
    path = write_audio(tmp_path / "nan.wav", x, 44100)
    with pytest.raises(AudioFileError, match=r"NaN or Inf sample at 0\.250 s"):
        read_audio(path, 44100)


def test_writes_are_atomic_and_never_overwrite_by_default(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.flac", sine(44100, 0.2), 44100)
    with pytest.raises(AudioFileError, match="already exists"):
        write_audio(path, sine(44100, 0.2), 44100)
    write_audio(path, sine(44100, 0.3), 44100, overwrite=True)
    with AudioReader(path, 44100) as r:
        assert r.frames == int(44100 * 0.3)
    with pytest.raises(AudioFileError, match=r"cannot write \.mp3"):
        write_audio(tmp_path / "a.mp3", sine(44100, 0.2), 44100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(AudioFileError, match="not writable"):
        write_audio(folder / "a.wav", sine(44100, 0.1), 44100)


def test_read_only_folder_message_without_permission_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root the folder check cannot be provoked with chmod; os.access is what it consults."""
    monkeypatch.setattr(os, "access", lambda *_: False)
    with pytest.raises(AudioFileError, match="is not writable"):
        write_audio(tmp_path / "a.wav", sine(44100, 0.1), 44100)


def test_full_disk_leaves_nothing_half_written(tmp_path: Path) -> None:
    """A file-size limit (the kernel refuses writes past it, like a full disk) makes the write fail cleanly."""
    code = (
        "import resource, signal, sys, numpy as np\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000))\n"
        "from lincae.files.audiofile import write_audio, AudioFileError\n"
        "try:\n"
        f"    write_audio({str(tmp_path / 'out.wav')!r}, np.zeros((2, 441000), np.float32), 44100)\n"
        "except AudioFileError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC}
    )
    assert done.returncode == 3, done.stderr
    assert "write failed" in done.stdout and "nothing was written" in done.stdout
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- latent files
def test_latent_file_round_trip(tmp_path: Path) -> None:
    model = make_tiny_model(max_batch_size=4)
    audio = write_audio(tmp_path / "in.wav", sine(22050, 1.0, channels=2), 22050)
    lf = encode_file(model, audio, chunk_seconds=0.5)
    assert lf.latents.dim() == 4 and lf.channels == 2 and lf.source_sample_rate == 22050
    path = save_latents(tmp_path / "x.latent", lf)
    back = load_latents(path)
    assert torch.equal(back.latents, lf.latents) and back.model_fingerprint == model_fingerprint(model)
    assert back.length == lf.length and back.max_chunk_size == int(0.5 * 44100)
    y = decode_latents(make_tiny_model(), back, seed=1)
    assert y.shape == (2, lf.length)
    other = make_tiny_model()
    other.scale_factor = 3.0
    with pytest.raises(ValueError, match=r"made by model 'tiny'.*pass the same model"):
        decode_latents(other, back)


def test_bad_latent_files(tmp_path: Path) -> None:
    (tmp_path / "junk.latent").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable latent file"):
        load_latents(tmp_path / "junk.latent")
    from safetensors.torch import save_file

    save_file(
        {"latents": torch.zeros(1, 64, 3)},
        str(tmp_path / "v9.latent"),
        metadata={"format": "lincae.latents", "format_version": "9"},
    )
    with pytest.raises(ValueError, match="version 9 not supported"):
        load_latents(tmp_path / "v9.latent")


def test_encode_and_decode_commands(tmp_path: Path) -> None:
    model_dir = make_tiny_model().save_pretrained(tmp_path / "model")
    src = write_audio(tmp_path / "song.wav", sine(48000, 0.5, channels=2), 48000)
    assert main(["encode", str(src), "-o", str(tmp_path / "song.latent"), "--model", str(model_dir)]) == 0
    assert (
        main(["decode", str(tmp_path / "song.latent"), "-o", str(tmp_path / "out.flac"), "--model", str(model_dir)])
        == 0
    )
    with AudioReader(tmp_path / "out.flac", 48000) as r:
        assert r.channels == 2 and round(r.source_rate) == 48000 and abs(r.frames - 24000) < 64
    # Existing outputs are kept; errors are messages with a non-zero exit, not tracebacks.
    assert (
        main(["decode", str(tmp_path / "song.latent"), "-o", str(tmp_path / "out.flac"), "--model", str(model_dir)])
        == 2
    )
    (tmp_path / "bad.wav").write_bytes(b"\x00" * 100)
    assert main(["encode", str(tmp_path / "bad.wav"), "-o", str(tmp_path / "b.latent"), "--model", str(model_dir)]) == 2
    assert not (tmp_path / "b.latent").exists()


#: The shipped model's geometry (an FFT of four latent hops, no temporal downsampling) in a model small enough
#: for tests. The conftest model's FFT is shorter than its latent hop, so it never reaches the lengths by
#: which audio may outrun what its frames decode to.
FFT_GENERATOR = dict(
    base_channels=4,
    layers_list=[1, 1, 1],
    multipliers_list=[1, 1, 1],
    attention_list=[0, 0, 0],
    freq_downsample_list=[1, 1],
    layers_list_encoder=[1, 1, 1],
    attention_list_encoder=[0, 0, 0],
    bottleneck_base_channels=8,
    bottleneck_channels=16,
    num_bottleneck_layers=1,
    hop=64,
    cond_channels=8,
)
CHUNK_SECONDS = 0.125


@pytest.fixture(scope="module")
def fft_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Autoencoder, Path]:
    """The model and its folder."""
    torch.manual_seed(0)
    model = Autoencoder({"hop_size": 64, "sample_rate": 44100}, FFT_GENERATOR, {}, name="fft", scale_factor=2.0)
    return model.eval(), model.save_pretrained(tmp_path_factory.mktemp("model") / "fft")


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2])
def test_decode_takes_every_length_encode_writes(
    rate: int, channels: int, fft_model: tuple[Autoencoder, Path], tmp_path: Path
) -> None:
    """``lincae encode`` then ``lincae decode``, from one frame to two chunks and a sample, at input rates
    other than the model's too: the length encode stores is one decode accepts."""
    model, folder = fft_model
    n_fft, hop = model.min_samples(), model.hop_length
    assert n_fft == 4 * hop
    chunk = int(CHUNK_SECONDS * model.sample_rate)
    step = chunk - int(chunk * model.overlap_percentage)
    rng = np.random.default_rng(rate + channels)
    for length in (n_fft, n_fft + hop - 1, chunk - 1, chunk, chunk + 1, chunk + step, chunk + step + 1):
        n = math.ceil(length * rate / model.sample_rate)  # at least `length` samples at the model's rate
        src = write_audio(tmp_path / f"{length}.wav", 0.1 * rng.standard_normal((channels, n), np.float32), rate)
        latent, out = tmp_path / f"{length}.latent", tmp_path / f"{length}.out.wav"
        encode = ["encode", str(src), "-o", str(latent), "--chunk-seconds", str(CHUNK_SECONDS)]
        assert main([*encode, "--model", str(folder)]) == 0, length
        assert main(["decode", str(latent), "-o", str(out), "--model", str(folder)]) == 0, length
        header = read_header(latent)
        assert header.chunked == (header.length > chunk)
        if rate == model.sample_rate:
            assert header.length == length
            assert header.shape[1] == 1 + math.ceil((length - chunk) / step) if header.chunked else True
        with AudioReader(out, rate) as r:
            assert r.channels == channels and round(r.source_rate) == rate
            assert abs(r.frames - n) <= (0 if rate == model.sample_rate else 2), (length, r.frames, n)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_get_the_users_normal_permissions(tmp_path: Path, umask: int) -> None:
    """Atomic writes (temporary file + rename) end with 0666 less the umask, like a plain open()."""
    from lincae.presets import Preset

    old = os.umask(umask)
    try:
        model = make_tiny_model()
        audio = write_audio(tmp_path / "in.wav", sine(44100, 0.2), 44100)
        written = [
            audio,
            save_latents(tmp_path / "x.latent", encode_file(model, audio)),
            model.save_pretrained(tmp_path / "model") / "model.safetensors",
            tmp_path / "model" / "config.json",
            Preset(name="p").save(tmp_path / "p.json"),
        ]
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert plain.stat().st_mode & 0o777 == expected
    for path in written:
        assert path.stat().st_mode & 0o777 == expected, (path, oct(path.stat().st_mode))
