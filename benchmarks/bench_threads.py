"""What does a second thread buy on this machine? Throughput of 2 threads over 1, for four kinds of work.

An operating system's "2 CPUs" can be two physical cores or the two
hardware threads (SMT, hyper-threads) of one core; inside a virtual machine
``lscpu`` may not tell you which. The difference decides what a second
thread can do for a CNN engine: two cores double every resource, two
hardware threads of one core share its load/store units, its L1 cache and
its vector units, so a second thread only fills the cycles the first one
leaves idle. This script tells the two apart by running the same work on 1
thread and on 2 threads at once (each thread its own data) and printing

    speed-up = (2 x work / time on 2 threads) / (work / time on 1 thread)

for four workloads, all single-threaded kernels that release the GIL:

* ``latency-bound FMA``: chains of dependent multiply-adds in registers; the
  core idles waiting for each result, so even two hardware threads of one
  core get ~2x.
* ``L1 load/store``: each thread streams over its own 24 KiB (L1-resident)
  arrays, ``b += c * a``; limited by the core's load/store units, so ~2x on
  two cores, ~1x on two hardware threads of one core.
* ``direct 3x3 conv``: minicnn's :func:`minicnn.kernels.cpu_conv.conv3x3_direct`
  on a 64 -> 32 channel, 80x80 image (the kernel of detection heads), each
  thread its own image: shows where minicnn's own kernels fall.
* ``BLAS sgemm``: a 256x256x256 single-threaded OpenBLAS GEMM per thread
  (register-blocked, the way onnxruntime's kernels are).

A second table asks what splitting *one* job between the two threads costs,
which is what minicnn does with each layer: a dense 3x3 convolution in
NCHW16c (:func:`minicnn.kernels.cpu_blocked.dense_nchw16c`) on three
shapes from tiny to the age model's largest, cut into 4 chunks, run

* on 1 thread (``jobs.run_alone``: one Numba call, every chunk in turn);
* on 2 threads by ``threads.run_parallel``: each chunk is a Python call,
  so a helper thread takes the GIL for each of its chunks;
* on 2 threads as a compiled job (``threads.run_compiled``): the helper
  claims and runs chunks inside Numba and never takes the GIL
  (``minicnn.kernels.jobs``).

The speed-ups are over 1 thread (2.0x at best); below 1.0x the split costs
more than it saves.

Rounds alternate 1-thread and 2-thread runs (noisy neighbours slow both
alike); the tables report the median over rounds. On the 2-vCPU machines
this project is measured on, four runs gave 1.5-2.0x for the latency-bound
chains, 1.5-1.9x for L1 load/store (one earlier, shorter run: 0.6x), 1.9-2.0x
for the direct conv and 1.9-2.0x for sgemm: two cores for independent work,
though a busy host makes any run noisy. minicnn's smaller gains from a second
thread on whole detectors come from splitting *one* layer between threads
(hand-offs, shared input, layers too small to split), not from the cores
(benchmarks/RESULTS.md).

    python benchmarks/bench_threads.py            # ~10 s
    python benchmarks/bench_threads.py --json     # the same numbers as JSON
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from minicnn import threads  # noqa: E402  (first: it sets Numba's threading layer)
from minicnn.kernels import cpu_blocked, cpu_conv, jobs  # noqa: E402
from numba import njit  # noqa: E402

from bench_models import timed_turn  # noqa: E402  (the same turns as the whole-model benchmark)


@njit(nogil=True, cache=True, fastmath=True)
def fma_chains(seed, n_steps):
    """``n_steps`` rounds of 128 independent ``acc = acc * 0.999 + seed`` chains (8 vector registers)."""
    acc = np.zeros(128, np.float32)
    for _ in range(n_steps):
        for p in range(128):
            acc[p] = acc[p] * np.float32(0.999) + seed[p]
    return acc.sum()


@njit(nogil=True, cache=True, fastmath=True)
def l1_stream(a, b, n_steps):
    """``n_steps`` passes of ``b += 1.0001 * a`` over arrays small enough to stay in L1 cache."""
    for _ in range(n_steps):
        for p in range(a.size):
            b[p] += np.float32(1.0001) * a[p]


def workloads() -> dict[str, Callable[[], Callable[[], None]]]:
    """Name -> a factory giving one thread's job (its own data), each job ~10-60 ms on one thread."""
    def fma():
        seed = np.random.rand(128).astype(np.float32)
        return lambda: fma_chains(seed, 2_000_000)

    def stream():
        a, b = np.random.rand(3072).astype(np.float32), np.zeros(3072, np.float32)
        return lambda: l1_stream(a, b, 200_000)

    def conv():
        channels, size, c_out = 64, 80, 32
        x = np.random.rand(channels, size, size).astype(np.float32)
        w = np.random.rand(c_out, channels, 3, 3).astype(np.float32)
        bias = np.zeros(c_out, np.float32)
        p_w = n_rows = size + 2
        planes = np.zeros((channels, 1, n_rows * p_w + cpu_conv.DIRECT_VECTOR), np.float32)
        cpu_conv.pad_planes(x, planes, 1, 1, 1, p_w, n_rows)
        y = np.empty((c_out, size, size), np.float32)
        none = np.zeros((1, 1, 1), np.float32)
        f0 = np.float32(0)

        def job():
            for _ in range(4):
                cpu_conv.conv3x3_direct(planes, 1, p_w, w, bias, y, 0, f0, bias, f0, f0, none, False, 0, size)
        return job

    def sgemm():
        a, b = np.random.rand(256, 256).astype(np.float32), np.random.rand(256, 256).astype(np.float32)
        c = np.empty((256, 256), np.float32)

        def job():
            for _ in range(60):
                np.matmul(a, b, out=c)
        return job

    return {"latency-bound FMA": fma, "L1 load/store": stream, "direct 3x3 conv": conv, "BLAS sgemm": sgemm}


def time_one(job: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    job()
    return time.perf_counter() - t0


def time_two(job_a: Callable[[], None], job_b: Callable[[], None]) -> float:
    """Wall time of ``job_a`` and ``job_b`` run at once on two threads (both started before timing)."""
    start = threading.Barrier(2)
    helper = threading.Thread(target=lambda: (start.wait(), job_b()))
    helper.start()
    start.wait()
    t0 = time.perf_counter()
    job_a()
    helper.join()
    return time.perf_counter() - t0


def measure(rounds: int) -> dict[str, dict[str, float]]:
    """Per workload: median seconds for one job on 1 thread, for two jobs on 2 threads, and the speed-up."""
    results = {}
    with threads.limit(1):  # OpenBLAS on one thread: each of our two threads runs one single-threaded GEMM
        for name, make in workloads().items():
            job_a, job_b = make(), make()
            job_a(), job_b()  # compile / warm caches
            one, two = [], []
            for _ in range(rounds):
                one.append(time_one(job_a))
                two.append(time_two(job_a, job_b))
            t1, t2 = statistics.median(one), statistics.median(two)
            results[name] = {"one_thread_s": t1, "two_threads_s": t2, "speedup": 2 * t1 / t2}
    return results


# (input channels, output channels, image side) of the split jobs: a tiny layer, and two of the age model's.
SPLIT_SHAPES = [(16, 16, 8), (64, 64, 14), (256, 256, 3)]
SPLIT_CHUNKS = 4
SPLIT_TURN_S = 0.02  # each way's turn: calls back to back for at least this long; the mean is its sample


def split_job(c: int, m: int, side: int) -> tuple:
    """A 3x3 convolution (pad 1, Relu) as a compiled job in 4 chunks of output blocks: ``(job, x, y)``."""
    rng = np.random.default_rng(0)
    x = np.zeros((c // 16, side + 2, side + 2, 16), np.float32)  # the input, already zero-padded
    x[:, 1:-1, 1:-1] = rng.standard_normal((c // 16, side, side, 16))
    wb, bias, slope = cpu_blocked.blocked_dense_weights(rng.standard_normal((m, c, 3, 3)).astype(np.float32),
                                                        np.zeros(m, np.float32), None, 16)
    taps = cpu_blocked.dense_taps(c // 16, (3, 3), (1, 1), (side + 2, side + 2), 16).copy()
    ints = np.array([16, side + 2, side, side, 1, 1, cpu_conv.ACTIVATION_CODES["Relu"]], np.int64)
    job = jobs.Job(jobs.DENSE, wb.reshape(-1), bias, slope, taps, ints, np.array([0.01, -np.inf, np.inf]))
    return job, x.reshape(-1), np.empty(m * side * side, np.float32)


def split_ways(job: jobs.Job, x: np.ndarray, y: np.ndarray, side: int) -> dict[str, tuple[int, Callable[[], None]]]:
    """The three ways to run ``job`` in ``SPLIT_CHUNKS`` chunks: name -> (thread count, function)."""
    blocks = job.arrays[1][1].size // 16  # the bias: 16 per output block
    cuts = [blocks * k // SPLIT_CHUNKS for k in range(SPLIT_CHUNKS + 1)]
    chunks = np.array([(a, b, 0, side * side) for a, b in zip(cuts, cuts[1:])], np.int64)
    whole = job.describe(chunks)
    pieces = [job.describe(chunks[k:k + 1]) for k in range(len(chunks))]  # one descriptor per chunk
    return {"1 thread": (1, lambda: jobs.run_alone(whole, x, y, y, False)),
            "2 threads, run_parallel": (2, lambda: threads.run_parallel(
                lambda k: jobs.run_alone(pieces[k], x, y, y, False), len(pieces))),
            "2 threads, compiled job": (2, lambda: threads.run_compiled(whole, x, y, y, False, len(chunks)))}


def measure_split(rounds: int, shapes=SPLIT_SHAPES) -> dict[str, dict[str, float]]:
    """Per shape: median seconds per call of each way of running it, and each way's speed-up over 1 thread."""
    results = {}
    for c, m, side in shapes:
        job, x, y = split_job(c, m, side)
        ways = split_ways(job, x, y, side)
        ways["1 thread"][1]()
        reference = y.copy()
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for r in range(rounds):
            for name in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
                n_threads, fn = ways[name]
                with threads.limit(n_threads):
                    y.fill(np.nan)
                    fn()  # warm (and compile), then check the output before timing
                    if not np.array_equal(y, reference):
                        raise RuntimeError(f"{name} changed the output of the {c}->{m} on {side}x{side} job")
                    samples[name].append(timed_turn(fn, SPLIT_TURN_S))
        medians = {name: statistics.median(v) for name, v in samples.items()}
        one = medians["1 thread"]
        results[f"{c}->{m} on {side}x{side}"] = {
            **{f"{name} s": t for name, t in medians.items()},
            **{f"{name} speedup": one / t for name, t in medians.items() if name != "1 thread"}}
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="alternating 1-thread / 2-thread rounds (default 9)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    results = measure(args.rounds)
    split = measure_split(args.rounds)
    if args.json:
        print(json.dumps({"cores_available": threads.available_cores(), "results": results, "split": split},
                         indent=2))
        return 0
    print(f"cores available to this process: {threads.available_cores()}\n")
    print("| workload | 1 job on 1 thread ms | 2 jobs on 2 threads ms | speed-up of 2 threads |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['one_thread_s'] * 1e3:.1f} | {r['two_threads_s'] * 1e3:.1f} | {r['speedup']:.2f}x |")
    print("\nspeed-up 2.0x: the threads do not share what this work needs; 1.0x: they share it (two hardware "
          "threads of one core share its L1 cache and load/store units).")
    print("\nOne dense 3x3 layer (NCHW16c, Relu) split into 4 chunks, microseconds per call (median):\n")
    print("| layer | 1 thread | 2 threads, run_parallel | speed-up | 2 threads, compiled job | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, r in split.items():
        print(f"| {name} | {r['1 thread s'] * 1e6:.1f} | {r['2 threads, run_parallel s'] * 1e6:.1f} | "
              f"{r['2 threads, run_parallel speedup']:.2f}x | {r['2 threads, compiled job s'] * 1e6:.1f} | "
              f"{r['2 threads, compiled job speedup']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
