"""Numba CPU kernels for convolution: the fast path behind ``Conv`` / ``FusedConv`` (backend "numba").

The readable references live in ``minicnn.ops.conv``; every kernel here is
validated against them and against onnxruntime (``tests/test_ops_conv.py``)
and timed on the zoo's real shapes by ``benchmarks/bench_conv_cpu.py``.

Which kernel runs depends on the shape, because the three kinds of
convolution in a mobile CNN are limited by different things:

* **pointwise** (1x1, stride 1, no padding): the input, seen as a (C, H*W)
  matrix, already *is* its im2col matrix, so the layer is one GEMM
  ``W (M, C) @ X (C, H*W)`` written straight into the output. BLAS does it.
* **depthwise** (one input channel per group): 9 multiply-adds per output
  value for a 3x3 kernel, far too few for a GEMM to pay off; the time goes
  into reading memory. :func:`depthwise_conv3x3` (3x3, stride 1 or 2, the
  zoo's case) computes each output as one 9-term expression with the
  weights in registers, in one pass; :func:`depthwise_conv` (any kernel,
  stride, dilation) walks each channel keeping one output row of
  accumulators in L1. Both apply bias, residual and activation to each row
  before moving on.
* **dense 3x3, stride 1 or 2, few output channels** (detection heads, the
  stem and small layers of mobile detectors): :func:`conv3x3_direct` reads
  the zero-padded input (:func:`pad_planes`) directly, no column matrix.
  With M <= 64 output channels a GEMM has too few rows for BLAS to run at
  speed, and building the 9x larger column matrix costs more than the
  multiply-adds.
* **dense 3x3, stride 1, 32+ input and 16+ output channels, 100-1600
  output pixels** (classifiers' middle layers, RetinaFace's context
  modules): Winograd's F(2x2, 3x3) (:func:`winograd_input`, 16 GEMMs,
  :func:`winograd_output`): each 2x2 output tile costs 16 multiply-adds per
  input channel instead of 36, bought with additions in the transforms.
* **dense** (everything else): :func:`im2col_rows`
  builds the column matrix band by band (a few output rows at a time, so
  the band stays in L2 cache) into a buffer that is reused from call to
  call, and BLAS multiplies each band. On small outputs (the last layers
  of a classifier: 3x3 to 8x8 pixels) :func:`im2row` builds the same
  matrix transposed, from a channels-last copy of the input, because
  im2col's copies there are only a few values long.

Bias, residual and activation are applied by :func:`epilogue` on the GEMM's
output block right after the GEMM, while it is still in cache.

Threads (see ``minicnn.threads``): every kernel here is single-threaded and
releases the GIL (``nogil=True``). The driver :func:`conv2d` splits a
convolution into a few independent chunks per thread (bands of output rows,
blocks of output channels when the image is small, or blocks of channels
for depthwise) and runs them with ``threads.run_parallel``; each chunk does
its own im2col, a single-threaded BLAS GEMM and its epilogue. No thread
pool spins while another one works.

The driver is split in two: :func:`conv2d_runner` makes every decision
that depends only on shapes and weights (kernel, weight layout, chunks) and
returns ``run(x, residual)``, which allocates the output and calls the
kernels. :func:`conv2d` is both in one call; a session keeps the runner of
each convolution node per input shape (``minicnn.ops.conv``'s preparers),
so a small network does not redo those decisions in Python at every run.

Activations are encoded as small ints (``ACTIVATION_CODES``) and absent
optional inputs as dummy arrays, so each kernel has one signature; with
``cache=True`` a fresh process loads machine code from disk instead of
compiling (the benchmark reports this first-call time).

Version history (the fastest variant graduates here; numbers in the report
of ``benchmarks/bench_conv_cpu.py``):

1. im2col + ``np.matmul`` for every shape, NumPy bias/activation: the reference.
2. Numba ``prange`` kernels (im2col, epilogue, depthwise) + multi-threaded
   BLAS. Element-wise indexing with computed offsets kept Numba's
   negative-index checks and blocked vectorisation (depthwise 5x slower than
   onnxruntime); OpenBLAS's and Numba's threads fought on 2 cores (a
   256x14x14 1x1 convolution 80x slower on 2 threads than on 1).
3. 1-D slice views indexed from 0 (vectorised loops); one pool of plain
   worker threads owning the cores, single-threaded BLAS and kernels.
4. im2col in L2-sized bands of output rows, each multiplied as soon as it is
   built: 1.2-1.9x on 3x3 convolutions.
5. The activation chosen once per row instead of per value (a branch in the
   loop had made fused activations 4-10x slower than none); a dedicated 3x3
   depthwise kernel, 2-3x faster than the general one.
6. A direct kernel for 3x3 convolutions, stride 1 or 2, with at most 64
   output channels (the padded-row trick of :func:`conv3x3_direct`; stride
   2 through a split of the input into phases): on the 27 such shapes of
   the three detectors, 1.35-1.5x faster in all than banded im2col + BLAS
   at 1 thread (up to 3x on heads with 2-8 output channels; the 640x640
   stem 1.2-2x), detectors 1.1-1.2x faster end to end (this file). Tried
   and dropped: one tap per pass (no faster than im2col), all 9 taps per
   pass, 8 output channels per block, or 2 input channels per pass
   (registers or LLVM's overlap checks run out: 1.3-2.3x slower than 3 taps
   x 4 channels), runs of 256 or 1024 pixels instead of 512, a direct 1x1
   kernel (40 GFLOP/s, half of what BLAS reaches), and banding 1x1
   convolutions at 1 thread (no gain).
7. Tried and dropped for depthwise 3x3: the same padded-row trick (phase
   planes, runs of flat positions, 3 taps per pass), either over the whole
   padded image at once or channel by channel with the epilogue applied to
   whole runs. Measured on 15 zoo shapes at 1 thread: 1.2x faster at
   stride 2 without residual, 1.6-2.3x *slower* at stride 1; all in all
   1.5x slower than :func:`depthwise_conv3x3`, which stays. onnxruntime is
   2.4-5x faster than both on SCRFD's depthwise layers (its NCHWc layout
   puts 16 channels in one vector register, so small 20x20 planes cost no
   loop overhead); it stays minicnn's largest gap.
8. The direct 3x3 kernel's runs rounded up to whole 16-float vectors (a
   zeroed tail after the padded planes; the extra positions are never
   stored): LLVM's scalar remainder loop had run up to 15 positions per
   run at a fraction of the speed. 1.05-1.2x on the convolutions of 8x8 to
   32x32 planes of gender_cydral and age_cydral, equal on large planes (1
   thread, old and new interleaved in one process).
   Tried and dropped in the same round: a register-blocked kernel (4 output
   channels x 16 pixels as 64 scalar accumulators, written out so that
   LLVM's SLP vectoriser could pack them into 4 registers, the way
   onnxruntime's NCHWc kernels keep theirs): LLVM did emit 512-bit FMAs,
   but with shuffles and spills around them, 2.6-8.6 GFLOP/s against
   BLAS's 30-100 on the same 1x1 shapes; and accumulators in a small local
   array (LLVM keeps them in memory: 15-26 GFLOP/s). Spacing the 4
   channels' accumulators 16 floats further apart (against 4 KiB aliasing
   between channels 0 and 2) showed 2x in 2 of 8 processes and no change
   in 12 others: not adopted.
9. :func:`depthwise_conv3x3` at stride 1 computes two output rows per pass
   (rows i and i+1 read padded rows i..i+3; the middle two are loaded once
   for both): 6 vector loads per output vector instead of 9. Timed alone,
   the 9-tap loop over a padded plane ran at about 0.3 ns per output, more
   than its 9 multiply-adds per 16-wide vector need, so the loads looked
   like the limit. Old and new alternated 8 times in one process, twice,
   on SCRFD's and YuNet's plane sizes (288x20x20 to 16x320x320): median
   1.08-1.32x faster, identical outputs. Tried and dropped: four rows per
   pass (1.1-1.9x *slower*, probably out of registers); one flat loop over
   the whole padded plane (the padded-row trick, all 9 taps in one
   expression: 0.72-0.98x); bands of rows copied into an L1-sized buffer
   (no clear gain over two rows alone); at stride 2, phase planes made by
   :func:`pad_planes` per channel (2-3x slower) or two output rows sharing
   their even/odd split (0.9-1.4x, not consistent).
10. :func:`depthwise_conv3x3_flat` for stride 1 on planes up to 32 wide:
   item 9's flat loop again, now with *unsigned* flat indices. Numba
   wraps negative signed indices (a select per access), which had kept
   LLVM from vectorising the loop; unsigned indices skip the wrap. Each
   layer's old and new runner alternated 6 times in one process on its
   real input (the zoo's 3DDFA, BlazeFace and SCRFD): 512x8x8 62-64 us
   against 118-126 (1.9-2.0x), 256x15x15 1.7x, 128x30x30 1.25x, 384x6x6
   and 144-192x12x12 1.3-1.9x, 288x20x20 0.9-1.2x (4 of 5 faster); in
   3DDFA's run its 13 depthwise layers took 1.41-1.47 ms against
   1.92-2.35 ms (per-step timing, two processes each). A first version
   computed an offset as ``2 * pw`` (int64 times uint64, which NumPy's
   rules make float64): 2-4x *slower* than the row kernel until that was
   written ``pw + pw``. Tried and dropped first: 16 channels per vector
   (onnxruntime's NCHWc idea) inside the kernel, transposing each block
   of 16 planes into a (H, W, 16) buffer and back: the transposes alone
   (scalar, strided) cost more than the whole row kernel (288x20x20: 342
   against 97 us; 8x320x320: 9.9 ms against 0.3).
11. :func:`im2row` for dense convolutions with at most ``IM2ROW_MAX_PIXELS``
   output pixels and a kernel larger than 1x1. im2col copies one output
   row of one tap of one channel at a time; on age_cydral's 256x3x3
   layers that is 6912 copies of 3 values, 114 us of the layer's ~580
   (timed inside the model's runs), while im2row copies each tap's 256
   channels at once: 9 us. BLAS then multiplies ``W @ rows.T`` (a
   transposed operand), which cost it 3-12 % more on these thin outputs
   and 30-45 % more on 196-784 pixels, where im2col's rows are long
   enough to be cheap: hence the threshold. Per layer, old and new runner
   alternated on the real input at 1 thread: age_cydral's 8 layers
   (3x3 to 7x7 outputs) 1.07-1.28x, 2d106det's 512x6x6 -> 64 stride 2
   1.6x, FaceMesh's two 3x3 stride-3 layers 1.15x and 1.75x; whole
   age_cydral runs 1.11-1.19x. Left out: 1x1 kernels at stride 2
   (FER's), where im2row would copy the whole input to use a quarter of
   it (0.78-0.84x). Tried and dropped beside it: a Numba kernel taking
   ``rows`` as 4 dot products at a time (no BLAS packing of the
   weights): as fast as BLAS on these shapes, and no faster in the model.
12. Winograd F(2x2, 3x3) (:func:`_winograd_runner`) for dense 3x3 layers
   at stride 1 within the ``WINOGRAD_*`` limits. Transforms in Numba,
   additions only; the 16 GEMMs in BLAS, split between threads. A first
   layout (16, C, tiles) put the 16 values of a tile a multiple of 4 KiB
   apart, and the transforms ran 3-5x slower than with (C, 16, tiles).
   Against the kernel each shape had before, 1 thread, alternated in one
   process on random data: 1.2-1.9x on 32-256 channels at 3x3 to 40x40
   (direct kernel or im2row + BLAS before; gender_cydral's shapes
   1.3-1.8x); 2 threads 0.9-1.8x. Errors against a float64 convolution
   1.8-4.7e-7 of the output's range, the old kernels' 3.4-9.8e-7. Inside
   the models (per layer, real inputs): age_cydral's 64x14x14 pair
   1.44-1.51x, RetinaFace's seven 16-64 channel layers at 20x20 and 40x40
   1.03-1.38x; where it lost (weights larger than the pixels: age_cydral's
   256x3x3 0.7x, 128x7x7 0.85-0.9x; 2-8 output channels: SCRFD's heads
   0.6-0.85x) the limits keep the old kernels. Whole models, old and new
   sessions alternated: gender_cydral 1.23-1.25x, age_cydral 1.10x,
   RetinaFace within its noise (0.96x, ranges overlapping by 10 ms).
13. Tried and dropped (session of 2026-11-22, old and new alternated in one
   process): a 3-input-channel stem kernel adding all 27 taps of one output
   channel per pass (0.78-0.92x: LLVM made the 27 multiply-adds one
   dependency chain); 1x1 kernels with the input channels unrolled in
   generated code (LLVM stops vectorising past 16 channels x 4 outputs:
   2-8 GFLOP/s); a register-blocked 1x1 kernel of 8 channels x 32 pixels
   written with explicit vectors (``minicnn.kernels.simd``): its inner loop
   was the planned 32 FMAs, 4 loads and 16 broadcasts, and it ran no faster
   than :func:`pointwise_direct`. In NCHW a 1x1 layer reads C rows and
   writes M rows, each a separate stream through memory; the same vectors
   in the channel-blocked layout (``minicnn.kernels.cpu_blocked``) ran the
   zoo's 1x1 shapes 2.3-4.2x faster than this file's kernels or BLAS.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from .. import threads  # first: chooses Numba's threading layer before numba is imported
from numba import njit, uint64  # noqa: E402

ACTIVATION_CODES = {"": 0, "Relu": 1, "LeakyRelu": 2, "PRelu": 3, "Sigmoid": 4, "Clip": 5}

# Below this many multiply-adds a convolution runs on one thread: handing
# work to another thread costs microseconds to tens of microseconds (the GIL
# round trips of each chunk; see minicnn.threads), and a layer's data is cold
# in the other core's cache. (Measured with the earlier thread pool, whose
# hand-off cost 15-50 us.)
# Measured whole models at 2 threads (interleaved runs, 640x640 detectors),
# ms at a threshold of 4M / 8M / 16M multiply-adds: SCRFD 36.6 / 39.9 /
# 41.1, YuNet 25.3 / 25.6 / 28.5, RetinaFace 43.4 / 43.8 / 45.6, 2d106det
# 7.2 / 6.7 / 6.2, 3DDFA 9.6 / 9.4 / 10.0, w600k_mbf 22.3 / 21.6 / 21.3.
# The small models gain nothing from a second thread at all; 8M is the
# compromise.
MIN_PARALLEL_MACS = 8_000_000
# A depthwise multiply-add costs several times a dense one (each input value
# is used 9 times, not 9 * M; the kernel waits on memory): 7.4M of them took
# 577 us on RetinaFace's 8x320x320 layer at 1 thread, where 8M dense ones take
# 100-250 us. Its threshold is set for the same ~150 us of work.
MIN_PARALLEL_DEPTHWISE_MACS = 2_000_000

# im2col works in bands of output rows whose columns take about this many
# bytes: small enough to stay in a core's L2 cache between being written and
# being multiplied. Measured on 64x80x80 3x3 convolutions: 1.2-1.9x faster
# than building all columns first (benchmarks/bench_conv_cpu.py).
BAND_BYTES = 1 << 20

# Work is split into one chunk per thread per CHUNK_MACS multiply-adds, at
# most MAX_CHUNKS_PER_THREAD per thread (see threads.run_parallel): several
# chunks let free threads cover for a busy one, each chunk costs a hand-off.
CHUNK_MACS = 32_000_000
MAX_CHUNKS_PER_THREAD = 4
# Output images smaller than this many pixels per thread are split by output
# channel instead of by rows (row bands would make GEMMs too thin), in blocks
# of at least this many channels.
MIN_BAND_PIXELS = 1024
MIN_BLOCK_CHANNELS = 16

# Dense 3x3 convolutions (stride 1 or 2) with at most this many output
# channels run :func:`conv3x3_direct` instead of im2col + BLAS. Measured on
# the zoo's shapes (3-64 input channels, 20x20 to 640x640): the direct kernel
# is 1.2-3x faster up to 32 output channels and 1.0-1.2x at 64; on wider
# layers BLAS's register-blocked GEMM wins.
DIRECT_MAX_CHANNELS = 64
# ... and at least this many output pixels: the kernel's pixel loops are vectorised, so on a
# 3x3 output (w600k_mbf's 512x6x6 -> 64, stride 2) its loops are all overhead (1.9x slower than BLAS).
DIRECT_MIN_PIXELS = 16
# 1x1 convolutions run :func:`pointwise_direct` instead of BLAS when the
# weight matrix is small (C * M <= 2048), with 4..40 output channels (fewer
# would leave most of the 4-channel block empty) on at least 4096 pixels.
# Measured on the zoo's shapes at 1 thread: 1.2-1.6x faster on large images
# with few channels (16x320x320 -> 16, 16x160x160 -> 32, 64x80x80 -> 4..20);
# BLAS stays ahead with 64 output channels and on 40x40 images or smaller.
POINTWISE_DIRECT_MAX_WEIGHTS = 2048
POINTWISE_DIRECT_CHANNELS = (4, 40)
POINTWISE_DIRECT_MIN_PIXELS = 4096
# The direct kernel accumulates DIRECT_PIXELS output pixels of 4 output
# channels at a time: 4 x 512 float32 = 8 KiB of accumulators, which stay in
# L1 cache while every input channel and tap is added into them.
DIRECT_PIXELS = 512
# ... in runs whose length is rounded up to a multiple of DIRECT_VECTOR (16 float32: one AVX-512 register),
# so that LLVM's vector loop covers the whole run and its scalar remainder loop never runs; the extra
# positions are garbage, computed and never stored, read from a zeroed tail of the padded planes.
DIRECT_VECTOR = 16
# Depthwise 3x3 at stride 1 on outputs at most this wide runs :func:`depthwise_conv3x3_flat` (one vector
# loop over the whole padded plane) instead of row by row: rows this short leave the row loop's vector
# code unused. Measured at 1 thread on the zoo's layers with their real inputs (version history, item
# 10): 1.3-2.0x faster on 4x4 to 15x15 planes, 1.1-1.4x on 20x20 to 30x30; on 60x60 the row kernel
# was ahead (0.9x on random data).
FLAT_MAX_WIDTH = 32
# Dense convolutions (kernels larger than 1x1) that go through BLAS build their GEMM operand with
# :func:`im2row` instead of :func:`im2col_rows` when the output has at most this many pixels. im2col copies
# one output row of one tap of one channel at a time: on a 3x3 output that is 3 values per copy, and 256
# channels x 9 taps x 3 rows = 6912 copies took 113 us, while :func:`im2row` copies each tap's C channels at
# once (6.5 us). BLAS then multiplies by the operand transposed, 3-12 % slower on thin outputs and 30-45 %
# on 196-784 pixels: measured on the zoo's shapes at 1 thread, the sum of the two was clearly ahead up to
# 64 pixels and even at 196-225 (version history, item 11).
IM2ROW_MAX_PIXELS = 64
# Dense 3x3 convolutions at stride 1 with at least WINOGRAD_MIN_CHANNELS input channels and
# WINOGRAD_MIN_PIXELS to WINOGRAD_MAX_PIXELS output pixels run Winograd's F(2x2, 3x3) (:func:`winograd_input`,
# 16 GEMMs, :func:`winograd_output`): 16 multiply-adds per 2x2 output tile and input channel instead of 36.
# Measured at 1 thread against the kernel that ran them before (direct, or im2row + BLAS): 1.3-1.9x on
# 32-64 channels at 14x14 to 40x40; slower with 3-16 input channels (the transforms dominate: 0.5-0.8x)
# and on 80x80 (0.9x: the 16 GEMMs' operands no longer fit in cache). On small outputs it is fast alone
# but slow inside a model: its transformed weights are 16/9 of the originals, and a layer whose weights
# outweigh its pixels (age_cydral's 256 channels on 3x3, 128 on 6x6 and 7x7) waits for memory: 0.7-0.9x
# there, 1.4-1.5x on the same model's 64 channels at 14x14. With fewer than WINOGRAD_MIN_OUT_CHANNELS
# output channels the 16 GEMMs are too thin (SCRFD's heads with 2 and 8: 0.6-0.85x; 16 to 64 channels on
# RetinaFace's 20x20 and 40x40 maps: 1.03-1.38x). Version history, item 12.
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_OUT_CHANNELS = 16
WINOGRAD_MIN_PIXELS = 100
WINOGRAD_MAX_PIXELS = 1600


@njit(inline="always")
def _activate_row(row, code, alpha, slope, lo, hi):
    """Activation ``code`` (see ``ACTIVATION_CODES``) in place on the 1-D view ``row`` of one channel.

    The choice is made once per row, not per value: a branch inside the loop
    would stop the compiler from vectorising it (measured 4-10x slower).
    ``slope`` is PRelu's slope for this channel.
    """
    if code == 1:
        for p in range(row.shape[0]):
            row[p] = max(row[p], np.float32(0))
    elif code == 2:
        for p in range(row.shape[0]):
            v = row[p]
            row[p] = v if v >= 0 else v * alpha
    elif code == 3:
        for p in range(row.shape[0]):
            v = row[p]
            row[p] = v if v >= 0 else v * slope
    elif code == 4:
        for p in range(row.shape[0]):
            row[p] = np.float32(1) / (np.float32(1) + np.exp(-row[p]))
    elif code == 5:
        for p in range(row.shape[0]):
            row[p] = min(max(row[p], lo), hi)


@njit(nogil=True, cache=True, fastmath=True)
def epilogue(y, m0, m1, p0, p1, bias, code, alpha, slope, lo, hi, residual, has_residual):
    """In place on the block ``y[m0:m1, p0:p1]`` of one image's (M, P) output:
    ``y = activation(y + bias[m] + residual)``.

    ``residual`` is the image's (M, P) residual when ``has_residual``, else a
    dummy (1, 1) array (one signature for both cases).
    """
    for m in range(m0, m1):
        b = bias[m]
        row = y[m, p0:p1]
        if has_residual:
            res = residual[m, p0:p1]
            for p in range(p1 - p0):
                row[p] += b + res[p]
        else:
            for p in range(p1 - p0):
                row[p] += b
        _activate_row(row, code, alpha, slope[m], lo, hi)


@njit(nogil=True, cache=True)
def im2col_rows(x, cols, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, out_w, i0, i1):
    """im2col of output rows ``i0:i1`` of one image ``x`` (C, H, W) into ``cols`` (C*kH*kW, (i1-i0)*OW).

    Row ``(c, u, v)`` of ``cols`` holds, for every output pixel, the input
    value that kernel tap ``(c, u, v)`` reads there (zero in the padding).
    For each tap the range of output columns whose input lies inside the
    image is computed once; that range is copied without a test per element.
    """
    channels, height, width = x.shape
    taps = k_h * k_w
    for r in range(channels * taps):
        c = r // taps
        u = (r % taps) // k_w
        v = r % k_w
        col_off = v * d_w - pad_left
        # Output columns j with 0 <= j*s_w + col_off < width.
        j_lo = min(max(0, (-col_off + s_w - 1) // s_w), out_w)
        j_hi = max(min(out_w, (width - 1 - col_off) // s_w + 1), j_lo)
        count = j_hi - j_lo
        for i in range(i0, i1):
            out_row = cols[r, (i - i0) * out_w:(i - i0 + 1) * out_w]
            row = i * s_h + u * d_h - pad_top
            if row < 0 or row >= height:
                out_row[:] = 0
                continue
            out_row[:j_lo] = 0
            out_row[j_hi:] = 0
            # 1-D views indexed from 0 let LLVM drop Numba's negative-index checks and vectorise.
            dst = out_row[j_lo:j_hi]
            if s_w == 1:  # a contiguous slice: Numba types it as such and emits vector copies
                src1 = x[c, row, j_lo + col_off:j_hi + col_off]
                for j in range(count):
                    dst[j] = src1[j]
            else:
                src = x[c, row, j_lo * s_w + col_off:(j_hi - 1) * s_w + col_off + 1:s_w]
                for j in range(count):
                    dst[j] = src[j]


@njit(nogil=True, cache=True)
def im2row(x, xh, rows, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, out_w):
    """The im2col matrix transposed, with its K axis in (tap, channel) order: for small outputs.

    ``rows[p, (u*kW + v)*C + c]`` is the input value under kernel tap
    ``(u, v)`` of channel ``c`` at output pixel ``p = i*OW + j`` (zero in the
    padding), for one image ``x`` (C, H, W); ``rows`` is (OH*OW, kH*kW*C).
    First ``x`` is copied into ``xh`` (H, W, C), channels last, so that the
    C values one tap reads at one pixel are contiguous: each (pixel, tap)
    is then one vectorised copy of C values, instead of im2col's one short
    copy per (channel, tap, output row). The weights must be in the same
    (M, kH, kW, C) order; then ``W @ rows.T`` is the convolution.
    """
    channels, height, width = x.shape
    out_h = rows.shape[0] // out_w
    for c in range(channels):
        for r in range(height):
            for t in range(width):
                xh[r, t, c] = x[c, r, t]
    for i in range(out_h):
        for j in range(out_w):
            dst = rows[i * out_w + j]
            for u in range(k_h):
                r = i * s_h + u * d_h - pad_top
                for v in range(k_w):
                    t = j * s_w + v * d_w - pad_left
                    seg = dst[(u * k_w + v) * channels:(u * k_w + v + 1) * channels]
                    if 0 <= r < height and 0 <= t < width:
                        src = xh[r, t]
                        for c in range(channels):
                            seg[c] = src[c]
                    else:
                        for c in range(channels):
                            seg[c] = 0


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """Winograd F(2x2, 3x3) filter transform ``U = G g G^T`` of (M, C, 3, 3) weights, as (16, M, C) float32.

    ``G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]``;
    ``U[4*i + j]`` is entry (i, j) of every filter's 4x4 transform (computed
    in float64, once per layer).
    """
    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    u = np.einsum("ai,mcij,bj->abmc", g, w.astype(np.float64), g)
    return np.ascontiguousarray(u.reshape(16, w.shape[0], w.shape[1]), dtype=np.float32)


@njit(nogil=True, cache=True)
def winograd_input(padded, v, tiles_w):
    """Winograd F(2x2, 3x3) input transform of one zero-padded image into ``v`` (C, 16, tiles).

    ``padded`` (C, 2 * tiles_h + 2, 2 * tiles_w + 2) is the image with its
    padding, zeros past it (:func:`pad_planes` at stride 1). Output tile
    ``t = a * tiles_w + b`` (output pixels ``2a..2a+1`` x ``2b..2b+1``)
    reads the 4x4 patch ``d`` at ``(2a, 2b)``; ``v[c, 4*i + j, t]`` is entry
    (i, j) of ``B^T d B`` with ``B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1,
    1, 0], [0, 1, 0, -1]]``: only additions. The 16 values of a tile go to
    16 rows 1 tile apart ((C, 16, tiles), not (16, C, tiles): planes a
    multiple of 4 KiB apart made every store of a tile hit the same L1
    cache set, 3-5x slower).
    """
    channels, n_rows = padded.shape[0], padded.shape[1]
    tiles_h = (n_rows - 2) // 2
    for c in range(channels):
        plane = padded[c]
        out = v[c]
        for a in range(tiles_h):
            r0 = plane[2 * a]
            r1 = plane[2 * a + 1]
            r2 = plane[2 * a + 2]
            r3 = plane[2 * a + 3]
            for b in range(tiles_w):
                q = 2 * b
                t = a * tiles_w + b
                # B^T d, one column of the patch at a time: rows 0 - 2, 1 + 2, 2 - 1, 1 - 3.
                c0 = (r0[q] - r2[q], r1[q] + r2[q], r2[q] - r1[q], r1[q] - r3[q])
                c1 = (r0[q + 1] - r2[q + 1], r1[q + 1] + r2[q + 1], r2[q + 1] - r1[q + 1], r1[q + 1] - r3[q + 1])
                c2 = (r0[q + 2] - r2[q + 2], r1[q + 2] + r2[q + 2], r2[q + 2] - r1[q + 2], r1[q + 2] - r3[q + 2])
                c3 = (r0[q + 3] - r2[q + 3], r1[q + 3] + r2[q + 3], r2[q + 3] - r1[q + 3], r1[q + 3] - r3[q + 3])
                # ... times B: columns 0 - 2, 1 + 2, 2 - 1, 1 - 3.
                for i in range(4):
                    out[4 * i, t] = c0[i] - c2[i]
                    out[4 * i + 1, t] = c1[i] + c2[i]
                    out[4 * i + 2, t] = c2[i] - c1[i]
                    out[4 * i + 3, t] = c1[i] - c3[i]


@njit(nogil=True, cache=True)
def winograd_output(m, y, tiles_w):
    """Winograd F(2x2, 3x3) output transform: ``m`` (M, 16, tiles) -> ``y`` (M, OH, OW) of one image.

    Output tile ``t = a * tiles_w + b`` is ``A^T m_t A`` with ``A^T = [[1, 1,
    1, 0], [0, 1, -1, -1]]``, the 2x2 output pixels at ``(2a, 2b)``; pixels
    past an odd output's last row or column are dropped.
    """
    c_out, out_h, out_w = y.shape
    tiles_h = m.shape[2] // tiles_w
    for ch in range(c_out):
        src = m[ch]
        for a in range(tiles_h):
            i0 = 2 * a
            top = y[ch, i0]
            bottom = y[ch, min(i0 + 1, out_h - 1)]
            for b in range(tiles_w):
                t = a * tiles_w + b
                # A^T m: rows 0 + 1 + 2 and 1 - 2 - 3 of the tile, per column j.
                s = (src[0, t] + src[4, t] + src[8, t], src[1, t] + src[5, t] + src[9, t],
                     src[2, t] + src[6, t] + src[10, t], src[3, t] + src[7, t] + src[11, t])
                d = (src[4, t] - src[8, t] - src[12, t], src[5, t] - src[9, t] - src[13, t],
                     src[6, t] - src[10, t] - src[14, t], src[7, t] - src[11, t] - src[15, t])
                j0 = 2 * b
                # ... times A: columns 0 + 1 + 2 and 1 - 2 - 3 (no bottom row in an odd output's last tile row).
                if i0 + 1 < out_h:
                    bottom[j0] = d[0] + d[1] + d[2]
                    if j0 + 1 < out_w:
                        bottom[j0 + 1] = d[1] - d[2] - d[3]
                top[j0] = s[0] + s[1] + s[2]
                if j0 + 1 < out_w:
                    top[j0 + 1] = s[1] - s[2] - s[3]


@njit(nogil=True, cache=True, fastmath=True)
def depthwise_conv(x, w, bias, y, s_h, s_w, d_h, d_w, pad_top, pad_left, code, alpha, slope, lo, hi,
                   residual, has_residual, nm0, nm1):
    """Depthwise convolution with the epilogue fused, for (image, channel) pairs ``nm0:nm1``.

    ``x`` is (N, C, H, W), ``y`` (N, M, OH, OW), ``w`` (M, kH, kW); output
    channel ``m`` reads input channel ``m // (M // C)`` (M = C times the depth
    multiplier, usually 1). For each output row, a buffer of OW accumulators
    starts at the bias; each kernel tap adds ``weight * input`` over the range
    of columns where the input is inside the image (a contiguous, vectorised
    loop when the stride is 1); then the row goes through residual +
    activation and is stored. No temporary array the size of the image.
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    c_out, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    multiplier = c_out // channels
    acc = np.empty(out_w, dtype=np.float32)
    for nm in range(nm0, nm1):
        n = nm // c_out
        m = nm % c_out
        c = m // multiplier
        b = bias[m]
        s = slope[m]
        for i in range(out_h):
            acc[:] = b
            for u in range(k_h):
                row = i * s_h + u * d_h - pad_top
                if row < 0 or row >= height:
                    continue
                for v in range(k_w):
                    weight = w[m, u, v]
                    col_off = v * d_w - pad_left
                    j_lo = min(max(0, (-col_off + s_w - 1) // s_w), out_w)
                    j_hi = max(min(out_w, (width - 1 - col_off) // s_w + 1), j_lo)
                    dst = acc[j_lo:j_hi]
                    if s_w == 1:  # contiguous: vectorised multiply-adds
                        src1 = x[n, c, row, j_lo + col_off:j_hi + col_off]
                        for j in range(j_hi - j_lo):
                            dst[j] += weight * src1[j]
                    else:
                        src = x[n, c, row, j_lo * s_w + col_off:(j_hi - 1) * s_w + col_off + 1:s_w]
                        for j in range(j_hi - j_lo):
                            dst[j] += weight * src[j]
            out = y[n, m, i]
            if has_residual:
                res = residual[n, m, i]
                for j in range(out_w):
                    out[j] = acc[j] + res[j]
            else:
                out[:] = acc
            _activate_row(out, code, alpha, s, lo, hi)


@njit(inline="always")
def _start_accumulators(acc, n, bias, m):
    """Set the first ``n`` accumulators of output channels ``m .. m+3`` to their biases.

    The accumulators of the 4 channels are the 4 quarters of ``acc``, at
    constant offsets (DIRECT_PIXELS) from each other: that lets LLVM see
    that they never overlap, and vectorise the loops that update them.
    """
    b0, b1, b2, b3 = bias[m], bias[m + 1], bias[m + 2], bias[m + 3]
    for p in range(n):
        acc[p] = b0
        acc[DIRECT_PIXELS + p] = b1
        acc[2 * DIRECT_PIXELS + p] = b2
        acc[3 * DIRECT_PIXELS + p] = b3


@njit(inline="always")
def _add_three_inputs(acc, n, x0, x1, x2, w):
    """Add ``w[k, 0] * x0 + w[k, 1] * x1 + w[k, 2] * x2`` to the first ``n`` accumulators of channel k = 0..3.

    ``w`` is a (4, 3) view of the weights: for a 3x3 kernel the 3 taps of
    one kernel row of one input channel (``x0, x1, x2`` then hold the input
    under each tap), for a 1x1 kernel 3 input channels. Per pixel: 3 loads
    shared by 4 output channels, 12 multiply-adds, 4 accumulator updates.
    """
    w00, w01, w02 = w[0, 0], w[0, 1], w[0, 2]
    w10, w11, w12 = w[1, 0], w[1, 1], w[1, 2]
    w20, w21, w22 = w[2, 0], w[2, 1], w[2, 2]
    w30, w31, w32 = w[3, 0], w[3, 1], w[3, 2]
    for p in range(n):
        a, b, d = x0[p], x1[p], x2[p]
        acc[p] += w00 * a + w01 * b + w02 * d
        acc[DIRECT_PIXELS + p] += w10 * a + w11 * b + w12 * d
        acc[2 * DIRECT_PIXELS + p] += w20 * a + w21 * b + w22 * d
        acc[3 * DIRECT_PIXELS + p] += w30 * a + w31 * b + w32 * d


@njit(inline="always")
def _add_one_input(acc, n, x0, w):
    """Add ``w[k] * x0`` to the first ``n`` accumulators of channel k = 0..3 (the 1x1 kernel's last channels)."""
    w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
    for p in range(n):
        a = x0[p]
        acc[p] += w0 * a
        acc[DIRECT_PIXELS + p] += w1 * a
        acc[2 * DIRECT_PIXELS + p] += w2 * a
        acc[3 * DIRECT_PIXELS + p] += w3 * a


@njit(inline="always")
def _finish_segment(acc, start, y, m, i, j0, j1, code, alpha, slope, lo, hi, residual, has_residual):
    """Store ``acc[start + j0 : start + j1]`` as ``y[m, i, j0:j1]`` through residual and activation."""
    src = acc[start + j0:start + j1]
    out = y[m, i, j0:j1]
    if has_residual:
        res = residual[m, i, j0:j1]
        for j in range(j1 - j0):
            out[j] = src[j] + res[j]
    else:
        for j in range(j1 - j0):
            out[j] = src[j]
    _activate_row(out, code, alpha, slope[m], lo, hi)


@njit(nogil=True, cache=True)
def pad_planes(x, planes, stride, pad_top, pad_left, p_w, n_rows):
    """Zero-pad one image ``x`` (C, H, W) and split it into ``stride**2`` phases: ``planes`` (C, stride**2, L).

    Phase ``(a, b)`` of channel ``c`` is the padded image's pixels
    ``(r * stride + a, q * stride + b)``, stored at ``planes[c, a * stride + b,
    r * p_w + q]``: ``n_rows`` rows of ``p_w`` pixels laid end to end, then
    zeros up to L. With stride 1 there is one phase, the padded image
    itself. Pixels outside the image (the padding, and rows or columns the
    image does not reach) are zero. Stride 1 or 2 only (the strides
    :func:`conv3x3_direct` runs).
    """
    channels, height, width = x.shape
    for c in range(channels):
        for phase in range(stride * stride):
            planes[c, phase, n_rows * p_w:] = 0
        for a in range(stride):
            for r in range(n_rows):
                src_r = r * stride + a - pad_top
                if stride == 1:
                    dst = planes[c, 0, r * p_w:(r + 1) * p_w]
                    dst[:] = 0
                    if 0 <= src_r < height:
                        # Image column t lands at q = t + pad_left, as far as the row reaches.
                        inside = dst[pad_left:pad_left + width]
                        src = x[c, src_r]
                        for q in range(inside.shape[0]):
                            inside[q] = src[q]
                    continue
                # Stride 2: image column t lands in column phase (t + pad_left) % 2 at q = (t + pad_left) // 2.
                # Even and odd image columns are copied in one loop: a pair of neighbouring loads LLVM
                # vectorises (one strided loop per phase measured 6x slower).
                even = planes[c, 2 * a + pad_left % 2, r * p_w:(r + 1) * p_w]
                odd = planes[c, 2 * a + (pad_left + 1) % 2, r * p_w:(r + 1) * p_w]
                even[:] = 0
                odd[:] = 0
                if src_r < 0 or src_r >= height:
                    continue
                to_even = even[pad_left // 2:]
                to_odd = odd[(pad_left + 1) // 2:]
                n_even = min((width + 1) // 2, to_even.shape[0])
                n_odd = min(width // 2, to_odd.shape[0])
                src = x[c, src_r]
                both = min(n_even, n_odd)
                for k in range(both):
                    to_even[k] = src[2 * k]
                    to_odd[k] = src[2 * k + 1]
                for k in range(both, n_even):
                    to_even[k] = src[2 * k]
                for k in range(both, n_odd):
                    to_odd[k] = src[2 * k + 1]


@njit(nogil=True, cache=True, fastmath=True)
def conv3x3_direct(planes, stride, p_w, w, bias, y, code, alpha, slope, lo, hi, residual, has_residual, i0, i1):
    """Dense 3x3 convolution (stride 1 or 2) of one image, output rows ``i0:i1``, epilogue fused; no im2col.

    ``planes`` is the image zero-padded and split into phases by
    :func:`pad_planes`, in rows of ``p_w`` = OW + 2 // stride pixels; ``w``
    is (M4, C, 3, 3) with M4 a multiple of 4 (zero filters appended) and
    ``bias`` (M4,); ``y`` is the image's (M, OH, OW) output and
    ``residual`` its (M, OH, OW) residual, or a dummy (1, 1, 1) array.

    The padded-row trick: give the output rows the planes' width ``p_w``
    too, so output "pixel" ``q = i * p_w + j`` (the last ``p_w - OW`` of
    each row are garbage, never stored). Tap ``(u, v)`` of output ``(i, j)``
    reads padded pixel ``(i*s + u, j*s + v)``, which is pixel
    ``(i + u // s, j + v // s)`` of phase ``(u % s, v % s)``, i.e. index
    ``q + (u // s) * p_w + v // s`` of that phase's plane: for a run of
    consecutive ``q`` every tap reads one contiguous slice, whatever the row
    boundaries and the stride. So the kernel walks runs of DIRECT_PIXELS
    positions, and for 4 output channels at once adds up, over input
    channels and kernel rows, 3 taps per pass (:func:`_add_three_inputs`),
    a loop LLVM vectorises. (All 9 taps per pass need more registers than
    there are: slower.) Each finished row segment is then stored through
    bias, residual and activation while the accumulators are still in L1.
    """
    cin = planes.shape[0]
    c_out, out_h, out_w = y.shape
    acc = np.empty(4 * DIRECT_PIXELS, dtype=np.float32)
    q_end = (i1 - 1) * p_w + out_w  # just past the last real output pixel
    for q0 in range(i0 * p_w, q_end, DIRECT_PIXELS):
        n = min(DIRECT_PIXELS, q_end - q0)
        n_vec = -(-n // DIRECT_VECTOR) * DIRECT_VECTOR  # computed; the last n_vec - n are garbage, never stored
        for m in range(0, c_out, 4):
            _start_accumulators(acc, n_vec, bias, m)
            for c in range(cin):
                for u in range(3):
                    row_phase = (u % stride) * stride
                    start = q0 + (u // stride) * p_w
                    tap0 = planes[c, row_phase, start:start + n_vec]
                    tap1 = planes[c, row_phase + (1 % stride), start + 1 // stride:start + 1 // stride + n_vec]
                    tap2 = planes[c, row_phase + (2 % stride), start + 2 // stride:start + 2 // stride + n_vec]
                    _add_three_inputs(acc, n_vec, tap0, tap1, tap2, w[m:m + 4, c, u])
            # Store the real pixels: the part of each output row i that falls inside this run.
            for k in range(min(4, c_out - m)):
                for i in range(q0 // p_w, (q0 + n - 1) // p_w + 1):
                    j0 = max(q0 - i * p_w, 0)
                    j1 = min(q0 + n - i * p_w, out_w)
                    if j1 > j0:
                        _finish_segment(acc, k * DIRECT_PIXELS + i * p_w - q0, y, m + k, i, j0, j1, code, alpha,
                                        slope, lo, hi, residual, has_residual)


@njit(nogil=True, cache=True, fastmath=True)
def pointwise_direct(x, w, bias, y, code, alpha, slope, lo, hi, residual, has_residual, p0, p1):
    """1x1 convolution of one image's pixels ``p0:p1`` without BLAS, epilogue fused: for small weight matrices.

    ``x`` is the image as a (C, P) matrix, ``w`` (M4, C) with M4 a multiple
    of 4 (zero rows appended), ``bias`` (M4,), ``y`` the (M, P) output and
    ``residual`` the (M, P) residual or a dummy (1, 1) array. The same
    scheme as :func:`conv3x3_direct`: runs of DIRECT_PIXELS pixels, 4
    output channels at a time, 3 input channels per pass, every output
    written once, already finished. BLAS's GEMM instead copies ("packs") its
    inputs, writes the output, and the epilogue reads and writes it again:
    with 8-40 input channels that memory traffic is the whole cost.
    """
    channels = x.shape[0]
    c_out = y.shape[0]
    acc = np.empty(4 * DIRECT_PIXELS, dtype=np.float32)
    for q0 in range(p0, p1, DIRECT_PIXELS):
        n = min(DIRECT_PIXELS, p1 - q0)
        for m in range(0, c_out, 4):
            _start_accumulators(acc, n, bias, m)
            full = channels - channels % 3
            for c in range(0, full, 3):
                _add_three_inputs(acc, n, x[c, q0:q0 + n], x[c + 1, q0:q0 + n], x[c + 2, q0:q0 + n],
                                  w[m:m + 4, c:c + 3])
            for c in range(full, channels):
                _add_one_input(acc, n, x[c, q0:q0 + n], w[m:m + 4, c])
            for k in range(min(4, c_out - m)):
                out = y[m + k, q0:q0 + n]
                src = acc[k * DIRECT_PIXELS:k * DIRECT_PIXELS + n]
                if has_residual:
                    res = residual[m + k, q0:q0 + n]
                    for j in range(n):
                        out[j] = src[j] + res[j]
                else:
                    for j in range(n):
                        out[j] = src[j]
                _activate_row(out, code, alpha, slope[m + k], lo, hi)

@njit(inline="always")
def _finish_plane(plane, residual, n, m, has_residual, code, alpha, slope, lo, hi):
    """Residual (channel ``m`` of image ``n``) and activation applied in place to a finished output plane, flat."""
    if has_residual:
        res = residual[n, m].reshape(plane.size)
        for p in range(plane.size):
            plane[p] += res[p]
    _activate_row(plane, code, alpha, slope[m], lo, hi)


@njit(inline="always")
def _taps3(p, top, q, b, w00, w01, w02, w10, w11, w12, w20, w21, w22):
    """Bias + the 9 products of the 3x3 window of plane ``p`` whose top-left pixel is ``(top, q)``."""
    return (b + w00 * p[top, q] + w01 * p[top, q + 1] + w02 * p[top, q + 2]
            + w10 * p[top + 1, q] + w11 * p[top + 1, q + 1] + w12 * p[top + 1, q + 2]
            + w20 * p[top + 2, q] + w21 * p[top + 2, q + 1] + w22 * p[top + 2, q + 2])


@njit(nogil=True, cache=True, fastmath=True)
def depthwise_conv3x3(x, w, bias, y, s_h, s_w, pad_top, pad_left, code, alpha, slope, lo, hi,
                      residual, has_residual, nm0, nm1):
    """:func:`depthwise_conv` specialised to the zoo's common case: 3x3 kernel, no dilation.

    Each channel is first copied into a zero-bordered buffer (the padding made
    real), so every output is an interior one: one expression of 9 products
    with the 9 weights in registers, no test per tap, no special border
    code. Mobile networks have many small planes (288 channels of 20x20)
    where border handling would otherwise cost more than the arithmetic.
    Strides 1 and 2 get their own loops: with a constant stride the compiler
    knows every index is non-negative and vectorises. Stride 1 computes two
    output rows per pass, sharing the loads of the two input rows they have
    in common (version history, item 9).
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    c_out = w.shape[0]
    out_h, out_w = y.shape[2], y.shape[3]
    multiplier = c_out // channels
    # The padded region the windows read: rows 0 .. (out_h-1)*s_h + 2, image row r at buffer row r + pad_top.
    padded = np.zeros(((out_h - 1) * s_h + 3, (out_w - 1) * s_w + 3), dtype=np.float32)
    even = np.empty((3, out_w + 1), dtype=np.float32)  # stride 2: the even and odd columns of a window's rows
    odd = np.empty((3, out_w), dtype=np.float32)
    row_lo, row_hi = max(0, -pad_top), min(height, padded.shape[0] - pad_top)
    col_lo, col_hi = max(0, -pad_left), min(width, padded.shape[1] - pad_left)
    for nm in range(nm0, nm1):
        n = nm // c_out
        m = nm % c_out
        c = m // multiplier
        width_in = col_hi - col_lo
        for r in range(row_lo, row_hi):
            # Row views indexed from 0: LLVM then knows no index is negative and vectorises the copy.
            dst = padded[r + pad_top, col_lo + pad_left:col_lo + pad_left + width_in]
            src_row = x[n, c, r, col_lo:col_hi]
            for q in range(width_in):
                dst[q] = src_row[q]
        b = bias[m]
        w00, w01, w02 = w[m, 0, 0], w[m, 0, 1], w[m, 0, 2]
        w10, w11, w12 = w[m, 1, 0], w[m, 1, 1], w[m, 1, 2]
        w20, w21, w22 = w[m, 2, 0], w[m, 2, 1], w[m, 2, 2]
        # Rows and columns are indexed on 2-D arrays, not through per-row views: each view costs
        # reference-count updates, which on 20-pixel rows cost more than the arithmetic.
        i_first = 0
        if s_h == 1 and s_w == 1:
            # Two output rows per pass: they share two of their four input rows, so 12 loads feed 18
            # multiply-adds instead of 18 loads for 18 (loads, not arithmetic, looked like this loop's limit).
            for i in range(0, out_h - 1, 2):
                for j in range(out_w):
                    # Both sums before either store, so LLVM merges the loads they share.
                    upper = _taps3(padded, i, j, b, w00, w01, w02, w10, w11, w12, w20, w21, w22)
                    lower = _taps3(padded, i + 1, j, b, w00, w01, w02, w10, w11, w12, w20, w21, w22)
                    y[n, m, i, j] = upper
                    y[n, m, i + 1, j] = lower
            i_first = out_h - out_h % 2  # an odd last row is left to the one-row loop below
        for i in range(i_first, out_h):
            top = i * s_h
            if s_w == 1:
                for j in range(out_w):
                    y[n, m, i, j] = _taps3(padded, top, j, b, w00, w01, w02, w10, w11, w12, w20, w21, w22)
            elif s_w == 2:
                # Split the window's 3 padded rows into even and odd columns (contiguous copies), so that the
                # 9 taps read contiguous arrays and the loops vectorise; reading every other value in place
                # was 3-5x slower than onnxruntime.
                for u in range(3):
                    src = padded[top + u]
                    ev = even[u]
                    od = odd[u]
                    for k in range(out_w):
                        ev[k] = src[2 * k]
                        od[k] = src[2 * k + 1]
                    ev[out_w] = src[2 * out_w]
                out_row = y[n, m, i]
                e0, e1, e2 = even[0], even[1], even[2]
                o0, o1, o2 = odd[0], odd[1], odd[2]
                for j in range(out_w):
                    out_row[j] = (b + w00 * e0[j] + w01 * o0[j] + w02 * e0[j + 1]
                                  + w10 * e1[j] + w11 * o1[j] + w12 * e1[j + 1]
                                  + w20 * e2[j] + w21 * o2[j] + w22 * e2[j + 1])
            else:
                for j in range(out_w):
                    y[n, m, i, j] = _taps3(padded, top, j * s_w, b, w00, w01, w02, w10, w11, w12, w20, w21,
                                           w22)
        _finish_plane(y[n, m].reshape(out_h * out_w), residual, n, m, has_residual, code, alpha, slope, lo, hi)


@njit(nogil=True, cache=True, fastmath=True)
def depthwise_conv3x3_flat(x, w, bias, y, pad_top, pad_left, code, alpha, slope, lo, hi, residual, has_residual,
                           nm0, nm1):
    """:func:`depthwise_conv3x3` at stride 1 for small planes: one loop over the padded plane laid flat.

    The padded-row trick of :func:`conv3x3_direct` on one channel: in the
    zero-bordered plane of ``p_w = OW + 2`` columns laid end to end,
    output ``(i, j)`` sits at flat position ``q = i * p_w + j`` and its tap
    ``(u, v)`` reads position ``q + u * p_w + v``. So all ``OH * p_w``
    positions are one loop of 9 products, vectorised over the whole plane
    rather than over rows of 8 or 15 values (shorter than one vector: all
    scalar code). The 2 positions past each row are garbage, never copied
    out. The flat indices are unsigned on purpose: Numba wraps negative
    *signed* indices (a select per access, which stops LLVM from
    vectorising); unsigned ones it leaves alone.
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    c_out = w.shape[0]
    out_h, out_w = y.shape[2], y.shape[3]
    multiplier = c_out // channels
    p_w = out_w + 2
    p_h = out_h + 2
    n = out_h * p_w
    padded = np.zeros(p_h * p_w + 2, dtype=np.float32)  # + 2: the last garbage positions' taps stay inside
    acc = np.empty(n, dtype=np.float32)
    # Offsets built from uint64 only: an int64 operand would turn the sum into float64 (NumPy's promotion rule).
    one, two = uint64(1), uint64(2)
    pw = uint64(p_w)
    pw2 = pw + pw
    row_lo, row_hi = max(0, -pad_top), min(height, p_h - pad_top)
    col_lo, col_hi = max(0, -pad_left), min(width, p_w - pad_left)
    for nm in range(nm0, nm1):
        b_img = nm // c_out
        m = nm % c_out
        c = m // multiplier
        for r in range(row_lo, row_hi):  # the interior; the border was zeroed once and is never written
            start = uint64((r + pad_top) * p_w + col_lo + pad_left)
            for q in range(col_hi - col_lo):
                padded[start + uint64(q)] = x[b_img, c, r, col_lo + q]
        b = bias[m]
        w00, w01, w02 = w[m, 0, 0], w[m, 0, 1], w[m, 0, 2]
        w10, w11, w12 = w[m, 1, 0], w[m, 1, 1], w[m, 1, 2]
        w20, w21, w22 = w[m, 2, 0], w[m, 2, 1], w[m, 2, 2]
        for q in range(n):
            k = uint64(q)
            acc[k] = (b + w00 * padded[k] + w01 * padded[k + one] + w02 * padded[k + two]
                      + w10 * padded[k + pw] + w11 * padded[k + pw + one] + w12 * padded[k + pw + two]
                      + w20 * padded[k + pw2] + w21 * padded[k + pw2 + one] + w22 * padded[k + pw2 + two])
        plane = y[b_img, m].reshape(out_h * out_w)
        for i in range(out_h):  # the real positions of each row, packed
            src = uint64(i * p_w)
            dst = uint64(i * out_w)
            for j in range(out_w):
                plane[dst + uint64(j)] = acc[src + uint64(j)]
        _finish_plane(plane, residual, b_img, m, has_residual, code, alpha, slope, lo, hi)


# ---------------------------------------------------------------------------
# Driver: pick the kernel for a shape, split it into chunks
# ---------------------------------------------------------------------------
_scratch = threading.local()  # one growing im2col buffer per thread, reused across calls


def scratch(size: int) -> np.ndarray:
    """A float32 buffer of at least ``size`` elements owned by the calling thread, reused from call to call."""
    buf = getattr(_scratch, "buffer", None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=np.float32)
        _scratch.buffer = buf
    return buf[:size]


_NO_RESIDUAL2 = np.zeros((1, 1), dtype=np.float32)
_NO_RESIDUAL3 = np.zeros((1, 1, 1), dtype=np.float32)
_NO_RESIDUAL4 = np.zeros((1, 1, 1, 1), dtype=np.float32)


def _split(total: int, pieces: int) -> list[tuple[int, int]]:
    """``pieces`` contiguous ranges covering ``range(total)`` as evenly as possible."""
    bounds = [total * k // pieces for k in range(pieces + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(pieces)]


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray, geometry, activation: str = "", alpha: float = 0.01,
           slope: np.ndarray | None = None, lo: float = -np.inf, hi: float = np.inf,
           residual: np.ndarray | None = None) -> np.ndarray:
    """``activation(conv(x, w) + bias + residual)`` for C-contiguous float32 NCHW ``x`` and OIHW ``w``.

    ``bias`` and ``slope`` are float32 (M,) arrays (``slope`` only read for
    PRelu); ``residual`` is None or C-contiguous float32 of the output's
    shape; ``geometry`` is a ``minicnn.ops.conv.ConvGeometry``. Returns a new
    (N, M, OH, OW) array. The same as ``conv2d_runner(...)(x, residual)``.
    """
    run = conv2d_runner(x.shape, w, bias, geometry, activation, alpha, slope, lo, hi, residual is not None,
                        threads.num_threads())
    return run(x, residual)


def conv2d_runner(x_shape: tuple, w: np.ndarray, bias: np.ndarray, geometry, activation: str = "",
                  alpha: float = 0.01, slope: np.ndarray | None = None, lo: float = -np.inf, hi: float = np.inf,
                  has_residual: bool = False, n_threads: int = 1) -> Callable:
    """Everything :func:`conv2d` decides before it touches the data, done once: returns ``run(x, residual)``.

    The decisions: which kernel (depthwise, grouped, direct 3x3, direct 1x1,
    or im2col + GEMM by bands or by blocks of channels), the weights in that
    kernel's layout, and the chunks handed to up to ``n_threads`` threads.
    ``run`` takes an ``x`` of shape ``x_shape`` (and the residual, or None)
    and returns a new output array. A session keeps one per convolution node,
    input shape and thread count (``minicnn.ops.conv.prepare_conv``), so a
    small network does not pay these decisions, in Python, at every run.
    """
    n_img, channels = x_shape[:2]
    c_out, c_per_group, k_h, k_w = w.shape
    groups = geometry.group
    s_h, s_w = geometry.strides
    d_h, d_w = geometry.dilations
    pad_top, pad_left = geometry.pads[:2]
    out_h, out_w = geometry.out_hw
    out_shape = (n_img, c_out, out_h, out_w)
    size = out_h * out_w
    code = ACTIVATION_CODES[activation]
    alpha, lo, hi = np.float32(alpha), np.float32(lo), np.float32(hi)
    if slope is None:
        slope = bias  # never read unless the activation is PRelu
    has_res = has_residual
    macs = n_img * c_out * size * c_per_group * k_h * k_w
    # Chunks handed out to the threads: a few per thread, so a thread that gets no CPU for a while is
    # covered by the others; one when the work is too small to be worth a hand-off.
    depthwise = groups == channels and c_per_group == 1 and groups > 1
    n_threads = 1 if macs < (MIN_PARALLEL_DEPTHWISE_MACS if depthwise else MIN_PARALLEL_MACS) else n_threads
    target_chunks = n_threads * min(MAX_CHUNKS_PER_THREAD, max(1, macs // CHUNK_MACS)) if n_threads > 1 else 1

    if depthwise:
        w3 = w.reshape(c_out, k_h, k_w)
        ranges = _split(n_img * c_out, min(target_chunks, n_img * c_out))
        if k_h == k_w == 3 and geometry.dilations == (1, 1) and (s_h, s_w) == (1, 1) and out_w <= FLAT_MAX_WIDTH:
            def depthwise_chunk(x, y, res4, k):
                depthwise_conv3x3_flat(x, w3, bias, y, pad_top, pad_left, code, alpha, slope, lo, hi, res4, has_res,
                                       *ranges[k])
        elif k_h == k_w == 3 and geometry.dilations == (1, 1):
            def depthwise_chunk(x, y, res4, k):
                depthwise_conv3x3(x, w3, bias, y, s_h, s_w, pad_top, pad_left, code, alpha, slope, lo, hi,
                                  res4, has_res, *ranges[k])
        else:
            def depthwise_chunk(x, y, res4, k):
                depthwise_conv(x, w3, bias, y, s_h, s_w, d_h, d_w, pad_top, pad_left, code, alpha, slope, lo,
                               hi, res4, has_res, *ranges[k])

        def run_depthwise(x, residual):
            y = np.empty(out_shape, dtype=np.float32)
            res4 = residual if has_res else _NO_RESIDUAL4
            if len(ranges) == 1:
                depthwise_chunk(x, y, res4, 0)
            else:
                threads.run_parallel(lambda k: depthwise_chunk(x, y, res4, k), len(ranges))
            return y

        return run_depthwise

    if groups > 1:
        return lambda x, residual: _grouped_conv(x, w, bias, geometry, np.empty(out_shape, dtype=np.float32),
                                                 code, alpha, slope, lo, hi, residual)

    if (k_h == k_w == 3 and geometry.strides == (1, 1) and geometry.dilations == (1, 1)
            and channels >= WINOGRAD_MIN_CHANNELS and c_out >= WINOGRAD_MIN_OUT_CHANNELS
            and WINOGRAD_MIN_PIXELS <= size <= WINOGRAD_MAX_PIXELS):
        return _winograd_runner(x_shape, w, bias, out_shape, pad_top, pad_left, n_threads, code, alpha, slope, lo,
                                hi, has_res)

    if (k_h == k_w == 3 and geometry.strides in ((1, 1), (2, 2)) and geometry.dilations == (1, 1)
            and c_out <= DIRECT_MAX_CHANNELS and size >= DIRECT_MIN_PIXELS):
        return _direct_conv3x3_runner(x_shape, w, bias, out_shape, s_h, pad_top, pad_left, target_chunks, code,
                                      alpha, slope, lo, hi, has_res)

    # One GEMM per image: W (M, K) @ columns (K, P) -> Y (M, P).
    k_total = channels * k_h * k_w
    weights = w.reshape(c_out, k_total)
    pointwise = k_h == k_w == 1 and geometry.strides == (1, 1) and not any(geometry.pads)
    if (pointwise and channels * c_out <= POINTWISE_DIRECT_MAX_WEIGHTS and size >= POINTWISE_DIRECT_MIN_PIXELS
            and POINTWISE_DIRECT_CHANNELS[0] <= c_out <= POINTWISE_DIRECT_CHANNELS[1]):
        return _pointwise_direct_runner(channels, weights, bias, out_shape, target_chunks, code, alpha, slope, lo,
                                        hi, has_res)
    # A small output of a kernel larger than 1x1: im2row, then blocks of output channels.
    by_rows = k_h * k_w > 1 and size <= IM2ROW_MAX_PIXELS
    band_rows = -(-out_h // target_chunks)
    if not pointwise:  # bands whose columns fit in a core's L2 cache: built, multiplied, finished while cached
        band_rows = max(1, min(band_rows, BAND_BYTES // (4 * k_total * out_w)))
    bands = [(i0, min(out_h, i0 + band_rows)) for i0 in range(0, out_h, band_rows)]
    if not by_rows and (n_threads == 1 or size >= MIN_BAND_PIXELS * n_threads):
        # Bands of output rows: each builds its columns in its own thread's buffer, multiplies, finishes.
        def band_chunk(x_n, y_n, res_n, k):
            i0, i1 = bands[k]
            p0, p1 = i0 * out_w, i1 * out_w
            if pointwise:
                cols = x_n.reshape(channels, size)[:, p0:p1]
            else:
                cols = scratch(k_total * (p1 - p0)).reshape(k_total, p1 - p0)
                im2col_rows(x_n, cols, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, out_w, i0, i1)
            np.matmul(weights, cols, out=y_n[:, p0:p1])
            epilogue(y_n, 0, c_out, p0, p1, bias, code, alpha, slope, lo, hi, res_n, has_res)

        def run_bands(x, residual):
            y = np.empty(out_shape, dtype=np.float32)
            for n in range(n_img):
                y_n = y[n].reshape(c_out, size)
                res_n = residual[n].reshape(c_out, size) if has_res else _NO_RESIDUAL2
                if len(bands) == 1:
                    band_chunk(x[n], y_n, res_n, 0)
                else:
                    threads.run_parallel(lambda k: band_chunk(x[n], y_n, res_n, k), len(bands))
            return y

        return run_bands

    # A small image: one set of columns, blocks of output channels as the chunks.
    blocks = _split(c_out, max(1, min(target_chunks, c_out // MIN_BLOCK_CHANNELS)))
    # im2row's K axis is in (tap, channel) order: its weights are (M, kH, kW, C).
    block_weights = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(c_out, k_total) if by_rows else weights
    height, width = x_shape[2:]

    def run_channel_blocks(x, residual):
        y = np.empty(out_shape, dtype=np.float32)
        for n in range(n_img):
            y_n = y[n].reshape(c_out, size)
            res_n = residual[n].reshape(c_out, size) if has_res else _NO_RESIDUAL2
            if pointwise:
                cols = x[n].reshape(channels, size)
            elif by_rows:
                buf = scratch(size * k_total + height * width * channels)
                rows = buf[:size * k_total].reshape(size, k_total)
                im2row(x[n], buf[size * k_total:].reshape(height, width, channels), rows, k_h, k_w, s_h, s_w,
                       d_h, d_w, pad_top, pad_left, out_w)
                cols = rows.T
            else:
                cols = scratch(k_total * size).reshape(k_total, size)
                im2col_rows(x[n], cols, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, out_w, 0, out_h)

            def channel_chunk(k: int) -> None:
                m0, m1 = blocks[k]
                np.matmul(block_weights[m0:m1], cols, out=y_n[m0:m1])
                epilogue(y_n, m0, m1, 0, size, bias, code, alpha, slope, lo, hi, res_n, has_res)

            threads.run_parallel(channel_chunk, len(blocks))
        return y

    return run_channel_blocks


def _pad_output_channels(w: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w`` and ``bias`` with zero filters appended up to a multiple of 4 output channels (the direct kernels' block)."""
    c_out = w.shape[0]
    c_out4 = -(-c_out // 4) * 4
    if c_out4 == c_out:
        return w, bias
    return (np.concatenate([w, np.zeros((c_out4 - c_out,) + w.shape[1:], np.float32)]),
            np.concatenate([bias, np.zeros(c_out4 - c_out, np.float32)]))


def _pointwise_direct_runner(channels, weights, bias, out_shape, n_chunks, code, alpha, slope, lo, hi,
                             has_res) -> Callable:
    """1x1 convolution by :func:`pointwise_direct`; ranges of pixels are the threads' chunks."""
    n_img, c_out, out_h, out_w = out_shape
    size = out_h * out_w
    weights, bias = _pad_output_channels(weights, bias)
    ranges = _split(size, min(n_chunks, -(-size // DIRECT_PIXELS)))

    def pixel_chunk(x_n, y_n, res_n, k):
        pointwise_direct(x_n, weights, bias, y_n, code, alpha, slope, lo, hi, res_n, has_res, *ranges[k])

    def run(x, residual):
        y = np.empty(out_shape, dtype=np.float32)
        for n in range(n_img):
            x_n = x[n].reshape(channels, size)
            y_n = y[n].reshape(c_out, size)
            res_n = residual[n].reshape(c_out, size) if has_res else _NO_RESIDUAL2
            threads.run_parallel(lambda k: pixel_chunk(x_n, y_n, res_n, k), len(ranges))
        return y

    return run


def _direct_conv3x3_runner(x_shape, w, bias, out_shape, stride, pad_top, pad_left, n_chunks, code, alpha, slope, lo,
                           hi, has_res) -> Callable:
    """Dense 3x3 convolution (stride 1 or 2) with few output channels by :func:`conv3x3_direct`.

    Each image is zero-padded and split into phases once, by the calling
    thread (:func:`pad_planes`); then bands of output rows are the chunks
    handed to the threads. The weights get zero filters appended up to a
    multiple of 4 output channels, the kernel's block size (their outputs
    are computed and never stored).
    """
    n_img, c_out, out_h, out_w = out_shape
    w, bias = _pad_output_channels(w, bias)
    # Each phase plane holds the rows and columns that the taps of the output's windows reach.
    p_w = out_w + 2 // stride
    n_rows = out_h + 2 // stride
    # The zeroed tail: a run rounded up to whole vectors reads up to DIRECT_VECTOR - 1 positions past the rows.
    planes_shape = (x_shape[1], stride * stride, n_rows * p_w + DIRECT_VECTOR)
    bands = _split(out_h, min(n_chunks, out_h))

    def band_chunk(planes, y_n, res_n, k):
        conv3x3_direct(planes, stride, p_w, w, bias, y_n, code, alpha, slope, lo, hi, res_n, has_res, *bands[k])

    def run(x, residual):
        y = np.empty(out_shape, dtype=np.float32)
        planes = np.empty(planes_shape, dtype=np.float32)
        for n in range(n_img):
            pad_planes(x[n], planes, stride, pad_top, pad_left, p_w, n_rows)
            res_n = residual[n] if has_res else _NO_RESIDUAL3
            y_n = y[n]
            threads.run_parallel(lambda k: band_chunk(planes, y_n, res_n, k), len(bands))
        return y

    return run


def _winograd_runner(x_shape, w, bias, out_shape, pad_top, pad_left, n_threads, code, alpha, slope, lo, hi,
                     has_res) -> Callable:
    """Dense 3x3 convolution at stride 1 by Winograd's F(2x2, 3x3): transform, 16 GEMMs, transform back.

    Each 2x2 output tile is ``A^T [sum over c of U_c * (B^T d_c B)] A``
    with ``U = G g G^T`` (the elementwise product in the 4x4 transformed
    space): for each of the 16 transformed positions, a GEMM of the (M, C)
    transformed filters by the (C, tiles) transformed inputs. The padding
    (:func:`pad_planes`), the input transform (:func:`winograd_input`) and
    the output transform (:func:`winograd_output`) run on the calling
    thread; the 16 GEMMs are split between the threads when they hold
    ``MIN_PARALLEL_MACS`` multiply-adds (16 * M * C * tiles: 4/9 of the direct
    convolution's; gender_cydral's 32x32x32 and 64x16x16 layers hold 4.2M and
    ran 1.3-1.5x slower split); then :func:`epilogue` adds bias and residual
    and applies the activation. The transforms use only additions and halves,
    so results differ from a direct sum by float32 round-off.
    """
    n_img, c_out, out_h, out_w = out_shape
    channels = x_shape[1]
    tiles_h, tiles_w = -(-out_h // 2), -(-out_w // 2)
    tiles = tiles_h * tiles_w
    padded_shape = (channels, 2 * tiles_h + 2, 2 * tiles_w + 2)
    # The scratch buffer holds the padded image, then v (C, 16, tiles), then m (M, 16, tiles).
    n_padded, n_v = int(np.prod(padded_shape)), channels * 16 * tiles
    u = winograd_weights(w)
    ranges = _split(16, n_threads if 16 * c_out * channels * tiles >= MIN_PARALLEL_MACS else 1)

    def run(x, residual):
        y = np.empty(out_shape, dtype=np.float32)
        buf = scratch(n_padded + n_v + c_out * 16 * tiles)
        padded = buf[:n_padded].reshape(padded_shape)
        v = buf[n_padded:n_padded + n_v].reshape(channels, 16, tiles)
        m = buf[n_padded + n_v:].reshape(c_out, 16, tiles)
        # The GEMM for position k: (M, C) @ (C, tiles), strided views of v and m.
        v_k, m_k = v.transpose(1, 0, 2), m.transpose(1, 0, 2)

        def gemm_chunk(k: int) -> None:
            k0, k1 = ranges[k]
            np.matmul(u[k0:k1], v_k[k0:k1], out=m_k[k0:k1])

        for n in range(n_img):
            pad_planes(x[n], padded.reshape(channels, 1, -1), 1, pad_top, pad_left, padded_shape[2], padded_shape[1])
            winograd_input(padded, v, tiles_w)
            threads.run_parallel(gemm_chunk, len(ranges))
            winograd_output(m, y[n], tiles_w)
            res_n = residual[n].reshape(c_out, out_h * out_w) if has_res else _NO_RESIDUAL2
            epilogue(y[n].reshape(c_out, out_h * out_w), 0, c_out, 0, out_h * out_w, bias, code, alpha, slope, lo,
                     hi, res_n, has_res)
        return y

    return run


def _grouped_conv(x, w, bias, geometry, y, code, alpha, slope, lo, hi, residual) -> np.ndarray:
    """Grouped (not depthwise) convolution: one im2col over all channels, one batched GEMM over the groups.

    The columns of group ``g`` are rows ``g*K : (g+1)*K`` of the im2col
    matrix, so ``(G, M/G, K) @ (G, K, P)`` multiplies every group at once.
    Rare in the zoo (one layer of w600k_mbf), so it is not split between threads.
    """
    n_img, channels = x.shape[:2]
    c_out, c_per_group, k_h, k_w = w.shape
    groups = geometry.group
    out_h, out_w = geometry.out_hw
    size = out_h * out_w
    k_group = c_per_group * k_h * k_w
    weights = w.reshape(groups, c_out // groups, k_group)
    cols = scratch(channels * k_h * k_w * size).reshape(channels * k_h * k_w, size)
    for n in range(n_img):
        im2col_rows(x[n], cols, k_h, k_w, *geometry.strides, *geometry.dilations, *geometry.pads[:2], out_w, 0,
                    out_h)
        y_n = y[n].reshape(c_out, size)
        np.matmul(weights, cols.reshape(groups, k_group, size), out=y_n.reshape(groups, c_out // groups, size))
        res_n = residual[n].reshape(c_out, size) if residual is not None else _NO_RESIDUAL2
        epilogue(y_n, 0, c_out, 0, size, bias, code, alpha, slope, lo, hi, res_n, residual is not None)
    return y


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel once, on a tiny input."""
    from ..ops.conv import conv_geometry

    small = np.zeros((1, 2, 4, 4), np.float32)
    large = np.zeros((1, 2, 10, 10), np.float32)  # a 10x10 output: more pixels than IM2ROW_MAX_PIXELS
    bias = np.ones(2, np.float32)
    # Dense 3x3 stride 1 and 2 and 1x1 (direct kernels), 5x5 on a small output (im2row + GEMM) and a larger
    # one (im2col + GEMM), depthwise 3x3 stride 1 (the flat kernel: a 4x4 input is small) and stride 2 (the
    # row kernel), depthwise 5x5.
    for x, w_shape, group, stride, pad in ((small, (2, 2, 3, 3), 1, 1, 2), (small, (2, 2, 3, 3), 1, 2, 2),
                                           (small, (2, 2, 1, 1), 1, 1, 0), (small, (2, 2, 5, 5), 1, 1, 2),
                                           (large, (2, 2, 5, 5), 1, 1, 2), (small, (2, 1, 3, 3), 2, 1, 2),
                                           (small, (2, 1, 3, 3), 2, 2, 2), (small, (2, 1, 5, 5), 2, 1, 2)):
        w = np.zeros(w_shape, np.float32)
        geometry = conv_geometry(x.shape, w.shape, group=group, pads=[pad] * 4, strides=[stride, stride])
        conv2d(x, w, bias, geometry, "Relu")
    # Winograd: 3x3 at stride 1, the smallest shape it takes.
    x = np.zeros((1, WINOGRAD_MIN_CHANNELS, 10, 10), np.float32)  # a 10x10 output: WINOGRAD_MIN_PIXELS
    w = np.zeros((WINOGRAD_MIN_OUT_CHANNELS, WINOGRAD_MIN_CHANNELS, 3, 3), np.float32)
    conv2d(x, w, np.ones(WINOGRAD_MIN_OUT_CHANNELS, np.float32), conv_geometry(x.shape, w.shape, pads=[1] * 4), "Relu")


__all__ = ["ACTIVATION_CODES", "conv2d", "conv2d_runner", "conv3x3_direct", "depthwise_conv", "depthwise_conv3x3",
           "depthwise_conv3x3_flat", "epilogue", "im2col_rows", "im2row", "pad_planes", "pointwise_direct", "scratch",
           "warm_up", "winograd_input", "winograd_output", "winograd_weights"]
