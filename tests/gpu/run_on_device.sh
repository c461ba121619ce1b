#!/usr/bin/env bash
# The one GPU run of chapter 14, prepared to fit a short lease on a machine with an NVIDIA GPU,
# CuPy and PyTorch (no network, no ipywidgets). From the repository root of a committed tree:
#     COMPANION_COMMIT=$(git rev-parse HEAD) bash tests/gpu/run_on_device.sh OUT_DIR
# (COMPANION_COMMIT names the commit where the copy has no .git.) It writes, as each part finishes
# (so a run cut short keeps what it measured):
#   OUT_DIR/nvidia_smi.txt      the GPU's name, driver and memory as nvidia-smi reports them
#   OUT_DIR/smoke.txt           one training step on CuPy, with its traceback if it fails
#   OUT_DIR/gpu_tests.txt       the CuPy tests (tests/gpu) against NumPy; its last line is pytest's
#                               summary, which chapter 14 quotes
#   OUT_DIR/gpu_sweep.json      the size sweep on the GPU: float32 products (CUPY_TF32=0) under
#                               "gpu", then TF32 products (CUPY_TF32=1) under "gpu_tf32"; each run
#                               records its timed steps a size ("steps") and, per size, the host CPU
#                               time of a step and the step's operations counted by the strict double
#                               then the 10M model at batches of 12, 48 and 192 under "gpu_batch"
# Each size is timed after one untimed warm-up step of its own (bench_sweep).
# Copy the file's "gpu" and "gpu_tf32" entries into book/data/gpu_sweep.json and gpu_tests.txt into
# book/data/gpu_tests.txt (the CPU side comes from
# `python -m companion.tools.bench_sweep --out book/data/gpu_sweep.json --max-params 1.2e7 --steps 7`
# and `... --steps 7 --only 10M --batch-sizes 12,48` (under "cpu_batch") on the 2-core CI machine
# kind, at the same commit).
set -uo pipefail
out="${1:?usage: bash tests/gpu/run_on_device.sh OUT_DIR}"
steps=20  # timed steps a size: 5 gave medians that moved by a third between runs
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia_smi.txt" 2>&1
COMPANION_BACKEND=cupy CUPY_TF32=0 timeout 120 python -m companion.tools.bench_sweep --out "$out/smoke.json" \
    --max-params 2e5 --steps 1 --no-count > "$out/smoke.txt" 2>&1 || echo "smoke failed" >> "$out/smoke.txt"
timeout 200 python -m pytest -q -x -p no:cacheprovider tests/gpu > "$out/gpu_tests.txt" 2>&1
COMPANION_BACKEND=cupy CUPY_TF32=0 timeout 180 python -m companion.tools.bench_sweep --out "$out/gpu_sweep.json" --steps "$steps"
COMPANION_BACKEND=cupy CUPY_TF32=1 timeout 180 python -m companion.tools.bench_sweep --out "$out/gpu_sweep.json" --steps "$steps"
# why not a bigger batch: the 10M model at 4 and 16 times the batch (float32), under "gpu_batch"
COMPANION_BACKEND=cupy CUPY_TF32=0 timeout 180 python -m companion.tools.bench_sweep --out "$out/gpu_sweep.json" --steps "$steps" \
    --only 10M --batch-sizes 12,48,192
ls -l "$out"
