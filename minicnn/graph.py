"""Loading an ONNX model into plain Python objects.

An ONNX file is a protobuf: a graph of nodes (op type, input names, output
names, attributes), initializers (the trained weights) and the names and
shapes of the graph's inputs and outputs. ``load_model`` turns it into a
``Graph`` of ``Node`` dataclasses and NumPy arrays, so the rest of minicnn
never touches protobuf again and a learner can print any part of it.

Nothing here runs the network; see ``minicnn.session``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from .errors import ModelLoadError, UnsupportedOpError

log = logging.getLogger(__name__)

# The opsets the op implementations were written and tested against.
SUPPORTED_OPSETS = range(9, 19)
DEFAULT_DOMAINS = ("", "ai.onnx")
# Internal ops created by minicnn's optimiser live in their own domain.
MINICNN_DOMAIN = "minicnn"


@dataclass
class ValueInfo:
    """Name, shape and element type of a graph input or output.

    ``shape`` holds ints for fixed dims and strings (the symbolic name) or
    None for dynamic ones; ``shape`` itself is None when the file gives no shape.
    """

    name: str
    shape: tuple[int | str | None, ...] | None
    dtype: np.dtype | None

    @property
    def onnx_type(self) -> str:
        """onnxruntime's spelling, e.g. 'tensor(float)'."""
        if self.dtype is None:
            return "tensor(undefined)"
        names = {np.float32: "float", np.float64: "double", np.int64: "int64", np.int32: "int32",
                 np.uint8: "uint8", np.int8: "int8", np.bool_: "bool", np.float16: "float16"}
        return f"tensor({names.get(self.dtype.type, self.dtype.name)})"


@dataclass
class Node:
    """One operation: ``outputs = op_type(*inputs, **attrs)``.

    An empty string in ``inputs`` marks an omitted optional input.
    """

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.op_type}): {', '.join(self.inputs)} -> {', '.join(self.outputs)}"


@dataclass
class Graph:
    """A whole model: nodes in execution order, weights, inputs and outputs."""

    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    inputs: list[ValueInfo]  # the feeds a caller must give (initializers excluded)
    outputs: list[ValueInfo]
    opset: int
    name: str = "graph"
    source: str = "<bytes>"  # the file it came from, for error messages

    def consumers(self) -> dict[str, list[Node]]:
        """tensor name -> the nodes that read it."""
        table: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    table.setdefault(name, []).append(node)
        return table

    def producers(self) -> dict[str, Node]:
        """tensor name -> the node that writes it."""
        return {out: node for node in self.nodes for out in node.outputs}


def _dtype_of(elem_type: int) -> np.dtype | None:
    if elem_type == onnx.TensorProto.UNDEFINED:
        return None
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def _value_info(vi: onnx.ValueInfoProto) -> ValueInfo:
    t = vi.type.tensor_type
    shape = None
    if t.HasField("shape"):
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
        )
    return ValueInfo(vi.name, shape, _dtype_of(t.elem_type))


def _attribute(attr: onnx.AttributeProto, node_desc: str) -> Any:
    """An attribute as plain Python: ints, floats, str, lists, or np.ndarray for tensors."""
    if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        raise UnsupportedOpError(
            f"{node_desc}: attribute {attr.name!r} is a subgraph; control flow (If/Loop/Scan) is not supported"
        )
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]
    return value


def _read_model(source: str | bytes | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(source, onnx.ModelProto):
        return source, "<ModelProto>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "<bytes>"
    else:
        path = Path(source)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such file")
        data, where = path.read_bytes(), str(path)
    if not data:
        raise ModelLoadError(f"{where}: the file is empty")
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{where}: not a readable ONNX model (truncated, or not ONNX at all?): {exc}") from exc
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelLoadError(
            f"{where}: parsed as protobuf but holds no ONNX graph ({len(data)} bytes); is it really an .onnx file?"
        )
    if model.graph.initializer and any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        if isinstance(source, (bytes, bytearray, memoryview)):
            raise ModelLoadError(f"{where}: the model keeps weights in external files; load it from its path")
        onnx.load_external_data_for_model(model, str(Path(source).parent))
    return model, where


def _opset(model: onnx.ModelProto, where: str) -> int:
    versions = {o.domain: o.version for o in model.opset_import}
    opset = next((versions[d] for d in DEFAULT_DOMAINS if d in versions), None)
    if opset is None:
        raise ModelLoadError(f"{where}: the model imports no default-domain opset (opset_import: {versions})")
    if opset not in SUPPORTED_OPSETS:
        log.warning(
            "%s: opset %d is outside the tested range %d-%d; ops whose meaning changed may differ",
            where, opset, SUPPORTED_OPSETS.start, SUPPORTED_OPSETS.stop - 1,
        )
    return opset


def _topological_order(nodes: list[Node], available: set[str], where: str) -> list[Node]:
    """Nodes ordered so each runs after its inputs exist (ONNX files are usually sorted already)."""
    ready = set(available)
    ordered, pending = [], list(nodes)
    while pending:
        still = []
        for node in pending:
            if all(not n or n in ready for n in node.inputs):
                ordered.append(node)
                ready.update(node.outputs)
            else:
                still.append(node)
        if len(still) == len(pending):
            missing = sorted({n for node in still for n in node.inputs if n and n not in ready})
            raise ModelLoadError(
                f"{where}: node {still[0].name!r} ({still[0].op_type}) reads tensors nothing produces: "
                f"{missing[:5]} (or the graph has a cycle)"
            )
        pending = still
    return ordered


def load_model(source: str | bytes | os.PathLike | onnx.ModelProto) -> Graph:
    """Read an ONNX model (path, bytes or ModelProto) into a ``Graph``.

    Raises ``ModelLoadError`` for unreadable files and ``UnsupportedOpError``
    for nodes of a non-default domain or with subgraph attributes. Whether
    each op type is *implemented* is checked by the session, which knows the
    registry.
    """
    model, where = _read_model(source)
    opset = _opset(model, where)
    g = model.graph

    initializers = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    # Old exporters also list every initializer as a graph input; such an
    # input is optional and defaults to its initializer, so it is not a feed.
    inputs = [_value_info(vi) for vi in g.input if vi.name not in initializers]
    outputs = [_value_info(vi) for vi in g.output]

    nodes = []
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        if n.domain not in DEFAULT_DOMAINS:
            raise UnsupportedOpError(
                f"{where}: node {name!r} uses op {n.op_type!r} from domain {n.domain!r}; "
                "minicnn runs only the default ONNX domain"
            )
        desc = f"{where}: node {name!r} ({n.op_type})"
        attrs = {a.name: _attribute(a, desc) for a in n.attribute}
        nodes.append(Node(name, n.op_type, list(n.input), list(n.output), attrs, ""))

    available = set(initializers) | {vi.name for vi in inputs} | {""}
    nodes = _topological_order(nodes, available, where)
    produced = {o for node in nodes for o in node.outputs} | available
    for vi in outputs:
        if vi.name not in produced:
            raise ModelLoadError(f"{where}: graph output {vi.name!r} is produced by no node")
    return Graph(nodes, initializers, inputs, outputs, opset, g.name or "graph", where)
