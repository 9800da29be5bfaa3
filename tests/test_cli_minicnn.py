"""The ``minicnn`` command: summary, run, compare, ops (called in-process through ``main``)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from minicnn.cli import main
from tiny_models import tiny_cnn


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "tiny.onnx"
    onnx.save(tiny_cnn(), path)
    return path


def test_summary_table_and_json(model_file, capsys):
    assert main(["summary", str(model_file), "--shape", "1,3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "Conv" in out and "parameters" in out and "GFLOPs" in out
    assert main(["summary", str(model_file), "--shape", "1,3,32,32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layers"][0]["output_shape"] == [1, 8, 16, 16]
    assert data["total_params"] == sum(layer["params"] for layer in data["layers"])


def test_summary_needs_shape_for_dynamic_dims(model_file, capsys):
    assert main(["summary", str(model_file)]) == 2
    assert "dynamic shape" in capsys.readouterr().err


def test_run_with_input_file_saves_outputs(model_file, tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((1, 3, 20, 20)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out_file = tmp_path / "out.npz"
    assert main(["run", str(model_file), "--input", str(tmp_path / "x.npy"), "--output", str(out_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outputs"][0]["name"] == "prob" and data["outputs"][0]["shape"] == [1, 5]
    assert np.load(out_file)["prob"].shape == (1, 5)


def test_run_missing_input_file(model_file, capsys):
    assert main(["run", str(model_file), "--input", "/nonexistent/x.npy"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_compare_prints_table_and_exit_code(model_file, capsys):
    assert main(["compare", str(model_file), "--shape", "1,3,24,24"]) == 0
    out = capsys.readouterr().out
    assert "all" in out and "within rtol" in out
    assert main(["compare", str(model_file), "--shape", "1,3,24,24", "--json", "--no-optimize"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["match"] and all(t["status"] == "ok" for t in data["tensors"])


def test_ops_lists_registry(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "Conv" in out and "reference + fast path" in out


def test_dynamic_batch_alone_defaults_to_one(tmp_path, capsys):
    model = tiny_cnn(hw=(8, 8))  # only the batch dim is dynamic
    path = tmp_path / "fixed_hw.onnx"
    onnx.save(model, path)
    assert main(["run", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"][0]["shape"] == [1, 5]
