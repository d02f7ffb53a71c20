"""The world frame (realtime.world), ground contact (realtime.contact) and the body stage
(realtime.body) on real CMU motion filmed by tilted virtual cameras."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.camera import Camera, look_at_rotation
from realtime import world as W
from realtime.body import BodyStage
from realtime.contact import ContactSolver
from realtime.rig import canonical_from_rows

FPS = 30.0
DT_NS = int(1e9 / FPS)


@pytest.fixture(scope="module")
def walk(shared_dir) -> np.ndarray:
    """CMU 09_12 (walking forward, backward and sideways; a validation subject), its first 10 s,
    in its own world frame: y up, floor at y = 0."""
    from training.motion import load_clip

    joints, _, _ = load_clip(shared_dir / "data" / "cmu-mocap" / "09" / "09_12.bvh.gz", fps=FPS)
    return joints[: int(10 * FPS)].astype(np.float64)


def _camera(pitch_deg: float, roll_deg: float, height: float, target_xz=(0.0, 0.0), distance=4.0) -> Camera:
    """A camera ``distance`` m from ``target_xz`` on the floor plan, ``height`` m up, pitched and rolled."""
    tx, tz = target_xz
    position = np.array([tx, height, tz + distance])
    target = np.array([tx, height + distance * math.tan(math.radians(pitch_deg)), tz])
    R = look_at_rotation(position[None], target[None], (0.0, 1.0, 0.0), np.array([math.radians(roll_deg)]))[0]
    return Camera("virtual", 1280, 720, 900.0, 900.0, 640.0, 360.0, R, -R @ position)


def _true_up(camera: Camera) -> np.ndarray:
    return np.asarray(camera.R) @ np.array([0.0, 1.0, 0.0])


@pytest.mark.parametrize("pitch,roll,height", [(0, 0, 1.0), (-25, 0, 2.0), (-10, 15, 1.2), (10, -20, 0.6)])
def test_a_calibrated_camera_gives_the_true_heights_and_a_level_floor(pitch, roll, height):
    cam = _camera(pitch, roll, height)
    t = W.from_calibration(cam, up="y")
    assert t.source == "calibration" and t.confidence == 1.0
    assert t.tilt_deg[0] == pytest.approx(pitch, abs=1e-6) and abs(t.tilt_deg[1]) == pytest.approx(abs(roll), abs=1e-6)
    assert t.height_m == pytest.approx(height)
    rng = np.random.default_rng(0)
    points = rng.uniform([-2, 0, -4], [2, 2, 0], (50, 3))
    back = t.to_world(cam.world_to_camera(points))
    np.testing.assert_allclose(back[:, 1], points[:, 1], atol=1e-9)  # heights above the floor are kept
    np.testing.assert_allclose(np.linalg.norm(back[:, [0, 2]], axis=1),  # distances from below the camera too
                               np.linalg.norm(points[:, [0, 2]] - [0, 4], axis=1), atol=1e-9)
    np.testing.assert_allclose(t.to_camera(back), cam.world_to_camera(points), atol=1e-9)
    M = np.asarray(t.matrix_list())
    np.testing.assert_allclose(M[:3, :3] @ M[:3, :3].T, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(M[:3, 3], [0, height, 0], atol=1e-6)


def test_the_pose2sim_calibration_reproduces_each_cameras_up_and_height(shared_dir):
    from engines.calibration import load_calibration

    path = shared_dir / "media" / "pose2sim-demo" / "Calib.qca.txt"
    for cam in load_calibration(path):
        t = W.from_calibration(W.camera_from_calibration(path, cam.name))  # the up axis (lab z) is detected
        true_up = np.asarray(cam.R) @ np.array([0.0, 0.0, 1.0])
        assert math.degrees(math.acos(min(1.0, float(t.up @ true_up)))) < 0.5
        assert t.height_m == pytest.approx(float(cam.center[2]), abs=1e-6)
        assert -30 < t.tilt_deg[0] < -15  # these cameras look down 18-25 degrees


def test_calibration_problems_are_one_sentence(shared_dir, tmp_path):
    path = shared_dir / "media" / "pose2sim-demo" / "Calib.qca.txt"
    with pytest.raises(ValueError, match="no camera named 'cam09'; it has cam01, cam02, cam03, cam04"):
        W.camera_from_calibration(path, "cam09")
    with pytest.raises(ValueError, match="holds 4 cameras .* choose one with --camera-name"):
        W.camera_from_calibration(path)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[camera]]\nname = "c"\nwidth = 640\nheight = 480\nfx = 500.0\nfy = 500.0\ncx = 320.0\n'
                   'cy = 240.0\nR = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]\nt = [0.0, 0.0, 3.0]\n')
    with pytest.raises(ValueError, match="R must be a rotation matrix"):  # the reader already refuses it
        W.camera_from_calibration(bad)


@pytest.mark.parametrize("flags,message", [
    (dict(pitch_deg=120.0), "--camera-pitch must be between -90 and 90 degrees, got 120"),
    (dict(roll_deg=float("nan")), "--camera-roll must be a finite number"),
    (dict(height_m=-1.5), "--camera-height must be more than 0"),
])
def test_impossible_tilt_flags_are_one_sentence(flags, message):
    with pytest.raises(ValueError, match=message):
        W.TiltFlags(**flags)


def _run_estimator(est: W.WorldEstimator, joints_cam: np.ndarray, conf: float | np.ndarray = 1.0, start: int = 0):
    """Feed frames ``start``, ``start + 1``, ... at 30 fps; the transforms after each."""
    out = []
    c = np.broadcast_to(np.asarray(conf, np.float64), joints_cam.shape[:2])
    for k, j in enumerate(joints_cam):
        out.append(est.update([1], j[None], c[k][None], (start + k) * DT_NS))
    return out


def _angle(a, b) -> float:
    return math.degrees(math.acos(float(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


@pytest.mark.parametrize("pitch,roll,height", [(-30, 10, 2.2), (-15, -18, 1.5), (5, 0, 0.8)])
def test_up_and_height_are_estimated_from_a_walking_person(walk, pitch, roll, height):
    cam = _camera(pitch, roll, height, target_xz=tuple(walk[:, 0, [0, 2]].mean(axis=0)))
    est = W.WorldEstimator()
    out = _run_estimator(est, cam.world_to_camera(walk[:150]))
    late = out[int(2 * FPS):]
    assert max(_angle(t.up, _true_up(cam)) for t in late) < 5.0
    assert abs(late[-1].height_m - height) < 0.10
    assert late[-1].source == "estimated" and late[-1].floor_seen and late[-1].confidence > 0.3


def test_a_person_lying_down_does_not_flip_the_world(walk):
    cam = _camera(-20, 8, 1.8, target_xz=tuple(walk[:, 0, [0, 2]].mean(axis=0)))
    est = W.WorldEstimator()
    settled = _run_estimator(est, cam.world_to_camera(walk[:90]))[-1]
    # the same person lying on the floor: the pose turned 90 degrees about x, pelvis 0.15 m up
    lying = walk[90:240] - walk[90:240, :1]
    lying = lying @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float).T + walk[90:240, :1] * [1, 0, 1] + [0, 0.15, 0]
    after = _run_estimator(est, cam.world_to_camera(lying), start=90)
    assert max(_angle(t.up, settled.up) for t in after) < 2.0


def test_without_visible_feet_the_height_is_uncertain_and_the_last_floor_is_kept(walk):
    cam = _camera(-20, 0, 1.6, target_xz=tuple(walk[:, 0, [0, 2]].mean(axis=0)))
    joints = cam.world_to_camera(walk[:240])
    conf = np.ones(joints.shape[:2])
    conf[:, [2, 3, 5, 6]] = 0.0  # knees and ankles cut off by the frame's bottom edge
    blind = _run_estimator(W.WorldEstimator(), joints, conf)[-1]
    assert not blind.floor_seen and blind.height_confidence <= 0.2
    est = W.WorldEstimator()
    seen = _run_estimator(est, joints[:120])[-1]
    conf[:120] = 1.0
    later = _run_estimator(est, joints[120:], conf[120:], start=120)[-1]
    assert later.floor_seen and abs(later.height_m - 1.6) < 0.08  # the floor seen before, not the fallback
    assert later.height_confidence < seen.height_confidence


def _skate(ankles: np.ndarray, contact: np.ndarray) -> float:
    """Mean horizontal ankle displacement per frame (m) over frames where the foot truly rests."""
    step = np.linalg.norm(np.diff(ankles[..., [0, 2]], axis=0), axis=-1)
    return float(step[contact[1:] & contact[:-1]].mean())


def test_contact_locks_resting_feet_keeps_them_on_the_floor_and_walks_the_root(walk):
    rng = np.random.default_rng(3)
    # the lifter's typical errors: a slow root drift and per-frame jitter, and a body 4 cm too low
    drift = np.cumsum(rng.normal(0, 0.004, (len(walk), 1, 3)), axis=0)
    noisy = walk + drift + rng.normal(0, 0.003, walk.shape) - [0, 0.04, 0]
    solver = ContactSolver()
    out, contacts = [], []
    for k, j in enumerate(noisy):
        shift, c = solver([5], j[None], k * DT_NS)
        out.append(j + shift[0])
        contacts.append(c[0])
    out, contacts = np.asarray(out), np.asarray(contacts)
    ankles_true = walk[:, [6, 3]]
    speed = np.linalg.norm(np.diff(ankles_true, axis=0), axis=-1) * FPS
    resting = np.concatenate([np.zeros((1, 2), bool), speed < 0.2]) & (ankles_true[..., 1] < W.ANKLE_HEIGHT_M + 0.03)
    for f in range(2):
        assert _skate(out[:, [6, 3][f]], resting[:, f]) < 0.5 * _skate(noisy[:, [6, 3][f]], resting[:, f])
        assert contacts[resting[:, f], f].mean() > 0.6 and contacts[~resting[:, f], f].mean() < 0.4
    assert out[:, [3, 6], 1].min() >= W.ANKLE_HEIGHT_M - 1e-9  # no foot below the floor
    travelled = np.linalg.norm(out[-1, 0, [0, 2]] - out[0, 0, [0, 2]])
    assert travelled == pytest.approx(np.linalg.norm(walk[-1, 0, [0, 2]] - walk[0, 0, [0, 2]]), rel=0.15)


def test_a_jump_lifts_both_feet(walk):
    stand = np.repeat(walk[:1], 60, axis=0)
    lift = np.concatenate([np.zeros(30), 0.3 * np.sin(np.linspace(0, np.pi, 12)), np.zeros(18)])
    jump = stand + lift[:, None, None] * [0, 1, 0]
    solver = ContactSolver()
    heights = []
    for k, j in enumerate(jump):
        shift, c = solver([1], j[None], k * DT_NS)
        heights.append((j + shift[0])[[3, 6], 1].min())
    heights = np.asarray(heights)
    assert heights[35:37].min() > W.ANKLE_HEIGHT_M + 0.2  # mid-air: both feet well off the floor
    assert heights[:30].max() < W.ANKLE_HEIGHT_M + 0.01 and heights[-5:].max() < W.ANKLE_HEIGHT_M + 0.01


def test_body_stage_publishes_fixed_bones_that_are_the_rotations_fk_in_either_frame(walk):
    cam = _camera(-22, 12, 1.9, target_xz=tuple(walk[:, 0, [0, 2]].mean(axis=0)))
    rng = np.random.default_rng(1)
    joints_cam = cam.world_to_camera(walk[:150]) + rng.normal(0, 0.01, (150, 17, 3))  # a stretching skeleton
    keypoints = np.ones((150, 17, 3))
    stages = {f: BodyStage(f, contacts=ContactSolver()) for f in ("world", "camera")}
    frames = {f: [s([4], j[None], kp[None], k * DT_NS) for k, (j, kp) in enumerate(zip(joints_cam, keypoints))]
              for f, s in stages.items()}
    late = slice(int(2.2 * FPS), None)
    world = np.stack([b.joints[0] for b in frames["world"]]).astype(np.float64)
    for a, b in ((11, 12), (12, 13), (1, 2), (2, 3), (0, 7), (8, 9)):
        assert np.linalg.norm(world[late, a] - world[late, b], axis=-1).std() < 1e-4  # float32 only
    for b in frames["world"][late]:
        np.testing.assert_allclose(canonical_from_rows(b.rig.rows, frame="rows"), b.joints, atol=1e-5)
    for b in frames["camera"][late]:
        np.testing.assert_allclose(canonical_from_rows(b.rig.rows), b.joints, atol=1e-5)
    # the two frames describe the same bodies, related by the published transform
    for bw, bc in zip(frames["world"][late], frames["camera"][late]):
        np.testing.assert_allclose(bc.world.to_world(bc.joints), bw.joints, atol=1e-4)
    assert frames["world"][-1].frame_of_reference == "world" and frames["camera"][-1].frame_of_reference == "camera"
    # upright in the world: thorax above the ankles, the floor under the feet
    axis = world[late, 8] - 0.5 * (world[late, 3] + world[late, 6])
    lean = np.degrees(np.arccos(axis[:, 1] / np.linalg.norm(axis, axis=1)))
    true_axis = walk[late.start:150, 8] - 0.5 * (walk[late.start:150, 3] + walk[late.start:150, 6])
    true_lean = np.degrees(np.arccos(true_axis[:, 1] / np.linalg.norm(true_axis, axis=1)))
    assert abs(np.median(lean) - np.median(true_lean)) < 5.0
    assert world[late][:, [3, 6], 1].min() >= W.ANKLE_HEIGHT_M - 1e-5


# --- realtime run's flags ------------------------------------------------------------------------


@pytest.mark.parametrize("flags,message", [
    (["--camera-pitch", "120"], "--camera-pitch must be between -90 and 90 degrees, got 120"),
    (["--camera-height", "-1"], "--camera-height must be more than 0"),
    (["--frame", "floor"], "--frame must be world or camera, got 'floor'"),
    (["--camera-name", "cam04"], "give the file too"),
    (["--calibration", "CALIB"], "holds 4 cameras (cam01, cam02, cam03, cam04): choose one with --camera-name"),
    (["--calibration", "CALIB", "--camera-name", "cam09"], "has no camera named 'cam09'"),
    (["--calibration", "CALIB", "--camera-name", "cam04", "--camera-roll", "3"], "drop --camera-roll"),
])
def test_bad_world_flags_are_one_sentence_before_anything_opens(flags, message, shared_dir, capsys):
    from realtime.cli import main

    calib = str(shared_dir / "media" / "pose2sim-demo" / "Calib.qca.txt")
    flags = [calib if f == "CALIB" else f for f in flags]
    # a camera index that cannot exist: had the checks come after opening the source, the error would name it
    assert main(["run", "--camera", "97", "--no-view", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "camera 97" not in err


@pytest.mark.parametrize("name", ["cam01", "cam04"])
def test_run_with_a_calibration_publishes_the_true_up_direction(name, shared_dir):
    from engines.calibration import load_calibration
    from realtime.cli import _body_stage, _check_stream_flags, build_parser

    calib = shared_dir / "media" / "pose2sim-demo" / "Calib.qca.txt"
    args = build_parser().parse_args(["run", "--video", "x.mp4", "--calibration", str(calib), "--camera-name", name])
    _check_stream_flags(args)
    stage = _body_stage(args)
    person = np.zeros((1, 17, 3)) + [0, 0, 4]
    t = stage([1], person, np.ones((1, 17, 3)), 0).world
    cam = next(c for c in load_calibration(calib) if c.name == name)
    true_up = np.asarray(cam.R) @ np.array([0.0, 0.0, 1.0])
    assert _angle(t.up, true_up) < 0.5 and t.source == "calibration" and t.confidence == 1.0
    assert t.height_m == pytest.approx(float(cam.center[2]), abs=0.005)
    assert t.describe()["source"] == "calibration"


def test_given_height_is_kept_and_the_tilt_estimated(walk):
    cam = _camera(-20, 5, 1.7, target_xz=tuple(walk[:, 0, [0, 2]].mean(axis=0)))
    est = W.WorldEstimator(fixed_height_m=1.7)
    t = _run_estimator(est, cam.world_to_camera(walk[:90]))[-1]
    assert t.height_m == 1.7 and t.height_source == "given" and t.up_source == "estimated" and t.source == "estimated"
    assert _angle(t.up, _true_up(cam)) < 5.0
