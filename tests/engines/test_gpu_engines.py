"""CUDA backends (AOTInductor + CUDA graphs, torch.compile, ONNX Runtime CUDA): run with ``pytest -m gpu``
on a machine with a GPU; skipped elsewhere. Real inputs: mocap from ``$POSESTREAM_MOCAP`` or
``../shared/data/cmu-mocap`` projected to 2D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import engines
from engines.build import build, example_input
from engines.verify import default_motion_source, verify

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    import os

    if "POSESTREAM_CACHE" not in os.environ:
        monkeypatch.setenv("POSESTREAM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_aoti_default_model_verifies_on_real_motion(precision):
    if default_motion_source() is None:
        pytest.skip("no mocap: set POSESTREAM_MOCAP")
    m = build("default", "aoti", precision=precision, max_batch=64)
    assert m.doc["device"]["kind"] == "cuda" and m.artifact.suffix == ".pt2"
    report = verify(m.folder, count=512)
    print(f"aoti {precision}: max {report['max_abs_error_m'] * 1000:.4f} mm, mean {report['mean_abs_error_m'] * 1000:.5f} mm")
    assert report["passed"], report


def test_aoti_cuda_graphs_replay_any_batch_size():
    engine = engines.load("default", backend="aoti")
    eager = engines.load("default", backend="torch", device="cpu")
    assert engine.backend == "aoti" and engine.device == "cuda"
    for b in (1, 3, 1, 64, 100, 3):  # new sizes capture a graph, repeats replay it, 100 runs in chunks
        x = example_input(b, 27, seed=b).numpy()
        np.testing.assert_allclose(engine.infer(x), eager.infer(x), atol=1e-4)


def test_torch_compile_and_cuda_eager_match_cpu():
    x = example_input(4, 27, seed=2).numpy()
    ref = engines.load("default", backend="torch", device="cpu").infer(x)
    np.testing.assert_allclose(engines.load("default", backend="torch", device="cuda").infer(x), ref, atol=1e-4)
    compiled = engines.load("default", backend="torch-compile")
    assert compiled.backend == "torch-compile"
    for _ in range(3):
        np.testing.assert_allclose(compiled.infer(x), ref, atol=1e-4)


def test_auto_picks_a_cuda_backend():
    assert engines.load("default").backend in ("tensorrt", "aoti")


def test_onnxruntime_cuda_provider_when_present():
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without the CUDA provider")
    engine = engines.load("default", backend="onnxruntime", device="cuda")
    x = example_input(2, 27).numpy()
    np.testing.assert_allclose(engine.infer(x), engines.load("default", backend="torch", device="cpu").infer(x), atol=1e-4)


def test_cuda_available_here():
    assert torch.cuda.is_available()
