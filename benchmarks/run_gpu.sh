#!/usr/bin/env bash
# GPU checks in one call, for a machine with CUDA, nvcc and ninja (run from the repository root):
#   bash benchmarks/run_gpu.sh [RESULTS_DIR]
# 1. installs gsplat 1.5.3 (from wheels in .whl/ when the machine is offline: gsplat and the
#    test dependencies jaxtyping, typeguard<3, hypothesis, plyfile, einops, safetensors, tqdm),
# 2. compiles gsplat's CUDA code once (MAX_JOBS, TORCH_CUDA_ARCH_LIST=9.0 for H100/H200),
# 3. runs the GPU tests (gsplat vs the torch backend, batched vs looped),
# 4. runs the benchmarks, whose GPU sections run when CUDA is available.
# JSON, tables and plots land in RESULTS_DIR (default benchmarks/results/gpu, so the CPU results
# are never overwritten); commit them with the
# command line used.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
results="${1:-benchmarks/results/gpu}"
mkdir -p "$results"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/aware3d-site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/aware3d-site"
fi
export MAX_JOBS="${MAX_JOBS:-12}" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export PYTHONUNBUFFERED=1
python3 - <<'PY'
import time, torch, aware3d
from aware3d.functional._splat_gsplat import gsplat_available
start = time.perf_counter()
assert torch.cuda.is_available(), "no CUDA device"
assert gsplat_available(), "gsplat did not build or load"
print(f"gsplat ready in {time.perf_counter() - start:.0f} s on {torch.cuda.get_device_name()}")
PY
python3 -m pytest -p no:cacheprovider -m gpu tests/test_splat.py -q 2>&1 | tee "$results/gpu_tests.txt"
python3 benchmarks/bench_splat.py --skip-cpu --out "$results"
python3 benchmarks/bench_generator.py --out "$results"
python3 benchmarks/bench_losses.py --out "$results"
python3 benchmarks/bench_train.py --skip-cpu --out "$results"
