"""End-to-end pipeline on real video: fps, capture-to-publish latency and pipeline overhead.

    python -m benchmarks pipeline [--video PATH] [--fast] [--frames N] [--json FILE]

Runs the real pipeline in this process (MediaPipe on the CPU, the shipped lifter through
``engines.load(backend="auto")``, the Numba smoother, a real ZeroMQ publisher on a free loopback
port, read by a ``realtime.client.Subscriber`` in another process) on a clip replayed at its
native rate (default: ``../shared/media/sports2d-demo/demo.mp4``, 30 fps, 1768x994) or unpaced
with ``--fast``. Per published frame: latency = publish stamp - capture stamp; overhead = latency
- detector compute - lifter compute, i.e. what the threads, queues, smoothing and publishing add
(its share spent waiting for the detector is reported too, split into frames that found the
detector idle, where the wait is the handoff between threads, and frames that arrived while it was
still on the previous frame); the per-stage spans
(``STAGES``, then transport to the subscriber) add up to capture -> subscriber receipt. The
capture stamp is taken after the frame is grabbed and decoded, so decoding (reported as
``capture_ms``) is outside the latency, as a camera's exposure is. Sustained fps = published
frames / wall time. CPU and memory of this process over the run (``benchmarks.resources``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

TARGET_FPS = 25.0
TARGET_OVERHEAD_P99_MS = 3.0

# Consecutive spans of one frame's life, from the stamps the pipeline keeps (realtime.pipeline):
# they add up to capture -> publish (and, with the transport span, to capture -> subscriber).
STAGES = (
    ("wait_for_detector", "t_capture_ns", "t_detect_start_ns"),
    ("detection", "t_detect_start_ns", "t_detect_end_ns"),
    ("queue_to_lifter", "t_detect_end_ns", "t_lift_start_ns"),
    ("lifting", "t_lift_start_ns", "t_lift_end_ns"),
    ("queue_to_publisher", "t_lift_end_ns", "t_publish_stage_ns"),
    ("smoothing", "t_publish_stage_ns", "t_smooth_end_ns"),
    ("publishing", "t_smooth_end_ns", "t_publish_ns"),
)


def _pct(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan")}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "p99": float(np.percentile(values, 99)), "mean": float(values.mean())}


def _detector_waits(stamps: list[dict[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per published frame, capture -> detection start in ms, and whether the detector was still
    busy with the previous published frame when this one was captured (its wait then includes
    the rest of that detection; with an idle detector the wait is only the handoff between threads)."""
    wait = np.array([(s["t_detect_start_ns"] - s["t_capture_ns"]) / 1e6 for s in stamps])
    busy = np.zeros(len(stamps), bool)
    busy[1:] = [b["t_detect_end_ns"] > a["t_capture_ns"] for a, b in zip(stamps[1:], stamps[:-1])]
    return wait, busy


def _stage_spans(stamps: list[dict[str, int]], receipts: np.ndarray) -> dict[str, np.ndarray]:
    """Per published frame, each span of ``STAGES`` in ms, plus ``transport`` (publish stamp to the
    subscriber process's receipt; NaN for a message it did not get) and ``to_subscriber``."""
    spans = {name: np.array([(s[b] - s[a]) / 1e6 for s in stamps]) for name, a, b in STAGES}
    got = {int(r[0]): r for r in receipts}
    spans["transport"] = np.array([got[s["seq"]][2] / 1e6 if s["seq"] in got else np.nan for s in stamps])
    spans["to_subscriber"] = np.array([got[s["seq"]][3] / 1e6 if s["seq"] in got else np.nan for s in stamps])
    return spans


def run(video: Path, fast: bool, frames: int | None, warmup_frames: int = 10, detector: str = "mediapipe",
        max_persons: int = 1) -> dict[str, Any]:
    """One pipeline run on ``video`` with a subscriber process; see the module docstring.

    The first ``warmup_frames`` published frames are left out of every latency statistic (caches,
    allocator, the subscriber's first wake-ups); fps counts the whole run. ``detector``:
    ``mediapipe`` (the targets' detector) or ``blazepose`` (the port on ONNX Runtime, following
    ``max_persons`` people; 1 does what MediaPipe does).
    """
    import engines
    from benchmarks.machine import describe
    from benchmarks.resources import ResourceMeter
    from benchmarks.transport import RemoteSubscriber
    from engines.skeleton import CANONICAL
    from realtime.body import build_body_stage
    from realtime.detect2d import make_detector
    from realtime.lift import Lifter
    from realtime.outputs import ZmqOutput
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.publish import Publisher
    from realtime.smooth import SkeletonSmoother, warmup
    from realtime.sources import SourceSpec, open_source

    warmup()
    spec = SourceSpec("video", str(video), fast=fast)
    source = open_source(spec)
    engine = engines.load("default", backend="auto", spin=False)  # as realtime run loads it
    detector_2d = make_detector(detector, **({"max_persons": max_persons} if detector == "blazepose" else {}))
    empty = np.zeros((0, CANONICAL.num_joints, 3), np.float32)
    with Publisher("tcp://127.0.0.1:*", source=source.info()) as publisher:
        subscriber = RemoteSubscriber(publisher.endpoint)
        try:
            subscriber.connect(lambda: publisher.send(empty, frame=0, timestamps={}, persons=[]))
            config = PipelineConfig(max_frames=frames, status=False, live=spec.live, keep_stamps=True)
            pipeline = Pipeline(config, source, detector_2d, Lifter(engine), [ZmqOutput(publisher)], SkeletonSmoother(),
                                body=build_body_stage())  # as realtime run publishes: world frame, steady bones
            with ResourceMeter() as meter:
                stats = pipeline.run()
            receipts = subscriber.collect()
        finally:
            subscriber.close()
    source.release()
    detector_2d.close()
    skip = slice(min(warmup_frames, max(len(stats.stamps) - 1, 0)), None)
    spans = {k: v[skip] for k, v in _stage_spans(stats.stamps, receipts).items()}
    lat, det, lift = (np.asarray(v)[skip] for v in (stats.latency_ms, stats.detect_ms, stats.lift_ms))
    overhead = lat - det - lift
    wait, busy = (v[skip] for v in _detector_waits(stats.stamps))
    fps = stats.published / stats.wall_s
    return {
        "machine": describe("numpy", "cv2", "mediapipe", "onnxruntime", "torch", "zmq"),
        "video": str(video), "source": source.info(), "paced": not fast, "lifter_backend": engine.backend,
        "detector": detector, **({"max_persons": max_persons} if detector == "blazepose" else {}),
        "captured": stats.captured, "published": stats.published, "with_person": stats.with_person,
        "dropped": stats.dropped, "wall_s": stats.wall_s, "fps": fps, "warmup_frames": skip.start,
        "received_by_subscriber": int(np.isfinite(spans["transport"]).sum()),
        "latency_ms": _pct(lat), "detect_ms": _pct(det), "lift_ms": _pct(lift), "overhead_ms": _pct(overhead),
        "smooth_publish_ms": _pct(np.asarray(stats.smooth_publish_ms)[skip]),
        "wait_for_detector_ms": _pct(np.asarray(stats.wait_detect_ms)[skip]),
        "wait_idle_detector_ms": _pct(wait[~busy]), "wait_busy_detector_ms": _pct(wait[busy]),
        "frames_detector_busy": int(busy.sum()),
        "capture_ms": _pct(np.asarray(stats.capture_ms)),
        "stages_ms": {k: _pct(v[np.isfinite(v)]) for k, v in spans.items()},
        "resources": meter.result(),
        "samples_ms": {"capture_to_publish": [round(float(v), 3) for v in lat],
                       "capture_to_subscriber": [round(float(v), 3) for v in spans["to_subscriber"] if np.isfinite(v)]},
        "targets": {"fps": TARGET_FPS, "fps_met": fps >= TARGET_FPS,
                    "overhead_p99_ms": TARGET_OVERHEAD_P99_MS,
                    "overhead_met": float(np.percentile(overhead, 99)) <= TARGET_OVERHEAD_P99_MS},
    }


STAGE_LABELS = {
    "wait_for_detector": "waiting for the detector (queue + busy)", "detection": "detection (2D detector)",
    "queue_to_lifter": "queue to the lifter", "lifting": "lifting", "queue_to_publisher": "queue to the publisher",
    "smoothing": "smoothing (One Euro)", "publishing": "publishing (header, send)",
    "transport": "transport to the subscriber process", "to_subscriber": "capture -> subscriber receipt",
}


def markdown(r: dict[str, Any]) -> str:
    rows = [("capture -> publish", r["latency_ms"]), (f"detector ({r.get('detector', 'mediapipe')})", r["detect_ms"]),
            ("lifter", r["lift_ms"]), ("smoothing + publishing", r["smooth_publish_ms"]),
            ("pipeline overhead", r["overhead_ms"]),
            ("... of which waiting for the detector", r["wait_for_detector_ms"])]
    if "frames_detector_busy" in r:
        n = r["frames_detector_busy"]
        rows += [("waiting, detector idle (thread handoff)", r["wait_idle_detector_ms"]),
                 (f"waiting, detector still on the previous frame ({n} frames)", r["wait_busy_detector_ms"])]
    if "stages_ms" in r:
        rows += [(f"stage: {STAGE_LABELS[k]}", v) for k, v in r["stages_ms"].items()]
        rows.append(("capture (grab + decode, before the capture stamp)", r["capture_ms"]))
    lines = [(f"{r['machine']['cpu']}, {r['machine']['cores']} cores; {Path(r['video']).name} "
             f"({r['source']['width']}x{r['source']['height']} at {r['source']['fps']:g} fps, "
             f"{'native rate' if r['paced'] else 'unpaced'}); lifter {r['lifter_backend']}"), "",
             (f"{r['published']} of {r['captured']} frames published ({r['with_person']} with a person), "
             f"{r['fps']:.1f} fps sustained, dropped {r['dropped']}"), "",
             "| ms | p50 | p95 | p99 |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {v['p50']:.2f} | {v['p95']:.2f} | {v['p99']:.2f} |" for name, v in rows]
    return "\n".join(lines)


def shared_dir() -> Path:
    """``../shared`` beside the working directory or the source checkout (the first that exists)."""
    candidates = [Path.cwd() / ".." / "shared", Path(__file__).resolve().parents[2] / "shared"]
    return next((c.resolve() for c in candidates if c.is_dir()), Path("../shared"))


def default_video() -> Path:
    """The 30 fps clip the pipeline targets are stated for: the Sports2D demo (1768x994)."""
    return shared_dir() / "media" / "sports2d-demo" / "demo.mp4"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", default=None)
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--detector", default="mediapipe", choices=("mediapipe", "blazepose"))
    ap.add_argument("--max-persons", type=int, default=1, help="blazepose: people tracked (default 1)")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)
    video = Path(args.video) if args.video else default_video()
    if not video.is_file():
        print(f"error: {video} not found; pass --video", flush=True)
        return 2
    report = run(video, args.fast, args.frames, detector=args.detector, max_persons=args.max_persons)
    print(markdown(report))
    print(json.dumps(report["targets"]))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 0
