"""The streaming contract of every model family (:mod:`lincae.models.base`), as test helpers."""

from __future__ import annotations

import torch

from lincae.models.base import DecoderStream, EncoderStream, LatentAutoencoder


def run_streams(
    enc: EncoderStream, dec: DecoderStream, x: torch.Tensor, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Push ``x: [B, T]`` through an encoder and a decoder stream in blocks of ``block`` samples →
    (latents ``[B, C, m]``, audio ``[B, m·hop]``), concatenated as they came out."""
    zs, ys = [], []
    for i in range(0, x.shape[-1], block):
        part = enc.push(x[:, i : i + block])
        zs.append(part)
        ys.append(dec.push(part))
    return torch.cat(zs, -1), torch.cat(ys, -1)


def assert_stream_contract(
    model: LatentAutoencoder, x: torch.Tensor, offline: torch.Tensor, streamed: torch.Tensor, atol: float = 2e-6
) -> None:
    """A stream gives back as many samples as whole frames went in, equal to the offline pass delayed by
    ``model.stream_delay`` samples (within ``atol``, full scale 1); the comparison is not between silences."""
    hop, delay = model.hop_length, model.stream_delay
    assert streamed.shape[-1] == x.shape[-1] // hop * hop
    n = streamed.shape[-1] - delay
    torch.testing.assert_close(streamed[:, delay:], offline[:, :n], atol=atol, rtol=1e-4)
    assert offline[:, :n].abs().max() > 1e-4
