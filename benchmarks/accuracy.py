"""``python -m benchmarks accuracy``: how right the 3D is, on mocap and on real footage.

    python -m benchmarks accuracy [--smoke] [--out DIR] [--frames N] [--skip-mocap]

1. Mocap (``training.evaluate``): the shipped lifter on the CMU validation subjects through fixed
   virtual cameras, at three 2D noise levels: clean, white jitter 0.015 + outliers 0.05 (fractions
   of the body height), and the detector-like noise model the lifter was trained with.
2. Real footage (``benchmarks.footage``): the four calibrated Pose2Sim views; our monocular 3D
   per view against the triangulated reference, side by side with MediaPipe's own world
   landmarks on the same frames mapped to the same 17 joints. Target: our P-MPJPE and MPJVE below
   MediaPipe's.

``--smoke`` evaluates one mocap clip through one camera at each noise level and 12 frames of
footage per view (for CI: checks the report is well formed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["AccuracySettings", "main", "markdown", "noise_levels", "run"]

METRICS = ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "accel_mm")


def noise_levels() -> dict[str, Any]:
    from training.evaluate import EvalSettings

    return {"clean": EvalSettings(), "jitter 0.015 + outliers 0.05": EvalSettings(jitter=0.015, outliers=0.05),
            "detector noise (training model)": EvalSettings(noise="detector")}


@dataclass(frozen=True)
class AccuracySettings:
    mocap: Path | None = None  # default ../shared/data/cmu-mocap
    footage: Path | None = None  # default ../shared/media/pose2sim-demo
    frames: int | None = None  # per view; None: all
    cameras: int = 2  # virtual cameras per mocap clip
    smoke: bool = False
    skip_mocap: bool = False


def _smoke_mocap(folder: Path, mocap: Path) -> tuple[Path, tuple[str, ...]]:
    """Two real clips (one to hold out, one so that training groups are not empty) in ``folder``."""
    for group, clip in (("01", "01_01.bvh.gz"), ("02", "02_01.bvh.gz")):
        (folder / group).mkdir(parents=True, exist_ok=True)
        (folder / group / clip).symlink_to(mocap / group / clip)
    return folder, ("02",)


def run_mocap(settings: AccuracySettings, progress: bool) -> dict[str, Any]:
    from dataclasses import replace

    from tqdm import tqdm

    from benchmarks.pipeline import shared_dir
    from training.evaluate import evaluate

    mocap = settings.mocap or shared_dir() / "data" / "cmu-mocap"
    out: dict[str, Any] = {"data": str(mocap), "levels": {}}
    with tempfile.TemporaryDirectory(prefix="posestream-acc-") as tmp:
        data, groups = (_smoke_mocap(Path(tmp), mocap) if settings.smoke else (mocap, None))
        for name, cfg in tqdm(noise_levels().items(), desc="mocap", unit="level", disable=not progress):
            cfg = replace(cfg, cameras=1 if settings.smoke else settings.cameras, groups=groups)
            r = evaluate("default", data, cfg, progress=False)
            out["levels"][name] = {"overall": r["overall"], "settings": r["settings"], "frames": r["frames"],
                                   "groups": r["groups"]}
    out["checkpoint"] = r["checkpoint"]
    return out


def run(settings: AccuracySettings, progress: bool = True) -> dict[str, Any]:
    from benchmarks.footage import evaluate_footage
    from benchmarks.machine import describe
    from benchmarks.pipeline import shared_dir

    footage = settings.footage or shared_dir() / "media" / "pose2sim-demo"
    if not (footage / "Calib.qca.txt").is_file():
        raise FileNotFoundError(f"{footage}/Calib.qca.txt not found; pass --footage")
    report: dict[str, Any] = {"benchmark": "accuracy", "machine": describe("torch", "onnxruntime", "mediapipe", "numpy"),
                              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
                              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if not settings.skip_mocap:
        report["mocap"] = run_mocap(settings, progress)
    report["footage"] = evaluate_footage(footage, 12 if settings.smoke and settings.frames is None else settings.frames,
                                         progress=progress)
    report["targets"] = targets(report)
    return report


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The footage targets: ours (as published) against MediaPipe's world landmarks, with and without its
    smoothing."""
    rows = []
    for rate, section in report["footage"]["rates"].items():
        ov = section["overall"]
        for mp in ("MediaPipe world", "MediaPipe world (its smoothing)"):
            for key, label in (("p_mpjpe_mm", "P-MPJPE"), ("mpjve_mm", "MPJVE")):
                ours, theirs = ov["ours"][key], ov[mp][key]
                rows.append({"rate": rate, "metric": label, "against": mp, "ours_mm": ours, "mediapipe_mm": theirs,
                             "met": bool(ours < theirs)})
    return rows


def markdown(report: dict[str, Any]) -> str:
    from benchmarks.footage import METHODS
    from benchmarks.report import md_table

    m = report["machine"]
    out = [(f"Machine: {m['cpu']}, {m['cores']} cores; torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
           f"mediapipe {m['mediapipe']}. Started {report['started']}. Accuracy does not depend on machine load.")]
    f = report["footage"]
    out += ["", "### Real footage: ours against MediaPipe's world landmarks", "",
            (f"Pose2Sim demo, four calibrated views, {f['frames_per_view']} frames each at {f['fps']:g} fps; "
            "reference = our 2D of the four views triangulated with the calibration, per joint from all views or, "
            "where one view disagrees (a left/right swap), from the other three "
            f"({100 * f['reference']['joints_from_all_views_fraction']:.0f}% of joints from all four); joints that still "
            f"reproject worse than {f['reference']['max_reprojection_px']:g} px are not scored "
            f"({100 * (1 - f['reference']['joints_kept_fraction']):.1f}%). Reprojection error into all four views: median "
            f"{f['reference']['reprojection_px_median']:.1f} px, p95 {f['reference']['reprojection_px_p95']:.1f} px. "
            "Root-relative, each "
            "camera's frame, mm. `ours` is what `realtime run` publishes (lifter + One Euro smoothing). "
            "MPJVE is per frame fed: 1/30 s apart at 30fps, 1/60 s at 60fps. MediaPipe's world landmarks are "
            "camera-aligned (x right, y down, z away), so MPJPE and MPJVE compare like with like."), "",
            ("The lifter was trained at 30 fps and this footage is 60 fps, so both ways of feeding it are reported: "
             "**30fps** feeds every 2nd frame (the motion at the speed the model learned; its 27-frame window spans "
             "0.9 s) and **60fps** feeds every frame, as `realtime run` does with a 60 fps source (the window spans "
             "0.45 s and motion looks half as fast). MediaPipe runs on every frame either way and every method is "
             "scored on the same frames. `MediaPipe world` comes from the same MediaPipe run that feeds our lifter "
             "(its smoothing off, as in the pipeline); `MediaPipe world (its smoothing)` is a second run with "
             "MediaPipe's default landmark smoothing on, i.e. what a MediaPipe user gets out of the box."), "",
            md_table(["target (ours lower than MediaPipe)", "rate", "ours mm", "MediaPipe mm", "verdict"],
                     [(f"{r['metric']} vs {r['against']}", r["rate"], r["ours_mm"], r["mediapipe_mm"],
                       "met" if r["met"] else "**missed**") for r in report["targets"]], digits=1), ""]
    for rate, sec in f["rates"].items():
        rows = []
        for view, methods in list(sec["per_view"].items()) + [("all views", sec["overall"])]:
            for method in METHODS:
                s = methods[method]
                rows.append((view, method, s["p_mpjpe_mm"], s["mpjve_mm"], s["mpjpe_mm"], s["frames"]))
        out += [(f"#### {rate}: the lifter fed every {sec['stride']}{'nd' if sec['stride'] == 2 else 'st'} frame "
                f"({sec['fed_fps']:g} fps)"), "",
                md_table(["view", "method", "P-MPJPE", "MPJVE", "MPJPE", "frames"], rows, digits=1), ""]
    joints = f["joints"]
    rows = []
    for j, name in enumerate(joints):
        rows.append([name] + [f["rates"][r]["overall"][meth]["per_joint_p_mpjpe_mm"][j]
                              for r in f["rates"] for meth in ("ours", "MediaPipe world")])
    out += ["#### P-MPJPE per joint, all views (mm)", "",
            md_table(["joint"] + [f"{meth} {r}" for r in f["rates"] for meth in ("ours", "MediaPipe world")], rows, digits=1), ""]
    pairs = f["sync"]["pairs"]
    shifts = list(next(iter(pairs.values()))["reprojection_px_by_shift"])
    out += ["#### Are the views synchronised?", "",
            "Each pair of views triangulated with the second view shifted by k frames (60 fps): median two-view "
            "reprojection error in px. " + ("Every pair has its minimum at k = 0." if f["sync"]["synchronised"] else
                                            "NOT every pair has its minimum at k = 0: see the table.")
            + " A pair whose error stays high at every shift disagrees in calibration or in where MediaPipe puts "
            "the joints in that view, rather than in time; the reference copes with one disagreeing view per joint "
            "(above). Frames are paired by index, unshifted.", "",
            md_table(["pair"] + [f"k={k}" for k in shifts] + ["best k"],
                     [[name] + [p["reprojection_px_by_shift"][k] for k in shifts] + [p["best_shift"]]
                      for name, p in pairs.items()], digits=1), ""]
    if "mocap" in report:
        mo = report["mocap"]
        out += ["### Mocap validation subjects (CMU, never trained on)", "",
                (f"`training.evaluate` on `{Path(mo['data']).name}`, groups "
                f"{', '.join(next(iter(mo['levels'].values()))['settings']['groups'])}, "
                f"{next(iter(mo['levels'].values()))['settings']['cameras']} fixed virtual camera(s) per clip; mm, "
                "MPJVE and acceleration per frame at 30 fps."), "",
                md_table(["2D noise", "frames", "MPJPE", "P-MPJPE", "N-MPJPE", "MPJVE", "accel"],
                         [[name, lv["frames"]] + [lv["overall"][k] for k in METRICS] for name, lv in mo["levels"].items()],
                         digits=1), ""]
    return "\n".join(out)


def figures(report: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import plots

    f = report["footage"]
    return {f"accuracy_per_joint_{rate}": plots.accuracy_per_joint(
                f["joints"], {f"{m} ({rate})": sec["overall"][m]["per_joint_p_mpjpe_mm"]
                              for m in ("ours", "ours (no smoothing)", "MediaPipe world", "MediaPipe world (its smoothing)")})
            for rate, sec in f["rates"].items()}


def main(argv: list[str] | None = None) -> int:
    from dataclasses import replace

    from benchmarks.report import add_common_args, produce

    ap = argparse.ArgumentParser(prog="python -m benchmarks accuracy", description=__doc__.split("\n\n")[0])
    add_common_args(ap, "accuracy", "one mocap clip and 12 frames per view (CI)")
    ap.add_argument("--mocap", default=None, help="BVH folder (default ../shared/data/cmu-mocap)")
    ap.add_argument("--footage", default=None, help="Pose2Sim-style folder: cam01..04.mp4 + Calib.qca.txt")
    ap.add_argument("--frames", type=int, default=None, help="frames per view (default: all)")
    ap.add_argument("--cameras", type=int, default=2, help="virtual cameras per mocap clip (default 2)")
    ap.add_argument("--skip-mocap", action="store_true", help="only the real-footage comparison")
    args = ap.parse_args(argv)
    if args.frames is not None and args.frames < 8:
        ap.error("--frames must be at least 8")
    if args.cameras < 1:
        ap.error("--cameras must be at least 1")
    settings = AccuracySettings(smoke=args.smoke, frames=args.frames, cameras=args.cameras, skip_mocap=args.skip_mocap)
    if args.mocap:
        settings = replace(settings, mocap=Path(args.mocap))
    if args.footage:
        settings = replace(settings, footage=Path(args.footage))
    report = produce("accuracy", args, lambda: run(settings, progress=not args.quiet),
                     lambda r: (markdown(r), figures(r)))
    if report is None:
        return 1
    print(markdown(report).split("#### ")[0])
    return 0
