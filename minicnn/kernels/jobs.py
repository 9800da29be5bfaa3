"""Compiled jobs: the blocked kernels split between threads without the GIL.

A layer that is worth two cores is cut into chunks (bands of rows, ranges
of pixels, groups of output blocks), and each thread runs chunks until
none are left. ``minicnn.threads.run_parallel`` does that for any Python
callable, but each chunk is a Python call: a helper thread needs the GIL
to make it, and taking the GIL from another thread means a wake-up of tens
of microseconds on these machines. Measured before this module existed: an
empty 4-chunk job cost 11-14 us, and inside the age model at 2 threads a
layer's 4 chunks summed 200-280 us where one thread took 120-150 us, so the
second core paid off only on layers of a few hundred microseconds.

Here the blocked kernels (1x1, depthwise, dense convolution, pooling and
zero padding, of planes or of channels, in NCHW16c) run as *compiled
jobs*. A layer's job is a kernel code (``POINTWISE`` ...), its constant
arrays (weights, bias, slope, a table of taps), two small arrays of scalar
arguments and a table of chunks, all written once, when the layer is
prepared, into a *descriptor*: an int64 array of the arrays' addresses and
sizes (:class:`Job`). A call then
passes only the descriptor, the input, the output and the residual: four
arrays for Numba to check instead of eleven, 0.6 us instead of 1.4 us (a
kernel called with its twenty-odd arguments took 2.2 us, a tenth of a
small model's layer). The calling thread, inside one Numba call with the
GIL released (:func:`run_shared`), copies the descriptor and the three
arrays' addresses into a *mailbox*, publishes the job by bumping a
sequence number, and runs chunks. minicnn's helper threads wait for work in
:func:`help_until_python_job`, a compiled loop that never returns to Python
for these jobs: it sees the new number, claims chunks, rebuilds the arrays
from their addresses (``numba.carray``), and runs them through the same
:func:`run_chunk` as the caller. Chunks are claimed one at a time with an
atomic compare-and-swap on one word (``n_chunks << 32 | next chunk``), and
counted when done with an atomic add; the caller returns when every chunk
is counted.

Why the mailbox is safe to read: the caller writes it before it publishes
the job (release stores), and rewrites it only for its next job, which it
starts only after every chunk of this one is counted. A helper reads the
mailbox only after it has claimed a chunk, so the job it reads is live
until that chunk is done. A helper that claims nothing reads nothing.

The same :func:`run_chunk` runs a job on one thread (:func:`run_alone`),
so the single-threaded path and the shared one call the kernels with the
same arguments, and the kernels' results do not depend on the split (each
chunk writes its own part of the output; nothing is summed across chunks).
"""

from __future__ import annotations

import sys

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from ..threads import _CLAIM, _FINISHED, _JOB, _PYTHON_JOB, _SEATS
# cpu_blocked imports this module for its runners: its kernels are looked up when run_chunk compiles.
from . import cache_guard, cpu_blocked, simd, spin
from .spin import _atomic_add, _atomic_load, _atomic_store, _compare_and_swap, wait_until_at_least

# What a job runs: the kernel, and how its scalar arguments sit in ``ints`` and ``floats`` (see run_chunk).
POINTWISE, DEPTHWISE, DENSE, POOL, PAD, PAD_CHANNELS = 1, 2, 3, 4, 5, 6
KINDS = {POINTWISE: "pointwise_nchw16c", DEPTHWISE: "depthwise_nchw16c", DENSE: "dense_nchw16c",
         POOL: "pool_nchw16c", PAD: "pad_planes", PAD_CHANNELS: "pad_channel_planes"}

# A descriptor: slots of an int64 array; each array is its address, then its size.
_KIND, N_CHUNKS = 0, 1
_W, _BIAS, _SLOPE = 2, 4, 6  # float32
_TAPS, _INTS, _FLOATS, _CHUNKS = 8, 10, 12, 14  # taps and ints int64, floats float64, chunks int64 (n x 4)
DESCRIPTOR_SLOTS = 16
# The mailbox: a descriptor, then the call's own arrays (float32) and whether the residual is real.
_X, _Y, _RESIDUAL, _HAS_RESIDUAL = 16, 18, 20, 22
MAILBOX_SLOTS = 23

# The table of taps of the kernels that take none (every descriptor points to one).
NO_TAPS = np.zeros(1, dtype=np.int64)


@intrinsic
def _pointer(typingctx, address, dtype):
    """The int64 ``address`` as a pointer to ``dtype`` items (for ``numba.carray``)."""
    item = dtype.dtype

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(item)))

    return types.CPointer(item)(address, dtype), codegen


@njit(nogil=True, cache=True)
def _float32s(mail, slot):
    """The float32 array whose address and size are in ``mail[slot]``, ``mail[slot + 1]``."""
    return carray(_pointer(mail[slot], np.float32), mail[slot + 1])


@njit(nogil=True, cache=True)
def _int64s(mail, slot):
    return carray(_pointer(mail[slot], np.int64), mail[slot + 1])


@njit(nogil=True, cache=True)
def _float64s(mail, slot):
    return carray(_pointer(mail[slot], np.float64), mail[slot + 1])


@njit(nogil=True, cache=True)
def _post(mail, slot, array):
    mail[slot] = array.ctypes.data
    mail[slot + 1] = array.size


@njit(nogil=True, cache=True)
def run_chunk(kind, x, wb, bias, slope, y, residual, taps, ints, floats, has_residual, c0, c1, c2, c3):
    """One chunk ``(c0, c1, c2, c3)`` of a job: the kernel ``kind`` names, with its scalars unpacked.

    ``floats`` is ``(alpha, lo, hi)`` of the fused epilogue (unused by pooling);
    ``ints`` is, after the geometry each kernel's docstring describes, the
    epilogue's activation code:

    * ``POINTWISE``: ``pixels, code``; chunk ``(ob0, ob1, p0, p1)``
    * ``DEPTHWISE``: ``h, w, oh, ow, kh, kw, sh, sw, pt, pl, code``; chunk ``(q0, q1, r0, r1)``
    * ``DENSE``: ``in_lanes, wp, oh, ow, sh, sw, code`` (and the ``taps`` table); chunk ``(ob0, ob1, p0, p1)``
    * ``POOL``: ``h, w, oh, ow, kh, kw, sh, sw, pt, pl, average, count_include_pad, h_end, w_end``;
      chunk ``(q0, q1, r0, r1)``
    * ``PAD``: ``h, w, hp, wp, pt, pl, lanes`` (no epilogue); chunk ``(q0, q1, r0, r1)``
    * ``PAD_CHANNELS``: ``h, w, cb_in, cb_out, channels`` (no epilogue); chunk ``(q0, q1, r0, r1)``
    """
    alpha, lo, hi = np.float32(floats[0]), np.float32(floats[1]), np.float32(floats[2])
    if kind == POINTWISE:
        cpu_blocked.pointwise_nchw16c(x, wb, bias, slope, y, ints[0], ints[1], alpha, lo, hi, residual,
                                      has_residual, c0, c1, c2, c3)
    elif kind == DEPTHWISE:
        cpu_blocked.depthwise_nchw16c(x, wb, bias, slope, y, ints[0], ints[1], ints[2], ints[3], ints[4], ints[5],
                                      ints[6], ints[7], ints[8], ints[9], ints[10], alpha, lo, hi, residual,
                                      has_residual, c0, c1, c2, c3)
    elif kind == DENSE:
        cpu_blocked.dense_nchw16c(x, wb, bias, slope, y, taps, ints[0], ints[1], ints[2], ints[3], ints[4], ints[5],
                                  ints[6], alpha, lo, hi, residual, has_residual, c0, c1, c2, c3)
    elif kind == POOL:
        cpu_blocked.pool_nchw16c(x, y, ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], ints[7],
                                 ints[8], ints[9], ints[10] != 0, ints[11] != 0, ints[12], ints[13], c0, c1, c2, c3)
    elif kind == PAD:
        cpu_blocked.pad_planes(x, y, ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], c0, c1, c2, c3)
    elif kind == PAD_CHANNELS:
        cpu_blocked.pad_channel_planes(x, y, ints[0], ints[1], ints[2], ints[3], ints[4], c0, c1, c2, c3)


class _Holding(bytearray):
    """Bytes that also hold a reference (``.job``): a descriptor's memory, keeping what it points to alive."""


class Job:
    """One layer's compiled job: its kernel and constant arrays, described for Numba by address.

    ``kind`` is one of ``KINDS`` (``POINTWISE`` ...); ``ints`` and
    ``floats`` as :func:`run_chunk` reads them; the arrays must be 1-D of
    the dtypes it reads. A read-only or non-contiguous one is copied (the
    helpers see plain writable arrays, and a read-only one here would make
    Numba compile the kernels a second time). The object keeps every array
    a descriptor points to alive, so a descriptor is valid as long as its
    job is.
    """

    def __init__(self, kind: int, wb: np.ndarray, bias: np.ndarray, slope: np.ndarray, taps: np.ndarray,
                 ints: np.ndarray, floats: np.ndarray):
        if kind not in KINDS:
            raise ValueError(f"jobs.Job: unknown kernel {kind}; expected one of {sorted(KINDS)}")
        self.kind = kind
        self.arrays = []
        for slot, array, dtype in [(_W, wb, np.float32), (_BIAS, bias, np.float32), (_SLOPE, slope, np.float32),
                                   (_TAPS, taps, np.int64), (_INTS, ints, np.int64), (_FLOATS, floats, np.float64)]:
            if array.dtype != dtype or array.ndim != 1:
                raise ValueError(f"jobs.Job: {KINDS[kind]}'s array for slot {slot} must be a 1-D "
                                 f"{np.dtype(dtype).name} array, got {array.dtype}{list(array.shape)}")
            self.arrays.append((slot, np.require(array, requirements=["C", "W"]), dtype))
        self.tables: list[np.ndarray] = []  # the chunk tables of the descriptors made so far (kept alive)

    def describe(self, chunks: np.ndarray) -> np.ndarray:
        """A descriptor of this job cut into ``chunks`` (an int64 table, one ``(a, b, c, d)`` row per chunk).

        The descriptor's memory keeps the job alive (its ``base`` holds it):
        a descriptor used after its job was dropped would point Numba at
        freed arrays.
        """
        chunks = np.ascontiguousarray(chunks, dtype=np.int64).reshape(-1, 4)
        self.tables.append(chunks)
        memory = _Holding(DESCRIPTOR_SLOTS * 8)
        memory.job = self
        descriptor = np.frombuffer(memory, dtype=np.int64)
        descriptor[_KIND], descriptor[N_CHUNKS] = self.kind, len(chunks)
        for slot, array in [(slot, array) for slot, array, _ in self.arrays] + [(_CHUNKS, chunks)]:
            descriptor[slot], descriptor[slot + 1] = array.ctypes.data, array.size
        return descriptor


@njit(nogil=True, cache=True)
def _run_numbered(descriptor, x, y, residual, has_residual, chunk):
    """Chunk number ``chunk`` of the job ``descriptor`` describes, on ``x, y, residual``."""
    chunks = _int64s(descriptor, _CHUNKS)
    at = 4 * chunk
    run_chunk(descriptor[_KIND], x, _float32s(descriptor, _W), _float32s(descriptor, _BIAS),
              _float32s(descriptor, _SLOPE), y, residual, _int64s(descriptor, _TAPS), _int64s(descriptor, _INTS),
              _float64s(descriptor, _FLOATS), has_residual, chunks[at], chunks[at + 1], chunks[at + 2],
              chunks[at + 3])


@njit(nogil=True, cache=True)
def run_alone(descriptor, x, y, residual, has_residual):
    """Every chunk of a job, in order, on the calling thread (``residual`` is read only if ``has_residual``)."""
    for chunk in range(descriptor[N_CHUNKS]):
        _run_numbered(descriptor, x, y, residual, has_residual, chunk)


@njit(nogil=True, cache=True)
def _claim(flags):
    """The next chunk of the published job, claimed for this thread; -1 if every chunk is taken."""
    while True:
        word = _atomic_load(flags, _CLAIM)
        if (word & 0xFFFFFFFF) >= (word >> 32):
            return -1
        if _compare_and_swap(flags, _CLAIM, word, word + 1):
            return word & 0xFFFFFFFF


@njit(nogil=True, cache=True)
def _help(flags, mail):
    """Run chunks of the published job until none are left (a helper's side: the arguments come from ``mail``).

    First it takes one of the job's seats: a job is shared by at most as
    many helpers as the thread limit allows (``threads.limit``).
    """
    if _atomic_add(flags, _SEATS, -1) <= 0:
        return
    while True:
        chunk = _claim(flags)
        if chunk < 0:
            return
        # The job stays published until this chunk is counted, so the mailbox holds it (module docstring).
        _run_numbered(mail, _float32s(mail, _X), _float32s(mail, _Y), _float32s(mail, _RESIDUAL),
                      mail[_HAS_RESIDUAL] != 0, chunk)
        _atomic_add(flags, _FINISHED, 1)


@njit(nogil=True, cache=True)
def run_shared(flags, mail, seats, descriptor, x, y, residual, has_residual, wait_reads):
    """Publish a job to at most ``seats`` helper threads and run chunks of it here too; True once every chunk has run.

    False if the helpers still had chunks running after ``wait_reads``
    reads of the counter (a helper the OS has not scheduled): the caller
    must then wait for ``flags[_FINISHED]`` to reach the number of chunks
    before it touches the output or posts another job.
    """
    n = descriptor[N_CHUNKS]
    mail[:DESCRIPTOR_SLOTS] = descriptor
    _post(mail, _X, x)
    _post(mail, _Y, y)
    _post(mail, _RESIDUAL, residual)
    mail[_HAS_RESIDUAL] = has_residual
    _atomic_store(flags, _FINISHED, 0)
    _atomic_store(flags, _SEATS, seats)
    _atomic_store(flags, _CLAIM, n << 32)  # release: the mailbox is written before any chunk can be claimed
    _atomic_store(flags, _JOB, _atomic_load(flags, _JOB) + 1)
    while True:
        chunk = _claim(flags)
        if chunk < 0:
            break
        _run_numbered(descriptor, x, y, residual, has_residual, chunk)
        _atomic_add(flags, _FINISHED, 1)
    return wait_until_at_least(flags, _FINISHED, n, wait_reads)


# A program (``minicnn.chains``): one row per job, these columns, and one descriptor per row. Each tensor is
# ``(slot, offset, size)``: a slice of the arena (slot 0) or of one of the four outside arrays (slots 1-4),
# ``size`` values per kernel call; ``CALLS`` calls, one after another along the tensors.
CALLS, X_SLOT, X_OFFSET, X_SIZE, Y_SLOT, Y_OFFSET, Y_SIZE, R_SLOT, R_OFFSET, R_SIZE = range(10)
PROGRAM_COLUMNS = 10
ARENA, OUTSIDE_SLOTS = 0, 4
NO_RESIDUAL = -1  # R_SLOT of a job without a residual


@njit(nogil=True, cache=True)
def _slot(slot, arena, e0, e1, e2, e3):
    if slot == 1:
        return e0
    if slot == 2:
        return e1
    if slot == 3:
        return e2
    if slot == 4:
        return e3
    return arena


@njit(nogil=True, cache=True)
def run_program(table, descriptors, arena, e0, e1, e2, e3, flags, mail, seats, wait_reads):
    """Every job of a program in order, in one call: what :func:`run_alone` or :func:`run_shared` does per job.

    ``table`` (int64, one row of ``PROGRAM_COLUMNS`` per job) says where
    each job's input, output and residual are; ``descriptors`` holds the
    jobs' descriptors, one row each. With ``seats`` 0 every job runs on
    this thread; otherwise a job of several chunks is shared with up to
    ``seats`` spinning helpers, and the next starts only once every chunk
    of it is counted (it may read this one's output).
    """
    for step in range(table.shape[0]):
        row = table[step]
        descriptor = descriptors[step]
        n = descriptor[N_CHUNKS]
        x = _slot(row[X_SLOT], arena, e0, e1, e2, e3)
        y = _slot(row[Y_SLOT], arena, e0, e1, e2, e3)
        has_residual = row[R_SLOT] != NO_RESIDUAL
        residual = _slot(row[R_SLOT], arena, e0, e1, e2, e3) if has_residual else y
        for call in range(row[CALLS]):
            x0 = row[X_OFFSET] + call * row[X_SIZE]
            y0 = row[Y_OFFSET] + call * row[Y_SIZE]
            x_i = x[x0:x0 + row[X_SIZE]]
            y_i = y[y0:y0 + row[Y_SIZE]]
            if has_residual:
                r0 = row[R_OFFSET] + call * row[R_SIZE]
                r_i = residual[r0:r0 + row[R_SIZE]]
            else:
                r_i = y_i  # never read
            if seats == 0 or n == 1:
                run_alone(descriptor, x_i, y_i, r_i, has_residual)
            elif not run_shared(flags, mail, seats, descriptor, x_i, y_i, r_i, has_residual, wait_reads):
                while not wait_until_at_least(flags, _FINISHED, n, wait_reads):
                    pass  # a helper still runs a chunk; the next job may read its output


@njit(nogil=True, cache=True)
def help_until_python_job(flags, mail, seen, python_seen, idle_reads, start_delay_reads, out_of_spin):
    """A helper thread's wait for work: runs compiled jobs itself, returns for anything else.

    Spins (GIL released) on ``flags[_JOB]``; each new job that is a
    compiled one it helps with (:func:`_help`) and goes on waiting. Returns
    ``(job, True)`` when a job for Python has been published
    (``flags[_PYTHON_JOB]`` is no longer ``python_seen``), after
    ``start_delay_reads`` more reads (see ``minicnn.threads``), or
    ``(job, False)`` after ``idle_reads`` reads with no new job (the helper
    then sleeps); ``job`` is the number of the newest job seen.
    ``out_of_spin[0]`` is 0 while this loop runs, 1 once it returns for a
    Python job (whose caller waits for it to be 0 again: ``threads._Helpers``).
    """
    _atomic_store(out_of_spin, 0, 0)
    idle = 0
    while idle < idle_reads:
        job = _atomic_load(flags, _JOB)
        if job == seen:
            idle += 1
            continue
        seen = job
        idle = 0
        if _atomic_load(flags, _PYTHON_JOB) != python_seen:
            _atomic_store(out_of_spin, 0, 1)
            for _ in range(start_delay_reads):
                _atomic_load(flags, _JOB)
            return job, True
        _help(flags, mail)
    # out_of_spin stays 0: a thread about to sleep needs the GIL only for a moment, and a caller must not wait
    # for a sleeping helper to come back (threads._Helpers.run waits while it is 1).
    return seen, False


# These functions carry the kernels of cpu_blocked (and its simd helpers) and spin inside their compiled code.
cache_guard.forget_if_changed(sys.modules[__name__], [cpu_blocked, simd, spin])
