"""The BlazePose port against ``mediapipe.solutions.pose`` on real video, several people, and the
``realtime detect`` command.

MediaPipe runs once per clip (video mode, model_complexity=1, its default smoothing) through its
own graph with two more of the graph's outputs exposed (the region it derived from the detector
and from the landmarks), so the port can be checked step by step and end to end:

* open loop: each frame the port is handed MediaPipe's region and runs its own landmark model,
  decoding, heatmap refinement, projection and filters: this isolates the port's arithmetic;
* closed loop: the port tracks on its own, as a user runs it. Tracking feeds each frame's
  landmarks into the next crop, and MediaPipe's landmarks move by pixels when the crop moves by
  a millionth (one grey level more or less in a few hundred pixels): the issue's targets (median
  0.5 px, 95th percentile 2 px) are checked, and where a clip misses them the test measures
  MediaPipe against itself on the same frames with 0.1% of pixel values off by one grey level,
  and requires the port to be no further from MediaPipe than that.
"""

from __future__ import annotations

import numpy as np
import pytest

from realtime.sources import video_frames

VIDEOS = ("cam03", "cam04")
TARGET_MEDIAN_PX, TARGET_P95_PX = 0.5, 2.0


def _read(path, start: int = 0, count: int = 100) -> list[np.ndarray]:
    return list(video_frames(path, start, count))


def _mediapipe(frames: list[np.ndarray]) -> list[dict]:
    """MediaPipe Pose (video mode, defaults) on every frame: landmarks, and the regions it used."""
    import cv2
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import pose as mp_pose

    graph = SolutionBase(binary_graph_path=mp_pose._BINARYPB_FILE_PATH,
                         side_inputs={"model_complexity": 1, "smooth_landmarks": True, "enable_segmentation": False,
                                      "smooth_segmentation": True, "use_prev_landmarks": True},
                         outputs=["pose_landmarks", "pose_rect_from_landmarks", "pose_rect_from_detection"])
    out = []
    try:
        for img in frames:
            r = graph.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            rect = lambda n: None if n is None else (n.x_center, n.y_center, n.width, n.height, n.rotation)
            lms = None if r.pose_landmarks is None else np.array(
                [[p.x, p.y, p.z, p.visibility] for p in r.pose_landmarks.landmark], np.float64)
            out.append({"landmarks": lms, "next": rect(r.pose_rect_from_landmarks),
                        "detection": rect(r.pose_rect_from_detection)})
    finally:
        graph.close()
    return out


@pytest.fixture(scope="session")
def clips(shared_dir, blazepose_cache) -> dict[str, tuple[list[np.ndarray], list[dict]]]:
    out = {}
    for name in VIDEOS:
        frames = _read(shared_dir / "media" / "pose2sim-demo" / f"{name}.mp4")
        assert len(frames) == 100 and frames[0].shape == (1920, 1088, 3)
        out[name] = (frames, _mediapipe(frames))
    return out


def _port(**kw):
    from realtime.blazepose import BlazePose, BlazePoseConfig

    return BlazePose(BlazePoseConfig(runtime="onnxruntime", **kw))


def _errors(ours: list[np.ndarray | None], ref: list[dict], shape) -> tuple[np.ndarray, int]:
    """Pixel distances on the landmarks MediaPipe sees as visible; frames where only one side has a person."""
    h, w = shape[:2]
    errs, mismatch = [], 0
    for mine, r in zip(ours, ref):
        if (mine is None) != (r["landmarks"] is None):
            mismatch += 1
            continue
        if mine is None:
            continue
        vis = r["landmarks"][:, 3] > 0.5
        d = np.hypot((mine[:, 0] - r["landmarks"][:, 0]) * w, (mine[:, 1] - r["landmarks"][:, 1]) * h)
        errs.append(d[vis])
    return np.concatenate(errs), mismatch


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEOS)
def test_detection_region_matches_mediapipe(clips, name):
    from realtime.blazepose import geometry as geo

    frames, ref = clips[name]
    pose = _port()
    scores, _, kps = pose.detect(frames[0])
    assert len(scores) >= 1 and scores[0] >= 0.5
    h, w = frames[0].shape[:2]
    rect, _ = geo.rect_from_points(kps[0, 0], kps[0, 1], w, h)
    np.testing.assert_allclose(rect, ref[0]["detection"], rtol=1e-5, atol=1e-6)


def _open_loop(pose, frames, ref) -> tuple[np.ndarray, int, list]:
    """Run ``pose`` handing it MediaPipe's region every frame: pixel errors, person mismatches, regions."""
    ours, regions = [], []
    for i, img in enumerate(frames):
        if i > 0 and pose.tracks:
            pose.tracks[0].rect = ref[i - 1]["next"]  # MediaPipe's region, our own filter state
        out = pose.process(img)
        ours.append(out.landmarks[0] if out.persons else None)
        regions.append(pose.tracks[0].rect if pose.tracks else None)
    e, mismatch = _errors(ours, ref, frames[0].shape)
    return e, mismatch, regions


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEOS)
def test_open_loop_every_step_matches_mediapipe(clips, name):
    """Given MediaPipe's region each frame, the port's landmarks and next region agree to ~0.01 px."""
    frames, ref = clips[name]
    e, mismatch, regions = _open_loop(_port(), frames, ref)
    assert mismatch == 0
    print(f"{name} open loop: median {np.median(e):.4f} px, p95 {np.percentile(e, 95):.4f}, max {e.max():.4f}")
    assert np.median(e) <= 0.01 and np.percentile(e, 95) <= 0.05 and e.max() <= 0.5
    h, w = frames[0].shape[:2]
    for mine, r in zip(regions, ref):
        np.testing.assert_allclose(np.array(mine[:2]) * [w, h], np.array(r["next"][:2]) * [w, h], atol=0.05)
        np.testing.assert_allclose(mine[2] * w, r["next"][2] * w, atol=0.05)  # region side, pixels
        assert abs(mine[4] - r["next"][4]) < 1e-4


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.parametrize("precision, median_px, p95_px", [("fp32", 0.01, 0.05), ("fp16", 1.0, 3.0)])
def test_open_loop_on_cuda_matches_mediapipe(clips, precision, median_px, p95_px):
    """The port in torch on CUDA (CUDA graphs), open loop on cam04: FP32 as close as on the CPU
    (cuDNN kept off TF32), FP16 within about a pixel (the CPU stand-in measured ~0.5 px median)."""
    from realtime.blazepose import BlazePose, BlazePoseConfig

    frames, ref = clips["cam04"]
    pose = BlazePose(BlazePoseConfig(runtime="torch", device="cuda", precision=precision))
    e, mismatch, _ = _open_loop(pose, frames, ref)
    print(f"cam04 open loop, cuda {precision}: median {np.median(e):.4f} px, p95 {np.percentile(e, 95):.4f}, "
          f"max {e.max():.4f}")
    assert mismatch == 0 and np.median(e) <= median_px and np.percentile(e, 95) <= p95_px


def _perturbed_mediapipe(frames: list[np.ndarray]) -> list[dict]:
    rng = np.random.default_rng(0)
    noisy = []
    for img in frames:
        img = img.copy()
        mask = rng.random(img.shape) < 0.001
        img[mask] = np.clip(img[mask].astype(np.int16) + rng.choice([-1, 1], int(mask.sum())), 0, 255)
        noisy.append(img)
    return _mediapipe(noisy)


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEOS)
def test_closed_loop_tracking_is_as_close_to_mediapipe_as_mediapipe_is_to_itself(clips, name):
    frames, ref = clips[name]
    pose = _port()
    ours = []
    for img in frames:
        out = pose.process(img)
        assert out.persons <= 1 and (out.persons == 0 or out.ids[0] == pose.tracks[0].id)
        ours.append(out.landmarks[0] if out.persons else None)
    e, mismatch = _errors(ours, ref, frames[0].shape)
    med, p95 = float(np.median(e)), float(np.percentile(e, 95))
    print(f"{name} closed loop: median {med:.3f} px, p95 {p95:.3f}, max {e.max():.2f}, presence mismatches {mismatch}")
    assert mismatch <= 2
    if med <= TARGET_MEDIAN_PX and p95 <= TARGET_P95_PX:
        return
    floor = [r["landmarks"] for r in _perturbed_mediapipe(frames)]
    fe, _ = _errors(floor, ref, frames[0].shape)
    fmed, fp95 = float(np.median(fe)), float(np.percentile(fe, 95))
    print(f"{name} MediaPipe vs itself on imperceptibly perturbed frames: median {fmed:.3f} px, p95 {fp95:.3f}")
    assert med <= 1.25 * max(fmed, TARGET_MEDIAN_PX) and p95 <= 1.25 * max(fp95, TARGET_P95_PX)


@pytest.mark.slow
def test_two_people_are_found_and_keep_their_ids(shared_dir, blazepose_cache):
    """Sports2D demo, frames 50-149: a man on a box and a woman walking past him."""
    frames = _read(shared_dir / "media" / "sports2d-demo" / "demo.mp4", start=50, count=100)
    assert len(frames) == 100
    pose = _port(max_persons=4, detect_every=5)
    ids_per_frame, centres = [], {}
    for img in frames:
        out = pose.process(img)
        assert out.landmarks.shape == (out.persons, 33, 3) and np.isfinite(out.landmarks).all()
        ids_per_frame.append(out.ids.tolist())
        for pid, lm in zip(out.ids, out.pixels):
            centres.setdefault(int(pid), []).append(lm[[23, 24]].mean(0))  # mid-hip, pixels
    two = sum(len(ids) >= 2 for ids in ids_per_frame)
    assert two >= 90, f"two people in only {two} of 100 frames"
    counts = {pid: sum(pid in ids for ids in ids_per_frame) for pid in centres}
    main = sorted(counts, key=counts.get, reverse=True)[:2]
    assert all(counts[p] >= 90 for p in main), counts  # the same two ids nearly throughout
    w = frames[0].shape[1]
    for pid in main:  # an id never jumps to the other person
        steps = np.linalg.norm(np.diff(np.array(centres[pid]), axis=0), axis=-1)
        assert steps.max() < 0.05 * w, (pid, steps.max())
    a, b = (np.array(centres[p]).mean(0) for p in main)
    assert np.linalg.norm(a - b) > 0.1 * w


@pytest.mark.slow
def test_detector_backend_gives_canonical_keypoints(clips, blazepose_cache):
    from engines.skeleton import CANONICAL
    from realtime.detect2d import make_detector

    frames, _ = clips["cam04"]
    det = make_detector("blazepose", max_persons=2)
    try:
        results = [det.detect(img) for img in frames[:5]]
    finally:
        det.close()
    assert all(r.persons == 1 for r in results)
    assert len({int(r.ids[0]) for r in results}) == 1
    r = results[-1]
    assert r.keypoints.shape == (1, CANONICAL.num_joints, 3) and r.landmarks33.shape == (1, 33, 2)
    assert np.all(np.abs(r.keypoints[..., :2]) <= 1.0) and np.all((r.keypoints[..., 2] >= 0) & (r.keypoints[..., 2] <= 1))


def _cli(*args: str) -> int:
    from realtime.cli import main

    return main(["detect", *args, "--quiet"])


@pytest.mark.slow
def test_detect_command_writes_keypoints(shared_dir, blazepose_cache, tmp_path, capsys):
    video = shared_dir / "media" / "pose2sim-demo" / "cam04.mp4"
    for detector in ("blazepose", "mediapipe"):
        out = tmp_path / f"{detector}.npz"
        assert _cli("--video", str(video), "--detector", detector, "--max-frames", "12", "--out", str(out)) == 0
        assert "wrote" in capsys.readouterr().err
        with np.load(out) as z:
            f, p = z["ids"].shape
            assert f == 12 and p == 1
            assert z["landmarks"].shape == (12, 1, 33, 2) and z["visibility"].shape == (12, 1, 33)
            assert z["keypoints"].shape == (12, 1, 17, 3) and z["timestamps"].shape == (12,)
            assert (z["ids"] >= 0).all() and np.isfinite(z["landmarks"]).all()
            assert 0 < z["landmarks"][..., 0].mean() < int(z["width"]) and str(z["detector"]) == detector
    with np.load(tmp_path / "blazepose.npz") as a, np.load(tmp_path / "mediapipe.npz") as b:
        vis = b["visibility"] > 0.5  # the two backends see the same person in the same place
        assert np.median(np.linalg.norm(a["landmarks"] - b["landmarks"], axis=-1)[vis]) < 2.0


@pytest.mark.parametrize("args, message", [
    (["--video", "MISSING"], "does not exist"),
    (["--video", "CORRUPT"], "could not open it as a video"),
    (["--video", "CAM", "--detector", "nope"], "unknown detector"),
    (["--video", "CAM", "--detector", "mediapipe", "--device", "cuda"], "CPU only"),
    (["--video", "CAM", "--detector", "blazepose", "--device", "cuda"], "CUDA"),
])
def test_detect_command_bad_input_is_one_sentence(args, message, shared_dir, tmp_path, capsys):
    import torch

    if "cuda" in args and args[args.index("--detector") + 1] == "blazepose" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    paths = {"MISSING": str(tmp_path / "missing.mp4"), "CORRUPT": str(corrupt),
             "CAM": str(shared_dir / "media" / "pose2sim-demo" / "cam04.mp4")}
    out = tmp_path / "out.npz"
    code = _cli(*[paths.get(a, a) for a in args], "--out", str(out))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out.npz*"))
