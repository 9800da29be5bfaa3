"""Spin-waiting without the GIL: how ``minicnn.threads`` hands work to its threads in microseconds.

Waking a thread that sleeps on a lock or an event costs about 16
microseconds on these (virtual) machines: a ``threading.Event`` round trip
between two threads took 32 us median, 90 us at the 90th percentile. A
layer of a small network takes 50-500 us, so a hand-off that sleeps
eats most of what a second core could save. A thread that *spins*
(keeps reading a flag) sees a change within a fraction of a microsecond,
but Python cannot spin without holding the GIL, which would stop the
very thread it waits for. These loops spin inside Numba with the GIL
released: one thread publishes a number into a small int64 array, the
other sees it and returns to Python.

The flag must be read from memory on every pass: a plain ``a[i]`` inside
a loop that does not write it may be read once and kept in a register
(LLVM may hoist it), so :func:`_atomic_load` reads it as an atomic
acquire load, which LLVM must repeat and which orders the reads after it.
"""

from __future__ import annotations

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _atomic_load(typingctx, array, index):
    """``array[index]``, read from memory every time (an acquire load)."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [args[1]])
        return builder.load_atomic(pointer, "acquire", array_type.dtype.bitwidth // 8)

    return array.dtype(array, index), codegen


@intrinsic
def _atomic_store(typingctx, array, index, value):
    """``array[index] = value``, written to memory at once and after every earlier write (a release store)."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [args[1]])
        item = context.cast(builder, args[2], signature.args[2], array_type.dtype)
        builder.store_atomic(item, pointer, "release", array_type.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(array, index, value), codegen


@njit(nogil=True, cache=True)
def wait_for_job(flags, index, value, busy, max_reads, then_reads):
    """A helper thread's :func:`wait_while_equal` that also says whether it is out of its spin.

    ``busy[0]`` is 0 while it spins (set on entry, with the GIL already
    released) and 1 from the moment it has seen ``flags[index]`` change,
    until it calls this again. A caller that waits for ``busy[0] == 0``
    before it takes the GIL knows the helper does not need the GIL any
    more: it is spinning again, not about to sleep on a GIL the caller holds.
    """
    _atomic_store(busy, 0, 0)
    for _ in range(max_reads):
        if _atomic_load(flags, index) != value:
            _atomic_store(busy, 0, 1)
            for _ in range(then_reads):
                _atomic_load(flags, index)
            return True
    return False


@njit(nogil=True, cache=True)
def wait_while_equal(flags, index, value, max_reads, then_reads=0):
    """Spin until ``flags[index] != value``; True if that happened within ``max_reads`` reads.

    After the change it goes on reading for ``then_reads`` more reads before
    it returns (and the caller takes the GIL back): a delay spent here, GIL
    released, rather than asleep waiting for a GIL that another thread holds.
    """
    for _ in range(max_reads):
        if _atomic_load(flags, index) != value:
            for _ in range(then_reads):
                _atomic_load(flags, index)
            return True
    return False


@njit(nogil=True, cache=True)
def wait_until_at_least(flags, index, value, max_reads, then_reads=0):
    """Spin until ``flags[index] >= value``; True if that happened within ``max_reads`` reads.

    ``then_reads``: as in :func:`wait_while_equal`.
    """
    for _ in range(max_reads):
        if _atomic_load(flags, index) >= value:
            for _ in range(then_reads):
                _atomic_load(flags, index)
            return True
    return False
