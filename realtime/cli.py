"""``realtime``: the streaming application's command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from engines.cli_support import coming_soon, run_cli

_PIPELINE_SOON = (
    "the streaming pipeline (capture, 2D detection, 3D lifting, smoothing, ZeroMQ publishing "
    "and the Open3D viewer) is not built yet; `realtime doctor --camera 0` checks your camera, "
    "MediaPipe and the canonical skeleton today"
)


def _doctor(args: argparse.Namespace) -> int:
    from engines.skeleton import CANONICAL
    from realtime.doctor import check_source, open_source, stack_versions

    for name, version in stack_versions().items():
        print(f"{name:12s} {version}")
    cap = open_source(args.camera, args.video)
    try:
        report = check_source(cap, args.frames)
    finally:
        cap.release()
    print(f"source      {report.frames} frames read, a person in {report.with_person}")
    if report.last_pose_world is None:
        print("no person found: stand in view of the camera, whole body if you can")
        return 1
    print("last pose, canonical joints in metres (MediaPipe world frame, y down, hips at origin):")
    for name, xyz in zip(CANONICAL.joint_names, report.last_pose_world):
        print(f"  {name:15s} {xyz[0]:+.3f} {xyz[1]:+.3f} {xyz[2]:+.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime",
        description="Real-time 3D human pose from a webcam or video, streamed over ZeroMQ.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    p = sub.add_parser(
        "doctor",
        help="check the stack and a camera/video end to end with MediaPipe",
        description="Print library versions and GPU status, open a camera or video, run MediaPipe "
        "Pose on a few frames and show the last pose in posestream's canonical joints.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=None, help="camera index (default 0)")
    src.add_argument("--video", help="video file instead of a camera")
    p.add_argument("--frames", type=int, default=30, help="frames to check (default 30)")
    p.set_defaults(handler=_doctor)
    for name, text in (
        ("run", "stream 3D poses from a camera or video (coming)"),
        ("view", "Open3D viewer for a stream (coming)"),
        ("demo", "the whole pipeline on a bundled clip (coming)"),
    ):
        p = sub.add_parser(name, help=text, description=f"Not available yet: {_PIPELINE_SOON}.")
        p.set_defaults(handler=coming_soon(_PIPELINE_SOON), ignore_extra=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
