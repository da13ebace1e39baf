#!/usr/bin/env bash
# The GPU check (issue #18): quickstart, DP-SGD, PGD-AT and a CIFAR-shaped synthetic run on
# cuda beside the same on cpu, one table (benchmarks/gpu_check.py). Made for a lent GPU
# machine without package registries: where fedrobust's needs do not import, it installs
# the wheels that `bash benchmarks/gpu_wheels.sh` downloaded into .whl/ (carry .whl along),
# into /tmp/site. Ten minutes at most; the table also goes to $OUT/gpu_check.md when OUT
# is set. Run from anywhere:  bash benchmarks/gpu_check.sh [--rounds 3] [--devices cpu,cuda]
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
if ! "$py" -c "import flwr, opacus, pydantic, torchattacks, flwr_datasets, mlxtend" 2>/dev/null; then
  [ -d .whl ] || { echo "fedrobust's needs do not import and .whl/ is missing: run benchmarks/gpu_wheels.sh" >&2; exit 2; }
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 2
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
out="${OUT:-runs}"
mkdir -p "$out"
timeout 570 "$py" benchmarks/gpu_check.py --out /tmp/gpu_check_runs "$@" | tee "$out/gpu_check.md"
