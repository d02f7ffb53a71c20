"""``training``: motion import, lifter training and evaluation."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from engines.cli_support import run_cli
from training.methods import METHODS


def _units(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def _prepare(args: argparse.Namespace) -> int:
    from training.motion import prepare

    h36m = [p for p in args.inputs if p.endswith(".npz")]
    if h36m:
        if len(args.inputs) != 1:
            raise ValueError("a Human3.6M archive (data_3d_h36m.npz) is prepared on its own, not mixed with BVH inputs")
        from training.h36m import h36m_to_archive

        archive = h36m_to_archive(h36m[0], args.out, fps=args.fps)
    else:
        archive = prepare(args.inputs, args.out, fps=args.fps, units=args.units,
                          drop_lead_in=not args.keep_lead_in, workers=args.workers,
                          progress=not args.quiet)
    frames = len(archive.joints3d)
    print(f"wrote {args.out}: {archive.num_clips} clips, {frames} frames "
          f"({frames / archive.fps / 60:.1f} min at {archive.fps:g} fps), "
          f"{len(set(archive.clip_groups))} groups")
    return 0


def _train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.train import train

    cfg = load_config(args.config)
    if args.method:
        from dataclasses import replace

        cfg = replace(cfg, train=replace(cfg.train, method=args.method))
    if args.data or args.out:
        from dataclasses import replace
        from pathlib import Path

        if args.data:
            cfg = replace(cfg, data=replace(cfg.data, motion=Path(args.data).resolve()))
        if args.out:
            cfg = replace(cfg, train=replace(cfg.train, out=Path(args.out).resolve()))
    entry = train(cfg, resume=args.resume, progress=not args.quiet)
    if entry:
        print(f"done: validation MPJPE {entry['val_clean_mpjpe_mm']:.1f} mm (clean 2D), "
              f"{entry['val_detector_mpjpe_mm']:.1f} mm (detector noise)")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import EvalSettings, evaluate, format_table, write_json

    for name in ("jitter", "outliers"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0")
    if args.body_scale <= 0 or args.cameras < 1:
        raise ValueError("--body-scale must be > 0 and --cameras >= 1")
    settings = EvalSettings(noise=args.noise, jitter=args.jitter, outliers=args.outliers,
                            body_scale=args.body_scale, cameras=args.cameras, seed=args.seed,
                            groups=tuple(args.groups) if args.groups else None, missing=tuple(args.missing),
                            known_size=args.known_size)
    result = evaluate(args.checkpoint, args.data, settings, progress=not args.quiet)
    print(format_table(result))
    if args.json_out:
        write_json(result, args.json_out)
        print(f"wrote {args.json_out}")
    return 0


def _calibrate_size(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from engines.checkpoint import read_metadata, resolve_checkpoint, update_metadata
    from engines.models import STATURE_PER_BONE_SUM, config_from_dict

    if str(args.checkpoint) == "default":
        raise ValueError("calibrate-size rewrites its checkpoint; copy the shipped model "
                         "(engines/assets/lifter_default.safetensors) and calibrate the copy")
    path = resolve_checkpoint(args.checkpoint)
    meta = read_metadata(path)
    if args.size is not None:
        size, source = args.size, "given on the command line"
    else:
        if not args.data:
            raise ValueError("give --data (to measure the training subjects) or --size")
        from training.data import median_body_size, open_motion, split_by_groups

        groups = tuple(meta.get("training", {}).get("validation_groups", ()))
        archive = open_motion(args.data, progress=not args.quiet)
        split = split_by_groups(archive, groups)
        size = median_body_size(archive, split.train_frames)
        source = f"median over the training subjects of {args.data}"
    config = replace(config_from_dict(meta["config"]), body_size_m=round(float(size), 4))  # checks the range
    update_metadata(path, {"config": asdict(config), "body_size": {"body_size_m": config.body_size_m, "source": source}})
    if config.body_size_m:
        print(f"{path}: outputs now scaled to a bone-length sum of {config.body_size_m:.3f} m ({source}), "
              f"a standing height of about {STATURE_PER_BONE_SUM * config.body_size_m:.2f} m; "
              "re-run `training evaluate` to refresh its metrics")
    else:
        print(f"{path}: outputs keep the network's own size estimate")
    return 0


def _adapt(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from engines.checkpoint import load_checkpoint, save_checkpoint
    from engines.fileio import atomic_path
    from training.methods.adapt import AdaptSettings, adapt, clip_report, improvement
    from training.methods.clips import load_clip

    settings = AdaptSettings(steps=args.steps, lr=args.lr, seed=args.seed)
    if settings.steps < 1 or settings.lr <= 0:
        raise ValueError("--steps must be >= 1 and --lr > 0")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: the adapted checkpoint must be a .safetensors file")
    model, meta = load_checkpoint(args.checkpoint)
    clip = load_clip(args.clip, args.calibration, progress=not args.quiet)
    fps = float(meta.get("training", {}).get("fps", 30.0))
    clip = clip.every(max(1, round(clip.fps / fps)))
    before = clip_report(model, clip)
    adapt(model, [clip], settings, progress=not args.quiet)
    after = clip_report(model, clip)
    gain = improvement(before, after)
    report = {"clip": str(args.clip), "views": list(clip.names), "frames": clip.frames, "fps": clip.fps,
              "settings": settings.__dict__, "before": before, "after": after, "improvement": gain}
    meta.setdefault("training", {})["adaptation"] = report
    save_checkpoint(out, model, {k: v for k, v in meta.items() if k in ("training", "metrics")})
    print(f"{'metric':26s} {'before':>9s} {'after':>9s} {'gain':>7s}")
    for key in before:
        g = f"{100 * gain[key]:6.1f}%" if key in gain else ""
        print(f"{key:26s} {before[key]:9.2f} {after.get(key, float('nan')):9.2f} {g}")
    print(f"wrote {out}")
    if args.json_out:
        with atomic_path(args.json_out) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json_out}")
    return 0


def _make_clip(args: argparse.Namespace) -> int:
    import numpy as np

    from training.data import open_motion
    from training.methods.clips import save_clip, synthetic_clip

    if args.views < 2 or args.frames < 1:
        raise ValueError("--views must be >= 2 and --frames >= 1")
    archive = open_motion(args.data, progress=not args.quiet)
    names = list(archive.clip_names)
    if args.clip not in names:
        raise ValueError(f"clip {args.clip!r} is not in {args.data} (e.g. {', '.join(names[:3])})")
    joints = archive.clip_joints(names.index(args.clip))[: args.frames]
    clip = synthetic_clip(np.asarray(joints), views=args.views, seed=args.seed, fps=float(archive.fps))
    path = save_clip(clip, args.out)
    print(f"wrote {path} ({clip.views} views x {clip.frames} frames) and its calibration")
    return 0


def _make_windows(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from engines.fileio import atomic_path
    from training.data import motion_frames, motion_windows

    if Path(args.out).suffix != ".npz":
        raise ValueError(f"--out {args.out}: model inputs are written as an .npz file")
    if args.frames and args.window is not None:
        raise ValueError("--frames writes consecutive frames in segments of --segment frames; --window is for windows")
    if not args.frames and args.segment is not None:
        raise ValueError("--segment is the segment length of --frames; give --frames too, or --window for windows")
    window, segment = args.window or 27, args.segment or 128
    if args.count < 1 or window < 1 or segment < 1:
        raise ValueError("--count, --window and --segment must be >= 1")
    groups = tuple(args.groups) if args.groups else None
    if args.frames:
        keypoints = motion_frames(args.data, args.count, segment, args.seed, groups, progress=not args.quiet)
    else:
        keypoints = motion_windows(args.data, window, args.count, args.seed, groups, progress=not args.quiet)
    with atomic_path(args.out, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, keypoints=keypoints)
    shape = " x ".join(map(str, keypoints.shape))
    print(f"wrote {args.out}: keypoints {shape} ({'frames' if args.frames else 'windows'}); "
          f"check an engine on them with `engines verify --engine DIR --data {args.out}`")
    return 0


def _methods_report(args: argparse.Namespace) -> int:
    from training.methods.report import ReportSettings, methods_report

    if args.minutes <= 0:
        raise ValueError("--minutes must be > 0")
    settings = ReportSettings(data=args.data, minutes=args.minutes, out_dir=args.runs, adapt_steps=args.adapt_steps)
    text = methods_report(settings, progress=not args.quiet)
    from pathlib import Path

    from engines.fileio import atomic_path

    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


def _train_up(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from training.up import UpTrainSettings, train_up

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: the up model is written as a .safetensors file")
    if not Path(args.data).exists():
        raise ValueError(f"--data {args.data}: no such motion archive or BVH folder")
    from engines.camera import TiltedCameraRanges

    if not 0 <= args.max_roll <= 60:
        raise ValueError(f"--max-roll must be in [0, 60] degrees, got {args.max_roll}")
    cameras = TiltedCameraRanges(roll_deg=(-args.max_roll, args.max_roll))
    settings = UpTrainSettings(minutes=args.minutes, seed=args.seed, cameras=cameras)  # checks --minutes
    result = train_up(args.data, out, settings, progress=not args.quiet)
    print(f"wrote {out}: {result['steps']} steps in {result['seconds']:.0f} s, "
          f"validation median error {result['val_median_deg']:.2f} deg (single windows)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    return 0


def _evaluate_up(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from engines.gravity import UpModel
    from training.up import evaluate_up, format_evaluation

    model = UpModel.load(None if args.model == "default" else args.model)
    result = evaluate_up(args.data, model, seed=args.seed, windows=args.windows, segments=args.segments,
                         progress=not args.quiet)
    print(format_evaluation(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json_out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="training",
        description="Build 2D-to-3D lifting models from real motion capture.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    p = sub.add_parser(
        "prepare",
        help="convert BVH files/folders into one archive of canonical joints",
        description="Read BVH motion (plain or .gz, files or folders searched recursively), drop "
        "CMU rest-pose lead-ins, resample, map to the canonical 17 joints in metres and write one "
        ".npz archive (joints3d, clip, clip_names, clip_groups, joint_names, fps). A Human3.6M "
        "data_3d_h36m.npz in VideoPose3D's format is converted the same way (subjects become groups).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".bvh/.bvh.gz files or folders, or one data_3d_h36m.npz")
    p.add_argument("--out", required=True, help="archive to write, e.g. motion.npz")
    p.add_argument("--fps", type=float, default=30.0, help="target frame rate (default 30)")
    p.add_argument("--units", type=_units, default="auto",
                   help="file length unit: auto (default), m, cm, mm, inch, cmu, or metres per unit")
    p.add_argument("--keep-lead-in", action="store_true", help="keep CMU rest-pose lead-in frames")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_prepare)
    p = sub.add_parser(
        "train",
        help="train a lifter from a TOML config",
        description="Train a 2D-to-3D lifter on synthetic 2D from real mocap (examples in "
        "training/configs/). Works unchanged under `torchrun --nproc_per_node N -m training.cli train ...`.",
    )
    p.add_argument("--config", required=True, help="TOML file with [data], [model], [train]")
    p.add_argument("--data", default=None, help="motion archive or BVH folder instead of the config's [data] motion")
    p.add_argument("--out", default=None, help="output folder instead of the config's [train] out")
    p.add_argument("--resume", action="store_true", help="continue from <out>/state.pt")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="how to learn (default: the config's [train] method, else supervised): 3D labels (supervised), "
                   "2D poses only (adversarial), synchronised calibrated views (multiview), depth order (ordinal); "
                   "see docs/methods.md")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_train)
    p = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint on validation subjects",
        description="Run a checkpoint causally over every validation clip seen by fixed virtual "
        "cameras; print a per-action table; optionally write JSON.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint path, or 'default' for the shipped model")
    p.add_argument("--data", required=True, help="motion archive (.npz) or BVH folder")
    p.add_argument("--noise", choices=("clean", "detector"), default="clean")
    p.add_argument("--jitter", type=float, default=0.0, help="Gaussian 2D noise, sigma as a fraction of body height")
    p.add_argument("--outliers", type=float, default=0.0, help="fraction of joints moved by ~10%% of body height")
    p.add_argument("--body-scale", type=float, default=1.0, help="scale bodies before projection")
    p.add_argument("--cameras", type=int, default=2, help="virtual cameras per clip (default 2)")
    p.add_argument("--groups", nargs="+", default=None, help="clip groups to evaluate (default: the checkpoint's validation subjects)")
    p.add_argument("--missing", nargs="+", default=(), metavar="JOINT",
                   help="hide these canonical joints from the model in every frame (e.g. left_knee left_ankle)")
    p.add_argument("--known-size", action="store_true",
                   help="scale outputs to each subject's true size, as `realtime run --height` does for a user "
                   "(models with a body size prior only; see `training calibrate-size`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", default=None, help="write results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_evaluate)
    p = sub.add_parser(
        "calibrate-size",
        help="give a checkpoint's outputs a fixed body size (a typical adult of its training data)",
        description="One camera cannot tell a large person far away from a small one near by. This sets the "
        "checkpoint's body_size_m so every output skeleton is scaled (about the camera, keeping its 2D "
        "projection) to the median bone-length sum of the training subjects, or to --size; --size 0 undoes it. "
        "Rewrites the checkpoint in place.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint path (.safetensors)")
    p.add_argument("--data", default=None, help="the motion data it was trained on (archive or BVH folder)")
    p.add_argument("--size", type=float, default=None, help="bone-length sum in metres instead of measuring (0 = off)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_calibrate_size)
    p = sub.add_parser(
        "adapt",
        help="fine-tune a lifter on your own multi-view clip, without labels",
        description="Test-time adaptation: fine-tune a checkpoint on a synchronised, calibrated multi-view clip "
        "(a folder of videos with a calibration, or a .npz from `training make-clip`) with the multi-view "
        "consistency loss; print what it gains on that clip and write the adapted checkpoint.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint path, or 'default' for the shipped model")
    p.add_argument("--clip", required=True, help="folder of synchronised videos (+ *.qca.txt or calibration.toml), or clip .npz")
    p.add_argument("--calibration", default=None, help="calibration file (default: the one in the folder / beside the .npz)")
    p.add_argument("--out", required=True, help="adapted checkpoint to write (.safetensors)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", default=None, help="write the before/after report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_adapt)
    p = sub.add_parser(
        "make-clip",
        help="film a mocap clip with virtual cameras: a multi-view clip with known truth",
        description="Write a synthetic synchronised multi-view clip (.npz + .calibration.toml) of one mocap clip, "
        "with the methods report's evaluation noise (jitter 0.015, outliers 0.05) and its true 3D.",
    )
    p.add_argument("--data", required=True, help="motion archive (.npz) or BVH folder")
    p.add_argument("--clip", required=True, help="clip name, e.g. 09_01")
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--frames", type=int, default=300, help="at most this many frames from the start")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="clip .npz to write")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_make_clip)
    p = sub.add_parser(
        "make-windows", help="film motion with seeded virtual cameras: model inputs for `engines verify --data`",
        description="Write model inputs (an .npz with 'keypoints'): windows (count, window, 17, 3) ending at random "
        "frames, or with --frames consecutive frames (count, 17, 3) in segments of one clip each; each window or "
        "segment filmed by its own seeded virtual camera with training's detector noise model.",
    )
    p.add_argument("--data", required=True, help="motion archive (.npz) or BVH folder")
    p.add_argument("--groups", nargs="+", default=None, help="only these clip groups, e.g. CMU subjects 02 06 09 "
                   "(default: every clip)")
    p.add_argument("--window", type=int, default=None, help="frames per window (default 27)")
    p.add_argument("--count", type=int, default=512, help="windows, or frames with --frames (default 512)")
    p.add_argument("--frames", action="store_true", help="consecutive frames instead of random windows")
    p.add_argument("--segment", type=int, default=None, help="with --frames: consecutive frames per clip (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="inputs .npz to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_make_windows)
    p = sub.add_parser(
        "train-up", help="train the gravity (camera up direction) model on tilted virtual cameras",
        description="Train engines.gravity.UpModel: windows of the training subjects' motion filmed by virtual "
        "cameras with drawn pitch (-45..15 deg, negative looking down), roll (-20..20 deg), height (0.5-2.5 m) "
        "and distance (1.5-8 m), with the detector noise model; the validation subjects (CMU 02, 06, 09) are "
        "held out and score the checkpoint kept.",
    )
    p.add_argument("--data", required=True, help="motion archive (.npz) or BVH folder")
    p.add_argument("--out", required=True, help="model to write (.safetensors)")
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock training budget (default 15)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-roll", type=float, default=20.0,
                   help="training cameras' roll is uniform in [-R, R] degrees (default 20)")
    p.add_argument("--json", dest="json_out", default=None, help="write the training history as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_train_up)
    p = sub.add_parser(
        "evaluate-up", help="angular error of an up model on the validation subjects, vs the lifter's body axis",
        description="Film the validation subjects with tilted virtual cameras; print the median / p90 angular error "
        "of single windows and of a causal running mean over 2 s, for the up model, the shipped lifter's body axis "
        "and their fusion.",
    )
    p.add_argument("--data", required=True, help="motion archive (.npz) or BVH folder")
    p.add_argument("--model", default="default", help="up model (.safetensors), or 'default' for the shipped one")
    p.add_argument("--windows", type=int, default=2000)
    p.add_argument("--segments", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_evaluate_up)
    p = sub.add_parser(
        "methods-report",
        help="train and compare every learning method; write docs/methods.md",
        description="Train supervised, adversarial, multi-view and ordinal lifters (same small model, same "
        "wall-clock budget each), adapt the multi-view one at test time, evaluate all on the validation "
        "subjects (jitter 0.015, outliers 0.05) and write one markdown table.",
    )
    p.add_argument("--data", required=True, help="motion archive (.npz) or BVH folder")
    p.add_argument("--minutes", type=float, default=3.0, help="training budget per method (wall clock)")
    p.add_argument("--adapt-steps", type=int, default=150)
    p.add_argument("--runs", default="runs/methods", help="folder for the methods' checkpoints")
    p.add_argument("--out", default="docs/methods.md")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_methods_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
