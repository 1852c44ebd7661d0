"""The ``lincae`` command line."""

from __future__ import annotations

import json
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


def test_demo_writes_audio_and_a_summary(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path), "--model", str(FIXTURE), "--seconds", "1"]) == 0
    for name in ("input", "reconstruction", "half_gain"):
        assert (tmp_path / f"{name}.wav").stat().st_size > 44100 * 4
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == str(FIXTURE)
    # Latent scaling by 0.5 changes the output level (a trained model halves it: tested with the shipped model).
    assert summary["rms_dbfs"]["half_gain"] != summary["rms_dbfs"]["reconstruction"]
