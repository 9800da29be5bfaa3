"""Convolution and pooling in the channel-blocked NCHW16c layout, with explicit vectors (``minicnn.kernels.simd``).

Sessions use these kernels through the layout pass (``minicnn.layout``),
which rewrites chains of layers into the ops of ``minicnn.ops.blocked``;
they are tested in ``tests/test_simd.py`` and ``tests/test_layout.py`` and
timed in ``benchmarks/bench_blocked.py`` (1x1 layers alone) and
``benchmarks/bench_models.py --with-nchw`` (whole models, with and without
the pass).

Why the layout. In NCHW a 1x1 convolution reads C input rows and writes M
output rows, each a separate stream through memory H*W floats apart; with
16-64 channels on large planes those streams, not the arithmetic, set the
speed: ``cpu_conv``'s direct kernel and BLAS both reach 25-65 GFLOP/s on
YuNet's and RetinaFace's 1x1 layers, far below what the same multiply-adds
reach on cached data. onnxruntime keeps the whole graph in NCHWc, where a
pixel's 16 channels are contiguous: an image is ``(C/16, H, W, 16)``, a
1x1 layer reads one stream per 16 input channels and writes one per 16
output channels, and one AVX-512 register holds one pixel's 16 channels.
Measured inside YuNet at 1 thread, its 1x1 layers run 2.5-3.5x faster than
minicnn's NCHW kernels there (16x320x320 -> 16: 618 against 2143
microseconds).

The layout (:func:`to_blocked`): channel ``c`` of pixel ``(i, j)`` of image
``n`` is at ``[n, c // 16, i, j, c % 16]``; channel counts are padded with
zero channels to a multiple of 16. A layer's padding output channels have
zero weights and bias, so they hold its activation of 0 (0, or 0.5 after a
Sigmoid): finite values, which the next layer's zero weights for those
channels cancel.

:func:`pointwise_nchw16c` computes, for one block of 16 output channels at
a time, 8 pixels at once: 8 accumulator vectors (one per pixel, its 16
output channels), and for each input channel one vector of 16 weights
(that input channel's weight in each of the 16 output channels) times the
pixel's input value broadcast to all lanes. Per input channel: 1 weight
load, 8 broadcasts, 8 fused multiply-adds, all accumulators in registers;
bias, residual and activation are applied to the vectors before the one
store. First measurements (``benchmarks/bench_blocked.py``, 1 thread) are
in ``benchmarks/RESULTS.md``.

:func:`dense_nchw16c` is the same tile for any kernel, stride and
dilation: each of the 8 output pixels keeps its own input offset, and the
taps, one loop over a table of offsets, add to all eight. It reads NCHW16c,
or NCHW directly, as fast (a stem's 3-channel image above all: padding 3
channels to 16 would multiply the work by 5); the input is zero-padded once
beforehand, so no tap is ever tested for the image's edge.

:func:`depthwise_nchw16c` keeps one output pixel's 16 channels per vector
and adds one tap per fused multiply-add, 8 pixels of a row at a time;
:func:`pool_nchw16c` takes lane-wise maxima or sums the same way;
:func:`to_blocked_fast` and :func:`from_blocked_fast` change layout at the
ends of a chain. Every wrapper splits its work between minicnn's threads
by pixel ranges, channel blocks or bands of rows: the convolutions, pools
and zero padding (:func:`pad_planes`, :func:`pad_channel_planes`) as
compiled jobs (``minicnn.kernels.jobs``, no GIL), the reorders and the
resize through ``threads.run_parallel``.

The ``*_runner`` functions prepare a layer for one input shape: a
:class:`BlockedLayer`, one :class:`CompiledJob` per kernel it runs (a
padded dense convolution runs two: :func:`pad_planes`, then the
convolution). Called, a layer runs its jobs from Python; a session runs
runs of consecutive layers as one compiled program instead
(``minicnn.chains``).

Versions (each measured in one process against the one before, 1 thread):

1. ``pointwise_nchw16c`` (session 9): 2.3-4.2x faster than the NCHW direct
   kernel and 2.5-11.7x faster than BLAS on the zoo's 1x1 shapes.
2. ``depthwise_nchw16c`` (3x3, stride 1) with tiles of 4 pixels: 0.97-2.0x
   as fast as the NCHW 3x3 kernel (16x320x320 to 128x20x20); tiles of 8:
   0.9-2.4x as fast as tiles of 4 over two runs (slower only on 16x320x320,
   in one run, where memory sets the pace). Up to 7 pixels per row were
   left to the one-pixel loop, one chain of dependent multiply-adds; the
   last tile now shifts left to end at the row's last inner pixel instead
   (64x40x40: 49-55 us against 75-99 before; unchanged elsewhere).
3. ``to_blocked_fast``: three loop orders (lane-outer, lane-inner, 16x16
   tiles) all took 2.2-2.5 ms on 16x320x320 against 0.2-0.45 ms for a plain
   copy: scalar strided stores. A vector transpose would need shuffles
   ``simd`` does not have yet; the layout pass converts rarely instead.
4. ``dense_nchw16c`` (session 11): first with three nested tap loops
   (block, kernel row, kernel column) and each pixel's offset found by a
   division: YuNet's stem (3 -> 16, 3x3, stride 2, 640x640) took 2.3-3.9
   ms in the kernel alone. Stepping the offsets along the row instead of
   dividing, and one loop over a precomputed tap table: 1.05-1.6 ms. The
   whole op, padding included, 1.29-1.36 ms against the NCHW kernel's
   2.76-2.86 ms, plus 1.4-1.5 ms to reorder its output (best of 40, three
   runs). On 16-256 input channels and 16 or more outputs (3x3, best of
   20): 83-106 GFLOP/s, 1.2-4.9x the NCHW kernel, reading NCHW16c or NCHW
   alike; with few output channels the padded lanes cost more than the
   layout gains (see ``minicnn.layout.MIN_LANES_USED``).
5. ``dense_nchw16c``'s leftover pixels (session 12): the pixels after the
   last full tile of 8 were computed by one more tile shifted back, up to
   7 pixels twice, or (fewer than 8 in all) one at a time, one chain of
   dependent multiply-adds. On a 3x3 image (age model, 256 -> 256) that
   is 16 pixels' work for 9. Now 1-3 leftover pixels take a tile of 1
   pixel x 4 output blocks (4 independent sums): 256 -> 256 on 3x3, 182 ->
   119 us; 128 -> 128 on 7x7, 152 -> 138 us (best of 200). With 4 or more
   left the shifted tile stays: on 6x6 (4 left) the 1-pixel tile was
   slower, 116 against 111 us, each leftover pixel re-reading every weight.
6. ``pool_nchw16c`` (session 13): each output pixel was one chain of
   dependent maxima (or sums) with its columns clipped to the image. Now
   the pixels whose windows lie inside the row go 4 at a time, with 4
   running values (same bits). Best of 1000, 1 thread: FER's 3x3 stride-2
   max pool on 16x60x60 16.8 -> 7.4 us, on 32x30x30 8.6 -> 5.3; BlazeFace's
   2x2 on 32x64x64 23.5 -> 11.1; gender's 2x2 average on 32x32x32 8.0 -> 4.1
   (a call on one pixel, the fixed cost, takes 2.0).
7. ``depthwise_nchw16c``'s 3x3 tiles (session 13): a tile whose three
   kernel rows lie inside the image keeps the 9 weight vectors in
   registers and runs its taps unrolled. Kernel alone, best of 5 x 300
   interleaved with the version before: 32x80x80 79.1 -> 66.1 us,
   16x60x60 23.7 -> 20.8, 128x20x20 39.5 -> 34.3, 64x40x40 stride 2 14.1
   -> 12.4; 128x8x8 unchanged (15.8-16.0: its 6 inner pixels per row
   make no tile of 8).
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from .. import threads  # first: chooses Numba's threading layer before numba is imported
from numba import njit  # noqa: E402

from . import cache_guard, cpu_pool, jobs, simd  # noqa: E402  (jobs imports this module back: see its imports)
from .cpu_conv import ACTIVATION_CODES  # noqa: E402
from .simd import (LANES, add, broadcast, div, fma, load, maximum, minimum, mul, splat, store,  # noqa: E402
                   where_positive)

BLOCK = LANES  # channels per block: one vector register of float32
PIXELS = 8     # pixels per tile of pointwise_nchw16c: 8 accumulator registers
# A pooling or padding job's epilogue scalars (it has no epilogue), and its weights, bias and slope.
_NO_FLOATS = np.zeros(3, dtype=np.float64)
_UNUSED = np.zeros(BLOCK, dtype=np.float32)


def blocks(channels: int) -> int:
    """Number of 16-channel blocks that hold ``channels`` channels."""
    return -(-channels // BLOCK)


def _padded(v: np.ndarray | None, n: int, size: int) -> np.ndarray:
    """A per-channel vector of ``n`` values (or none: zeros) padded with zeros to ``size``, float32."""
    out = np.zeros(size, dtype=np.float32)
    if v is not None:
        out[:n] = v
    return out


def to_blocked(x: np.ndarray) -> np.ndarray:
    """NCHW ``x`` -> NCHW16c ``(N, ceil(C/16), H, W, 16)``, the missing channels zero (the reference reorder)."""
    n, c, h, w = x.shape
    padded = np.zeros((n, blocks(c) * BLOCK, h, w), dtype=np.float32)
    padded[:, :c] = x
    return np.ascontiguousarray(padded.reshape(n, blocks(c), BLOCK, h, w).transpose(0, 1, 3, 4, 2))


def from_blocked(xb: np.ndarray, channels: int, first: int = 0) -> np.ndarray:
    """NCHW16c ``(N, CB, H, W, 16)`` -> NCHW ``(N, channels, H, W)``: :func:`to_blocked` undone.

    ``first``: the channel to start from (channels ``first:first + channels``).
    """
    n, cb, h, w, _ = xb.shape
    return np.ascontiguousarray(xb.transpose(0, 1, 4, 2, 3).reshape(n, cb * BLOCK, h, w)[:, first:first + channels])


def blocked_pointwise_weights(w: np.ndarray, bias: np.ndarray, slope: np.ndarray | None = None):
    """1x1 weights (M, C, 1, 1) and per-channel (M,) arrays in :func:`pointwise_nchw16c`'s layout.

    Returns ``(wb, bias16, slope16)``: ``wb[ob, c, j]`` is the weight of
    input channel ``c`` in output channel ``16 * ob + j``, shape
    ``(ceil(M/16), 16 * ceil(C/16), 16)``; bias and slope padded with zeros
    to ``16 * ceil(M/16)``.
    """
    m, c = w.shape[:2]
    mb, cb = blocks(m), blocks(c)
    full = np.zeros((mb * BLOCK, cb * BLOCK), dtype=np.float32)
    full[:m, :c] = w.reshape(m, c)
    wb = np.ascontiguousarray(full.reshape(mb, BLOCK, cb * BLOCK).transpose(0, 2, 1))
    return wb, _padded(bias, m, mb * BLOCK), _padded(slope, m, mb * BLOCK)


@njit(inline="always")
def _epilogue(y, o0, o1, residual, has_residual, code, alpha, slope, lo, hi):
    """Residual (same offsets) and activation (``cpu_conv.ACTIVATION_CODES``) on the vectors ``y[o0:o1]``, in place.

    Called on a tile just stored, still in L1. Each case is its own loop, with
    the tests outside them: a first version applied one vector epilogue with
    all the cases as branches to each accumulator before its store, and ran
    the whole kernel 3x slower with Relu than a kernel with Relu alone
    (presumably LLVM turning the branches into selects, computing them all).
    """
    if has_residual:
        for o in range(o0, o1, BLOCK):
            store(y, o, add(load(y, o), load(residual, o)))
    if code == 1:    # Relu
        zero = splat(0.0)
        for o in range(o0, o1, BLOCK):
            store(y, o, maximum(load(y, o), zero))
    elif code == 2:  # LeakyRelu
        a = splat(alpha)
        for o in range(o0, o1, BLOCK):
            v = load(y, o)
            store(y, o, where_positive(v, mul(v, a)))
    elif code == 3:  # PRelu: one slope per output channel, i.e. per lane
        for o in range(o0, o1, BLOCK):
            v = load(y, o)
            store(y, o, where_positive(v, mul(v, slope)))
    elif code == 4:  # Sigmoid: no vector exp here; value by value
        for o in range(o0, o1):
            y[o] = 1.0 / (1.0 + np.exp(-y[o]))
    elif code == 5:  # Clip
        low, high = splat(lo), splat(hi)
        for o in range(o0, o1, BLOCK):
            store(y, o, minimum(maximum(load(y, o), low), high))


@njit(inline="always")
def store_tile(y, o, a0, a1, a2, a3, a4, a5, a6, a7):
    """Store 8 accumulator vectors, one pixel's 16 channels each, to the 8 consecutive pixels from ``y[o]``."""
    store(y, o, a0)
    store(y, o + BLOCK, a1)
    store(y, o + 2 * BLOCK, a2)
    store(y, o + 3 * BLOCK, a3)
    store(y, o + 4 * BLOCK, a4)
    store(y, o + 5 * BLOCK, a5)
    store(y, o + 6 * BLOCK, a6)
    store(y, o + 7 * BLOCK, a7)


@njit(nogil=True, cache=True, fastmath=True)
def pointwise_nchw16c(x, wb, bias, slope, y, pixels, code, alpha, lo, hi, residual, has_residual, ob0, ob1, p0, p1):
    """1x1 convolution of one image in NCHW16c, output channel blocks ``ob0:ob1``, pixels ``p0:p1``, epilogue fused.

    ``x`` is the image's ``(CB, H, W, 16)`` input flattened, ``pixels`` =
    H * W; ``wb``, ``bias`` and ``slope`` come from
    :func:`blocked_pointwise_weights`; ``y`` (and ``residual``, when
    ``has_residual``) is the ``(MB, H, W, 16)`` output flattened. Pixels
    in tiles of :data:`PIXELS` (see the module docstring); the last
    ``(p1 - p0) % 8`` one at a time. Threads split a layer into pixel
    ranges (:func:`pointwise_conv_blocked`).
    """
    in_blocks = x.size // (pixels * BLOCK)
    channels = in_blocks * BLOCK
    w = wb.reshape(wb.size)
    full = p1 - (p1 - p0) % PIXELS
    for ob in range(ob0, ob1):
        b = load(bias, ob * BLOCK)
        s = load(slope, ob * BLOCK)
        w_ob = ob * channels * BLOCK
        out = ob * pixels * BLOCK
        for p in range(p0, full, PIXELS):
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = b  # 8 accumulators, bias in each
            for cb in range(in_blocks):
                pixel = (cb * pixels + p) * BLOCK  # input pixel p's 16 channels of block cb
                for k in range(BLOCK):
                    wv = load(w, w_ob + (cb * BLOCK + k) * BLOCK)  # input channel 16*cb+k -> the 16 outputs
                    i = pixel + k
                    a0 = fma(broadcast(x, i), wv, a0)
                    a1 = fma(broadcast(x, i + BLOCK), wv, a1)
                    a2 = fma(broadcast(x, i + 2 * BLOCK), wv, a2)
                    a3 = fma(broadcast(x, i + 3 * BLOCK), wv, a3)
                    a4 = fma(broadcast(x, i + 4 * BLOCK), wv, a4)
                    a5 = fma(broadcast(x, i + 5 * BLOCK), wv, a5)
                    a6 = fma(broadcast(x, i + 6 * BLOCK), wv, a6)
                    a7 = fma(broadcast(x, i + 7 * BLOCK), wv, a7)
            o = out + p * BLOCK
            store_tile(y, o, a0, a1, a2, a3, a4, a5, a6, a7)
            _epilogue(y, o, o + PIXELS * BLOCK, residual, has_residual, code, alpha, s, lo, hi)
        for p in range(full, p1):
            a = b
            for cb in range(in_blocks):
                pixel = (cb * pixels + p) * BLOCK
                for k in range(BLOCK):
                    a = fma(broadcast(x, pixel + k), load(w, w_ob + (cb * BLOCK + k) * BLOCK), a)
            store(y, out + p * BLOCK, a)
            _epilogue(y, out + p * BLOCK, out + (p + 1) * BLOCK, residual, has_residual, code, alpha, s, lo, hi)


# Below these amounts of work a layer runs on the calling thread. The convolutions and pools run as compiled
# jobs (minicnn.kernels.jobs), whose helpers never take the GIL, so a second thread pays off on layers of a few
# tens of microseconds. Measured on whole models at 2 threads (interleaved, 10 rounds, best times, ms) with
# these thresholds at 8M / 1M / 500K / 250K multiply-adds (the depthwise one half, the pool's values a
# 32nd of that, with the pool at 4M values in the first): age 1.79 / 1.31 / 1.31 / 1.39, gender 0.41 /
# 0.38 / 0.38 / 0.38, FER 0.49 / 0.50 / 0.49 / 0.50, 3DDFA 3.78 / 3.60 / 3.58 / 3.33, BlazeFace short
# 1.65 / 1.37 / 1.59 / 1.45, YuNet 640 9.65 / 8.66 / 8.60 / 8.63. Before the compiled jobs, when every
# chunk crossed the GIL, the thresholds were the NCHW kernels' (cpu_conv.MIN_PARALLEL_MACS, 8M): the first
# version split at 1M multiply-adds and 256K values and made BlazeFace and the expression model 1.4x
# slower on 2 threads than on 1.
MIN_PARALLEL_MACS = 500_000
MIN_PARALLEL_DEPTHWISE_MACS = 250_000
MIN_PARALLEL_POOL_VALUES = 131_072
# The reorders and the resize still run through threads.run_parallel (each chunk a Python call): below this
# many values they stay on one thread, the threshold measured for the NCHW 2x2 pool
# (cpu_pool.MIN_PARALLEL_VALUES_2X2), which streams through memory the same way (not measured for these).
MIN_PARALLEL_VALUES = cpu_pool.MIN_PARALLEL_VALUES_2X2


def _pieces(parallel: bool) -> int:
    """How many chunks to cut a job into: two per thread, or one if it is too small to share."""
    return 2 * threads.num_threads() if parallel else 1


# The splits below are cached (small tuples, read-only): a layer asks for the same one on every call, and
# computing it was a fifth of the Python time of a small layer's call (a 16-channel 3x3 layer on 4x4: 11.4 us).
@functools.lru_cache(maxsize=1024)
def _cut_pixels(pixels: int, pieces: int) -> tuple[tuple[int, int], ...]:
    pieces = min(pieces, max(1, pixels // (4 * PIXELS)))
    cuts = [min(pixels, (pixels * k // pieces) // PIXELS * PIXELS) for k in range(pieces)] + [pixels]
    return tuple((a, b) for a, b in zip(cuts, cuts[1:]) if b > a)


def _plane_chunks(planes: int, rows: int, parallel: bool) -> tuple[tuple[int, int, int, int], ...]:
    """Work split as ``(q0, q1, r0, r1)``: planes ``q0:q1``, rows ``r0:r1`` of each; two chunks per thread.

    Always by bands of rows, every plane in each: the 1x1 and dense kernels
    split by pixel ranges, which are bands of rows too, so a thread tends to
    read the rows the previous layer wrote from its own core's cache. A
    first version split by planes (channel blocks) where there were enough:
    at 2 threads, 3DDFA took 5.27 ms against 4.74 by bands, w600k_mbf 13.65
    against 11.43, the detectors and age_cydral the same either way
    (interleaved, medians of 9 turns).
    """
    return _cut_rows(planes, rows, _pieces(parallel))


@functools.lru_cache(maxsize=1024)
def _cut_rows(planes: int, rows: int, pieces: int) -> tuple[tuple[int, int, int, int], ...]:
    bands = max(1, min(rows, pieces))
    cuts = [rows * k // bands for k in range(bands + 1)]
    return tuple((0, planes, a, b) for a, b in zip(cuts, cuts[1:]) if b > a)


def _run_chunks(kernel, args: tuple, chunks) -> None:
    """``kernel(*args, *chunk)`` for every chunk, on minicnn's threads (one chunk: called here, nothing handed out)."""
    if len(chunks) == 1:
        kernel(*args, *chunks[0])
    else:
        threads.run_parallel(lambda k: kernel(*args, *chunks[k]), len(chunks))


class CompiledJob:
    """One kernel of a layer as a compiled job (``minicnn.kernels.jobs``), for inputs of one shape.

    The kernels of this module that run as jobs (1x1, depthwise, dense,
    pooling and zero-padding) take their constant arrays and scalars
    through a descriptor made here (``jobs.Job``), one per thread count:
    ``split()`` gives the chunks for the current one. A batch takes
    ``calls`` kernel calls, each on its own slice of the flat input and
    output: one per image for the 1x1 and dense kernels, one in all for the
    others, whose planes run over the whole batch.
    """

    def __init__(self, kind: int, wb, bias, slope, taps, ints, floats, split, in_shape: tuple, out_shape: tuple,
                 per_image: bool):
        self.job = jobs.Job(kind, wb, bias, slope, taps, ints, floats)
        self.split = split
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.calls = self.in_shape[0] if per_image else 1
        self._described: dict[int, tuple] = {}  # thread count -> (descriptor, number of chunks)

    def described(self) -> tuple[np.ndarray, int]:
        """``(descriptor, n_chunks)`` of this job split for the current thread count."""
        n_threads = threads.num_threads()
        described = self._described.get(n_threads)
        if described is None:
            chunks = self.split()
            described = self._described[n_threads] = (self.job.describe(_chunk_table(chunks)), len(chunks))
        return described

    def run(self, x: np.ndarray, y: np.ndarray, residual: np.ndarray | None) -> None:
        """The job on ``x`` into ``y`` (whole batches, C-contiguous), adding ``residual`` if it is not None.

        On one thread, or in one chunk, each call is a single Numba call on
        this thread; otherwise the helper threads share it without the GIL
        (``threads.run_compiled``).
        """
        descriptor, n_chunks = self.described()
        alone = n_chunks == 1 or threads.num_threads() == 1
        has_residual = residual is not None
        x_f, y_f = x.reshape(self.calls, -1), y.reshape(self.calls, -1)
        r_f = y_f if residual is None else residual.reshape(self.calls, -1)  # never read without a residual
        for i in range(self.calls):
            if alone:
                jobs.run_alone(descriptor, x_f[i], y_f[i], r_f[i], has_residual)
            else:
                threads.run_compiled(descriptor, x_f[i], y_f[i], r_f[i], has_residual, n_chunks)


class BlockedLayer:
    """A layer of this module prepared for inputs of one shape: ``layer(x, residual=None)`` returns its output.

    ``jobs`` are the compiled jobs it runs, each on the output of the one
    before: one, or two for a dense convolution with padding (zero-pad the
    input, then convolve). The last adds the residual, if any. A session
    runs its layers one call each, or a chain of them in one compiled call
    (``minicnn.chains``, which reads ``jobs``); the two give the same bits.
    """

    def __init__(self, layer_jobs: list[CompiledJob], takes_residual: bool):
        self.jobs = tuple(layer_jobs)
        self.takes_residual = takes_residual
        self.in_shape, self.out_shape = self.jobs[0].in_shape, self.jobs[-1].out_shape
        self._last = self.jobs[-1]

    def __call__(self, x: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
        if residual is not None and (not self.takes_residual or residual.shape != self.out_shape):
            raise ValueError(f"{jobs.KINDS[self._last.job.kind]}: residual{list(residual.shape)} does not fit "
                             + (f"the output {list(self.out_shape)}" if self.takes_residual else "(takes none)"))
        for job in self.jobs[:-1]:
            y = np.empty(job.out_shape, dtype=np.float32)
            job.run(x, y, None)
            x = y
        y = np.empty(self.out_shape, dtype=np.float32)
        self._last.run(x, y, residual)
        return y


@functools.lru_cache(maxsize=1024)
def _chunk_table(chunks: tuple) -> np.ndarray:
    """Chunks ``((a, b, c, d), ...)`` as an int64 table, one row each (cached: the splits are reused per layer)."""
    return np.array(chunks, dtype=np.int64).reshape(len(chunks), 4)


def _job_floats(alpha: float, lo: float, hi: float) -> np.ndarray:
    """An epilogue's ``alpha, lo, hi`` as a compiled job takes them (float64; the kernels round them to float32)."""
    return np.array([np.float32(alpha), np.float32(lo), np.float32(hi)], dtype=np.float64)


def pointwise_conv_blocked(xb: np.ndarray, wb: np.ndarray, bias16: np.ndarray, slope16: np.ndarray | None = None,
                           activation: str = "", alpha: float = 0.01, lo: float = -np.inf, hi: float = np.inf,
                           residual: np.ndarray | None = None) -> np.ndarray:
    """``activation(conv1x1(xb) + bias + residual)`` in NCHW16c: ``(N, CB, H, W, 16)`` -> ``(N, MB, H, W, 16)``.

    ``wb, bias16, slope16`` as returned by :func:`blocked_pointwise_weights`;
    ``residual`` None or of the output's blocked shape. Large layers are
    split into pixel ranges (and groups of output blocks) between
    minicnn's threads, as a compiled job.
    """
    return pointwise_runner(xb.shape, wb, bias16, slope16, activation, alpha, lo, hi)(xb, residual)


def pointwise_runner(x_shape: tuple, wb: np.ndarray, bias16: np.ndarray, slope16: np.ndarray | None = None,
                     activation: str = "", alpha: float = 0.01, lo: float = -np.inf, hi: float = np.inf):
    """:func:`pointwise_conv_blocked` for inputs of shape ``x_shape``: ``run(xb, residual=None)``.

    Everything that depends only on the shapes and weights (checks, output
    shape, work split, the kernel's scalar arguments) is done here once; a
    session prepares each layer this way, so a call costs little more than
    the kernel. The same holds for the other ``*_runner`` functions below.
    """
    n, cb, h, w_, _ = x_shape
    if wb.shape[1] != cb * BLOCK:
        raise ValueError(f"pointwise_conv_blocked: weights for {wb.shape[1]} input channels, input has {cb * BLOCK}")
    mb = wb.shape[0]
    pixels = h * w_
    out_shape = (n, mb, h, w_, BLOCK)
    slope16 = bias16 if slope16 is None else slope16
    w_f = wb.reshape(-1)
    ints = np.array([pixels, ACTIVATION_CODES[activation]], dtype=np.int64)
    floats = _job_floats(alpha, lo, hi)
    parallel = pixels * cb * mb * BLOCK * BLOCK >= MIN_PARALLEL_MACS

    job = CompiledJob(jobs.POINTWISE, w_f, bias16, slope16, jobs.NO_TAPS, ints, floats,
                      lambda: _pixel_and_block_chunks(pixels, mb, parallel), x_shape, out_shape, per_image=True)
    return BlockedLayer([job], takes_residual=True)


# ---------------------------------------------------------------------------
# Reorders between NCHW and NCHW16c
# ---------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def _to_blocked_planes(x, y, q0, q1, r0, r1):
    """Rows ``r0:r1`` of blocks ``q0:q1`` of ``y`` (N * CB blocks, each ``(H, W, 16)``) from NCHW ``x``.

    Padding channels are zero.

    One output block row (W * 16 values, at most a few tens of KiB) is
    written lane by lane: each of its 16 channels is read as one contiguous
    row, and the row being interleaved stays in L1 between the lanes.
    """
    c, w = x.shape[1], x.shape[3]
    cb_count = y.shape[1]
    for q in range(q0, q1):
        i, cb = q // cb_count, q % cb_count
        for r in range(r0, r1):
            for k in range(BLOCK):
                ch = cb * BLOCK + k
                if ch < c:
                    for col in range(w):
                        y[i, cb, r, col, k] = x[i, ch, r, col]
                else:
                    for col in range(w):
                        y[i, cb, r, col, k] = 0.0


@njit(nogil=True, cache=True)
def _from_blocked_planes(xb, y, first, q0, q1, r0, r1):
    """Rows ``r0:r1`` of channels ``q0:q1`` of NCHW ``y`` (N * C channels) from NCHW16c ``xb``, whose channel
    ``first + c`` is ``y``'s channel ``c``."""
    c, w = y.shape[1], y.shape[3]
    for q in range(q0, q1):
        i, ch = q // c, q % c
        cb, k = (first + ch) // BLOCK, (first + ch) % BLOCK
        for r in range(r0, r1):
            for col in range(w):
                y[i, ch, r, col] = xb[i, cb, r, col, k]


def to_blocked_fast(x: np.ndarray) -> np.ndarray:
    """:func:`to_blocked` by a Numba kernel (the same result, bit for bit), split between threads when large."""
    n, c, h, w = x.shape
    y = np.empty((n, blocks(c), h, w, BLOCK), dtype=np.float32)
    _run_chunks(_to_blocked_planes, (np.ascontiguousarray(x, dtype=np.float32), y),
                _plane_chunks(n * blocks(c), h, y.size >= MIN_PARALLEL_VALUES))
    return y


def from_blocked_fast(xb: np.ndarray, channels: int, first: int = 0) -> np.ndarray:
    """:func:`from_blocked` by a Numba kernel (the same result, bit for bit), split between threads when large."""
    n, _, h, w, _ = xb.shape
    y = np.empty((n, channels, h, w), dtype=np.float32)
    _run_chunks(_from_blocked_planes, (xb, y, first), _plane_chunks(n * channels, h, y.size >= MIN_PARALLEL_VALUES))
    return y


# ---------------------------------------------------------------------------
# Depthwise convolution
# ---------------------------------------------------------------------------
# Output pixels per tile of depthwise_nchw16c: 8 accumulators, each tap's weights loaded once per 8 pixels.
# Measured against 4 (3x3, stride 1, 1 thread): 1.1-2.4x faster from 16x320x320 to 128x20x20.
DW_PIXELS = 8


def blocked_depthwise_weights(w: np.ndarray, bias: np.ndarray | None, slope: np.ndarray | None = None):
    """Depthwise weights (C, 1, KH, KW) -> ``(CB, KH, KW, 16)``; bias and slope padded to ``16 * CB``.

    ``wb[cb, u, v, k]`` is tap (u, v) of channel ``16 * cb + k``; padding
    channels have zero weights, bias and slope.
    """
    c, _, kh, kw = w.shape
    cb = blocks(c)
    full = np.zeros((cb * BLOCK, kh, kw), dtype=np.float32)
    full[:c] = w[:, 0]
    wb = np.ascontiguousarray(full.reshape(cb, BLOCK, kh, kw).transpose(0, 2, 3, 1))
    return wb, _padded(bias, c, cb * BLOCK), _padded(slope, c, cb * BLOCK)


@njit(nogil=True, cache=True, fastmath=True)
def depthwise_nchw16c(x, wb, bias, slope, y, h, w, oh, ow, kh, kw, sh, sw, pt, pl, code, alpha, lo, hi,
                      residual, has_residual, q0, q1, r0, r1):
    """Depthwise convolution of output rows ``r0:r1`` of NCHW16c blocks ``q0:q1``, epilogue fused.

    Blocks are image-major: block ``q`` is image ``q // CB``.

    ``x`` is ``(N, CB, H, W, 16)`` flattened, ``y`` and ``residual``
    ``(N, CB, OH, OW, 16)`` flattened, ``wb`` from
    :func:`blocked_depthwise_weights` flattened. Each output pixel is 16
    channels in one vector: ``acc = bias; acc += x[tap] * w[tap]`` over the
    taps, one fused multiply-add per tap. For each output row the rows of
    taps inside the image are found once; along the row, the pixels whose
    taps all lie inside the image run in tiles of :data:`DW_PIXELS` with no
    bounds test, the few at the edges (the padding) one at a time with their
    columns clipped. A 3x3 kernel's tiles whose three rows are all inside
    the image (every row but the first and last, with padding 1) keep the
    block's 9 weight vectors in registers and run their 72 multiply-adds
    unrolled (:func:`_depthwise_tile_row3`), with no loop over the taps.
    """
    cb_count = wb.size // (kh * kw * BLOCK)
    # Output columns whose taps all fall inside the row: oj * sw - pl >= 0 and oj * sw - pl + kw - 1 < w.
    inner0 = min(ow, (pl + sw - 1) // sw)
    inner1 = max(inner0, min(ow, (w - kw + pl) // sw + 1))
    step = sw * BLOCK  # from one output pixel's input to the next one's
    three = kh == 3 and kw == 3
    for q in range(q0, q1):
        cb = q % cb_count
        b = load(bias, cb * BLOCK)
        s = load(slope, cb * BLOCK)
        x_q = q * h * w * BLOCK
        w_q = cb * kh * kw * BLOCK
        w00 = w01 = w02 = w10 = w11 = w12 = w20 = w21 = w22 = b  # the 9 weight vectors of a 3x3 kernel, by row
        if three:
            w00, w01, w02 = load(wb, w_q), load(wb, w_q + BLOCK), load(wb, w_q + 2 * BLOCK)
            w10, w11, w12 = load(wb, w_q + 3 * BLOCK), load(wb, w_q + 4 * BLOCK), load(wb, w_q + 5 * BLOCK)
            w20, w21, w22 = load(wb, w_q + 6 * BLOCK), load(wb, w_q + 7 * BLOCK), load(wb, w_q + 8 * BLOCK)
        for oi in range(r0, r1):
            top = oi * sh - pt
            u0 = max(0, -top)
            u1 = min(kh, h - top)
            out_row = (q * oh + oi) * ow * BLOCK
            # left edge, tiles, tail, right edge
            for oj in range(inner0):
                _depthwise_pixel(x, wb, y, b, x_q, w_q, out_row, top, oj, u0, u1, w, kw, sw, pl)
            # Tiles of 8 from inner0; a last partial tile is shifted left to end at inner1, recomputing a few
            # pixels (the same values) instead of leaving up to 7 for the one-pixel loop, whose single chain of
            # dependent multiply-adds is several times slower per pixel.
            n_inner = inner1 - inner0
            tiles = -(-n_inner // DW_PIXELS) if n_inner >= DW_PIXELS else 0
            unrolled = three and u0 == 0 and u1 == 3
            for t in range(tiles):
                oj = min(inner0 + t * DW_PIXELS, inner1 - DW_PIXELS)
                a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = b  # 8 accumulators, bias in each
                left = oj * sw - pl
                if unrolled:  # the three kernel rows, each one call
                    row = x_q + (top * w + left) * BLOCK
                    a0, a1, a2, a3, a4, a5, a6, a7 = _depthwise_tile_row3(x, row, step, w00, w01, w02, a0, a1, a2,
                                                                          a3, a4, a5, a6, a7)
                    row += w * BLOCK
                    a0, a1, a2, a3, a4, a5, a6, a7 = _depthwise_tile_row3(x, row, step, w10, w11, w12, a0, a1, a2,
                                                                          a3, a4, a5, a6, a7)
                    row += w * BLOCK
                    a0, a1, a2, a3, a4, a5, a6, a7 = _depthwise_tile_row3(x, row, step, w20, w21, w22, a0, a1, a2,
                                                                          a3, a4, a5, a6, a7)
                for u in range(u0, u0 if unrolled else u1):  # any other kernel or rows: a loop over the taps
                    row = x_q + ((top + u) * w + left) * BLOCK
                    for v in range(kw):
                        wv = load(wb, w_q + (u * kw + v) * BLOCK)
                        i = row + v * BLOCK
                        a0 = fma(load(x, i), wv, a0)
                        a1 = fma(load(x, i + step), wv, a1)
                        a2 = fma(load(x, i + 2 * step), wv, a2)
                        a3 = fma(load(x, i + 3 * step), wv, a3)
                        a4 = fma(load(x, i + 4 * step), wv, a4)
                        a5 = fma(load(x, i + 5 * step), wv, a5)
                        a6 = fma(load(x, i + 6 * step), wv, a6)
                        a7 = fma(load(x, i + 7 * step), wv, a7)
                o = out_row + oj * BLOCK
                store_tile(y, o, a0, a1, a2, a3, a4, a5, a6, a7)
            for oj in range(inner1 if tiles else inner0, ow):
                _depthwise_pixel(x, wb, y, b, x_q, w_q, out_row, top, oj, u0, u1, w, kw, sw, pl)
            _epilogue(y, out_row, out_row + ow * BLOCK, residual, has_residual, code, alpha, s, lo, hi)


@njit(inline="always")
def _depthwise_row3(x, i, w0, w1, w2, acc):
    """``acc`` plus one kernel row of a 3x3 depthwise tap: the pixels at ``x[i]``, the next one and the one after."""
    return fma(load(x, i + 2 * BLOCK), w2, fma(load(x, i + BLOCK), w1, fma(load(x, i), w0, acc)))


@njit(inline="always")
def _depthwise_tile_row3(x, row, step, w0, w1, w2, a0, a1, a2, a3, a4, a5, a6, a7):
    """One kernel row of a 3x3 kernel added to each of a tile's 8 pixels (``step`` apart from ``x[row]`` on)."""
    return (_depthwise_row3(x, row, w0, w1, w2, a0), _depthwise_row3(x, row + step, w0, w1, w2, a1),
            _depthwise_row3(x, row + 2 * step, w0, w1, w2, a2), _depthwise_row3(x, row + 3 * step, w0, w1, w2, a3),
            _depthwise_row3(x, row + 4 * step, w0, w1, w2, a4), _depthwise_row3(x, row + 5 * step, w0, w1, w2, a5),
            _depthwise_row3(x, row + 6 * step, w0, w1, w2, a6), _depthwise_row3(x, row + 7 * step, w0, w1, w2, a7))


@njit(inline="always")
def _depthwise_pixel(x, wb, y, b, x_q, w_q, out_row, top, oj, u0, u1, w, kw, sw, pl):
    """One output pixel of :func:`depthwise_nchw16c` with its tap columns clipped to the image."""
    left = oj * sw - pl
    v0 = max(0, -left)
    v1 = min(kw, w - left)
    acc = b
    for u in range(u0, u1):
        row = x_q + ((top + u) * w + left) * BLOCK
        for v in range(v0, v1):
            acc = fma(load(x, row + v * BLOCK), load(wb, w_q + (u * kw + v) * BLOCK), acc)
    store(y, out_row + oj * BLOCK, acc)


def depthwise_conv_blocked(xb: np.ndarray, wb: np.ndarray, bias16: np.ndarray, slope16: np.ndarray | None,
                           strides: tuple[int, int], pads: tuple[int, int, int, int], out_hw: tuple[int, int],
                           activation: str = "", alpha: float = 0.01, lo: float = -np.inf, hi: float = np.inf,
                           residual: np.ndarray | None = None) -> np.ndarray:
    """``activation(depthwise_conv(xb) + bias + residual)`` in NCHW16c, dilation 1; pads (top, left, bottom, right).

    ``wb, bias16, slope16`` from :func:`blocked_depthwise_weights`. Blocks
    are split between minicnn's threads when the layer is large.
    """
    return depthwise_runner(xb.shape, wb, bias16, slope16, strides, pads, out_hw, activation, alpha, lo,
                            hi)(xb, residual)


def depthwise_runner(x_shape: tuple, wb: np.ndarray, bias16: np.ndarray, slope16: np.ndarray | None,
                     strides: tuple[int, int], pads: tuple[int, int, int, int], out_hw: tuple[int, int],
                     activation: str = "", alpha: float = 0.01, lo: float = -np.inf, hi: float = np.inf):
    """:func:`depthwise_conv_blocked` for inputs of shape ``x_shape``: ``run(xb, residual=None)`` (see
    :func:`pointwise_runner`)."""
    n, cb, h, w, _ = x_shape
    kh, kw = wb.shape[1], wb.shape[2]
    if wb.shape[0] != cb:
        raise ValueError(f"depthwise_conv_blocked: weights for {wb.shape[0]} channel blocks, input has {cb}")
    oh, ow = out_hw
    out_shape = (n, cb, oh, ow, BLOCK)
    slope16 = bias16 if slope16 is None else slope16
    ints = np.array([h, w, oh, ow, kh, kw, strides[0], strides[1], pads[0], pads[1], ACTIVATION_CODES[activation]],
                    dtype=np.int64)
    floats = _job_floats(alpha, lo, hi)
    w_f = wb.reshape(-1)
    parallel = n * cb * oh * ow * BLOCK * kh * kw >= MIN_PARALLEL_DEPTHWISE_MACS

    job = CompiledJob(jobs.DEPTHWISE, w_f, bias16, slope16, jobs.NO_TAPS, ints, floats,
                      lambda: _plane_chunks(n * cb, oh, parallel), x_shape, out_shape, per_image=False)
    return BlockedLayer([job], takes_residual=True)


# ---------------------------------------------------------------------------
# Dense convolution (any kernel, stride and dilation; one group), from NCHW or NCHW16c input
# ---------------------------------------------------------------------------
def blocked_dense_weights(w: np.ndarray, bias: np.ndarray | None, slope: np.ndarray | None, in_lanes: int):
    """Dense weights (M, C, KH, KW) in :func:`dense_nchw16c`'s layout; bias and slope padded to ``16 * MB``.

    ``in_lanes`` is how many input channels a block of the *input* holds:
    16 for an NCHW16c input, 1 for an NCHW one (each channel its own
    "block"). Returns ``(wb, bias16, slope16)`` with ``wb`` of shape
    ``(MB, CB, KH, KW, in_lanes, 16)``: ``wb[ob, cb, u, v, k, j]`` is tap
    (u, v) of input channel ``in_lanes * cb + k`` in output channel
    ``16 * ob + j``; padding channels, in and out, have zero weights.
    """
    m, c, kh, kw = w.shape
    mb, cb = blocks(m), -(-c // in_lanes)
    full = np.zeros((mb * BLOCK, cb * in_lanes, kh, kw), dtype=np.float32)
    full[:m, :c] = w
    wb = full.reshape(mb, BLOCK, cb, in_lanes, kh, kw).transpose(0, 2, 4, 5, 3, 1)
    return np.ascontiguousarray(wb), _padded(bias, m, mb * BLOCK), _padded(slope, m, mb * BLOCK)


@njit(inline="always")
def _next_offset(oi, oj, ow, sh, sw, wp, in_lanes):
    """Input offset of output pixel (oi, oj)'s first tap in the padded plane, and the pixel after it (row-major)."""
    e = (oi * sh * wp + oj * sw) * in_lanes
    return (e, oi, oj + 1) if oj + 1 < ow else (e, oi + 1, 0)


@njit(inline="always")
def _fma_tile(x, wv, i, e0, e1, e2, e3, e4, e5, e6, e7, a0, a1, a2, a3, a4, a5, a6, a7):
    """The 8 accumulators after one input channel: ``a_t += x[e_t + i] * wv`` for each pixel t of the tile."""
    return (fma(broadcast(x, e0 + i), wv, a0), fma(broadcast(x, e1 + i), wv, a1),
            fma(broadcast(x, e2 + i), wv, a2), fma(broadcast(x, e3 + i), wv, a3),
            fma(broadcast(x, e4 + i), wv, a4), fma(broadcast(x, e5 + i), wv, a5),
            fma(broadcast(x, e6 + i), wv, a6), fma(broadcast(x, e7 + i), wv, a7))


@njit(nogil=True, cache=True, fastmath=True)
def dense_nchw16c(x, wb, bias, slope, y, taps, in_lanes, wp, oh, ow, sh, sw, code, alpha, lo, hi, residual,
                  has_residual, ob0, ob1, p0, p1):
    """Dense convolution of one zero-padded image, output blocks ``ob0:ob1``, output pixels ``p0:p1``, fused epilogue.

    ``x`` is the padded input ``(CB, HP, WP, in_lanes)`` flattened: NCHW16c
    (``in_lanes`` 16) or NCHW (``in_lanes`` 1, each channel a "block": a
    stem's 3-channel image, read without a layout change); ``WP`` is its
    padded width. ``taps``
    holds, in weight order, the offset of each (input block, kernel row,
    kernel column) from a pixel's first tap (:func:`dense_taps`). ``wb``
    comes from :func:`blocked_dense_weights` flattened; ``y`` and
    ``residual`` are the ``(MB, OH, OW, 16)`` output flattened; ``p0:p1``
    count output pixels row-major.

    The register tile of :func:`pointwise_nchw16c`: 8 output pixels, 8
    accumulators of 16 output channels; per input channel and tap, one
    weight vector times each pixel's input value broadcast to all lanes.
    The 8 pixels are consecutive in the output, possibly across a row end,
    so each keeps its own input offset (``e0..e7``) and a tap is one offset
    added to all eight: the input was padded beforehand, so no tap needs a
    bounds test. Weights are read in storage order, one vector after the
    next. The 1-7 pixels after the last full tile take one more tile
    shifted back (4 or more of them) or :func:`_dense_pixel`'s tile of one
    pixel x 4 output blocks (fewer; see :data:`SHIFT_TAIL`).
    """
    pixels = oh * ow
    n = p1 - p0
    w_size = taps.size * in_lanes * BLOCK  # weights of one output block
    # Tiles of 8 from p0. The pixels left over (n % 8) take the 1-pixel tile of _dense_pixel, unless there are
    # SHIFT_TAIL or more of them: then one more tile, shifted back to end at p1, recomputes a few pixels instead.
    tiles = n // PIXELS
    if n % PIXELS >= SHIFT_TAIL and n >= PIXELS:
        tiles += 1
    for ob in range(ob0, ob1):
        b = load(bias, ob * BLOCK)
        s = load(slope, ob * BLOCK)
        w_ob = ob * w_size
        out = ob * pixels * BLOCK
        for t in range(tiles):
            p = min(p0 + t * PIXELS, p1 - PIXELS)
            oi, oj = p // ow, p % ow  # one division per tile: the offsets below step along the rows
            e0, oi, oj = _next_offset(oi, oj, ow, sh, sw, wp, in_lanes)
            e1, oi, oj = _next_offset(oi, oj, ow, sh, sw, wp, in_lanes)
            e2, oi, oj = _next_offset(oi, oj, ow, sh, sw, wp, in_lanes)
            e3, oi, oj = _next_offset(oi, oj, ow, sh, sw, wp, in_lanes)
            e4, oi, oj = _next_offset(oi, oj, ow, sh, sw, wp, in_lanes)
            e5, oi, oj = _next_offset(oi, oj, ow, sh, sw, wp, in_lanes)
            e6, oi, oj = _next_offset(oi, oj, ow, sh, sw, wp, in_lanes)
            e7, oi, oj = _next_offset(oi, oj, ow, sh, sw, wp, in_lanes)
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = b  # 8 accumulators, bias in each
            wi = w_ob
            # One loop over the taps, not three nested ones (blocks, rows, columns): with NCHW input a tap is a
            # single input channel, and the nested version spent half of YuNet's stem on loop overhead.
            if in_lanes == 1:
                for tp in range(taps.size):
                    a0, a1, a2, a3, a4, a5, a6, a7 = _fma_tile(x, load(wb, wi), taps[tp], e0, e1, e2, e3, e4, e5, e6,
                                                               e7, a0, a1, a2, a3, a4, a5, a6, a7)
                    wi += BLOCK
            else:  # the 16 channels of a tap's block: a loop LLVM can unroll, its trip count known
                for tp in range(taps.size):
                    for k in range(BLOCK):
                        a0, a1, a2, a3, a4, a5, a6, a7 = _fma_tile(x, load(wb, wi), taps[tp] + k, e0, e1, e2, e3, e4,
                                                                   e5, e6, e7, a0, a1, a2, a3, a4, a5, a6, a7)
                        wi += BLOCK
            o = out + p * BLOCK
            store_tile(y, o, a0, a1, a2, a3, a4, a5, a6, a7)
            _epilogue(y, o, o + PIXELS * BLOCK, residual, has_residual, code, alpha, s, lo, hi)
    for p in range(p0 + tiles * PIXELS, p1):  # the leftover pixels, if no shifted tile took them
        e = ((p // ow) * sh * wp + (p % ow) * sw) * in_lanes
        ob = ob0
        while ob < ob1:
            group = 4 if ob1 - ob >= 4 else 1
            _dense_pixel(x, wb, bias, y, taps, in_lanes, e, ob, group, w_size, pixels, p)
            for q in range(ob, ob + group):
                o = (q * pixels + p) * BLOCK
                _epilogue(y, o, o + BLOCK, residual, has_residual, code, alpha, load(slope, q * BLOCK), lo, hi)
            ob += group


# A tile of 8 pixels computes 8 pixels whatever the count left over; the 1-pixel tile of _dense_pixel costs about
# one pixel's worth per pixel (4 output blocks at once, so 4 independent sums: the FMA latency is hidden). One
# shifted tile takes the leftovers once there are this many of them.
SHIFT_TAIL = 4


@njit(inline="always")
def _dense_pixel(x, wb, bias, y, taps, in_lanes, e, ob, group, w_size, pixels, p):
    """Output pixel ``p`` (first tap at input offset ``e``) of blocks ``ob:ob+group``, group 4 or 1; no epilogue.

    Four blocks give four accumulators fed by one broadcast input value
    each step, a register tile of 1 pixel x 64 channels; one block alone
    is a single chain of dependent FMAs (its latency, not its throughput).
    """
    if group == 4:
        a0 = load(bias, ob * BLOCK)
        a1 = load(bias, (ob + 1) * BLOCK)
        a2 = load(bias, (ob + 2) * BLOCK)
        a3 = load(bias, (ob + 3) * BLOCK)
        wi = ob * w_size
        for tp in range(taps.size):
            for k in range(in_lanes):
                v = broadcast(x, e + taps[tp] + k)
                a0 = fma(v, load(wb, wi), a0)
                a1 = fma(v, load(wb, wi + w_size), a1)
                a2 = fma(v, load(wb, wi + 2 * w_size), a2)
                a3 = fma(v, load(wb, wi + 3 * w_size), a3)
                wi += BLOCK
        o = (ob * pixels + p) * BLOCK
        store(y, o, a0)
        store(y, o + pixels * BLOCK, a1)
        store(y, o + 2 * pixels * BLOCK, a2)
        store(y, o + 3 * pixels * BLOCK, a3)
    else:
        a = load(bias, ob * BLOCK)
        wi = ob * w_size
        for tp in range(taps.size):
            for k in range(in_lanes):
                a = fma(broadcast(x, e + taps[tp] + k), load(wb, wi), a)
                wi += BLOCK
        store(y, (ob * pixels + p) * BLOCK, a)


@functools.lru_cache(maxsize=512)
def dense_taps(in_blocks: int, kernel: tuple[int, int], dilations: tuple[int, int], padded_hw: tuple[int, int],
               in_lanes: int) -> np.ndarray:
    """Offsets of :func:`dense_nchw16c`'s taps from a pixel's first one, in the weights' (block, row, column) order.

    Cached (read-only): a layer's table depends only on its shapes, and
    building it took about 6 us, a tenth of a small model's convolution.
    """
    hp, wp = padded_hw
    cb = np.arange(in_blocks)[:, None, None] * (hp * wp * in_lanes)
    u = np.arange(kernel[0])[None, :, None] * (dilations[0] * wp * in_lanes)
    v = np.arange(kernel[1])[None, None, :] * (dilations[1] * in_lanes)
    taps = (cb + u + v).reshape(-1).astype(np.int64)
    taps.flags.writeable = False
    return taps


@njit(nogil=True, cache=True)
def pad_planes(x, y, h, w, hp, wp, pt, pl, lanes, q0, q1, r0, r1):
    """Rows ``r0:r1`` of planes ``q0:q1`` of ``y`` (``hp x wp`` pixels of ``lanes`` values): ``x``'s planes
    (``h x w`` pixels) with ``pt`` zero rows above and ``pl`` zero columns to the left, zeros elsewhere.

    NCHW (``lanes`` 1, a plane per channel) or NCHW16c (16, a plane per
    block); ``x`` and ``y`` flat. Every value of those rows is written, so
    ``y`` may hold anything before.

    Each loop indexes a view of its row by the loop counter alone. Written
    as ``y[out + k] = x[src + k]``, Numba cannot tell that the index is not
    negative (it would count from the end), and the copy ran one value at a
    time: 360 us for 4 x 80 x 80 x 16 values, against 38 us this way and
    62 us for ``np.zeros`` and a slice assignment (best of 300).
    """
    row = wp * lanes
    left = pl * lanes
    inner = w * lanes
    for q in range(q0, q1):
        for r in range(r0, r1):
            out = y[(q * hp + r) * row:(q * hp + r + 1) * row]
            i = r - pt
            if i < 0 or i >= h:
                for k in range(row):
                    out[k] = 0.0
                continue
            src = x[(q * h + i) * inner:(q * h + i + 1) * inner]
            head, body, tail = out[:left], out[left:left + inner], out[left + inner:]
            for k in range(left):
                head[k] = 0.0
            for k in range(inner):
                body[k] = src[k]
            for k in range(tail.size):
                tail[k] = 0.0


def pad_job(x_shape: tuple, pads: tuple[int, int, int, int]) -> CompiledJob:
    """The job that zero-pads inputs of shape ``x_shape`` (NCHW or NCHW16c): pads (top, left, bottom, right).

    A dense convolution reads its input padded (:func:`dense_nchw16c` never
    tests a tap for the image's edge); this writes the padded copy.
    """
    pt, pl, pb, pr = pads
    n, c, h, w = x_shape[:4]
    lanes = x_shape[4] if len(x_shape) == 5 else 1
    hp, wp = h + pt + pb, w + pl + pr
    out_shape = (n, c, hp, wp) + tuple(x_shape[4:])
    ints = np.array([h, w, hp, wp, pt, pl, lanes], dtype=np.int64)
    parallel = n * c * hp * wp * lanes >= MIN_PARALLEL_POOL_VALUES
    return CompiledJob(jobs.PAD, _UNUSED, _UNUSED, _UNUSED, jobs.NO_TAPS, ints, _NO_FLOATS,
                       lambda: _plane_chunks(n * c, hp, parallel), x_shape, out_shape, per_image=False)


@njit(nogil=True, cache=True)
def pad_channel_planes(x, y, h, w, cb_in, cb_out, channels, q0, q1, r0, r1):
    """Rows ``r0:r1`` of planes ``q0:q1`` of ``y``: ``x`` (NCHW16c, ``cb_in`` blocks of ``channels`` real
    channels) with zero channels appended, ``cb_out`` blocks in all.

    A plane is one image's block, ``h x w`` pixels of 16 lanes, numbered
    ``image * cb_out + block``; ``x`` and ``y`` flat. A block of real
    channels is copied, a block past them written with zeros, and the block
    that holds the last real channels (when ``channels`` is not a multiple
    of 16) copied lane by lane with zeros in its padding lanes, whatever
    ``x`` held there (a Sigmoid writes 0.5). Each loop indexes a view of its
    row by the loop counter (see :func:`pad_planes`).
    """
    row = w * 16
    full, keep = channels // 16, channels % 16
    for q in range(q0, q1):
        image, b = q // cb_out, q % cb_out
        for r in range(r0, r1):
            out = y[(q * h + r) * row:(q * h + r + 1) * row]
            if b > full or (b == full and keep == 0):
                for k in range(row):
                    out[k] = 0.0
                continue
            start = ((image * cb_in + b) * h + r) * row
            src = x[start:start + row]
            if b < full:
                for k in range(row):
                    out[k] = src[k]
                continue
            for p in range(w):
                for lane in range(16):
                    out[p * 16 + lane] = src[p * 16 + lane] if lane < keep else 0.0


def pad_channels_runner(x_shape: tuple, channels: int, extra: int) -> BlockedLayer:
    """The layer that appends ``extra`` zero channels to NCHW16c inputs of shape ``x_shape`` holding ``channels``
    real ones (BlazeFace's shortcuts): one compiled job, so it runs inside a chain.

    Split by bands of rows like a pool; the padding lanes of the last real
    block become zeros.
    """
    n, cb, h, w, _ = x_shape
    if blocks(channels) != cb:
        raise ValueError(f"pad_channels: {channels} channels do not fill the input's {cb} blocks of 16")
    cb_out = blocks(channels + extra)
    out_shape = (n, cb_out, h, w, BLOCK)
    ints = np.array([h, w, cb, cb_out, channels], dtype=np.int64)
    parallel = n * cb_out * h * w * BLOCK >= MIN_PARALLEL_POOL_VALUES
    job = CompiledJob(jobs.PAD_CHANNELS, _UNUSED, _UNUSED, _UNUSED, jobs.NO_TAPS, ints, _NO_FLOATS,
                      lambda: _plane_chunks(n * cb_out, h, parallel), x_shape, out_shape, per_image=False)
    return BlockedLayer([job], takes_residual=False)


def _pixel_and_block_chunks(pixels: int, out_blocks: int, parallel: bool) -> tuple[tuple[int, int, int, int], ...]:
    """Work split as ``(ob0, ob1, p0, p1)``: pixel ranges, and output blocks too when the pixels are few."""
    return _cut_pixels_and_blocks(pixels, out_blocks, _pieces(parallel))


@functools.lru_cache(maxsize=1024)
def _cut_pixels_and_blocks(pixels: int, out_blocks: int, pieces: int) -> tuple[tuple[int, int, int, int], ...]:
    ranges = _cut_pixels(pixels, pieces)
    groups = max(1, min(out_blocks, -(-pieces // len(ranges))))
    cuts = [out_blocks * k // groups for k in range(groups + 1)]
    return tuple((a, b, p0, p1) for a, b in zip(cuts, cuts[1:]) if b > a for p0, p1 in ranges)


def dense_conv_blocked(x: np.ndarray, wb: np.ndarray, bias16: np.ndarray, slope16: np.ndarray | None,
                       strides: tuple[int, int], pads: tuple[int, int, int, int], dilations: tuple[int, int],
                       out_hw: tuple[int, int], activation: str = "", alpha: float = 0.01, lo: float = -np.inf,
                       hi: float = np.inf, residual: np.ndarray | None = None) -> np.ndarray:
    """``activation(conv(x) + bias + residual)``, one group, output in NCHW16c ``(N, MB, OH, OW, 16)``.

    ``x`` is NCHW ``(N, C, H, W)`` or NCHW16c ``(N, CB, H, W, 16)``, and
    ``wb, bias16, slope16`` come from :func:`blocked_dense_weights` with
    ``in_lanes`` 1 or 16 to match; pads (top, left, bottom, right). The
    input is zero-padded once into a new array, then every output pixel's
    taps lie inside it. Large layers are split between minicnn's threads
    by pixel ranges (and output blocks, when the image is small).
    """
    return dense_runner(x.shape, wb, bias16, slope16, strides, pads, dilations, out_hw, activation, alpha, lo,
                        hi)(x, residual)


def dense_runner(x_shape: tuple, wb: np.ndarray, bias16: np.ndarray, slope16: np.ndarray | None,
                 strides: tuple[int, int], pads: tuple[int, int, int, int], dilations: tuple[int, int],
                 out_hw: tuple[int, int], activation: str = "", alpha: float = 0.01, lo: float = -np.inf,
                 hi: float = np.inf):
    """:func:`dense_conv_blocked` for inputs of shape ``x_shape``: ``run(x, residual=None)`` (see
    :func:`pointwise_runner`)."""
    in_lanes = BLOCK if len(x_shape) == 5 else 1
    mb, in_blocks, kh, kw = wb.shape[:4]
    if wb.shape[4] != in_lanes or x_shape[1] != in_blocks:
        raise ValueError(f"dense_conv_blocked: weights {list(wb.shape)} do not fit the input {list(x_shape)}")
    n = x_shape[0]
    oh, ow = out_hw
    hp, wp = x_shape[2] + pads[0] + pads[2], x_shape[3] + pads[1] + pads[3]
    # A writable copy: jobs pass their arrays to the helpers as plain (writable) arrays, and a read-only one
    # here would make Numba compile every kernel of jobs.run_chunk a second time for it.
    taps = dense_taps(in_blocks, (kh, kw), tuple(dilations), (hp, wp), in_lanes).copy()
    out_shape = (n, mb, oh, ow, BLOCK)
    slope16 = bias16 if slope16 is None else slope16
    w_f = wb.reshape(-1)
    pixels = oh * ow
    ints = np.array([in_lanes, wp, oh, ow, strides[0], strides[1], ACTIVATION_CODES[activation]], dtype=np.int64)
    floats = _job_floats(alpha, lo, hi)
    parallel = pixels * wb.size >= MIN_PARALLEL_MACS
    padded_shape = (n, x_shape[1], hp, wp) + tuple(x_shape[4:])
    layer_jobs = [pad_job(x_shape, pads)] if any(pads) else []
    layer_jobs.append(CompiledJob(jobs.DENSE, w_f, bias16, slope16, taps, ints, floats,
                                  lambda: _pixel_and_block_chunks(pixels, mb, parallel), padded_shape, out_shape,
                                  per_image=True))
    return BlockedLayer(layer_jobs, takes_residual=True)


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------
# Output pixels per tile of pool_nchw16c: 4 independent running maxima (or sums) instead of one chain.
POOL_PIXELS = 4


@njit(nogil=True, cache=True)
def pool_nchw16c(x, y, h, w, oh, ow, kh, kw, sh, sw, pt, pl, average, count_include_pad, h_end, w_end,
                 q0, q1, r0, r1):
    """Max or average pooling (dilation 1) of output rows ``r0:r1`` of NCHW16c blocks ``q0:q1``.

    Every output pixel is the lane-wise maximum, or sum divided by a count,
    of the vectors of its taps inside the image. Max: padding never enters
    (a window that covers no pixel at all, possible only with ``ceil_mode``
    and large pads, gives -inf, as ``pool_reference`` does). Average: the
    count is the taps inside the image, or with ``count_include_pad`` the
    taps inside the padded image (rows above ``h_end = H + pad_bottom``,
    columns left of ``w_end``), as ``minicnn.ops.pool.pool_reference`` counts.

    Along a row, the pixels whose taps all lie inside the row go in tiles
    of :data:`POOL_PIXELS`, each with its own running value, so the maxima
    (or sums) of different pixels overlap instead of waiting on one
    another; the few pixels at the edges go one at a time with their
    columns clipped (:func:`_pool_pixel`). A tile combines its taps in the
    same order as a single pixel, so the results are the same bits.
    """
    # Output columns whose taps all fall inside the row: oj * sw - pl >= 0 and oj * sw - pl + kw - 1 < w.
    inner0 = min(ow, (pl + sw - 1) // sw)
    inner1 = max(inner0, min(ow, (w - kw + pl) // sw + 1))
    tiles = (inner1 - inner0) // POOL_PIXELS
    step = sw * BLOCK  # from one output pixel's first tap to the next one's
    start = splat(0.0) if average else splat(-np.inf)
    for q in range(q0, q1):
        x_q = q * h * w * BLOCK
        for oi in range(r0, r1):
            top = oi * sh - pt
            u0 = max(0, -top)
            u1 = min(kh, h - top)
            rows_padded = min(kh, h_end - top)
            out_row = (q * oh + oi) * ow * BLOCK
            for oj in range(inner0):
                _pool_pixel(x, y, x_q, out_row, top, oj, u0, u1, rows_padded, w, kw, sw, pl, average,
                            count_include_pad, w_end)
            for t in range(tiles):
                oj = inner0 + t * POOL_PIXELS
                a0 = a1 = a2 = a3 = start
                for u in range(u0, u1):
                    i = x_q + ((top + u) * w + oj * sw - pl) * BLOCK
                    for v in range(kw):
                        a0 = _pool_step(a0, load(x, i), average)
                        a1 = _pool_step(a1, load(x, i + step), average)
                        a2 = _pool_step(a2, load(x, i + 2 * step), average)
                        a3 = _pool_step(a3, load(x, i + 3 * step), average)
                        i += BLOCK
                o = out_row + oj * BLOCK
                if average:  # every column of an inner pixel's window is inside the image
                    count = splat((rows_padded if count_include_pad else max(0, u1 - u0)) * kw)
                    a0, a1, a2, a3 = div(a0, count), div(a1, count), div(a2, count), div(a3, count)
                store(y, o, a0)
                store(y, o + BLOCK, a1)
                store(y, o + 2 * BLOCK, a2)
                store(y, o + 3 * BLOCK, a3)
            for oj in range(inner0 + tiles * POOL_PIXELS, ow):
                _pool_pixel(x, y, x_q, out_row, top, oj, u0, u1, rows_padded, w, kw, sw, pl, average,
                            count_include_pad, w_end)


@njit(inline="always")
def _pool_step(acc, value, average):
    """One tap into a running sum (average pooling) or maximum."""
    return add(acc, value) if average else maximum(acc, value)


@njit(inline="always")
def _pool_pixel(x, y, x_q, out_row, top, oj, u0, u1, rows_padded, w, kw, sw, pl, average, count_include_pad,
                w_end):
    """One output pixel of :func:`pool_nchw16c` with its tap columns clipped to the image."""
    left = oj * sw - pl
    v0 = max(0, -left)
    v1 = min(kw, w - left)
    acc = splat(0.0) if average else splat(-np.inf)
    for u in range(u0, u1):
        row = x_q + ((top + u) * w + left) * BLOCK
        for v in range(v0, v1):
            acc = _pool_step(acc, load(x, row + v * BLOCK), average)
    if average:
        if count_include_pad:
            count = rows_padded * min(kw, w_end - left)
        else:
            count = max(0, u1 - u0) * max(0, v1 - v0)
        acc = div(acc, splat(count))
    store(y, out_row + oj * BLOCK, acc)


def pool_blocked(xb: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], pads: tuple[int, int, int, int],
                 out_hw: tuple[int, int], average: bool = False, count_include_pad: bool = False) -> np.ndarray:
    """Max (or average) pooling of NCHW16c ``xb``, dilation 1, pads (top, left, bottom, right); split when large."""
    return pool_runner(xb.shape, kernel, strides, pads, out_hw, average, count_include_pad)(xb)


def pool_runner(x_shape: tuple, kernel: tuple[int, int], strides: tuple[int, int], pads: tuple[int, int, int, int],
                out_hw: tuple[int, int], average: bool = False, count_include_pad: bool = False):
    """:func:`pool_blocked` for inputs of shape ``x_shape``: ``run(xb)`` (see :func:`pointwise_runner`)."""
    n, cb, h, w, _ = x_shape
    oh, ow = out_hw
    out_shape = (n, cb, oh, ow, BLOCK)
    ints = np.array([h, w, oh, ow, kernel[0], kernel[1], strides[0], strides[1], pads[0], pads[1], bool(average),
                     bool(count_include_pad), h + pads[2], w + pads[3]], dtype=np.int64)
    parallel = n * cb * h * w * BLOCK >= MIN_PARALLEL_POOL_VALUES

    job = CompiledJob(jobs.POOL, _UNUSED, _UNUSED, _UNUSED, jobs.NO_TAPS, ints, _NO_FLOATS,
                      lambda: _plane_chunks(n * cb, oh, parallel), x_shape, out_shape, per_image=False)
    return BlockedLayer([job], takes_residual=False)


@njit(nogil=True, cache=True)
def global_mean_nchw16c(x, out, pixels, channels):
    """GlobalAveragePool from NCHW16c to NCHW: ``out[n * C + c]`` = the mean of channel c of image n.

    ``x`` is ``(N, CB, H, W, 16)`` flattened, ``out`` the ``(N, C, 1, 1)``
    result flattened (padding lanes dropped). One vector of 16 running sums
    per block, added pixel after pixel.
    """
    lanes = np.empty(BLOCK, dtype=np.float32)
    cb_count = -(-channels // BLOCK)
    images = x.size // (cb_count * pixels * BLOCK)
    count = splat(pixels)
    for i in range(images):
        for cb in range(cb_count):
            start = (i * cb_count + cb) * pixels * BLOCK
            acc = splat(0.0)
            for p in range(pixels):
                acc = add(acc, load(x, start + p * BLOCK))
            store(lanes, 0, div(acc, count))
            for k in range(min(BLOCK, channels - cb * BLOCK)):
                out[i * channels + cb * BLOCK + k] = lanes[k]


# ---------------------------------------------------------------------------
# Resize over H and W (nearest and linear)
# ---------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def resize_nearest_nchw16c(x, y, h, w, oh, ow, rows, cols, q0, q1, r0, r1):
    """``y[q, i, j] = x[q, rows[i], cols[j]]`` (16 lanes at a time), blocks ``q0:q1``, output rows ``r0:r1``.

    ``x`` and ``y`` are flattened. ``cpu_resize.nearest_2d`` in NCHW16c: an
    output row whose source row is the previous output row's (every second
    row of an x2 upsampling) is a copy of that row, if this call wrote it.
    """
    for q in range(q0, q1):
        x_q = q * h * w * BLOCK
        for i in range(r0, r1):
            dst = (q * oh + i) * ow * BLOCK
            if i > r0 and rows[i] == rows[i - 1]:
                for o in range(0, ow * BLOCK, BLOCK):
                    store(y, dst + o, load(y, dst - ow * BLOCK + o))
                continue
            src = x_q + rows[i] * w * BLOCK
            for j in range(ow):
                store(y, dst + j * BLOCK, load(x, src + cols[j] * BLOCK))


@njit(nogil=True, cache=True)  # no fastmath: the same roundings as cpu_resize.linear_2d, so the same bits
def resize_linear_nchw16c(x, y, h, w, oh, ow, rows_lo, rows_hi, rows_w, cols_lo, cols_hi, cols_w, q0, q1, r0, r1):
    """Bilinear resize, blocks ``q0:q1``, output rows ``r0:r1``: along H into a scratch row, then along W.

    ``cpu_resize.linear_2d`` in NCHW16c, with the same roundings.
    """
    row = np.empty(w * BLOCK, dtype=np.float32)
    one = np.float32(1)
    for q in range(q0, q1):
        x_q = q * h * w * BLOCK
        for i in range(r0, r1):
            w1 = splat(rows_w[i])
            w0 = splat(one - rows_w[i])
            top = x_q + rows_lo[i] * w * BLOCK
            bottom = x_q + rows_hi[i] * w * BLOCK
            for o in range(0, w * BLOCK, BLOCK):
                store(row, o, add(mul(load(x, top + o), w0), mul(load(x, bottom + o), w1)))
            dst = (q * oh + i) * ow * BLOCK
            for j in range(ow):
                v1 = splat(cols_w[j])
                v0 = splat(one - cols_w[j])
                store(y, dst + j * BLOCK, add(mul(load(row, cols_lo[j] * BLOCK), v0),
                                              mul(load(row, cols_hi[j] * BLOCK), v1)))


def resize_blocked(xb: np.ndarray, out_hw: tuple[int, int], mode: str, indices: tuple) -> np.ndarray:
    """Resize H and W of NCHW16c ``xb``, ``indices`` from ``minicnn.ops.resize.spatial_indices``; split when large."""
    return resize_runner(xb.shape, out_hw, mode, indices)(xb)


def resize_runner(x_shape: tuple, out_hw: tuple[int, int], mode: str, indices: tuple):
    """:func:`resize_blocked` for inputs of shape ``x_shape``: ``run(xb)`` (see :func:`pointwise_runner`)."""
    n, cb, h, w, _ = x_shape
    oh, ow = out_hw
    out_shape = (n, cb, oh, ow, BLOCK)
    if mode == "nearest":
        kernel, tables = resize_nearest_nchw16c, tuple(indices)
    else:
        kernel, tables = resize_linear_nchw16c, (*indices[0], *indices[1])
    parallel = n * cb * oh * ow * BLOCK >= MIN_PARALLEL_VALUES

    def run(xb: np.ndarray) -> np.ndarray:
        y = np.empty(out_shape, dtype=np.float32)
        _run_chunks(kernel, (xb.reshape(-1), y.reshape(-1), h, w, oh, ow, *tables), _plane_chunks(n * cb, oh, parallel))
        return y

    return run


# The kernels above carry simd's helpers inside their compiled code.
cache_guard.forget_if_changed(sys.modules[__name__], [simd])
