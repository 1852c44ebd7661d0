#!/usr/bin/env bash
# The GPU checks and figures in one call on the machine lent through the device tool (well under 8 min).
#   here, once:   bash scripts/train_on_device.sh --prepare      (carried wheels in .device/, git-ignored)
#   there:        bash benchmarks/gpu_suite.sh                   (the device tool's run, carry [".device"])
# Runs tests/test_gpu.py (precision policy: float32 within 1e-4 of the CPU, bf16/fp16 within 5 %), then
# prints the engine's worker RTF and latency against sources and step on CUDA (default model and the full
# official architecture with random weights) and the training throughput at batch 64 (eager and compiled).
# Everything goes to $OUT/gpu-suite.txt as well.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./device-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-suite.txt") 2>&1
PY=${PYTHON:-python3}
"$PY" -c "import auraloss" 2>/dev/null || "$PY" -m pip install -q --no-deps .device/wheels/*.whl
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
echo "== tests/test_gpu.py"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py
echo "== engine RTF on CUDA, default model"
timeout 120 "$PY" benchmarks/engine_rtf.py --device cuda --model default --sources 1 4 8 --windows 60
timeout 120 "$PY" benchmarks/engine_rtf.py --device cuda --model default --sweep --windows 40
echo "== training throughput on CUDA, configs/small.yaml, batch 64"
timeout 90 "$PY" benchmarks/train_speed.py --device cuda --batch-size 64 --steps 20
timeout 150 "$PY" benchmarks/train_speed.py --device cuda --batch-size 64 --steps 20 --compile
echo "== done"
