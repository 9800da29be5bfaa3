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


def _item_pointer(context, builder, signature, args):
    """The LLVM pointer to ``array[index]`` (an intrinsic's first two arguments), and the array's item type."""
    array_type = signature.args[0]
    view = context.make_array(array_type)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, array_type, view, [args[1]]), array_type.dtype


@intrinsic
def _atomic_load(typingctx, array, index):
    """``array[index]``, read from memory every time (an acquire load)."""
    def codegen(context, builder, signature, args):
        pointer, dtype = _item_pointer(context, builder, signature, args)
        return builder.load_atomic(pointer, "acquire", dtype.bitwidth // 8)

    return array.dtype(array, index), codegen


@intrinsic
def _atomic_store(typingctx, array, index, value):
    """``array[index] = value``, written to memory at once and after every earlier write (a release store)."""
    def codegen(context, builder, signature, args):
        pointer, dtype = _item_pointer(context, builder, signature, args)
        item = context.cast(builder, args[2], signature.args[2], dtype)
        builder.store_atomic(item, pointer, "release", dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(array, index, value), codegen


@intrinsic
def _atomic_add(typingctx, array, index, value):
    """``array[index] += value`` as one indivisible step (no other thread's update is lost); returns the old value."""
    def codegen(context, builder, signature, args):
        pointer, dtype = _item_pointer(context, builder, signature, args)
        return builder.atomic_rmw("add", pointer, context.cast(builder, args[2], signature.args[2], dtype), "seq_cst")

    return array.dtype(array, index, value), codegen


@intrinsic
def _compare_and_swap(typingctx, array, index, expected, new):
    """If ``array[index] == expected``, set it to ``new``, as one indivisible step; True if it did."""
    def codegen(context, builder, signature, args):
        pointer, dtype = _item_pointer(context, builder, signature, args)
        old = context.cast(builder, args[2], signature.args[2], dtype)
        item = context.cast(builder, args[3], signature.args[3], dtype)
        return builder.extract_value(builder.cmpxchg(pointer, old, item, "seq_cst", "seq_cst"), 1)

    return types.boolean(array, index, expected, new), codegen


@njit(nogil=True, cache=True)
def wait_while_equal(flags, index, value, max_reads, then_reads=0, busy=None):
    """Spin until ``flags[index] != value``; True if that happened within ``max_reads`` reads.

    After the change it goes on reading for ``then_reads`` more reads before
    it returns (and the caller takes the GIL back): a delay spent here, GIL
    released, rather than asleep waiting for a GIL that another thread holds.

    ``busy`` (a helper thread's flag, or None): ``busy[0]`` is set to 0 on
    entry, with the GIL already released, and to 1 the moment the change is
    seen, so it stays 1 until this thread spins here again. Whoever waits
    for ``busy[0] == 0`` before taking the GIL knows this thread no longer
    needs the GIL: it is spinning, not about to sleep on a GIL held elsewhere.
    """
    if busy is not None:
        _atomic_store(busy, 0, 0)
    for _ in range(max_reads):
        if _atomic_load(flags, index) != value:
            if busy is not None:
                _atomic_store(busy, 0, 1)
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
