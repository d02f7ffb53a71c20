"""Smoke runs of the two benchmark reports (a few frames and iterations each, as a user would run
them with ``--smoke``): the commands succeed, and the JSON, Markdown and PNGs they write are well
formed and consistent. Numbers are not judged here: speed targets live in the reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], check=False, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def latency_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("latency")
    proc = _bench("latency", "--smoke", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def accuracy_dir(tmp_path_factory, shared_dir) -> Path:
    out = tmp_path_factory.mktemp("accuracy")
    proc = _bench("accuracy", "--smoke", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _png_ok(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.stat().st_size > 5000, f"{path.name} is suspiciously small"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert np.ptp(img[..., :3]) > 0.5, f"{path.name} is blank"


def _tables(md: str) -> list[list[str]]:
    """Markdown tables as lists of their lines; every row has as many cells as its header."""
    tables, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    for t in tables:
        assert len(t) >= 3 and set(t[1].replace("|", "").replace(":", "").strip()) <= {"-", " "}, t[:2]
        widths = {line.count("|") for line in t}
        assert len(widths) == 1, f"ragged table: {t[0]}"
    return tables


@pytest.mark.slow
def test_latency_report_is_complete(latency_dir: Path) -> None:
    report = json.loads((latency_dir / "report.json").read_text())
    for key in ("machine", "settings", "pipeline", "engines", "smoothing", "transport", "targets", "includes"):
        assert key in report
    assert {"cpu", "cores", "torch", "onnxruntime", "mediapipe", "load_average_1_5_15"} <= set(report["machine"])
    assert set(report["pipeline"]) == {"native rate", "unpaced", "native rate, port"}
    assert report["pipeline"]["native rate, port"]["detector"] == "blazepose"
    for run in report["pipeline"].values():
        assert run["published"] > 0 and run["received_by_subscriber"] > 0
        for key in ("latency_ms", "overhead_ms", "wait_for_detector_ms", "detect_ms", "lift_ms", "capture_ms"):
            assert run[key]["p50"] <= run[key]["p95"] <= run[key]["p99"]
        assert 0 <= run["frames_detector_busy"] <= run["published"] - run["warmup_frames"]
        for key in ("wait_idle_detector_ms", "wait_busy_detector_ms"):  # null: no such frame in the run
            assert run[key]["p50"] is None or run[key]["p50"] <= run[key]["p99"]
        assert run["resources"]["cpu_percent_of_one_core"] > 0 and run["resources"]["rss_peak_mib"] > 100
        # the stage breakdown accounts for the whole capture -> subscriber latency
        stages = run["stages_ms"]
        parts = sum(v["mean"] for k, v in stages.items() if k != "to_subscriber")
        assert parts == pytest.approx(stages["to_subscriber"]["mean"], rel=0.05, abs=0.5)
    rows = report["engines"]["results"]
    assert {r["backend"] for r in rows} >= {"torch (cpu)", "onnxruntime (cpu)"}
    assert all("batch1" in r and "batch64" in r for r in rows)
    assert "aoti fp32 (cuda graphs)" in report["engines"]["skipped"] or report["machine"]["gpu"]
    assert {(r["what"], r["backend"]) for r in report["smoothing"]} >= {("filter", "numba"), ("filter", "numpy")}
    assert {(r["transport"], r["persons"]) for r in report["transport"]} == {("tcp", 1), ("tcp", 8), ("ipc", 1), ("ipc", 8)}
    assert all(0 < r["received"] <= r["sent"] for r in report["transport"])  # a busy subscriber may miss some
    issues = [t["issue"] for t in report["targets"]]
    assert issues.count(4) == 3 and issues.count(5) == 5 and issues.count(6) == 2
    det = report["detector"]
    assert set(det["pipeline_cpu"]) == {"mediapipe", "port onnxruntime", "port torch"}
    assert all(0 < s["p50_ms"] <= s["p99_ms"] for s in det["pipeline_cpu"].values())
    assert det["summary"]["cpu_ratio_p50"] > 0
    assert all(t["met"] in (True, False, None) and t["measured"] for t in report["targets"])

    md = (latency_dir / "report.md").read_text()
    tables = _tables(md)
    assert tables[0][0] == "| area | target | measured | verdict |" and len(tables[0]) == 2 + len(report["targets"])
    assert len(tables) >= 6
    for name in ("latency_cdf.png", "stages.png"):
        _png_ok(latency_dir / name)


def test_detector_waits_tell_a_busy_detector_from_an_idle_one() -> None:
    from benchmarks.pipeline import _detector_waits

    ms = 1_000_000
    stamps = [  # frame 1 arrives while frame 0 is still being detected; frame 2 finds the detector idle
        {"t_capture_ns": 0, "t_detect_start_ns": 1 * ms, "t_detect_end_ns": 40 * ms},
        {"t_capture_ns": 33 * ms, "t_detect_start_ns": 40 * ms, "t_detect_end_ns": 60 * ms},
        {"t_capture_ns": 66 * ms, "t_detect_start_ns": 66 * ms + ms // 2, "t_detect_end_ns": 90 * ms},
    ]
    wait, busy = _detector_waits(stamps)
    assert busy.tolist() == [False, True, False]
    assert wait.tolist() == pytest.approx([1.0, 7.0, 0.5])


@pytest.mark.slow
def test_accuracy_report_is_complete(accuracy_dir: Path) -> None:
    report = json.loads((accuracy_dir / "report.json").read_text())
    levels = report["mocap"]["levels"]
    assert len(levels) == 3
    for lv in levels.values():
        assert lv["frames"] > 0 and 0 < lv["overall"]["p_mpjpe_mm"] < lv["overall"]["mpjpe_mm"]
    f = report["footage"]
    assert f["frames_per_view"] == 12 and set(f["frames_with_person"]) == {"cam01", "cam02", "cam03", "cam04"}
    assert 0 < f["reference"]["joints_kept_fraction"] <= 1
    assert len(f["sync"]["pairs"]) == 6
    for rate in ("30fps", "60fps"):
        sec = f["rates"][rate]
        assert set(sec["per_view"]) == {"cam01", "cam02", "cam03", "cam04"}
        for method, s in sec["overall"].items():
            assert s["frames"] > 0 and np.isfinite([s["p_mpjpe_mm"], s["mpjve_mm"], s["mpjpe_mm"]]).all(), method
            per_joint = np.asarray(s["per_joint_p_mpjpe_mm"], float)
            assert per_joint.shape == (17,) and 5 < np.nanmean(per_joint) < 500  # millimetres
    assert len(report["targets"]) == 8 and all(isinstance(t["met"], bool) for t in report["targets"])
    md = (accuracy_dir / "report.md").read_text()
    assert len(_tables(md)) >= 6
    for rate in ("30fps", "60fps"):
        _png_ok(accuracy_dir / f"accuracy_per_joint_{rate}.png")


@pytest.mark.slow
def test_docs_page_collects_the_targets(latency_dir: Path, accuracy_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    proc = _bench("docs", "--latency", str(latency_dir), "--accuracy", str(accuracy_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Latency targets" in text and "| area | target | measured | verdict |" in text
    for image in ("latency_cdf.png", "stages.png", "accuracy_per_joint_30fps.png"):
        assert image in text
    _tables(text)


@pytest.mark.slow
@pytest.mark.parametrize("args", [("latency", "--smoke", "--video", "/nonexistent/clip.mp4"),
                                  ("accuracy", "--smoke", "--skip-mocap", "--footage", "/nonexistent")])
def test_missing_input_is_one_sentence(args: tuple[str, ...], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _bench(*args, "--quiet", "--out", str(out), timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
