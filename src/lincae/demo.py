"""``lincae demo``: the Lin-CAE demonstrations rendered through the engine, as a page to listen to.

A short multi-instrument piece is generated with separate stems (General MIDI SoundFont), then mixed
in latent space by the offline engine:

- reconstruction: the mix alone, latent gain 0 dB;
- mixing: the four stems as four sources, their latents summed;
- volume: the mix at latent gains ×0.1, ×0.5 and ×2;
- separation: the mix minus the drums stem (its latents subtracted).

Each result is written as a WAV with a spectrogram PNG next to its reference (what ideal linearity
would give), with SI-SDR and level against that reference, in ``index.html``.
"""

from __future__ import annotations

import html
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lincae.engine.cached import make_mixer
from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.offline import render
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.models.autoencoder import Autoencoder
from lincae.models.base import load_model
from lincae.models.registry import DEFAULT_MODEL_ALIAS, ModelNotFoundError

# Used only when no trained model is available: the default model's architecture, random weights.
SMALL_RANDOM = {
    "frontend": {"hop_size": 256, "alpha_rescale": 0.65, "beta_rescale": 0.34, "sample_rate": 44100},
    "generator": {
        "base_channels": 16,
        "hop": 256,
        "multipliers_list": [1, 2, 4, 4],
        "layers_list": [1, 1, 1, 1],
        "attention_list": [0, 0, 0, 0],
        "layers_list_encoder": [1, 1, 1, 1],
        "attention_list_encoder": [0, 0, 0, 0],
        "freq_downsample_list": [1, 1, 1],
        "bottleneck_base_channels": 128,
        "num_bottleneck_layers": 2,
        "cond_channels": 64,
    },
}


@dataclass
class DemoItem:
    """One rendered demonstration: the engine's output and what perfect linearity would give."""

    key: str
    title: str
    explanation: str
    output: np.ndarray
    reference: np.ndarray


def load_demo_model(model_id: str | None) -> tuple[Autoencoder, str]:
    """The requested model, else the shipped default, else (with a warning) a random small model."""
    if model_id is not None:
        return load_model(model_id, max_batch_size=8), str(model_id)
    try:
        return load_model(DEFAULT_MODEL_ALIAS, max_batch_size=8), DEFAULT_MODEL_ALIAS
    except ModelNotFoundError:
        print(
            "no trained default model is installed: using a randomly initialised model of the same "
            "architecture (its output is noise-like); pass --model to use a trained one",
            file=sys.stderr,
        )
        torch.manual_seed(0)
        return Autoencoder(SMALL_RANDOM["frontend"], SMALL_RANDOM["generator"], {}, name="random-small"), "random"


def si_sdr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB of mono signals."""
    ref = reference.astype(np.float64)
    est = estimate.astype(np.float64)
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    target = alpha * ref
    return float(10 * np.log10((np.dot(target, target) + 1e-12) / (np.dot(est - target, est - target) + 1e-12)))


def chroma(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Chroma correlation of mono signals (see :func:`lincae.evaluation.metrics.chroma_correlation`)."""
    from lincae.evaluation.metrics import CHROMA_SETTINGS, chroma_correlation

    if len(reference) < CHROMA_SETTINGS["n_fft"]:
        return float("nan")
    return float(chroma_correlation(torch.from_numpy(estimate)[None], torch.from_numpy(reference)[None])[0])


def rms_db(x: np.ndarray) -> float:
    return float(20 * math.log10(math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) + 1e-12))


def _engine(model: Autoencoder, n: int, values: dict[str, float], seed: int) -> LatentMixer:
    params = ParameterRegistry(mixer_parameters(n))
    params.update(values)
    return make_mixer(model, EngineConfig(sources=[1] * n, seed=seed), params)


Report = Callable[[str], None]


def make_items(
    model: Autoencoder, stems: dict[str, np.ndarray], seed: int = 0, report: Report | None = None
) -> list[DemoItem]:
    """Render every demonstration with the offline engine; ``stems``: name → mono float32 ``(samples,)``.

    ``report`` receives a line before each render (progress for a terminal).
    """
    names = list(stems)
    mix = np.sum([stems[n] for n in names], axis=0).astype(np.float32)
    done = [0]
    total = 6

    def run(sources: Sequence[np.ndarray], values: dict[str, float]) -> np.ndarray:
        done[0] += 1
        if report is not None:
            report(f"rendering demonstration {done[0]}/{total} ({len(sources)} source(s))")
        return render(_engine(model, len(sources), values, seed), [s[None] for s in sources])[0]

    items = [
        DemoItem(
            "reconstruction", "Reconstruction", "Dec(Enc(mix)): the mix through the autoencoder.", run([mix], {}), mix
        )
    ]
    items.append(
        DemoItem(
            "latent-sum",
            "Mixing by latent sum",
            f"Dec(Σ Enc(stem)) over the {len(names)} stems ({', '.join(names)}): compare with the mix.",
            run([stems[n] for n in names], {}),
            mix,
        )
    )
    for a in (0.1, 0.5, 2.0):
        items.append(
            DemoItem(
                f"volume-x{a:g}",
                f"Volume ×{a:g} by latent scaling",
                f"Dec({a:g} · Enc(mix)): compare with {a:g} × mix.",
                run([mix], {"source.1.gain_db": 20 * math.log10(a)}),
                (a * mix).astype(np.float32),
            )
        )
    drums = "drums" if "drums" in stems else names[0]
    rest = (mix - stems[drums]).astype(np.float32)
    items.append(
        DemoItem(
            f"separation-minus-{drums}",
            f"Separation: mix − {drums}",
            f"Dec(Enc(mix) − Enc({drums})): compare with the mix without the {drums}.",
            run([mix, stems[drums]], {"source.2.invert": 1.0}),
            rest,
        )
    )
    return items


def _spectrogram_png(path: Path, audio: np.ndarray, sample_rate: int, title: str) -> None:
    """A spectrogram on a logarithmic frequency axis (40 Hz to Nyquist), where harmonics keep their spacing
    per octave and the upper ones stay visible beside the reference's."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_fft, hop = 4096, 512
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio, (0, n_fft)), n_fft)[::hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T
    db = 20 * np.log10(spec + 1e-6)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    times = np.arange(db.shape[1] + 1) * hop / sample_rate
    keep = freqs >= 40.0
    edges = np.concatenate(([freqs[keep][0] - 0.5 * (freqs[1] - freqs[0])], freqs[keep] + 0.5 * (freqs[1] - freqs[0])))
    fig = Figure(figsize=(6, 2.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.pcolormesh(times, edges, db[keep], cmap="magma", vmin=db.max() - 80, vmax=db.max(), shading="flat")
    ax.set_yscale("log")
    ax.set_ylim(40.0, sample_rate / 2)
    ax.set_yticks([100, 1000, 10000], ["100 Hz", "1 kHz", "10 kHz"])
    ax.set_xlabel("s")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def write_page(
    out: Path, items: list[DemoItem], stems: dict[str, np.ndarray], sample_rate: int, model_label: str
) -> Path:
    """WAVs, spectrograms, ``summary.json`` and ``index.html`` for ``items`` in ``out``."""
    from lincae.files.audiofile import write_audio

    out.mkdir(parents=True, exist_ok=True)
    rows, summary = [], {"model": model_label, "sample_rate": sample_rate, "items": {}}

    def media(name: str, audio: np.ndarray, title: str) -> str:
        write_audio(out / f"{name}.wav", audio[None], sample_rate, overwrite=True)
        _spectrogram_png(out / f"{name}.png", audio, sample_rate, title)
        return (
            f"<figure><figcaption>{html.escape(title)}</figcaption>"
            f'<audio controls preload="none" src="{name}.wav"></audio><img src="{name}.png" alt="spectrogram of '
            f'{html.escape(title)}"></figure>'
        )

    stem_html = "".join(media(f"stem-{n}", a, f"stem: {n}") for n, a in stems.items())
    for item in items:
        score = {
            "si_sdr_db": si_sdr_db(item.output, item.reference),
            "chroma": chroma(item.output, item.reference),
            "output_rms_db": rms_db(item.output),
            "reference_rms_db": rms_db(item.reference),
        }
        summary["items"][item.key] = score
        rows.append(
            f"<section><h2>{html.escape(item.title)}</h2><p>{html.escape(item.explanation)}</p>"
            f'<p class="score">SI-SDR against the reference: {score["si_sdr_db"]:.1f} dB · pitch content (chroma '
            f"correlation, 1 = same) {score['chroma']:.2f} · level "
            f"{score['output_rms_db']:.1f} dBFS (reference {score['reference_rms_db']:.1f} dBFS)</p>"
            f'<div class="pair">{media(item.key, item.output, "lincae output")}'
            f"{media(item.key + '-reference', item.reference, 'reference (ideal linearity)')}</div></section>"
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lincae demo</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;background:#fafafa}}
figure{{display:inline-block;margin:.5em;vertical-align:top}}img{{display:block;width:600px}}
audio{{width:600px}}.score{{color:#444}}section{{border-top:1px solid #ccc;margin-top:1.5em}}</style></head>
<body><h1>lincae: audio algebra in a linear latent space</h1>
<p>Model: <code>{html.escape(model_label)}</code>. Every output below was rendered by lincae's streaming engine
(offline mode) from the stems at the bottom; its reference is what a perfectly linear autoencoder would give.</p>
{"".join(rows)}
<section><h2>The stems</h2>{stem_html}</section></body></html>
"""
    (out / "index.html").write_text(page)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out / "index.html"


def run_demo(
    out: Path, model_id: str | None = None, seconds: float = 8.0, seed: int = 0, report: Report | None = None
) -> Path:
    """Generate a piece, render every demonstration and write the page; returns ``index.html``.

    ``report`` receives a line at each stage (model, piece, each render, page).
    """
    from lincae.data.synth import SynthConfig, generate_piece

    say = report or (lambda line: None)
    say(f"loading model {model_id or DEFAULT_MODEL_ALIAS}")
    model, label = load_demo_model(model_id)
    say(f"composing and synthesising a {seconds:g} s piece with four stems (seed {seed})")
    piece = generate_piece(seed, SynthConfig(seconds=seconds, sample_rate=model.sample_rate))
    stems = {name: audio.astype(np.float32) for name, audio in piece.stems.items()}
    items = make_items(model, stems, seed=seed, report=report)
    say(f"writing audio, spectrograms and the page into {out}")
    return write_page(out, items, stems, model.sample_rate, label)
