"""The TFLite reader and the ported BlazePose networks, against TFLite's own interpreter (LiteRT).

Reference: ``ai_edge_litert`` (LiteRT 2.1, the TFLite interpreter without TensorFlow; test-only
dependency). Its reference kernels expand the detector's sparse weights (the XNNPACK path reads
them back as zeros, so the comparison of dense weights uses ``BUILTIN_REF``); its default XNNPACK
path is what MediaPipe runs, and the networks' raw outputs are compared against it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engines.blazepose import NETWORKS, load_network, tflite_path
from engines.tflite import TFLiteError, densify, read_tflite, sparse_tensors

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT (test extra) is the TFLite reference")

CAM03 = "cam03.mp4"


@pytest.fixture(scope="session")
def frame(shared_dir) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(shared_dir / "media" / "pose2sim-demo" / CAM03))
    ok, img = cap.read()
    cap.release()
    assert ok
    return img


def _inputs(frame: np.ndarray) -> dict[str, np.ndarray]:
    """Real network inputs: the letterboxed frame for the detector, a crop around the person."""
    from realtime.blazepose import geometry as geo

    det, _ = geo.letterbox_input(frame)
    h, w = frame.shape[:2]
    crop, _ = geo.landmark_input(frame, (0.59, 0.47, 1.09, 0.62, 0.07))  # the region MediaPipe tracks there
    assert crop.shape == (256, 256, 3) and 0.2 < crop.mean() < 0.8 and (h, w) == (1920, 1088)
    return {"detector": det[None], "landmark": crop[None]}


def test_reader_finds_the_documented_operators():
    from collections import Counter

    det = read_tflite(tflite_path("detector"))
    lm = read_tflite(tflite_path("landmark"))
    det_ops, lm_ops = Counter(o.kind for o in det.operators), Counter(o.kind for o in lm.operators)
    # DEQUANTIZE and DENSIFY of constant weights are folded away at read time
    assert set(det_ops) == {"PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESIZE_BILINEAR", "RESHAPE",
                            "CONCATENATION", "DEPTH_TO_SPACE"}
    assert set(lm_ops) == {"PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESIZE_BILINEAR", "RESHAPE",
                           "MAX_POOL_2D", "LOGISTIC"}
    assert [det.tensors[i].shape for i in det.outputs] == [(1, 2254, 12), (1, 2254, 1)]
    assert [lm.tensors[i].shape for i in lm.outputs] == [(1, 195), (1, 1), (1, 256, 256, 1), (1, 64, 64, 39),
                                                         (1, 117)]
    # every convolution's weights came out dense float32
    for g in (det, lm):
        for op in g.operators:
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                assert g.const(op.inputs[1]).dtype == np.float32


def test_sparse_weights_expand_exactly_as_tflite_does():
    path = tflite_path("detector")
    sparse = sparse_tensors(path)
    assert len(sparse) == 38
    interp = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                                experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], np.zeros((1, 224, 224, 3), np.float32))
    interp.invoke()
    graph = read_tflite(path)
    checked = 0
    for out, (kind, src) in graph.folded.items():
        if kind != "DENSIFY":
            continue
        values, dense = sparse[src]
        assert 0.2 < float((dense != 0).mean()) < 0.3  # about 75% zeros, as stored
        assert np.count_nonzero(dense) <= values.size
        np.testing.assert_array_equal(interp.get_tensor(out).astype(np.float32), dense.astype(np.float32))
        np.testing.assert_array_equal(graph.tensors[out].data, dense)
        checked += 1
    assert checked == 38


def test_densify_csr_and_block_layouts():
    dense = np.array([[0, 1.5, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]], np.float16)
    # rows dense, columns compressed (CSR)
    csr = [{"format": "DENSE", "dense_size": 3},
           {"format": "SPARSE_CSR", "segments": np.array([0, 2, 2, 4]), "indices": np.array([1, 3, 0, 3])}]
    got = densify(np.array([1.5, 2, 3, 4], np.float16), (3, 4), [0, 1], [], csr)
    np.testing.assert_array_equal(got, dense)
    # 1x2 blocks along the columns: block columns compressed, the block's inner column dense
    blocks = [{"format": "DENSE", "dense_size": 3},
              {"format": "SPARSE_CSR", "segments": np.array([0, 2, 2, 4]), "indices": np.array([0, 1, 0, 1])},
              {"format": "DENSE", "dense_size": 2}]
    got = densify(np.array([0, 1.5, 0, 2, 3, 0, 0, 4], np.float16), (3, 4), [0, 1, 2], [1], blocks)
    np.testing.assert_array_equal(got, dense)


def test_not_a_tflite_file_is_one_sentence(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(TFLiteError, match="not a TFLite model"):
        read_tflite(bad)
    with pytest.raises(TFLiteError, match="cannot read"):
        read_tflite(tmp_path / "missing.tflite")


@pytest.mark.parametrize("network", ["detector", "landmark"])
def test_raw_outputs_match_the_tflite_interpreter(network, frame, blazepose_cache):
    x = _inputs(frame)[network]
    interp = litert.Interpreter(model_path=str(tflite_path(network)))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    ref = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    net = load_network(network)
    assert net.output_names == NETWORKS[network][1]
    with torch.no_grad():
        got = [t.numpy() for t in net(torch.from_numpy(np.concatenate([x, x[:, ::-1]])))]  # batch of 2
    for name, r, g in zip(net.output_names, ref, got):
        assert g.shape[1:] == r.shape[1:], name
        err = float(np.abs(g[:1] - r).max())
        scale = float(np.abs(r).max())
        print(f"{network}/{name}: max |torch - TFLite| {err:.2e} (largest value {scale:.3g})")
        # ~1e-3 absolute on raw values up to hundreds; the segmentation logits reach ~2000
        assert err <= (2e-3 if name != "segmentation" else 1e-4 * scale), f"{network}/{name}: {err} (scale {scale})"
    # the batch axis is free (the file says 1) and items do not leak into each other
    with torch.no_grad():
        second = [t.numpy() for t in net(torch.from_numpy(np.ascontiguousarray(x[:, ::-1])))]
    for g, s in zip(got, second):
        np.testing.assert_allclose(g[1:], s, atol=1e-4, rtol=1e-5)


def test_modules_are_cached_and_pruned(blazepose_cache):
    full = load_network("landmark")
    entries = sorted(blazepose_cache.glob("landmark-*"))
    assert entries and (entries[0] / "weights.safetensors").is_file()
    spec = json.loads((entries[0] / "spec.json").read_text())
    assert spec["outputs"] and spec["source"]["network"] == "landmark"
    pruned = load_network("landmark", ("landmarks", "pose_flag", "heatmap"))
    assert len(pruned.kept) < len(full.kept)  # the segmentation and world branches are gone
    x = torch.rand(1, 256, 256, 3)
    with torch.no_grad():
        a, b = full(x), pruned(x)
    for name, t in zip(pruned.output_names, b):
        torch.testing.assert_close(t, a[full.output_names.index(name)])
    with pytest.raises(ValueError, match="unknown output"):
        load_network("landmark", ("nope",))


@pytest.mark.slow
def test_onnx_engines_match_torch_and_are_cached(blazepose_cache):
    import onnxruntime as ort

    from engines.artifacts import read_manifest
    from engines.blazepose_runtime import build_onnx, example_batch

    for network, outputs in (("detector", None), ("landmark", ("landmarks", "pose_flag", "heatmap"))):
        manifest = build_onnx(network, outputs)
        assert manifest.target == "onnx" and manifest.folder.parent == blazepose_cache
        again = build_onnx(network, outputs)
        assert again.folder == manifest.folder and again.doc["created"] == manifest.doc["created"]  # cache hit
        assert read_manifest(manifest.folder).doc["model"]["network"] == network
        net = load_network(network, outputs)
        session = ort.InferenceSession(str(manifest.artifact), providers=["CPUExecutionProvider"])
        x = example_batch(network, 3, seed=7)
        with torch.no_grad():
            want = [t.numpy() for t in net(torch.from_numpy(x))]
        got = session.run(None, {"image": x})
        for w, g in zip(want, got):
            assert g.shape == w.shape
            assert float(np.abs(g - w).max()) <= 1e-4 * max(1.0, float(np.abs(w).max()))
