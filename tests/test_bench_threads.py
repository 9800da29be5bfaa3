"""The thread-scaling benchmark's own logic: every workload runs on one and on two threads and is reported.

Timings are never asserted (the machines are noisy); what is tested is that
the script runs, measures what it says and prints well-formed output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture(scope="module")
def bench_threads():
    import bench_threads

    return bench_threads


def test_every_workload_is_measured_on_one_and_two_threads(bench_threads):
    results = bench_threads.measure(rounds=1)
    assert set(results) == set(bench_threads.workloads())
    for name, r in results.items():
        assert r["one_thread_s"] > 0 and r["two_threads_s"] > 0, name
        assert r["speedup"] == pytest.approx(2 * r["one_thread_s"] / r["two_threads_s"])


def test_one_split_layer_is_timed_three_ways_after_its_output_is_checked(bench_threads):
    split = bench_threads.measure_split(rounds=2, shapes=[(16, 32, 5)])
    (r,) = split.values()
    ways = ("1 thread", "2 threads, run_parallel", "2 threads, compiled job")
    assert all(r[f"{way} s"] > 0 for way in ways)
    assert r["2 threads, compiled job speedup"] == pytest.approx(r["1 thread s"] / r["2 threads, compiled job s"])


def test_json_output_is_machine_readable(bench_threads, capsys):
    assert bench_threads.main(["--rounds", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cores_available"] >= 1
    assert set(report["results"]) == set(bench_threads.workloads())
    assert len(report["split"]) == len(bench_threads.SPLIT_SHAPES)


def test_table_output_and_bad_rounds(bench_threads, capsys):
    assert bench_threads.main(["--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| workload |" in out and "speed-up of 2 threads" in out and "| layer |" in out
    with pytest.raises(SystemExit):
        bench_threads.main(["--rounds", "0"])
