"""Who owns the CPU cores: OpenBLAS (behind ``np.matmul``), Numba's ``prange``, or minicnn itself.

Three thread pools could run minicnn's fast CPU path: OpenBLAS's (the GEMMs
of the convolutions), Numba's (``prange`` loop kernels) and a plain Python
thread pool. They can fight, for three reasons measured on this project's
machines (see ``shared/PERF.md`` and ``benchmarks/bench_conv_cpu.py``):

* Numba's default threading layer on Linux is OpenMP, whose idle threads spin
  for a while after each parallel loop. OpenBLAS's threads spin too. On a
  2-core machine each pool then burns the cores the other one needs: a whole
  model took 300 ms instead of 95 ms. Numba's own ``workqueue`` layer parks
  its threads at once. The layer must be chosen before Numba starts its
  threads, through ``NUMBA_THREADING_LAYER``, so this module sets it at
  import time (and ``minicnn/__init__.py`` imports this module first). A
  user who sets the variable themselves keeps their choice.
* OpenBLAS splits *one* GEMM over its threads and synchronises them by
  spinning. The GEMMs of a mobile CNN are small and skinny (64 x 576 by
  576 x 6400, 256 x 256 by 256 x 196): on 2 threads they ran up to 10x
  *slower* than on 1, and far worse when another process shares the cores.
* Both pools default to one thread per core, so "1 thread" has to be set
  in two places to mean what it says.

So minicnn owns the cores itself. Its kernels split their work into a few
independent chunks per thread (bands of output rows, blocks of output
channels, ranges of planes or values) and hand them to ``run_parallel``:
each chunk runs single-threaded BLAS and a single-threaded Numba kernel
that releases the GIL. No minicnn kernel uses ``prange``: besides the
fights above, launching a ``prange`` loop on the ``workqueue`` layer cost
about 90 microseconds even on one thread (measured), more than the whole
pooling or activation layer of a small model. ``run_parallel`` hands a job
to helper threads that spin for about a millisecond after each job,
with the GIL released, before they sleep (see :class:`_Helpers`: a
sleeping thread takes 16 us or more to wake here); work too small to be
worth even a fast hand-off stays on the calling thread. Free threads take
the next chunk, so a thread the OS does not schedule for a while (another
process wants the core) delays nothing: the others do its share.

Each chunk of ``run_parallel`` is still a Python call, and a helper needs
the GIL to make it: with the calling thread taking the GIL back between
its own chunks, the two wake each other up, tens of microseconds a layer.
So the blocked layers that most models spend their time in (1x1,
depthwise and dense convolutions and pools in NCHW16c) run as *compiled
jobs* instead (:func:`run_compiled`, ``minicnn.kernels.jobs``): the same
helper threads, while they spin, claim and run those chunks inside Numba
and never take the GIL. A 110-120 us layer of the age model ran 1.6x
faster on 2 threads than on 1 that way, and 0.84-1.16x through
``run_parallel`` (``benchmarks/bench_threads.py``, two runs). The NCHW
path's chunks (BLAS calls, ``cpu_conv``) and the layout reorders keep
``run_parallel``.

``configure(n)`` and ``limit(n)`` set the thread count, pin
OpenBLAS to 1 thread, and give Numba ``n`` threads (for any ``prange`` code
of your own), so minicnn compared with onnxruntime "at n threads" really
uses n cores.

One caution: ``configure`` and ``limit`` set process-wide state, and every
job splits itself for all the threads it is given. To run sessions from
several Python threads at once, call ``configure(1)`` first so that each
runs on one core instead of all of them fighting for every core.

Usage::

    import minicnn
    minicnn.threads.configure(2)            # for the rest of the process
    with minicnn.threads.limit(1):          # temporarily (benchmarks do this)
        sess.run(None, feeds)

A side effect to know about: after ``configure`` NumPy's own BLAS calls in
the same process run on one thread too (``limit`` restores them on exit).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger(__name__)

THREADING_LAYER = "workqueue"


def _choose_threading_layer() -> None:
    """Make Numba use ``THREADING_LAYER`` unless the user chose one (runs once, at import)."""
    if "NUMBA_THREADING_LAYER" in os.environ:
        return  # the user's explicit choice wins
    os.environ["NUMBA_THREADING_LAYER"] = THREADING_LAYER
    if "numba" in sys.modules:
        # Numba read its configuration when it was imported; it starts its threads at the first
        # parallel kernel, and until then the setting can still be changed in place.
        import numba
        from numba.np.ufunc import parallel

        if getattr(parallel, "_is_initialized", True):
            log.warning("Numba's threads were started before minicnn was imported; its threading layer "
                        "stays %r (set NUMBA_THREADING_LAYER=%s to avoid thread pools fighting)",
                        numba.config.THREADING_LAYER, THREADING_LAYER)
        else:
            numba.config.THREADING_LAYER = THREADING_LAYER


_choose_threading_layer()

_blas_limiter = None  # the threadpoolctl limiter of the last configure(), kept alive on purpose
_controller = None  # threadpoolctl.ThreadpoolController, see _blas_controller()
_num_threads: int | None = None  # pieces run_parallel may use; None: every available core


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, scanned once (by ``configure``, or on first use).

    Scanning the process's libraries takes 1-2 ms; ``threadpool_limits``
    scans on every call, which made each ``limit`` block cost 1.2 ms (it
    was inside every timed run of the benchmarks). Setting the limit
    through the kept controller costs about 10 microseconds. A BLAS library
    loaded after the scan is not limited until the next ``configure``.
    """
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


def _check(num_threads: int | None) -> int:
    if num_threads is None:
        return available_cores()
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return num_threads


def _set_numba_threads(n: int) -> int:
    """Set Numba's thread count (clamped to the pool it started with); returns the old one."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return old


def configure(num_threads: int | None = None) -> int:
    """Let minicnn use ``num_threads`` cores (default: every available core); returns the number set.

    Lasts for the rest of the process (use ``limit`` for a temporary change):
    minicnn's kernels split work into that many pieces, OpenBLAS runs on one
    thread, and Numba's ``prange`` gets ``num_threads`` threads (clamped to
    the pool size Numba started with, ``NUMBA_NUM_THREADS``).
    """
    global _blas_limiter, _controller, _num_threads

    n = _check(num_threads)
    _controller = None  # look again for BLAS libraries loaded since the last scan
    _blas_limiter = _blas_controller().limit(limits=1, user_api="blas")
    _set_numba_threads(n)
    _num_threads = n
    return n


def ensure_configured() -> None:
    """What a session does when it is given no thread count: :func:`configure`'s defaults, unless a count is set.

    A count set before, by ``configure`` or by an enclosing ``limit``
    block, stays: a session made inside ``with limit(1):`` runs on one
    thread there (it used to reset the process to every core).
    """
    global _blas_limiter
    if _num_threads is None:
        configure(None)
    elif _blas_limiter is None:
        _blas_limiter = _blas_controller().limit(limits=1, user_api="blas")


@contextlib.contextmanager
def limit(num_threads: int | None) -> Iterator[int]:
    """Context manager: minicnn uses ``num_threads`` cores inside the block, then the old settings again."""
    global _num_threads

    n = _check(num_threads)
    saved = _num_threads
    with _blas_controller().limit(limits=1, user_api="blas"):
        old = _set_numba_threads(n)
        _num_threads = n
        try:
            yield n
        finally:
            _num_threads = saved
            _set_numba_threads(old)


def num_threads() -> int:
    """How many pieces ``run_parallel`` splits work into now.

    Without ``configure`` or ``limit``: every core the process could run on
    when this was first asked (read once; every kernel call asks, and the
    system call took about 0.7 us).
    """
    return _num_threads if _num_threads is not None else _default_threads()


@functools.lru_cache(maxsize=1)
def _default_threads() -> int:
    return available_cores()


class _SharedWork:
    """Chunks ``0 .. n_chunks - 1`` of one job, handed out one at a time to whichever thread asks first."""

    def __init__(self, task: Callable[[int], None], n_chunks: int, flags, seq: int, helpers: int):
        self.task = task
        self.n_chunks = n_chunks
        self.next_chunk = 0
        self.finished = 0
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.flags, self.seq = flags, seq  # flags[_DONE] = seq once every chunk has run
        self.helper_slots = helpers  # how many helper threads may join (the caller always works)
        self.sleeper: threading.Event | None = None  # set when the caller sleeps until the job is done

    def join(self) -> None:
        """A helper thread's entry: work, unless the job already has all the helpers it may use."""
        with self.lock:
            if self.helper_slots <= 0:
                return
            self.helper_slots -= 1
        self.work()

    def claim(self) -> int:
        """The next chunk to run (``n_chunks`` or more: none left)."""
        with self.lock:
            chunk = self.next_chunk
            self.next_chunk += 1
        return chunk

    def work(self, chunk: int | None = None) -> None:
        """Run ``chunk`` (if given), then take chunks until none are left."""
        if chunk is None:
            chunk = self.claim()
        while chunk < self.n_chunks:
            try:
                self.task(chunk)
            except BaseException as exc:  # re-raised in the calling thread by run_parallel
                with self.lock:
                    self.error = self.error or exc
            with self.lock:
                self.finished += 1
                if self.finished == self.n_chunks:
                    self.flags[_DONE] = self.seq
                    if self.sleeper is not None:
                        self.sleeper.set()
                    return
            chunk = self.claim()

    def wait(self) -> None:
        """Sleep until every chunk has run (after spinning has given up)."""
        with self.lock:
            if self.finished == self.n_chunks:
                return
            self.sleeper = threading.Event()
        self.sleeper.wait()


# How long an idle helper thread, and a caller waiting for the helpers, spin before they sleep: reads of
# a flag, each with its test, about 1 ns here (1M took 0.98 ms), so about a millisecond (see _Helpers).
SPIN_READS = 1_000_000
# How long a helper that has seen a job goes on reading before it takes the GIL: untested reads, about 0.3 ns
# each (20000 took 5.9 us), so about 6 us. The caller has to get from publishing the job into its first
# chunk's kernel (claiming it, the chunk's Python wrapper, Numba unboxing a kernel's 20-odd arguments) before
# the helper takes the GIL, or the helper sleeps until the GIL is released again.
HELPER_START_DELAY_READS = 20_000
# The most a caller whose job is done waits for the helpers to be back in their spin: about 0.1 ms; normally a
# few microseconds, the helper's few lines of Python after its last chunk.
RETURN_WAIT_READS = 100_000
# Slots of _Helpers.flags, 64 bytes (8 int64) apart so that each has a cache line of its own:
_JOB = 0  # the newest job's number, of either kind: the caller bumps it to publish a job
_DONE = 8  # the number of the newest Python job whose chunks have all run
_PYTHON_JOB = 16  # the number of the newest Python job (a helper that sees it change goes back to Python)
_CLAIM = 24  # a compiled job's chunks: count << 32 | the next one to hand out (minicnn.kernels.jobs)
_FINISHED = 32  # how many of a compiled job's chunks have run
_SEATS = 40  # how many more helpers may join the compiled job (each takes one seat)
_FLAG_SLOTS = 48


class _Helpers:
    """minicnn's helper threads. They spin (GIL released) for a while after each job, then sleep.

    Handing a job to a sleeping thread and sleeping until it is done cost
    two wake-ups of about 16 us each on these virtual machines (a
    ``threading.Event`` round trip: 32 us median, 90 us at the 90th
    percentile). With the ``ThreadPoolExecutor`` this replaced, two chunks
    of 82 us took 227 us on 2 threads, more than the 170 us of running both
    on one; here 149 us (two of 25 us: 96 -> 39 us; of 9 us: 44 -> 19 us;
    of 246 us: 427 -> 349 us; medians of 300, the two pools one after the
    other; chunks of 1 us, which no kernel hands out, got slower: 24 -> 45
    us). Now the caller publishes a job by bumping ``flags[_JOB]``; a
    helper that is spinning (:func:`minicnn.kernels.spin.wait_while_equal`,
    inside Numba with the GIL released) sees it at once and takes chunks;
    the caller takes chunks too, then spins on ``flags[_DONE]`` until the
    last chunk is finished.

    The GIL is the hazard: a thread that finds it held sleeps until it is
    released, the very wake-up this pool avoids. So each side waits, GIL
    released, until the other no longer needs it. A helper that has seen a
    job spins ``HELPER_START_DELAY_READS`` more reads, so the caller is in
    its first chunk's kernel first (measured: a helper started its chunk 27
    us after the job was published without the delay, 8 us with it). A
    caller whose job is done waits until every helper is back in its spin
    (each helper's ``out_of_spin`` flag) before it goes on to its next
    Python work. Before it did, a helper still running its last few lines
    of Python slept on the GIL until the caller's next kernel released it:
    measured on 2 threads over 30 runs, from a job's publication to the
    helper running Python for it took 39-58 us (median; age model, 330
    jobs, two runs) and 53 us (SCRFD at 640, 870 jobs); with the wait,
    4.8-5.6 us and 8.6 us. A helper that has seen no job for
    ``SPIN_READS`` reads sleeps on a condition (the old cost, once) so an
    idle process does not burn a core.
    """

    def __init__(self):
        import numpy as np

        self.flags = np.zeros(_FLAG_SLOTS, dtype=np.int64)
        self.jobs = None  # the module minicnn.kernels.jobs, imported with the first helper (it imports Numba)
        self.mail = None  # a compiled job's mailbox (minicnn.kernels.jobs), made with the first helper
        self.job: _SharedWork | None = None
        self.wake = threading.Condition()
        self.sleeping = 0
        self.busy = threading.Lock()  # one job at a time; another caller runs its job itself
        self.threads: list[threading.Thread] = []
        self.out_of_spin: list = []  # per helper: [0] is 1 while it is away from its spin (see spin.wait_while_equal)

    def ensure(self, n: int) -> None:
        """Have at least ``n`` helper threads."""
        if self.mail is not None and len(self.threads) >= n:
            return
        import numpy as np

        if self.mail is None:
            from .kernels import jobs

            self.jobs = jobs
            self.mail = np.zeros(jobs.MAILBOX_SLOTS, dtype=np.int64)
        while len(self.threads) < n:
            out_of_spin = np.zeros(8, dtype=np.int64)  # 64 bytes: a cache line of its own
            thread = threading.Thread(target=self._loop, args=(out_of_spin,), name=f"minicnn-{len(self.threads)}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
            self.out_of_spin.append(out_of_spin)

    def _loop(self, out_of_spin) -> None:
        from .kernels.jobs import help_until_python_job

        seen = python_seen = 0
        while True:
            # Compiled jobs are run inside help_until_python_job, without the GIL. It returns for a Python job,
            # having gone on spinning a little after seeing it: the caller reaches its own first chunk, where it
            # releases the GIL, before this thread takes the GIL back. A thread that finds the GIL held sleeps
            # until it is released: a wake-up, 16 us or more (the delay this pool exists to avoid).
            seen, python_job = help_until_python_job(self.flags, self.mail, seen, python_seen, SPIN_READS,
                                                     HELPER_START_DELAY_READS, out_of_spin)
            if not python_job:  # no job for SPIN_READS reads: sleep until one is published
                with self.wake:
                    self.sleeping += 1
                    while self.flags[_JOB] == seen:
                        self.wake.wait()
                    self.sleeping -= 1
                continue  # back to the spin, which sees the new job at once
            python_seen = int(self.flags[_PYTHON_JOB])
            self.job.join()  # the newest Python job (a finished one has no chunks left)

    def run_compiled(self, descriptor, x, y, residual, has_residual: bool, helpers: int) -> None:
        """Run a compiled job (``minicnn.kernels.jobs``) with up to ``helpers`` helper threads.

        The spinning helpers join it without the GIL (``jobs.run_shared``);
        a sleeping one is woken afterwards, ready for the next job.
        """
        jobs = self.jobs
        if not self.busy.acquire(blocking=False):  # another Python thread's job is running: do this one here
            jobs.run_alone(descriptor, x, y, residual, has_residual)
            return
        try:
            if not jobs.run_shared(self.flags, self.mail, helpers, descriptor, x, y, residual, has_residual,
                                   RETURN_WAIT_READS):
                n_chunks = int(descriptor[jobs.N_CHUNKS])
                while not jobs.wait_until_at_least(self.flags, _FINISHED, n_chunks, SPIN_READS, 0):
                    time.sleep(0)  # a helper still runs a chunk, but the OS has not scheduled it for a while
            if self.sleeping:
                with self.wake:
                    self.wake.notify_all()
        finally:
            self.busy.release()

    def run_program(self, table, descriptors, arena, outside: list, helpers: int) -> None:
        """Run a program of compiled jobs (``minicnn.chains``) with up to ``helpers`` helper threads per job.

        With no helper, or while another Python thread's job is running,
        every job of it runs on this thread.
        """
        shared = helpers > 0 and self.busy.acquire(blocking=False)
        try:
            if shared and self.sleeping:
                # The jobs of a program follow each other inside one Numba call, which cannot wake a sleeping
                # helper: wake them now with a job number of their own. A helper that sees it finds no chunk to
                # claim (every chunk of the last job is taken) and spins for the program's jobs.
                with self.wake:
                    self.flags[_JOB] += 1
                    self.wake.notify_all()
            self.jobs.run_program(table, descriptors, arena, *outside, self.flags, self.mail,
                                  helpers if shared else 0, RETURN_WAIT_READS)
        finally:
            if shared:
                self.busy.release()

    def run(self, task: Callable[[int], None], n_chunks: int, helpers: int) -> None:
        from .kernels.spin import wait_until_at_least, wait_while_equal

        if not self.busy.acquire(blocking=False):  # another Python thread's job is running: do this one here
            for chunk in range(n_chunks):
                task(chunk)
            return
        try:
            seq = int(self.flags[_JOB]) + 1
            work = self.job = _SharedWork(task, n_chunks, self.flags, seq, helpers)
            first = work.claim()
            self.flags[_PYTHON_JOB] = seq
            self.flags[_JOB] = seq
            if self.sleeping:
                with self.wake:
                    self.wake.notify_all()
            work.work(first)
            if not wait_until_at_least(self.flags, _DONE, seq, SPIN_READS, 0):
                work.wait()
            # Let the helpers get back into their spin before this thread takes the GIL for its next Python work:
            # a helper that needs the GIL while the caller runs Python sleeps until the caller's next kernel, and
            # then starts the next job late (measured: see the class docstring).
            for out_of_spin in self.out_of_spin:
                wait_while_equal(out_of_spin, 0, 1, RETURN_WAIT_READS, 0)
        finally:
            self.busy.release()
        if work.error is not None:
            raise work.error


_helpers: _Helpers | None = None


def _pool(helpers: int) -> _Helpers:
    """The process's helper pool, made on first use, with at least ``helpers`` threads and the jobs module."""
    global _helpers
    if _helpers is None:
        _helpers = _Helpers()
    _helpers.ensure(helpers)
    return _helpers


def run_parallel(task: Callable[[int], None], n_chunks: int) -> None:
    """Run ``task(0) ... task(n_chunks - 1)`` on up to ``num_threads()`` threads; return when all are done.

    The calling thread works too, and chunks are handed out one at a time to
    whichever thread is free (dynamic scheduling). That matters on a shared
    machine: if a helper thread is not scheduled for a while, the others
    take its chunks instead of waiting for it, so give a job a few chunks
    per thread. The tasks must release the GIL to overlap (BLAS calls and
    ``nogil`` Numba kernels do). An exception in any chunk is re-raised here.
    See :class:`_Helpers` for how a job reaches the helpers.
    """
    helpers = min(num_threads(), n_chunks) - 1
    if helpers <= 0:
        for chunk in range(n_chunks):
            task(chunk)
        return
    _pool(helpers).run(task, n_chunks, helpers)


def run_compiled(descriptor, x, y, residual, has_residual: bool, n_chunks: int) -> None:
    """Run a compiled job on up to ``num_threads()`` threads; return when every chunk has run.

    ``descriptor`` describes a blocked layer's kernel, constant arrays and
    ``n_chunks`` chunks (``minicnn.kernels.jobs.Job``); ``x, y, residual``
    are the call's own arrays (``residual`` read only if ``has_residual``).
    The helper threads run its chunks without taking the GIL (see
    ``minicnn.kernels.jobs``), so a job of a few tens of microseconds is
    worth sharing, where :func:`run_parallel` costs about that much.
    """
    helpers = min(num_threads(), n_chunks) - 1
    pool = _pool(max(helpers, 0))
    if helpers <= 0:
        pool.jobs.run_alone(descriptor, x, y, residual, has_residual)
        return
    pool.run_compiled(descriptor, x, y, residual, has_residual, helpers)


def run_program(table, descriptors, arena, outside: list) -> None:
    """Run a program of compiled jobs (``minicnn.kernels.jobs.run_program``) on up to ``num_threads()`` threads.

    ``outside`` holds the program's four outside arrays (float32, flat).
    Each job of several chunks is shared with the helper threads as
    :func:`run_compiled` would share it, without returning to Python
    between jobs.
    """
    helpers = num_threads() - 1
    _pool(helpers).run_program(table, descriptors, arena, outside, helpers)


def run_ranges(task: Callable[[int, int], None], total: int, parallel: bool) -> None:
    """Call ``task(lo, hi)`` on contiguous ranges that cover ``range(total)``.

    With ``parallel`` false, once, on the calling thread: the caller decides
    that the work is too small to be worth a hand-off (a few to tens of
    microseconds per job on 2 cores). Otherwise two ranges per thread, handed out by
    :func:`run_parallel`; ``task`` must release the GIL (a ``nogil`` Numba
    kernel) for the ranges to overlap.
    """
    pieces = min(total, 2 * num_threads()) if parallel else 1
    if pieces <= 1:
        task(0, total)
        return
    bounds = [total * k // pieces for k in range(pieces + 1)]
    run_parallel(lambda k: task(bounds[k], bounds[k + 1]), pieces)


def numba_threading_layer() -> str:
    """The threading layer Numba actually uses (only known after a parallel kernel has run)."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return os.environ.get("NUMBA_THREADING_LAYER", "default")
