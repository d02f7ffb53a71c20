"""CUDA backends (AOTInductor + CUDA graphs, torch.compile, ONNX Runtime CUDA): run with ``pytest -m gpu``
on a machine with a GPU; skipped elsewhere. Real inputs: ``engines verify``'s bundled ones (CMU mocap
filmed by virtual cameras, engines/assets/verify_keypoints.npz)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import engines
from engines.artifacts import read_manifest
from engines.build import example_input

pytestmark = [pytest.mark.gpu, pytest.mark.slow]  # builds and compiles engines for the GPU


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    import os

    if "POSESTREAM_CACHE" not in os.environ:
        monkeypatch.setenv("POSESTREAM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _engines_cli(*args: str) -> subprocess.CompletedProcess:
    """``engines ...`` in a fresh interpreter, as a user runs it: a native crash inside torch (an
    AOTInductor load once segfaulted in-process on an H100 right after a build) fails this test with
    its exit status instead of ending the whole GPU session."""
    return subprocess.run([sys.executable, "-m", "engines.cli", *args], check=False, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_aoti_default_model_builds_and_verifies_on_real_motion(precision, tmp_path):
    out = tmp_path / f"aoti-{precision}"
    built = _engines_cli("build", "--checkpoint", "default", "--target", "aoti", "--precision", precision,
                         "--max-batch", "64", "--out", str(out))
    assert built.returncode == 0, built.stdout + built.stderr
    m = read_manifest(out)
    assert m.doc["device"]["kind"] == "cuda" and m.artifact.suffix == ".pt2" and m.precision == precision
    checked = _engines_cli("verify", "--engine", str(out), "--windows", "512", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    print(f"aoti {precision}: max {report['max_abs_error_m'] * 1000:.4f} mm, mean {report['mean_abs_error_m'] * 1000:.5f} mm")
    assert report["passed"] and report["backend"] == "aoti", report


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
