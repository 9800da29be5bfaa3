"""Every error minicnn raises on purpose.

Each one says what was wrong and, where it can, what to do about it: the
file, the node, the op, the shape. They all derive from ``MiniCNNError`` so a
caller can catch the engine's own complaints without swallowing real bugs.
"""


class MiniCNNError(Exception):
    """Base class of every error minicnn raises deliberately."""


class ModelLoadError(MiniCNNError):
    """The file or bytes are not a readable ONNX model (truncated, not ONNX, bad graph)."""


class UnsupportedOpError(MiniCNNError):
    """The graph uses an op (or an attribute value) that minicnn does not implement."""


class InputError(MiniCNNError, ValueError):
    """A feed is missing, unknown, or has the wrong rank, shape or dtype."""


class NodeExecutionError(MiniCNNError):
    """An op failed while running one node; the message names the node and its input shapes."""


class BackendUnavailableError(MiniCNNError):
    """The requested backend cannot run here (e.g. ``backend="cuda"`` with no GPU)."""
