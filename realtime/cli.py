"""``realtime``: the streaming application's command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engines.cli_support import run_cli

if TYPE_CHECKING:
    from realtime.body import BodyStage
    from realtime.outputs import OutputOptions
    from realtime.pipeline import Pipeline, PipelineStats
    from realtime.smooth import SkeletonSmoother
    from realtime.world import WorldTransform

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
DEMO_CLIP = Path(__file__).resolve().parent / "assets" / "demo.mp4"


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


def _source_spec(args: argparse.Namespace):
    from realtime.sources import SourceSpec

    common = {"loop": args.loop, "fast": args.fast, "fps": args.fps}
    if args.video:
        return SourceSpec("video", args.video, **common)
    if args.images:
        return SourceSpec("images", args.images, **common)
    if args.url:
        return SourceSpec("url", args.url, **common)
    return SourceSpec("camera", str(0 if args.camera is None else args.camera), **common)


def _stream(args: argparse.Namespace, spec) -> int:
    """``run`` and ``demo``: check the flags, open everything, stream until done or Ctrl-C, release everything."""
    options = _check_stream_flags(args)
    with contextlib.ExitStack() as teardown:
        pipeline = _open_pipeline(args, spec, options, teardown)
        stats = _run_until_stopped(pipeline)
    if args.streamed is not None:
        args.streamed.set()
    _print_summary(stats, args.record)
    return 0


def _check_stream_flags(args: argparse.Namespace) -> OutputOptions:
    """Every cheap check, before the camera opens: a typo or a missing file is one sentence before
    anything heavy loads. Returns the checked output options."""
    import engines
    from realtime.detect2d import DETECTORS, make_detector
    from realtime.outputs import OutputOptions

    if args.detector not in DETECTORS:
        make_detector(args.detector)  # raises the sentence naming the choices
    if args.device != "cpu" and args.detector == "mediapipe":
        make_detector(args.detector, args.device)  # raises: mediapipe is CPU only
    if args.max_persons is not None and (args.detector != "blazepose" or args.max_persons < 1):
        raise ValueError("--max-persons takes a whole number from 1 and applies to --detector blazepose "
                         "(mediapipe follows one person)")
    if args.backend not in engines.BACKENDS:
        raise ValueError(f"unknown backend {args.backend!r}; choose one of {', '.join(engines.BACKENDS)}")
    if args.height is not None:
        from engines.models import check_height

        check_height(args.height)
    args.world_given = _world_flags(args)
    return OutputOptions.from_flags(bind=args.bind, vmc=args.vmc, record=args.record, rotations=args.rotations)


def _world_flags(args: argparse.Namespace) -> WorldTransform | None | object:
    """Check ``--frame``, ``--calibration``/``--camera-name``/``--up`` and ``--camera-pitch``/``-roll``/
    ``-height``; returns the calibrated transform, the checked ``TiltFlags``, or None (estimate all)."""
    from realtime.body import FRAMES
    from realtime.world import TiltFlags, camera_from_calibration, from_calibration

    if args.frame not in FRAMES:
        raise ValueError(f"--frame must be world or camera, got {args.frame!r}")
    tilt = TiltFlags(args.camera_pitch, args.camera_roll, args.camera_height)
    given = [f for f, v in (("--camera-pitch", args.camera_pitch), ("--camera-roll", args.camera_roll),
                            ("--camera-height", args.camera_height)) if v is not None]
    if args.calibration is None:
        if args.camera_name is not None or args.up is not None:
            raise ValueError("--camera-name and --up choose a camera and an axis of --calibration FILE; give the file too")
        return tilt if given else None
    if given:
        raise ValueError(f"--calibration gives the camera's tilt and height exactly; drop {' and '.join(given)}")
    return from_calibration(camera_from_calibration(args.calibration, args.camera_name), up=args.up)


def _open_pipeline(args: argparse.Namespace, spec, options: OutputOptions,
                   teardown: contextlib.ExitStack) -> Pipeline:
    """Open the source, the outputs, the lifter, the detector and the viewer, each released by
    ``teardown``. The ZeroMQ socket binds right after the source opens, seconds before the first
    message, so subscribers already waiting have connected by then."""
    import engines
    from realtime.detect2d import make_detector
    from realtime.lift import Lifter
    from realtime.outputs import build_outputs
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.sources import open_source

    source = open_source(spec)
    teardown.callback(source.release)
    outputs = build_outputs(options, source.info(), source.fps)
    for output in outputs:
        teardown.callback(output.close)
    engine = engines.load(args.checkpoint, backend=args.backend, spin=False)  # the CPU is shared with the detector
    lifter = Lifter(engine, _height_scale(args.height, engine))
    detector = make_detector(args.detector, args.device,
                             **({} if args.max_persons is None else {"max_persons": args.max_persons}))
    teardown.callback(detector.close)
    smoother = None if args.no_smoothing else _smoother(args.min_cutoff, args.beta)
    body = _body_stage(args)
    if not args.no_view:
        viewer = subprocess.Popen([sys.executable, "-m", "realtime.cli", "view", "--connect", args.bind])
        teardown.callback(viewer.terminate)
    print(f"publishing on {args.bind}: {spec.describe()} ({source.width}x{source.height} at {source.fps:g} fps), "
          f"detector {args.detector}, lifter {engine.backend} (T={engine.receptive_field}), {args.frame} frame "
          f"({_world_notice(body)})", file=sys.stderr)
    for output in outputs:
        if output.notice:
            print(output.notice, file=sys.stderr)
    config = PipelineConfig(max_frames=args.max_frames, status=not args.quiet, live=spec.live)
    return Pipeline(config, source, detector, lifter, outputs, smoother, body=body)


def _height_scale(height: float | None, engine) -> float:
    """The lifter's output scale for a person of ``height`` metres (1 without ``--height``)."""
    if height is None:
        return 1.0
    from engines.models import height_scale

    return height_scale(height, engine.body_size_m)


def _smoother(min_cutoff: float | None, beta: float | None) -> SkeletonSmoother:
    from realtime.smooth import OneEuroConfig, SkeletonSmoother, warmup

    warmup()
    tuned = {k: v for k, v in (("min_cutoff", min_cutoff), ("beta", beta)) if v is not None}
    return SkeletonSmoother(config=OneEuroConfig(**tuned))


def _body_stage(args: argparse.Namespace) -> BodyStage:
    """Steady bones, the world transform (calibrated, given or estimated) and ground contact."""
    from realtime.body import build_body_stage

    return build_body_stage(args.frame, args.world_given)


def _world_notice(body: BodyStage) -> str:
    w = body.world
    if w.current is not None:
        pitch, roll = w.current.tilt_deg
        return f"camera {w.current.source}: pitch {pitch:+.1f}, roll {roll:+.1f} deg, {w.current.height_m:.2f} m high"
    parts = ["tilt given" if w.fixed_up is not None else "tilt estimated from the person",
             "height given" if w.fixed_height_m is not None else "height estimated from the feet"]
    return ", ".join(parts)


def _run_until_stopped(pipeline: Pipeline) -> PipelineStats:
    """Run the pipeline's threads; Ctrl-C (SIGINT) asks them to stop instead of raising."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        return pipeline.run(stop)
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_summary(stats: PipelineStats, record: str | None) -> None:
    s = stats.summary()
    lat = s["latency_ms"]
    print(f"done: {s['published']} frames published ({s['with_person']} with a person) in {s['wall_s']:.1f} s, "
          f"{s['fps']:.1f} fps" + (f", capture->publish p50 {lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms" if lat else "")
          + (f"; recorded to {record}" if record else ""), file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    return _stream(args, _source_spec(args))


def _demo(args: argparse.Namespace) -> int:
    from realtime.sources import SourceSpec

    if not DEMO_CLIP.is_file():
        raise FileNotFoundError(2, "the bundled demo clip is missing from this installation", str(DEMO_CLIP))
    # the clip is under two seconds: it loops until Ctrl-C (or --max-frames)
    return _stream(args, SourceSpec("video", str(DEMO_CLIP), loop=True, fast=args.fast, fps=args.fps))


def _detect(args: argparse.Namespace) -> int:
    from realtime.detect_video import DetectConfig, detect_video, write_keypoints

    config = DetectConfig(video=args.video, out=args.out, detector=args.detector, device=args.device,
                          runtime=args.runtime, max_persons=args.max_persons, smooth=not args.no_smoothing,
                          max_frames=args.max_frames, progress=not args.quiet)
    arrays = detect_video(config)
    out = write_keypoints(arrays, args.out)
    seen = int((arrays["ids"] >= 0).any(axis=1).sum())
    people = len(set(arrays["ids"][arrays["ids"] >= 0].tolist()))
    print(f"wrote {out}: {arrays['ids'].shape[0]} frames, a person in {seen}, {people} person id"
          f"{'s' if people != 1 else ''}", file=sys.stderr)
    return 0


def _view(args: argparse.Namespace) -> int:
    from realtime.viewer import ViewerConfig, run_viewer

    return run_viewer(ViewerConfig(endpoint=args.connect, headless=args.headless, screenshot=args.screenshot,
                                   frames=args.frames, timeout_s=args.timeout))


def _stream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--loop", action="store_true", help="start files over at the end")
    p.add_argument("--fast", action="store_true", help="process files as fast as possible, every frame "
                   "(default: replay at the native frame rate, like a camera)")
    p.add_argument("--fps", type=float, default=None, help="frame rate for image folders (default 30) or to override a file's")
    p.add_argument("--detector", default="mediapipe", help="2D detector: mediapipe (default) or blazepose")
    p.add_argument("--device", default="cpu", help="2D detector device: cpu (default) or cuda (blazepose only)")
    p.add_argument("--max-persons", type=int, default=None,
                   help="blazepose: people tracked at once (default 4; 1 follows one person as MediaPipe does)")
    p.add_argument("--backend", default="auto", help="lifter engine backend (engines.BACKENDS; default auto)")
    p.add_argument("--checkpoint", default="default", help="lifter checkpoint or built engine (default: shipped model)")
    p.add_argument("--bind", default=DEFAULT_ENDPOINT, help=f"ZeroMQ PUB endpoint (default {DEFAULT_ENDPOINT}, loopback)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--record", default=None, metavar="OUT.npz|OUT.bvh",
                   help="write every published skeleton to this file (.bvh: the rig as a BVH take for Blender)")
    p.add_argument("--rotations", action="store_true",
                   help="add bone rotations to every message (protocol v2; v1-only clients skip such messages)")
    p.add_argument("--vmc", default=None, metavar="HOST:PORT",
                   help="also send the rig over the VMC protocol (OSC/UDP), e.g. 127.0.0.1:39539")
    p.add_argument("--frame", default="world", metavar="world|camera",
                   help="coordinates of every output: world (default: y up, floor at y = 0, origin on the floor "
                   "below the camera; protocol v3) or camera (the camera's own frame; protocol v1/v2)")
    p.add_argument("--calibration", default=None, metavar="FILE",
                   help="the camera's calibration (posestream .toml/.json or Qualisys .qca.txt): exact tilt and height")
    p.add_argument("--camera-name", default=None, metavar="NAME", help="which camera of --calibration this is")
    p.add_argument("--up", default=None, metavar="AXIS",
                   help="the up axis of --calibration's world (x, y, z, -x, -y, -z; default: detected)")
    p.add_argument("--camera-pitch", type=float, default=None, metavar="DEG",
                   help="the camera's pitch, degrees above the horizon (negative: looking down); default estimated")
    p.add_argument("--camera-roll", type=float, default=None, metavar="DEG",
                   help="the camera's roll, degrees (positive: the image's right edge raised); default estimated")
    p.add_argument("--camera-height", type=float, default=None, metavar="M",
                   help="the camera's height above the floor, metres; default estimated from the feet")
    p.add_argument("--height", type=float, default=None, metavar="METRES",
                   help="the person's standing height: metric-true bones and distance (default: a typical adult, "
                   "1.66 m for the shipped model; one camera cannot tell size from distance)")
    p.add_argument("--no-view", action="store_true", help="do not open the Open3D viewer")
    p.add_argument("--no-smoothing", action="store_true", help="publish the lifter's output unfiltered")
    p.add_argument("--min-cutoff", type=float, default=None, help="One Euro min cutoff, Hz (default: see docs)")
    p.add_argument("--beta", type=float, default=None, help="One Euro speed coefficient (default: see docs)")
    p.add_argument("--quiet", action="store_true", help="no live status line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime",
        description="Real-time 3D human pose from a webcam or video, streamed over ZeroMQ.",
    )
    parser.set_defaults(streamed=None)  # main gives an Event: a stream command sets it after its run
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
    p = sub.add_parser("run", help="stream 3D poses from a camera, video, image folder or URL",
                       description="Capture, detect 2D, lift to 3D, smooth and publish over ZeroMQ "
                       "(protocol: docs/protocol.md), with the Open3D viewer unless --no-view.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=None, help="camera index (default 0)")
    src.add_argument("--video", help="video file")
    src.add_argument("--images", help="folder of images, in name order")
    src.add_argument("--url", help="RTSP/HTTP stream URL")
    _stream_options(p)
    p.set_defaults(handler=_run)

    p = sub.add_parser("demo", help="the whole pipeline on a bundled clip (no camera needed)",
                       description=f"Run `realtime run` on the bundled clip {DEMO_CLIP.name} (Pose2Sim demo, BSD-3), "
                       "looping until Ctrl-C or --max-frames.")
    _stream_options(p)
    p.set_defaults(handler=_demo)

    p = sub.add_parser("detect", help="2D landmarks of every frame of a video, to a .npz",
                       description="Run a 2D detector over every frame of a video and write landmarks (MediaPipe's 33, "
                       "pixels), visibility, person ids and the canonical 17 joints to one .npz.")
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--detector", default="mediapipe", help="mediapipe (default, CPU, one person) or blazepose "
                   "(the same networks in PyTorch/ONNX Runtime, CPU or CUDA, several people)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (blazepose only)")
    p.add_argument("--runtime", default=None, choices=("torch", "onnxruntime"),
                   help="blazepose runtime (default: onnxruntime on the CPU, torch on CUDA)")
    p.add_argument("--max-persons", type=int, default=4, help="blazepose: people tracked at once (default 4)")
    p.add_argument("--no-smoothing", action="store_true", help="skip MediaPipe's landmark filter")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--out", required=True, metavar="KEYPOINTS.npz", help="output file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_detect)

    p = sub.add_parser("view", help="Open3D viewer for a stream",
                       description="Show the skeletons published on an endpoint with a floor grid, fps and latency.")
    p.add_argument("--connect", default=DEFAULT_ENDPOINT, help=f"endpoint to subscribe to (default {DEFAULT_ENDPOINT})")
    p.add_argument("--headless", action="store_true", help="render offscreen (no window)")
    p.add_argument("--screenshot", default=None, help="write the last rendered frame to this PNG")
    p.add_argument("--frames", type=int, default=None, help="stop after this many messages")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the first message (default 10)")
    p.set_defaults(handler=_view)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    streamed = threading.Event()  # set by a stream command once its pipeline ran and everything is released
    parser.set_defaults(streamed=streamed)
    code = run_cli(parser, argv)
    if streamed.is_set() and argv is None:
        # Launched from the command line after a pipeline ran: threads are joined, sockets closed,
        # the camera released and the recording written. Skip the interpreter's teardown of
        # MediaPipe, ONNX Runtime and torch (over a second on 2 cores) so Ctrl-C exits promptly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
