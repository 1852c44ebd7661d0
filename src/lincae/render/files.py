"""Offline rendering of audio files through the streaming engine and effect chains.

Files are read in blocks (resampled to the model's rate), each source through its pre-encode chain,
into the same :class:`~lincae.engine.stream.StreamingEngine` the live path uses, driven without a
clock; the output goes through the post-decode chain, back to the output rate, and into a temporary
file renamed into place at the end. Memory stays flat however long the files are. The engine's and
the post chain's latency are compensated, so the output lines up with the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lincae.engine.cached import make_mixer
from lincae.engine.config import EngineConfig
from lincae.engine.effects import build_chain
from lincae.engine.offline import drive, render_batch
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.engine.stream import StreamingEngine
from lincae.files.audiofile import AtomicAudioWriter, AudioReader, check_output_path
from lincae.models.autoencoder import Autoencoder

Progress = Callable[[int, int], None]


@dataclass
class RenderResult:
    """What a render produced."""

    output: Path
    seconds: float
    sample_rate: int
    channels: int
    latency_samples: int
    plugin_errors: list[str] = field(default_factory=list)
    notice: str = ""  # how the engine ran, when it is not what the settings asked (a stream in windows)


def _fit_channels(block: np.ndarray, channels: int) -> np.ndarray:
    if block.shape[0] == channels:
        return block
    return block.mean(axis=0, keepdims=True)  # more than two channels: the source is mixed down to mono


def render_files(
    model: Autoencoder,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    engine: EngineConfig | None = None,
    parameters: Mapping[str, float] | None = None,
    registry: ParameterRegistry | None = None,
    pre: Mapping[int, Any] | None = None,
    post: Any = None,
    output_rate: int | None = None,
    overwrite: bool = False,
    block: int | None = None,
    batch: int | None = None,
    progress: Progress | None = None,
) -> RenderResult:
    """Mix ``inputs`` (one source each) in latent space and write ``output``.

    Args:
        model: the autoencoder.
        inputs: audio files; mono and stereo files are sources of 1 or 2 channels (files with more
            channels are mixed down to mono); shorter files are padded with silence.
        output: wav, flac or ogg; refused if it exists unless ``overwrite``.
        engine: windowing and behaviour (its ``sources`` are replaced by the files' channel counts).
        parameters: registry values, e.g. ``{"source.1.gain_db": -6}``.
        registry: a registry to use instead of a fresh one (e.g. a preset's, with chain parameters).
        pre: per source number (from 1), a chain spec list or a built board applied before encoding.
        post: chain spec list or built board applied to the decoded mix.
        output_rate: Hz (default: the first input's rate).
        block: samples per processing block at the model's rate (default: ``batch`` engine steps).
        batch: windows (steps) mixed per model call (default: :func:`~lincae.engine.offline.render_batch`; the
            output equals the live engine's within float rounding).
        progress: called as ``progress(done_samples, total_samples)``.
    """
    out_path = check_output_path(output, overwrite)
    if not inputs:
        raise ValueError("render needs at least one input file")
    readers: list[AudioReader] = []
    try:
        for p in inputs:
            readers.append(AudioReader(p, model.sample_rate))
        channels = [1 if r.channels != 2 else 2 for r in readers]
        base = (engine or EngineConfig()).to_dict()
        cfg = EngineConfig.from_dict({**base, "sources": channels})
        if registry is None:
            registry = ParameterRegistry(mixer_parameters(len(readers)))
        registry.update(dict(parameters or {}))
        mixer = make_mixer(model, cfg, registry)
        batch = batch or render_batch(mixer)
        block = block or max(1, batch) * mixer.step
        pre_boards = {i: _board(spec, f"pre.{i}") for i, spec in (pre or {}).items()}
        for i in pre_boards:
            if not 1 <= i <= len(readers):
                raise ValueError(f"pre chain for source {i}, but there are {len(readers)} source(s)")
        # The chains run inside the engine, exactly as they do live.
        stream = StreamingEngine(mixer, block=0, max_block=block, pre=pre_boards, post=_board(post or [], "post"))
        rate = output_rate or round(readers[0].source_rate)
        total = max(r.frames for r in readers)
        return _run(readers, channels, stream, model.sample_rate, rate, total, out_path, overwrite, batch, progress)
    finally:
        for r in readers:
            r.close()


def _board(spec: Any, where: str) -> Any:
    if isinstance(spec, list | tuple) and all(isinstance(e, dict) for e in spec):
        return build_chain(list(spec), where)
    return spec


def _run(
    readers: list[AudioReader],
    channels: list[int],
    stream: StreamingEngine,
    sr: int,
    rate: int,
    total: int,
    out_path: Path,
    overwrite: bool,
    batch: int,
    progress: Progress | None,
) -> RenderResult:
    """Inputs → :func:`~lincae.engine.offline.drive` (engine, chains, latency dropped) → resampler → file."""
    from pedalboard.io import StreamResampler

    out_ch = stream.out_channels
    resampler = StreamResampler(float(sr), float(rate), out_ch) if rate != sr else None
    with AtomicAudioWriter(out_path, rate, out_ch, overwrite=overwrite) as writer:

        def write(y: np.ndarray) -> None:
            if resampler is not None:
                y = resampler.process(np.ascontiguousarray(y))
            if y.shape[-1]:
                writer.write(y)

        drive(stream, lambda inp: _read_sources(readers, channels, inp), write, total, batch=batch, progress=progress)
        if resampler is not None:
            tail = resampler.process(None)
            tail = tail[:, : max(0, math.floor(total * rate / sr + 0.5) - writer.written)]
            if tail.shape[-1]:
                writer.write(tail)
    return RenderResult(
        output=out_path,
        seconds=total / sr,
        sample_rate=rate,
        channels=out_ch,
        latency_samples=stream.latency,
        plugin_errors=list(stream.metrics.plugin_errors),
        notice=stream.metrics.notice,
    )


def _read_sources(readers: list[AudioReader], channels: list[int], inp: np.ndarray) -> None:
    """Next block of every source into ``inp`` (silence once a file has ended)."""
    block = inp.shape[-1]
    inp[...] = 0.0
    r0 = 0
    for reader, ch in zip(readers, channels, strict=True):
        if reader.position < reader.frames:
            got = _fit_channels(reader.read(block), ch)
            inp[r0 : r0 + ch, : got.shape[-1]] = got
        r0 += ch
