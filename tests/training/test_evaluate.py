"""`training evaluate` with the shipped default model on unseen CMU subjects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from training.evaluate import KEYS, EvalSettings, evaluate

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
