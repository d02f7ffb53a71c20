"""``training``: motion import today; lifter training and evaluation next."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from engines.cli_support import coming_soon, run_cli

_TRAIN_SOON = (
    "training and evaluating the causal temporal transformer lifter (and the residual-MLP "
    "baselines) arrive with the lifter work; `training prepare` already builds the motion archives "
    "they will train on"
)


def _units(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def _prepare(args: argparse.Namespace) -> int:
    from training.motion import prepare

    archive = prepare(args.inputs, args.out, fps=args.fps, units=args.units,
                      drop_lead_in=not args.keep_lead_in, workers=args.workers,
                      progress=not args.quiet)
    frames = len(archive.joints3d)
    print(f"wrote {args.out}: {archive.num_clips} clips, {frames} frames "
          f"({frames / archive.fps / 60:.1f} min at {archive.fps:g} fps), "
          f"{len(set(archive.clip_groups))} groups")
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
        ".npz archive (joints3d, clip, clip_names, clip_groups, joint_names, fps).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".bvh/.bvh.gz files or folders")
    p.add_argument("--out", required=True, help="archive to write, e.g. motion.npz")
    p.add_argument("--fps", type=float, default=30.0, help="target frame rate (default 30)")
    p.add_argument("--units", type=_units, default="auto",
                   help="file length unit: auto (default), m, cm, mm, inch, cmu, or metres per unit")
    p.add_argument("--keep-lead-in", action="store_true", help="keep CMU rest-pose lead-in frames")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_prepare)
    for name, text in (("train", "train a lifter from a TOML config (coming)"),
                       ("evaluate", "evaluate a checkpoint on motion archives (coming)")):
        p = sub.add_parser(name, help=text, description=f"Not available yet: {_TRAIN_SOON}.")
        p.set_defaults(handler=coming_soon(_TRAIN_SOON), ignore_extra=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
