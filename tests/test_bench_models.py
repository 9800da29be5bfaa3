"""The whole-model benchmark's own logic, on the smallest zoo model: it checks outputs, times every runner, reports.

Timings are never asserted (the machines are noisy); what is tested is that
the script runs what it says and prints a well-formed table.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_the_optional_columns_are_timed_and_reported(model_path, monkeypatch):
    import bench_models

    monkeypatch.setattr(bench_models, "TURN_SECONDS", 0.005)
    result = bench_models.bench_model("gender_cydral", model_path("gender_cydral"), (1, 3, 32, 32), rounds=1,
                                      all_threads=2, with_reference=False, with_cuda=False, with_nchw=True,
                                      with_unchained=True)
    for label in ("minicnn-numba", "onnxruntime", "minicnn-nchw", "minicnn-unchained"):
        for n in (1, 2):
            assert result["ms"][f"{label} {n}t"] > 0
    assert all(err < bench_models.TOLERANCE for err in result["max_rel_err"].values())
    table = bench_models.report([result], 2).splitlines()
    header = next(line for line in table if line.startswith("| model"))
    row = next(line for line in table if line.startswith("| gender_cydral"))
    assert "chains speed-up 1t" in header and "NCHW16c speed-up 2t" in header
    assert header.count("|") == row.count("|")


def test_the_reference_columns_and_the_target_line(model_path, monkeypatch):
    """With onnx.reference: both runtimes' speed-ups over it, and how many rows reach the 40x target."""
    import bench_models

    monkeypatch.setattr(bench_models, "TURN_SECONDS", 0.005)
    result = bench_models.bench_model("gender_cydral", model_path("gender_cydral"), (1, 3, 32, 32), rounds=1,
                                      all_threads=1, with_reference=True, with_cuda=False)
    assert result["ms"]["onnx.reference"] > 0
    table = bench_models.report([result], 1).splitlines()
    header = next(line for line in table if line.startswith("| model"))
    row = next(line for line in table if line.startswith("| gender_cydral"))
    assert "ORT x faster than onnx.reference (1t)" in header and header.count("|") == row.count("|")
    assert any(line.startswith("40x faster than onnx.reference at 1 thread: minicnn on ") and "of 1 rows" in line
               for line in table)
