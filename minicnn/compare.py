"""Compare minicnn with onnxruntime, tensor by tensor, and find where they part.

onnxruntime only returns a graph's outputs, so ``compare`` first makes a copy
of the model in which every node output is also a graph output, runs it with
onnxruntime's optimisations off (each tensor is then exactly what its node
computes), runs minicnn with ``intermediates=True``, and lines the two up by
tensor name in the file's node order.

Tensors that minicnn's optimiser fused away (a Conv's output before its
folded BatchNorm, say) exist only on the onnxruntime side; they are listed as
"fused" and not compared. The first node whose relative error exceeds the
tolerance is the one to look at: everything after it inherits the error.

onnxruntime is needed here (it is the reference); minicnn itself never
imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from .session import InferenceSession


@dataclass
class TensorDiff:
    node: str
    op: str
    tensor: str
    shape: list[int]
    max_abs: float | None  # None when minicnn never materialised the tensor
    max_rel: float | None  # max |a - b| / max |b|: the error relative to the tensor's scale
    status: str  # "ok", "DIVERGED", "fused", "shape mismatch"


@dataclass
class CompareReport:
    rows: list[TensorDiff] = field(default_factory=list)
    rtol: float = 1e-3
    atol: float = 1e-5

    @property
    def first_divergence(self) -> TensorDiff | None:
        return next((r for r in self.rows if r.status in ("DIVERGED", "shape mismatch")), None)

    @property
    def outputs_match(self) -> bool:
        return self.first_divergence is None

    def to_json(self) -> dict:
        first = self.first_divergence
        return {
            "rtol": self.rtol,
            "atol": self.atol,
            "match": self.outputs_match,
            "first_divergence": asdict(first) if first else None,
            "tensors": [asdict(r) for r in self.rows],
        }


def _ort_all_tensors(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("minicnn compare needs onnxruntime as the reference: pip install onnxruntime") from exc
    model = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in existing:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                existing.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def _read(source) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        return source
    if isinstance(source, (bytes, bytearray)):
        return onnx.load_from_string(bytes(source))
    return onnx.load(str(source))


def compare(model, feeds: dict[str, np.ndarray], backend: str = "numba", optimize: bool = True,
            rtol: float = 1e-3, atol: float = 1e-5, session: InferenceSession | None = None) -> CompareReport:
    """Run ``model`` in minicnn and onnxruntime on ``feeds`` and diff every tensor.

    A tensor diverges when ``max|a-b| > atol`` and ``max|a-b| / max|b| > rtol``.
    ``session`` reuses an already loaded minicnn session of ``model``
    (``backend`` and ``optimize`` are then its own).
    """
    # minicnn first: its errors for a bad file or bad feeds are the readable ones.
    sess = session or InferenceSession(model, backend=backend, optimize=optimize)
    _, ours = sess.run(None, feeds, intermediates=True)
    reference = _ort_all_tensors(_read(model), feeds)
    report = CompareReport(rtol=rtol, atol=atol)
    for node in sess.model_graph.nodes:
        for name in node.outputs:
            if not name or name not in reference:
                continue
            ref = np.asarray(reference[name])
            if name not in ours:
                report.rows.append(TensorDiff(node.name, node.op_type, name, list(ref.shape), None, None, "fused"))
                continue
            got = np.asarray(ours[name])
            if got.shape != ref.shape:
                report.rows.append(
                    TensorDiff(node.name, node.op_type, name, list(ref.shape), None, None, "shape mismatch")
                )
                continue
            if ref.size == 0:
                report.rows.append(TensorDiff(node.name, node.op_type, name, list(ref.shape), 0.0, 0.0, "ok"))
                continue
            diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
            max_abs = float(diff.max())
            scale = float(np.abs(ref).max())
            max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
            bad = max_abs > atol and max_rel > rtol
            report.rows.append(
                TensorDiff(node.name, node.op_type, name, list(ref.shape), max_abs, max_rel,
                           "DIVERGED" if bad else "ok")
            )
    return report


def format_report(report: CompareReport, only_problems: bool = False) -> str:
    name_w = min(max([len(r.node) for r in report.rows] + [4]), 36)
    header = f"{'node':<{name_w}}  {'op':<18} {'shape':<22} {'max abs':>10} {'max rel':>10}  status"
    lines = [header, "-" * len(header)]
    for r in report.rows:
        if only_problems and r.status == "ok":
            continue
        abs_s = "-" if r.max_abs is None else f"{r.max_abs:.2e}"
        rel_s = "-" if r.max_rel is None else f"{r.max_rel:.2e}"
        lines.append(f"{r.node[:name_w]:<{name_w}}  {r.op:<18} {str(r.shape):<22} {abs_s:>10} {rel_s:>10}  {r.status}")
    compared = [r for r in report.rows if r.max_abs is not None]
    fused = sum(r.status == "fused" for r in report.rows)
    lines.append("-" * len(header))
    first = report.first_divergence
    if first is None:
        worst = max((r.max_rel for r in compared), default=0.0)
        lines.append(
            f"all {len(compared)} compared tensors within rtol={report.rtol:g} / atol={report.atol:g} "
            f"(worst relative error {worst:.2e}; {fused} fused away by minicnn's optimiser, not compared)"
        )
    else:
        lines.append(f"FIRST DIVERGENCE: node {first.node!r} ({first.op}), tensor {first.tensor!r}: {first.status}"
                     + (f", max rel {first.max_rel:.2e}" if first.max_rel is not None else ""))
    return "\n".join(lines)
