#!/usr/bin/env bash
# cnnlab on a CUDA GPU in one go: the GPU tests, then the course fit and the fast recipe as whole processes.
#
#   bash benchmarks/gpu_check.sh [FOLDER]      # FOLDER (default gpu-check) receives the runs and the build log
#
# For a machine whose Python (PYTHON, default python3) already has a CUDA build of torch and cnnlab's other
# dependencies (numpy, pillow, matplotlib, safetensors, click, tqdm; pytest for the tests). cnnlab runs from
# this checkout (PYTHONPATH=src); its CPU kernels are built in place when a C++ compiler is there, so that the
# CPU runs beside the GPU ones are cnnlab's fast path too.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
folder=${1:-gpu-check}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
TIMEFORMAT='%R s wall'

"$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: torch sees no CUDA GPU here")'
mkdir -p "$folder"
"$python" setup.py -q build_ext --inplace >"$folder/build.log" 2>&1 || echo "gpu_check: no CPU kernels (see $folder/build.log)"
"$python" -c 'import torch, cnnlab.engine.kernels as k
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {torch.get_num_threads()} CPU threads, CPU kernels {k.status()}")'
"$python" -m pytest -q -p no:cacheprovider tests/training/test_cuda.py

for options in "--device cuda" "--device cuda --precision float32" "--device cpu"; do
  for run in 1 2 3; do
    echo "cnnlab train $options (run $run):"
    time "$python" -m cnnlab train $options --quiet --runs-dir "$folder/runs"
  done
done
for seed in 0 1 2 3 4; do
  echo "cnnlab train --recipe mnist-fast --device cuda --seed $seed:"
  time "$python" -m cnnlab train --recipe mnist-fast --device cuda --seed "$seed" --quiet --runs-dir "$folder/runs"
done
