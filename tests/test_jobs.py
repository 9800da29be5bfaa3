"""Compiled jobs (``minicnn.kernels.jobs``): a blocked kernel's chunks shared by threads that never take the GIL.

What must hold, whatever the timing: every chunk runs exactly once, the
output is the same bits as on one thread, helpers that went to sleep are
woken, Python jobs and compiled jobs can follow each other, and several
Python threads can post jobs at once. Outputs start as NaN, so a chunk that
did not run shows; each case repeats many times, since a race shows only
now and then.
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from minicnn import threads
from minicnn.kernels import cpu_blocked, cpu_conv, jobs

RUNS = 200  # repetitions of each shared job


def dense_job(c: int = 32, m: int = 64, side: int = 9, seed: int = 0):
    """A 3x3 convolution (pad 1, LeakyRelu) as a compiled job in 8 chunks (2 groups of output blocks x 4 pixel
    ranges): ``(job, descriptor, x, y)``, the output ``y`` full of NaN."""
    rng = np.random.default_rng(seed)
    x = np.zeros((c // 16, side + 2, side + 2, 16), np.float32)
    x[:, 1:-1, 1:-1] = rng.standard_normal((c // 16, side, side, 16))
    wb, bias, slope = cpu_blocked.blocked_dense_weights(rng.standard_normal((m, c, 3, 3)).astype(np.float32),
                                                        rng.standard_normal(m).astype(np.float32), None, 16)
    taps = cpu_blocked.dense_taps(c // 16, (3, 3), (1, 1), (side + 2, side + 2), 16).copy()
    ints = np.array([16, side + 2, side, side, 1, 1, cpu_conv.ACTIVATION_CODES["LeakyRelu"]], np.int64)
    job = jobs.Job(jobs.DENSE, wb.reshape(-1), bias, slope, taps, ints, np.array([0.1, -np.inf, np.inf]))
    pixels, half = side * side, m // 32
    chunks = [(b0, b1, pixels * k // 4, pixels * (k + 1) // 4) for b0, b1 in ((0, half), (half, m // 16))
              for k in range(4)]
    return job, job.describe(np.array(chunks)), x.reshape(-1), np.full(m * side * side, np.nan, np.float32)


def shared(descriptor, x, y) -> None:
    y.fill(np.nan)
    threads.run_compiled(descriptor, x, y, y, False, int(descriptor[jobs.N_CHUNKS]))


def reference(descriptor, x, y) -> np.ndarray:
    y.fill(np.nan)
    jobs.run_alone(descriptor, x, y, y, False)
    return y.copy()


def test_a_job_on_one_thread_matches_the_kernel_called_chunk_by_chunk():
    job, descriptor, x, y = dense_job()
    wb, bias, slope, taps, ints, floats = (array for _, array, _ in job.arrays)
    expected = np.full_like(y, np.nan)
    for c0, c1, c2, c3 in job.tables[0]:
        cpu_blocked.dense_nchw16c(x, wb, bias, slope, expected, taps, *ints[:6], ints[6], np.float32(floats[0]),
                                  np.float32(floats[1]), np.float32(floats[2]), expected, False, c0, c1, c2, c3)
    assert not np.isnan(expected).any()
    np.testing.assert_array_equal(reference(descriptor, x, y), expected)


def test_a_job_refuses_arrays_it_cannot_describe_and_copies_read_only_ones():
    job, _, _, _ = dense_job()
    wb, bias, slope, taps, ints, floats = (array for _, array, _ in job.arrays)
    with pytest.raises(ValueError, match="float64"):
        jobs.Job(jobs.DENSE, wb, bias, slope, taps, ints, floats.astype(np.float32))
    with pytest.raises(ValueError, match="1-D"):
        jobs.Job(jobs.DENSE, wb.reshape(-1, 16), bias, slope, taps, ints, floats)
    with pytest.raises(ValueError, match="unknown kernel"):
        jobs.Job(99, wb, bias, slope, taps, ints, floats)
    frozen = bias.copy()
    frozen.flags.writeable = False
    copied = jobs.Job(jobs.DENSE, wb, frozen, slope, taps, ints, floats).arrays[1][1]
    assert copied.flags.writeable and np.array_equal(copied, bias)


def test_a_descriptor_keeps_its_job_alive():
    """Its addresses stay valid after the job and its arrays are dropped (the descriptor holds the job)."""
    _, descriptor, x, y = dense_job()
    expected = reference(descriptor, x, y)
    _ = None
    gc.collect()
    for _ in range(50):  # allocations that would reuse freed memory
        np.ones(64 * 1024, np.float32)
    np.testing.assert_array_equal(reference(descriptor, x, y), expected)


def test_every_chunk_runs_once_and_gives_the_same_bits_on_two_threads():
    _, descriptor, x, y = dense_job()
    expected = reference(descriptor, x, y)
    with threads.limit(2):
        for _ in range(RUNS):
            shared(descriptor, x, y)
            np.testing.assert_array_equal(y, expected)


def test_compiled_jobs_after_the_helpers_went_to_sleep(monkeypatch):
    """Helpers that spun out (SPIN_READS) sleep; jobs still finish, and the next ones wake them."""
    monkeypatch.setattr(threads, "SPIN_READS", 1000)  # ~1 us of spinning: they sleep between jobs
    _, descriptor, x, y = dense_job()
    expected = reference(descriptor, x, y)
    with threads.limit(2):
        for _ in range(20):
            shared(descriptor, x, y)
            np.testing.assert_array_equal(y, expected)
            time.sleep(0.002)


def test_python_jobs_and_compiled_jobs_alternate():
    _, descriptor, x, y = dense_job()
    expected = reference(descriptor, x, y)
    with threads.limit(2):
        for _ in range(RUNS // 2):
            done = []
            threads.run_parallel(done.append, 5)
            assert sorted(done) == list(range(5))
            shared(descriptor, x, y)
            np.testing.assert_array_equal(y, expected)


def test_compiled_jobs_from_several_python_threads_at_once():
    """A second caller while a job runs does its own job itself (each caller its own output)."""
    cases = [dense_job(seed=s) for s in range(3)]
    expected = [reference(*case[1:]) for case in cases]
    failures = []

    def caller(k):
        for _ in range(50):
            shared(*cases[k][1:])
            if not np.array_equal(cases[k][3], expected[k]):
                failures.append(k)

    with threads.limit(2):
        callers = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
    assert failures == []


@pytest.mark.parametrize("kind", ["pointwise", "depthwise", "dense", "pool", "pad_channels"])
def test_each_blocked_kernel_shared_gives_the_same_bits_as_alone(kind, monkeypatch):
    """Through the runners sessions use, with the split thresholds at 0 so that even these small layers split.

    Each job's output is filled with NaN before it runs (the runners take it
    from ``np.empty``, which may hand back the last call's correct result).
    The dense layer is padded, so its zero-padding job is checked too.
    """
    for name in ("MIN_PARALLEL_MACS", "MIN_PARALLEL_DEPTHWISE_MACS", "MIN_PARALLEL_POOL_VALUES"):
        monkeypatch.setattr(cpu_blocked, name, 0)
    real_run = cpu_blocked.CompiledJob.run

    def run_on_nan(job, x, y, residual):
        y.fill(np.nan)
        real_run(job, x, y, residual)

    monkeypatch.setattr(cpu_blocked.CompiledJob, "run", run_on_nan)
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((1, 2, 11, 13, 16)).astype(np.float32)
    residual = rng.standard_normal((1, 2, 11, 13, 16)).astype(np.float32)
    bias = rng.standard_normal(32).astype(np.float32)
    if kind == "pointwise":
        wb, b16, s16 = cpu_blocked.blocked_pointwise_weights(rng.standard_normal((32, 32, 1, 1)).astype(np.float32),
                                                             bias)
        run = cpu_blocked.pointwise_runner(xb.shape, wb, b16, s16, "Relu")
    elif kind == "depthwise":
        wb, b16, s16 = cpu_blocked.blocked_depthwise_weights(rng.standard_normal((32, 1, 3, 3)).astype(np.float32),
                                                             bias)
        run = cpu_blocked.depthwise_runner(xb.shape, wb, b16, s16, (1, 1), (1, 1, 1, 1), (11, 13), "Relu")
    elif kind == "dense":
        wb, b16, s16 = cpu_blocked.blocked_dense_weights(rng.standard_normal((32, 32, 3, 3)).astype(np.float32),
                                                         bias, None, 16)
        run = cpu_blocked.dense_runner(xb.shape, wb, b16, s16, (1, 1), (1, 1, 1, 1), (1, 1), (11, 13), "Relu")
    elif kind == "pool":
        pool = cpu_blocked.pool_runner(xb.shape, (3, 3), (1, 1), (1, 1, 1, 1), (11, 13))
        run = lambda x, residual=None: pool(x)  # noqa: E731  (pooling takes no residual)
    else:  # 27 real channels (a block and 11 lanes) become 60: a block of them is new
        pad = cpu_blocked.pad_channels_runner(xb.shape, 27, 33)
        run = lambda x, residual=None: pad(x)  # noqa: E731  (nor does channel padding)
    with threads.limit(1):
        expected = run(xb, residual)
    assert not np.isnan(expected).any()
    with threads.limit(2):
        for _ in range(RUNS // 4):
            np.testing.assert_array_equal(run(xb, residual), expected)
