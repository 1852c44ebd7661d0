"""Known-answer tests of lincae.evaluation: signal metrics, linearity metrics, suite and report."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from lincae.evaluation import (
    HOMOGENEITY_GAINS,
    LatentCodec,
    additivity,
    decode,
    decoder_homogeneity,
    effective_rank,
    encoder_homogeneity,
    evaluate,
    mean_over_items,
    metric_info,
    mrstft_distance,
    reconstruction,
    relative_l2,
    separation,
    si_sdr,
    snr,
    write_report,
)

SR = 44_100


def noise(*shape: int, seed: int = 0, scale: float = 0.1) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def tones(n: int, length: int, seed: int = 0) -> Tensor:
    """``n`` audio-like signals ``[n, length]``: a few random sines plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / SR
    out = torch.zeros(n, length)
    for i in range(n):
        for _ in range(3):
            f = float(torch.empty(1).uniform_(80, 4000, generator=g))
            amp = float(torch.empty(1).uniform_(0.05, 0.2, generator=g))
            out[i] += amp * torch.sin(2 * math.pi * f * t + float(torch.rand(1, generator=g)) * 6.28)
        out[i] += 0.01 * torch.randn(length, generator=g)
    return out


# --------------------------------------------------------------------------- test codecs
class FrameCodec:
    """Exactly linear codec: frames of ``frame`` samples times an orthogonal matrix; decode = transpose.

    Latents are ``[B, C = frame, Z = frames]``. With ``squash`` > 0 the encoder is ``tanh(squash · W f)``
    and the decoder inverts it (``atanh``), so reconstruction stays good but linearity breaks.
    """

    def __init__(self, frame: int = 32, squash: float = 0.0, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w, _ = torch.linalg.qr(torch.randn(frame, frame, generator=g, dtype=torch.float64))
        self.frame = frame
        self.squash = squash

    def encode(self, audio: Tensor) -> Tensor:
        b, t = audio.shape
        pad = (-t) % self.frame
        frames = torch.nn.functional.pad(audio.double(), (0, pad)).reshape(b, -1, self.frame)
        z = torch.einsum("cf,bzf->bcz", self.w, frames)
        if self.squash:
            z = torch.tanh(self.squash * z)
        return z.float()

    def decode(self, z: Tensor, full_length: int) -> Tensor:
        z = z.double()
        if self.squash:
            z = torch.atanh(z.clamp(-1 + 1e-7, 1 - 1e-7)) / self.squash
        frames = torch.einsum("cf,bcz->bzf", self.w, z)
        return frames.reshape(z.shape[0], -1)[:, :full_length].float()


class NoisyCodec(FrameCodec):
    """Linear codec whose decoder multiplies by ``1 + 0.1·noise``: homogeneous only with shared noise."""

    def __init__(self) -> None:
        super().__init__()
        self.generators_seen: list[torch.Generator | None] = []

    def decode(self, z: Tensor, full_length: int, generator: torch.Generator | None = None) -> Tensor:
        self.generators_seen.append(generator)
        clean = super().decode(z, full_length)
        return clean * (1 + 0.1 * torch.randn(clean.shape, generator=generator))


@pytest.fixture(scope="module")
def audio() -> Tensor:
    return tones(2, SR // 2, seed=1)


# --------------------------------------------------------------------------- signal metrics
def test_si_sdr_identity_and_scale_invariance() -> None:
    x = noise(2, SR // 4, seed=0, scale=1.0)
    assert (si_sdr(x, x) > 100).all()
    assert (si_sdr(2 * x, x) > 100).all()
    # a perfect estimate hits the ceiling set by the official eps: 10·log10(‖x‖² / 1e-8)
    ceiling = 10 * torch.log10(x.double().square().sum(-1) / 1e-8)
    assert torch.allclose(si_sdr(x, x), ceiling, atol=0.01)
    assert si_sdr(x, x).shape == (2,) and si_sdr(x, x).dtype == torch.float64
    # any gain on an imperfect estimate leaves SI-SDR unchanged
    est = x + noise(2, SR // 4, seed=1, scale=0.05)
    for gain in [0.1, 0.5, 3.0, -2.0]:
        assert torch.allclose(si_sdr(gain * est, x), si_sdr(est, x), atol=1e-4)


def test_si_sdr_at_known_snr() -> None:
    x = noise(4, SR, seed=1)
    n = noise(4, SR, seed=2)
    target_db = 20.0
    n = n * (x.norm(dim=-1, keepdim=True) / n.norm(dim=-1, keepdim=True)) * 10 ** (-target_db / 20)
    assert torch.allclose(si_sdr(x + n, x), torch.full((4,), target_db, dtype=torch.float64), atol=0.1)
    assert torch.allclose(snr(x + n, x), torch.full((4,), target_db, dtype=torch.float64), atol=1e-3)


def test_snr_exact_and_not_scale_invariant() -> None:
    x = torch.ones(1000, dtype=torch.float64)
    assert float(snr(x + 0.1, x)) == pytest.approx(20.0, abs=1e-6)
    assert float(snr(2 * x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(snr(x, x)) > 100
    assert float(snr(0.1 * noise(4000, seed=3) + 1.0, torch.ones(4000))) == pytest.approx(
        -10 * math.log10(0.01 * float(noise(4000, seed=3).square().mean())), abs=1e-3
    )


def test_si_sdr_snr_match_auraloss() -> None:
    auraloss = pytest.importorskip("auraloss")
    x, y = tones(3, 4096, seed=3), tones(3, 4096, seed=4)
    est = x + 0.3 * y
    ref_sisdr = -auraloss.time.SISDRLoss(zero_mean=False, reduction="none")(est.unsqueeze(1), x.unsqueeze(1))
    ref_snr = -auraloss.time.SNRLoss(zero_mean=False, reduction="none")(est.unsqueeze(1), x.unsqueeze(1))
    assert torch.allclose(si_sdr(est, x).float(), ref_sisdr.squeeze(1), atol=1e-3)
    assert torch.allclose(snr(est, x).float(), ref_snr.squeeze(1), atol=1e-3)


def test_mrstft_zero_for_identical_and_matches_auraloss() -> None:
    auraloss = pytest.importorskip("auraloss")
    x = tones(2, SR // 4, seed=5)
    y = x + noise(2, SR // 4, seed=6, scale=0.02)
    assert torch.equal(mrstft_distance(x, x), torch.zeros(2, dtype=torch.float64))
    d = mrstft_distance(y, x)
    assert d.shape == (2,) and (d > 0).all()
    loss = auraloss.freq.MultiResolutionSTFTLoss()
    for i in range(2):
        expected = float(loss(y[i].view(1, 1, -1), x[i].view(1, 1, -1)))
        assert float(d[i]) == pytest.approx(expected, rel=1e-5)
    # per item: independent of the rest of the batch
    assert float(mrstft_distance(y[1:], x[1:])[0]) == pytest.approx(float(d[1]), rel=1e-6)
    # more distortion, larger distance
    assert (mrstft_distance(x + noise(2, SR // 4, seed=6, scale=0.2), x) > d).all()


def test_metric_input_checks() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        si_sdr(torch.zeros(2, 10), torch.zeros(2, 11))
    with pytest.raises(ValueError, match="at least"):
        mrstft_distance(torch.zeros(1, 100), torch.zeros(1, 100))


def test_relative_l2() -> None:
    z = noise(3, 8, 5, seed=7)
    assert torch.allclose(relative_l2(z, z), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(relative_l2(1.5 * z, z), torch.full((3,), 0.5, dtype=torch.float64))
    assert torch.allclose(relative_l2(torch.zeros_like(z), z), torch.ones(3, dtype=torch.float64))


def _official_erank(embeddings: Tensor) -> float:
    """``get_erank`` of the official linear-cae ``metrics.py`` (numpy), on ``[B, Z, C]`` latents."""
    e = embeddings.reshape(-1, embeddings.size(-1)).numpy()
    values = np.linalg.svd(e, full_matrices=False, compute_uv=False)
    p = values / np.sum(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -(p * np.nan_to_num(np.log(p), neginf=0)).sum()
    return float(np.exp(entropy))


def test_effective_rank() -> None:
    g = torch.Generator().manual_seed(8)
    u, v = torch.randn(4, 1, 200, generator=g), torch.randn(16, 1, generator=g)
    rank1 = v * u  # [B=4, C=16, Z=200], every frame proportional to v
    assert effective_rank(rank1) == pytest.approx(1.0, abs=1e-3)
    white = torch.randn(8, 16, 512, generator=g)
    assert 15.5 < effective_rank(white) <= 16.0
    # same as the official code (which permutes [B, C, Z] to [B, Z, C] first), and stacking a list
    z = torch.randn(3, 16, 40, generator=g) * torch.linspace(0.1, 2, 16).view(1, 16, 1)
    assert effective_rank(z) == pytest.approx(_official_erank(z.permute(0, 2, 1)), rel=1e-5)
    assert effective_rank([z[:1], z[1:]]) == pytest.approx(effective_rank(z), rel=1e-9)
    # chunked latents [B, N, C, Z]
    assert effective_rank(z.unsqueeze(1)) == pytest.approx(effective_rank(z), rel=1e-9)
    assert math.isnan(effective_rank(torch.zeros(2, 4, 5)))


# --------------------------------------------------------------------------- property metrics
# SNR/SI-SDR of a perfect estimate saturate at 10·log10(‖reference‖² / 1e-8) (the official eps):
# about 95-110 dB for these half-second test signals (lower for the small gains), hence 80 dB.
PERFECT_DB = 80.0


def test_linear_codec_is_perfect(audio: Tensor) -> None:
    codec = FrameCodec()
    assert isinstance(codec, LatentCodec)
    rec = mean_over_items(reconstruction(codec, audio))
    assert rec["si_sdr"] > PERFECT_DB and rec["snr"] > PERFECT_DB and rec["mrstft"] < 1e-3

    enc = mean_over_items(encoder_homogeneity(codec, audio))
    assert set(enc) == {f"rel_l2@a={a:g}" for a in HOMOGENEITY_GAINS} | {"rel_l2_mean"}
    assert all(v < 1e-5 for v in enc.values())

    z = codec.encode(audio)
    dec = mean_over_items(decoder_homogeneity(codec, z, audio.shape[-1]))
    assert set(dec) == {f"snr@a={a:g}" for a in HOMOGENEITY_GAINS} | {"snr_mean"}
    assert all(v > PERFECT_DB for v in dec.values())

    x1, x2 = audio, tones(2, audio.shape[-1], seed=9)
    add = mean_over_items(additivity(codec, x1, x2))
    assert add["enc_rel_l2"] < 1e-5 and add["dec_mrstft"] < 1e-3 and add["dec_si_sdr"] > PERFECT_DB

    sep = mean_over_items(separation(codec, x1 + x2, x2))
    assert sep["si_sdr"] > PERFECT_DB and sep["mrstft"] < 1e-3


def test_nonlinear_codec_scores_worse(audio: Tensor) -> None:
    lin, nonlin = FrameCodec(), FrameCodec(squash=8.0)
    x2 = tones(2, audio.shape[-1], seed=9)
    # tanh/atanh is invertible: reconstruction is still good ...
    assert mean_over_items(reconstruction(nonlin, audio))["si_sdr"] > 40
    # ... but every linearity metric is clearly worse
    enc = mean_over_items(encoder_homogeneity(nonlin, audio))
    assert (
        enc["rel_l2_mean"] > 0.05
        and enc["rel_l2_mean"] > 1e3 * mean_over_items(encoder_homogeneity(lin, audio))["rel_l2_mean"]
    )
    dec = mean_over_items(decoder_homogeneity(nonlin, nonlin.encode(audio), audio.shape[-1]))
    assert dec["snr_mean"] < 40
    add = mean_over_items(additivity(nonlin, audio, x2))
    assert add["enc_rel_l2"] > 0.05 and add["dec_si_sdr"] < 40 and add["dec_mrstft"] > 0.01
    sep = mean_over_items(separation(nonlin, audio + x2, x2))
    assert sep["si_sdr"] < 40 and sep["mrstft"] > 0.01
    assert effective_rank(nonlin.encode(audio)) > 1


def test_seed_gives_shared_noise(audio: Tensor) -> None:
    codec = NoisyCodec()
    z = codec.encode(audio)
    seeded = mean_over_items(decoder_homogeneity(codec, z, audio.shape[-1], seed=3))
    unseeded = mean_over_items(decoder_homogeneity(codec, z, audio.shape[-1], seed=None))
    assert seeded["snr_mean"] > PERFECT_DB
    assert unseeded["snr_mean"] < 40
    assert codec.generators_seen[-1] is None
    assert isinstance(codec.generators_seen[0], torch.Generator)
    # decode() passes no generator to a codec whose decode does not take one
    assert decode(FrameCodec(), z, audio.shape[-1], seed=3).shape == audio.shape


# --------------------------------------------------------------------------- suite and report
def _pieces(n: int, length: int) -> list[dict[str, np.ndarray | Tensor]]:
    pieces: list[dict[str, np.ndarray | Tensor]] = []
    for i in range(n):
        stems = {name: tones(1, length, seed=10 * i + j)[0] for j, name in enumerate(["drums", "bass", "melody"])}
        stems["chords"] = tones(1, length - 1000, seed=10 * i + 7)[0].numpy()  # shorter, numpy
        mix = sum(torch.as_tensor(s)[: length - 1000] for s in stems.values())
        pieces.append({"mix": mix.numpy(), **stems})
    return pieces


def test_evaluate_linear_and_nonlinear() -> None:
    pieces = _pieces(2, int(1.5 * SR))
    lin = evaluate(FrameCodec(), pieces, crop_seconds=1.0)
    nonlin = evaluate(FrameCodec(squash=8.0), pieces, crop_seconds=1.0)
    assert set(lin) == set(nonlin)
    for group in ["reconstruction", "enc_homogeneity", "dec_homogeneity", "enc_additivity", "dec_additivity"]:
        assert any(k.startswith(group + "/") for k in lin)
    for stem in ["drums", "bass", "chords", "melody"]:
        assert f"separation/si_sdr@{stem}" in lin
    assert all(math.isfinite(v) for v in lin.values())
    assert lin["reconstruction/si_sdr"] > PERFECT_DB
    assert lin["enc_homogeneity/rel_l2_mean"] < 1e-5 and lin["enc_additivity/rel_l2"] < 1e-5
    assert lin["separation/si_sdr"] > PERFECT_DB and lin["latent/silence_norm"] == 0.0
    assert nonlin["enc_homogeneity/rel_l2_mean"] > 0.05
    assert nonlin["separation/si_sdr"] < lin["separation/si_sdr"] - 50
    assert nonlin["dec_additivity/mrstft"] > lin["dec_additivity/mrstft"]
    # orthogonal 32x32 projection of audio-like frames: erank between 1 and 32
    assert 1 < lin["latent/erank"] <= 32


def test_evaluate_crop_loudest() -> None:
    quiet_then_loud = torch.cat([torch.zeros(SR), tones(1, SR)[0]])
    piece = {"mix": quiet_then_loud, "drums": quiet_then_loud}
    res = evaluate(FrameCodec(), [piece], crop_seconds=0.5)
    assert res["reconstruction/si_sdr"] > PERFECT_DB  # a silent crop would score about -80 dB
    with pytest.raises(ValueError, match="mix"):
        evaluate(FrameCodec(), [{"drums": quiet_then_loud}])


def test_metric_info() -> None:
    assert metric_info("reconstruction/si_sdr").arrow == "↑"
    assert metric_info("reconstruction/si_sdr").unit == "dB"
    assert metric_info("dec_homogeneity/snr@a=0.5").arrow == "↑"
    assert metric_info("enc_homogeneity/rel_l2_mean").arrow == "↓"
    assert metric_info("dec_additivity/mrstft").arrow == "↓"
    assert metric_info("latent/erank").arrow == "·"
    assert metric_info("whatever").group == "other"


def test_write_report(tmp_path: Path) -> None:
    results = {
        "lin-cae": {"reconstruction/si_sdr": 7.5, "reconstruction/mrstft": 1.2, "latent/erank": 12.0},
        "m2l | baseline": {"reconstruction/si_sdr": 5.0, "enc_homogeneity/rel_l2_mean": 0.3},
    }
    write_report(results, tmp_path / "report")
    out = tmp_path / "report"
    md = (out / "results.md").read_text(encoding="utf-8")
    metrics = {k for r in results.values() for k in r}
    for name in ["lin-cae", "m2l \\| baseline"]:
        assert name in md
    for key in metrics:
        assert f"`{key}`" in md
    assert "**7.500**" in md  # best SI-SDR in bold
    assert "| dB | ↑ |" in md and "↓" in md
    rows = list(csv.reader((out / "results.csv").read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["metric", "group", "unit", "better", "lin-cae", "m2l | baseline"]
    by_key = {r[0]: r for r in rows[1:]}
    assert set(by_key) == metrics
    assert float(by_key["reconstruction/si_sdr"][5]) == 5.0 and by_key["reconstruction/si_sdr"][3] == "higher"
    assert math.isnan(float(by_key["latent/erank"][5]))
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["enc_homogeneity.png", "latent.png", "reconstruction.png"]
    for p in pngs:
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_import_has_no_side_effects() -> None:
    code = (
        "import sys; import lincae.evaluation, lincae.evaluation.suite; "
        "assert 'matplotlib' not in sys.modules and 'auraloss' not in sys.modules"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_evaluate_runs_on_real_autoencoder() -> None:
    """Smoke test on the tiny random-weight model of the parity fixtures: runs, finite, seeded."""
    fixture = Path(__file__).parent / "fixtures" / "official" / "custom"
    if not fixture.is_dir():
        pytest.skip("parity fixture not present")
    from lincae import Autoencoder

    model = Autoencoder.from_pretrained(fixture, scale_factor=2.0)
    assert isinstance(model, LatentCodec)
    pieces = _pieces(1, int(0.2 * SR))
    first = evaluate(model, pieces, crop_seconds=0.1, gains=(0.5,))
    assert all(math.isfinite(v) for v in first.values())
    assert 1 <= first["latent/erank"] <= model.latent_channels
    assert evaluate(model, pieces, crop_seconds=0.1, gains=(0.5,)) == first  # same seed, same noise
