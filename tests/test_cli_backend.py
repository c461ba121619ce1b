"""``--backend``: a command asks for its array library, and runs again under it when another serves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from companion.backend import BACKEND
from companion.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY_RUN = ["train", "--task", "listops", "--steps", "2", "--eval-every", "0", "--eval-size", "4",
            "--batch-size", "4", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--no-progress"]


def cli(*args, backend=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("COMPANION_BACKEND", None)
    if backend:
        env["COMPANION_BACKEND"] = backend
    return subprocess.run([sys.executable, "-m", "companion", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_the_flag_restarts_the_command_under_the_strict_double_and_train_names_it():
    proc = cli(*TINY_RUN, "--backend", "strict")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "backend: strict (the CPU test double of CuPy" in proc.stdout
    assert "test_accuracy" in proc.stdout  # the run went through to its test metrics


def test_the_flag_switches_back_to_numpy_from_an_environment_that_chose_strict():
    proc = cli(*TINY_RUN, "--backend", "numpy", backend="strict")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "backend: numpy" in proc.stdout


def test_called_from_python_the_switch_runs_a_child_and_returns_its_status(capfd):
    assert BACKEND == "numpy"  # the test process itself stays on NumPy
    assert main([*TINY_RUN, "--backend", "strict"]) == 0
    assert "backend: strict" in capfd.readouterr().out
    assert main(["eval", "--ckpt", "/nonexistent-run", "--backend", "strict"]) == 2  # the child's error status


def test_cupy_without_a_gpu_is_a_one_line_error():
    try:
        import cupy

        if cupy.cuda.is_available():
            pytest.skip("this machine has a GPU: --backend cupy would run")
    except ImportError:
        pass
    except Exception:  # a driver without a device raises instead of answering
        pass
    proc = cli(*TINY_RUN, "--backend", "cupy")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --backend cupy needs") and proc.stderr.count("\n") == 1
