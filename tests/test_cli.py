"""The ``lincae`` command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lincae.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "official" / "0a3afbec_weights"


def test_info_describes_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "lin-cae" in out and "64 channels, one frame per 256 samples" in out and "scale factor    33" in out


def test_unknown_model_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_demo_renders_every_demonstration_into_a_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tinysoundfont")
    assert main(["demo", "--out", str(tmp_path), "--model", str(FIXTURE), "--seconds", "2"]) == 0
    progress = capsys.readouterr().err
    assert "demo: loading model" in progress and "rendering demonstration 6/6" in progress
    page = (tmp_path / "index.html").read_text()
    for key in ("reconstruction", "latent-sum", "volume-x0.1", "volume-x0.5", "volume-x2", "separation-minus-drums"):
        assert f'src="{key}.wav"' in page and f'src="{key}-reference.png"' in page
    # Every file the page references exists and is not empty.
    refs = re.findall(r'src="([^"]+)"', page)
    assert len(refs) >= 2 * 2 * 6 + 2 * 4
    for ref in refs:
        assert (tmp_path / ref).stat().st_size > 1000, ref
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == str(FIXTURE) and len(summary["items"]) == 6
    assert all(0.0 <= item["chroma"] <= 1.0 for item in summary["items"].values())
    # The references encode the ideal: x0.1 is 20 dB below the mix, x2 6 dB above.
    items = summary["items"]
    rec = items["reconstruction"]["reference_rms_db"]
    assert items["volume-x0.1"]["reference_rms_db"] == pytest.approx(rec - 20, abs=0.01)
    assert items["volume-x2"]["reference_rms_db"] == pytest.approx(rec + 6.02, abs=0.01)


@pytest.mark.parametrize(
    ("command", "policy"), [("live", "PASSIVE"), ("gui", "PASSIVE"), ("render", None), ("eval", None)]
)
def test_idle_openmp_threads_sleep_only_in_real_time_commands(
    monkeypatch: pytest.MonkeyPatch, command: str, policy: str | None
) -> None:
    import os

    from lincae.cli import prepare_process

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    prepare_process(command)
    assert os.environ.get("OMP_WAIT_POLICY") == policy
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # what the user set is kept
    prepare_process(command)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_a_bare_model_name_is_shipped_or_official_never_a_folder_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--model default`` is the shipped model even beside a folder ``./default``; a folder is named by its path."""
    from conftest import make_tiny_model

    from lincae.models.base import load_model

    make_tiny_model().save_pretrained(tmp_path / "default")
    make_tiny_model().save_pretrained(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    shipped = load_model("default").name
    assert shipped != "tiny"
    assert main(["info", "--model", "default"]) == 0
    assert f"model           {shipped}" in capsys.readouterr().out
    assert main(["info", "--model", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lincae info: error: unknown model 'tiny': not a known id (default, lin-cae, ") and (
        err.endswith(f"{shipped}, m2l); a model folder or file is named by its path (./tiny)\n")
    )
    for named in ("./tiny", str(tmp_path / "tiny"), "./default"):
        assert main(["info", "--model", named]) == 0
        assert "model           tiny" in capsys.readouterr().out
    x = tmp_path / "x.wav"
    assert main(["encode", str(x), "-o", str(tmp_path / "x.latent"), "--model", "tiny"]) == 2
    assert "unknown model 'tiny'" in capsys.readouterr().err


def test_a_python_warning_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    """An official folder under another name: no latent scale factor is known, said in one line (not Python's
    ``file:line: UserWarning: ...`` followed by the source line that warned)."""
    import os
    import shutil
    import subprocess
    import sys

    renamed = shutil.copytree(FIXTURE, tmp_path / "renamed")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "lincae", "info", "--model", str(renamed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "scale factor    1" in done.stdout, done.stderr
    assert done.stderr == (
        f"lincae info: warning: {renamed}: no latent scale factor known for 'renamed'; using 1.0 (pass "
        "scale_factor=...)\n"
    )
