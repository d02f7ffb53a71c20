"""``training make-windows``: real motion filmed into the model inputs ``engines verify`` reads."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from engines.verify import DEFAULT_INPUTS
from training.cli import main as training_main

REPO = Path(__file__).resolve().parents[2]
CLIPS = ("02/02_06.bvh.gz", "06/06_12.bvh.gz", "09/09_01.bvh.gz")  # 557, 304 and 36 frames at 30 fps


@pytest.fixture(scope="module")
def motion(shared_dir, tmp_path_factory) -> Path:
    """Three real CMU clips of three subjects, prepared into a small archive (well under a second)."""
    from training.motion import prepare

    out = tmp_path_factory.mktemp("motion") / "three.npz"
    prepare([shared_dir / "data" / "cmu-mocap" / c for c in CLIPS], out, workers=1, progress=False)
    return out


def _keypoints(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        assert z.files == ["keypoints"]
        return z["keypoints"]


def test_windows_are_seeded_model_inputs(motion, tmp_path, capsys):
    out = tmp_path / "w.npz"
    assert training_main(["make-windows", "--data", str(motion), "--window", "9", "--count", "20", "--out", str(out)]) == 0
    assert f"wrote {out}: keypoints 20 x 9 x 17 x 3 (windows)" in capsys.readouterr().out
    w = _keypoints(out)
    assert w.dtype == np.float32 and np.isfinite(w).all()
    assert 0.8 < (w[..., 2] > 0).mean() < 1 and np.abs(w[..., :2]).max() < 1.5  # screen units, a few joints lost
    again = tmp_path / "again.npz"
    assert training_main(["make-windows", "--data", str(motion), "--window", "9", "--count", "20", "--out", str(again)]) == 0
    np.testing.assert_array_equal(_keypoints(again), w)
    assert training_main(["make-windows", "--data", str(motion), "--window", "9", "--count", "20", "--seed", "1",
                          "--out", str(again)]) == 0
    assert not np.array_equal(_keypoints(again), w)


def test_frames_are_whole_segments_of_one_clip_each(motion, tmp_path):
    from training.data import motion_frames, motion_windows

    out = tmp_path / "f.npz"
    assert training_main(["make-windows", "--data", str(motion), "--frames", "--segment", "40", "--count", "100",
                          "--groups", "02", "06", "--out", str(out)]) == 0
    frames = _keypoints(out)
    assert frames.shape == (100, 17, 3)
    np.testing.assert_array_equal(frames, motion_frames(motion, 100, 40, groups=("02", "06")))
    # within a segment the body moves a little per frame; across a cut the camera changes
    step = np.linalg.norm(np.diff(frames[..., :2], axis=0), axis=-1)
    seen = (frames[1:, :, 2] > 0) & (frames[:-1, :, 2] > 0)
    moved = np.array([np.median(s[v]) for s, v in zip(step, seen)])
    inside = np.delete(moved, [39, 79])
    assert np.median(inside) < 0.02 and min(moved[39], moved[79]) > inside.max()
    # subject 09's one clip (36 frames) gives windows, but it is shorter than a segment
    assert motion_windows(motion, 9, 4, groups=("09",)).shape == (4, 9, 17, 3)
    with pytest.raises(ValueError, match="no clip of .* has 40 frames"):
        motion_frames(motion, 10, 40, groups=("09",))


@pytest.mark.parametrize("args, message", [
    (["--frames", "--window", "27"], "--window is for windows"),
    (["--segment", "64"], "give --frames too"),
    (["--count", "0"], "must be >= 1"),
    (["--groups", "77"], "group(s) 77 are not in the motion data (it has 02, 06, 09)"),
    (["--frames", "--segment", "1000"], "has 1000 frames: make the segments shorter"),
    (["--out", "OUT.txt"], "written as an .npz file"),
    (["--data", "MISSING.npz"], "motion archive does not exist"),
])
def test_bad_input_is_one_sentence(args, message, motion, tmp_path, capsys):
    argv = ["make-windows", "--data", str(motion), "--out", str(tmp_path / "x.npz")] + args
    argv = [a.replace("OUT.txt", str(tmp_path / "x.txt")).replace("MISSING.npz", str(tmp_path / "none.npz")) for a in argv]
    assert training_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.slow
def test_engines_verify_accepts_what_make_windows_writes(motion, tmp_path, monkeypatch, capsys):
    import torch

    from engines.build import build
    from engines.checkpoint import save_checkpoint
    from engines.cli import main as engines_main
    from engines.models import TransformerConfig, build_model

    monkeypatch.setenv("POSESTREAM_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    ckpt = tmp_path / "small.safetensors"
    save_checkpoint(ckpt, build_model(TransformerConfig(receptive_field=9, d_model=32, layers=2, heads=2,
                                                        frame_hidden=64, head_hidden=64)), {})
    engine = build(ckpt, "onnx", max_batch=16).folder
    windows, frames = tmp_path / "windows.npz", tmp_path / "frames.npz"
    assert training_main(["make-windows", "--data", str(motion), "--window", "9", "--count", "40", "--out", str(windows)]) == 0
    assert training_main(["make-windows", "--data", str(motion), "--frames", "--segment", "50", "--count", "60",
                          "--out", str(frames)]) == 0
    capsys.readouterr()
    for data, count in ((windows, 40), (frames, 60)):
        assert engines_main(["verify", "--engine", str(engine), "--data", str(data), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["passed"] and report["windows"] == count
    # windows of another length than the engine's receptive field are refused in one sentence
    assert training_main(["make-windows", "--data", str(motion), "--window", "27", "--count", "4", "--out", str(windows)]) == 0
    assert engines_main(["verify", "--engine", str(engine), "--data", str(windows)]) == 2
    assert "keypoint windows have 27 frames; this engine needs 9" in capsys.readouterr().err


@pytest.mark.slow
def test_the_bundled_verify_inputs_are_what_the_documented_command_writes(cmu_archive_path, tmp_path, capsys):
    """docs/engines.md gives the command that wrote engines/assets/verify_keypoints.npz; run on the
    same CMU mocap (``cmu_archive_path`` is ../shared/data/cmu-mocap prepared as ``--data`` prepares
    a BVH folder), it writes the same frames."""
    doc = (REPO / "docs" / "engines.md").read_text()
    command = re.search(r"<!-- verify-inputs-command -->\n```bash\n(.+)\n```", doc).group(1)
    argv = shlex.split(command)
    assert argv[:2] == ["training", "make-windows"]
    argv = argv[1:]
    data, out = argv.index("--data") + 1, argv.index("--out") + 1
    assert argv[data] == "../shared/data/cmu-mocap" and REPO / argv[out] == DEFAULT_INPUTS
    argv[data], argv[out] = str(cmu_archive_path), str(tmp_path / "fresh.npz")
    assert training_main(argv) == 0
    fresh, bundled = _keypoints(tmp_path / "fresh.npz"), _keypoints(DEFAULT_INPUTS)
    np.testing.assert_array_equal(fresh[..., 2] > 0, bundled[..., 2] > 0)
    np.testing.assert_allclose(fresh, bundled, rtol=0, atol=1e-6)  # the same draws; float rounding may differ by CPU
