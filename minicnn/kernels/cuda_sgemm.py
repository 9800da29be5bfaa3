"""SGEMM on the GPU: ``C[M, N] = A[M, K] @ B[K, N]``, float32, row-major.

Convolution becomes this product after im2col (A = weights reshaped to
``(C_out, C_in*kh*kw)``, B = the column matrix ``(C_in*kh*kw, H_out*W_out)``),
and Gemm/MatMul are this product directly, so most of a CNN's FLOPs run here.

As in llm.c's ``dev/cuda``, each version is a small step from the last.

Versions:

1. naive: one thread per element of C, reading its row of A and column of B
   from global memory. Every value of A is read N times, every value of B
   M times: bound by memory bandwidth, a few % of peak.
2. shared-memory tiling: a 16x16 block of threads loads a 16x16 tile of A
   and of B into shared memory once, then every thread reads the tiles
   16 times from there. Global traffic drops 16x.
3. register-blocked 2-D tiling: a 256-thread block computes a 64x64 tile of
   C, 4x4 outputs per thread kept in registers. For each step of k a thread
   loads 4 values of A and 4 of B and does 16 multiply-adds with them, so it
   issues far fewer shared-memory loads per FLOP than version 2 (1/2 load per
   FMA instead of 2). A is stored transposed in shared memory so the 4 values
   a thread needs are adjacent. (siboehm's "2D blocktiling" kernel.)

4. version 3 with the convolution epilogue fused into the store: each
   thread adds its rows' bias (and a residual), applies the activation and
   writes the final value. For a convolution this removes a whole extra
   read and write of the output (the separate ``cuda_epilogue`` pass).

The backend uses version 4 for convolutions and version 3 for Gemm/MatMul
(``DEFAULT_VERSION``). ``validate()`` checks all four.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .cuda_common import ACTIVATION_CODES, activate, check_close, placeholder, validation_main
from .cuda_epilogue import epilogue_reference

VERSIONS = (1, 2, 3, 4)
DEFAULT_VERSION = 3

# Version 2: square tiles of TILE x TILE threads.
TILE = 16
# Version 3: block tile BM x BN, stepping BK along k; each thread owns TM x TN outputs.
BM, BN, BK, TM, TN = 64, 64, 8, 4, 4
V3_THREADS = (BM // TM) * (BN // TN)  # 256


def sgemm_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The ground truth, accumulated in float64 so it is the more accurate side of the comparison."""
    return a.astype(np.float64) @ b.astype(np.float64)


@cuda.jit
def sgemm_v1(a, b, c, m, n, k):
    """Version 1: one thread per output, everything from global memory."""
    col, row = cuda.grid(2)
    if row < m and col < n:
        acc = float32(0.0)
        for p in range(k):
            acc += a[row, p] * b[p, col]
        c[row, col] = acc


@cuda.jit
def sgemm_v2(a, b, c, m, n, k):
    """Version 2: TILE x TILE tiles of A and B staged in shared memory."""
    a_tile = cuda.shared.array((TILE, TILE), float32)
    b_tile = cuda.shared.array((TILE, TILE), float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    acc = float32(0.0)
    for k0 in range(0, k, TILE):
        # Each thread loads one element of each tile; zeros pad the ragged edges
        # so the inner loop needs no bounds checks.
        a_tile[ty, tx] = a[row, k0 + tx] if row < m and k0 + tx < k else float32(0.0)
        b_tile[ty, tx] = b[k0 + ty, col] if k0 + ty < k and col < n else float32(0.0)
        cuda.syncthreads()
        for p in range(TILE):
            acc += a_tile[ty, p] * b_tile[p, tx]
        cuda.syncthreads()  # nobody may overwrite the tiles while others still read them
    if row < m and col < n:
        c[row, col] = acc


@cuda.jit
def sgemm_v3(a, b, c, m, n, k):
    """Version 3: 64x64 block tile, 4x4 register tile per thread, A transposed in shared memory."""
    a_tile = cuda.shared.array((BK, BM), float32)  # a_tile[p, i] = A[row0 + i, k0 + p]
    b_tile = cuda.shared.array((BK, BN), float32)
    acc = cuda.local.array((TM, TN), float32)
    a_reg = cuda.local.array(TM, float32)
    b_reg = cuda.local.array(TN, float32)
    tid = cuda.threadIdx.x
    # Thread (ty, tx) owns rows ty*TM .. +TM and columns tx*TN .. +TN of the block tile.
    tx = tid % (BN // TN)
    ty = tid // (BN // TN)
    row0 = cuda.blockIdx.y * BM
    col0 = cuda.blockIdx.x * BN
    for i in range(TM):
        for j in range(TN):
            acc[i, j] = float32(0.0)
    for k0 in range(0, k, BK):
        # Cooperative loads: BM*BK (and BK*BN) values shared by V3_THREADS threads.
        # Consecutive threads read consecutive k of A and consecutive columns of B.
        for e in range(tid, BM * BK, V3_THREADS):
            i, p = e // BK, e % BK
            r, q = row0 + i, k0 + p
            a_tile[p, i] = a[r, q] if r < m and q < k else float32(0.0)
        for e in range(tid, BK * BN, V3_THREADS):
            p, j = e // BN, e % BN
            q, col = k0 + p, col0 + j
            b_tile[p, j] = b[q, col] if q < k and col < n else float32(0.0)
        cuda.syncthreads()
        for p in range(BK):
            for i in range(TM):
                a_reg[i] = a_tile[p, ty * TM + i]
            for j in range(TN):
                b_reg[j] = b_tile[p, tx * TN + j]
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] += a_reg[i] * b_reg[j]
        cuda.syncthreads()
    for i in range(TM):
        r = row0 + ty * TM + i
        if r < m:
            for j in range(TN):
                col = col0 + tx * TN + j
                if col < n:
                    c[r, col] = acc[i, j]


@cuda.jit
def sgemm_v4(a, b, c, m, n, k, bias, has_bias, residual, has_residual, code, alpha, slope, per_row_slope, lo, hi):
    """Version 4: version 3, then ``c = act(a @ b + bias[row] + residual)`` in the store."""
    a_tile = cuda.shared.array((BK, BM), float32)
    b_tile = cuda.shared.array((BK, BN), float32)
    acc = cuda.local.array((TM, TN), float32)
    a_reg = cuda.local.array(TM, float32)
    b_reg = cuda.local.array(TN, float32)
    tid = cuda.threadIdx.x
    tx = tid % (BN // TN)
    ty = tid // (BN // TN)
    row0 = cuda.blockIdx.y * BM
    col0 = cuda.blockIdx.x * BN
    for i in range(TM):
        for j in range(TN):
            acc[i, j] = float32(0.0)
    for k0 in range(0, k, BK):
        for e in range(tid, BM * BK, V3_THREADS):
            i, p = e // BK, e % BK
            r, q = row0 + i, k0 + p
            a_tile[p, i] = a[r, q] if r < m and q < k else float32(0.0)
        for e in range(tid, BK * BN, V3_THREADS):
            p, j = e // BN, e % BN
            q, col = k0 + p, col0 + j
            b_tile[p, j] = b[q, col] if q < k and col < n else float32(0.0)
        cuda.syncthreads()
        for p in range(BK):
            for i in range(TM):
                a_reg[i] = a_tile[p, ty * TM + i]
            for j in range(TN):
                b_reg[j] = b_tile[p, tx * TN + j]
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] += a_reg[i] * b_reg[j]
        cuda.syncthreads()
    for i in range(TM):
        r = row0 + ty * TM + i
        if r < m:
            # Per-row values (a convolution's output channel) are read once for TN outputs.
            row_bias = bias[r] if has_bias else float32(0.0)
            s = slope[r] if per_row_slope else slope[0]
            for j in range(TN):
                col = col0 + tx * TN + j
                if col < n:
                    v = acc[i, j] + row_bias
                    if has_residual:
                        v += residual[r, col]
                    c[r, col] = activate(v, code, alpha, s, lo, hi)


def run_sgemm(a, b, c, version: int = DEFAULT_VERSION, bias=None, residual=None, activation: str = "",
              alpha: float = 0.01, slope=None, lo: float = -np.inf, hi: float = np.inf) -> None:
    """Launch version ``version`` to compute ``c = a @ b`` (2-D float32 device arrays).

    Version 4 also applies ``act(. + bias[row] + residual)``: ``bias`` and
    ``slope`` hold one value per row of ``c`` (``slope`` may hold one value),
    ``residual`` has ``c``'s shape. The other versions compute the product only.
    """
    m, k = a.shape
    k2, n = b.shape
    if k2 != k or c.shape != (m, n):
        raise ValueError(f"sgemm: shapes {a.shape} @ {b.shape} -> {c.shape} do not match")
    if version != 4 and (bias is not None or residual is not None or activation):
        raise ValueError(f"sgemm v{version} computes the product only; the fused epilogue is version 4")
    if version == 1:
        threads = (16, 16)
        blocks = (math.ceil(n / 16), math.ceil(m / 16))
        sgemm_v1[blocks, threads](a, b, c, m, n, k)
    elif version == 2:
        blocks = (math.ceil(n / TILE), math.ceil(m / TILE))
        sgemm_v2[blocks, (TILE, TILE)](a, b, c, m, n, k)
    elif version == 3:
        blocks = (math.ceil(n / BN), math.ceil(m / BM))
        sgemm_v3[blocks, V3_THREADS](a, b, c, m, n, k)
    elif version == 4:
        if activation not in ACTIVATION_CODES:
            raise ValueError(f"sgemm v4: unknown activation {activation!r}")
        blocks = (math.ceil(n / BN), math.ceil(m / BM))
        sgemm_v4[blocks, V3_THREADS](
            a, b, c, m, n, k, bias if bias is not None else placeholder(), bias is not None,
            residual if residual is not None else placeholder(2), residual is not None,
            ACTIVATION_CODES[activation], np.float32(alpha), slope if slope is not None else placeholder(),
            slope is not None and slope.size > 1, np.float32(lo), np.float32(hi))
    else:
        raise ValueError(f"sgemm has versions {VERSIONS}, not {version!r}")


def validate(shapes=((17, 20, 19), (5, 66, 9)), versions=VERSIONS, seed: int = 0) -> dict[int, float]:
    """Run every version on ``(M, N, K)`` shapes; returns ``{version: max abs error}``.

    The default shapes are not multiples of any tile size, so the ragged-edge
    code runs. Tolerance: float32 sums of K products of N(0,1) values,
    ``atol = rtol = 1e-4 * sqrt(K)``. Version 4 runs with a row bias, a
    residual and a per-row PRelu, checked against ``epilogue_reference``.
    """
    rng = np.random.default_rng(seed)
    worst = {v: 0.0 for v in versions}
    for m, n, k in shapes:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(m).astype(np.float32)
        residual = rng.standard_normal((m, n)).astype(np.float32)
        slope = (0.2 * rng.random(m)).astype(np.float32)
        product = sgemm_reference(a, b)
        # The epilogue reference wants channels on axis 1: view C[m, n] as (1, m, n).
        fused = epilogue_reference(product[None], bias, residual[None], "PRelu", slope=slope)[0]
        da, db = cuda.to_device(a), cuda.to_device(b)
        tol = 1e-4 * math.sqrt(k)
        for v in versions:
            dc = cuda.device_array((m, n), dtype=np.float32)
            if v == 4:
                run_sgemm(da, db, dc, v, bias=cuda.to_device(bias), residual=cuda.to_device(residual),
                          activation="PRelu", slope=cuda.to_device(slope))
                want = fused
            else:
                run_sgemm(da, db, dc, v)
                want = product
            err = check_close(f"sgemm v{v} M={m} N={n} K={k}", dc.copy_to_host(), want, tol, tol)
            worst[v] = max(worst[v], err)
    return worst


if __name__ == "__main__":
    validation_main("sgemm", validate)
