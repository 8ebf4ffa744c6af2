#!/usr/bin/env bash
# One-shot GPU check (<= 8 minutes on one GPU): throughput fp32 vs bf16, each MNIST recipe for 75 s
# with its figures, DDP when >= 2 GPUs, and trainer.compile vs eager. `--dry-run` takes the same path on the CPU in < 1 minute.
#   bash benchmarks/device_check.sh [--dry-run] [--root ../shared/data] [--recipe-seconds 75]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PY" benchmarks/device_check.py "$@"
