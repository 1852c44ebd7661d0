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
