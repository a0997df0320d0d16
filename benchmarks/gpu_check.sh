#!/usr/bin/env bash
# The CUDA check on a machine with an NVIDIA GPU, in under 8 minutes (timeouts below: 200 + 240 s;
# gpu_check.py starts no new shape after 200 s):
#   pip install -e '.[cuda,test]'   (the test extra pins a CPU torch: for the cuDNN comparison
#                                    install a CUDA build of torch; without one that column is skipped)
#   benchmarks/gpu_check.sh [--batch N]
#   benchmarks/gpu_check.sh --dry-run   (no GPU: numba's simulator, tests collected not run, one
#                                        tiny shape; checks that the script runs, measures nothing)
# 1. versions (and whether torch has CUDA); 2. the CUDA tests on the GPU (every kernel x config at
# simulator sizes and at realistic sizes, marker requires_gpu; layers on device arrays) and the
# PTX compile tier; 3. tune the reference shapes on the GPU and print nbconv's best CUDA kernel
# (kernel time; numpy copy time apart) vs cuDNN (TF32 off, on), fp32 peak, copy bandwidth.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
unset NUMBA_ENABLE_CUDASIM                      # a real GPU, never the simulator (--dry-run aside)
export NBCONV_TUNING_DB="${NBCONV_TUNING_DB:-$(mktemp -d)/tuning.sqlite}"
# tuning budgets that fit 13 reference shapes in the time below (override from the environment)
export NBCONV_TUNE_SHAPE_BUDGET_S="${NBCONV_TUNE_SHAPE_BUDGET_S:-8}"
export NBCONV_TUNE_CANDIDATE_BUDGET_S="${NBCONV_TUNE_CANDIDATE_BUDGET_S:-0.3}"

echo "== versions"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: not available"
[[ $DRY == 1 ]] && export NUMBA_ENABLE_CUDASIM=1
python - <<'PY'
from importlib import metadata
for dist in ("numba", "numba-cuda", "numpy", "torch"):
    try:
        print(f"{dist} {metadata.version(dist)}")
    except metadata.PackageNotFoundError:
        print(f"{dist} absent")
from benchmarks.gpu_check import torch_cuda
why = torch_cuda()
if why is None:
    import torch
    print("torch cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
else:
    print(f"torch: no cuDNN anchor ({why})")
from nbconv import env
print(env.fingerprint("cuda"))
PY

echo "== CUDA tests on the GPU"
TESTS=(tests/cuda_sim -o 'python_files=sim_*.py' -q -p no:cacheprovider -m 'requires_gpu or not requires_gpu')
if [[ $DRY == 1 ]]; then
    timeout 120 python -m pytest "${TESTS[@]}" --collect-only | tail -n 1
else
    timeout 200 python -m pytest "${TESTS[@]}"   # compile tier (sim_compile.py) included
fi

echo "== reference shapes: nbconv CUDA vs cuDNN"
if [[ $DRY == 1 ]]; then
    timeout 180 python -m benchmarks.gpu_check --simulate "$@"
else
    timeout 240 python -m benchmarks.gpu_check "$@"
fi
