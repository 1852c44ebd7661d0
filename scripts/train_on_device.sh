#!/usr/bin/env bash
# Train the default model on the GPU machine lent through the device tool, in one call.
#
# Here, once (downloads what that machine lacks into .device/, which git ignores):
#   bash scripts/train_on_device.sh --prepare
# There (the device tool's run, with carry [".device"]):
#   MINUTES=6 bash scripts/train_on_device.sh
#   CONFIG=configs/small-hifi.yaml RESUME=1 MINUTES=8 bash scripts/train_on_device.sh   # the adversarial phase
#     on the shipped model (its checkpoint has no discriminators: they start fresh at step 4800)
# It installs the carried wheels, renders synthetic music with the carried TimGM6mb SoundFont (12
# processes), trains $CONFIG (configs/small.yaml) until the deadline (resuming checkpoints/lincae-small/last.ckpt
# when RESUME=1), and writes to $OUT: model/ (fp16 lincae model), last.ckpt (compact, resumable),
# history.jsonl, summary.json, log.txt: each file well under 16 MiB.
#
# Environment: MINUTES (training time, default 6), HOURS (music to render, default 2), WORKERS (12),
# BATCH (64), STEPS (schedule length, default the config's), RESUME (0), DEVICE (cuda), OUT (./device-out),
# COMPILE (0), CONFIG (configs/small.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.device

if [[ "${1:-}" == --prepare ]]; then
    mkdir -p "$CARRY/wheels"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$CARRY/wheels" \
        "tinysoundfont>=0.3" "auraloss>=0.4"
    sf=/usr/share/sounds/sf2/TimGM6mb.sf2
    [[ -f $sf ]] || { echo "install timgm6mb-soundfont first (apt-get install timgm6mb-soundfont)" >&2; exit 1; }
    cp "$sf" "$CARRY/"
    du -sh "$CARRY"
    exit 0
fi

OUT=${OUT:-./device-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
PY=${PYTHON:-python3}
if ! "$PY" -c "import tinysoundfont, auraloss" 2>/dev/null; then
    "$PY" -m pip install -q --no-deps "$CARRY"/wheels/*.whl
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
args=(--config "${CONFIG:-configs/small.yaml}" --out "$OUT" --work "${WORK:-/tmp/lincae-device}" --minutes "${MINUTES:-6}" --hours "${HOURS:-2}"
      --workers "${WORKERS:-12}" --soundfont "$CARRY/TimGM6mb.sf2" --device "${DEVICE:-cuda}"
      --batch-size "${BATCH:-64}")
[[ -n "${STEPS:-}" ]] && args+=(--steps "$STEPS")
[[ "${RESUME:-0}" == 1 ]] && args+=(--resume-from checkpoints/lincae-small/last.ckpt)
[[ "${COMPILE:-0}" == 1 ]] && args+=(--compile)
PYTHONUNBUFFERED=1 "$PY" scripts/train_on_device.py "${args[@]}"
