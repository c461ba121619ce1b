#!/usr/bin/env bash
# The one GPU run of chapter 14, prepared to fit a short lease on a machine with an NVIDIA GPU,
# CuPy and PyTorch (no network, no ipywidgets). From the repository root:
#     bash tests/gpu/run_on_device.sh OUT_DIR
# It writes, as each part finishes (so a run cut short keeps what it measured):
#   OUT_DIR/cupy_tests.txt      the CuPy tests (tests/gpu) against NumPy
#   OUT_DIR/gpu_sweep.json      the size sweep on the GPU, float32 products (CUPY_TF32=0)
#   OUT_DIR/gpu_sweep_tf32.json the same sweep with TF32 products (CUPY_TF32=1)
# Copy the two JSON files' "gpu" entries into book/data/gpu_sweep.json (the CPU side comes from
# `python -m companion.bench_sweep --out book/data/gpu_sweep.json --max-params 1.2e7` on the
# 2-core CI machine kind, at the same commit).
set -uo pipefail
out="${1:?usage: bash tests/gpu/run_on_device.sh OUT_DIR}"
mkdir -p "$out"
export PYTHONPATH="$PWD"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia_smi.txt" 2>&1
python -c "import cupy; print(cupy.__version__); x = cupy.ones(8) @ cupy.ones(8); print('warm', float(x))" \
    > "$out/cupy_version.txt" 2>&1   # the first kernels compile here, not inside a timed step
timeout 240 python -m pytest -q tests/gpu tests/test_strict_backend.py > "$out/cupy_tests.txt" 2>&1
COMPANION_BACKEND=cupy CUPY_TF32=0 timeout 200 python -m companion.bench_sweep --out "$out/gpu_sweep.json" --steps 5
COMPANION_BACKEND=cupy CUPY_TF32=1 timeout 120 python -m companion.bench_sweep --out "$out/gpu_sweep_tf32.json" --steps 5
ls -l "$out"
