"""Evaluation of latent codecs: the Lin-CAE paper's reconstruction and linearity metrics.

:mod:`lincae.evaluation.metrics` holds the metric functions (definitions and their sources in its
docstring); :mod:`lincae.evaluation.quality` scores how a reconstruction sounds (ViSQOL, the high band)
and :mod:`lincae.evaluation.reference` holds the mel + Griffin-Lim reference codec;
:mod:`lincae.evaluation.suite` runs them over a set of pieces and writes reports.
Importing this package has no side effects (``auraloss``, ``matplotlib`` and ``visqol`` load on first use).
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
from lincae.evaluation.quality import harmonic_energy_kept, highband_mrstft, quality_scores, visqol
from lincae.evaluation.reference import MelGriffinLim
from lincae.evaluation.suite import MetricInfo, evaluate, metric_info, write_report

__all__ = [
    "HOMOGENEITY_GAINS",
    "MRSTFT_SETTINGS",
    "LatentCodec",
    "MelGriffinLim",
    "MetricInfo",
    "additivity",
    "decode",
    "decoder_homogeneity",
    "effective_rank",
    "encoder_homogeneity",
    "evaluate",
    "harmonic_energy_kept",
    "highband_mrstft",
    "latent_frames",
    "mean_over_items",
    "metric_info",
    "mrstft_distance",
    "quality_scores",
    "reconstruction",
    "relative_l2",
    "separation",
    "si_sdr",
    "silence_latent_norm",
    "snr",
    "visqol",
    "write_report",
]
