"""Convolution on the CPU: minicnn's im2col reference and Numba fast path against onnxruntime.

For the convolution shapes that really occur in the model zoo (read from the
ONNX files by ``benchmarks/zoo_shapes.py``), each shape is run as

* ``im2col``: ``minicnn.ops.conv.conv_im2col``, the readable NumPy reference;
* ``numba``:  minicnn's fast path (``Conv`` of the numba backend);
* ``ort``:    onnxruntime on a one-node Conv model, weights as initializers
  (so it may pre-pack them, as it does in a real model),

at 1 thread and at every available core (``minicnn.threads.limit`` sets BLAS
and Numba, ``intra_op_num_threads`` onnxruntime). onnxruntime's idle threads
are told not to spin (``session.intra_op.allow_spinning=0``): by default
they keep spinning after a run and, interleaved as the runners are here,
take a core from whichever runner is timed next (``--ort-spin`` restores
the default; on a busy 2-core machine it also made onnxruntime itself
slower at 2 threads). Outputs are validated
against onnxruntime before anything is timed. Timings are medians over
rounds in which every runner takes its turn (noisy neighbours slow all
alike); compare ratios from one run, not absolute times across runs.

The last table weighs each shape by how often it occurs, which is the
convolution time a whole zoo pass would spend. The first line reports the
time a fresh process takes to get the kernels ready (on-disk cache hit, or
compilation when the cache is cold).

    python benchmarks/bench_conv_cpu.py                   # the 30 shapes with the most FLOPs
    python benchmarks/bench_conv_cpu.py --top 0           # every distinct shape (slow)
    python benchmarks/bench_conv_cpu.py --models scrfd_500m --threads 1

``select_shapes`` and ``conv_model`` are shared with the CUDA benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from minicnn import threads  # noqa: E402  (first: it sets Numba's threading layer)
from minicnn.ops import conv as conv_ops  # noqa: E402
from zoo_shapes import ZOO, ConvShape, zoo_conv_shapes  # noqa: E402

RTOL = ATOL = 1e-3  # float32 sums of up to ~10^4 products, relative to the output's scale


def select_shapes(models=ZOO, top: int = 30) -> list[tuple[ConvShape, int]]:
    """``(shape, number of uses)`` for the ``top`` shapes by total FLOPs in ``models`` (0: all)."""
    table = zoo_conv_shapes(models)
    ranked = sorted(table.items(), key=lambda kv: -kv[0].flops * len(kv[1]))
    if top:
        ranked = ranked[:top]
    return [(shape, len(where)) for shape, where in ranked]


def conv_inputs(shape: ConvShape, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random X, W, B for ``shape`` (weights scaled like a trained layer's, so outputs are O(1))."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape.x, dtype=np.float32)
    fan_in = shape.w[1] * shape.w[2] * shape.w[3]
    w = (rng.standard_normal(shape.w, dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)
    b = rng.standard_normal(shape.w[0], dtype=np.float32)
    return x, w, b


def conv_model(shape: ConvShape, w: np.ndarray, b: np.ndarray):
    """A one-node ONNX Conv model for ``shape``: input ``x``, W and B as initializers, output ``y``."""
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], **shape.attrs())
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape.x))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape.output))],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def ort_runner(shape: ConvShape, w, b, n_threads: int, spinning: bool = False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = n_threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not spinning:
        # onnxruntime's idle threads otherwise spin after each run, taking a core from the next runner.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(conv_model(shape, w, b).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x})[0]


def first_call_seconds() -> float:
    """Seconds a fresh Python process needs to import the kernels and run each once."""
    code = ("import time; t = time.perf_counter(); from minicnn.kernels import cpu_conv; cpu_conv.warm_up(); "
            "print(time.perf_counter() - t)")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_shape(shape: ConvShape, n_threads: int, rounds: int, ort_spinning: bool = False) -> dict[str, float]:
    """Median ms of each runner on ``shape`` at ``n_threads``; raises if an output is wrong."""
    x, w, b = conv_inputs(shape)
    attrs = shape.attrs()
    geometry = conv_ops.conv_geometry(x.shape, w.shape, **attrs)
    runners = {
        "im2col": lambda: conv_ops.conv_im2col(x, w, b, geometry),
        "numba": lambda: conv_ops.Conv_numba(x, w, b, **attrs),
    }
    ort_run = ort_runner(shape, w, b, n_threads, ort_spinning)
    expected = ort_run(x)
    scale = float(np.abs(expected).max()) or 1.0
    with threads.limit(n_threads):
        for name, fn in runners.items():
            got = fn()
            err = float(np.abs(got - expected).max()) / scale
            if got.shape != expected.shape or err > RTOL:
                raise AssertionError(f"{name} is wrong on {shape.label()}: max error {err:.2e} of scale {scale:.2f}")
        runners["ort"] = lambda: ort_run(x)
        times = {name: [] for name in runners}
        for _ in range(rounds):
            for name, fn in runners.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO)
    parser.add_argument("--top", type=int, default=30, help="shapes with the most FLOPs (0: every shape)")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, threads.available_cores()}))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ort-spin", action="store_true",
                        help="let onnxruntime's idle threads spin between runs (its default; in an "
                             "interleaved benchmark they take a core from the runner timed next)")
    args = parser.parse_args(argv)

    print(f"kernels ready in a fresh process: {first_call_seconds():.2f} s (import + first call of each kernel)")
    shapes = select_shapes(args.models, args.top)
    totals = {n: {"im2col": 0.0, "numba": 0.0, "ort": 0.0} for n in args.threads}
    for n in args.threads:
        print(f"\n### {n} thread{'s' * (n > 1)}\n")
        print("| shape | kind | uses | MFLOP | im2col ms | numba ms | ORT ms | numba GFLOP/s | ORT GFLOP/s "
              "| numba / ORT |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for shape, uses in shapes:
            ms = bench_shape(shape, n, args.rounds, args.ort_spin)
            for k in totals[n]:
                totals[n][k] += ms[k] * uses
            gflops = shape.flops / 1e6
            print(f"| {shape.label()} | {shape.kind} | {uses} | {gflops:.1f} | {ms['im2col']:.3f} | "
                  f"{ms['numba']:.3f} | {ms['ort']:.3f} | {gflops / ms['numba']:.1f} | {gflops / ms['ort']:.1f} | "
                  f"{ms['numba'] / ms['ort']:.2f} |", flush=True)
    print("\n### all selected shapes, weighted by their number of uses\n")
    print("| threads | im2col ms | numba ms | ORT ms | numba / ORT | im2col / numba |")
    print("|---|---|---|---|---|---|")
    for n, t in totals.items():
        print(f"| {n} | {t['im2col']:.1f} | {t['numba']:.1f} | {t['ort']:.1f} | {t['numba'] / t['ort']:.2f} | "
              f"{t['im2col'] / t['numba']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
