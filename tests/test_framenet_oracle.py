"""scripts/framenet_oracle.py: its synthesis from the decoder's spectra and its exact frames match the model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from test_framenet import make_frame_model

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "framenet_oracle.py"


def _oracle():
    spec = importlib.util.spec_from_file_location("framenet_oracle", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_oracle_rebuilds_the_decoders_output_and_the_clip_from_their_frames() -> None:
    oracle = _oracle()
    net = make_frame_model(seed=3).net.eval()
    audio = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        z = net.encode(audio)
        mag, phase = net.decoder.spectra(z)
        rebuilt = oracle.synthesize(net, mag, phase, audio.shape[-1])
        decoded = net.decode(z)[:, : audio.shape[-1]]
        t_mag, t_phase = oracle.true_spectra(net, audio, z.shape[-1])
        exact = oracle.synthesize(net, t_mag, t_phase, audio.shape[-1])
        swapped = oracle.synthesize(net, t_mag, phase, audio.shape[-1])
    assert decoded.abs().max() > 1e-3
    torch.testing.assert_close(rebuilt, decoded, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(exact, audio, atol=1e-5, rtol=1e-4)
    assert (swapped - audio).abs().max() > 1e-3  # the decoder's phases are not the clip's
