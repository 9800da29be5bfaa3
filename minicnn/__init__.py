"""minicnn: a from-scratch CNN inference engine on plain NumPy arrays.

It loads ONNX files and runs them natively, node by node, so you can step
through a real network, inspect every intermediate tensor, and compare it
with onnxruntime::

    import minicnn
    sess = minicnn.InferenceSession("model.onnx")          # backend="numba" by default
    out, = sess.run(None, {sess.get_inputs()[0].name: x})
    for step in sess.steps({...}):                          # one node at a time
        print(step)

Where things live: ``minicnn.graph`` (loading), ``minicnn.optimize`` (BatchNorm
folding, fusion), ``minicnn.session`` / ``minicnn.executor`` (running),
``minicnn.ops`` (every op: the readable NumPy reference beside its fast
path), ``minicnn.kernels`` (Numba CPU and CUDA kernels), ``minicnn.compare``
and ``minicnn.summary`` (tools behind the ``minicnn`` command).
"""

from . import threads  # first: chooses Numba's threading layer before Numba is imported
from .errors import (
    BackendUnavailableError,
    InputError,
    MiniCNNError,
    ModelLoadError,
    NodeExecutionError,
    UnsupportedOpError,
)
from .graph import Graph, Node, load_model
from .ops.registry import supported_ops
from .session import InferenceSession, NodeStep

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "Graph",
    "InferenceSession",
    "InputError",
    "MiniCNNError",
    "ModelLoadError",
    "Node",
    "NodeExecutionError",
    "NodeStep",
    "UnsupportedOpError",
    "load_model",
    "supported_ops",
    "threads",
]
