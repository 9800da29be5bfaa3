"""``InferenceSession``: run an ONNX model with minicnn, the way onnxruntime does.

The API mirrors onnxruntime's so code can swap one for the other::

    sess = minicnn.InferenceSession("scrfd_500m.onnx", backend="numba")
    name = sess.get_inputs()[0].name
    outputs = sess.run(None, {name: blob})

and adds what a learner needs on top:

* ``sess.steps(feeds)`` yields every node with its input and output tensors,
  so a notebook or debugger can walk a real network one layer at a time;
* ``sess.run(..., intermediates=True)`` also returns every tensor by name
  (which is how ``minicnn compare`` lines it up with onnxruntime).

Backends: ``"numpy"`` runs every op's readable reference; ``"numba"`` runs the
fast kernels where an op has one (and the reference elsewhere: Reshape needs
no kernel); ``"cuda"`` keeps activations on a GPU (``minicnn.cuda_backend``).

How a run works: the graph is loaded once and optimised once (BatchNorm folded
into convolutions, activations fused, constant subgraphs computed; see
``minicnn.optimize``; ``optimize=False`` keeps the file's graph as it is).
The first run at a new input shape also records which tensors only depend on
that shape and reuses them afterwards (``minicnn.executor.Plan``): a detector
runs at any size, and each size pays the set-up once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from . import ops  # noqa: F401  (registers every op)
from .errors import InputError, UnsupportedOpError
from .executor import Plan, build_plan, run_node
from .graph import Graph, Node, ValueInfo, load_model
from .ops.registry import get_op, get_preparer, supported_ops
from .optimize import optimize as optimize_graph

log = logging.getLogger(__name__)

BACKENDS = ("numba", "numpy", "cuda")
LAYOUTS = ("NCHW16c", "NCHW")
MAX_CACHED_SHAPES = 8  # plans kept per session (one per distinct input shape), least recently used dropped


def _ops_for(graph: Graph, backend: str) -> tuple[dict, dict]:
    """The op function of each op type in ``graph`` on ``backend``, and the preparers of those that have one."""
    fns = {n.op_type: get_op(n.op_type, backend) for n in graph.nodes}
    preparers = {op: get_preparer(op, backend) for op in fns}
    return fns, {op: prepare for op, prepare in preparers.items() if prepare is not None}


@dataclass
class ShapePlans:
    """What a session keeps per input shape (see ``InferenceSession.run``)."""

    plan: Plan               # the NCHW graph specialised to this shape (intermediates; the CUDA executor's source)
    executor: object | None  # the CUDA executor, on the cuda backend
    blocked: Plan | None     # the NCHW16c plan of the numba backend (minicnn.layout), if any node blocks
    fused: Plan | None = None  # what ``run`` executes: ``blocked`` with its chains of layers fused (minicnn.chains)


@dataclass(frozen=True)
class NodeArg:
    """onnxruntime's description of an input or output: name, shape, type."""

    name: str
    shape: list
    type: str


@dataclass
class NodeStep:
    """What ``InferenceSession.steps`` yields for each node it runs."""

    index: int
    node: Node
    inputs: dict[str, np.ndarray | None]
    outputs: dict[str, np.ndarray]

    def __str__(self) -> str:
        def fmt(d):
            return ", ".join(f"{k}: {'-' if v is None else f'{v.dtype}{list(v.shape)}'}" for k, v in d.items())

        return f"[{self.index}] {self.node.name} ({self.node.op_type})  in: {fmt(self.inputs)}  out: {fmt(self.outputs)}"


def _node_arg(vi: ValueInfo) -> NodeArg:
    shape = list(vi.shape) if vi.shape is not None else None
    return NodeArg(vi.name, shape, vi.onnx_type)


class InferenceSession:
    """Load an ONNX model (path or bytes) and run it natively.

    Parameters
    ----------
    path_or_bytes : the .onnx file, its bytes, or an ``onnx.ModelProto``.
    backend : "numba" (default: fast CPU kernels), "numpy" (readable
        references only) or "cuda" (GPU; needs numba.cuda and a device).
    optimize : fold BatchNorm, fuse activations and fold constants at load
        (results stay equal up to float32 round-off). False keeps every node
        of the file, which is what you want when stepping through it.
    num_threads : threads for the numba backend's kernels and BLAS, set for
        the whole process (``minicnn.threads.configure``). Default: the
        count already set (by ``configure``, or an enclosing
        ``threads.limit`` block), else every core.
    layout : "NCHW16c" (default) lets the numba backend's ``run`` keep chains
        of convolutions, pools and resizes in the channel-blocked layout
        (``minicnn.layout``); "NCHW" runs every node in the file's
        layout. ``steps``, ``intermediates=True`` and the other backends
        always use NCHW.
    chains : True (default) lets ``run`` execute each run of consecutive
        blocked layers in one compiled call (``minicnn.chains``; the same
        results, bit for bit); False calls every layer from Python.
    """

    def __init__(self, path_or_bytes, backend: str = "numba", optimize: bool = True,
                 num_threads: int | None = None, providers: Sequence[str] | None = None, layout: str = "NCHW16c",
                 chains: bool = True):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
        self.backend = backend
        self.layout = layout if backend == "numba" else "NCHW"
        self.use_chains = chains
        self.model_graph = load_model(path_or_bytes)  # the file's graph, untouched
        self._check_supported(self.model_graph)
        self.graph = optimize_graph(self.model_graph) if optimize else self.model_graph
        kernel_backend = "numba" if backend == "cuda" else backend
        self._fns, self._preparers = _ops_for(self.graph, kernel_backend)
        self._plans: OrderedDict[tuple, ShapePlans] = OrderedDict()  # by input shapes and dtypes
        if backend in ("numba", "cuda"):
            from . import threads

            if num_threads is None:
                threads.ensure_configured()
            else:
                threads.configure(num_threads)
        if backend == "cuda":
            from . import cuda_backend

            cuda_backend.check_available()
        log.debug("loaded %s: %d nodes (%d after optimisation), opset %d, backend %s",
                  self.model_graph.source, len(self.model_graph.nodes), len(self.graph.nodes),
                  self.graph.opset, backend)

    # -- onnxruntime-compatible API -------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        return [_node_arg(vi) for vi in self.graph.inputs]

    def get_outputs(self) -> list[NodeArg]:
        return [_node_arg(vi) for vi in self.graph.outputs]

    def get_providers(self) -> list[str]:
        return [f"minicnn:{self.backend}"]

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray],
            run_options=None, intermediates: bool = False):
        """Run the model; returns the outputs as a list, in ``output_names`` order.

        ``output_names=None`` means every graph output. With
        ``intermediates=True`` it returns ``(outputs, tensors)``, ``tensors``
        holding every tensor of the run by name (feeds, folded shape tensors
        and every node output; weights excluded).
        """
        feeds = self._check_feeds(input_feed)
        names = self._check_output_names(output_names)
        key = tuple((k, v.shape, v.dtype.str) for k, v in sorted(feeds.items()))
        cached = self._plans.get(key)
        if cached is None:
            plan, env = build_plan(self.graph, self._fns, feeds, self._preparers)
            executor = self._make_device_executor(plan)
            blocked = self._blocked_plan(plan, env, feeds) if self.layout == "NCHW16c" else None
            self._plans[key] = ShapePlans(plan, executor, blocked, self._fused(blocked))
            if len(self._plans) > MAX_CACHED_SHAPES:
                self._plans.popitem(last=False)
            if executor is not None and not intermediates:
                return executor.run(feeds, names)
        else:
            self._plans.move_to_end(key)
            plan, executor, fast = cached.plan, cached.executor, cached.fused
            if executor is not None and not intermediates:
                return executor.run(feeds, names)
            if fast is not None and not intermediates:
                env = fast.execute(feeds, keep=set(names))
                return [env[n] if n in env else fast.constants.get(n, plan.constants.get(n)) for n in names]
            env = plan.execute(feeds, keep=None if intermediates else set(names))
        outputs = [env[n] if n in env else plan.constants[n] for n in names]
        if intermediates:
            folded = {k: v for k, v in plan.constants.items() if k not in self.graph.initializers}
            return outputs, {**folded, **env}
        return outputs

    def _blocked_plan(self, plan: Plan, env: dict, feeds: dict) -> Plan | None:
        """The plan's graph with its blockable chains in NCHW16c (``minicnn.layout``), planned; None if none.

        Planning it runs it once, so the first run at a new shape costs two.
        """
        from .layout import block_graph

        shapes = {name: np.shape(value) for name, value in {**plan.constants, **env}.items()}
        graph = block_graph(plan.graph, shapes)
        if graph is None:
            return None
        fns, preparers = _ops_for(graph, "numba")
        fast, _ = build_plan(graph, fns, feeds, preparers)
        return fast

    def _fused(self, blocked: Plan | None) -> Plan | None:
        """What ``run`` executes of the blocked plan: its chains fused (``minicnn.chains``) unless turned off."""
        if blocked is None or not self.use_chains:
            return blocked
        from .chains import fuse

        return fuse(blocked)

    def run_chains(self) -> list:
        """The chains (``minicnn.chains.Chain``) ``run`` executes, for each input shape run so far, in order.

        Print one to see which layers it runs, how many jobs and how large
        its arena is; ``chain.rows`` and ``chain.places`` say where each
        job reads and writes.
        """
        from .chains import Chain

        return [step.prepared for plans in self._plans.values() if plans.fused is not None
                for step in plans.fused.steps if isinstance(step.prepared, Chain)]

    # -- stepping -------------------------------------------------------------------
    def steps(self, input_feed: dict[str, np.ndarray]) -> Iterator[NodeStep]:
        """Run the graph one node at a time, yielding each node with its tensors.

        Every node of ``self.graph`` runs (nothing is skipped or cached), on
        the CPU kernels of the session's backend. Stop iterating whenever you
        like; nothing is left half-done. Example::

            for step in sess.steps({"input": x}):
                print(step)                      # node, op, input and output shapes
                if step.node.op_type == "Conv":
                    show(step.outputs)           # any tensor, as a NumPy array
        """
        env = dict(self._check_feeds(input_feed))
        init = self.graph.initializers
        for index, node in enumerate(self.graph.nodes):
            args = [env[n] if n in env else init[n] if n else None for n in node.inputs]
            results = run_node(node, self._fns[node.op_type], args, self.graph.opset)
            outs = {name: value for name, value in zip(node.outputs, results) if name}
            env.update(outs)
            yield NodeStep(index, node, dict(zip((n for n in node.inputs), args)), outs)

    # -- checks -----------------------------------------------------------------------
    def _check_supported(self, graph: Graph) -> None:
        missing = [n for n in graph.nodes if get_op(n.op_type) is None]
        if missing:
            node = missing[0]
            others = sorted({n.op_type for n in missing} - {node.op_type})
            raise UnsupportedOpError(
                f"{graph.source}: node {node.name!r} uses op {node.op_type!r} (opset {graph.opset}), "
                f"which minicnn does not implement"
                + (f" (nor {', '.join(others)})" if others else "")
                + f". Supported ops: {', '.join(supported_ops())}"
            )

    def _check_output_names(self, output_names) -> list[str]:
        known = [vi.name for vi in self.graph.outputs]
        if output_names is None:
            return known
        unknown = [n for n in output_names if n not in known]
        if unknown:
            raise InputError(f"unknown output name(s) {unknown}; the model's outputs are {known}")
        return list(output_names)

    def _check_feeds(self, feeds: dict) -> dict[str, np.ndarray]:
        if not isinstance(feeds, dict):
            raise InputError(f"feeds must be a dict {{input name: numpy array}}, got {type(feeds).__name__}")
        expected = {vi.name: vi for vi in self.graph.inputs}
        unknown = [k for k in feeds if k not in expected]
        if unknown:
            what = "a weight (initializer), not an input" if unknown[0] in self.graph.initializers else "not an input"
            raise InputError(f"feed {unknown[0]!r} is {what}; the model's inputs are {list(expected)}")
        missing = [k for k in expected if k not in feeds]
        if missing:
            raise InputError(f"missing input(s) {missing}; the model's inputs are {list(expected)}")
        checked = {}
        for name, value in feeds.items():
            vi = expected[name]
            if not isinstance(value, np.ndarray):
                raise InputError(f"input {name!r} must be a numpy array, got {type(value).__name__}")
            if vi.dtype is not None and value.dtype != vi.dtype:
                raise InputError(
                    f"input {name!r} has dtype {value.dtype}, the model expects {vi.dtype} "
                    f"({vi.onnx_type}); convert with .astype(np.{vi.dtype.name})"
                )
            if vi.shape is not None:
                if value.ndim != len(vi.shape):
                    raise InputError(
                        f"input {name!r} has rank {value.ndim} (shape {list(value.shape)}), "
                        f"the model expects rank {len(vi.shape)} (shape {list(vi.shape)})"
                    )
                for axis, (got, want) in enumerate(zip(value.shape, vi.shape)):
                    if isinstance(want, int) and want > 0 and got != want:
                        raise InputError(
                            f"input {name!r} has shape {list(value.shape)}, the model expects "
                            f"{list(vi.shape)}: dimension {axis} must be {want}, got {got}"
                        )
            checked[name] = value
        return checked

    def _make_device_executor(self, plan: Plan):
        if self.backend != "cuda":
            return None
        from .cuda_backend import CudaExecutor

        return CudaExecutor(plan.graph)

    def __repr__(self) -> str:
        return (f"InferenceSession({self.model_graph.source!r}, backend={self.backend!r}, "
                f"nodes={len(self.graph.nodes)}, opset={self.graph.opset})")

