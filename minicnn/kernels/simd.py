"""Explicit 16-lane float32 vectors inside Numba kernels: ``float32x16``.

Numba turns Python loops into LLVM IR and leaves vectorisation to LLVM's
loop vectoriser, which only vectorises an *innermost* loop and gives up
when it cannot prove the arrays involved do not overlap. For a
register-blocked kernel (many accumulators kept in registers while an
inner loop over input channels runs) neither holds, and the kernels of
``cpu_conv`` could not be written that way: its version history records
register blocking through scalar code coming out at 2.6-8.6 GFLOP/s, and
this module's first test, a 1x1 kernel with 16 unrolled input channels,
was not vectorised at all (2-4 GFLOP/s).

This module gives kernels a value type for one AVX-512 register, 16
float32 lanes, and the handful of operations they need, each a few lines
of LLVM IR (``numba.extending.intrinsic``):

* :func:`load` / :func:`store`: 16 consecutive values of a 1-D float32
  array from ``index`` on (unaligned; no bounds check: the caller keeps
  ``index + 16 <= len``);
* :func:`splat`: one scalar in all 16 lanes (a broadcast);
  :func:`broadcast` ``(array, index)``: ``array[index]`` in all 16 lanes,
  read without the check for negative indices that Numba's own ``a[i]``
  makes (a compare and a conditional move per read, which had doubled the
  time of :func:`~minicnn.kernels.cpu_blocked.pointwise_nchw16c`'s loop);
* :func:`fma` ``(a, b, c) = a * b + c`` lane by lane, one rounding;
* :func:`add`, :func:`mul`, :func:`div`, :func:`maximum`, :func:`minimum`,
  :func:`where_positive` (``a`` where ``a > 0``, else ``b``: LeakyRelu
  and PRelu).

A kernel written with them says exactly which values live in registers,
the way onnxruntime's (assembly) NCHWc kernels do, and LLVM only has to
allocate registers and schedule. On a machine without AVX-512 LLVM splits
each vector into two AVX2 (or four SSE) registers: slower, same results.
:func:`fma` rounds once where ``a * b + c`` in NumPy rounds twice, a
difference of float32 round-off.

Used by ``minicnn.kernels.cpu_blocked`` (convolutions in the channel-blocked
NCHW16c layout); tested against NumPy in ``tests/test_simd.py``.
"""

from __future__ import annotations

from .. import threads  # noqa: F401  (first: chooses Numba's threading layer before numba is imported)
from llvmlite import ir  # noqa: E402
from numba.core import cgutils, types  # noqa: E402
from numba.extending import intrinsic, models, register_model  # noqa: E402

LANES = 16
_VECTOR = ir.VectorType(ir.FloatType(), LANES)


class Float32x16(types.Type):
    """Numba type of a vector of 16 float32 values held in one (AVX-512) register."""

    def __init__(self):
        super().__init__(name="float32x16")


float32x16 = Float32x16()


@register_model(Float32x16)
class _Float32x16Model(models.PrimitiveModel):
    """Stored as LLVM's ``<16 x float>``."""

    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _check_array(array, what: str) -> None:
    """Typing-time check: the vector operations read and write 1-D float32 arrays only."""
    if not (isinstance(array, types.Array) and array.ndim == 1 and array.dtype == types.float32):
        raise TypeError(f"simd.{what}: needs a 1-D float32 array, got {array}")


def _element_pointer(context, builder, array_type, array, index, index_type):
    """Address of ``array[index]`` (no wrap-around of negative indices, no bounds check)."""
    view = context.make_array(array_type)(context, builder, array)
    index = context.cast(builder, index, index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, array_type, view, [index], wraparound=False)


def _vector_pointer(context, builder, array_type, array, index, index_type):
    """Address of ``array[index]`` as a pointer to 16 floats."""
    return builder.bitcast(_element_pointer(context, builder, array_type, array, index, index_type),
                           _VECTOR.as_pointer())


def _all_lanes(builder, scalar):
    """A vector with the float32 LLVM value ``scalar`` in every lane (insert into lane 0, shuffle it everywhere)."""
    first = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, ir.Constant(_VECTOR, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


@intrinsic
def load(typingctx, array, index):
    """``array[index:index + 16]`` as a vector."""
    _check_array(array, "load")

    def codegen(context, builder, signature, args):
        pointer = _vector_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        return builder.load(pointer, align=4)

    return float32x16(array, index), codegen


@intrinsic
def store(typingctx, array, index, vector):
    """``array[index:index + 16] = vector``."""
    _check_array(array, "store")

    def codegen(context, builder, signature, args):
        pointer = _vector_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        builder.store(args[2], pointer, align=4)
        return context.get_dummy_value()

    return types.none(array, index, float32x16), codegen


@intrinsic
def splat(typingctx, value):
    """A vector with ``value`` (converted to float32) in every lane."""
    def codegen(context, builder, signature, args):
        return _all_lanes(builder, context.cast(builder, args[0], signature.args[0], types.float32))

    return float32x16(value), codegen


@intrinsic
def broadcast(typingctx, array, index):
    """``array[index]`` in every lane (no negative-index wrap-around, no bounds check)."""
    _check_array(array, "broadcast")

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        return _all_lanes(builder, builder.load(pointer))

    return float32x16(array, index), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, rounded once (LLVM's ``llvm.fma``: one instruction on FMA hardware)."""
    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3),
                                                  "llvm.fma.v16f32")
        return builder.call(function, args)

    return float32x16(float32x16, float32x16, float32x16), codegen


def _binary(build):
    """An intrinsic ``f(a, b)`` on two vectors whose body is ``build(builder, a, b)``."""
    @intrinsic
    def operation(typingctx, a, b):
        def codegen(context, builder, signature, args):
            return build(builder, *args)

        return float32x16(float32x16, float32x16), codegen

    return operation


add = _binary(lambda builder, a, b: builder.fadd(a, b))
add.__doc__ = "``a + b`` lane by lane."
mul = _binary(lambda builder, a, b: builder.fmul(a, b))
mul.__doc__ = "``a * b`` lane by lane."
div = _binary(lambda builder, a, b: builder.fdiv(a, b))
div.__doc__ = "``a / b`` lane by lane."
maximum = _binary(lambda builder, a, b: builder.select(builder.fcmp_ordered(">", a, b), a, b))
maximum.__doc__ = "The larger of ``a`` and ``b`` in each lane (``b`` where either is NaN)."
minimum = _binary(lambda builder, a, b: builder.select(builder.fcmp_ordered("<", a, b), a, b))
minimum.__doc__ = "The smaller of ``a`` and ``b`` in each lane (``b`` where either is NaN)."
where_positive = _binary(
    lambda builder, a, b: builder.select(builder.fcmp_ordered(">", a, ir.Constant(_VECTOR, None)), a, b))
where_positive.__doc__ = "``a`` in the lanes where ``a > 0``, ``b`` elsewhere (LeakyRelu, PRelu)."
