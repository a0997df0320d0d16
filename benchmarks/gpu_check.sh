#!/usr/bin/env bash
# The CUDA check on a machine with an NVIDIA GPU (it cannot run without one), in under 8 minutes:
#   pip install -e '.[cuda,test]'   (torch with CUDA for the cuDNN comparison)
#   benchmarks/gpu_check.sh [--batch N]
# 1. versions; 2. the CUDA tests on the GPU (every kernel x config at simulator sizes and at
# realistic sizes, marker requires_gpu) and the PTX compile tier; 3. tune the reference shapes
# on the GPU and print nbconv's best CUDA kernel vs cuDNN (TF32 off, on), fp32 peak, copy bandwidth.
set -euo pipefail
cd "$(dirname "$0")/.."
unset NUMBA_ENABLE_CUDASIM                      # a real GPU, never the simulator
export NBCONV_TUNING_DB="${NBCONV_TUNING_DB:-$(mktemp -d)/tuning.sqlite}"

echo "== versions"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python - <<'PY'
from importlib import metadata
for dist in ("numba", "numba-cuda", "numpy", "torch"):
    try:
        print(f"{dist} {metadata.version(dist)}")
    except metadata.PackageNotFoundError:
        print(f"{dist} absent")
import torch
print("torch cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
from nbconv import env
print(env.fingerprint("cuda"))
PY

echo "== CUDA tests on the GPU"
timeout 240 python -m pytest tests/cuda_sim -o 'python_files=sim_*.py' -q -p no:cacheprovider \
    -m 'requires_gpu or not requires_gpu'       # compile tier (sim_compile.py) included

echo "== reference shapes: nbconv CUDA vs cuDNN"
timeout 180 python -m benchmarks.gpu_check "$@"
