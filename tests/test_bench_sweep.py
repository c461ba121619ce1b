"""The size sweep's results file: its schema, and a real (tiny) CPU sweep that fits it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from companion.tools.bench_sweep import SIZES, check_results, main, sweep_configs
from companion.tools.step_count import count_sweep_in_subprocess
from companion.accounting import parameter_counts

RECORDED = Path(__file__).resolve().parents[1] / "book" / "data" / "gpu_sweep.json"
CACHE_BLOCKED = RECORDED.with_name("gpu_sweep_cache_blocked.json")


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
    run, row = results["cpu"], results["cpu"]["rows"][0]
    assert run["steps"] == 1 and isinstance(run["cpu_model"], str)
    assert row["host_ms_per_step"] > 0
    # the operations counted afterwards under the strict double, GELU and AdamW in NumPy's pieces
    assert row["n_ops"] == count_sweep_in_subprocess(
        [{"name": "0.1M", "batch_size": 12, "block_size": 128, "cpu_pieces": True}])[0]["op"]
    assert row["n_to_host"] > 0
    old = copy.deepcopy(results)  # a file recorded before the optional fields existed still fits
    del old["cpu"]["steps"], old["cpu"]["cpu_model"]
    for key in ("host_ms_per_step", "n_ops", "n_to_host"):
        del old["cpu"]["rows"][0][key]
    check_results(old)
    for key, value in (("n_ops", 0), ("n_ops", 3.5), ("host_ms_per_step", "7"), ("n_to_host", True)):
        bad = copy.deepcopy(results)
        bad["cpu"]["rows"][0][key] = value
        with pytest.raises(ValueError, match=f"cpu.rows.0..{key} must be a positive"):
            check_results(bad)
    with pytest.raises(ValueError, match="cpu.steps must be a positive int"):
        check_results({**results, "cpu": {**results["cpu"], "steps": 0}})
    with pytest.raises(ValueError, match="cpu.gpu_uuid must be a str"):
        check_results({**results, "cpu": {**results["cpu"], "gpu_uuid": 7}})
    bad = copy.deepcopy(results)
    bad["cpu"]["rows"][0]["ms_per_step"] = -1.0
    with pytest.raises(ValueError, match="ms_per_step"):
        check_results(bad)
    bad = copy.deepcopy(results)
    bad["gpu"] = {**results["cpu"]}  # a GPU run must name its CuPy and driver versions
    with pytest.raises(ValueError, match="gpu lacks 'cupy'"):
        check_results(bad)
    gpu = {**results["cpu"], "backend": "cupy", "cupy": "13.0", "cuda_driver": 12040}
    good = {**results, "gpu": {**gpu, "tf32": False}, "gpu_tf32": {**gpu, "tf32": True}}
    check_results(good)  # the optional TF32 run sits beside the float32 one
    check_results({**good, "gpu_tf32": None})
    with pytest.raises(ValueError, match="gpu_tf32.tf32 must be True"):
        check_results({**good, "gpu_tf32": {**gpu, "tf32": False}})
    with pytest.raises(ValueError, match="gpu.tf32 must be False"):
        check_results({**good, "gpu": {**gpu, "tf32": True}})
    with pytest.raises(ValueError, match="gpu_tf32 lacks 'cuda_driver'"):
        check_results({**good, "gpu_tf32": {k: v for k, v in good["gpu_tf32"].items() if k != "cuda_driver"}})
    with pytest.raises(ValueError, match="gpu_tf32.rows is empty"):
        check_results({**good, "gpu_tf32": {**good["gpu_tf32"], "rows": []}})


def test_one_size_at_several_batch_sizes_is_stored_under_its_own_part(tmp_path):
    out = tmp_path / "sweep.json"
    main(["--out", str(out), "--steps", "1", "--only", "0.1M", "--batch-sizes", "1,2", "--block-size", "16",
          "--no-count"])
    results = json.loads(out.read_text())
    check_results(results, require_cpu=False)
    rows = results["cpu_batch"]["rows"]
    assert results["cpu"] is None and [(r["name"], r["batch_size"]) for r in rows] == [("0.1M", 1), ("0.1M", 2)]
    for r in rows:  # tokens a second: the batch's tokens over the median step
        assert r["tokens_per_s"] == pytest.approx(r["batch_size"] * 16 / (r["ms_per_step"] / 1000), rel=1e-3)
    bad = copy.deepcopy(results)
    del bad["cpu_batch"]["rows"][0]["tokens_per_s"]
    with pytest.raises(ValueError, match="cpu_batch.rows.0..tokens_per_s must be a positive"):
        check_results(bad, require_cpu=False)
    with pytest.raises(ValueError, match="gpu_batch lacks 'cupy'"):
        check_results({**results, "gpu_batch": results["cpu_batch"]}, require_cpu=False)
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--batch-sizes", "1,2"])  # which size? --only is needed
    with pytest.raises(ValueError, match="no sweep size named '7M'"):
        main(["--out", str(out), "--only", "7M", "--batch-sizes", "1"])


@pytest.mark.skipif(not RECORDED.exists(), reason="no recorded sweep committed yet (book/data/gpu_sweep.json)")
def test_the_committed_recorded_sweep_fits_the_schema():
    recorded = json.loads(RECORDED.read_text())
    check_results(recorded)
    # chapter 14 reads the timed steps, the operation counts and the GPU tests' summary from the files
    for part in ("cpu", "gpu", "gpu_tf32"):
        assert recorded[part]["steps"] >= 3 and all("n_ops" in row for row in recorded[part]["rows"]), part
    summary = RECORDED.with_name("gpu_tests.txt").read_text().strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary) and "failed" not in summary, summary


def test_the_run_script_writes_the_files_chapter_14_reads():
    script = (RECORDED.parents[2] / "tests" / "gpu" / "run_on_device.sh").read_text()
    assert '> "$out/gpu_tests.txt"' in script
    assert script.count('bench_sweep --out "$out/gpu_sweep.json" --steps "$steps"') == 3
    assert "--only 10M --batch-sizes 12,48,192" in script


def test_the_first_gpu_run_kept_for_chapter_14_fits_the_schema_without_a_cpu_side():
    """book/data/gpu_sweep_cache_blocked.json: the GPU run from before backend.pieces, which chapter 14
    plots against the recorded one; it has no CPU part, and the same sizes as the recorded GPU run."""
    blocked = json.loads(CACHE_BLOCKED.read_text())
    check_results(blocked, require_cpu=False)
    assert blocked["cpu"] is None and blocked["gpu"]["backend"] == "cupy"
    recorded = json.loads(RECORDED.read_text())
    assert [r["name"] for r in blocked["gpu"]["rows"]] == [r["name"] for r in recorded["gpu"]["rows"]]
    assert blocked["gpu"]["commit"] != recorded["gpu"]["commit"]
    with pytest.raises(ValueError, match="cpu must be an object"):
        check_results(blocked)  # a file without its CPU side needs require_cpu=False


def test_the_first_one_piece_run_kept_for_chapter_14_differs_from_the_cache_blocked_one_only_by_elementwise_operations():
    """book/data/gpu_sweep_one_piece.json: the first run after backend.pieces, at the commit that added
    it; chapter 14 compares it with the cache-blocked run, operation by operation name."""
    one = json.loads(RECORDED.with_name("gpu_sweep_one_piece.json").read_text())
    blocked = json.loads(CACHE_BLOCKED.read_text())
    check_results(one)
    check_results(blocked, require_cpu=False)
    assert one["gpu"]["commit"] != blocked["gpu"]["commit"] and one["gpu"]["date"] > blocked["gpu"]["date"]
    for a, b in zip(one["gpu"]["rows"], blocked["gpu"]["rows"]):
        assert a["name"] == b["name"] and a["n_ops"] < b["n_ops"]
        assert sum(a["ops_by_name"].values()) == a["n_ops"] and sum(b["ops_by_name"].values()) == b["n_ops"]
    bad = copy.deepcopy(one)
    bad["gpu"]["rows"][0]["ops_by_name"]["matmul"] += 1  # no longer adds up to n_ops
    with pytest.raises(ValueError, match=r"gpu.rows\[0\].ops_by_name must map"):
        check_results(bad)
