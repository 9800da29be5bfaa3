"""The CUDA backend: run a whole graph on the GPU, activations staying on the device.

``InferenceSession(..., backend="cuda")`` hands its optimised, shape-specialised
graph to ``CudaExecutor``. The executor uploads the weights once, copies the
feeds to the device, runs every node with the ``numba.cuda`` kernels of
``minicnn.kernels.cuda_*`` and copies back only the requested outputs. No
tensor crosses the PCIe bus between two nodes that both have a kernel.

Memory: each intermediate tensor lives in a buffer taken from a small pool
keyed by (dtype, element count). When the last node reading a tensor has
run, its buffer goes back to the pool, and the next tensor of that size
reuses it, in this run and the following ones. Reshape-like ops (Reshape,
Flatten, Squeeze, Unsqueeze, Identity) return views of their input, so a
buffer is only released when every name that views it is dead.

Ops without a kernel (Resize, Transpose, Pad, Slice, ...) fall back one node
at a time: their inputs are copied to the host, minicnn's NumPy reference
runs, the outputs are copied back. A warning names each such op type once
per process, because every fallback costs two PCIe transfers and a
synchronisation. ``CudaExecutor.fallback_ops`` lists them for a graph.

Without a GPU, ``check_available`` says what is missing; the kernels
themselves can still run (slowly) on numba's CUDA simulator, which is how
the tests check them: set ``NUMBA_ENABLE_CUDASIM=1`` before ``numba.cuda`` is
first imported (``enable_simulator()`` does that).

Nothing here imports ``numba.cuda`` at module level: ``import minicnn`` works on
any machine.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import BackendUnavailableError, MiniCNNError, NodeExecutionError, UnsupportedOpError
from .executor import run_node
from .graph import Graph, Node
from .ops.registry import get_op

log = logging.getLogger(__name__)

SIMULATOR_ENV = "NUMBA_ENABLE_CUDASIM"
_warned_fallbacks: set[str] = set()  # op types already announced (once per process)


def simulator_enabled() -> bool:
    """Whether numba runs CUDA kernels on its CPU simulator in this process."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def enable_simulator() -> None:
    """Make ``numba.cuda`` the CPU simulator (for tests and for learning without a GPU).

    numba decides at the first ``import numba.cuda``, for the whole process:
    calling this after that cannot switch, and raises ``BackendUnavailableError``
    saying so. It also sets ``NUMBA_ENABLE_CUDASIM=1`` in ``os.environ``, so
    child processes inherit the simulator.
    """
    os.environ[SIMULATOR_ENV] = "1"
    from numba.core import config

    if "numba.cuda" in sys.modules and not config.ENABLE_CUDASIM:
        raise BackendUnavailableError(
            f"numba.cuda was already imported without the simulator; set {SIMULATOR_ENV}=1 in the "
            "environment before starting Python (or before anything imports numba.cuda)"
        )
    config.reload_config()  # numba read its environment when numba was imported, maybe before this


def check_available() -> None:
    """Raise ``BackendUnavailableError`` naming what is missing for ``backend="cuda"``; return if usable."""
    try:
        from numba import cuda
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend='cuda' needs numba.cuda, which cannot be imported here ({exc}). "
            "Install the CUDA extra: pip install 'minicnn-faceops[cuda]'"
        ) from exc
    if simulator_enabled():
        log.info("backend='cuda' runs on numba's CUDA simulator (%s=1): correct results, very slow",
                 SIMULATOR_ENV)
        return
    if cuda.is_available():
        return
    try:
        cuda.get_current_device()
        reason = "numba.cuda reports no usable device"
    except Exception as exc:  # the driver's own explanation: no library, no device, version mismatch
        reason = " ".join(str(exc).split()).rstrip(" :.")
    raise BackendUnavailableError(
        f"backend='cuda' needs an NVIDIA GPU and its driver, and none is usable here: {reason}. "
        f"Use backend='numba' on the CPU, or set {SIMULATOR_ENV}=1 before starting Python to run the "
        "CUDA kernels on numba's (slow) CPU simulator."
    )


class _NoKernel(Exception):
    """Raised by a handler when this node's particular form has no kernel; the node falls back."""


class DevicePool:
    """Free device buffers, keyed by (dtype, element count), reused instead of reallocated.

    ``cuda.device_array`` is a synchronising driver call; a network of a
    hundred nodes needs only a dozen distinct sizes, so after the first run
    no allocation happens at all. Giving a buffer back while kernels that use
    it are still queued is safe: every launch goes to the default stream,
    which runs them in order, so the next user's kernels start after them.
    """

    def __init__(self, cuda):
        self._cuda = cuda
        self._free: dict[tuple[str, int], list] = defaultdict(list)
        self.allocations = 0  # buffers created by the driver
        self.reuses = 0  # buffers handed out again from the pool

    def take(self, size: int, dtype=np.float32):
        """A flat device array of ``size`` elements (contents undefined)."""
        key = (np.dtype(dtype).str, int(size))
        if self._free[key]:
            self.reuses += 1
            return self._free[key].pop()
        self.allocations += 1
        return self._cuda.device_array(int(size), dtype=dtype)

    def give(self, buffer) -> None:
        """Return ``buffer`` (from ``take``) to the pool."""
        self._free[(buffer.dtype.str, int(buffer.size))].append(buffer)


@dataclass
class _Run:
    """The device tensors of one run, and which pool buffer each one lives in."""

    pool: DevicePool
    tensors: dict[str, Any] = field(default_factory=dict)  # name -> device array (maybe a view)
    home: dict[str, Any] = field(default_factory=dict)  # name -> the pool buffer under it
    viewers: dict[int, int] = field(default_factory=dict)  # id(buffer) -> live names using it

    def new(self, name: str, shape: tuple[int, ...], dtype=np.float32):
        """A fresh device tensor for ``name`` from the pool."""
        size = int(np.prod(shape, dtype=np.int64))
        buffer = self.pool.take(size, dtype)
        self._bind(name, buffer.reshape(tuple(shape)), buffer)
        return self.tensors[name]

    def view(self, name: str, array, of: str) -> None:
        """``name`` is ``array``, a view of tensor ``of``'s memory."""
        self._bind(name, array, self.home.get(of))

    def _bind(self, name: str, array, buffer) -> None:
        self.tensors[name] = array
        if buffer is not None:
            self.home[name] = buffer
            self.viewers[id(buffer)] = self.viewers.get(id(buffer), 0) + 1

    def release(self, name: str) -> None:
        """``name`` is dead; its buffer returns to the pool when no other name views it."""
        self.tensors.pop(name, None)
        buffer = self.home.pop(name, None)
        if buffer is None:
            return
        self.viewers[id(buffer)] -= 1
        if self.viewers[id(buffer)] == 0:
            del self.viewers[id(buffer)]
            self.pool.give(buffer)


def _int_list(value, length: int, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * length
    return tuple(int(v) for v in value)


def _window_pads(attrs: dict, in_hw, kernel, strides, dilations) -> tuple[int, int, int, int]:
    """ONNX ``pads`` (top, left, bottom, right), resolving ``auto_pad``."""
    auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad == "NOTSET":
        return _int_list(attrs.get("pads"), 4, 0)
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise UnsupportedOpError(f"auto_pad={auto_pad!r} is not an ONNX value")
    begins, ends = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        begins.append(begin)
        ends.append(total - begin)
    return (begins[0], begins[1], ends[0], ends[1])


class CudaExecutor:
    """Runs one optimised, shape-specialised ``Graph`` on the GPU (see module docstring)."""

    def __init__(self, graph: Graph):
        check_available()
        from numba import cuda

        from .kernels import (cuda_concat, cuda_conv, cuda_elementwise, cuda_epilogue, cuda_pool,
                              cuda_softmax, cuda_sgemm)

        self._cuda = cuda
        self._k = {"concat": cuda_concat, "conv": cuda_conv, "elementwise": cuda_elementwise,
                   "epilogue": cuda_epilogue, "pool": cuda_pool, "softmax": cuda_softmax, "sgemm": cuda_sgemm}
        self.graph = graph
        self.pool = DevicePool(cuda)
        self._device_constants: dict[str, Any] = {}
        self._prepared: dict[tuple[str, str], Any] = {}  # (node name, what) -> derived device weights
        self.fallback_ops: set[str] = set()  # op types that ran on the host in this executor
        self._handlers: dict[str, Callable[[Node, _Run], None]] = {
            "Conv": self._conv, "FusedConv": self._conv,
            "Relu": self._activation, "LeakyRelu": self._activation, "PRelu": self._activation,
            "Sigmoid": self._activation, "Clip": self._activation,
            "Add": self._binary, "Sub": self._binary, "Mul": self._binary, "Div": self._binary,
            "MaxPool": self._pool, "AveragePool": self._pool, "GlobalAveragePool": self._global_avg_pool,
            "Softmax": self._softmax, "Gemm": self._gemm, "MatMul": self._matmul, "Concat": self._concat,
            "Reshape": self._reshape_like, "Flatten": self._reshape_like, "Squeeze": self._reshape_like,
            "Unsqueeze": self._reshape_like, "Identity": self._reshape_like, "Dropout": self._reshape_like,
        }
        # After node i, these tensors have no reader left (graph outputs are kept to the end).
        outputs = {vi.name for vi in graph.outputs}
        last_reader: dict[str, int] = {}
        for i, node in enumerate(graph.nodes):
            for name in node.inputs:
                if name and name not in graph.initializers:
                    last_reader[name] = i
            for name in node.outputs:  # an output nobody reads dies right after it is made
                if name:
                    last_reader.setdefault(name, i)
        self._dead_after: dict[int, list[str]] = defaultdict(list)
        for name, i in last_reader.items():
            if name not in outputs:
                self._dead_after[i].append(name)

    # -- running ---------------------------------------------------------------------
    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        """Run the graph on ``feeds``; returns the ``output_names`` tensors as NumPy arrays."""
        run = _Run(self.pool)
        for name, value in feeds.items():
            value = np.ascontiguousarray(value)
            run.new(name, value.shape, value.dtype).copy_to_device(value)
        for i, node in enumerate(self.graph.nodes):
            self._run_node(node, run)
            for name in self._dead_after.get(i, ()):
                run.release(name)
        results = []
        for name in output_names:
            if name in run.tensors:
                results.append(run.tensors[name].copy_to_host())
            elif name in self.graph.initializers:
                results.append(self.graph.initializers[name].copy())
            else:
                raise UnsupportedOpError(f"output {name!r} is produced by no node of the graph")
        for name in list(run.tensors):
            run.release(name)
        return results

    def _run_node(self, node: Node, run: _Run) -> None:
        handler = self._handlers.get(node.op_type)
        try:
            if handler is not None:
                try:
                    handler(node, run)
                    return
                except _NoKernel as why:
                    self._fallback(node, run, str(why))
                    return
            self._fallback(node, run, "no CUDA kernel for this op")
        except MiniCNNError:
            raise
        except Exception as exc:  # a kernel launch or driver failure: name the node it happened in
            shapes = [list(run.tensors[n].shape) if n in run.tensors else
                      list(np.shape(self.graph.initializers.get(n))) if n else None for n in node.inputs]
            raise NodeExecutionError(
                f"cuda backend: node {node.name!r} ({node.op_type}) failed on inputs of shapes {shapes}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _fallback(self, node: Node, run: _Run, why: str) -> None:
        """Run ``node``'s NumPy reference on the host, moving its tensors across the bus."""
        fn = get_op(node.op_type, "numpy")
        if fn is None:
            raise UnsupportedOpError(f"cuda backend: node {node.name!r} uses op {node.op_type!r}, "
                                     "which minicnn does not implement")
        if node.op_type not in _warned_fallbacks:
            _warned_fallbacks.add(node.op_type)
            log.warning("cuda backend: %s runs on the host (NumPy reference; %s), e.g. node %r; "
                        "its tensors are copied to the host and back", node.op_type, why, node.name)
        self.fallback_ops.add(node.op_type)
        args = [self._host(n, run) if n else None for n in node.inputs]
        for name, value in zip(node.outputs, run_node(node, fn, args, self.graph.opset)):
            if name:
                value = np.ascontiguousarray(value)
                run.new(name, value.shape, value.dtype).copy_to_device(value)

    # -- tensors ---------------------------------------------------------------------
    def _host(self, name: str, run: _Run) -> np.ndarray:
        if name in run.tensors:
            return run.tensors[name].copy_to_host()
        return self.graph.initializers[name]

    def _constant(self, name: str) -> np.ndarray | None:
        return self.graph.initializers.get(name) if name else None

    def _device(self, name: str, run: _Run):
        """The device array of tensor ``name`` (a constant is uploaded on first use)."""
        if name in run.tensors:
            return run.tensors[name]
        if name not in self._device_constants:
            value = np.ascontiguousarray(self.graph.initializers[name])
            self._device_constants[name] = self._cuda.to_device(value)
        return self._device_constants[name]

    def _prepare(self, node: Node, what: str, make: Callable[[], np.ndarray]):
        """A device copy of weights derived once per node (transposed, scaled, flattened)."""
        key = (node.name, what)
        if key not in self._prepared:
            self._prepared[key] = self._cuda.to_device(np.ascontiguousarray(make(), dtype=np.float32))
        return self._prepared[key]

    def _float_input(self, node: Node, index: int, run: _Run):
        name = node.inputs[index]
        array = self._device(name, run)
        if array.dtype != np.float32:
            raise _NoKernel(f"input {name!r} is {array.dtype}; the kernels are float32")
        return array

    # -- handlers --------------------------------------------------------------------
    def _conv(self, node: Node, run: _Run) -> None:
        x = self._float_input(node, 0, run)
        w = self._constant(node.inputs[1])
        if x.ndim != 4 or w is None or w.ndim != 4:
            raise _NoKernel("only 2-D convolutions with constant weights have a kernel")
        attrs = node.attrs
        kernel = tuple(w.shape[2:])
        strides = _int_list(attrs.get("strides"), 2, 1)
        dilations = _int_list(attrs.get("dilations"), 2, 1)
        pads = _window_pads(attrs, x.shape[2:], kernel, strides, dilations)
        group = int(attrs.get("group", 1))
        inputs = list(node.inputs) + [""] * (5 - len(node.inputs))
        bias = self._device(inputs[2], run) if inputs[2] else None
        activation = attrs.get("activation", "") if node.op_type == "FusedConv" else ""
        slope = None
        if activation == "PRelu":
            slope = self._prepare(node, "slope", lambda: self._constant(inputs[3]).reshape(-1))
        residual = self._float_input(node, 4, run) if inputs[4] else None
        shape = self._k["conv"].output_shape(x.shape, w.shape, strides, pads, dilations)
        if residual is not None and tuple(residual.shape) != tuple(shape):
            raise _NoKernel(f"a residual{list(residual.shape)} that only broadcasts to the output {list(shape)}")
        y = run.new(node.outputs[0], shape)
        scratch_size = self._k["conv"].workspace_size(x.shape, w.shape, strides, pads, dilations, group)
        workspace = self.pool.take(scratch_size) if scratch_size else None
        self._k["conv"].run_conv(
            x, self._device(node.inputs[1], run), y, bias, strides, pads, dilations, group, residual=residual,
            activation=activation, alpha=float(attrs.get("alpha", 0.01)), slope=slope,
            lo=float(attrs.get("clip_min", -np.inf)), hi=float(attrs.get("clip_max", np.inf)),
            workspace=workspace)
        if workspace is not None:
            self.pool.give(workspace)

    def _activation(self, node: Node, run: _Run) -> None:
        x = self._float_input(node, 0, run)
        op = node.op_type
        # Without a per-channel slope the tensor is one flat "channel".
        channels, inner, slope, lo, hi = 1, max(x.size, 1), None, -np.inf, np.inf
        if op == "PRelu":
            value = self._constant(node.inputs[1])
            fast = None if value is None else self._k["elementwise"].fast_case(tuple(x.shape), value.shape)
            if fast is None or fast[0] == self._k["elementwise"].SAME_SHAPE and value.size > 1:
                raise _NoKernel("PRelu runs on the GPU with a constant scalar or per-channel slope")
            _, channels, inner = fast
            slope = self._prepare(node, "slope", lambda: value.reshape(-1))
        elif op == "Clip":
            bounds = list(node.inputs[1:3]) + [""] * (3 - len(node.inputs))
            if any(n and n not in self.graph.initializers for n in bounds[:2]):
                raise _NoKernel("Clip bounds computed at run time")
            lo = float(self._constant(bounds[0])) if bounds[0] else float(node.attrs.get("min", -np.inf))
            hi = float(self._constant(bounds[1])) if bounds[1] else float(node.attrs.get("max", np.inf))
        y = run.new(node.outputs[0], tuple(x.shape))
        self._k["epilogue"].run_epilogue(
            x, y, channels, activation=op, alpha=float(node.attrs.get("alpha", 0.01)), slope=slope,
            lo=lo, hi=hi, inner=inner)

    def _binary(self, node: Node, run: _Run) -> None:
        a = self._float_input(node, 0, run)
        b = self._float_input(node, 1, run)
        shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
        if len(shape) > self._k["elementwise"].MAX_RANK:
            raise _NoKernel(f"rank {len(shape)} broadcast")
        if a.size == 0 or b.size == 0:
            raise _NoKernel("empty tensor")
        if a.ndim == 0:
            a = a.reshape(1)
        if b.ndim == 0:
            b = b.reshape(1)
        y = run.new(node.outputs[0], shape)
        self._k["elementwise"].run_binary(node.op_type, a, b, y)

    def _pool(self, node: Node, run: _Run) -> None:
        x = self._float_input(node, 0, run)
        if x.ndim != 4 or len(node.outputs) > 1 and node.outputs[1]:
            raise _NoKernel("only 2-D pooling without the Indices output has a kernel")
        attrs = node.attrs
        kernel = tuple(int(k) for k in attrs["kernel_shape"])
        strides = _int_list(attrs.get("strides"), 2, 1)
        is_max = node.op_type == "MaxPool"
        dilations = _int_list(attrs.get("dilations"), 2, 1) if is_max else (1, 1)
        pads = _window_pads(attrs, x.shape[2:], kernel, strides, dilations)
        ceil_mode = bool(attrs.get("ceil_mode", 0))
        out_hw = [self._k["pool"].pool_output_size(x.shape[2 + a], kernel[a], strides[a], pads[a], pads[2 + a],
                                                   dilations[a], ceil_mode) for a in range(2)]
        y = run.new(node.outputs[0], (x.shape[0], x.shape[1], *out_hw))
        self._k["pool"].run_pool(x, y, kernel, strides, pads, dilations, is_max,
                                 bool(attrs.get("count_include_pad", 0)))

    def _global_avg_pool(self, node: Node, run: _Run) -> None:
        x = self._float_input(node, 0, run)
        if x.ndim != 4:
            raise _NoKernel("only NCHW (4-D) GlobalAveragePool has a kernel")
        y = run.new(node.outputs[0], (x.shape[0], x.shape[1], 1, 1))
        self._k["pool"].run_global_avg_pool(x, y)

    def _softmax(self, node: Node, run: _Run) -> None:
        x = self._float_input(node, 0, run)
        opset = self.graph.opset
        axis = int(node.attrs.get("axis", -1 if opset >= 13 else 1))
        axis = axis + x.ndim if axis < 0 else axis
        shape = tuple(x.shape)
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        if opset >= 13:  # one axis
            length, inner = shape[axis], int(np.prod(shape[axis + 1:], dtype=np.int64))
        else:  # opset < 13: everything from ``axis`` on, flattened, is one row
            length, inner = int(np.prod(shape[axis:], dtype=np.int64)), 1
        y = run.new(node.outputs[0], shape)
        self._k["softmax"].run_softmax(x, y, outer, length, inner)

    def _gemm(self, node: Node, run: _Run) -> None:
        a = self._float_input(node, 0, run)
        b = self._constant(node.inputs[1])
        attrs = node.attrs
        if a.ndim != 2 or b is None or attrs.get("transA", 0):
            raise _NoKernel("Gemm runs on the GPU with a constant B and transA=0")
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        c_name = node.inputs[2] if len(node.inputs) > 2 and beta != 0.0 else ""
        c = self._constant(c_name)
        if c_name and c is None and beta != 1.0:
            raise _NoKernel("Gemm with a computed C and beta != 1")
        weights = self._prepare(node, "B", lambda: (b.T if attrs.get("transB", 0) else b) * alpha)
        m, n = a.shape[0], weights.shape[1]
        y = run.new(node.outputs[0], (m, n))
        self._k["sgemm"].run_sgemm(a, weights, y)
        if not c_name:
            return
        if c is not None and c.size == n and (c.ndim == 1 or c.shape == (1, n)):
            # The usual case, a bias per output column: one fused pass with channels = columns.
            bias = self._prepare(node, "C", lambda: c.reshape(-1) * beta)
            self._k["epilogue"].run_epilogue(y, y, n, bias=bias, inner=1)
        else:  # a scalar, a column or a full matrix: general broadcast add
            term = self._prepare(node, "C", lambda: c * beta) if c is not None else self._float_input(node, 2, run)
            self._k["elementwise"].run_binary("Add", y, term if term.ndim else term.reshape(1), y)

    def _matmul(self, node: Node, run: _Run) -> None:
        a = self._float_input(node, 0, run)
        b = self._constant(node.inputs[1])
        if b is None or b.ndim != 2 or a.ndim < 2:
            raise _NoKernel("MatMul runs on the GPU as (..., K) @ constant (K, N)")
        k, n = b.shape
        rows = a.size // k
        y = run.new(node.outputs[0], (*a.shape[:-1], n))
        self._k["sgemm"].run_sgemm(a.reshape(rows, k), self._device(node.inputs[1], run), y.reshape(rows, n))

    def _concat(self, node: Node, run: _Run) -> None:
        parts = [self._float_input(node, i, run) for i in range(len(node.inputs)) if node.inputs[i]]
        axis = int(node.attrs["axis"])
        axis = axis + parts[0].ndim if axis < 0 else axis
        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        y = run.new(node.outputs[0], tuple(shape))
        self._k["concat"].run_concat(parts, y, axis)

    def _reshape_like(self, node: Node, run: _Run) -> None:
        """Ops that only relabel the shape: the output is a view of the input's buffer."""
        if node.op_type == "Dropout" and len(node.outputs) > 1 and node.outputs[1]:
            raise _NoKernel("Dropout's mask output")
        name = node.inputs[0]
        x = self._device(name, run)
        shape = self._reshaped(node, tuple(x.shape))
        if int(np.prod(shape, dtype=np.int64)) != x.size:
            raise NodeExecutionError(f"node {node.name!r} ({node.op_type}): cannot view shape "
                                     f"{list(x.shape)} as {list(shape)}")
        view = x.reshape(shape) if shape != tuple(x.shape) else x
        if name in run.tensors:
            run.view(node.outputs[0], view, of=name)
        else:  # a constant: give the output its own copy so releasing it never touches the constant
            y = run.new(node.outputs[0], shape, x.dtype)
            y.copy_to_device(view)

    def _reshaped(self, node: Node, shape: tuple[int, ...]) -> tuple[int, ...]:
        op, attrs = node.op_type, node.attrs
        if op in ("Identity", "Dropout"):
            return shape
        if op == "Flatten":
            axis = int(attrs.get("axis", 1))
            axis = axis + len(shape) if axis < 0 else axis
            return (int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64)))
        if op == "Reshape":
            target = self._constant(node.inputs[1])
            if target is None:
                raise _NoKernel("Reshape to a shape computed at run time")
            target = [int(v) for v in target.reshape(-1)]
            if not attrs.get("allowzero", 0):
                target = [shape[i] if v == 0 else v for i, v in enumerate(target)]
            if -1 in target:
                known = int(np.prod([v for v in target if v != -1], dtype=np.int64))
                target[target.index(-1)] = int(np.prod(shape, dtype=np.int64)) // max(known, 1)
            return tuple(target)
        axes_input = self._constant(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
        if len(node.inputs) > 1 and node.inputs[1] and axes_input is None:
            raise _NoKernel(f"{op} axes computed at run time")
        axes = [int(a) for a in (axes_input.reshape(-1) if axes_input is not None else attrs.get("axes", []))]
        if op == "Squeeze":
            axes = [a + len(shape) if a < 0 else a for a in axes] or [i for i, s in enumerate(shape) if s == 1]
            return tuple(s for i, s in enumerate(shape) if i not in axes)
        rank = len(shape) + len(axes)  # Unsqueeze
        axes = sorted(a + rank if a < 0 else a for a in axes)
        dims = iter(shape)
        return tuple(1 if i in axes else next(dims) for i in range(rank))

