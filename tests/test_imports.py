"""Light modules stay light: presets, MIDI mappings and configurations load without PyTorch."""

from __future__ import annotations

import subprocess
import sys

import pytest

LIGHT = [
    "lincae",
    "lincae.config",
    "lincae.presets",
    "lincae.io.mapping",
    "lincae.io.midi",
    "lincae.programs",
    "lincae.engine.params",
    "lincae.engine.config",
    "lincae.models",
    "lincae.models.config",
    "lincae.training.config",
]


@pytest.mark.parametrize("module", LIGHT)
def test_module_imports_with_torch_blocked(module: str) -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import {module}\n"
        "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_blocker_does_block() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import lincae.models.autoencoder\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "torch is blocked" in done.stderr
