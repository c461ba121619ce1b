"""The size sweep's results file: its schema, and a real (tiny) CPU sweep that fits it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from companion.bench_sweep import SIZES, check_results, main, sweep_configs
from companion.accounting import parameter_counts

RECORDED = Path(__file__).resolve().parents[1] / "book" / "data" / "gpu_sweep.json"


def test_the_sizes_run_from_the_listops_width_to_about_50m_parameters():
    counts = [parameter_counts(c)["total"] for _, c in sweep_configs()]
    assert counts == sorted(counts) and len(counts) == len(SIZES)
    assert counts[0] < 2e5 and 4e7 < counts[-1] < 6e7
    assert [name for name, _ in sweep_configs(1.2e7)] == ["0.1M", "0.8M", "3M", "10M"]


def test_a_cpu_sweep_writes_a_file_that_fits_the_schema(tmp_path):
    out = tmp_path / "sweep.json"
    main(["--out", str(out), "--max-params", "2e5", "--steps", "1"])
    results = json.loads(out.read_text())
    check_results(results)
    assert results["gpu"] is None and [r["name"] for r in results["cpu"]["rows"]] == ["0.1M"]
    bad = copy.deepcopy(results)
    bad["cpu"]["rows"][0]["ms_per_step"] = -1.0
    with pytest.raises(ValueError, match="ms_per_step"):
        check_results(bad)
    bad = copy.deepcopy(results)
    bad["gpu"] = {**results["cpu"]}  # a GPU run must name its CuPy and driver versions
    with pytest.raises(ValueError, match="gpu lacks 'cupy'"):
        check_results(bad)


@pytest.mark.skipif(not RECORDED.exists(), reason="no recorded sweep committed yet (book/data/gpu_sweep.json)")
def test_the_committed_recorded_sweep_fits_the_schema():
    check_results(json.loads(RECORDED.read_text()))
