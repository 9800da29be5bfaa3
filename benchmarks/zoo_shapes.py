"""The convolution shapes that actually occur in the model zoo, read from the ONNX files.

Benchmarks should time the work the engine really does, not square
matrices chosen for looking good. This script opens every zoo model (fetched
by ``faceops.weights.model_path``), fixes its input size (the model's own
static size; 640x640 for detectors with a dynamic one), runs ONNX shape
inference and lists each Conv node's input shape, weight shape, strides,
pads, dilations and group. ``zoo_conv_shapes()`` merges identical shapes and
remembers where each occurs.

    python benchmarks/zoo_shapes.py                  # a table of every distinct shape
    python benchmarks/zoo_shapes.py --models yunet   # one model's
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Models that are ONNX networks (the manifest also holds .npz data files).
ZOO = ("scrfd_500m", "yunet", "retinaface_mnet025", "blazeface_short", "blazeface_full", "w600k_mbf", "sface",
       "2d106det", "facemesh", "fer_mini_xception", "age_cydral", "gender_cydral", "3ddfa_mb1")
DETECTOR_SIZE = 640  # the size a detector with dynamic height/width is benchmarked at


@dataclass(frozen=True, order=True)
class ConvShape:
    """One convolution's geometry: NCHW input, OIHW weight, and the ONNX attributes (pads resolved)."""

    x: tuple[int, int, int, int]
    w: tuple[int, int, int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilations: tuple[int, int] = (1, 1)
    group: int = 1

    @property
    def output(self) -> tuple[int, int, int, int]:
        n, _, h, w = self.x
        oh = (h + self.pads[0] + self.pads[2] - ((self.w[2] - 1) * self.dilations[0] + 1)) // self.strides[0] + 1
        ow = (w + self.pads[1] + self.pads[3] - ((self.w[3] - 1) * self.dilations[1] + 1)) // self.strides[1] + 1
        return (n, self.w[0], oh, ow)

    @property
    def flops(self) -> int:
        """Multiply-adds counted as 2 FLOPs each (bias and activation not counted)."""
        n, c_out, oh, ow = self.output
        return 2 * n * c_out * oh * ow * self.w[1] * self.w[2] * self.w[3]

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.x[1] and self.w[1] == 1

    @property
    def kind(self) -> str:
        if self.depthwise:
            return "depthwise"
        if self.group > 1:
            return "grouped"
        return "pointwise" if self.w[2] == self.w[3] == 1 else "dense"

    def label(self) -> str:
        """Compact name, e.g. ``1x16x160x160 k3x3/2 ->32 dw``."""
        n, c, h, w = self.x
        s = f"/{self.strides[0]}" if self.strides != (1, 1) else ""
        d = f" d{self.dilations[0]}" if self.dilations != (1, 1) else ""
        g = " dw" if self.depthwise else (f" g{self.group}" if self.group > 1 else "")
        return f"{n}x{c}x{h}x{w} k{self.w[2]}x{self.w[3]}{s}{d} ->{self.w[0]}{g}"

    def attrs(self) -> dict:
        """ONNX Conv attributes for this shape."""
        return dict(kernel_shape=list(self.w[2:]), strides=list(self.strides), pads=list(self.pads),
                    dilations=list(self.dilations), group=self.group)


def _resolve_pads(attrs: dict, x_hw, kernel, strides, dilations) -> tuple[int, int, int, int]:
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", ""):
        return tuple(int(p) for p in attrs.get("pads", [0, 0, 0, 0]))
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    begins, ends = [], []
    for size, k, s, d in zip(x_hw, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        begins.append(begin)
        ends.append(total - begin)
    return (begins[0], begins[1], ends[0], ends[1])


def fix_input_sizes(model: onnx.ModelProto, size: int = DETECTOR_SIZE) -> onnx.ModelProto:
    """Set every dynamic input dimension: batch 1, height/width ``size`` (in place; returns the model)."""
    initializers = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        dims = vi.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                dim.Clear()
                dim.dim_value = 1 if axis == 0 else size
    return model


def _shapes_from_onnxruntime(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Run ``model`` once on zeros with ``names`` exposed as outputs; returns their shapes.

    Shape inference cannot follow a Resize whose scales are computed from
    ``Shape`` at run time (the FPN of SCRFD and RetinaFace); running the model
    can.
    """
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name not in initializers:
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            feeds[vi.name] = np.zeros(dims, dtype=np.float32)
    return {n: tuple(v.shape) for n, v in zip(names, sess.run(names, feeds))}


def conv_shapes(model: onnx.ModelProto) -> list[tuple[str, ConvShape]]:
    """``(node name, ConvShape)`` of every 2-D Conv with constant weights, in graph order."""
    inferred = shape_inference.infer_shapes(fix_input_sizes(model), data_prop=True)
    g = inferred.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    weights = {t.name: t for t in g.initializer}
    for node in g.node:  # exporters sometimes pass a shared weight through Identity
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    unknown = [n.input[0] for n in g.node if n.op_type == "Conv" and n.input[0] not in shapes]
    if unknown:
        shapes.update(_shapes_from_onnxruntime(inferred, unknown))
    found = []
    for i, node in enumerate(g.node):
        if node.op_type != "Conv" or node.input[0] not in shapes or node.input[1] not in weights:
            continue
        x = shapes[node.input[0]]
        w = tuple(numpy_helper.to_array(weights[node.input[1]]).shape)
        if len(x) != 4 or len(w) != 4:
            continue  # 1-D/3-D convolutions do not occur in the zoo
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        strides = tuple(int(v) for v in attrs.get("strides", [1, 1]))
        dilations = tuple(int(v) for v in attrs.get("dilations", [1, 1]))
        pads = _resolve_pads(attrs, x[2:], w[2:], strides, dilations)
        found.append((node.name or f"Conv_{i}", ConvShape(x, w, strides, pads, dilations, int(attrs.get("group", 1)))))
    return found


def zoo_conv_shapes(models=ZOO) -> dict[ConvShape, list[tuple[str, str]]]:
    """Every distinct conv shape in ``models`` -> the (model, node) pairs where it occurs."""
    from faceops import weights

    table: dict[ConvShape, list[tuple[str, str]]] = {}
    for name in models:
        model = onnx.load(str(weights.model_path(name)))
        for node, shape in conv_shapes(model):
            table.setdefault(shape, []).append((name, node))
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO)
    args = parser.parse_args(argv)
    table = zoo_conv_shapes(args.models)
    total = sum(s.flops * len(where) for s, where in table.items())
    print(f"{len(table)} distinct conv shapes, {sum(map(len, table.values()))} conv nodes, "
          f"{total / 1e9:.2f} GFLOP in all (batch 1)")
    print("| shape | kind | MFLOP | uses | models |\n|---|---|---|---|---|")
    for shape, where in sorted(table.items(), key=lambda kv: -kv[0].flops * len(kv[1])):
        models = sorted({m for m, _ in where})
        print(f"| {shape.label()} | {shape.kind} | {shape.flops / 1e6:.1f} | {len(where)} | {', '.join(models)} |")


if __name__ == "__main__":
    main()
