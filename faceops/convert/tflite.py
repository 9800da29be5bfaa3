"""TFLite -> ONNX for MediaPipe's FaceMesh and BlazeFace, via tflite2onnx 0.4.1.

The graph translation itself is tflite2onnx's (pinned to 0.4.1, the
``convert`` extra): it maps each TFLite op to ONNX, turns NHWC into NCHW
(inserting Transposes only where needed) and widens the FP16 weights of the
BlazeFace models to FP32 (its FP16-Dequantize folding). Checked to work with
numpy 2.x and onnx 1.23 as it is.

What this module adds is byte-for-byte determinism. tflite2onnx collects
initializers and value_info in Python sets, so their order in the file, and
hence the file's bytes, change from one run to the next (string hashing is
randomised per process). We sort both lists by name, set the producer
fields to fixed values and serialise deterministically. The graph computes
exactly the same thing either way: ONNX gives those lists no meaning by order.
"""

from __future__ import annotations

import logging

import onnx

from . import ConversionError

TFLITE2ONNX_VERSION = "0.4.1"


def _import_tflite2onnx():
    try:
        import tflite
        import tflite2onnx
        from tflite2onnx.model import Model
    except ImportError as exc:
        raise ConversionError(
            "converting a .tflite model needs tflite2onnx==0.4.1 "
            "(pip install 'minicnn-faceops[convert]' or pip install tflite2onnx==0.4.1)"
        ) from exc
    if tflite2onnx.__version__ != TFLITE2ONNX_VERSION:
        raise ConversionError(
            f"tflite2onnx {tflite2onnx.__version__} is installed; the manifest's checksums were made with "
            f"{TFLITE2ONNX_VERSION} (pip install tflite2onnx=={TFLITE2ONNX_VERSION})"
        )
    return tflite, Model


def canonicalize(model: onnx.ModelProto, provenance: str = "") -> onnx.ModelProto:
    """Put the order-free lists of ``model`` in name order and fix its producer fields (in place)."""
    graph = model.graph
    initializers = sorted(graph.initializer, key=lambda t: t.name)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    value_info = sorted(graph.value_info, key=lambda v: v.name)
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    model.producer_name = "faceops.convert.tflite"
    model.producer_version = f"tflite2onnx {TFLITE2ONNX_VERSION}"
    if provenance:
        model.doc_string = f"converted from {provenance} by tflite2onnx {TFLITE2ONNX_VERSION}"
    return model


def convert_tflite(tflite_bytes: bytes, provenance: str = "") -> bytes:
    """Convert a TFLite flatbuffer to ONNX bytes (deterministic)."""
    tflite, Model = _import_tflite2onnx()
    t2o_log = logging.getLogger("tflite2onnx")
    previous = t2o_log.level
    # It warns "float16 not supported/tested" for FP16 weights, which it then widens to FP32 itself.
    t2o_log.setLevel(logging.ERROR)
    try:
        converter = Model(tflite.Model.GetRootAsModel(tflite_bytes, 0))
        converter.convert({})
    except Exception as exc:  # tflite2onnx signals unsupported content with bare asserts and assorted errors
        raise ConversionError(f"tflite2onnx could not convert {provenance or 'the model'}: {exc!r}") from exc
    finally:
        t2o_log.setLevel(previous)
    model = canonicalize(converter.onnx, provenance)
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)
