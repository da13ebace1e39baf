#!/usr/bin/env bash
# Download, on a machine with package registries, the wheels a GPU machine without them
# lacks to run benchmarks/gpu_check.sh: fedrobust's own needs beside the torch, numpy,
# scipy, scikit-learn, pandas, pyarrow, grpcio, protobuf, rich, typer, httpx and matplotlib
# such a machine's image already holds (Python 3.12, x86_64). Into .whl/ (git-ignored via
# .git/info/exclude), the folder `benchmarks/gpu_check.sh` installs from.
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]     # default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-3.12}"
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
pins=(
  flwr==1.42.0 opacus==1.6.0 torchattacks==3.5.1 pydantic==2.14.4 pydantic-core==2.50.5
  annotated-types==0.8.0 typing-inspection==0.4.5 iterators==0.0.2 pycryptodome==3.24.1
  cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 grpcio-health-checking==1.81.1
  flwr-datasets==0.6.1 datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19 mlxtend==0.25.0
  opt-einsum==3.4.0
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux_2_34_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
  --implementation cp "${platforms[@]}" -d .whl "${pins[@]}"
du -sh .whl
