"""Convolution benchmark over the shapes the model zoo really runs: CPU and GPU, side by side.

Every distinct Conv shape of the zoo (``zoo_shapes.py`` reads them from the
ONNX files) is run by every implementation available on this machine:

* ``numpy``: minicnn's readable reference (``get_op("Conv", "numpy")``, im2col + BLAS);
* ``numba``: minicnn's fast CPU path (``get_op("Conv", "numba")``);
* ``onnxruntime``: one-node Conv model on the CPU execution provider;
* ``cuda ...``: each variant of ``minicnn.kernels.cuda_conv`` (im2col + SGEMM
  v1/v2/v3 for dense and pointwise shapes, depthwise v1/v2 for depthwise ones),
  timed with CUDA events on a real GPU;
* ``cudnn``: PyTorch's ``conv2d`` (or CuPy's cuDNN binding) when installed with a GPU.

Before anything is timed, each implementation's output is compared with a
float64 reference (tolerance ``1e-4 * sqrt(C_in/group * kh * kw)``, abs and
rel); a mismatch stops the run. Then each shape runs ``--reps`` rounds, every
implementation taking one turn per round (noise hits all alike); the median
is reported as ms, GFLOP/s (2 FLOPs per multiply-add) and fraction of the
device's peak: the GPU's from a table of fp32 (non-tensor-core) peaks by
device name, the CPU's measured here with a square float32 SGEMM in NumPy.
The first call of each implementation (JIT compilation included) is
reported separately.

Without a GPU the CUDA columns are skipped with a note. Numba's CUDA
simulator cannot time anything meaningful, but ``--simulate`` uses it to
*validate* every CUDA variant on tiny versions of the zoo's geometries.

    python benchmarks/bench_conv.py --out benchmarks/results/          # everything available
    python benchmarks/bench_conv.py --top 20 --reps 3                  # the 20 costliest shapes
    python benchmarks/bench_conv.py --simulate --top 10                # no GPU: validate CUDA code

Writes ``bench_conv.md`` (tables), ``bench_conv.png`` (chart) and
``bench_conv.json`` (raw numbers) into ``--out``. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_shapes import ZOO, ConvShape, zoo_conv_shapes  # noqa: E402

# fp32 peak without tensor cores (FMA = 2 FLOPs), from the vendors' data sheets.
# Matched in order against the device name numba reports; first match wins.
GPU_FP32_PEAK_TFLOPS = (
    ("H100 PCIe", 51.2),
    ("H100 NVL", 60.0),
    ("H100", 66.9),  # SXM5: "NVIDIA H100 80GB HBM3"
    ("H200", 66.9),
    ("GH200", 66.9),
    ("A100", 19.5),
    ("L40S", 91.6),
    ("L4", 30.3),
    ("A10G", 31.2),
    ("A10", 31.2),
    ("RTX 4090", 82.6),
    ("V100", 15.7),
    ("T4", 8.1),
)


@dataclass
class Runner:
    """One implementation: ``setup(shape, x, w, b)`` returns a zero-argument callable computing the conv.

    The callable returns the output as a NumPy array when ``fetch=True`` (for
    validation) and may leave it on the device otherwise (for timing).
    ``timer``: "cpu" (wall clock) or "cuda"/"torch" (device events).
    """

    name: str
    device: str  # "cpu" or "gpu"
    setup: Callable
    applies: Callable[[ConvShape], bool] = lambda shape: True
    timer: str = "cpu"
    first_call_ms: float | None = None


@dataclass
class Result:
    shape: ConvShape
    uses: int
    models: list[str]
    ms: dict[str, float] = field(default_factory=dict)
    max_error: dict[str, float] = field(default_factory=dict)


# -- CPU implementations ----------------------------------------------------------------------------------
def _minicnn_runner(backend: str) -> Runner | None:
    import minicnn  # noqa: F401  (registers the ops)
    from minicnn.ops.registry import OPS

    fn = OPS.get("Conv", {}).get(backend)
    if fn is None:
        return None

    def setup(shape: ConvShape, x, w, b):
        attrs = shape.attrs()
        return lambda fetch=True: fn(x, w, b, **attrs)

    return Runner(f"minicnn {backend}", "cpu", setup)


def _onnxruntime_runner(threads: int) -> Runner:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    def setup(shape: ConvShape, x, w, b):
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **shape.attrs())
        x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))
        graph = helper.make_graph([node], "conv", [x_info], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        # ORT's idle worker threads spin for a while after each run, stealing the cores from whatever
        # runs next in the interleaved rounds (measured: minicnn's 1 ms conv took 20 ms after it).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return lambda fetch=True: sess.run(None, {"x": x})[0]

    return Runner(f"onnxruntime ({threads} thr)", "cpu", setup)


def measured_cpu_peak(threads: int, n: int = 2048) -> float:
    """GFLOP/s of NumPy's float32 square SGEMM (best of 3): the practical CPU peak."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a  # warm up BLAS threads
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


# -- GPU implementations ----------------------------------------------------------------------------------
def _cuda_runners() -> list[Runner]:
    from numba import cuda

    from minicnn.kernels import cuda_conv

    runners = []
    all_variants = {**cuda_conv.variants(2, (2, 1, 3, 3), 2), **cuda_conv.variants(2, (2, 2, 3, 3), 1)}
    for name, kwargs in all_variants.items():
        depthwise = "depthwise" in name

        def setup(shape: ConvShape, x, w, b, kwargs=kwargs):
            dx, dw, db = cuda.to_device(x), cuda.to_device(w), cuda.to_device(b)
            dy = cuda.device_array(shape.output, dtype=np.float32)
            size = cuda_conv.workspace_size(shape.x, shape.w, shape.strides, shape.pads, shape.dilations, shape.group)
            workspace = cuda.device_array(max(size, 1), dtype=np.float32)

            def call(fetch=True):
                cuda_conv.run_conv(dx, dw, dy, db, shape.strides, shape.pads, shape.dilations, shape.group,
                                   workspace=workspace, **kwargs)
                return dy.copy_to_host() if fetch else None

            return call

        runners.append(Runner(f"cuda {name}", "gpu", setup, timer="cuda",
                              applies=(lambda s, d=depthwise: s.depthwise == d)))
    return runners


def _cudnn_runner() -> Runner | None:
    """cuDNN through PyTorch, else through CuPy; None when neither is installed with a GPU."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True  # let cuDNN pick its fastest algorithm per shape
            # fp32 against fp32: PyTorch lets cuDNN convolutions use TF32 tensor cores by default,
            # which is a different (10-bit mantissa) arithmetic with a different peak.
            torch.backends.cudnn.allow_tf32 = False

            def setup(shape: ConvShape, x, w, b):
                tx, tw, tb = (torch.from_numpy(a).cuda() for a in (x, w, b))
                pt, pl, pb, pr = shape.pads
                if (pt, pl) != (pb, pr):  # asymmetric padding: pad explicitly, as ONNX exporters do
                    tx = torch.nn.functional.pad(tx, (pl, pr, pt, pb))
                    pt = pl = 0

                def call(fetch=True):
                    y = torch.nn.functional.conv2d(tx, tw, tb, shape.strides, (pt, pl), shape.dilations, shape.group)
                    return y.cpu().numpy() if fetch else y

                return call

            return Runner(f"cudnn (torch {torch.__version__})", "gpu", setup, timer="torch")
    except ImportError:
        pass
    try:
        import cupy

        try:
            from cupyx import cudnn as cupy_cudnn
        except ImportError:
            from cupy import cudnn as cupy_cudnn
        cupy.cuda.runtime.getDeviceCount()

        def setup(shape: ConvShape, x, w, b):
            cx, cw, cb = (cupy.asarray(a) for a in (x, w, b))
            pt, pl, pb, pr = shape.pads
            if (pt, pl) != (pb, pr):
                cx = cupy.pad(cx, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
                pt = pl = 0
            cy = cupy.empty(shape.output, dtype=cupy.float32)

            def call(fetch=True):
                cupy_cudnn.convolution_forward(cx, cw, cb, cy, (pt, pl), shape.strides, shape.dilations, shape.group)
                return cupy.asnumpy(cy) if fetch else cy

            return call

        return Runner(f"cudnn (cupy {cupy.__version__})", "gpu", setup, timer="cupy")
    except Exception:  # not installed, no device, or a CuPy without the cuDNN binding
        return None


def gpu_status() -> tuple[bool, str, float | None]:
    """(usable for timing, description, fp32 peak GFLOP/s or None)."""
    from minicnn import cuda_backend
    from minicnn.errors import BackendUnavailableError

    try:
        cuda_backend.check_available()
    except BackendUnavailableError as exc:
        return False, f"no GPU: {exc}", None
    if cuda_backend.simulator_enabled():
        return False, "numba's CUDA simulator (timings would be meaningless)", None
    from numba import cuda

    name = cuda.get_current_device().name
    name = name.decode() if isinstance(name, bytes) else str(name)
    peak = next((tf * 1e3 for key, tf in GPU_FP32_PEAK_TFLOPS if key in name), None)
    return True, name, peak


def _time(runner: Runner, call: Callable) -> float:
    """Milliseconds of one call, by the runner's clock."""
    if runner.timer == "cuda":
        from numba import cuda

        start, end = cuda.event(), cuda.event()
        start.record()
        call(False)
        end.record()
        end.synchronize()
        return cuda.event_elapsed_time(start, end)
    if runner.timer == "torch":
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call(False)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    if runner.timer == "cupy":
        import cupy

        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        call(False)
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end)
    t = time.perf_counter()
    call(False)
    return (time.perf_counter() - t) * 1e3


def _inputs(shape: ConvShape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape.x).astype(np.float32)
    w = (rng.standard_normal(shape.w) / math.sqrt(shape.w[1] * shape.w[2] * shape.w[3])).astype(np.float32)
    b = rng.standard_normal(shape.w[0]).astype(np.float32)
    return x, w, b


def reference(shape: ConvShape, x, w, b) -> np.ndarray:
    """float64 im2col reference (the same maths as the CUDA kernels' ``conv_reference``)."""
    from minicnn.kernels.cuda_conv import conv_reference

    return conv_reference(x, w, b, shape.strides, shape.pads, shape.dilations, shape.group)


def tolerance(shape: ConvShape) -> float:
    return 1e-4 * math.sqrt(shape.w[1] * shape.w[2] * shape.w[3])


def bench(shapes: list[tuple[ConvShape, list]], runners: list[Runner], reps: int) -> list[Result]:
    results = []
    for index, (shape, where) in enumerate(shapes):
        x, w, b = _inputs(shape)
        want = reference(shape, x, w, b)
        result = Result(shape, len(where), sorted({m for m, _ in where}))
        calls = {}
        for runner in runners:
            if not runner.applies(shape):
                continue
            call = runner.setup(shape, x, w, b)
            t = time.perf_counter()
            got = call(True)
            if runner.first_call_ms is None:
                runner.first_call_ms = (time.perf_counter() - t) * 1e3
            err = np.abs(np.asarray(got, dtype=np.float64) - want)
            tol = tolerance(shape)
            if got.shape != want.shape or np.any(err > tol + tol * np.abs(want)):
                raise SystemExit(f"{runner.name} disagrees with the reference on {shape.label()}: "
                                 f"max abs error {err.max():.3g} (tolerance {tol:.2g})")
            result.max_error[runner.name] = float(err.max())
            calls[runner.name] = (runner, call)
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(reps):  # interleaved rounds
            for name, (runner, call) in calls.items():
                samples[name].append(_time(runner, call))
        result.ms = {name: statistics.median(v) for name, v in samples.items()}
        results.append(result)
        best = min(result.ms, key=result.ms.get) if result.ms else "-"
        print(f"[{index + 1}/{len(shapes)}] {shape.label():<36} {shape.flops / 1e6:8.1f} MFLOP  fastest: {best}",
              flush=True)
    return results


# -- the simulator's validation-only mode ------------------------------------------------------------------
def tiny(shape: ConvShape) -> ConvShape:
    """The same geometry (kernel, stride, padding, dilation, kind) on a few channels and pixels."""
    kh, kw = shape.w[2:]
    eff_h = (kh - 1) * shape.dilations[0] + 1
    eff_w = (kw - 1) * shape.dilations[1] + 1
    h = max(min(shape.x[2], 2 * shape.strides[0] + eff_h), eff_h)
    wd = max(min(shape.x[3], 2 * shape.strides[1] + eff_w), eff_w)
    if shape.depthwise:
        c = min(shape.x[1], 3)
        m = shape.w[0] // shape.x[1]
        return ConvShape((1, c, h, wd), (c * m, 1, kh, kw), shape.strides, shape.pads, shape.dilations, c)
    group = 2 if shape.group > 1 else 1
    c_in = group * min(shape.w[1], 3)
    c_out = group * min(shape.w[0] // shape.group, 3)
    return ConvShape((1, c_in, h, wd), (c_out, c_in // group, kh, kw), shape.strides, shape.pads,
                     shape.dilations, group)


def simulate(shapes: list[ConvShape]) -> list[str]:
    """Validate every CUDA variant on tiny versions of ``shapes`` under the simulator; returns report lines."""
    from numba import cuda

    from minicnn.kernels import cuda_conv

    lines = []
    for shape in sorted({tiny(s) for s in shapes}):
        x, w, b = _inputs(shape)
        want = reference(shape, x, w, b)
        tol = tolerance(shape)
        for name, kwargs in cuda_conv.variants(shape.x[1], shape.w, shape.group).items():
            dy = cuda.device_array(shape.output, dtype=np.float32)
            cuda_conv.run_conv(cuda.to_device(x), cuda.to_device(w), dy, cuda.to_device(b), shape.strides,
                               shape.pads, shape.dilations, shape.group, **kwargs)
            err = float(np.abs(dy.copy_to_host() - want).max())
            ok = err <= tol + tol * float(np.abs(want).max())
            lines.append(f"| {shape.label()} | {name} | {err:.2e} | {'ok' if ok else 'MISMATCH'} |")
            print(lines[-1], flush=True)
            if not ok:
                raise SystemExit(f"cuda {name} disagrees with the reference on {shape.label()}")
    return lines


# -- report ------------------------------------------------------------------------------------------------
def _cell(ms: float | None, flops: int, peak: float | None) -> str:
    if ms is None:
        return "-"
    gflops = flops / (ms * 1e-3) / 1e9
    frac = f" · {gflops / peak:.1%}" if peak else ""
    return f"{ms:.3f} ms · {gflops:.1f} GF/s{frac}"


def write_report(out: Path, results: list[Result], runners: list[Runner], peaks: dict[str, float | None],
                 notes: list[str], sim_lines: list[str], args, title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    names = [r.name for r in runners if any(r.name in res.ms for res in results)]
    device_of = {r.name: r.device for r in runners}
    lines = ["# Convolution benchmark: the zoo's conv shapes", ""]
    lines += [f"- {n}" for n in notes] + [""]
    if results:
        lines += ["## Whole zoo (each shape weighted by how often it occurs)", "",
                  "| implementation | total ms | GFLOP/s | fraction of peak | first call ms |", "|---|---|---|---|---|"]
        for name in names:
            covered = [r for r in results if name in r.ms]
            total_ms = sum(r.ms[name] * r.uses for r in covered)
            flops = sum(r.shape.flops * r.uses for r in covered)
            peak = peaks[device_of[name]]
            runner = next(r for r in runners if r.name == name)
            share = f" ({len(covered)}/{len(results)} shapes)" if len(covered) < len(results) else ""
            gflops = flops / (total_ms * 1e-3) / 1e9
            lines.append(f"| {name}{share} | {total_ms:.2f} | {gflops:.1f} | "
                         f"{f'{gflops / peak:.1%}' if peak else '-'} | {runner.first_call_ms:.0f} |")
        lines += ["", "## Per shape (median of the interleaved rounds)", "",
                  "| shape | kind | uses | MFLOP | " + " | ".join(names) + " |",
                  "|---|---|---|---|" + "---|" * len(names)]
        for r in results:
            cells = [_cell(r.ms.get(n), r.shape.flops, peaks[device_of[n]]) for n in names]
            lines.append(f"| {r.shape.label()} | {r.shape.kind} | {r.uses} | {r.shape.flops / 1e6:.1f} | "
                         + " | ".join(cells) + " |")
    if sim_lines:
        lines += ["", "## CUDA variants validated on numba's simulator (tiny shapes, no timing)", "",
                  "| tiny shape | variant | max abs error | |", "|---|---|---|---|", *sim_lines]
    (out / "bench_conv.md").write_text("\n".join(lines) + "\n")
    raw = {"notes": notes, "peaks_gflops": peaks, "args": {k: str(v) for k, v in vars(args).items()},
           "first_call_ms": {r.name: r.first_call_ms for r in runners},
           "results": [{"shape": r.shape.label(), "x": r.shape.x, "w": r.shape.w, "strides": r.shape.strides,
                        "pads": r.shape.pads, "dilations": r.shape.dilations, "group": r.shape.group,
                        "uses": r.uses, "models": r.models, "mflop": r.shape.flops / 1e6, "ms": r.ms,
                        "max_abs_error": r.max_error} for r in results]}
    (out / "bench_conv.json").write_text(json.dumps(raw, indent=1))
    if results:
        _chart(out / "bench_conv.png", results[: args.chart_shapes], names, title)


def _chart(path: Path, results: list[Result], names: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 0.5 * len(results) * max(1, len(names) / 3) + 1.5))
    height = 0.8 / len(names)
    ys = np.arange(len(results))
    for i, name in enumerate(names):
        values = [r.shape.flops / (r.ms[name] * 1e-3) / 1e9 if name in r.ms else 0 for r in results]
        ax.barh(ys + i * height, values, height, label=name)
    ax.set_yticks(ys + 0.4 - height / 2)
    ax.set_yticklabels([f"{r.shape.label()} (x{r.uses})" for r in results], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("GFLOP/s (log scale; higher is better)")
    ax.set_title(f"Zoo conv shapes, costliest first\n{title}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO)
    parser.add_argument("--top", type=int, default=None, help="only the N shapes with the most zoo FLOPs")
    parser.add_argument("--reps", type=int, default=5, help="interleaved timing rounds per shape")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for BLAS, Numba and onnxruntime "
                        "(default: every core this process may use)")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU implementations")
    parser.add_argument("--simulate", action="store_true",
                        help="no GPU: validate the CUDA variants on numba's simulator (tiny shapes, no timing)")
    parser.add_argument("--chart-shapes", type=int, default=25, help="shapes shown in the PNG chart")
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    # minicnn first: it picks Numba's threading layer before Numba is imported (minicnn.threads).
    import minicnn
    import numba

    if args.simulate:
        from minicnn import cuda_backend

        cuda_backend.enable_simulator()  # before anything imports numba.cuda
    if not args.no_cpu:
        minicnn.threads.configure(args.threads)  # one thread count for BLAS and Numba alike

    table = zoo_conv_shapes(args.models)
    shapes = sorted(table.items(), key=lambda kv: -kv[0].flops * len(kv[1]))[: args.top]
    cpu = os.popen("grep -m1 'model name' /proc/cpuinfo").read().split(":")[-1].strip() or platform.processor()
    notes = [f"{cpu}, {os.cpu_count()} cores, {args.threads} threads used; numpy {np.__version__}, "
             f"numba {numba.__version__}; {len(shapes)} of {len(table)} distinct shapes "
             f"(models: {', '.join(args.models)}), batch 1; {args.reps} interleaved rounds, median"]

    runners: list[Runner] = []
    peaks: dict[str, float | None] = {"cpu": None, "gpu": None}
    if not args.no_cpu:
        for backend in ("numpy", "numba"):
            runner = _minicnn_runner(backend)
            if runner is None:
                notes.append(f"minicnn {backend}: no Conv registered for this backend; column skipped")
            else:
                runners.append(runner)
        runners.append(_onnxruntime_runner(args.threads))
        peaks["cpu"] = measured_cpu_peak(args.threads)
    usable, gpu, peaks["gpu"] = gpu_status()
    sim_lines: list[str] = []
    if usable:
        runners += _cuda_runners()
        cudnn = _cudnn_runner()
        if cudnn:
            runners.append(cudnn)
        else:
            notes.append("cuDNN: neither PyTorch nor CuPy with a GPU is installed; column skipped")
        notes.append(f"GPU: {gpu}; fp32 peak (no tensor cores) "
                     + (f"{peaks['gpu'] / 1e3:.1f} TFLOP/s from the data-sheet table" if peaks["gpu"]
                        else "unknown for this device (add it to GPU_FP32_PEAK_TFLOPS)")
                     + "; CUDA times are CUDA-event intervals around one call, Python launch overhead included")
    else:
        notes.append(f"CUDA columns skipped: {gpu.rstrip('.')}. CUDA timings are unmeasured on this machine.")
        if args.simulate:
            notes.append("--simulate: the CUDA variants were validated (not timed) on tiny versions of each geometry")
            sim_lines = simulate([s for s, _ in shapes])
    results = bench(shapes, runners, args.reps) if runners else []
    if peaks["cpu"]:
        # Measured again after the run, keeping the better: a neighbour's load only ever lowers it.
        peaks["cpu"] = max(peaks["cpu"], measured_cpu_peak(args.threads))
        notes.append(f"CPU peak: {peaks['cpu']:.0f} GFLOP/s, NumPy float32 2048^3 SGEMM on {args.threads} "
                     "threads (best of 3, before and after the run); above 100% means a shape beat it")
    title = f"{cpu}, {args.threads} threads" + (f"; {gpu}" if usable else "; no GPU")
    write_report(args.out, results, runners, peaks, notes, sim_lines, args, title)
    print(f"wrote {args.out / 'bench_conv.md'}" + (f", {args.out / 'bench_conv.png'}" if results else ""))


if __name__ == "__main__":
    main()
