"""Every op the model zoo needs is registered, each with a NumPy reference; fast paths keep its signature."""

from __future__ import annotations

import inspect
import re

import pytest

from minicnn.ops.registry import OPS, supported_ops

# The list of the project's MODELS.md ("Ops these models use"), copied here so the test does not
# depend on a file outside the package.
ZOO_OPS = """Conv, BatchNormalization, Relu, PRelu, LeakyRelu, Sigmoid, Softmax, MaxPool, AveragePool,
GlobalAveragePool, Gemm, MatMul, Flatten, Reshape, Transpose, Concat, Add, Sub, Mul, Pad, Resize, Shape,
Gather, Unsqueeze, Slice, Cast, Constant, Identity, Dropout"""


def _listed_ops() -> list[str]:
    return re.findall(r"[A-Z][A-Za-z]+", ZOO_OPS)


@pytest.mark.parametrize("op", _listed_ops())
def test_zoo_op_is_supported(op):
    assert op in supported_ops()
    assert "numpy" in OPS[op], f"{op} has no NumPy reference"


@pytest.mark.parametrize("op", sorted(op for op in OPS if "numba" in OPS[op] and not op.startswith("_")))
def test_fast_path_has_the_reference_signature(op):
    ref = inspect.signature(OPS[op]["numpy"])
    fast = inspect.signature(OPS[op]["numba"])
    assert list(ref.parameters) == list(fast.parameters), op
    assert [p.default for p in ref.parameters.values()] == [p.default for p in fast.parameters.values()], op


def test_op_functions_are_named_like_the_onnx_op():
    for op, table in OPS.items():
        if op.startswith("_") or op == "FusedConv":
            continue
        assert table["numpy"].__name__ == op
