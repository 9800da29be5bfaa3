"""Numba CPU kernels for 2-D max and average pooling (backend "numba").

The readable reference, which loops over output positions in Python, lives
in ``minicnn.ops.pool`` with the geometry (padding, ``ceil_mode``,
``auto_pad``) resolved there; these kernels receive the resolved numbers.
Both are checked against onnxruntime in ``tests/test_ops_pool.py``.

Each (image, channel) plane is independent, so the planes of a large
input are split between minicnn's threads (``threads.run_ranges``; an
earlier ``prange`` version paid about 90 microseconds per call for Numba's
thread launch, even on one thread: more than a small model's whole pool). Inside a plane, for every output pixel the
range of kernel taps that fall inside the image is computed once, so the
inner loops carry no bounds test: padding never enters a max, and for an
average it only counts in the divisor (``count_include_pad``).

Versions of ``max_pool2d``:

1. One loop nest per output pixel over its window's taps: scalar code,
   5.5 ms for YuNet's 2x2/2 pool of a 16x320x320 map, a quarter of YuNet's
   time.
2. Max over rows, then a strided max over columns: the vertical pass
   vectorised, the horizontal one still scalar: 2.0 ms on that map.
3. The horizontal pass as a max of ``k_w`` shifted rows at every column,
   vectorised too, then every ``s_w``-th kept (this file): 0.8-1.0 ms on
   that map, 3.6-6.5x faster than version 1 on 2x2/2 and padded 3x3/2
   pools (1 thread, interleaved runs; identical outputs).
4. 2x2 windows at stride 2 inside the image (YuNet's four pools) in one
   pass, each output the max of two neighbouring pairs: 0.13-0.19 ms on that
   map, 3.1-5.5x faster than version 3 on YuNet's shapes (this file).
5. Other windows: the horizontal pass computes only the output columns
   (one strided pass per tap, straight into the output row) instead of
   every start column and then every ``s_w``-th; the vertical pass starts
   from the first row instead of a fill. 1.25-1.6x on FER's 3x3/2 pools of
   30x30 and smaller planes, equal on larger ones.
6. Windows of 3 rows inside the image take the vertical pass in one loop
   (one store per column instead of three), and 3 taps at stride 2 (FER's
   and age_cydral's 3x3/2 pools) the horizontal pass as the max of
   neighbouring pairs and the even values, two loops that vectorise,
   instead of three strided passes that do not. Identical outputs (3000
   random windows, paddings and ceil modes with NaN, -inf and signed
   zeros, compared bit for bit with version 5); 3x3/2 pools 1.3-2.7x
   faster (16x60x60 49 -> 23 us, 128x8x8 18 -> 13 us, 64x160x160 788 ->
   296 us; 1 thread, best of 7 rounds, three runs); FER's four pools
   inside the model 0.15 -> 0.06 ms (this file).

Versions of ``average_pool2d``:

1. One loop nest per output pixel over its window's taps, the divisor
   counted per pixel: 128 and 72 microseconds for gender_cydral's two 2x2/2
   pools (32x32x32 and 64x16x16 inputs): a fifth of what its four convs take.
2. The max pool's two passes with sums (this file): a one-pass 2x2/2 case,
   otherwise a vertical sum of rows and one strided pass per tap, the
   divisor a row count times a column count computed once per call. 7 and
   6 microseconds on those pools; a padded 3x3/1 pool of 64x56x56 2.8-4.0 ms
   -> 0.52 ms, a padded 3x3/2 pool of 32x30x30 121-144 -> 43-46 us (1
   thread, interleaved runs). The sums are added in another order, so
   results differ from version 1 by float32 round-off.

:func:`plane_means` is GlobalAveragePool's kernel: one float32 sum per
(image, channel) plane.

Compiled for float32 (N, C, H, W) arrays only, cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np

from .. import threads  # (first: chooses Numba's threading layer before numba is imported)
from numba import njit  # noqa: E402

# Below this many input values a pool runs on the calling thread alone;
# above it, its (image, channel) planes are split between minicnn's threads
# (threads.run_ranges). 1 MiB of float32: a round number, not tuned.
MIN_PARALLEL_VALUES = 1 << 18
# ... except the one-pass 2x2 / stride-2 case, which runs on one thread below this many input values
# (4M): it streams through cache at about 8 values per nanosecond, and a second thread made it 1.3-2x
# slower on 64x80x80 to 16x320x320 inputs (1.6M values); on 16x448x640 (4.6M, YuNet at 896x1280)
# and 16x640x640, which no longer stay in cache, 2 threads are 1.8-1.9x faster (max and average,
# interleaved in one process).
MIN_PARALLEL_VALUES_2X2 = 1 << 22


def one_pass_2x2(k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, height, width, out_h, out_w):
    """Whether a pool is 2x2 at stride 2 with every window inside the image: the kernels' one-pass case."""
    return (k_h == k_w == s_h == s_w == 2 and d_h == d_w == 1 and pad_top == pad_left == 0
            and 2 * out_h <= height and 2 * out_w <= width)


# The same test inside the kernels (compiled into them; the plain function serves the Python side).
_one_pass_2x2 = njit(inline="always")(one_pass_2x2)


@njit(inline="always")
def _tap_range(start, k, d, size):
    """The taps ``t`` in [0, k) whose position ``start + t*d`` lies in [0, size)."""
    lo = 0
    if start < 0:
        lo = (-start + d - 1) // d
    hi = k
    last = size - 1 - start  # t*d <= last
    if last < 0:
        hi = 0
    elif (k - 1) * d > last:
        hi = last // d + 1
    return lo, max(lo, hi)


@njit(nogil=True, cache=True)
def _max_pool_planes(x, out, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, lo, hi):
    """``out[n, c, i, j]`` = max of ``x[n, c]`` over the window of (i, j), padding excluded; planes ``n*C + c`` in lo:hi.

    A 2-D max is a max of maxes, so each output row takes two passes:

    1. vertical: ``row_max[t]`` = the max of image column ``t`` over the
       window's rows (the rows inside the image), a loop over whole
       contiguous rows that LLVM vectorises;
    2. horizontal: output ``j`` = the max of ``row_max[j * s_w + v * d_w]``
       over the ``k_w`` taps ``v``, one strided pass over the output row
       per tap.

    ``row_max`` holds the image columns at offset ``pad_left`` and the
    lowest float32 at the padding and beyond the image (``ceil_mode``
    windows), so neither pass tests bounds. Taps compare with ``>``, as in
    a plain loop starting from the lowest float32: the result is the same
    whatever the order, NaNs never win, and a window over padding only
    gives the lowest float32. Inputs no model produces are handled
    differently by onnxruntime 1.31: a window of -inf values gives -inf
    there (here the lowest float32, except that onnxruntime too gives the
    lowest float32 where the window touches the left padding), and a NaN
    survives there where no later value of its window replaces it.
    """
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    lowest = np.float32(-3.4028234663852886e38)
    if _one_pass_2x2(k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, height, width, out_h, out_w):
        # 2x2, stride 2, windows inside the image (YuNet's pools): each output is the max of 2 neighbouring
        # pairs, one pass, vectorised (LLVM turns the pairs of neighbouring loads into shuffles).
        for plane in range(lo, hi):
            n = plane // channels
            c = plane % channels
            for i in range(out_h):
                top = x[n, c, 2 * i]
                bottom = x[n, c, 2 * i + 1]
                dst = out[n, c, i]
                for j in range(out_w):
                    best = lowest
                    for value in (top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]):
                        best = value if value > best else best
                    dst[j] = best
        return
    span = max((out_w - 1) * s_w + (k_w - 1) * d_w + 1, pad_left + width)
    # Allocated once for all planes: only ``inside`` is ever written, the padding around it stays lowest.
    # One more value than the windows reach: the 3-tap stride-2 pass reads pairs up to 2 * out_w + 1.
    row_max = np.full(span + 1, lowest, dtype=np.float32)
    inside = row_max[pad_left:pad_left + width]
    # 3 taps at stride 2 (FER's and age_cydral's 3x3/2 pools): see the horizontal pass.
    three_by_two = k_w == 3 and s_w == 2 and d_w == 1
    pairs = np.empty(out_w + 1, dtype=np.float32)
    evens = np.empty(out_w + 1, dtype=np.float32)
    for plane in range(lo, hi):
        n = plane // channels
        c = plane % channels
        src = x[n, c]
        for i in range(out_h):
            r0 = i * s_h - pad_top
            u_lo, u_hi = _tap_range(r0, k_h, d_h, height)
            # Vertical pass. Three rows (a 3-row window inside the image) in one loop, the taps in the
            # same order as the general loops below.
            if u_hi - u_lo == 3:
                top = src[r0 + u_lo * d_h]
                middle = src[r0 + (u_lo + 1) * d_h]
                bottom = src[r0 + (u_lo + 2) * d_h]
                for t in range(width):
                    best = lowest
                    for value in (top[t], middle[t], bottom[t]):
                        best = value if value > best else best
                    inside[t] = best
            elif u_hi > u_lo:
                # The first row inside the image starts the maxima, the others update them.
                row = src[r0 + u_lo * d_h]
                for t in range(width):
                    value = row[t]
                    inside[t] = value if value > lowest else lowest
                for u in range(u_lo + 1, u_hi):
                    row = src[r0 + u * d_h]
                    for t in range(width):
                        value = row[t]
                        inside[t] = value if value > inside[t] else inside[t]
            else:
                inside[:] = lowest
            # Horizontal pass, straight into the output row.
            dst = out[n, c, i]
            if three_by_two:
                # Output j covers row_max[2j], [2j+1], [2j+2]. Strided loads do not vectorise; pairs of
                # neighbouring loads do (as in the 2x2 case): first the max of each pair (2j, 2j+1) and
                # the even values, then output j = max(pairs[j], evens[j + 1]). Taps in the same order.
                for j in range(out_w + 1):
                    even = row_max[2 * j]
                    odd = row_max[2 * j + 1]
                    evens[j] = even
                    pairs[j] = odd if odd > even else even
                for j in range(out_w):
                    value = evens[j + 1]
                    dst[j] = value if value > pairs[j] else pairs[j]
                continue
            # Any other window: one strided pass per tap.
            for j in range(out_w):
                dst[j] = row_max[j * s_w]
            for v in range(1, k_w):
                offset = v * d_w
                for j in range(out_w):
                    value = row_max[j * s_w + offset]
                    dst[j] = value if value > dst[j] else dst[j]


@njit(nogil=True, cache=True)
def _average_pool_planes(x, out, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, pad_bottom, pad_right,
                         count_include_pad, lo, hi):
    """``out[n, c, i, j]`` = mean of ``x[n, c]`` over the window of output pixel (i, j); planes ``n*C + c`` in lo:hi.

    The divisor is the number of taps inside the image, or with
    ``count_include_pad`` the number inside the *padded* image (taps past
    the padding, which ``ceil_mode`` can create, never count). It is the
    product of a row count (per output row) and a column count (per output
    column, computed once per call); a window with no tap inside gives NaN,
    as 0 / 0.

    The sum takes the same two passes as the max pool: a vertical sum of
    whole rows into ``row_sum`` (zeros at the padding and past the image),
    then per tap one strided pass over the output row. 2x2 windows at
    stride 2 inside the image (the classifiers' pools) take one pass.
    """
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    zero = np.float32(0)
    if _one_pass_2x2(k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, height, width, out_h, out_w):
        quarter = np.float32(0.25)
        for plane in range(lo, hi):
            n = plane // channels
            c = plane % channels
            for i in range(out_h):
                top = x[n, c, 2 * i]
                bottom = x[n, c, 2 * i + 1]
                dst = out[n, c, i]
                for j in range(out_w):
                    dst[j] = ((top[2 * j] + bottom[2 * j]) + (top[2 * j + 1] + bottom[2 * j + 1])) * quarter
        return
    padded_w = width + pad_left + pad_right
    col_count = np.empty(out_w, dtype=np.float32)
    for j in range(out_w):
        c0 = j * s_w - pad_left
        if count_include_pad:
            v_lo, v_hi = _tap_range(c0 + pad_left, k_w, d_w, padded_w)
        else:
            v_lo, v_hi = _tap_range(c0, k_w, d_w, width)
        col_count[j] = v_hi - v_lo
    span = max((out_w - 1) * s_w + (k_w - 1) * d_w + 1, pad_left + width)
    # Allocated once for all planes: only ``inside`` is ever written, the padding around it stays zero.
    row_sum = np.zeros(span, dtype=np.float32)
    inside = row_sum[pad_left:pad_left + width]
    for plane in range(lo, hi):
        n = plane // channels
        c = plane % channels
        src = x[n, c]
        for i in range(out_h):
            r0 = i * s_h - pad_top
            u_lo, u_hi = _tap_range(r0, k_h, d_h, height)
            if count_include_pad:
                pu_lo, pu_hi = _tap_range(r0 + pad_top, k_h, d_h, height + pad_top + pad_bottom)
                row_count = np.float32(pu_hi - pu_lo)
            else:
                row_count = np.float32(u_hi - u_lo)
            # Vertical pass: the first row inside the image starts the sums, the others add to them.
            if u_hi > u_lo:
                row = src[r0 + u_lo * d_h]
                for t in range(width):
                    inside[t] = row[t]
                for u in range(u_lo + 1, u_hi):
                    row = src[r0 + u * d_h]
                    for t in range(width):
                        inside[t] += row[t]
            else:
                inside[:] = zero
            # Horizontal pass, straight into the output row: one strided pass per tap, then the divisor.
            dst = out[n, c, i]
            for j in range(out_w):
                dst[j] = row_sum[j * s_w]
            for v in range(1, k_w):
                offset = v * d_w
                for j in range(out_w):
                    dst[j] += row_sum[j * s_w + offset]
            for j in range(out_w):
                count = row_count * col_count[j]
                dst[j] = dst[j] / count if count > zero else np.float32(np.nan)


@njit(nogil=True, cache=True, fastmath=True)
def plane_means(x, out):
    """``out[p]`` = the mean of row ``p`` of ``x`` (planes, values): GlobalAveragePool on (N*C, H*W).

    A float32 sum per row. ``fastmath`` lets LLVM reorder the additions, so
    it keeps a vector of partial sums (as NumPy's pairwise sum does in its
    own order): results differ from NumPy's by float32 round-off (relative
    ~1e-7). NumPy's ``mean`` over the last two axes of a (1, 1024, 4, 4)
    input pays its reduction set-up per plane: 24 us, this loop 5.5 us.
    """
    planes, size = x.shape
    inv = np.float32(1.0) / np.float32(size)
    for p in range(planes):
        row = x[p]
        total = np.float32(0)
        for t in range(size):
            total += row[t]
        out[p] = total * inv


def _split_planes(x: np.ndarray, out: np.ndarray, k_h: int, k_w: int, s_h: int, s_w: int, d_h: int, d_w: int,
                  pad_top: int, pad_left: int) -> bool:
    """Whether a pool of ``x`` is worth splitting between threads (see ``MIN_PARALLEL_VALUES``)."""
    one_pass = one_pass_2x2(k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, *x.shape[2:], *out.shape[2:])
    return x.size >= (MIN_PARALLEL_VALUES_2X2 if one_pass else MIN_PARALLEL_VALUES)


def max_pool2d(x: np.ndarray, out: np.ndarray, k_h: int, k_w: int, s_h: int, s_w: int, d_h: int, d_w: int,
               pad_top: int, pad_left: int) -> None:
    """Max pooling of float32 (N, C, H, W) ``x`` into ``out`` (see :func:`_max_pool_planes`)."""
    threads.run_ranges(lambda lo, hi: _max_pool_planes(x, out, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left,
                                                       lo, hi),
                       x.shape[0] * x.shape[1], _split_planes(x, out, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left))


def average_pool2d(x: np.ndarray, out: np.ndarray, k_h: int, k_w: int, s_h: int, s_w: int, d_h: int, d_w: int,
                   pad_top: int, pad_left: int, pad_bottom: int, pad_right: int, count_include_pad: bool) -> None:
    """Average pooling of float32 (N, C, H, W) ``x`` into ``out`` (see :func:`_average_pool_planes`)."""
    threads.run_ranges(lambda lo, hi: _average_pool_planes(x, out, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left,
                                                           pad_bottom, pad_right, count_include_pad, lo, hi),
                       x.shape[0] * x.shape[1], _split_planes(x, out, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left))
