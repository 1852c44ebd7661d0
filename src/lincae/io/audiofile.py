"""Moved to :mod:`lincae.files.audiofile` (files are below every layer); these names stay importable from
here until the modules still importing them (:mod:`lincae.io.latents`, :mod:`lincae.io.latent_codec`)
import them from there."""

from __future__ import annotations

from lincae.files.audiofile import (
    MAX_PARAMETER_FILE_SECONDS,
    READ_SUFFIXES,
    SUFFIX_CONTAINERS,
    WRITE_SUFFIXES,
    AtomicAudioWriter,
    AudioFileError,
    AudioReader,
    check_audio_file,
    check_output_path,
    find_audio_files,
    read_audio,
    read_mono,
    resample,
    sniff_container,
    write_audio,
)

__all__ = [
    "MAX_PARAMETER_FILE_SECONDS",
    "READ_SUFFIXES",
    "SUFFIX_CONTAINERS",
    "WRITE_SUFFIXES",
    "AtomicAudioWriter",
    "AudioFileError",
    "AudioReader",
    "check_audio_file",
    "check_output_path",
    "find_audio_files",
    "read_audio",
    "read_mono",
    "resample",
    "sniff_container",
    "write_audio",
]
