"""Make an ONNX model's fixed input size symbolic, so it runs at any size.

YuNet is a fully convolutional detector, yet its file declares the input as
exactly 1x3x640x640 (and every intermediate and output shape computed from
that). The weights do not depend on the size: only the declared shapes do.
This module rewrites the declarations:

* the graph inputs get the dims the manifest gives, e.g. ``[1, 3, "H", "W"]``
  (a string is a symbolic dim, an int a fixed one);
* the listed axes of every graph output become symbolic too (named
  ``<output>_d<axis>``), because output sizes follow the input size;
* ``value_info`` (optional shape annotations of intermediate tensors) is
  cleared: it still states the 640x640 shapes, and a runtime that trusts it
  would reject or mis-plan any other size.

Nothing else changes: same nodes, same weights. The batch dim of YuNet stays
1 because its Reshape nodes hard-code ``[1, -1, k]``: a batch of two would
silently merge the two images' anchors.
"""

from __future__ import annotations

import onnx

from . import ConversionError


def _set_dims(value_info: onnx.ValueInfoProto, dims: list) -> None:
    shape = value_info.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = int(d)


def make_dims_dynamic(model_bytes: bytes, input_shapes: dict[str, list], output_symbolic_axes: list[int],
                      provenance: str = "") -> bytes:
    """Return ``model_bytes`` with the given input dims and symbolic output axes.

    ``input_shapes`` maps each graph input to rewrite to its new dims;
    ``output_symbolic_axes`` lists the axes of every output that follow the
    input size. ``provenance`` is recorded in the model's ``doc_string``.
    """
    model = onnx.load_model_from_string(model_bytes)
    graph = model.graph
    inputs = {vi.name: vi for vi in graph.input}
    for name, dims in input_shapes.items():
        if name not in inputs:
            raise ConversionError(f"graph has no input {name!r} (inputs: {', '.join(inputs)})")
        old_rank = len(inputs[name].type.tensor_type.shape.dim)
        if old_rank != len(dims):
            raise ConversionError(f"input {name!r} has rank {old_rank}, the new dims {dims} have rank {len(dims)}")
        _set_dims(inputs[name], dims)
    for output in graph.output:
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in output.type.tensor_type.shape.dim]
        for axis in output_symbolic_axes:
            if axis >= len(dims):
                raise ConversionError(f"output {output.name!r} has rank {len(dims)}; cannot make axis {axis} symbolic")
            dims[axis] = f"{output.name}_d{axis}"
        _set_dims(output, dims)
    del graph.value_info[:]
    if provenance:
        model.doc_string = f"{provenance}; input dims made symbolic by faceops.convert.onnx_dims"
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)
