"""Evaluation of latent codecs: the Lin-CAE paper's reconstruction and linearity metrics.

:mod:`lincae.evaluation.metrics` holds the metric functions (definitions and their sources in its
docstring); :mod:`lincae.evaluation.suite` runs them over a set of pieces and writes reports.
Importing this package has no side effects (``auraloss`` and ``matplotlib`` load on first use).
"""

from lincae.evaluation.metrics import (
    HOMOGENEITY_GAINS,
    MRSTFT_SETTINGS,
    LatentCodec,
    additivity,
    decode,
    decoder_homogeneity,
    effective_rank,
    encoder_homogeneity,
    latent_frames,
    mean_over_items,
    mrstft_distance,
    reconstruction,
    relative_l2,
    separation,
    si_sdr,
    silence_latent_norm,
    snr,
)
from lincae.evaluation.suite import MetricInfo, evaluate, metric_info, write_report

__all__ = [
    "HOMOGENEITY_GAINS",
    "MRSTFT_SETTINGS",
    "LatentCodec",
    "MetricInfo",
    "additivity",
    "decode",
    "decoder_homogeneity",
    "effective_rank",
    "encoder_homogeneity",
    "evaluate",
    "latent_frames",
    "mean_over_items",
    "metric_info",
    "mrstft_distance",
    "reconstruction",
    "relative_l2",
    "separation",
    "si_sdr",
    "silence_latent_norm",
    "snr",
    "write_report",
]
