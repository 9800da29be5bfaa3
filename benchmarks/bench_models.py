"""Whole-model latency: minicnn against onnxruntime and onnx.reference, side by side.

For every zoo model at batch 1 (detectors at 640x640 and at t1.jpg's native
size, padded to a multiple of 32), in one interleaved run:

* minicnn, numpy backend (the readable references)
* minicnn, numba backend (the fast CPU path), at 1 thread and at all cores;
  with ``--with-nchw`` also with ``layout="NCHW"`` (no NCHW16c chains,
  ``minicnn.layout``), to measure what the layout pass gains, and with
  ``--with-unchained`` also with ``chains=False`` (every blocked layer
  called from Python, ``minicnn.chains``), to measure what running runs of
  layers as one compiled program gains
* onnxruntime CPU at the same thread counts
* onnx.reference.ReferenceEvaluator (ONNX's own pure-Python runtime)

Outputs are verified against onnxruntime before anything is timed. Timings
are medians over rounds in which every runner takes its turn (so a noisy
neighbour slows all of them alike), in an order that rotates from round to
round (so no runner always comes first, after the slow ones have flushed the
caches); a turn repeats its runner for at least TURN_SECONDS and counts the
mean, so a 1 ms model is not judged on single calls. Compare ratios, not
absolute times, across runs. ``--backend cuda`` adds minicnn's CUDA backend.

    python benchmarks/bench_models.py                   # everything (~10 min on 2 cores)
    python benchmarks/bench_models.py --no-reference --no-native   # quick: no onnx.reference, detectors at 640 only
    python benchmarks/bench_models.py --models scrfd_500m w600k_mbf --rounds 5
    python benchmarks/bench_models.py --no-reference --with-nchw   # with and without the NCHW16c layout
    python benchmarks/bench_models.py --no-reference --with-unchained   # with and without chains
    python benchmarks/bench_models.py --markdown benchmarks/results/models.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

import minicnn  # noqa: E402
from faceops import weights  # noqa: E402
from minicnn import threads  # noqa: E402

DETECTORS = ("scrfd_500m", "yunet", "retinaface_mnet025")
NATIVE = (896, 1280)  # t1.jpg is 886x1280; SCRFD and YuNet need multiples of 32
ZOO = ("scrfd_500m", "yunet", "retinaface_mnet025", "blazeface_short", "blazeface_full", "w600k_mbf", "sface",
       "2d106det", "facemesh", "fer_mini_xception", "age_cydral", "gender_cydral", "3ddfa_mb1")


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy {np.__version__}, "
            f"numba {__import__('numba').__version__}, onnxruntime {ort.__version__}, onnx {onnx.__version__}")


def input_shapes(name: str, path: Path) -> list[tuple[int, ...]]:
    graph = minicnn.load_model(path)
    shape = graph.inputs[0].shape
    if name in DETECTORS:
        return [(1, 3, 640, 640), (1, 3, *NATIVE)]
    return [tuple(int(d) if isinstance(d, int) and d > 0 else 1 for d in shape)]


def photo_input(shape: tuple[int, ...]) -> np.ndarray:
    """t1.jpg resized to the input size, scaled to [-1, 1]: real image statistics, not noise."""
    img = cv2.imread(str(weights.photo_path("t1")))
    n, c, h, w = shape
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    if c == 1:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None]
    x = (img.transpose(2, 0, 1)[None] - 127.5) / 128.0
    return np.ascontiguousarray(np.repeat(x, n, axis=0), dtype=np.float32)


def ort_session(path: Path, n_threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = n_threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # ORT's pool threads otherwise spin after each run and steal the cores from the runner timed next
    # (measured: a 1 ms minicnn conv took 13-21 ms right after an ORT turn). Off, every runner starts clean.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# Outputs whose values are all smaller than this are compared at this scale: YuNet's objectness maps
# peak at 8e-6 on the benchmark photo, where onnxruntime's Sigmoid has an absolute error of up to
# 1.4e-7 (measured against float64 on inputs in [-20, -10]), 2 % of the output's largest value.
MIN_SCALE = 1e-3
# A minicnn runner whose outputs differ more than this from onnxruntime's is not timed: the run stops.
# (onnx.reference's own error is reported, not checked: its opset-9 BatchNormalization mixes the batch's
# statistics into the running ones, as in training, so on 2d106det it is 0.37 off.)
TOLERANCE = 1e-3
TURN_SECONDS = 0.05  # each fast runner's turn lasts at least this long (the mean of its calls is its sample)
REFERENCE_TARGET = 40  # the target: minicnn at least this many times faster than onnx.reference


def timed_turn(fn, min_seconds: float) -> float:
    """Seconds per call of ``fn``, called back to back until ``min_seconds`` have passed (at least once)."""
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return elapsed / calls


def max_rel(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The worst ``max |a - b| / max(max |b|, MIN_SCALE)`` over the outputs: error relative to each output's range."""
    worst = 0.0
    for x, y in zip(a, b):
        scale = max(float(np.abs(y).max()), MIN_SCALE)
        worst = max(worst, float(np.abs(x.astype(np.float64) - y).max()) / scale)
    return worst


def bench_model(name: str, path: Path, shape, rounds: int, all_threads: int, with_reference: bool,
                with_cuda: bool, with_nchw: bool = False, with_unchained: bool = False) -> dict:
    x = photo_input(shape)
    feed_name = minicnn.load_model(path).inputs[0].name
    feeds = {feed_name: x}
    runners: dict[str, callable] = {}

    ref_sess = ort_session(path, all_threads)
    expected = ref_sess.run(None, feeds)

    def minicnn_runner(backend, n, layout="NCHW16c", chains=True):
        sess = minicnn.InferenceSession(str(path), backend=backend, layout=layout, chains=chains)
        t0 = time.perf_counter()
        with threads.limit(n):
            got = sess.run(None, feeds)
        first_call = time.perf_counter() - t0
        err = max_rel(got, expected)

        def run():
            with threads.limit(n):
                sess.run(None, feeds)

        return run, err, first_call

    errors, first_calls = {}, {}
    for n in sorted({1, all_threads}):
        run, errors[f"minicnn-numba {n}t"], first_calls[f"minicnn-numba {n}t"] = minicnn_runner("numba", n)
        runners[f"minicnn-numba {n}t"] = run
        if with_nchw:
            run, errors[f"minicnn-nchw {n}t"], _ = minicnn_runner("numba", n, "NCHW")
            runners[f"minicnn-nchw {n}t"] = run
        if with_unchained:
            run, errors[f"minicnn-unchained {n}t"], _ = minicnn_runner("numba", n, chains=False)
            runners[f"minicnn-unchained {n}t"] = run
        sess = ort_session(path, n)
        runners[f"onnxruntime {n}t"] = (lambda s: lambda: s.run(None, feeds))(sess)
    slow = {}
    run, errors["minicnn-numpy"], _ = minicnn_runner("numpy", all_threads)
    slow["minicnn-numpy"] = run
    if with_cuda:
        run, errors["minicnn-cuda"], first_calls["minicnn-cuda"] = minicnn_runner("cuda", all_threads)
        runners["minicnn-cuda"] = run
    if with_reference:
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(str(path))
        errors["onnx.reference"] = max_rel(ev.run(None, feeds), expected)
        slow["onnx.reference"] = lambda: ev.run(None, feeds)

    wrong = {k: v for k, v in errors.items() if k.startswith("minicnn") and v > TOLERANCE}
    if wrong:
        raise SystemExit(f"{name} {shape}: outputs differ from onnxruntime beyond {TOLERANCE:g} (relative): "
                         + ", ".join(f"{k} {v:.1e}" for k, v in wrong.items()) + "; not timing wrong results")
    times: dict[str, list[float]] = {k: [] for k in [*runners, *slow]}
    order = list(runners)
    for r in range(rounds):
        for label in order[r % len(order):] + order[:r % len(order)]:
            times[label].append(timed_turn(runners[label], TURN_SECONDS))
        if r < 2:  # the slow runners take seconds: two rounds are enough to see them
            for label, fn in slow.items():
                t0 = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t0)
    return {
        "model": name, "shape": shape,
        "ms": {k: 1000 * statistics.median(v) for k, v in times.items()},
        "max_rel_err": errors, "first_call_s": first_calls,
    }


def report(results: list[dict], all_threads: int) -> str:
    lines = [f"Machine: {machine()}", ""]
    threads_list = sorted({1, all_threads})
    head = ["model", "input"]
    for n in threads_list:
        head += [f"minicnn {n}t ms", f"ORT {n}t ms", f"ratio {n}t"]
    with_cuda = any("minicnn-cuda" in r["ms"] for r in results)
    with_nchw = any("minicnn-nchw 1t" in r["ms"] for r in results)
    if with_nchw:
        head += [f"NCHW {n}t ms" for n in threads_list] + [f"NCHW16c speed-up {n}t" for n in threads_list]
    with_unchained = any("minicnn-unchained 1t" in r["ms"] for r in results)
    if with_unchained:
        head += [f"unchained {n}t ms" for n in threads_list] + [f"chains speed-up {n}t" for n in threads_list]
    if with_cuda:
        head += ["minicnn cuda ms", "cuda speed-up vs numba"]
    head += ["numpy ref ms", "onnx.reference ms", "x faster than onnx.reference (1t)",
             "ORT x faster than onnx.reference (1t)", "minicnn max rel err", "onnx.reference max rel err",
             "first call s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in results:
        ms = r["ms"]
        row = [r["model"], "x".join(map(str, r["shape"][2:]))]
        for n in threads_list:
            m, o = ms[f"minicnn-numba {n}t"], ms[f"onnxruntime {n}t"]
            row += [f"{m:.1f}", f"{o:.1f}", f"{m / o:.2f}"]
        if with_nchw:
            row += [f"{ms[f'minicnn-nchw {n}t']:.1f}" for n in threads_list]
            row += [f"{ms[f'minicnn-nchw {n}t'] / ms[f'minicnn-numba {n}t']:.2f}" for n in threads_list]
        if with_unchained:
            row += [f"{ms[f'minicnn-unchained {n}t']:.2f}" for n in threads_list]
            row += [f"{ms[f'minicnn-unchained {n}t'] / ms[f'minicnn-numba {n}t']:.2f}" for n in threads_list]
        best = ms[f"minicnn-numba {all_threads}t"]
        single = ms["minicnn-numba 1t"]
        if with_cuda:
            row += [f"{ms['minicnn-cuda']:.1f}", f"{best / ms['minicnn-cuda']:.1f}"]
        ref = ms.get("onnx.reference")
        row += [f"{ms['minicnn-numpy']:.1f}", f"{ref:.0f}" if ref else "-", f"{ref / single:.0f}" if ref else "-",
                f"{ref / ms['onnxruntime 1t']:.0f}" if ref else "-",
                f"{max(v for k, v in r['max_rel_err'].items() if k.startswith('minicnn')):.1e}",
                f"{r['max_rel_err']['onnx.reference']:.1e}" if "onnx.reference" in r["max_rel_err"] else "-",
                f"{r['first_call_s'][f'minicnn-numba {all_threads}t']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("ratio = minicnn numba latency / onnxruntime latency at the same thread count (lower is better; "
                 "target <= 1.5). x faster than onnx.reference compares minicnn at 1 thread (onnx.reference runs "
                 "NumPy with single-threaded BLAS here). max rel err = the worst max |minicnn - ORT| / max |ORT| "
                 "over the outputs (scale at least 1e-3). first call = the first run of a fresh session (plan building and, on a cold "
                 "cache, Numba compilation).")
    with_ref = [r for r in results if "onnx.reference" in r["ms"]]
    if with_ref:
        def at_least(runner: str) -> int:
            return sum(r["ms"]["onnx.reference"] / r["ms"][runner] >= REFERENCE_TARGET for r in with_ref)

        lines += ["", f"{REFERENCE_TARGET:g}x faster than onnx.reference at 1 thread: minicnn on "
                  f"{at_least('minicnn-numba 1t')} of {len(with_ref)} rows, onnxruntime itself on "
                  f"{at_least('onnxruntime 1t')} of {len(with_ref)}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=list(ZOO))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-reference", action="store_true", help="skip onnx.reference (slow)")
    parser.add_argument("--no-native", action="store_true", help="detectors at 640x640 only, not also at t1.jpg's size")
    parser.add_argument("--backend", choices=["numba", "cuda"], default="numba",
                        help="cuda: add minicnn's CUDA backend as a column")
    parser.add_argument("--with-nchw", action="store_true",
                        help="also time minicnn with layout=NCHW (what the NCHW16c layout pass gains)")
    parser.add_argument("--with-unchained", action="store_true",
                        help="also time minicnn with chains=False (what running chains of layers as one call gains)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    all_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    results = []
    for name in args.models:
        path = weights.model_path(name)
        shapes = input_shapes(name, path)
        if args.no_native:
            shapes = shapes[:1]
        for shape in shapes:
            res = bench_model(name, path, shape, args.rounds, all_threads, not args.no_reference,
                              args.backend == "cuda", args.with_nchw, args.with_unchained)
            ms = res["ms"]
            print(f"{name} {shape}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
                  + "; max rel err " + ", ".join(f"{k} {v:.1e}" for k, v in res["max_rel_err"].items()), flush=True)
            results.append(res)
    table = report(results, all_threads)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
