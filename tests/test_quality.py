"""ViSQOL, the high-band figures and the mel + Griffin-Lim reference (lincae.evaluation.quality, .reference)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from lincae.evaluation.quality import harmonic_energy_kept, highband_mrstft, quality_scores, visqol
from lincae.evaluation.reference import MelGriffinLim, mel_filterbank
from lincae.evaluation.suite import evaluate

SR = 44100


def harmonic_tone(seconds: float = 2.0, f0: float = 220.0, partials: int = 40, seed: int = 0) -> Tensor:
    """A bright note: ``partials`` harmonics of ``f0`` falling 3 dB per octave, with vibrato-free onsets. ``[T]``."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    x = torch.zeros_like(t)
    for k in range(1, partials + 1):
        if k * f0 < SR / 2 - 1000:
            phase = float(torch.rand(1, generator=g)) * 2 * math.pi
            x += torch.sin(2 * math.pi * k * f0 * t + phase) / math.sqrt(k)
    envelope = torch.clamp(t / 0.02, max=1.0) * torch.exp(-0.3 * t)
    return (0.1 * x * envelope / x.abs().max()).to(torch.float32)


def low_pass(x: Tensor, cutoff: float) -> Tensor:
    """Brick-wall low-pass through the FFT."""
    spec = torch.fft.rfft(x.double())
    spec[..., torch.fft.rfftfreq(x.shape[-1], 1.0 / SR) > cutoff] = 0
    return torch.fft.irfft(spec, n=x.shape[-1]).to(x.dtype)


def noisy_highs(x: Tensor, seed: int = 1) -> Tensor:
    """The highs above 2 kHz replaced by noise of the same spectral envelope (a 'noise floor' decoder)."""
    g = torch.Generator().manual_seed(seed)
    spec = torch.fft.rfft(x.double())
    high = torch.fft.rfftfreq(x.shape[-1], 1.0 / SR) > 2000
    smooth = torch.nn.functional.avg_pool1d(spec.abs()[None, None], 401, 1, 200, count_include_pad=False)[0, 0]
    phase = torch.rand(spec.shape, generator=g, dtype=torch.float64) * 2 * math.pi
    spec[high] = smooth[high] * torch.exp(1j * phase[high])
    return torch.fft.irfft(spec, n=x.shape[-1]).to(x.dtype)


@pytest.fixture(scope="module")
def tone() -> Tensor:
    return harmonic_tone()


def test_highband_mrstft_separates_clean_from_low_passed(tone: Tensor) -> None:
    assert float(highband_mrstft(tone, tone)) == pytest.approx(0.0, abs=1e-9)
    lp = float(highband_mrstft(low_pass(tone, 3000), tone))
    noisy = float(highband_mrstft(noisy_highs(tone), tone))
    low_only = float(highband_mrstft(low_pass(tone, 16000) + 0 * tone, tone))  # nothing lost in the band
    assert lp > 1.0 and noisy > 0.3 and low_only < 0.15
    # Out-of-band damage does not count: removing the bass leaves the 4-16 kHz distance at 0.
    no_bass = tone - low_pass(tone, 1000)
    assert float(highband_mrstft(no_bass, tone)) < 0.05


def test_harmonic_energy_kept(tone: Tensor) -> None:
    assert float(harmonic_energy_kept(tone, tone)) == pytest.approx(1.0)
    assert float(harmonic_energy_kept(0.5 * tone, tone)) == pytest.approx(0.25, rel=1e-6)  # min(|Y|², |X|²)
    assert float(harmonic_energy_kept(low_pass(tone, 2000), tone)) < 0.02
    assert float(harmonic_energy_kept(noisy_highs(tone), tone)) < 0.6
    # A reference with no harmonic above 2 kHz has nothing to keep.
    assert math.isnan(float(harmonic_energy_kept(tone, low_pass(tone, 1500))))
    batch = torch.stack([tone, low_pass(tone, 2000)])
    assert harmonic_energy_kept(batch, torch.stack([tone, tone])).shape == (2,)


def test_visqol_ranks_clean_above_degraded(tone: Tensor) -> None:
    pytest.importorskip("visqol")
    pair = torch.stack([tone, low_pass(tone, 3000)])
    clean, lp = visqol(pair, torch.stack([tone, tone])).tolist()
    assert clean > 4.5 and lp < clean - 0.5


def test_quality_input_checks(tone: Tensor) -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        highband_mrstft(tone, tone[:-1])
    with pytest.raises(ValueError, match="at least 4096 samples"):
        harmonic_energy_kept(tone[:1000], tone[:1000])


def test_mel_filterbank_covers_the_spectrum() -> None:
    fb = mel_filterbank(64, 1024, SR)
    assert fb.shape == (64, 513) and bool((fb >= 0).all())
    centres = fb.argmax(1)
    assert bool((centres[1:] >= centres[:-1]).all())  # bands in increasing frequency
    assert bool((fb[:, 1:-1].sum(0) > 0).all())  # every bin but DC and Nyquist is in some band


def test_mel_griffin_lim_reference_scores_well_on_a_harmonic_signal(tone: Tensor) -> None:
    codec = MelGriffinLim()
    z = codec.encode(tone[None])
    assert z.shape == (1, 64, tone.shape[-1] // 256 + 1)
    y = codec.decode(z, tone.shape[-1])
    assert y.shape == (1, tone.shape[-1]) and y.dtype == torch.float32
    level_db = 10 * math.log10(float(y.square().mean() / tone.square().mean()))
    assert abs(level_db) < 1.5
    # The highs are there (a mel spectrogram keeps the envelope), far closer than a low-passed copy.
    assert float(highband_mrstft(y[0], tone)) < 0.5 * float(highband_mrstft(low_pass(tone, 3000), tone))
    if pytest.importorskip("visqol"):
        assert float(visqol(y[0], tone)) > 3.5


def test_evaluate_reports_quality_and_reference_reconstruction_only(tone: Tensor) -> None:
    pytest.importorskip("visqol")
    pieces = [{"mix": tone, "melody": tone}]
    res = evaluate(MelGriffinLim(iterations=16), pieces, crop_seconds=1.0, quality=True, properties=False)
    assert {"reconstruction/visqol", "reconstruction/hf_mrstft", "reconstruction/hf_harmonics"} <= set(res)
    assert not any(k.startswith(("separation", "latent", "enc_", "dec_")) for k in res)
    assert 1.0 <= res["reconstruction/visqol"] <= 5.0 and 0.0 <= res["reconstruction/hf_harmonics"] <= 1.0
    scores = quality_scores(tone[None], tone[None])
    assert float(scores["hf_mrstft"][0]) == pytest.approx(0.0, abs=1e-9)


def test_eval_without_visqol_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lincae.cli import main

    monkeypatch.setitem(sys.modules, "visqol", None)  # as if visqol-python were not installed
    assert main(["eval", "default", "--data", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert err == "lincae eval: error: ViSQOL needs visqol-python: pip install 'lincae[eval]', or pass --no-quality"
