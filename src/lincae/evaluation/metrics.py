"""Metrics of the Lin-CAE paper (Torres et al., arXiv 2510.23530): reconstruction and latent linearity.

The definitions follow the official evaluation code, ``bernardo-torres/linear-autoencoders``:

* ``src/linear_cae/metrics.py`` (commit 2141b7d): ``relative_l2_error``, ``get_erank`` and the
  ``auraloss``-based ``SISDRMetric`` / ``SNRMetric`` / ``MRSTFTMetric``;
* ``src/linear_cae/callbacks/test_model.py`` (commit bc6ad60): which quantities are compared
  (``enc_homogeneity``, ``dec_homogeneity_snr``, ``enc_additivity``, ``dec_additivity``,
  ``separability``, ``latent_erank``, ``silence_latent_norm``) and the gains ``0.25, 0.5, 0.75, 1.1``.

Per item ``b`` of a batch (``x̂`` the estimate, ``x`` the reference, sums over samples, ε = 1e-8):

* SI-SDR (dB), auraloss ``SISDRLoss(zero_mean=False)`` negated:
  ``α = <x̂, x> / (‖x‖² + ε)``, ``SI-SDR = 10·log10(‖αx‖² / (‖x̂ − αx‖² + ε) + ε)``.
* SNR (dB), auraloss ``SNRLoss(zero_mean=False)`` negated:
  ``SNR = 10·log10(‖x‖² / (‖x̂ − x‖² + ε) + ε)``.
* MR-STFT distance (unitless), ``auraloss.freq.MultiResolutionSTFTLoss()`` with its defaults, as in
  the official ``MRSTFTMetric``: FFT sizes (1024, 2048, 512), hops (120, 240, 50), windows
  (600, 1200, 240) Hann, linear frequency scale, ``w_sc = w_log_mag = 1``, ``w_lin_mag = w_phs = 0``,
  i.e. the mean over the three resolutions of spectral convergence ``‖|X| − |X̂|‖_F / ‖|X|‖_F`` plus
  mean ``|log|X̂| − log|X||`` (magnitudes floored at 1e-4). One deviation: the official metric runs
  auraloss with ``reduction="none"`` and a monkey-patched reduction, so its spectral-convergence
  term is pooled over the whole batch; here every item is scored on its own (batch size 1), so the
  value does not depend on how items are batched, and no library global is patched.
* Chroma correlation (unitless, not in the official code): pitch content kept by a reconstruction.
  STFT power (Hann window of 8192 samples, hop 2048, at 44.1 kHz), the bins from 60 to 4000 Hz
  folded onto the 12 pitch classes (nearest semitone of 440 Hz), each frame unit-normalised; the
  value is the mean over frames of the dot product of the two chromagrams. 1 for identical pitch
  content; white noise scores about 0.45–0.57 against music, and so does a decoder that keeps the
  spectral envelope but not the pitch.
* Relative L2 (unitless), official ``relative_l2_error``: ``‖ẑ − z‖₂ / (‖z‖₂ + ε)`` over all
  non-batch axes.
* Effective rank, official ``get_erank`` (Roy & Vetterli, 2007): the latents are arranged as a
  matrix with one row per latent frame and one column per latent channel (no centring, no
  normalisation), ``σ`` its singular values, ``p = σ / Σσ``, ``erank = exp(−Σ p·log p)`` with
  ``0·log 0 = 0``. It ranges from 1 to the number of channels.

Linearity properties (``Enc``, ``Dec`` the codec's encoder and decoder, ``a`` a gain):

* encoder homogeneity: relative L2 of ``Enc(a·x)`` against ``a·Enc(x)`` (lower is better);
* decoder homogeneity: SNR of ``Dec(a·z)`` against ``a·Dec(z)`` (higher is better);
* encoder additivity: relative L2 of ``Enc(x1) + Enc(x2)`` against ``Enc(x1 + x2)``;
* decoder additivity: MR-STFT of ``Dec(Enc(x1) + Enc(x2))`` against ``Dec(Enc(x1 + x2))``, plus
  (not in the official code) SI-SDR of ``Dec(Enc(x1) + Enc(x2))`` against ``x1 + x2``;
* separation by latent subtraction: SI-SDR and MR-STFT of ``Dec(Enc(mix) − Enc(stem))`` against
  ``mix − stem`` (the official ``separability`` reports the MR-STFT only);
* silence latent norm (official ``silence_latent_norm``): ``Enc(0)`` should be 0 for a homogeneous
  encoder; the norm over latent frames, averaged over channels.

Generative decoders draw noise: with ``seed`` given, every decode gets a fresh
``torch.Generator().manual_seed(seed)`` (if the codec's ``decode`` accepts ``generator``), so the two
decodes being compared see the same noise. The official code compares decodes with independent
noise.

All values are computed in float64 and returned per item (a ``[B]`` float64 tensor on the CPU);
:func:`mean_over_items` turns such a mapping into floats. Everything runs under
``torch.inference_mode()``. ``auraloss`` is imported on first use of :func:`mrstft_distance`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "CHROMA_SETTINGS",
    "EPS",
    "HOMOGENEITY_GAINS",
    "MRSTFT_SETTINGS",
    "LatentCodec",
    "additivity",
    "chroma_correlation",
    "chromagram",
    "decode",
    "decoder_homogeneity",
    "effective_rank",
    "encoder_homogeneity",
    "latent_frames",
    "mean_over_items",
    "mrstft_distance",
    "reconstruction",
    "relative_l2",
    "separation",
    "si_sdr",
    "silence_latent_norm",
    "snr",
]

EPS = 1e-8
"""Stabiliser of the official metrics (auraloss' default and ``relative_l2_error``'s)."""

HOMOGENEITY_GAINS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.1)
"""Gains of the official homogeneity evaluation."""

MRSTFT_SETTINGS: dict[str, Any] = {
    "fft_sizes": [1024, 2048, 512],
    "hop_sizes": [120, 240, 50],
    "win_lengths": [600, 1200, 240],
    "window": "hann_window",
    "w_sc": 1.0,
    "w_log_mag": 1.0,
    "w_lin_mag": 0.0,
    "w_phs": 0.0,
}
"""``auraloss.freq.MultiResolutionSTFTLoss`` arguments (its defaults, which the official code uses)."""


CHROMA_SETTINGS: dict[str, float] = {"n_fft": 8192, "hop": 2048, "f_min": 60.0, "f_max": 4000.0}
"""Chromagram settings of :func:`chroma_correlation` (at 44.1 kHz)."""


@runtime_checkable
class LatentCodec(Protocol):
    """What the property metrics need of an autoencoder (``lincae.Autoencoder`` satisfies it).

    ``decode`` may also take a keyword ``generator: torch.Generator | None`` for seeded noise.
    """

    def encode(self, audio: Tensor) -> Tensor:
        """Audio ``[B, T]`` (44.1 kHz, float32) → latents ``[B, C, Z]`` (channels, frames)."""
        ...

    def decode(self, z: Tensor, full_length: int) -> Tensor:
        """Latents ``[B, C, Z]`` → audio ``[B, T]`` with ``T = full_length``."""
        ...


# --------------------------------------------------------------------------- helpers
def _check_pair(estimate: Tensor, reference: Tensor, what: str) -> None:
    if not isinstance(estimate, Tensor) or not isinstance(reference, Tensor):
        raise TypeError(f"{what}: estimate and reference must be torch tensors")
    if estimate.shape != reference.shape:
        raise ValueError(
            f"{what}: estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape"
        )
    if estimate.dim() == 0 or estimate.shape[-1] == 0:
        raise ValueError(f"{what}: inputs need a non-empty last (time) axis, got {tuple(estimate.shape)}")


def _pair(estimate: Tensor, reference: Tensor, what: str) -> tuple[Tensor, Tensor]:
    _check_pair(estimate, reference, what)
    return estimate.detach().to(torch.float64), reference.detach().to(torch.float64)


def _items(values: Tensor) -> Tensor:
    return values.detach().to("cpu", torch.float64)


def mean_over_items(values: Mapping[str, Tensor]) -> dict[str, float]:
    """Mean of each per-item tensor of a property metric's result (NaN for an empty one)."""
    return {k: float(v.mean()) if v.numel() else float("nan") for k, v in values.items()}


def _gain_key(prefix: str, gain: float) -> str:
    return f"{prefix}@a={gain:g}"


# --------------------------------------------------------------------------- signal metrics
@torch.inference_mode()
def si_sdr(estimate: Tensor, reference: Tensor, *, zero_mean: bool = False, eps: float = EPS) -> Tensor:
    """Scale-invariant signal-to-distortion ratio (Le Roux et al., 2019), in dB, higher is better.

    Args:
        estimate: ``[..., T]`` signal under test (e.g. a reconstruction).
        reference: ``[..., T]`` ground truth, same shape.
        zero_mean: remove each signal's mean first (the official evaluation does not).
        eps: stabiliser, as in ``auraloss.time.SISDRLoss``.

    Returns:
        ``[...]`` float64 SI-SDR in dB per signal (``si_sdr(x, x)`` ≈ 10·log10(‖x‖²/ε)).
    """
    est, ref = _pair(estimate, reference, "si_sdr")
    if zero_mean:
        est = est - est.mean(-1, keepdim=True)
        ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1) / (ref.square().sum(-1) + eps)
    target = ref * alpha.unsqueeze(-1)
    residual = est - target
    return 10 * torch.log10(target.square().sum(-1) / (residual.square().sum(-1) + eps) + eps)


@torch.inference_mode()
def snr(estimate: Tensor, reference: Tensor, *, zero_mean: bool = False, eps: float = EPS) -> Tensor:
    """Signal-to-noise ratio ``10·log10(‖x‖² / ‖x̂ − x‖²)`` in dB, higher is better (not scale-invariant).

    Args:
        estimate: ``[..., T]`` signal under test.
        reference: ``[..., T]`` ground truth, same shape.
        zero_mean: remove each signal's mean first (the official evaluation does not).
        eps: stabiliser, as in ``auraloss.time.SNRLoss``.

    Returns:
        ``[...]`` float64 SNR in dB per signal.
    """
    est, ref = _pair(estimate, reference, "snr")
    if zero_mean:
        est = est - est.mean(-1, keepdim=True)
        ref = ref - ref.mean(-1, keepdim=True)
    return 10 * torch.log10(ref.square().sum(-1) / ((est - ref).square().sum(-1) + eps) + eps)


@torch.inference_mode()
def mrstft_distance(estimate: Tensor, reference: Tensor) -> Tensor:
    """Multi-resolution STFT distance (auraloss, official settings :data:`MRSTFT_SETTINGS`), lower is better.

    Args:
        estimate: ``[..., T]`` audio at 44.1 kHz; ``T`` must exceed 1024 samples (the largest FFT
            size over 2, for the reflection padding of the centred STFT).
        reference: ``[..., T]`` ground truth, same shape.

    Returns:
        ``[...]`` float64 distance per signal (unitless, 0 for identical signals). Each signal is
        scored on its own, as a batch of one (see the module docstring).
    """
    try:
        from auraloss.freq import MultiResolutionSTFTLoss
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("mrstft_distance needs auraloss: pip install auraloss") from err
    _check_pair(estimate, reference, "mrstft_distance")
    min_len = max(MRSTFT_SETTINGS["fft_sizes"]) // 2 + 1
    if estimate.shape[-1] < min_len:
        raise ValueError(f"mrstft_distance: signals need at least {min_len} samples, got {tuple(estimate.shape)}")
    lead = estimate.shape[:-1]
    est = estimate.detach().reshape(-1, 1, estimate.shape[-1]).float()
    ref = reference.detach().reshape(-1, 1, reference.shape[-1]).float()
    loss = MultiResolutionSTFTLoss(**MRSTFT_SETTINGS).to(est.device)
    out = torch.stack([loss(est[i : i + 1], ref[i : i + 1]) for i in range(est.shape[0])])
    return out.to(torch.float64).reshape(lead)


@torch.inference_mode()
def chromagram(audio: Tensor, sample_rate: int = 44100) -> Tensor:
    """Unit-normalised chroma ``[..., 12, frames]`` of ``audio: [..., T]`` (float64; see the module docstring).

    ``T`` must reach one FFT (8192 samples); silent frames give all-zero columns.
    """
    n_fft, hop = int(CHROMA_SETTINGS["n_fft"]), int(CHROMA_SETTINGS["hop"])
    if audio.shape[-1] < n_fft:
        raise ValueError(f"chromagram: audio needs at least {n_fft} samples, got {audio.shape[-1]}")
    lead = audio.shape[:-1]
    x = audio.detach().reshape(-1, audio.shape[-1]).to(torch.float64)
    window = torch.hann_window(n_fft, dtype=torch.float64, device=x.device)
    power = torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True).abs().square()
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate).to(x.device)
    band = (freqs >= CHROMA_SETTINGS["f_min"]) & (freqs <= CHROMA_SETTINGS["f_max"])
    pitch_class = torch.round(12.0 * torch.log2(freqs[band] / 440.0)).long() % 12
    chroma = torch.zeros(x.shape[0], 12, power.shape[-1], dtype=torch.float64, device=x.device)
    chroma.index_add_(1, pitch_class, power[:, band])
    chroma = chroma / chroma.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return chroma.reshape(*lead, 12, -1).cpu()


@torch.inference_mode()
def chroma_correlation(estimate: Tensor, reference: Tensor, sample_rate: int = 44100) -> Tensor:
    """Mean over frames of the dot product of the two chromagrams, per signal (``[..., T]`` → ``[...]``).

    Higher is better; 1 for the same pitch content. Frames where either signal is silent count as 0.
    """
    _check_pair(estimate, reference, "chroma_correlation")
    return (chromagram(estimate, sample_rate) * chromagram(reference, sample_rate)).sum(-2).mean(-1)


@torch.inference_mode()
def relative_l2(estimate: Tensor, reference: Tensor, *, eps: float = EPS) -> Tensor:
    """Relative L2 error ``‖ẑ − z‖₂ / (‖z‖₂ + ε)`` per batch item, lower is better.

    Args:
        estimate: ``[B, ...]`` (e.g. latents ``[B, C, Z]``); norms run over every axis but the first.
        reference: ``[B, ...]`` same shape.

    Returns:
        ``[B]`` float64 ratio (unitless; 0 when equal, 1 when the estimate is 0).
    """
    est, ref = _pair(estimate, reference, "relative_l2")
    if est.dim() == 1:
        est, ref = est.unsqueeze(0), ref.unsqueeze(0)
    dims = tuple(range(1, est.dim()))
    return torch.linalg.vector_norm(est - ref, dim=dims) / (torch.linalg.vector_norm(ref, dim=dims) + eps)


def latent_frames(latents: Tensor) -> Tensor:
    """Latents ``[B, C, Z]`` (or chunked ``[B, N, C, Z]``) → matrix ``[B·Z, C]``, one row per frame.

    A 2-D input ``[rows, C]`` is returned as is.
    """
    if latents.dim() < 2:
        raise ValueError(f"latents need at least 2 axes, got shape {tuple(latents.shape)}")
    if latents.dim() == 2:
        return latents
    return latents.movedim(-2, -1).reshape(-1, latents.shape[-2])


@torch.inference_mode()
def effective_rank(latents: Tensor | Sequence[Tensor]) -> float:
    """Entropy effective rank (Roy & Vetterli, 2007) of latent frames, as the official ``get_erank``.

    Args:
        latents: ``[B, C, Z]``, chunked ``[B, N, C, Z]``, an already stacked ``[rows, C]`` matrix, or a
            sequence of such tensors (their frames are stacked; all must share ``C``).

    Returns:
        ``exp(H(p))`` with ``p`` the singular values of the ``[frames, C]`` matrix normalised to sum 1;
        between 1 and ``C`` (1 for rank-one data, about ``C`` for white isotropic data). NaN when
        the latents are all zero.
    """
    if isinstance(latents, Tensor):
        mat = latent_frames(latents.detach())
    else:
        mat = torch.cat([latent_frames(t.detach().cpu()) for t in latents], dim=0)
    mat = mat.to(torch.float64)
    sv = torch.linalg.svdvals(mat)
    total = sv.sum()
    if not torch.isfinite(total) or total <= 0:
        return float("nan")
    p = sv / total
    entropy = -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum()
    return float(torch.exp(entropy))


# --------------------------------------------------------------------------- codec helpers
def _accepts_generator(codec: LatentCodec) -> bool:
    try:
        params = inspect.signature(codec.decode).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@torch.inference_mode()
def decode(codec: LatentCodec, z: Tensor, full_length: int, seed: int | None = None) -> Tensor:
    """``codec.decode(z, full_length)`` cut to ``[..., :full_length]``; seeded if possible.

    With ``seed`` given and a ``decode`` that accepts ``generator`` (by name, or through
    ``**kwargs``), a fresh ``torch.Generator().manual_seed(seed)`` is passed, so two calls with the
    same seed and latent shape draw the same noise. Otherwise ``seed`` is ignored.
    """
    if seed is not None and _accepts_generator(codec):
        out = codec.decode(z, full_length, generator=torch.Generator().manual_seed(seed))  # type: ignore[call-arg]
    else:
        out = codec.decode(z, full_length)
    if out.shape[-1] < full_length:
        raise ValueError(f"decode returned {out.shape[-1]} samples, expected {full_length}")
    return out[..., :full_length]


def _check_audio(audio: Tensor, what: str) -> Tensor:
    if not isinstance(audio, Tensor):
        raise TypeError(f"{what} must be a torch tensor, got {type(audio).__name__}")
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2:
        raise ValueError(f"{what} must be [B, T] mono audio, got shape {tuple(audio.shape)}")
    return audio


# --------------------------------------------------------------------------- property metrics
@torch.inference_mode()
def reconstruction(
    codec: LatentCodec,
    audio: Tensor,
    *,
    seed: int | None = None,
    z: Tensor | None = None,
    estimate: Tensor | None = None,
) -> dict[str, Tensor]:
    """Reconstruction quality of ``Dec(Enc(x))`` against ``x``.

    Args:
        codec: the autoencoder.
        audio: ``[B, T]`` (or ``[T]``) mono float32 audio at 44.1 kHz.
        seed: decoder noise seed (see :func:`decode`).
        z: ``Enc(audio)`` if already computed, ``[B, C, Z]``.
        estimate: ``Dec(z)`` if already decoded, ``[B, T]`` (then ``codec`` and ``z`` are not used).

    Returns:
        Per item ``[B]``: ``si_sdr`` (dB, ↑), ``snr`` (dB, ↑), ``mrstft`` (↓), ``level`` (dB of the
        reconstruction's RMS over the input's, 0 is best) and, for clips of at least 8192 samples,
        ``chroma`` (chroma correlation, ↑).
    """
    x = _check_audio(audio, "audio")
    if estimate is None:
        z = codec.encode(x) if z is None else z
        y = decode(codec, z, x.shape[-1], seed).to(x.device)
    else:
        y = _check_audio(estimate, "estimate").to(x.device)
        _check_pair(y, x, "reconstruction")
    level = 10 * torch.log10(y.double().square().mean(-1) / x.double().square().mean(-1).clamp_min(EPS))
    out = {
        "si_sdr": _items(si_sdr(y, x)),
        "snr": _items(snr(y, x)),
        "mrstft": _items(mrstft_distance(y, x)),
        "level": _items(level.cpu()),
    }
    if x.shape[-1] >= CHROMA_SETTINGS["n_fft"]:
        out["chroma"] = _items(chroma_correlation(y, x))
    return out


@torch.inference_mode()
def encoder_homogeneity(
    codec: LatentCodec,
    audio: Tensor,
    *,
    gains: Sequence[float] = HOMOGENEITY_GAINS,
    z: Tensor | None = None,
) -> dict[str, Tensor]:
    """Relative L2 of ``Enc(a·x)`` against ``a·Enc(x)`` for each gain ``a`` (lower is better).

    Args:
        codec: the autoencoder.
        audio: ``[B, T]`` mono audio at 44.1 kHz.
        gains: the gains ``a``.
        z: ``Enc(audio)`` if already computed.

    Returns:
        Per item ``[B]``: ``rel_l2@a=<gain>`` for every gain, and ``rel_l2_mean`` (their mean).
    """
    x = _check_audio(audio, "audio")
    z = codec.encode(x) if z is None else z
    out: dict[str, Tensor] = {}
    for a in gains:
        out[_gain_key("rel_l2", a)] = _items(relative_l2(codec.encode(x * a), z * a))
    out["rel_l2_mean"] = torch.stack(list(out.values())).mean(0)
    return out


@torch.inference_mode()
def decoder_homogeneity(
    codec: LatentCodec,
    z: Tensor,
    full_length: int,
    *,
    gains: Sequence[float] = HOMOGENEITY_GAINS,
    seed: int | None = None,
) -> dict[str, Tensor]:
    """SNR of ``Dec(a·z)`` against ``a·Dec(z)`` for each gain ``a``, in dB (higher is better).

    Args:
        codec: the autoencoder.
        z: latents ``[B, C, Z]`` (e.g. ``Enc(x)`` of real audio).
        full_length: decoded length in samples.
        gains: the gains ``a``.
        seed: decoder noise seed; with it both decodes draw the same noise (see :func:`decode`).

    Returns:
        Per item ``[B]``: ``snr@a=<gain>`` (dB) for every gain, and ``snr_mean`` (their mean).
    """
    base = decode(codec, z, full_length, seed)
    out: dict[str, Tensor] = {}
    for a in gains:
        scaled = decode(codec, z * a, full_length, seed)
        out[_gain_key("snr", a)] = _items(snr(scaled, base * a))
    out["snr_mean"] = torch.stack(list(out.values())).mean(0)
    return out


@torch.inference_mode()
def additivity(
    codec: LatentCodec,
    x1: Tensor,
    x2: Tensor,
    *,
    seed: int | None = None,
    z1: Tensor | None = None,
    z2: Tensor | None = None,
    z_sum: Tensor | None = None,
) -> dict[str, Tensor]:
    """Encoder and decoder additivity for pairs of signals ``x1[b]``, ``x2[b]``.

    Args:
        codec: the autoencoder.
        x1, x2: ``[B, T]`` mono audio at 44.1 kHz.
        seed: decoder noise seed (both decodes see the same noise).
        z1, z2, z_sum: ``Enc(x1)``, ``Enc(x2)``, ``Enc(x1 + x2)`` if already computed.

    Returns:
        Per item ``[B]``:
        ``enc_rel_l2`` relative L2 of ``Enc(x1) + Enc(x2)`` against ``Enc(x1 + x2)`` (↓);
        ``dec_mrstft`` MR-STFT of ``Dec(Enc(x1) + Enc(x2))`` against ``Dec(Enc(x1 + x2))`` (↓);
        ``dec_si_sdr`` SI-SDR of ``Dec(Enc(x1) + Enc(x2))`` against ``x1 + x2`` (dB, ↑).
    """
    x1, x2 = _check_audio(x1, "x1"), _check_audio(x2, "x2")
    if x1.shape != x2.shape:
        raise ValueError(f"x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} differ in shape")
    length = x1.shape[-1]
    z1 = codec.encode(x1) if z1 is None else z1
    z2 = codec.encode(x2) if z2 is None else z2
    z_sum = codec.encode(x1 + x2) if z_sum is None else z_sum
    latent_sum = z1 + z2
    dec_latent_sum = decode(codec, latent_sum, length, seed)
    dec_mix = decode(codec, z_sum, length, seed)
    return {
        "enc_rel_l2": _items(relative_l2(latent_sum, z_sum)),
        "dec_mrstft": _items(mrstft_distance(dec_latent_sum, dec_mix)),
        "dec_si_sdr": _items(si_sdr(dec_latent_sum.to(x1.device), x1 + x2)),
    }


@torch.inference_mode()
def separation(
    codec: LatentCodec,
    mix: Tensor,
    stem: Tensor,
    *,
    seed: int | None = None,
    z_mix: Tensor | None = None,
    z_stem: Tensor | None = None,
) -> dict[str, Tensor]:
    """Separation by latent subtraction: ``Dec(Enc(mix) − Enc(stem))`` against ``mix − stem``.

    Args:
        codec: the autoencoder.
        mix: ``[B, T]`` mixtures at 44.1 kHz.
        stem: ``[B, T]`` the stem to remove from each mixture.
        seed: decoder noise seed.
        z_mix, z_stem: ``Enc(mix)``, ``Enc(stem)`` if already computed.

    Returns:
        Per item ``[B]``: ``si_sdr`` (dB, ↑) and ``mrstft`` (↓).
    """
    mix, stem = _check_audio(mix, "mix"), _check_audio(stem, "stem")
    if mix.shape != stem.shape:
        raise ValueError(f"mix {tuple(mix.shape)} and stem {tuple(stem.shape)} differ in shape")
    z_mix = codec.encode(mix) if z_mix is None else z_mix
    z_stem = codec.encode(stem) if z_stem is None else z_stem
    estimate = decode(codec, z_mix - z_stem, mix.shape[-1], seed).to(mix.device)
    target = mix - stem
    return {"si_sdr": _items(si_sdr(estimate, target)), "mrstft": _items(mrstft_distance(estimate, target))}


@torch.inference_mode()
def silence_latent_norm(codec: LatentCodec, num_samples: int, device: torch.device | str = "cpu") -> float:
    """Norm of ``Enc(0)`` over latent frames, averaged over channels (official ``silence_latent_norm``, ↓).

    Args:
        codec: the autoencoder.
        num_samples: length of the silent input in samples.
        device: where to build the silent input.
    """
    z = codec.encode(torch.zeros(1, num_samples, device=device))
    return float(torch.linalg.vector_norm(z.to(torch.float64), dim=-1).mean())
