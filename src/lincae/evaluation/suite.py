"""Run every metric of :mod:`lincae.evaluation.metrics` over a set of pieces and write a report.

:func:`evaluate` scores one codec on pieces with a mixture and stems; :func:`write_report` puts
several codecs side by side (Markdown, CSV and one bar-plot PNG per metric group).

How the pieces are used (each cropped to ``crop_seconds``, the same window for mix and stems):

* reconstruction, encoder and decoder homogeneity: on the mixture;
* additivity: ``x1 = stem``, ``x2 = mix − stem`` for every stem, so ``x1 + x2 = mix`` (the official
  callback pairs two unrelated excerpts of a batch instead; :func:`metrics.additivity` takes any pair);
* separation: ``Dec(Enc(mix) − Enc(stem))`` against ``mix − stem`` for every stem (also reported
  per stem name);
* effective rank: of the latent frames of all mixtures and stems together (one value for the set,
  as the official code computes it over the whole test set);
* silence latent norm: ``Enc`` of ``crop_seconds`` of zeros;
* with ``quality=True``, on the reconstruction of the mixture: ViSQOL, the high-band MR-STFT and the
  harmonic energy kept above 2 kHz (:mod:`lincae.evaluation.quality`).

``properties=False`` scores the reconstruction alone (for codecs that are not meant to be linear,
such as the mel + Griffin-Lim reference of :mod:`lincae.evaluation.reference`).

Result keys are ``"<group>/<metric>"``, e.g. ``reconstruction/si_sdr`` or
``enc_homogeneity/rel_l2@a=0.5``; every value is the mean over all scored items.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from lincae.evaluation import metrics as M
from lincae.evaluation import quality as Q
from lincae.evaluation.metrics import HOMOGENEITY_GAINS, LatentCodec

__all__ = ["GROUP_TITLES", "MetricInfo", "evaluate", "metric_info", "write_report"]

SAMPLE_RATE = 44_100

GROUP_TITLES: dict[str, str] = {
    "reconstruction": "Reconstruction",
    "enc_homogeneity": "Encoder homogeneity",
    "dec_homogeneity": "Decoder homogeneity",
    "enc_additivity": "Encoder additivity",
    "dec_additivity": "Decoder additivity",
    "separation": "Separation by latent subtraction",
    "latent": "Latent space",
    "real_reconstruction": "Reconstruction of real recordings",
    "real_dec_homogeneity": "Decoder homogeneity on real recordings",
}
"""Display order and titles of the metric groups (other groups follow, sorted)."""


@dataclass(frozen=True)
class MetricInfo:
    """How to display a metric: its group, unit and preferred direction (``+1`` ↑, ``-1`` ↓, ``0``)."""

    group: str
    name: str
    unit: str
    direction: int
    description: str

    @property
    def arrow(self) -> str:
        """``↑`` (higher is better), ``↓`` (lower is better) or ``·`` (no preferred direction)."""
        return {1: "↑", -1: "↓"}.get(self.direction, "·")


_BASE_INFO: dict[str, tuple[str, int, str]] = {
    "si_sdr": ("dB", 1, "SI-SDR"),
    "snr": ("dB", 1, "SNR"),
    "mrstft": ("", -1, "multi-resolution STFT distance"),
    "rel_l2": ("", -1, "relative L2 error"),
    "erank": ("", 0, "effective rank of the latent frames (out of the channel count)"),
    "silence_norm": ("", -1, "norm of Enc(silence)"),
    "chroma": ("", 1, "chroma correlation (pitch content kept)"),
    "level": ("dB", 0, "level of the reconstruction against the input (0 is right)"),
    "visqol": ("MOS", 1, "ViSQOL v3 audio-mode MOS-LQO (1-5)"),
    "hf_mrstft": ("", -1, "MR-STFT distance from 4 to 16 kHz"),
    "hf_harmonics": ("", 1, "share of the harmonic peak energy above 2 kHz kept (0-1)"),
}


def metric_info(key: str) -> MetricInfo:
    """Display information of a result key ``"<group>/<metric>[@qualifier]"``.

    The metric's base name (``si_sdr``, ``snr``, ``mrstft``, ``rel_l2``, ``erank``, ``silence_norm``,
    optionally with an ``enc_``/``dec_`` prefix or a ``_mean`` suffix) sets unit and direction;
    unknown names get no unit and no direction.
    """
    group, _, name = key.rpartition("/")
    group = group or "other"
    base = re.sub(r"^(enc|dec)_", "", name.split("@", 1)[0])
    base = re.sub(r"_mean$", "", base)
    unit, direction, description = _BASE_INFO.get(base, ("", 0, name))
    return MetricInfo(group=group, name=name, unit=unit, direction=direction, description=description)


# --------------------------------------------------------------------------- evaluation
def _as_mono(value: np.ndarray | Tensor, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value).detach()
    t = t.to(torch.float32)
    if t.dim() == 2 and t.shape[0] <= 2:
        t = t.mean(0)
    if t.dim() != 1:
        raise ValueError(f"{name}: expected mono audio [T] (or [1, T]), got shape {tuple(t.shape)}")
    return t


def _crop_start(mix: Tensor, length: int, crop: str, sample_rate: int) -> int:
    if mix.shape[-1] <= length or crop == "start":
        return 0
    if crop != "loudest":
        raise ValueError(f"crop must be 'loudest' or 'start', got {crop!r}")
    # Loudest window on a grid of 0.5 s (energy from a cumulative sum, so this stays cheap).
    step = max(1, sample_rate // 2)
    energy = torch.cat([torch.zeros(1, dtype=torch.float64), mix.to(torch.float64).square().cumsum(0)])
    starts = torch.arange(0, mix.shape[-1] - length + 1, step)
    window_energy = energy[starts + length] - energy[starts]
    return int(starts[int(torch.argmax(window_energy))])


def _infer_device(codec: LatentCodec) -> torch.device:
    dev = getattr(codec, "device", None)
    if isinstance(dev, (torch.device, str)):
        return torch.device(dev)
    params = getattr(codec, "parameters", None)
    if callable(params):
        try:
            return next(iter(params())).device
        except (StopIteration, TypeError):
            pass
    return torch.device("cpu")


@torch.inference_mode()
def evaluate(
    codec: LatentCodec,
    pieces: Sequence[Mapping[str, np.ndarray | Tensor]],
    *,
    crop_seconds: float = 3.0,
    sample_rate: int = SAMPLE_RATE,
    crop: Literal["loudest", "start"] = "loudest",
    stems: Sequence[str] | None = None,
    gains: Sequence[float] = HOMOGENEITY_GAINS,
    seed: int | None = 0,
    device: torch.device | str | None = None,
    quality: bool = False,
    properties: bool = True,
) -> dict[str, float]:
    """Score a codec on every metric and average over all pieces (and stems).

    Args:
        codec: the autoencoder (:class:`~lincae.evaluation.metrics.LatentCodec`).
        pieces: each a mapping with ``"mix"`` and stems (e.g. ``drums``, ``bass``, ``chords``,
            ``melody``), mono float32 arrays or tensors ``[T]`` at ``sample_rate``; a stem shorter
            or longer than the mix is zero-padded or cut to it.
        crop_seconds: length scored per piece, in seconds (a piece shorter than this is used whole).
        sample_rate: audio rate in Hz (the model's: 44.1 kHz).
        crop: ``"loudest"`` takes the loudest window of the mix (on a 0.5 s grid), ``"start"`` the
            first ``crop_seconds``.
        stems: stem names to use (default: every key but ``"mix"``; missing ones are skipped).
        gains: homogeneity gains.
        seed: decoder noise seed, used for every decode (see :func:`metrics.decode`); ``None`` for
            unseeded decoding.
        device: where to run (default: the codec's ``device`` attribute or parameters, else CPU).
        quality: add ``reconstruction/visqol``, ``reconstruction/hf_mrstft`` and
            ``reconstruction/hf_harmonics`` (needs ``visqol-python``; about 2 s per piece on a CPU).
        properties: score the linearity properties, separation and latent space too; ``False``:
            the reconstruction alone.

    Returns:
        ``{"<group>/<metric>": mean}``; see :func:`metric_info` for units and directions.
    """
    if not pieces:
        raise ValueError("evaluate needs at least one piece")
    if not crop_seconds > 0:
        raise ValueError(f"crop_seconds must be > 0, got {crop_seconds}")
    dev = torch.device(device) if device is not None else _infer_device(codec)
    length = round(crop_seconds * sample_rate)
    items: dict[str, list[Tensor]] = defaultdict(list)
    latents: list[Tensor] = []

    def add(group: str, values: Mapping[str, Tensor], suffix: str = "") -> None:
        for name, v in values.items():
            items[f"{group}/{name}{suffix}"].append(v.reshape(-1))

    for i, piece in enumerate(pieces):
        if "mix" not in piece:
            raise ValueError(f"piece {i} has no 'mix' (keys: {sorted(piece)})")
        mix_full = _as_mono(piece["mix"], f"piece {i} mix")
        start = _crop_start(mix_full, length, crop, sample_rate)
        stop = min(start + length, mix_full.shape[-1])
        mix = mix_full[start:stop].to(dev).unsqueeze(0)  # [1, T]
        t = mix.shape[-1]
        names = [n for n in (stems if stems is not None else [k for k in piece if k != "mix"]) if n in piece]
        stem_list = []
        for n in names:
            s = _as_mono(piece[n], f"piece {i} {n}")[start:stop]
            stem_list.append(torch.nn.functional.pad(s, (0, t - s.shape[-1])))

        z_mix = codec.encode(mix)
        latents.append(z_mix.detach().cpu())
        y = M.decode(codec, z_mix, t, seed).to(mix.device)
        add("reconstruction", M.reconstruction(codec, mix, seed=seed, z=z_mix, estimate=y))
        if quality:
            add("reconstruction", Q.quality_scores(y, mix, sample_rate))
        if not properties:
            continue
        add("enc_homogeneity", M.encoder_homogeneity(codec, mix, gains=gains, z=z_mix))
        add("dec_homogeneity", M.decoder_homogeneity(codec, z_mix, t, gains=gains, seed=seed))

        if not stem_list:
            continue
        stem_batch = torch.stack(stem_list).to(dev)  # [K, T]
        k = stem_batch.shape[0]
        mix_k = mix.expand(k, t).contiguous()
        z_mix_k = z_mix.expand(k, *z_mix.shape[1:]).contiguous()
        z_stem = codec.encode(stem_batch)
        latents.append(z_stem.detach().cpu())
        add_res = M.additivity(codec, stem_batch, mix_k - stem_batch, seed=seed, z1=z_stem, z_sum=z_mix_k)
        add("enc_additivity", {"rel_l2": add_res["enc_rel_l2"]})
        add("dec_additivity", {"mrstft": add_res["dec_mrstft"], "si_sdr": add_res["dec_si_sdr"]})
        sep = M.separation(codec, mix_k, stem_batch, seed=seed, z_mix=z_mix_k, z_stem=z_stem)
        add("separation", sep)
        for j, n in enumerate(names):
            add("separation", {name: v[j : j + 1] for name, v in sep.items()}, suffix=f"@{n}")

    # nanmean: a metric may not apply to an item (harmonic energy of a piece without harmonics above 2 kHz).
    results = {key: float(torch.cat(vals).nanmean()) for key, vals in items.items()}
    if properties:
        results["latent/erank"] = M.effective_rank(latents)
        results["latent/silence_norm"] = M.silence_latent_norm(codec, length, dev)
    return dict(sorted(results.items(), key=lambda kv: _sort_key(kv[0])))


# --------------------------------------------------------------------------- report
def _group_rank(group: str) -> tuple[int, str]:
    order = list(GROUP_TITLES)
    return (order.index(group), "") if group in order else (len(order), group)


def _sort_key(key: str) -> tuple[tuple[int, str], int, str]:
    info = metric_info(key)
    # Per-gain / per-stem rows after the aggregate rows of the same group.
    return (_group_rank(info.group), int("@" in info.name), key)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"


def _best(values: list[float], direction: int) -> int | None:
    finite = [(v, j) for j, v in enumerate(values) if math.isfinite(v)]
    if direction == 0 or len(finite) < 2:
        return None
    return (max if direction > 0 else min)(finite)[1]


def write_report(results: Mapping[str, Mapping[str, float]], out_dir: str | Path) -> None:
    """Write ``results.md``, ``results.csv`` and ``<group>.png`` bar plots comparing models.

    Args:
        results: ``{model name: {metric key: value}}`` (e.g. one :func:`evaluate` result per model);
            a metric missing for a model shows as ``–``.
        out_dir: output folder (created if needed).

    The Markdown table has the metrics as rows (with unit and ``↑``/``↓`` for whether higher or lower
    is better; ``·`` when neither) and the models as columns, the best value of each row in bold.
    The CSV has the same rows, numbers at full precision. One PNG per metric group has one small bar
    chart per metric, one bar per model.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = list(results)
    keys = sorted({k for r in results.values() for k in r}, key=_sort_key)

    def row_values(key: str) -> list[float]:
        return [float(results[m].get(key, float("nan"))) for m in models]

    # Markdown
    lines = [
        "# Evaluation results",
        "",
        "↑ higher is better, ↓ lower is better, · no preferred direction; best value per row in bold.",
        "",
    ]
    groups: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        groups[metric_info(key).group].append(key)
    header = "| metric | unit | better | " + " | ".join(m.replace("|", "\\|") for m in models) + " |"
    rule = "|---|---|:---:|" + "---:|" * len(models)
    for group, gkeys in groups.items():
        lines += [f"## {GROUP_TITLES.get(group, group)}", "", header, rule]
        for key in gkeys:
            info = metric_info(key)
            vals = row_values(key)
            best = _best(vals, info.direction)
            cells = [f"**{_fmt(v)}**" if j == best else _fmt(v) for j, v in enumerate(vals)]
            lines.append(f"| `{key}` | {info.unit or '–'} | {info.arrow} | " + " | ".join(cells) + " |")
        lines.append("")
    (out / "results.md").write_text("\n".join(lines), encoding="utf-8")

    # CSV
    with (out / "results.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "group", "unit", "better", *models])
        for key in keys:
            info = metric_info(key)
            better = {1: "higher", -1: "lower"}.get(info.direction, "")
            writer.writerow([key, info.group, info.unit, better, *(repr(v) for v in row_values(key))])

    # Plots: matplotlib is imported here, so importing this module has no side effects, and the
    # figures are drawn on their own Agg canvas, leaving pyplot's global backend and state alone.
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cmap = colormaps["tab10"]
    colors = [cmap(j % 10) for j in range(len(models))]
    for group, gkeys in groups.items():
        ncols = min(len(gkeys), 5)
        nrows = math.ceil(len(gkeys) / ncols)
        fig = Figure(figsize=(2.6 * ncols + 0.4, 2.8 * nrows + 0.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, key in zip(axes.flat, gkeys, strict=False):
            info = metric_info(key)
            vals = np.array(row_values(key), dtype=float)
            ax.bar(range(len(models)), np.nan_to_num(vals, nan=0.0, posinf=0.0, neginf=0.0), color=colors)
            ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=7)
            unit = f" [{info.unit}]" if info.unit else ""
            ax.set_title(f"{info.name}{unit} {info.arrow}", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
            ax.axhline(0, color="black", linewidth=0.5)
        for ax in list(axes.flat)[len(gkeys) :]:
            ax.axis("off")
        fig.suptitle(GROUP_TITLES.get(group, group), fontsize=10)
        fig.tight_layout()
        fig.savefig(out / f"{_safe_name(group)}.png", dpi=100)


def _safe_name(group: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", group) or "metrics"
