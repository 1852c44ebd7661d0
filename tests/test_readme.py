"""The README's Python example runs as written, against a Hub cache holding a small model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from test_model import _hub_cache

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_an_example() -> None:
    blocks = python_blocks()
    assert blocks and "Autoencoder.from_pretrained" in blocks[0]


def test_readme_python_example_runs(tmp_path: Path) -> None:
    cache = _hub_cache(tmp_path / "cache", "lin-cae")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf")}
    for block in python_blocks():
        done = subprocess.run([sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
