"""The machine a benchmark ran on, for the first line of its output."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` and its widest vector extension, ``AMD EPYC (AVX-512)``
    (else what ``platform`` knows): machines of one model name differ, and the vector width sets the speed
    of small matrix products."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    if not name:
        return platform.processor() or platform.machine()
    extensions = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
    widest = next((label for flag, label in extensions if flag in flags), "")
    return f"{name} ({widest})" if widest else name
