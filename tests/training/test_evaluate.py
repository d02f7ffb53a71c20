"""`training evaluate` with the shipped default model on unseen CMU subjects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from training.evaluate import KEYS, EvalSettings, evaluate

pytestmark = pytest.mark.slow  # every test evaluates on the full prepared CMU mocap

FAST = dict(cameras=1, groups=("09",))


@pytest.fixture(scope="module")
def clean(cmu_archive_path):
    return evaluate("default", cmu_archive_path, EvalSettings(**FAST), progress=False)


def test_report_has_every_metric_per_group_and_overall(clean):
    assert set(KEYS) <= set(clean["overall"])
    assert clean["groups"] and all(set(KEYS) <= set(row) for row in clean["groups"].values())
    assert clean["frames"] == sum(row["frames"] for row in clean["groups"].values())
    o = clean["overall"]
    assert o["p_mpjpe_mm"] <= o["n_mpjpe_mm"] + 1e-6 and o["p_mpjpe_mm"] <= o["mpjpe_mm"] + 1e-6
    assert o["mpjpe_mm"] < 80  # a trained model on unseen subjects, clean 2D


def test_evaluation_is_deterministic(clean, cmu_archive_path):
    again = evaluate("default", cmu_archive_path, EvalSettings(**FAST), progress=False)
    assert again["overall"] == clean["overall"]


def test_noise_makes_it_worse_and_is_reported(clean, cmu_archive_path):
    noisy = evaluate("default", cmu_archive_path, EvalSettings(jitter=0.03, outliers=0.1, **FAST), progress=False)
    assert noisy["overall"]["mpjpe_mm"] > clean["overall"]["mpjpe_mm"]
    assert noisy["overall"]["mpjve_mm"] > clean["overall"]["mpjve_mm"]
    assert noisy["settings"]["jitter"] == 0.03


def test_cli_writes_json_and_refuses_bad_input(tmp_path, cmu_archive_path):
    out = tmp_path / "eval.json"
    res = subprocess.run([sys.executable, "-m", "training.cli", "evaluate", "--checkpoint", "default", "--data",
                          str(cmu_archive_path), "--cameras", "1", "--groups", "09", "--json", str(out), "--quiet"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert {"mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "accel_mm", "root_error_mm"} <= set(doc["overall"])
    assert "overall" in res.stdout
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00" * 10)
    res = subprocess.run([sys.executable, "-m", "training.cli", "evaluate", "--checkpoint", "default", "--data",
                          str(bad), "--json", str(tmp_path / "x.json")], capture_output=True, text=True)
    assert res.returncode == 2 and "bad.npz" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.json").exists()
    res = subprocess.run([sys.executable, "-m", "training.cli", "evaluate", "--checkpoint", str(bad), "--data",
                          str(cmu_archive_path)], capture_output=True, text=True)
    assert res.returncode == 2 and "bad.npz" in res.stderr


def test_a_known_body_size_removes_the_size_ambiguity(cmu_archive_path):
    """People 10% larger than the training subjects: one camera cannot see it (the shipped model
    predicts a typical adult), but telling the model the person's size, as `realtime run
    --height` does, brings the error back to about the unscaled figure."""
    big = EvalSettings(body_scale=1.1, **FAST)
    guessed = evaluate("default", cmu_archive_path, big, progress=False)["overall"]
    told = evaluate("default", cmu_archive_path, EvalSettings(body_scale=1.1, known_size=True, **FAST),
                    progress=False)["overall"]
    assert told["mpjpe_mm"] < 0.85 * guessed["mpjpe_mm"]
    assert told["root_error_mm"] < 0.7 * guessed["root_error_mm"]
    assert told["p_mpjpe_mm"] == pytest.approx(guessed["p_mpjpe_mm"], rel=1e-6)  # scale-free metric: unchanged


def test_calibrate_size_writes_the_training_median_and_refuses_nonsense(tmp_path, cmu_archive_path):
    import torch

    from engines.checkpoint import load_checkpoint, read_metadata, save_checkpoint
    from engines.models import MLPConfig, bone_sum, build_model

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", build_model(MLPConfig(hidden=32)).eval(),
                           {"training": {"validation_groups": ["09"]}})
    cli = [sys.executable, "-m", "training.cli", "calibrate-size", "--checkpoint", str(ckpt)]
    res = subprocess.run(cli + ["--data", str(cmu_archive_path), "--quiet"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    size = read_metadata(ckpt)["config"]["body_size_m"]
    assert 3.5 < size < 4.5  # CMU adults: about 3.95 m of bones
    model, _ = load_checkpoint(ckpt)
    x = torch.rand(3, 1, 17, 3)
    x[..., 2] = 1.0
    assert torch.allclose(bone_sum(model(x)), torch.full((3,), size), atol=1e-3)
    before = ckpt.read_bytes()
    res = subprocess.run(cli + ["--size", "0.3"], capture_output=True, text=True)
    assert res.returncode == 2 and "body_size_m" in res.stderr and "Traceback" not in res.stderr
    assert ckpt.read_bytes() == before
    res = subprocess.run(cli + ["--size", "0"], capture_output=True, text=True)
    assert res.returncode == 0 and read_metadata(ckpt)["config"]["body_size_m"] == 0.0
