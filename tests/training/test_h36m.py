"""Human3.6M (VideoPose3D archive format) adapter, on tiny archives built here exactly as
VideoPose3D writes them (``np.savez_compressed`` of pickled dicts)."""

from __future__ import annotations

import os
import pickle
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engines.skeleton import CANONICAL
from training.h36m import (
    H36M32_TO_17,
    H36M_TRAIN_SUBJECTS,
    H36M_VALIDATION_SUBJECTS,
    H36MFormatError,
    h36m_to_archive,
    load_h36m_2d,
    load_h36m_3d,
    read_npz_restricted,
    resample_linear,
    zup_to_yup,
)
from training.motion import load_archive

SUBJECTS = ("S9", "S11")  # natural order S9 < S11, string order the other way round
ACTIONS = ("Walking 1", "Directions")
FRAMES = {("S9", "Walking 1"): 31, ("S9", "Directions"): 40, ("S11", "Walking 1"): 26, ("S11", "Directions"): 35}
EXTRA_2D = (0, 1, 3, 2)  # detector sequences run a few frames past the mocap, per camera
SYMMETRY = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]

# The 17 used joints of Human3.6M's 32, as a standing person in the z-up world (metres).
_USED_ZUP = {
    0: (0.0, 0.0, 0.95), 1: (-0.13, 0.0, 0.93), 2: (-0.14, 0.02, 0.50), 3: (-0.15, 0.0, 0.08),
    6: (0.13, 0.0, 0.93), 7: (0.14, 0.02, 0.50), 8: (0.15, 0.0, 0.08), 12: (0.0, 0.0, 1.20),
    13: (0.0, 0.0, 1.45), 14: (0.0, 0.10, 1.58), 15: (0.0, 0.0, 1.75), 17: (0.18, 0.0, 1.45),
    18: (0.20, 0.0, 1.18), 19: (0.21, 0.02, 0.93), 25: (-0.18, 0.0, 1.45), 26: (-0.20, 0.0, 1.18),
    27: (-0.21, 0.02, 0.93),
}  # fmt: skip


def _template32() -> np.ndarray:
    t = np.full((32, 3), 9.0)  # unused joints: far away, so picking one shows
    for j, p in _USED_ZUP.items():
        t[j] = p
    return t


def _clip32(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    drift = np.cumsum(rng.normal(0, 0.01, (frames, 1, 3)), axis=0) * [1, 1, 0]  # walk on the floor
    jitter = rng.normal(0, 0.005, (frames, 32, 3))
    return _template32()[None] + drift + jitter


def _positions_3d(joints: int = 32) -> dict:
    out: dict = {}
    for s, subject in enumerate(SUBJECTS):
        out[subject] = {}
        for a, action in enumerate(ACTIONS):
            clip = _clip32(FRAMES[(subject, action)], seed=10 * s + a)
            out[subject][action] = clip if joints == 32 else clip[:, :joints]
    return out


def _positions_2d(positions_3d: dict, short: bool = False) -> dict:
    out: dict = {}
    for subject, actions in positions_3d.items():
        out[subject] = {}
        for action, pos in actions.items():
            cams = []
            for c, extra in enumerate(EXTRA_2D):
                n = len(pos) + (-2 if short and c == 1 else extra)
                cams.append((np.arange(n * 17 * 2, dtype=np.float32).reshape(n, 17, 2) + 1000 * c))
            out[subject][action] = cams
    return out


def _meta(**changes) -> dict:
    return {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": SYMMETRY, **changes}


@pytest.fixture
def raw3d() -> dict:
    return _positions_3d()


@pytest.fixture
def file3d(tmp_path, raw3d) -> Path:
    path = tmp_path / "data_3d_h36m.npz"
    np.savez_compressed(path, positions_3d=raw3d)  # as VideoPose3D's prepare_data_h36m.py
    return path


@pytest.fixture
def file2d(tmp_path, raw3d) -> Path:
    path = tmp_path / "data_2d_h36m_gt.npz"
    np.savez_compressed(path, positions_2d=_positions_2d(raw3d), metadata=_meta())
    return path


def _write_npz_pickled(path: Path, arrays: dict, protocol: int) -> None:
    """An npz whose object members are pickled with ``protocol`` (old numpy used 2)."""
    with zipfile.ZipFile(path, "w") as zf:
        for key, obj in arrays.items():
            arr = np.asanyarray(obj)
            with zf.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(arr))
                pickle.dump(arr, fh, protocol=protocol)


# --- 3D -------------------------------------------------------------------------------------------


def test_selects_the_17_videopose3d_joints_and_converts_to_y_up(file3d, raw3d):
    data = load_h36m_3d(file3d)
    assert list(data) == ["S9", "S11"]
    assert set(data["S9"]) == set(ACTIONS)
    idx = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
    assert list(H36M32_TO_17) == idx
    for subject, action in FRAMES:
        got = data[subject][action]
        raw = raw3d[subject][action]
        assert got.shape == (FRAMES[(subject, action)], 17, 3) and got.dtype == np.float32
        # y-up: (x, y, z) -> (x, z, -y)
        want = np.stack([raw[:, idx, 0], raw[:, idx, 2], -raw[:, idx, 1]], axis=-1)
        np.testing.assert_allclose(got, want, atol=1e-6)
    pose = data["S9"]["Walking 1"][0]
    assert np.all(np.abs(pose) < 5)  # no unused (far away) joint was picked
    j = {n: i for i, n in enumerate(CANONICAL.joint_names)}
    # the head, high above the z-up floor, is high in y; feet are near y = 0
    assert pose[j["head"], 1] > 1.6 and abs(pose[j["left_ankle"], 1]) < 0.15
    assert pose[j["left_shoulder"], 0] > 0 > pose[j["right_shoulder"], 0]  # sides kept (x unchanged)


def test_zup_to_yup_is_a_proper_rotation():
    p = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    np.testing.assert_array_equal(zup_to_yup(p), [[1.0, 3.0, -2.0], [0.0, 5.0, -0.0]])
    basis = zup_to_yup(np.eye(3))  # rows: images of x, y, z
    assert np.linalg.det(basis) == pytest.approx(1.0)  # right-handed stays right-handed
    np.testing.assert_array_equal(basis[2], [0, 1, 0])  # z up becomes y up


def test_accepts_arrays_that_already_hold_17_joints(tmp_path, raw3d):
    path = tmp_path / "d17.npz"
    idx = list(H36M32_TO_17)
    np.savez_compressed(path, positions_3d={s: {a: p[:, idx] for a, p in acts.items()} for s, acts in raw3d.items()})
    got = load_h36m_3d(path)["S11"]["Directions"]
    np.testing.assert_allclose(got, zup_to_yup(raw3d["S11"]["Directions"][:, idx]), atol=1e-6)


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_reads_pickles_of_older_and_newer_numpy(tmp_path, raw3d, protocol):
    path = tmp_path / f"p{protocol}.npz"
    _write_npz_pickled(path, {"positions_3d": raw3d}, protocol)
    got = load_h36m_3d(path)["S9"]["Walking 1"]
    np.testing.assert_allclose(got, zup_to_yup(raw3d["S9"]["Walking 1"][:, list(H36M32_TO_17)]), atol=1e-6)


# --- resampling and the archive -------------------------------------------------------------------


def test_resample_50_to_30_fps_is_exact_at_coincident_times():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(31, 17, 3)).astype(np.float32)  # 0.6 s at 50 fps
    y = resample_linear(x, 50.0, 30.0)
    assert y.shape == (19, 17, 3) and y.dtype == np.float32  # t = 0 .. 0.6 s in 1/30 s steps
    for k in range(0, 19, 3):  # t = 0, 0.1, 0.2 ... s: source frames 0, 5, 10 ...
        np.testing.assert_array_equal(y[k], x[5 * k // 3])
    # t = 1/30 s lies 2/3 of the way from source frame 1 to frame 2
    np.testing.assert_allclose(y[1], x[1] / 3 + 2 * x[2] / 3, atol=1e-6)
    np.testing.assert_allclose(y[2], 2 * x[3] / 3 + x[4] / 3, atol=1e-6)
    assert len(resample_linear(x[:30], 50, 30)) == 18  # never past the last source frame
    ramp = np.arange(50, dtype=np.float64)[:, None]  # linear in time stays on the line
    np.testing.assert_allclose(resample_linear(ramp, 50, 30)[:, 0], np.arange(30) * 50 / 30)


def test_h36m_to_archive_writes_a_loadable_archive(tmp_path, file3d):
    out = tmp_path / "arch" / "h36m.npz"
    returned = h36m_to_archive(file3d, out, fps=30.0)
    archive = load_archive(out)
    assert archive.clip_names == returned.clip_names
    assert archive.clip_names == ("S9/Directions", "S9/Walking 1", "S11/Directions", "S11/Walking 1")
    assert archive.clip_groups == ("S9", "S9", "S11", "S11")
    assert archive.fps == 30.0 and archive.joint_names == CANONICAL.joint_names
    data3d = load_h36m_3d(file3d)
    for c, name in enumerate(archive.clip_names):
        subject, action = name.split("/")
        frames = FRAMES[(subject, action)]
        assert archive.clip_joints(c).shape[0] == (frames - 1) * 3 // 5 + 1, name
        np.testing.assert_array_equal(archive.clip_joints(c)[3], data3d[subject][action][5])
    with np.load(out) as raw:
        np.testing.assert_array_equal(raw["clip_fps_source"], [50.0] * 4)
        assert list(raw["skeletons"]) == ["h36m17"] * 4
        np.testing.assert_array_equal(raw["parents"], CANONICAL.parents)


def test_h36m_to_archive_keeps_only_the_named_subjects(tmp_path, file3d):
    archive = h36m_to_archive(file3d, tmp_path / "val.npz", fps=25.0, subjects=["S11"])
    assert archive.clip_names == ("S11/Directions", "S11/Walking 1") and archive.fps == 25.0
    assert archive.clip_slice(1).stop - archive.clip_slice(1).start == (26 - 1) // 2 + 1
    with pytest.raises(H36MFormatError, match="S1"):
        h36m_to_archive(file3d, tmp_path / "train.npz", subjects=H36M_TRAIN_SUBJECTS)
    assert not (tmp_path / "train.npz").exists()


def test_split_constants():
    assert H36M_TRAIN_SUBJECTS == ("S1", "S5", "S6", "S7", "S8")
    assert H36M_VALIDATION_SUBJECTS == ("S9", "S11")


# --- 2D -------------------------------------------------------------------------------------------


def test_2d_loads_and_trims_to_the_3d_length(file2d, file3d, raw3d):
    untrimmed, meta = load_h36m_2d(file2d)
    assert meta["layout_name"] == "h36m" and meta["num_joints"] == 17
    assert meta["keypoints_symmetry"] == SYMMETRY
    cams = untrimmed["S9"]["Walking 1"]
    assert [len(c) for c in cams] == [31 + e for e in EXTRA_2D]
    trimmed, _ = load_h36m_2d(file2d, load_h36m_3d(file3d))
    for (subject, action), frames in FRAMES.items():
        views = trimmed[subject][action]
        assert len(views) == 4 and all(v.shape == (frames, 17, 2) for v in views)
        for c, v in enumerate(views):
            np.testing.assert_array_equal(v, _positions_2d(raw3d)[subject][action][c][:frames])


def test_2d_shorter_than_3d_is_an_error(tmp_path, raw3d, file3d):
    path = tmp_path / "data_2d_h36m_short.npz"
    np.savez_compressed(path, positions_2d=_positions_2d(raw3d, short=True), metadata=_meta())
    with pytest.raises(H36MFormatError, match="camera 1 has .* fewer"):
        load_h36m_2d(path, load_h36m_3d(file3d))


def test_2d_metadata_must_be_the_h36m_layout(tmp_path, raw3d):
    path = tmp_path / "coco.npz"
    np.savez_compressed(path, positions_2d=_positions_2d(raw3d), metadata=_meta(layout_name="coco"))
    with pytest.raises(H36MFormatError, match="coco") as err:
        load_h36m_2d(path)
    assert str(path) in str(err.value)


# --- security: restricted unpickling --------------------------------------------------------------


def _make_marker(path: str) -> None:  # what a malicious pickle would run
    Path(path).write_text("pwned")


class _EvilCall:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_make_marker, (str(self.marker),))


class _EvilShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("evil", [_EvilCall, _EvilShell])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, raw3d, evil):
    marker = tmp_path / "marker"
    bad3d = {**raw3d, "S9": {**raw3d["S9"], "Walking 1": evil(marker)}}
    path3d = tmp_path / "data_3d_h36m.npz"
    np.savez_compressed(path3d, positions_3d=bad3d)
    assert not marker.exists()
    with pytest.raises(H36MFormatError, match="not allowed") as err:
        load_h36m_3d(path3d)
    assert str(path3d) in str(err.value)
    assert ("system" if evil is _EvilShell else "_make_marker") in str(err.value)
    with pytest.raises(H36MFormatError):
        h36m_to_archive(path3d, tmp_path / "out.npz")
    path2d = tmp_path / "data_2d_h36m_evil.npz"
    np.savez_compressed(path2d, positions_2d=_positions_2d(raw3d), metadata=_meta(layout_name=evil(marker)))
    with pytest.raises(H36MFormatError, match="not allowed"):
        load_h36m_2d(path2d)
    assert not marker.exists() and not (tmp_path / "out.npz").exists()
    if evil is _EvilCall:  # the unrestricted way really runs it: the payload is live
        with np.load(path3d, allow_pickle=True) as data:
            data["positions_3d"]
        assert marker.exists()


def test_numpy_globals_outside_the_allow_list_are_refused(tmp_path):
    target = tmp_path / "x.npy"

    class Sneaky:
        def __reduce__(self):
            return (np.save, (str(target), np.zeros(1)))

    path = tmp_path / "sneaky.npz"
    np.savez_compressed(path, positions_3d={"S1": {"A": Sneaky()}})
    with pytest.raises(H36MFormatError, match="numpy.*save.*not allowed"):
        read_npz_restricted(path)
    assert not target.exists()


# --- user errors ----------------------------------------------------------------------------------


def _raises_naming(path: Path, match: str, fn=load_h36m_3d) -> None:
    with pytest.raises(H36MFormatError, match=match) as err:
        fn(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg


def test_missing_key(tmp_path, raw3d):
    path = tmp_path / "wrong_key.npz"
    np.savez_compressed(path, positions=raw3d)
    _raises_naming(path, r"has no 'positions_3d' array \(arrays: positions\)")
    _raises_naming(path, "has no 'positions_2d', 'metadata' array", load_h36m_2d)


def test_wrong_joint_count(tmp_path, raw3d):
    path = tmp_path / "j25.npz"
    np.savez_compressed(path, positions_3d={"S1": {"Walking": raw3d["S9"]["Walking 1"][:, :25]}})
    _raises_naming(path, r"S1/Walking must be \(frames, 32 or 17, 3\), got \(31, 25, 3\)")
    path2 = tmp_path / "2d_j16.npz"
    np.savez_compressed(path2, positions_2d={"S1": {"Walking": [np.zeros((5, 16, 2))]}}, metadata=_meta())
    _raises_naming(path2, "camera 0 must be", load_h36m_2d)


def test_not_a_zip_missing_file_and_empty_dict(tmp_path):
    text = tmp_path / "data_3d_h36m.npz"
    text.write_text("not a zip at all\n")
    _raises_naming(text, "not an .npz")
    _raises_naming(tmp_path / "absent.npz", "does not exist")
    empty = tmp_path / "empty.npz"
    np.savez_compressed(empty, positions_3d={})
    _raises_naming(empty, "empty")
    plain = tmp_path / "plain.npz"
    np.savez_compressed(plain, positions_3d=np.zeros((3, 32, 3)))
    _raises_naming(plain, "not a pickled dict")


@pytest.mark.slow
def test_prepare_cli_converts_a_videopose3d_archive(tmp_path):
    import subprocess
    import sys

    from training.motion import load_archive

    src = tmp_path / "data_3d_h36m.npz"
    rng = np.random.default_rng(0)
    np.savez_compressed(src, positions_3d={"S1": {"Walking": rng.normal(size=(60, 32, 3)).astype(np.float32)},
                                           "S9": {"Sitting 1": rng.normal(size=(45, 32, 3)).astype(np.float32)}})
    out = tmp_path / "h36m.npz"
    res = subprocess.run([sys.executable, "-m", "training.cli", "prepare", str(src), "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    archive = load_archive(out)
    assert archive.clip_names == ("S1/Walking", "S9/Sitting 1") and archive.clip_groups == ("S1", "S9")
    assert len(archive.joints3d) == 36 + 27  # 60 and 45 frames at 50 fps -> 30 fps
