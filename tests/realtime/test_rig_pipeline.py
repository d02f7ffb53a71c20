"""`realtime run --rotations --vmc --record take.bvh` on real footage (cam04, real MediaPipe and
lifter), then `training prepare take.bvh` reads the take back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from engines.skeleton import CANONICAL, HUMANOID_BONES
from realtime import rig
from tests.realtime.rig_checks import assert_fk_reproduces
from tests.realtime.test_pipeline_e2e import _Collector, _free_port
from tests.realtime.test_rig_outputs import _check_vmc_fk, _OscCollector

pytestmark = pytest.mark.slow  # every test runs `realtime run` in a subprocess

FPS = 20.0  # cam04.mp4 (60 fps) replayed slower: the take's Frame Time


@pytest.fixture(scope="module")
def take(shared_dir, tmp_path_factory):
    """One run of the pipeline with every rig output on; what came out of each."""
    video = shared_dir / "media" / "pose2sim-demo" / "cam04.mp4"
    out = tmp_path_factory.mktemp("take")
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    zmq_msgs = _Collector(endpoint)
    zmq_msgs.start()
    osc = _OscCollector()
    bvh = out / "take.bvh"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The 100-frame clip replayed at FPS frames per second: 5 s of capture clock whatever the
    # machine's speed, so the rig's 2 s of bone-length calibration are followed by seconds of
    # refinement (with --fast it took about 2.4 s here, and a faster machine finished inside them).
    proc = subprocess.run([sys.executable, "-m", "realtime.cli", "run", "--video", str(video), "--fps", str(FPS),
                           "--no-view", "--quiet", "--bind", endpoint, "--rotations", "--vmc", f"127.0.0.1:{osc.port}",
                           "--record", str(bvh)], capture_output=True, text=True, env=env, timeout=300, check=False)
    time.sleep(0.5)
    zmq_msgs.stop.set()
    zmq_msgs.join(5)
    osc.close()
    assert proc.returncode == 0, proc.stderr
    assert not zmq_msgs.errors
    return {"messages": zmq_msgs.messages, "vmc": osc.bundles, "bvh": bvh, "dir": out}


def test_world_stream_joints_are_the_rotations_forward_kinematics_with_fixed_bones(take):
    msgs = [m for m in take["messages"] if len(m.joints)]
    assert len(msgs) >= 90 and all(m.header["v"] == 3 and m.rig is not None for m in take["messages"])
    assert all(m.header["frame_of_reference"] == "world" for m in msgs)
    rows = np.concatenate([m.rig[:1] for m in msgs]).astype(np.float64)
    joints = np.concatenate([m.joints[:1] for m in msgs]).astype(np.float64)
    # the published joints are the forward kinematics of the published rotations (float32 on the wire)
    err = np.linalg.norm(rig.canonical_from_rows(rows, frame="rows") - joints, axis=-1)
    assert err.max() < 0.001, f"v3 joints differ from FK of the rotations by {err.max() * 1e3:.2f} mm"
    # bone lengths: fixed once the calibration seconds (capture clock) are over
    t = np.array([m.header["t_capture_ns"] for m in msgs], dtype=np.float64) / 1e9
    late = t - t[0] > rig.RigConfig().calibration_s + 0.1
    assert late.sum() >= 10, "too few frames after calibration to check the bones"
    for a, b in CANONICAL.edges:
        length = np.linalg.norm(joints[late, a] - joints[late, b], axis=-1)
        assert length.std() < 0.001, f"bone {a}-{b} length std {length.std() * 1e3:.2f} mm after calibration"
    # standing on the floor: no ankle below its resting height, the lower one on it while standing
    from realtime.world import ANKLE_HEIGHT_M

    ankles = joints[:, [3, 6], 1]
    assert ankles.min() >= ANKLE_HEIGHT_M - 1e-4
    assert np.median(ankles.min(axis=1)) < ANKLE_HEIGHT_M + 0.05


def test_vmc_bundles_from_the_pipeline(take):
    by_pelvis = {tuple(np.round(m.joints[0, 0].astype(np.float64), 4)): m.joints[0]
                 for m in take["messages"] if len(m.joints)}
    bundles = [b for b in take["vmc"] if b["bones"]]
    assert len(bundles) >= 90 and all(set(b["bones"]) == set(HUMANOID_BONES) for b in bundles)
    matched = 0
    for b in bundles:
        hips = np.asarray(b["bones"]["Hips"][:3]) * [-1, 1, 1]  # Unity -> the world frame (the rig's axes)
        joints = by_pelvis.get(tuple(np.round(hips, 4)))
        if joints is not None:
            _check_vmc_fk(b, joints, "pipeline VMC", frame="world")
            matched += 1
    assert matched >= 0.9 * len(bundles)


def _structure(text: str) -> tuple[list[str], int]:
    """A structural check after Blender's BVH importer rules; returns joint names and channel count."""
    tokens = text.split()
    assert tokens[0] == "HIERARCHY" and tokens[1] == "ROOT", tokens[:2]
    names, channels, depth, i = [], 0, 0, 1
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            assert tokens[i + 2] == "{" and tokens[i + 3] == "OFFSET", tokens[i:i + 4]
            [float(v) for v in tokens[i + 4:i + 7]]
            assert tokens[i + 7] == "CHANNELS"
            n = int(tokens[i + 8])
            assert n == (6 if tok == "ROOT" else 3)
            assert all(c in ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
                       for c in tokens[i + 9:i + 9 + n])
            channels += n
            depth += 1
            i += 9 + n
        elif tok == "End":
            assert tokens[i + 1:i + 4] == ["Site", "{", "OFFSET"] and tokens[i + 7] == "}", tokens[i:i + 8]
            i += 8
        elif tok == "}":
            depth -= 1
            i += 1
        else:
            raise AssertionError(f"unexpected token {tok!r} in the hierarchy")
    assert depth == 0, "unbalanced braces"
    return names, channels


def test_bvh_take_is_well_formed_and_reads_back_within_1mm(take):
    text = take["bvh"].read_text()
    names, channels = _structure(text)
    assert names[: len(HUMANOID_BONES)] == list(HUMANOID_BONES) or set(HUMANOID_BONES) <= set(names)
    motion = text.split("MOTION\n", 1)[1].splitlines()
    assert re.fullmatch(r"Frames: \d+", motion[0]) and re.fullmatch(r"Frame Time: 0\.05000000", motion[1])
    frames = int(motion[0].split()[1])
    rows = [line.split() for line in motion[2:] if line.strip()]
    assert len(rows) == frames >= 90 and all(len(r) == channels for r in rows)
    assert not list(take["dir"].glob(".take.bvh.*"))  # atomic: no temporary left behind

    archive = take["dir"] / "back.npz"
    res = subprocess.run([sys.executable, "-m", "training.cli", "prepare", str(take["bvh"]), "--out", str(archive),
                          "--fps", str(FPS), "--quiet"], capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 0, res.stderr
    back = np.load(archive)["joints3d"].astype(np.float64)  # the take's frame (world, y up), metres
    # what the take holds: the published rotations on the take's final skeleton
    msgs = [m for m in take["messages"] if len(m.joints)]
    rig_rows = np.concatenate([m.rig[:1] for m in msgs]).astype(np.float64)
    rig_rows[:, 1:, :3] = rig_rows[-1, 1:, :3]
    published = rig.canonical_from_rows(rig_rows, frame="rows")  # the world frame: y up, the take's frame
    # one BVH frame per source frame from the first published one; a frame the pipeline dropped
    # holds the last published pose, so the take keeps the source's timing
    slot = np.array([m.header["frame"] for m in msgs]) - msgs[0].header["frame"]
    assert back.shape == (slot[-1] + 1, CANONICAL.num_joints, 3) and frames == slot[-1] + 1
    want = published[np.searchsorted(slot, np.arange(frames), side="right") - 1]
    err = np.linalg.norm(back - want, axis=-1)
    assert err.max() < 0.001, f"BVH round trip off by {err.max() * 1e3:.3f} mm"


@pytest.mark.parametrize("args,expect", [
    (["--vmc", "localhost:notaport"], "--vmc expects HOST:PORT"),
    (["--vmc", "no-such-host.invalid:39539"], "cannot resolve host"),
    (["--record", "/proc/posestream/take.bvh"], "cannot record to /proc/posestream/take.bvh"),
    (["--record", "TMPDIR"], "it is a directory"),
])
def test_bad_rig_options_are_one_sentence(args, expect, shared_dir, tmp_path):
    args = [str(tmp_path) if a == "TMPDIR" else a for a in args]
    video = shared_dir / "media" / "pose2sim-demo" / "cam04.mp4"
    res = subprocess.run([sys.executable, "-m", "realtime.cli", "run", "--video", str(video), "--no-view", "--quiet",
                          "--bind", f"tcp://127.0.0.1:{_free_port()}", "--max-frames", "3", *args],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], res.stderr
    assert "Traceback" not in res.stderr
