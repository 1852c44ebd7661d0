"""Where a FrameNet decoder loses its sound: magnitude or phase of its synthesis frames.

    python scripts/framenet_oracle.py CKPT_OR_MODEL CLIPS... [--seconds 10] [--json OUT]

For each clip (mono, the first ``--seconds``), the decoder's synthesis frames (``synthesis`` samples every
``hop``) are compared with the frames that would rebuild the clip exactly: the clip's own samples at each
frame's place, whose windowed overlap-add is the clip. Four signals are scored against the clip:

- ``model``: the decoder as it is;
- ``true_mag``: the clip's frame magnitudes with the decoder's phases;
- ``true_phase``: the decoder's magnitudes with the clip's frame phases;
- ``exact``: the clip's own frame magnitudes and phases (checks the framing: a perfect score);
- ``mel_gl``: the mel + Griffin-Lim reference of the evaluation suite;
- ``model_mel_gl``: the same mel + Griffin-Lim applied to the decoder's output: the decoder's spectral
  envelope with a phase that is consistent by construction.

Whichever of ``true_mag`` and ``true_phase`` gains more over ``model`` names what the decoder gets wrong;
``model_mel_gl`` far above ``model`` says the decoder's envelope is right and its fine structure is not.
Prints one table (ViSQOL, MR-STFT, 4–16 kHz MR-STFT, harmonic energy above 2 kHz); ``--json`` keeps it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from lincae.evaluation.metrics import mrstft_distance
from lincae.evaluation.quality import quality_scores
from lincae.evaluation.reference import MelGriffinLim
from lincae.files.audiofile import read_mono
from lincae.models.base import load_model
from lincae.models.framenet import FrameNet
from lincae.models.overlap import overlap_add


def load_net(source: Path) -> FrameNet:
    """A FrameNet from a training checkpoint (its EMA weights) or a model folder."""
    if source.is_file():
        from lincae.training.frame_trainer import export_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            folder = export_checkpoint(source, Path(tmp) / "model")
            return load_model(folder).net.eval()
    return load_model(source).net.eval()


def true_spectra(net: FrameNet, audio: Tensor, frames: int) -> tuple[Tensor, Tensor]:
    """The spectra of the clip's own samples under each synthesis frame: magnitude and phase ``[B, N, bins]``."""
    cfg = net.config
    need = (frames - 1) * cfg.hop + cfg.synthesis
    x = torch.nn.functional.pad(audio, (cfg.fade, max(0, need - cfg.fade - audio.shape[-1])))[..., :need]
    spec = torch.fft.rfft(x.unfold(-1, cfg.synthesis, cfg.hop), dim=-1)
    return spec.abs(), spec.angle()


def synthesize(net: FrameNet, mag: Tensor, phase: Tensor, length: int) -> Tensor:
    """Audio ``[B, length]`` from synthesis spectra, as :meth:`FrameNet.decode` makes it."""
    cfg = net.config
    return overlap_add(net.decoder.synthesize(mag, phase), cfg.hop)[:, cfg.fade : cfg.fade + length]


def scores(estimate: Tensor, reference: Tensor) -> dict[str, float]:
    q = quality_scores(estimate.double(), reference.double())
    out = {k: float(v.nanmean()) for k, v in q.items()}
    out["mrstft"] = float(mrstft_distance(estimate, reference).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a FrameNet training checkpoint (last.ckpt) or model folder")
    parser.add_argument("clips", type=Path, nargs="+", help="audio files (resampled to the model's rate)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", nargs="+", default=None, help="score only these signals")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    net = load_net(args.model)
    rate = net.config.sample_rate
    clips = []
    for path in args.clips:
        mono = read_mono(path, rate, num_samples=int(args.seconds * rate))
        clips.append(torch.from_numpy(mono))
    length = min(c.shape[-1] for c in clips)
    ref = torch.stack([c[:length] for c in clips])
    z = net.encode(ref)
    mag, phase = net.decoder.spectra(z)
    t_mag, t_phase = true_spectra(net, ref, z.shape[-1])
    gl = MelGriffinLim(sample_rate=rate)
    decoded = net.decode(z)[:, :length]
    signals: dict[str, Callable[[], Tensor]] = {  # built only when scored (Griffin-Lim takes a while)
        "model": lambda: decoded,
        "true_mag": lambda: synthesize(net, t_mag, phase, length),
        "true_phase": lambda: synthesize(net, mag, t_phase, length),
        "exact": lambda: synthesize(net, t_mag, t_phase, length),
        "mel_gl": lambda: gl.decode(gl.encode(ref), length),
        "model_mel_gl": lambda: gl.decode(gl.encode(decoded), length),
    }
    wanted = [name for name in signals if not args.only or name in args.only]
    table = {name: scores(signals[name](), ref) for name in wanted}
    keys = ["visqol", "mrstft", "hf_mrstft", "hf_harmonics"]
    print(f"{'signal':<12}" + "".join(f"{k:>14}" for k in keys))
    for name, row in table.items():
        print(f"{name:<12}" + "".join(f"{row[k]:>14.3f}" for k in keys))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
