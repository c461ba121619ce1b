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


@pytest.mark.parametrize("scenario", ["train_steps", "generation", "checkpoint", "gradient_check",
                                      "text_task_training", "evaluation", "visualizer_data"])
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


def test_the_strict_array_refuses_cupys_refusals_and_numpy_functions_too():
    # np.asarray and arithmetic with a NumPy array are what CuPy refuses; np.exp(a) CuPy accepts
    # (its arrays dispatch NumPy's functions to CuPy), and the double refuses it on purpose, as it
    # refuses tolist and NumPy-array indices, so that the companion spells xp and .get() everywhere
    import numpy as np

    from companion.tools.backend_strict import StrictArray, asarray

    a = asarray(np.ones((2, 3), dtype=np.float32))
    assert isinstance(a, StrictArray) and not isinstance(a, np.ndarray)
    for leak in (lambda: np.asarray(a), lambda: a + np.ones(3), lambda: np.ones(3) * a,
                 lambda: float(a), lambda: a.tolist(), lambda: np.exp(a), lambda: a[np.array([0])]):
        with pytest.raises(TypeError):
            leak()
    assert float(a.sum()) == 6.0  # a one-element result may come to the host
    assert (a * np.float32(2) + 1).get().tolist() == [[3.0] * 3] * 2  # NumPy scalars mix, as in CuPy


def test_the_double_keeps_reductions_on_the_device_and_counts_host_copies():
    import numpy as np

    from companion.tools.backend_strict import StrictArray, asarray, counting

    a = asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    with counting() as n:
        total = a.sum()  # a 0-d device array, as in CuPy: not yet a host number
        assert isinstance(total, StrictArray) and total.shape == ()
        assert isinstance(a[1, 2], StrictArray)
        b = (a * 2).reshape(3, 2).T  # one kernel (the product); reshape and .T are views
        assert float(total) == 15.0 and b.get().shape == (2, 3)
    assert n["op"] == 2 and n["op:mul"] == 1 and n["op:sum"] == 1  # a[1, 2] (basic indexing) is a view
    assert n["to_host"] == 2 and n["to_host:float"] == 1 and n["to_host:get"] == 1


def test_a_training_step_copies_to_the_host_only_its_checks_the_loss_and_the_norm(tmp_path):
    """The host round trips of one step of companion.train, counted under the strict double: the
    token-id range checks of the embedding and the loss and the loss mask's emptiness (which CuPy,
    wrapping out-of-range indices silently, would not make for us), the logged loss, and the
    gradient norm, which comes back in one copy."""
    env = {**os.environ, "COMPANION_BACKEND": "strict", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "companion.tools.step_count", "--steps", "2"], env=env,
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = json.loads(proc.stdout.strip().splitlines()[-1])["steps"]
    for step in steps:
        assert step["to_device"] == 3  # idx, targets, loss mask: drawn on the host, moved once
        assert step["to_host"] == 9, step
        assert 250 < step["op"] < 1000 and step["top"]["matmul"] > 0  # AdamW on the flat buffer, as on CuPy
    assert steps[0]["op"] > steps[1]["op"]  # the first step also creates AdamW's moment buffers



FLAT_LAYOUT_PROBE = """
import json
import numpy as np
from companion.module import flat_layout
from companion.tools.backend_strict import asarray
buffer = asarray(np.arange(10, dtype=np.float32))
views = {"w": buffer[0:6].reshape(2, 3), "b": buffer[6:10]}
found = flat_layout(views)
print(json.dumps({"same_base": views["w"].base is views["b"].base, "no_base": asarray(np.ones(3)).base is None,
                  "step": int(views["b"].data.ptr - views["w"].data.ptr),
                  "slices": None if found is None else {k: [v.start, v.stop] for k, v in found[1].items()}}))
"""


def test_the_double_recognises_views_of_the_flat_buffer_as_cupy_does():
    """flat_layout needs ``a.base is b.base`` for two views of one buffer, and each view's address:
    the double gives both, so AdamW and clipping take the flat-buffer path under it, as on CuPy."""
    env = {**os.environ, "COMPANION_BACKEND": "strict", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", FLAT_LAYOUT_PROBE], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["same_base"] and got["no_base"] and got["step"] == 6 * 4  # four bytes a float32
    assert got["slices"] == {"w": [0, 6], "b": [6, 10]}


def test_a_sweep_step_counts_the_same_in_one_piece_at_any_batch_and_more_in_cpu_pieces(monkeypatch):
    """count_sweep_step, which chapter 14 divides the recorded GPU times by: in one piece (as CuPy
    runs the step) the count does not depend on the batch; in the CPU's cache-sized pieces GELU and
    AdamW add elementwise operations only: no products, no reductions, no host copies."""
    import math

    from companion.accounting import parameter_counts
    from companion.feedforward import GELU_BLOCK_ROWS
    from companion.optim import CHUNK
    from companion.tools.bench_sweep import sweep_configs
    from companion.tools.step_count import count_sweep_in_subprocess

    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    small, other_batch, cpu = count_sweep_in_subprocess([
        {"name": "0.1M"}, {"name": "0.1M", "batch_size": 2, "block_size": 32},
        {"name": "0.1M", "batch_size": 12, "block_size": 128, "cpu_pieces": True}])
    assert small["op"] == other_batch["op"] and 200 < small["op"] < 1000, (small, other_batch)
    assert cpu["to_host"] == small["to_host"] > 0
    for kind in ("matmul", "einsum", "sum", "mean", "max"):
        assert cpu["top"].get(kind) == small["top"].get(kind), kind
    config = dict(sweep_configs(block_size=128))["0.1M"]
    adam_extra = (math.ceil(parameter_counts(config)["total"] / CHUNK) - 1) * 13  # 13 lines in Adam._update
    gelu_extra_pieces = config.n_layer * (math.ceil(12 * 128 / GELU_BLOCK_ROWS) - 1)
    gelu_extra = cpu["op"] - small["op"] - adam_extra
    assert gelu_extra > 0 and gelu_extra % gelu_extra_pieces == 0, (cpu["op"], small["op"], adam_extra)
    assert 10 <= gelu_extra // gelu_extra_pieces <= 30  # GELU's forward and backward lines, per extra piece


def test_count_sweep_step_refuses_outside_the_strict_backend():
    from companion.tools.step_count import count_sweep_step

    with pytest.raises(RuntimeError, match="COMPANION_BACKEND=strict"):
        count_sweep_step("0.1M")
