"""The companion on CuPy, compared with NumPy (runs only where CuPy sees a GPU).

The same scenarios as the strict CPU double (tests/strict_scenarios.py), each in a fresh process
with COMPANION_BACKEND=cupy and CUPY_TF32=0 (full float32 products). Random draws happen on the
host Generator in both runs, so both see the same numbers; results agree within float32 rounding
(different kernels sum in different orders), and exactly for the greedy tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def gpu_available() -> bool:
    try:
        import cupy
    except ImportError:
        return False
    try:
        return bool(cupy.cuda.is_available())
    except Exception:  # a driver without a device raises instead of answering
        return False


pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and an NVIDIA GPU (the CI machine has none)")


def run(scenario: str, backend: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{scenario}-{backend}.json"
    env = {**os.environ, "COMPANION_BACKEND": backend, "CUPY_TF32": "0", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "strict_scenarios.py"), scenario, str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{scenario} under {backend} failed:\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())


def test_training_losses_agree_with_numpy(tmp_path):
    gpu, cpu = run("train_steps", "cupy", tmp_path), run("train_steps", "numpy", tmp_path)
    assert gpu["losses"] == pytest.approx(cpu["losses"], rel=1e-5)


def test_generation_with_the_cache_gives_the_same_greedy_tokens(tmp_path):
    assert run("generation", "cupy", tmp_path)["greedy"] == run("generation", "numpy", tmp_path)["greedy"]


def test_checkpoints_round_trip_and_gradients_check_on_the_gpu(tmp_path):
    assert run("checkpoint", "cupy", tmp_path)["same"] is True
    assert run("gradient_check", "cupy", tmp_path)["max_error"] < 1e-6


def test_the_text_task_trains_through_the_course_loop_as_on_numpy(tmp_path):
    gpu, cpu = run("text_task_training", "cupy", tmp_path), run("text_task_training", "numpy", tmp_path)
    assert gpu["losses"] == pytest.approx(cpu["losses"], rel=1e-4)  # float32, three steps of AdamW


def test_the_visualizers_get_host_arrays_that_match_numpy(tmp_path):
    gpu, cpu = run("visualizer_data", "cupy", tmp_path), run("visualizer_data", "numpy", tmp_path)
    for key in ("weights", "probs", "prev", "induction", "ablated"):  # a float64 model
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-9, abs=1e-12), key
