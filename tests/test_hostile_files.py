"""A corpus of hostile files — presets, chain files, audio, latent files — and what the product does with them.

Each class of hostile input gets a section: the file is made here (in ``tmp_path``), opened the way a user
would open it, and the test checks that it is refused with a one-line error and that nothing else happened
(no plugin code ran, no output or temporary file was left, the old output is intact).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model

from lincae.cli import main
from lincae.engine.effects import PluginNotAllowed, build_chain, load_failures, parse_chain_arg, plugin_scope
from lincae.files.audiofile import write_audio
from lincae.presets import load_preset

SR = 44100


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model().save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


def music(channels: int, seconds: float, rate: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f = rng.uniform(110, 880, size=(channels, 1))
    return (0.3 * np.exp(-3 * (t % 0.5)) * np.sin(2 * np.pi * f * t)).astype(np.float32)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The command's error output, which must be one line."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# -- presets that name a plugin: its library's constructor must not run ------------------------------

_CONSTRUCTOR = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void ran(void) {
    const char *marker = getenv("LINCAE_TEST_MARKER");
    if (marker) { FILE *f = fopen(marker, "w"); if (f) { fputs("ran\n", f); fclose(f); } }
}
"""


@pytest.fixture(scope="module")
def built_trap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``…/Gentle Room.vst3``: a bundle whose library writes ``$LINCAE_TEST_MARKER`` when opened."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("g++")
    if cc is None or not os.uname().sysname == "Linux":
        pytest.skip("needs a C compiler on Linux to build a shared library")
    root = tmp_path_factory.mktemp("traps")
    source = root / "trap.c"
    source.write_text(_CONSTRUCTOR)
    bundle = root / "Gentle Room.vst3"
    binary = bundle / "Contents" / f"{os.uname().machine}-linux" / "Gentle Room.so"
    binary.parent.mkdir(parents=True)
    args = [cc, "-x", "c", "-shared", "-fPIC", "-o", str(binary), str(source)]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    return bundle


def copy_trap(built: Path, folder: Path) -> Path:
    """A fresh copy of the bundle in ``folder`` (a library already opened in this process is not run again)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(built, folder / built.name, symlinks=True))


@pytest.fixture
def booby_trap(built_trap: Path, tmp_path: Path) -> Path:
    return copy_trap(built_trap, tmp_path / "traps")


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "constructor-ran"
    monkeypatch.setenv("LINCAE_TEST_MARKER", str(path))
    monkeypatch.delenv("LINCAE_PLUGIN_PATH", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return path


def room_preset(tmp_path: Path, plugin_path: str, name: str = "room.json") -> Path:
    preset = {
        "format": "lincae.preset",
        "schema_version": 1,
        "name": "a gentle room",
        "engine": {"sources": [1]},
        "chains": {"post": [{"plugin": "vst3", "path": plugin_path}]},
    }
    path = tmp_path / name
    path.write_text(json.dumps(preset))
    return path


def test_a_preset_cannot_load_a_plugin_outside_the_plugin_folders(
    booby_trap: Path, marker: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(write_audio(tmp_path / "in.wav", music(1, 0.5), SR))
    preset = room_preset(tmp_path, str(booby_trap))
    render = ["render", src, "-o", str(tmp_path / "out.wav"), "--model", str(model_dir), "--no-progress"]
    assert main([*render, "--preset", str(preset)]) == 2
    err = error_line(capsys)
    assert "outside the plugin folders" in err and "--plugin-path" in err and "LINCAE_PLUGIN_PATH" in err
    assert not marker.exists(), "the plugin's library was opened"
    assert not (tmp_path / "out.wav").exists()
    # The same preset from Python, and a chain file, are refused the same way (live builds its chains so too).
    with pytest.raises(PluginNotAllowed):
        load_preset(preset).build_chains()
    _, post = load_preset(preset).build_chains(on_load_error="bypass")  # live: bypassed, and says why
    assert next(f.message for f in load_failures(post)).count("outside the plugin folders") == 1
    chain_file = tmp_path / "chain.json"
    chain_file.write_text(json.dumps([{"plugin": "vst3", "path": str(booby_trap)}]))
    with plugin_scope(), pytest.raises(PluginNotAllowed):
        build_chain(parse_chain_arg(str(chain_file)))
    assert not marker.exists()
    # Once the user allows the folder, the plugin is loaded (this one is no real VST3, so it then fails).
    assert main([*render, "--preset", str(preset), "--plugin-path", str(booby_trap.parent)]) == 2
    assert "could not load vst3 plugin" in error_line(capsys) and marker.exists()


def test_allowing_a_folder_through_the_environment_or_the_settings_file(
    booby_trap: Path, built_trap: Path, marker: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = load_preset(room_preset(tmp_path, str(booby_trap)))
    settings = tmp_path / "config" / "lincae" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"plugin_path": [str(booby_trap.parent)]}))
    with pytest.raises(ValueError, match="could not load vst3 plugin"):
        preset.build_chains()
    assert marker.exists()
    marker.unlink()
    settings.unlink()
    second = copy_trap(built_trap, tmp_path / "more-traps")
    monkeypatch.setenv("LINCAE_PLUGIN_PATH", str(second.parent))
    # A bare name is looked up in the plugin folders.
    with pytest.raises(ValueError, match="could not load vst3 plugin"):
        load_preset(room_preset(tmp_path, booby_trap.name, "by-name.json")).build_chains()
    assert marker.exists()


def test_a_plugin_path_cannot_climb_or_link_out_of_a_plugin_folder(
    booby_trap: Path, marker: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "plugins"
    allowed.mkdir()
    (allowed / "Link.vst3").symlink_to(booby_trap, target_is_directory=True)
    monkeypatch.setenv("LINCAE_PLUGIN_PATH", str(allowed))
    climbing = os.path.relpath(booby_trap, allowed)
    for path in (climbing, str(allowed / climbing), "Link.vst3", str(allowed / "Link.vst3")):
        with pytest.raises(PluginNotAllowed, match="outside the plugin folders"):
            load_preset(room_preset(tmp_path, path)).build_chains()
    assert not marker.exists()


LEFT_OUT = [
    ("settings", ""),
    ("settings", ["/opt/x", ""]),
    ("settings", ["."]),
    ("settings", ["./"]),
    ("settings", ["../traps"]),
    ("environment", "."),
    ("environment", f"/opt/x{os.pathsep}"),
    ("environment", f"{os.pathsep}."),
    ("environment", "../traps"),
]


@pytest.mark.parametrize(("source", "entries"), LEFT_OUT, ids=[f"{s}-{e!r}" for s, e in LEFT_OUT])
def test_empty_relative_and_dot_plugin_folders_trust_nothing(
    source: str,
    entries: str | list[str],
    booby_trap: Path,
    marker: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Such an entry would trust the folder a command runs in: here, the one that holds the plugin."""
    monkeypatch.chdir(booby_trap.parent)
    if source == "settings":
        settings = tmp_path / "config" / "lincae" / "settings.json"
        settings.parent.mkdir(parents=True)
        settings.write_text(json.dumps({"plugin_path": entries}))
    else:
        monkeypatch.setenv("LINCAE_PLUGIN_PATH", str(entries))
    with pytest.raises(PluginNotAllowed, match="left out, not being absolute folders"):
        load_preset(room_preset(tmp_path, str(booby_trap))).build_chains()
    with pytest.raises(FileNotFoundError, match="in none of the plugin folders"):
        load_preset(room_preset(tmp_path, booby_trap.name, "by-name.json")).build_chains()
    assert not marker.exists(), "the plugin's library was opened"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("/dev/zero", "larger than 4 MiB"),
        ("nested", "nested deeper than 32 levels"),
        ("16 MB", "larger than 4 MiB"),
        ("[1, 2", "Expecting"),
    ],
)
def test_a_hostile_settings_file_is_one_line(
    content: str, named: str, marker: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "config" / "lincae" / "settings.json"
    settings.parent.mkdir(parents=True)
    if content == "/dev/zero":
        settings.symlink_to("/dev/zero")
    elif content == "nested":
        settings.write_text('{"plugin_path": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif content == "16 MB":
        settings.write_text(json.dumps({"plugin_path": ["/opt/x"], "padding": "x" * 16 * 2**20}))
    else:
        settings.write_text(content)
    src = str(write_audio(tmp_path / "in.wav", music(1, 0.5), SR))
    out = tmp_path / "out.wav"
    preset = str(room_preset(tmp_path, "Gentle Room.vst3"))
    assert main(["render", src, "-o", str(out), "--model", str(model_dir), "--no-progress", "--preset", preset]) == 2
    err = error_line(capsys)
    assert f"{settings}: cannot read the settings file" in err and named in err, err
    assert "Traceback" not in err and not out.exists()


def test_a_plugin_typed_on_the_command_line_is_the_users_choice(
    booby_trap: Path, marker: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(write_audio(tmp_path / "in.wav", music(1, 0.5), SR))
    render = ["render", src, "-o", str(tmp_path / "out.wav"), "--model", str(model_dir), "--no-progress"]
    assert main([*render, "--post", f"vst3('{booby_trap}')"]) == 2
    assert "could not load vst3 plugin" in error_line(capsys) and marker.exists()
    # ... for that command only: a preset naming the same file afterwards is refused again.
    with pytest.raises(PluginNotAllowed):
        load_preset(room_preset(tmp_path, str(booby_trap))).build_chains()


def test_a_preset_name_does_not_leave_the_presets_folder(tmp_path: Path) -> None:
    from lincae.presets import preset_path, shipped_presets_dir

    room_preset(tmp_path, "Room.vst3", "evil.json")  # a preset where a name must not reach
    for name in (os.path.relpath(tmp_path / "evil", shipped_presets_dir()), str(tmp_path / "evil")):
        with pytest.raises(FileNotFoundError, match="not a preset name"):
            preset_path(name)
        with pytest.raises(FileNotFoundError, match="preset file not found"):  # a path: the file, not evil.json
            load_preset(name)
    assert load_preset("default").name  # shipped presets still load by name
    assert load_preset(tmp_path / "evil.json").name == "a gentle room"  # and a file by its path


def test_a_name_typed_on_the_command_line_is_never_a_file_in_the_current_folder(
    booby_trap: Path,
    marker: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--preset default`` is the shipped preset and ``--post reverb`` the built-in reverb, whatever
    ``./default`` and ``./reverb`` hold (here: a preset and a chain that name a plugin outside the plugin
    folders); a file is named by its path."""
    from lincae.presets import Preset, shipped_presets_dir

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    shutil.copy(room_preset(tmp_path, str(booby_trap)), work / "default")
    (work / "reverb").write_text(json.dumps([{"plugin": "vst3", "path": str(booby_trap)}]))
    write_audio(work / "in.wav", music(1, 0.5), SR)
    render = ["render", "in.wav", "--model", str(model_dir), "--no-progress"]
    assert main([*render, "-o", "preset.wav", "--preset", "default"]) == 0
    assert main([*render, "-o", "post.wav", "--post", "reverb"]) == 0
    assert main([*render, "-o", "pre.wav", "--pre", "1=reverb"]) == 0
    capsys.readouterr()
    assert load_preset("default") == Preset.load(shipped_presets_dir() / "default.json")
    assert parse_chain_arg("reverb") == parse_chain_arg("reverb()")
    assert not marker.exists(), "the plugin's library was opened"
    # Named by their paths, they are the files (which may not load that plugin).
    for option in (["--preset", "./default"], ["--post", "./reverb"], ["--pre", f"1={work / 'reverb'}"]):
        assert main([*render, "-o", "file.wav", *option]) == 2
        assert "outside the plugin folders" in error_line(capsys)
    assert not (work / "file.wav").exists() and not marker.exists()
    # A name that is not shipped says how to name the file of that name.
    (work / "mine").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"no shipped preset 'mine'.*write \./mine"):
        load_preset("mine")
    with pytest.raises(ValueError, match=r"write \./mine"):
        parse_chain_arg("mine")
    from lincae.engine.effects import names_a_chain_file

    assert names_a_chain_file("tape.json") and names_a_chain_file("chains/tape")
    assert not names_a_chain_file("vst3('./Foo.vst3'),reverb") and not names_a_chain_file("reverb")


# -- truncated audio: refused, saying how much is missing -----------------------------------------

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff")


def noisy_tone(seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = music(channels, seconds, seed=seed) + 0.02 * rng.standard_normal((channels, int(SR * seconds)))
    return x.astype(np.float32)


def write_any(path: Path, audio: np.ndarray, rate: int = SR) -> Path:
    """Any readable format (pedalboard writes mp3 and aiff too; lincae itself writes wav, flac, ogg)."""
    from pedalboard.io import AudioFile

    with AudioFile(str(path), "w", rate, audio.shape[0]) as f:
        f.write(audio)
    return path


@pytest.mark.parametrize("suffix", AUDIO_SUFFIXES)
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_audio_is_refused(
    suffix: str, keep: float, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = write_any(tmp_path / f"whole{suffix}", noisy_tone(2.0))
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])
    out = tmp_path / "out.wav"
    assert main(["render", str(cut), "-o", str(out), "--model", str(model_dir), "--no-progress"]) == 2
    err = error_line(capsys)
    assert f"cut{suffix}: truncated" in err, err
    if suffix in (".wav", ".flac", ".aiff"):
        assert "s missing" in err
    assert not out.exists()
    assert main(["encode", str(cut), "-o", str(tmp_path / "z.latent"), "--model", str(model_dir)]) == 2
    assert "truncated" in error_line(capsys)


@pytest.mark.parametrize("suffix", AUDIO_SUFFIXES)
def test_whole_files_are_not_mistaken_for_truncated_ones(suffix: str, tmp_path: Path) -> None:
    from lincae.files.audiofile import read_audio

    for seed, (channels, seconds, rate) in enumerate([(1, 0.3, 44100), (2, 1.7, 48000), (1, 2.3, 22050)] * 3):
        path = write_any(
            tmp_path / f"w{seed}{suffix}", noisy_tone(seconds, channels, seed)[:, : int(seconds * rate)], rate
        )
        assert read_audio(path, 44100).shape[0] == channels


# -- audio whose header or name lies: refused when opened, before any work ----------------------------


def wav_claiming(path: Path, rate: int) -> Path:
    """Half a second of audio written at 44.1 kHz, in a WAV whose header then claims ``rate`` Hz."""
    import struct

    write_audio(path, music(1, 0.5), SR)
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ")
    data[fmt + 12 : fmt + 16] = struct.pack("<I", rate)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [1, 7999, 384_001, 4_000_000])
def test_an_input_rate_outside_8_to_384_khz_is_refused_before_any_work(
    rate: int, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    src = wav_claiming(tmp_path / "liar.wav", rate)
    said = f"liar.wav: sample rate {rate} Hz is outside 8000–384000 Hz; not read"
    if rate == 1:  # 88 kB at 1 Hz would be 12 hours of audio: in a process of its own, so a regression times out
        args = ["encode", str(src), "-o", str(tmp_path / "z.latent"), "--model", str(model_dir)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
        done = subprocess.run(
            [sys.executable, "-m", "lincae", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [f"lincae encode: error: {tmp_path / said}"]
    for args in (
        ["encode", str(src), "-o", str(tmp_path / "z.latent")],
        ["render", str(src), "-o", str(tmp_path / "out.wav"), "--no-progress"],
        [
            "render",
            str(write_audio(tmp_path / "ok.wav", music(1, 0.5), SR)),
            "-o",
            str(tmp_path / "out.wav"),
            "--no-progress",
            "--post",
            f"convolution(impulse_response_filename='{src}')",
        ],
    ):
        assert main([*args, "--model", str(model_dir)]) == 2
        assert said in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liar.wav", "ok.wav"]


def test_the_edges_of_the_input_rates_are_read(tmp_path: Path) -> None:
    from lincae.files.audiofile import read_audio

    for rate in (8000, 384_000):
        audio = read_audio(wav_claiming(tmp_path / f"{rate}.wav", rate), 44100)
        assert abs(audio.shape[-1] - round(0.5 * SR * 44100 / rate)) <= 2


def container_bytes(kind: str, tmp_path: Path) -> bytes:
    """The bytes of a real ``kind`` file (``wav``, ``flac``, ``ogg``), or of random data / text."""
    if kind.startswith("random"):  # random 1: its first bytes happen to be an MPEG frame header
        return np.random.default_rng(int(kind[-1])).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    if kind == "text":
        return b"# not audio\n" * 50
    return write_audio(tmp_path / f"real.{kind}", music(1, 0.5), SR).read_bytes()


CONTAINER_CASES = [
    ("random 1", "noise.wav", "named .wav, but it holds MP3 data, not WAV"),  # pedalboard decodes it
    ("random 0", "noise.flac", "named .flac, but it holds unknown data (starting "),
    ("flac", "flac.wav", "named .wav, but it holds FLAC data, not WAV"),
    ("wav", "wav.mp3", "named .mp3, but it holds WAV data, not MP3"),
    ("ogg", "ogg.flac", "named .flac, but it holds Ogg data, not FLAC"),
    ("wav", "wav.ogg", "named .ogg, but it holds WAV data, not Ogg"),
    ("text", "text.aiff", "named .aiff, but it holds text ('# not audio'...), not AIFF"),
    ("random 1", "noise.xyz", "named .xyz (lincae reads .wav, .flac, .mp3, .ogg, .aiff, .aif, by their suffix)"),
    ("wav", "song", "named without a suffix (lincae reads"),
]


@pytest.mark.parametrize(("kind", "name", "said"), CONTAINER_CASES, ids=[n for _, n, _ in CONTAINER_CASES])
def test_the_content_must_be_what_the_suffix_says(
    kind: str, name: str, said: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    src = folder / name
    src.write_bytes(container_bytes(kind, tmp_path))
    for args in (
        ["encode", str(src), "-o", str(tmp_path / "z.latent")],
        ["render", str(src), "-o", str(tmp_path / "out.wav"), "--no-progress"],
    ):
        assert main([*args, "--model", str(model_dir)]) == 2
        err = error_line(capsys)
        assert f"{src}: not a readable audio file: {said}" in err, err
    assert not (tmp_path / "z.latent").exists() and not (tmp_path / "out.wav").exists()


def test_containers_are_told_by_their_first_bytes(tmp_path: Path) -> None:
    from lincae.files.audiofile import read_audio, sniff_container

    def sniffed(data: bytes) -> str | None:
        (tmp_path / "x").write_bytes(data)
        return sniff_container(tmp_path / "x")

    riff = container_bytes("wav", tmp_path)
    assert sniffed(riff) == sniffed(b"RF64" + riff[4:]) == sniffed(b"RIFX" + riff[4:]) == "WAV"
    assert sniffed(bytes.fromhex("726966662e91cf11a5d628db04c10000") + bytes(64)) == "WAV"  # Wave64
    assert sniffed(b"RIFF" + riff[4:8] + b"AVI " + riff[12:]) is None
    flac = container_bytes("flac", tmp_path)
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)  # an ID3v2 tag of 10 bytes
    assert sniffed(flac) == sniffed(id3 + flac) == "FLAC"
    assert sniffed(id3 + bytes(64)) == sniffed(bytes.fromhex("fffb9064") + bytes(64)) == "MP3"
    assert sniffed(bytes.fromhex("fff15080") + bytes(64)) is None  # AAC (ADTS) is not MP3
    # Upper-case suffixes are the same suffix.
    (tmp_path / "LOUD.WAV").write_bytes(riff)
    assert read_audio(tmp_path / "LOUD.WAV", SR).shape[0] == 1


# -- latent files: every metadata field is checked, and what they can make us allocate is capped ------


@pytest.fixture(scope="module")
def good_latent(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("latent")
    src = write_audio(folder / "in.wav", noisy_tone(1.2), SR)
    assert (
        main(
            ["encode", str(src), "-o", str(folder / "good.latent"), "--model", str(model_dir), "--chunk-seconds", "0.5"]
        )
        == 0
    )
    return folder / "good.latent"


def rewrite_latent(good: Path, out: Path, tensor: object = None, **meta: str) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(good), framework="pt") as f:
        metadata = {**(f.metadata() or {}), **meta}
        latents = f.get_tensor("latents") if tensor is None else tensor
    save_file({"latents": latents}, str(out), metadata=metadata)
    return out


HOSTILE_METADATA = [
    ({"sample_rate": "0"}, "'sample_rate'"),
    ({"sample_rate": "-44100"}, "'sample_rate'"),
    ({"sample_rate": "1e12"}, "'sample_rate'"),
    ({"source_sample_rate": "0"}, "'source_sample_rate'"),
    ({"source_sample_rate": "1"}, "'source_sample_rate'"),
    ({"source_sample_rate": "99999999999"}, "'source_sample_rate'"),
    ({"length": "0"}, "'length'"),
    ({"length": "-5"}, "'length'"),
    ({"length": "999999999999999"}, "'length'"),
    ({"length": "10"}, "'length'"),
    ({"length": "many"}, "'length'"),
    ({"hop_length": "0"}, "'hop_length'"),
    ({"hop_length": "512"}, "'hop_length'"),
    ({"max_chunk_size": "0"}, "'max_chunk_size'"),
    ({"max_chunk_size": "-1"}, "'max_chunk_size'"),
    ({"max_chunk_size": "99999999999"}, "'max_chunk_size'"),
    ({"max_chunk_size": "30000"}, "'max_chunk_size'"),
    ({"overlap_percentage": "1.0"}, "'overlap_percentage'"),
    ({"overlap_percentage": "nan"}, "'overlap_percentage'"),
    ({"overlap_percentage": "-0.5"}, "'overlap_percentage'"),
    ({"scale_factor": "inf"}, "'scale_factor'"),
    ({"scale_factor": "0"}, "'scale_factor'"),
    ({"format_version": "2"}, "version 2 not supported"),
]


@pytest.mark.parametrize(("meta", "named"), HOSTILE_METADATA, ids=[str(m) for m, _ in HOSTILE_METADATA])
def test_hostile_latent_metadata_is_refused_naming_the_field(
    meta: dict[str, str],
    named: str,
    good_latent: Path,
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = rewrite_latent(good_latent, tmp_path / "bad.latent", **meta)
    out = tmp_path / "out.wav"
    assert main(["decode", str(bad), "-o", str(out), "--model", str(model_dir)]) == 2
    err = error_line(capsys)
    assert named in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("tensor", "named"),
    [
        ("nan", "NaN or Inf"),
        ("channels", "channels"),
        ("flat", "shape"),
        ("int", "dtype"),
        ("unchunked-huge", "unchunked"),
    ],
)
def test_hostile_latent_tensors_are_refused(
    tensor: str, named: str, good_latent: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from safetensors import safe_open

    with safe_open(str(good_latent), framework="pt") as f:
        z = f.get_tensor("latents")
    meta: dict[str, str] = {}
    if tensor == "nan":
        z = z.clone()
        z[0, -1, 3, 2] = float("nan")
    elif tensor == "channels":
        z = torch.zeros(65, 1, 64, z.shape[-1])
    elif tensor == "flat":
        z = z.reshape(-1)
    elif tensor == "int":
        z = z.to(torch.int32)
    else:  # 400 s unchunked at 44.1 kHz would be decoded in one piece
        z = torch.zeros(1, 64, 400 * SR // 256)
        meta = {"max_chunk_size": "0", "length": str(400 * SR)}
    bad = rewrite_latent(good_latent, tmp_path / "bad.latent", tensor=z, **meta)
    assert main(["decode", str(bad), "-o", str(tmp_path / "out.wav"), "--model", str(model_dir)]) == 2
    assert named in error_line(capsys)
    assert not (tmp_path / "out.wav").exists()


# -- encode and decode stream in chunks, and give what the in-memory functions give ---------------


@pytest.mark.parametrize(
    ("channels", "seconds", "rate", "batch"), [(1, 2.3, 44100, 4), (2, 2.3, 48000, 3), (2, 0.4, 44100, 4)]
)
def test_streamed_encode_and_decode_equal_the_in_memory_ones(
    channels: int, seconds: float, rate: int, batch: int, tmp_path: Path
) -> None:
    import torch

    from lincae.files.audiofile import read_audio, resample
    from lincae.io.latent_codec import decode_to_file, encode_to_file
    from lincae.io.latents import decode_latents, encode_file, load_latents, save_latents

    src = write_audio(tmp_path / "in.wav", noisy_tone(seconds, channels)[:, : int(seconds * rate)], rate)
    in_memory = save_latents(tmp_path / "memory.latent", encode_file(make_tiny_model(max_batch_size=batch), src, 0.5))
    streamed = tmp_path / "streamed.latent"
    encode_to_file(make_tiny_model(max_batch_size=batch), src, streamed, chunk_seconds=0.5)
    a, b = load_latents(in_memory), load_latents(streamed)
    assert a.metadata() == b.metadata() and a.shape == b.shape
    assert torch.equal(a.latents, b.latents)  # the same batches through the encoder
    expected = decode_latents(make_tiny_model(max_batch_size=batch), load_latents(in_memory), seed=3).numpy()
    expected = resample(expected, SR, rate)
    decode_to_file(make_tiny_model(max_batch_size=batch), streamed, tmp_path / "out.wav", seed=3)
    got = read_audio(tmp_path / "out.wav", rate)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "memory.latent", "out.wav", "streamed.latent"]


# -- outputs: never the input, checked before the work, a full disk is one line ---------------------


@pytest.mark.parametrize("command", ["encode", "decode", "render"])
def test_the_output_cannot_be_the_input(
    command: str,
    good_latent: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = write_audio(tmp_path / "song.wav", noisy_tone(0.5), SR)
    if command == "decode":
        src = Path(shutil.copy(good_latent, tmp_path / "song.latent"))
    before = src.read_bytes()
    (tmp_path / "link").symlink_to(src.name)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for out in (str(src), "../link", f"../sub/../{src.name}"):
        args = [command, str(src), "-o", out, "--model", str(model_dir), "--overwrite"]
        assert main(args + (["--no-progress"] if command == "render" else [])) == 2
        assert "is the input file" in error_line(capsys)
    assert src.read_bytes() == before


def test_encode_checks_the_output_folder_before_the_work(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lincae.models.base as base

    src = write_audio(tmp_path / "song.wav", noisy_tone(0.5), SR)
    calls: list[object] = []
    monkeypatch.setattr(base, "load_model", lambda *a, **k: calls.append(a))  # the work starts with it
    for out in (tmp_path / "missing" / "z.latent", tmp_path):
        assert main(["encode", str(src), "-o", str(out), "--model", str(model_dir)]) == 2
        assert str(out) in error_line(capsys)
    locked = read_only_folder(tmp_path / "locked")
    if locked is not None:
        assert main(["encode", str(src), "-o", str(locked / "z.latent"), "--model", str(model_dir)]) == 2
        assert "not writable" in error_line(capsys)
        subprocess.run(["umount", str(locked)], check=False)
    assert calls == []  # refused before the model was loaded


def read_only_folder(path: Path) -> Path | None:
    """A folder this process cannot write into: mode 0500, or for root a read-only tmpfs (None if neither)."""
    path.mkdir(mode=0o500)
    if os.geteuid() != 0:
        return path
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True)
    return path if done.returncode == 0 else None


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 64 KiB tmpfs (needs root and mount rights)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_one_line_and_leaves_nothing(
    small_disk: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_audio(tmp_path / "song.wav", noisy_tone(3.0), SR)
    latent = tmp_path / "song.latent"
    assert main(["encode", str(src), "-o", str(latent), "--model", str(model_dir), "--chunk-seconds", "0.5"]) == 0
    capsys.readouterr()
    for args in (
        ["encode", str(src), "-o", str(small_disk / "z.latent"), "--chunk-seconds", "0.5"],
        ["decode", str(latent), "-o", str(small_disk / "out.wav")],
        ["render", str(src), "-o", str(small_disk / "out.wav"), "--no-progress"],
    ):
        assert main([*args, "--model", str(model_dir)]) == 2
        err = error_line(capsys)
        assert "No space left on device" in err or "no space" in err.lower(), err
        assert list(small_disk.iterdir()) == []


def test_output_names_of_255_bytes_are_written(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The temporary file beside an output is named after it; for the longest legal name it is shortened."""
    src = write_audio(tmp_path / "in.wav", noisy_tone(0.5), SR)  # stereo: decode spills channels to a file
    latent = tmp_path / ("l" * 248 + ".latent")
    decoded = tmp_path / ("d" * 251 + ".wav")
    rendered = tmp_path / ("é" * 124 + "xx.flac")  # 255 bytes in UTF-8
    model = ["--model", str(model_dir)]
    assert main(["encode", str(src), "-o", str(latent), *model]) == 0
    assert main(["decode", str(latent), "-o", str(decoded), *model]) == 0
    assert main(["render", str(src), "-o", str(rendered), "--no-progress", *model]) == 0
    assert main(["render", str(src), "-o", str(rendered), "--no-progress", "--overwrite", *model]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (src, latent, decoded, rendered))
    assert all(len(os.fsencode(p.name)) == 255 for p in (latent, decoded, rendered))
    from lincae.files.atomic import new_temp, temp_prefix

    for name, suffix in ((latent.name, ".tmp"), (rendered.name, ".flac"), ("short.wav", ".raw")):
        tmp = new_temp(tmp_path / name, suffix)
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(suffix)
        assert len(os.fsencode(tmp.name)) <= 255
        tmp.unlink()
    assert temp_prefix("short.wav", ".raw") == ".short.wav."  # short names keep the plain form
    assert temp_prefix(latent.name, ".tmp") != temp_prefix("l" * 247 + "m.latent", ".tmp")  # names told apart


# -- signals: a writer interrupted by any catchable signal leaves no temporary file ------------------


@pytest.mark.parametrize(
    ("command", "signum"),
    [("render", signal.SIGTERM), ("render", signal.SIGHUP), ("encode", signal.SIGTERM), ("decode", signal.SIGHUP)],
)
def test_a_signal_mid_write_leaves_the_old_output_and_no_temporary_file(
    command: str, signum: int, model_dir: Path, tmp_path: Path
) -> None:
    import sys
    import time

    work = tmp_path / "work"
    work.mkdir()
    src = write_audio(tmp_path / "long.wav", noisy_tone(30.0, 1), SR)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    base = [sys.executable, "-m", "lincae"]
    if command == "decode":
        latent = tmp_path / "long.latent"
        encode = [*base, "encode", str(src), "-o", str(latent), "--model", str(model_dir)]
        subprocess.run(encode, env=env, check=True, capture_output=True, timeout=300)
        src = latent
    out = work / ("out.latent" if command == "encode" else "out.wav")
    out.write_bytes(b"the old output")
    args = [*base, command, str(src), "-o", str(out), "--model", str(model_dir), "--overwrite"]
    # The command keeps a signal its parent ignores (nohup's SIGHUP): the test gives it the default one.
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not [p for p in work.iterdir() if p.name.startswith(".")] and proc.poll() is None:
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.02)
        time.sleep(0.3)  # well into the write
        assert proc.poll() is None, f"{command} finished before the signal: {proc.stderr.read() if proc.stderr else ''}"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert sorted(p.name for p in work.iterdir()) == [out.name]
    assert out.read_bytes() == b"the old output"


# -- files named by chain parameters: checked before the effect is built -----------------------------


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"# not audio\n" * 50, "not a readable audio file"),
        (b"", "the file is empty"),
        ("truncated", "truncated"),
        ("nan", "NaN or Inf"),
        ("folder", "file not found"),
    ],
)
def test_a_convolution_needs_a_real_impulse_response(
    content: object, named: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ir = tmp_path / "ir.wav"
    if content == "truncated":
        whole = write_audio(tmp_path / "whole.wav", noisy_tone(0.5), SR).read_bytes()
        ir.write_bytes(whole[: len(whole) // 2])
    elif content == "nan":
        x = noisy_tone(0.2)
        x[0, 100] = np.nan
        from pedalboard.io import AudioFile

        with AudioFile(str(ir), "w", SR, 2, bit_depth=32) as f:
            f.write(x)
    elif content == "folder":
        ir.mkdir()
    else:
        ir.write_bytes(content)  # type: ignore[arg-type]
    src = write_audio(tmp_path / "in.wav", noisy_tone(0.5), SR)
    out = tmp_path / "out.wav"
    post = f"convolution(impulse_response_filename='{ir}')"
    assert main(["render", str(src), "-o", str(out), "--model", str(model_dir), "--no-progress", "--post", post]) == 2
    err = error_line(capsys)
    assert "impulse_response_filename" in err and named in err, err
    assert not out.exists()
    # Live, the slot is bypassed and says why, as for a plugin that does not load.
    board = build_chain(parse_chain_arg(post), on_load_error="bypass")
    assert named in load_failures(board)[0].message


def test_a_real_impulse_response_still_convolves(tmp_path: Path) -> None:
    ir = np.zeros((1, 2000), np.float32)
    ir[0, 0], ir[0, 1000] = 1.0, 0.5
    path = write_audio(tmp_path / "ir.wav", ir, SR)
    board = build_chain(parse_chain_arg(f"convolution(impulse_response_filename='{path}')"))
    x = noisy_tone(0.5, 1)
    assert not np.allclose(board(x, SR), x, atol=1e-3)


# ------------------------------------------------------------------ official checkpoints that hold code


class _RunsCode:
    """Pickled as a call of ``print`` (what a checkpoint that runs code on load holds)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this checkpoint ran code",))


def test_a_checkpoint_holding_code_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PyTorch's refusal runs over many lines (with advice to load the file with weights_only=False): the
    error is one line saying what was refused, and nothing in the file runs."""
    import torch

    fixture = Path(__file__).parent / "fixtures" / "official" / "0a3afbec_weights"
    folder = shutil.copytree(fixture, tmp_path / "0a3afbec_weights")
    weights = folder / "autoencoder_inference_model_last.pth"
    torch.save({"w": torch.zeros(2), "payload": _RunsCode()}, weights)
    assert main(["info", "--model", str(weights)]) == 2
    out, err = capsys.readouterr()
    assert "ran code" not in out + err
    assert err == (
        f"lincae info: error: cannot read checkpoint {weights}: it is corrupt, truncated or holds more than "
        "tensors (only weights are loaded, never code): UnpicklingError: Unsupported global: GLOBAL print was "
        "not an allowed global by default\n"
    )
    weights.write_bytes(weights.read_bytes()[:100])  # truncated: PyTorch's message is one sentence of it too
    assert main(["info", "--model", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(
        "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory\n"
    ), err
