#!/usr/bin/env bash
# Build the test VST3 plugin (lincae-test-gain/, a DPF plugin) as a bundle in an output folder:
#   tests/plugins/build.sh OUT_DIR      -> OUT_DIR/lincae-test-gain.vst3/Contents/x86_64-linux/lincae-test-gain.so
# Needs g++ and the DISTRHO Plugin Framework sources (Debian: dpf-source, in /usr/share/dpf; or set
# DPF_PATH). The tests build it into a temporary folder (tests/vst3_fixture.py); nothing is written to
# the source tree.
set -euo pipefail
out=${1:?usage: build.sh OUT_DIR}
src="$(cd "$(dirname "$0")" && pwd)/lincae-test-gain"
dpf=${DPF_PATH:-/usr/share/dpf}
cxx=${CXX:-g++}
name=lincae-test-gain
arch=$(uname -m)

[[ -f "$dpf/distrho/DistrhoPluginMain.cpp" ]] || { echo "build.sh: DPF not found in $dpf (install dpf-source)" >&2; exit 2; }
command -v "$cxx" >/dev/null || { echo "build.sh: no C++ compiler ($cxx)" >&2; exit 2; }

bundle="$out/$name.vst3"
mkdir -p "$bundle/Contents/$arch-linux"
"$cxx" -std=gnu++17 -O2 -fPIC -shared -fvisibility=hidden -Wall \
    -DDISTRHO_PLUGIN_TARGET_VST3 -I"$src" -I"$dpf/distrho" \
    "$src/$name.cpp" "$dpf/distrho/DistrhoPluginMain.cpp" \
    -Wl,--version-script="$dpf/utils/symbols/vst3.version" -Wl,--no-undefined -ldl -lpthread \
    -o "$bundle/Contents/$arch-linux/$name.so"
echo "$bundle"
