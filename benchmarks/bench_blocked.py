"""Is the channel-blocked NCHW16c layout worth a layout pass? 1x1 convolutions of the zoo, three ways.

For each 1x1 shape (input channels C, output channels M, pixels), one
thread, ReLU fused, outputs checked against a float64 reference first:

* ``direct``: :func:`minicnn.kernels.cpu_conv.pointwise_direct` (NCHW, 4
  output channels x 512 pixels of accumulators in L1);
* ``BLAS``: ``np.matmul`` into the output, then
  :func:`minicnn.kernels.cpu_conv.epilogue` (NCHW);
* ``NCHW16c``: :func:`minicnn.kernels.cpu_blocked.pointwise_nchw16c` on
  input and output already in the blocked layout (explicit vectors,
  8 pixels x 16 output channels in registers).

The layout's conversions are not timed: the point of a layout pass is that
a chain of layers stays blocked and pays them once at each end. The table
also gives the time of one NCHW -> NCHW16c conversion of the input
(:func:`~minicnn.kernels.cpu_blocked.to_blocked_fast`, the Numba reorder
sessions use, on the calling thread) for scale.
Rounds alternate the three; medians are reported, ratios are
``direct / NCHW16c`` and ``BLAS / NCHW16c`` (above 1: blocked is faster).

    python benchmarks/bench_blocked.py            # ~10 s
    python benchmarks/bench_blocked.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from minicnn import threads  # noqa: E402  (first: it sets Numba's threading layer)
from minicnn.kernels import cpu_blocked, cpu_conv  # noqa: E402

from bench_models import timed_turn  # noqa: E402  (the same turns as the whole-model benchmark)

TURN_SECONDS = 0.02  # each runner's turn: calls back to back for at least this long, the mean is its sample

# (C, M, H, W): 1x1 layers of YuNet (640x640), RetinaFace, BlazeFace and the classifiers.
SHAPES = [
    (16, 16, 320, 320),
    (16, 16, 160, 160),
    (16, 32, 160, 160),
    (32, 32, 160, 160),
    (32, 64, 160, 160),
    (64, 64, 80, 80),
    (64, 64, 40, 40),
    (64, 64, 20, 20),
    (8, 32, 96, 96),
    (128, 128, 20, 20),
]
RELU = cpu_conv.ACTIVATION_CODES["Relu"]


def runners(c: int, m: int, h: int, w: int, rng: np.random.Generator) -> tuple[dict[str, Callable], np.ndarray, dict]:
    """The three ways for one shape (each returns its output as NCHW ``(M, H*W)``), and the float64 reference."""
    pixels = h * w
    x = rng.standard_normal((c, pixels)).astype(np.float32)
    weights = rng.standard_normal((m, c)).astype(np.float32) / np.sqrt(c)
    bias = rng.standard_normal(m).astype(np.float32)
    reference = np.maximum(weights.astype(np.float64) @ x + bias[:, None], 0)
    f0 = np.float32(0)
    no_residual = np.zeros((1, 1), np.float32)
    w4, b4 = cpu_conv._pad_output_channels(weights, bias)
    xb = cpu_blocked.to_blocked(x.reshape(1, c, h, w)).reshape(-1)
    wb, b16, s16 = cpu_blocked.blocked_pointwise_weights(weights, bias)
    out_blocks = wb.shape[0]

    def direct():
        y = np.empty((m, pixels), np.float32)
        cpu_conv.pointwise_direct(x, w4, b4, y, RELU, f0, b4, f0, f0, no_residual, False, 0, pixels)
        return y

    def blas():
        y = np.empty((m, pixels), np.float32)
        np.matmul(weights, x, out=y)
        cpu_conv.epilogue(y, 0, m, 0, pixels, bias, RELU, f0, bias, f0, f0, no_residual, False)
        return y

    def blocked():
        y = np.empty(out_blocks * pixels * cpu_blocked.BLOCK, np.float32)
        cpu_blocked.pointwise_nchw16c(xb, wb, b16, s16, y, pixels, RELU, f0, f0, f0, y, False, 0, out_blocks, 0, pixels)
        return y

    def as_nchw(y):
        if y.ndim == 2:
            return y
        return cpu_blocked.from_blocked(y.reshape(1, out_blocks, h, w, cpu_blocked.BLOCK), m).reshape(m, pixels)

    conversion = {"to_blocked": lambda: cpu_blocked.to_blocked_fast(x.reshape(1, c, h, w))}
    return {"direct": direct, "BLAS": blas, "NCHW16c": blocked}, reference, {"as_nchw": as_nchw, **conversion}


def measure(rounds: int, shapes=SHAPES) -> list[dict]:
    rng = np.random.default_rng(0)
    results = []
    with threads.limit(1):
        for c, m, h, w in shapes:
            ways, reference, extra = runners(c, m, h, w, rng)
            errors = {}
            for name, f in ways.items():
                out = extra["as_nchw"](f())
                errors[name] = float(np.abs(out - reference).max() / np.abs(reference).max())
                if errors[name] > 1e-5:
                    raise RuntimeError(f"{name} on C={c} M={m} {h}x{w}: relative error {errors[name]:.1e} > 1e-5")
            times = {name: [] for name in ways}
            for _ in range(rounds):
                for name, f in ways.items():
                    times[name].append(timed_turn(f, TURN_SECONDS))
            med = {name: statistics.median(v) for name, v in times.items()}
            results.append({"C": c, "M": m, "H": h, "W": w,
                            "us": {k: v * 1e6 for k, v in med.items()},
                            "to_blocked_us": timed_turn(extra["to_blocked"], TURN_SECONDS) * 1e6,
                            "direct_over_blocked": med["direct"] / med["NCHW16c"],
                            "blas_over_blocked": med["BLAS"] / med["NCHW16c"],
                            "blocked_gflops": 2 * c * m * h * w / med["NCHW16c"] / 1e9,
                            "max_rel_error": errors})
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    results = measure(args.rounds)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| C -> M | pixels | direct us | BLAS us | NCHW16c us | direct / NCHW16c | BLAS / NCHW16c "
          "| NCHW16c GFLOP/s | to_blocked us |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        us = r["us"]
        print(f"| {r['C']} -> {r['M']} | {r['H']}x{r['W']} | {us['direct']:.0f} | {us['BLAS']:.0f} | "
              f"{us['NCHW16c']:.0f} | {r['direct_over_blocked']:.2f} | {r['blas_over_blocked']:.2f} | "
              f"{r['blocked_gflops']:.0f} | {r['to_blocked_us']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
