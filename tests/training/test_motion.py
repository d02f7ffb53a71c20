"""`training prepare` on the real CMU mocap: every clip imports, bodies are plausible."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from engines.skeleton import CANONICAL
from training.motion import MotionArchiveError, load_archive
from tests.conftest import MOCAP

J = {n: i for i, n in enumerate(CANONICAL.joint_names)}
RIGID = [("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
         ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
         ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_hip", "right_hip"),
         ("neck_nose", "head")]  # fmt: skip


def _index_rows() -> list[dict[str, str]]:
    with open(MOCAP / "index.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cmu(cmu_archive_path):
    return load_archive(cmu_archive_path)


def _seg(archive, c: int, a: str, b: str) -> np.ndarray:
    j = archive.clip_joints(c)
    return np.linalg.norm(j[:, J[a]] - j[:, J[b]], axis=-1)


@pytest.mark.slow
def test_every_clip_imports(cmu):
    rows = _index_rows()
    expected = {r["file"].removesuffix(".bvh.gz") for r in rows}
    assert set(cmu.clip_names) == expected and len(rows) == 169
    assert cmu.joint_names == CANONICAL.joint_names and cmu.fps == 30.0
    assert np.isfinite(cmu.joints3d).all()
    # duration survives resampling: 120 fps header clips (salsa really 60 fps)
    for row in rows:
        c = cmu.clip_names.index(row["file"].removesuffix(".bvh.gz"))
        frames = cmu.clip_slice(c).stop - cmu.clip_slice(c).start
        seconds = float(row["seconds_at_header_fps"]) * (2.0 if row["group"] == "salsa" else 1.0)
        assert frames == pytest.approx(seconds * 30, abs=7), row["file"]  # minus a lead-in <= 12 frames


@pytest.mark.slow
def test_subject_heights_are_human(cmu):
    for c in range(cmu.num_clips):
        leg = np.median(_seg(cmu, c, "left_hip", "left_knee") + _seg(cmu, c, "left_knee", "left_ankle"))
        trunk = np.percentile(np.linalg.norm(cmu.clip_joints(c)[:, J["head"]] - cmu.clip_joints(c)[:, J["pelvis"]], axis=-1), 95)
        stature = leg + trunk + 0.08  # ankle joint to sole
        assert 1.4 <= stature <= 2.0, (cmu.clip_names[c], stature)


@pytest.mark.slow
def test_left_and_right_bones_agree(cmu):
    for c in range(cmu.num_clips):
        for a, b in RIGID[:8]:
            la = np.median(_seg(cmu, c, a, b))
            ra = np.median(_seg(cmu, c, a.replace("left", "right"), b.replace("left", "right")))
            assert abs(la - ra) / la < 0.03, (cmu.clip_names[c], a, b, la, ra)


@pytest.mark.slow
def test_bone_lengths_are_constant_within_each_clip(cmu):
    for c in range(cmu.num_clips):
        for a, b in RIGID:
            seg = _seg(cmu, c, a, b)
            assert seg.std() / seg.mean() < 0.005, (cmu.clip_names[c], a, b)


@pytest.mark.slow
def test_walking_pelvis_speed(cmu):
    walks = [r["file"].removesuffix(".bvh.gz") for r in _index_rows() if r["description"].strip() == "walk"]
    assert len(walks) >= 3
    for name in walks:
        pelvis = cmu.clip_joints(cmu.clip_names.index(name))[:, J["pelvis"]]
        ground = pelvis[:, [0, 2]]  # y is up
        speed = np.linalg.norm(ground[-1] - ground[0]) / ((len(ground) - 1) / cmu.fps)
        assert 0.7 <= speed <= 2.0, (name, speed)


@pytest.mark.slow
def test_salsa_is_read_at_60_fps(cmu):
    """At 60 fps the salsa pelvis travels like the other dances (~0.5 m/s), not twice as fast."""
    speeds = {}
    for group in ("salsa", "05"):
        vals = []
        for c, g in enumerate(cmu.clip_groups):
            if g == group:
                p = cmu.clip_joints(c)[:, J["pelvis"], [0, 2]]
                vals.append(np.linalg.norm(np.diff(p, axis=0), axis=-1).mean() * cmu.fps)
        speeds[group] = np.median(vals)
    assert speeds["salsa"] < 0.8


@pytest.mark.slow
def test_canonical_geometry_on_real_mocap(cmu):
    c = cmu.clip_names.index("02/02_01")
    j = cmu.clip_joints(c)
    assert np.median(np.linalg.norm(j[:, J["left_hip"]] - j[:, J["right_hip"]], axis=-1)) == pytest.approx(0.176, abs=0.005)
    up = j[:, J["head"], 1] - j[:, J["neck_nose"], 1]
    assert np.all(up > 0.05)  # crown above the nose while walking
    forward = np.cross(j[:, J["left_hip"]] - j[:, J["right_hip"]], [0.0, 1.0, 0.0])
    nose_ahead = np.einsum("ij,ij->i", j[:, J["neck_nose"]] - j[:, J["thorax"]], forward)
    assert np.all(nose_ahead > 0.0)  # the face looks forward


# ----- bad input -------------------------------------------------------------------------------

_TINY = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT leg
  {
    OFFSET 0 -90 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -80 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 100 0 0 0 0 0 0 0
0 100 0 0 0 0 0 0 0
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.cli", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_prepare_rejects_an_unknown_skeleton_without_writing(tmp_path):
    bvh = tmp_path / "odd.bvh"
    bvh.write_text(_TINY)
    out = tmp_path / "m.npz"
    res = _run("prepare", str(bvh), "--out", str(out), "--quiet")
    assert res.returncode == 2
    assert "odd.bvh" in res.stderr and "unknown skeleton" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [bvh]


@pytest.mark.slow
def test_prepare_rejects_a_truncated_file_naming_it(tmp_path):
    src = (MOCAP / "02" / "02_01.bvh.gz")
    import gzip

    text = gzip.open(src, "rt").read()
    bad = tmp_path / "cut.bvh"
    bad.write_text(text[: int(len(text) * 0.7)])
    res = _run("prepare", str(bad), "--out", str(tmp_path / "m.npz"), "--quiet")
    assert res.returncode == 2 and "cut.bvh" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.slow
def test_prepare_missing_input(tmp_path):
    res = _run("prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "m.npz"))
    assert res.returncode == 2 and "nope" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_corrupt_archive_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(MotionArchiveError, match="bad.npz"):
        load_archive(path)


def test_archive_of_another_layout_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, positions=np.zeros((3, 17, 3)))
    with pytest.raises(MotionArchiveError, match="missing joints3d"):
        load_archive(path)


def test_standard_cmu31_skeleton_maps_to_a_plausible_body():
    from training.motion import load_clip
    from tests.conftest import REPO

    joints, recipe, fps = load_clip(REPO / "tests" / "fixtures" / "tiny" / "cmu31.bvh", fps=0, drop_lead_in=False)
    assert recipe == "cmu31"
    j = joints[0]
    assert 0.12 < np.linalg.norm(j[J["left_hip"]] - j[J["right_hip"]]) < 0.30
    stature = j[J["head"], 1] - min(j[J["left_ankle"], 1], j[J["right_ankle"], 1]) + 0.08
    assert 1.4 < stature < 2.0
    assert j[J["head"], 1] > j[J["neck_nose"], 1] > j[J["thorax"], 1] > j[J["pelvis"], 1] > j[J["left_knee"], 1]
