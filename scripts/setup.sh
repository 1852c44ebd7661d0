#!/usr/bin/env bash
# Install everything lincae needs on a fresh Debian/Ubuntu machine, then the package itself into .venv.
#   scripts/setup.sh           core + audio + gui + train + dev extras (what `make test` and `make demo` use)
# Environment:
#   LINCAE_TORCH   the torch requirement to install (default torch==2.13.0; the CPU build when a local
#                  wheel is available). Set e.g. LINCAE_TORCH="torch" to take your platform's default build.
#   LINCAE_VENV    where to create the virtual environment (default .venv)
#   LINCAE_SKIP_APT=1  do not install system packages
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LINCAE_VENV:-.venv}
TORCH=${LINCAE_TORCH:-torch==2.13.0}
# dpf-source and g++ build the test VST3 plugin (tests/plugins/build.sh).
APT_PACKAGES=(jackd2 libportaudio2 libsndfile1 fluid-soundfont-gm libegl1 libgl1 libxkbcommon0 libfontconfig1
              libdbus-1-3 fonts-dejavu-core dpf-source g++)

log() { printf '[setup] %s\n' "$*"; }

if [[ "${LINCAE_SKIP_APT:-0}" != 1 ]] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        SUDO=""
        [[ $(id -u) -ne 0 ]] && SUDO="sudo"
        log "installing system packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

PY=${PYTHON:-python3}
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    log "installing $TORCH"
    "${PIP[@]}" install "$TORCH"
fi
log "installing lincae and its extras"
"${PIP[@]}" install -e ".[audio,gui,train,eval,dev,onnx]"
# tinysoundfont's declared pyaudio dependency does not build and is not needed for offline rendering.
"$VENV/bin/python" -c "import tinysoundfont" 2>/dev/null || "${PIP[@]}" install --no-deps "tinysoundfont>=0.3"
# A real recording for the tests of the shipped model (Kevin MacLeod, "Vibe Ace", CC-BY 3.0): the example
# that librosa 0.7.2's source package carries (the newer librosa downloads its examples instead).
AUDIO=.cache/test-audio
if [[ ! -f "$AUDIO/vibe_ace.ogg" ]]; then
    log "fetching a real recording for the tests (librosa 0.7.2's example, 1.6 MB)"
    tmp=$(mktemp -d)
    if "${PIP[@]}" download --no-deps --no-binary=:all: -d "$tmp" "librosa==0.7.2" >/dev/null 2>&1; then
        mkdir -p "$AUDIO"
        tar --no-same-owner -xzf "$tmp"/librosa-0.7.2.tar.gz -C "$tmp" librosa-0.7.2/librosa/util/example_data/Kevin_MacLeod_-_Vibe_Ace.ogg
        mv "$tmp"/librosa-0.7.2/librosa/util/example_data/Kevin_MacLeod_-_Vibe_Ace.ogg "$AUDIO/vibe_ace.ogg"
    else
        log "could not fetch it (no package index?): the real-recording tests will be skipped"
    fi
    rm -rf "$tmp"
fi
log "ready: $VENV/bin/lincae"
