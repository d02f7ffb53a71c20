"""End-to-end pipeline on real video: fps, capture-to-publish latency and pipeline overhead.

    python -m benchmarks pipeline [--video PATH] [--fast] [--frames N] [--json FILE]

Runs the real pipeline in this process (MediaPipe on the CPU, the shipped lifter through
``engines.load(backend="auto")``, the Numba smoother, a real ZeroMQ publisher on a free loopback
port) on a clip replayed at its native rate (default: ``../shared/media/sports2d-demo/demo.mp4``,
30 fps, 1768x994) or unpaced with ``--fast``. Per published frame: latency = publish - capture;
overhead = latency - detector compute - lifter compute, i.e. what the threads, queues, smoothing
and publishing add. Sustained fps = published frames / wall time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

TARGET_FPS = 25.0
TARGET_OVERHEAD_P99_MS = 3.0


def _pct(values: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "p99": float(np.percentile(values, 99))}


def run(video: Path, fast: bool, frames: int | None) -> dict[str, Any]:
    import engines
    from benchmarks.machine import describe
    from realtime.detect2d import MediaPipeDetector
    from realtime.lift import Lifter
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.publish import Publisher
    from realtime.smooth import SkeletonSmoother, warmup
    from realtime.sources import SourceSpec, open_source

    warmup()
    spec = SourceSpec("video", str(video), fast=fast)
    source = open_source(spec)
    engine = engines.load("default", backend="auto")
    detector = MediaPipeDetector()
    with Publisher("tcp://127.0.0.1:*", source=source.info()) as publisher:
        pipeline = Pipeline(PipelineConfig(max_frames=frames, status=False, live=spec.live), source, detector,
                            Lifter(engine), publisher, SkeletonSmoother())
        stats = pipeline.run()
    source.release()
    detector.close()
    lat, det, lift = (np.asarray(v) for v in (stats.latency_ms, stats.detect_ms, stats.lift_ms))
    overhead = lat - det - lift
    fps = stats.published / stats.wall_s
    return {
        "machine": describe("numpy", "cv2", "mediapipe", "onnxruntime", "torch", "zmq"),
        "video": str(video), "source": source.info(), "paced": not fast, "lifter_backend": engine.backend,
        "captured": stats.captured, "published": stats.published, "with_person": stats.with_person,
        "dropped": stats.dropped, "wall_s": stats.wall_s, "fps": fps,
        "latency_ms": _pct(lat), "detect_ms": _pct(det), "lift_ms": _pct(lift), "overhead_ms": _pct(overhead),
        "smooth_publish_ms": _pct(np.asarray(stats.smooth_publish_ms)),
        "wait_for_detector_ms": _pct(np.asarray(stats.wait_detect_ms)),
        "targets": {"fps": TARGET_FPS, "fps_met": fps >= TARGET_FPS,
                    "overhead_p99_ms": TARGET_OVERHEAD_P99_MS,
                    "overhead_met": float(np.percentile(overhead, 99)) <= TARGET_OVERHEAD_P99_MS},
    }


def markdown(r: dict[str, Any]) -> str:
    rows = [("capture -> publish", r["latency_ms"]), ("detector (MediaPipe)", r["detect_ms"]),
            ("lifter", r["lift_ms"]), ("smoothing + publishing", r["smooth_publish_ms"]),
            ("pipeline overhead", r["overhead_ms"]),
            ("... of which waiting for the detector", r["wait_for_detector_ms"])]
    lines = [f"{r['machine']['cpu']}, {r['machine']['cores']} cores; {Path(r['video']).name} "
             f"({r['source']['width']}x{r['source']['height']} at {r['source']['fps']:g} fps, "
             f"{'native rate' if r['paced'] else 'unpaced'}); lifter {r['lifter_backend']}", "",
             f"{r['published']} of {r['captured']} frames published ({r['with_person']} with a person), "
             f"{r['fps']:.1f} fps sustained, dropped {r['dropped']}", "",
             "| ms | p50 | p95 | p99 |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {v['p50']:.2f} | {v['p95']:.2f} | {v['p99']:.2f} |" for name, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from engines.verify import default_motion_source  # locates ../shared beside the checkout

    ap = argparse.ArgumentParser(prog="python -m benchmarks pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", default=None)
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)
    video = Path(args.video) if args.video else None
    if video is None:
        mocap = default_motion_source()
        shared = mocap.parents[1] if mocap is not None else Path("../shared")
        video = shared / "media" / "sports2d-demo" / "demo.mp4"
    if not video.is_file():
        print(f"error: {video} not found; pass --video", flush=True)
        return 2
    report = run(video, args.fast, args.frames)
    print(markdown(report))
    print(json.dumps(report["targets"]))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 0
