"""TensorRT and Torch-TensorRT backends, tested without either library and without a GPU.

The real libraries cannot be installed here, so these tests cover what does not need them: the
size and precision checks that raise before TensorRT is imported, the profile and buffer
arithmetic, the one-sentence ImportError when a library is missing (``sys.modules["tensorrt"] =
None`` makes ``import tensorrt`` raise ImportError), and loading a saved program with torch's own
``torch.export``. What TensorRT itself does with a network is left to a machine that has it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import engines
from engines import tensorrt_backend as trtb
from engines import torch_tensorrt_backend as tttb

SHAPE = {"max_batch": 8, "frames": 27, "joints": 17, "channels": 3}


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)


@pytest.fixture
def no_torch_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "lifter.onnx"
    path.write_bytes(b"never parsed: every test here stops before TensorRT")
    return path


# --------------------------------------------------------------------------- available()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT installed")
def test_available_is_false_in_this_environment():
    ok, reason = trtb.available()
    assert ok is False and "TensorRT" in reason and "not installed" in reason


def test_available_reports_missing_tensorrt(no_tensorrt):
    ok, reason = trtb.available()
    assert ok is False
    assert reason == "TensorRT is not installed (pip install posestream[gpu])."


def test_torch_tensorrt_available_reports_missing_library(no_torch_tensorrt):
    ok, reason = tttb.available()
    assert ok is False
    assert reason == "torch-tensorrt is not installed (pip install posestream[gpu])."


@pytest.mark.parametrize("name", ["engines.tensorrt_backend", "engines.torch_tensorrt_backend"])
def test_modules_import_without_the_libraries(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    monkeypatch.delitem(sys.modules, name)
    attr = name.rsplit(".", 1)[1]
    monkeypatch.setattr(engines, attr, getattr(engines, attr))  # restored after the re-import
    module = importlib.import_module(name)
    assert callable(module.available)
    assert sys.modules["tensorrt"] is None and sys.modules["torch_tensorrt"] is None


# --------------------------------------------------------------------------- shapes and sizes


def test_profile_shapes_vary_only_the_batch():
    assert trtb.profile_shapes(8, 27, 17) == {
        "min": (1, 27, 17, 3), "opt": (1, 27, 17, 3), "max": (8, 27, 17, 3)}
    assert trtb.profile_shapes(4, 81, 17, channels=2, opt_batch=4)["opt"] == (4, 81, 17, 2)
    assert trtb.profile_shapes(1, 1, 1) == {k: (1, 1, 1, 3) for k in ("min", "opt", "max")}


@pytest.mark.parametrize("kwargs, word", [
    ({"max_batch": 0, "frames": 27, "joints": 17}, "max_batch"),
    ({"max_batch": 4, "frames": 27, "joints": 17, "opt_batch": 0}, "opt_batch"),
    ({"max_batch": 4, "frames": 27, "joints": 17, "opt_batch": 5}, "opt_batch"),
    ({"max_batch": 4, "frames": 0, "joints": 17}, "frames"),
    ({"max_batch": 4, "frames": 27, "joints": 17, "channels": 0}, "channels"),
])
def test_profile_shapes_refuses_bad_sizes(kwargs, word):
    with pytest.raises(ValueError, match=word):
        trtb.profile_shapes(**kwargs)


def test_buffer_bytes():
    assert trtb.buffer_bytes((8, 27, 17, 3)) == 8 * 27 * 17 * 3 * 4
    assert trtb.buffer_bytes((8, 27, 17, 3), "float16") == 8 * 27 * 17 * 3 * 2
    assert trtb.buffer_bytes([2, 17, 3], np.float32) == 408
    for bad in [(0, 17, 3), (2, -1, 3), ()]:
        with pytest.raises(ValueError):
            trtb.buffer_bytes(bad)


# --------------------------------------------------------------------------- missing libraries


def test_build_plan_without_tensorrt_raises_import_error(no_tensorrt, onnx_file, tmp_path):
    with pytest.raises(ImportError, match=r"pip install posestream\[gpu\]"):
        trtb.build_plan(onnx_file, tmp_path / "x.plan", **SHAPE)
    assert not (tmp_path / "x.plan").exists()


def test_build_plan_checks_its_arguments_before_needing_tensorrt(no_tensorrt, onnx_file, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        trtb.build_plan(onnx_file, tmp_path / "x.plan", precision="int8", **SHAPE)
    with pytest.raises(ValueError, match="max_batch"):
        trtb.build_plan(onnx_file, tmp_path / "x.plan", **{**SHAPE, "max_batch": 0})
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        trtb.build_plan(tmp_path / "missing.onnx", tmp_path / "x.plan", **SHAPE)


def test_runner_without_tensorrt_raises_import_error(no_tensorrt, tmp_path):
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"whatever")
    with pytest.raises(ImportError, match="TensorRT is not installed"):
        trtb.TensorRTRunner(plan, max_batch=4)


def test_torch_tensorrt_build_without_library_raises_import_error(no_torch_tensorrt, tmp_path):
    with pytest.raises(ImportError, match="torch-tensorrt is not installed"):
        tttb.build_program(torch.nn.Linear(3, 3), tmp_path / "p.pt2", precision="fp32",
                           max_batch=4, frames=27, joints=17)
    with pytest.raises(ValueError, match="precision"):
        tttb.build_program(torch.nn.Linear(3, 3), tmp_path / "p.pt2", precision="bf16",
                           max_batch=4, frames=27, joints=17)


def test_load_program_errors(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError):
        tttb.load_program(tmp_path / "missing.pt2")
    corrupt = tmp_path / "corrupt.pt2"
    corrupt.write_bytes(b"PK\x03\x04 cut short")
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(ImportError, match="torch-tensorrt is not installed"):
        tttb.load_program(corrupt)
    monkeypatch.setitem(sys.modules, "torch_tensorrt", SimpleNamespace())
    with pytest.raises(ValueError, match="not a readable Torch-TensorRT program"):
        tttb.load_program(corrupt)


def test_load_program_returns_the_callable_module(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", SimpleNamespace())
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).eval()
    x = torch.rand(4, 3)
    path = tmp_path / "prog.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(path))
    loaded = tttb.load_program(path)
    assert torch.allclose(loaded(x), model(x))
