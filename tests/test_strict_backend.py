"""The GPU path, proven on the CPU: the companion under a strict CuPy double.

The backend is chosen once, at import, so each scenario runs in a fresh process
(tests/strict_scenarios.py), once with NumPy and once with COMPANION_BACKEND=strict, whose
arrays refuse implicit conversion to NumPy and arithmetic with numpy.ndarray, as CuPy's do.
The strict run must finish and give the NumPy run's numbers exactly (same operations)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(scenario: str, backend: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{scenario}-{backend}.json"
    env = {**os.environ, "COMPANION_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "strict_scenarios.py"), scenario, str(out)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{scenario} under {backend} failed:\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert result.pop("backend") == backend
    return result


@pytest.mark.parametrize("scenario", ["train_steps", "generation", "checkpoint", "gradient_check"])
def test_the_strict_backend_runs_and_matches_numpy_exactly(scenario, tmp_path):
    strict, plain = run(scenario, "strict", tmp_path), run(scenario, "numpy", tmp_path)
    assert strict == plain
    if scenario == "gradient_check":
        assert strict["max_error"] < 1e-6
    if scenario == "checkpoint":
        assert strict["same"] is True


def test_the_double_catches_a_planted_host_conversion(tmp_path):
    assert "implicit conversion" in run("planted_leak", "strict", tmp_path)["caught"]
    assert run("planted_leak", "numpy", tmp_path)["caught"] is None  # NumPy lets it pass silently


def test_the_strict_array_refuses_what_cupy_refuses():
    import numpy as np

    from companion.backend_strict import StrictArray, asarray

    a = asarray(np.ones((2, 3), dtype=np.float32))
    assert isinstance(a, StrictArray) and not isinstance(a, np.ndarray)
    for leak in (lambda: np.asarray(a), lambda: a + np.ones(3), lambda: np.ones(3) * a,
                 lambda: float(a), lambda: a.tolist(), lambda: np.exp(a), lambda: a[np.array([0])]):
        with pytest.raises(TypeError):
            leak()
    assert float(a.sum()) == 6.0  # a one-element result may come to the host
    assert (a * np.float32(2) + 1).get().tolist() == [[3.0] * 3] * 2  # NumPy scalars mix, as in CuPy
