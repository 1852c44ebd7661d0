"""pytest plugin: a real VST3 plugin, built from source once per test session.

Use it from a test module with ``pytest_plugins = ["vst3_fixture"]`` and the ``vst3_plugin`` fixture,
the path of the bundle ``lincae-test-gain.vst3``. The plugin (``tests/plugins/lincae-test-gain/``) is a
stereo gain written with the DISTRHO Plugin Framework (DPF), whose sources Debian ships as
``dpf-source`` (``scripts/setup.sh`` installs it); ``tests/plugins/build.sh`` compiles it with g++ into
a temporary folder in a few seconds. Tests are skipped when DPF (``/usr/share/dpf``, or ``$DPF_PATH``)
or the compiler is missing, or on a system other than Linux; with ``LINCAE_REQUIRE_VST3=1`` (as CI
sets it) they fail instead. A build that starts and fails always fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"
BUILD_SCRIPT = PLUGIN_DIR / "build.sh"
NAME = "lincae-test-gain"


def _missing() -> str | None:
    """Why the plugin cannot be built here, or None."""
    if not sys.platform.startswith("linux"):
        return f"the test VST3 plugin is built for Linux only (this is {sys.platform})"
    dpf = Path(os.environ.get("DPF_PATH", "/usr/share/dpf"))
    if not (dpf / "distrho" / "DistrhoPluginMain.cpp").is_file():
        return f"DPF sources not found in {dpf} (install the dpf-source package, or set DPF_PATH)"
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        return f"no C++ compiler {cxx!r} (install g++)"
    return None


@pytest.fixture(scope="session")
def vst3_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle ``…/lincae-test-gain.vst3`` (stereo; parameters ``gain_db`` and ``mute``; state ``polarity``)."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("LINCAE_REQUIRE_VST3") == "1":
            pytest.fail(f"LINCAE_REQUIRE_VST3=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("vst3")
    done = subprocess.run(["bash", str(BUILD_SCRIPT), str(out)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"building the test VST3 plugin failed:\n{done.stdout}{done.stderr}", pytrace=False)
    bundle = out / f"{NAME}.vst3"
    binary = bundle / "Contents" / f"{os.uname().machine}-linux" / f"{NAME}.so"
    assert binary.is_file(), f"{BUILD_SCRIPT} did not write {binary}"
    return bundle
