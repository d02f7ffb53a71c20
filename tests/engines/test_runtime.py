"""Engines on the CPU: ONNX build and cache, ONNX Runtime and torch backends, verify, CLI, failures."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
import torch

import engines
from engines.artifacts import EngineError, read_manifest
from engines.build import build, example_input
from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.cli import main as engines_main
from engines.models import TransformerConfig, build_model


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSESTREAM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "engines"


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    """A small transformer (fast to export) with real structure: per-frame MLP, causal layers."""
    torch.manual_seed(0)
    cfg = TransformerConfig(receptive_field=9, d_model=32, layers=2, heads=2, frame_hidden=64, head_hidden=64)
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    save_checkpoint(path, build_model(cfg), {"training": {"note": "test"}})
    return path


def _eager(ckpt, x: np.ndarray) -> np.ndarray:
    model, _ = load_checkpoint(ckpt)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def test_onnx_build_is_cached_and_matches_torch(cache, small_ckpt):
    m = build(small_ckpt, "onnx", max_batch=4)
    assert m.folder.parent == cache and m.folder.name.startswith("onnx-fp32-")
    assert m.artifact.name == "model.onnx" and m.receptive_field == 9
    assert m.doc["device"]["kind"] == "cpu" and m.doc["versions"]["onnx"]
    # every size but the batch is a constant in the graph: ONNX Runtime computes no shapes per call
    # (nn.MultiheadAttention's own shape arithmetic once made up half of the shipped model's nodes)
    ops = [n.op_type for n in onnx.load(str(m.artifact)).graph.node]
    assert "Shape" not in ops and ops.count("Softmax") == 2
    mtime = m.artifact.stat().st_mtime_ns
    again = build(small_ckpt, "onnx", max_batch=4)
    assert again.folder == m.folder and again.artifact.stat().st_mtime_ns == mtime  # cache hit, no rebuild
    other = build(small_ckpt, "onnx", max_batch=8)
    assert other.folder != m.folder  # the batch limit is part of the key

    engine = engines.load(m.folder)
    assert engine.backend == "onnxruntime" and engine.receptive_field == 9 and engine.max_batch == 4
    x = example_input(10, 9, seed=3).numpy()  # more than max_batch: runs in chunks
    got = engine.infer(x)
    assert got.shape == (10, 17, 3)
    np.testing.assert_allclose(got, _eager(small_ckpt, x), atol=1e-5)
    spec = engine.input_spec()
    assert spec["shape"] == ["batch", 9, 17, 3] and spec["output"]["units"] == "m"


def test_load_checkpoint_backends_agree_and_auto_is_onnxruntime_on_cpu(cache):
    x = example_input(3, 27, seed=1).numpy()
    eager = engines.load("default", backend="torch")
    auto = engines.load("default")
    assert eager.backend == "torch" and auto.backend == "onnxruntime"
    np.testing.assert_allclose(auto.infer(x), eager.infer(x), atol=1e-4)
    # the shipped model's body-size prior travels into built engines (realtime's --height needs it)
    assert auto.body_size_m == eager.body_size_m > 3.0


def test_engine_for_a_shared_cpu_does_not_spin_and_gives_the_same_joints(cache, small_ckpt):
    """The realtime pipeline loads the lifter with spin=False so ONNX Runtime's idle worker threads
    sleep instead of taking the cores from the 2D detector; the numbers must not change."""
    x = example_input(2, 9, seed=4).numpy()
    spinning, sleeping = engines.load(small_ckpt), engines.load(small_ckpt, spin=False)
    entry = "session.intra_op.allow_spinning"
    assert sleeping.session.get_session_options().get_session_config_entry(entry) == "0"
    with pytest.raises(RuntimeError):  # ONNX Runtime's default (spinning) is left alone otherwise
        spinning.session.get_session_options().get_session_config_entry(entry)
    np.testing.assert_array_equal(sleeping.infer(x), spinning.infer(x))


def test_missing_tensorrt_falls_back_with_one_log_line(cache, small_ckpt, caplog):
    with caplog.at_level(logging.WARNING, logger="posestream.engines"):
        engine = engines.load(small_ckpt, backend="tensorrt")
    assert engine.backend == "onnxruntime"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "tensorrt unavailable" in lines[0] and "onnxruntime" in lines[0]


def test_nan_joints_are_missing_and_bad_shapes_are_refused(cache, small_ckpt):
    engine = engines.load(small_ckpt, backend="onnxruntime")
    x = example_input(2, 9, seed=5).numpy()
    holes = x.copy()
    holes[:, :, 4, :] = np.nan
    missing = x.copy()
    missing[:, :, 4, :] = 0.0
    np.testing.assert_allclose(engine.infer(holes), engine.infer(missing), atol=1e-6)
    assert np.isfinite(engine.infer(holes)).all()
    with pytest.raises(EngineError, match=r"\(batch, 9, 17, 3\)"):
        engine.infer(x[:, :5])


def test_corrupt_engine_fails_clearly(cache, small_ckpt):
    m = build(small_ckpt, "onnx", max_batch=2)
    m.artifact.write_bytes(b"not an onnx graph")
    with pytest.raises(EngineError, match="rebuild it with `engines build"):
        engines.load(m.folder)
    (m.folder / "manifest.json").write_text("{broken")
    with pytest.raises(EngineError, match="corrupt engine manifest"):
        engines.load(m.folder)


def test_engine_from_other_library_version_is_rebuilt_or_refused(cache, small_ckpt, tmp_path, caplog):
    m = build(small_ckpt, "onnx", max_batch=2, out=tmp_path / "eng")
    doc = json.loads((m.folder / "manifest.json").read_text())
    doc["versions"]["onnx"] = "0.0.1"
    (m.folder / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(EngineError, match="built with onnx 0.0.1.*engines build --checkpoint"):
        engines.load(m.folder, rebuild=False)
    with caplog.at_level(logging.WARNING, logger="posestream.engines"):
        engine = engines.load(m.folder)  # source checkpoint known: rebuilt into the cache
    assert "rebuilding onnx engine" in caplog.text
    assert engine.backend == "onnxruntime" and engine.source != str(m.folder)
    # without the source checkpoint the only way out is the command to run
    doc["model"]["checkpoint"] = str(tmp_path / "gone.safetensors")
    (m.folder / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(EngineError, match="rebuild it with"):
        engines.load(m.folder)


def test_gpu_engine_on_a_machine_without_gpu_says_what_to_run(cache, small_ckpt, tmp_path):
    m = build(small_ckpt, "onnx", max_batch=2, out=tmp_path / "eng")
    doc = json.loads((m.folder / "manifest.json").read_text())
    doc.update(target="aoti", artifact="model.onnx",
               device={"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"})
    doc["model"]["checkpoint"] = None
    (m.folder / "manifest.json").write_text(json.dumps(doc))
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(EngineError, match="built for the GPU NVIDIA H100.*engines build"):
        engines.load(m.folder)


def test_requests_that_cannot_work_here(cache, small_ckpt, tmp_path):
    with pytest.raises(EngineError, match="FP16 ONNX"):
        build(small_ckpt, "onnx", precision="fp16")
    with pytest.raises(EngineError, match="unknown target"):
        build(small_ckpt, "openvino")
    with pytest.raises(EngineError, match="unknown backend"):
        engines.load(small_ckpt, backend="coreml")
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("user data")
    with pytest.raises(EngineError, match="not an engine folder"):
        build(small_ckpt, "onnx", out=keep)
    assert (keep / "notes.txt").read_text() == "user data"
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="needs a CUDA GPU"):
            build(small_ckpt, "aoti")


@pytest.mark.slow
def test_cli_build_info_verify(cache, small_ckpt, tmp_path, capsys):
    out = tmp_path / "eng"
    assert engines_main(["build", "--checkpoint", str(small_ckpt), "--target", "onnx", "--max-batch", "16",
                         "--out", str(out)]) == 0
    assert read_manifest(out).max_batch == 16
    assert engines_main(["build", "--checkpoint", str(small_ckpt), "--target", "onnx"]) == 0
    capsys.readouterr()
    assert engines_main(["info", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["engines"]
    assert len(listed) == 1 and listed[0]["target"] == "onnx" and listed[0]["usable_here"]

    # the bundled inputs: real mocap filmed by virtual cameras
    assert engines_main(["verify", "--engine", str(out), "--windows", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["max_abs_error_m"] < 1e-4 and report["windows"] == 64
    assert engines_main(["verify", "--engine", str(out)]) == 0
    assert capsys.readouterr().out.startswith("PASS: onnxruntime fp32 vs torch eager on 512 real windows")
    from engines.verify import load_keypoints, verify

    assert verify(out, load_keypoints()[:40], count=8)["windows"] == 8  # an array instead of a file

    # a user's keypoints file, and an engine that does not match its reference: exit 1
    frames = example_input(1, 40, seed=9).numpy()[0]
    np.savez(tmp_path / "kp.npz", keypoints=frames)
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    save_checkpoint(other, build_model(load_checkpoint(small_ckpt)[0].config), {})
    doc = json.loads((out / "manifest.json").read_text())
    from engines.artifacts import file_sha256

    doc["model"].update(checkpoint=str(other), sha256=file_sha256(other))
    (out / "manifest.json").write_text(json.dumps(doc))
    assert engines_main(["verify", "--engine", str(out), "--data", str(tmp_path / "kp.npz")]) == 1
    assert capsys.readouterr().out.startswith("FAIL")


def test_bundled_verify_inputs_are_real_frames_a_pip_user_has():
    from engines.verify import DEFAULT_INPUTS, load_keypoints, real_windows

    assert DEFAULT_INPUTS.stat().st_size < 300_000
    frames = load_keypoints()
    assert frames.shape == (512, 17, 3) and frames.dtype == np.float32 and np.isfinite(frames).all()
    conf = frames[..., 2]
    assert conf.min() >= 0 and conf.max() <= 1 and 0.9 < (conf > 0).mean() < 1  # detector noise drops a few joints
    windows = real_windows(None, 27)
    assert windows.shape == (512, 27, 17, 3)
    np.testing.assert_array_equal(windows[100, -1], frames[100])  # a window ends at each frame
    np.testing.assert_array_equal(windows[3, :24], np.repeat(frames[:1], 24, axis=0))  # the first frame repeats
    np.testing.assert_array_equal(real_windows(frames, 9, count=5), windows[:5, -9:])  # an array instead of a file


@pytest.mark.parametrize("what", ["bvh_file", "bvh_folder", "motion_archive"])
def test_verify_refuses_motion_and_names_the_command_that_makes_inputs(what, cache, tmp_path, capsys):
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "tiny" / "cmu31.bvh"
    data = {"bvh_file": fixture, "bvh_folder": fixture.parent, "motion_archive": tmp_path / "motion.npz"}[what]
    np.savez(tmp_path / "motion.npz", joints3d=np.zeros((3, 17, 3), np.float32))
    # refused before the engine is even looked at
    assert engines_main(["verify", "--engine", str(tmp_path / "nothing"), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert f"`training make-windows --data {data} --out inputs.npz` first" in err


def test_cli_errors_are_one_sentence(cache, tmp_path, capsys):
    assert engines_main(["verify", "--engine", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "engines build" in err and "Traceback" not in err
    assert engines_main(["build", "--checkpoint", str(tmp_path / "missing.safetensors"), "--target", "onnx"]) == 2


def test_aoti_engine_loads_the_runner_that_cuda_graphs_can_capture(monkeypatch, tmp_path):
    """AOTInductor's default runner waits on CUDA events around every run, which made the CUDA
    graph capture fail on an H100; with graphs on, the engine must ask for the single-threaded
    runner (and a torch too old to offer it still loads). CPU-only: the loader is a stand-in."""
    from engines.artifacts import Manifest
    from engines.runtime import AOTIEngine, CudaGraphReplay

    asked = []

    def load_package(path, run_single_threaded=False, device_index=-1):
        asked.append(run_single_threaded)
        return lambda x: x

    def old_load_package(path):
        asked.append("old")
        return lambda x: x

    manifest = Manifest(tmp_path, {"target": "aoti", "precision": "fp32", "max_batch": 8, "artifact": "model.pt2",
                                   "model": {"receptive_field": 27}})
    monkeypatch.setattr(torch._inductor, "aoti_load_package", load_package)
    assert isinstance(AOTIEngine(manifest, cuda_graphs=True)._fn, CudaGraphReplay)
    assert not isinstance(AOTIEngine(manifest, cuda_graphs=False)._fn, CudaGraphReplay)
    monkeypatch.setattr(torch._inductor, "aoti_load_package", old_load_package)
    AOTIEngine(manifest, cuda_graphs=True)
    assert asked == [True, False, "old"]
