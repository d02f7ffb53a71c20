"""2D detection speed: MediaPipe Pose against the BlazePose port, per frame and per network.

    python -m benchmarks detector [--video PATH] [--frames 100] [--repeat 3] [--json out.json]
    python -m benchmarks detector --faithfulness [--videos A.mp4 B.mp4]

Cases (each: warm-up, then every frame of the clip timed ``repeat`` times, p50/p95/p99 in ms):

* ``pipeline cpu``: one person in video mode, a whole ``process`` call per frame, host to host
  (crop, networks, decoding, filtering): ``mediapipe.solutions.pose`` (model_complexity=1,
  smoothing on) against the port (``max_persons=1``, same settings) under ONNX Runtime and torch
  on the CPU. Target: the port under ONNX Runtime within 1.3x of MediaPipe's p50.
* ``networks cpu``: the detector and the landmark network alone, batch 1, on real inputs.
* GPU (only where torch sees CUDA; skipped otherwise): the two networks in torch with CUDA graphs,
  FP32 and FP16, batch 1 (target: detector + landmarks <= 2 ms per frame), the landmark network
  at batch 8 (target: <= 2x batch 1), the whole pipeline per frame, and the FP16 error against
  FP32 in image pixels over the clip.

``--faithfulness`` measures instead how far the port's landmarks are from MediaPipe's on every
frame of each clip (video mode, defaults, landmarks MediaPipe sees as visible, pixels), tracking
on its own (closed loop) and when handed MediaPipe's region every frame (open loop), next to how
far MediaPipe is from itself when 0.1% of the pixel values are off by one grey level.

The default clip is ``../shared/media/pose2sim-demo/cam03.mp4`` (1088x1920, one person).
On a shared 2-core machine the numbers move by tens of percent between runs: compare ratios
measured in one run, and rerun on a quiet machine for absolute figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "pose2sim-demo" / "cam03.mp4"
TARGET_CPU_RATIO = 1.3
TARGET_GPU_MS = 2.0
TARGET_BATCH8_RATIO = 2.0


def _stats(ms: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "n": int(ms.size)}


def _frames(video: Path, count: int) -> list[np.ndarray]:
    from realtime.sources import video_frames

    out = list(video_frames(video, count=count))
    if not out:
        raise SystemExit(f"{video}: no frames could be read")
    return out


def _time_calls(fn, items: list, repeat: int, warmup: int = 10, sync=None) -> np.ndarray:
    for item in items[:warmup]:
        fn(item)
    times = []
    for _ in range(repeat):
        for item in items:
            t0 = time.perf_counter_ns()
            fn(item)
            if sync is not None:
                sync()
            times.append(time.perf_counter_ns() - t0)
    return np.array(times) / 1e6


def _mediapipe_pipeline(frames: list[np.ndarray], repeat: int) -> np.ndarray:
    import cv2
    import mediapipe as mp

    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]  # conversion outside the timing, both sides
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True) as pose:
        return _time_calls(pose.process, rgb, repeat)


def _port_pipeline(frames: list[np.ndarray], repeat: int, **config) -> np.ndarray:
    from realtime.blazepose import BlazePose, BlazePoseConfig

    pose = BlazePose(BlazePoseConfig(max_persons=1, **config))
    return _time_calls(pose.process, frames, repeat)


def _real_inputs(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Detector inputs (N, 224, 224, 3) and the landmark crops the port tracked (N, 256, 256, 3)."""
    from realtime.blazepose import BlazePose, BlazePoseConfig
    from realtime.blazepose import geometry as geo

    det = np.stack([geo.letterbox_input(f)[0] for f in frames])
    pose = BlazePose(BlazePoseConfig(max_persons=1, runtime="onnxruntime"))
    crops = []
    for f in frames:
        if pose.tracks:
            crops.append(geo.landmark_input(f, pose.tracks[0].rect)[0])
        pose.process(f)
    if not crops:
        crops = [geo.landmark_input(frames[0], (0.5, 0.5, 0.5, 0.5, 0.0))[0]]
    return det, np.stack(crops)


def _networks(runtime: str, device: str, det: np.ndarray, crops: np.ndarray, repeat: int,
              precision: str = "fp32", batch8: bool = False) -> dict[str, Any]:
    from engines.blazepose_runtime import load_runner

    sync = None
    if device == "cuda":
        import torch

        sync = torch.cuda.synchronize
    d = load_runner("detector", runtime, device=device, precision=precision)
    lm = load_runner("landmark", runtime, outputs=("landmarks", "pose_flag", "heatmap"), device=device,
                     precision=precision)
    out = {"detector": _stats(_time_calls(lambda x: d(x[None]), list(det), repeat, sync=sync)),
           "landmark": _stats(_time_calls(lambda x: lm(x[None]), list(crops), repeat, sync=sync))}
    pairs = list(zip(det, crops))
    out["detector+landmark"] = _stats(_time_calls(lambda p: (d(p[0][None]), lm(p[1][None])), pairs, repeat, sync=sync))
    if batch8:
        groups = [crops[np.arange(i, i + 8) % len(crops)] for i in range(0, len(crops), 8)]
        out["landmark_batch8"] = _stats(_time_calls(lm, groups, repeat * 8, sync=sync))
    return out


def _fp16_error(frames: list[np.ndarray]) -> dict[str, float]:
    """Image-pixel landmark error of the FP16 pipeline against FP32 (both torch on CUDA)."""
    from realtime.blazepose import BlazePose, BlazePoseConfig

    a = BlazePose(BlazePoseConfig(max_persons=1, device="cuda", precision="fp32"))
    b = BlazePose(BlazePoseConfig(max_persons=1, device="cuda", precision="fp16"))
    errs = []
    for f in frames:
        ra, rb = a.process(f), b.process(f)
        if ra.persons and rb.persons:
            vis = ra.visibility[0] > 0.5
            errs.append(np.linalg.norm(ra.pixels[0] - rb.pixels[0], axis=-1)[vis])
    e = np.concatenate(errs) if errs else np.zeros(1)
    return {"median_px": float(np.median(e)), "p95_px": float(np.percentile(e, 95)), "max_px": float(e.max())}


def _fp16_standin_error(crops: np.ndarray, count: int = 20) -> dict[str, float]:
    """Without a GPU: the landmark network in torch half precision on the CPU (the arithmetic a
    GPU's FP16 path does, not its kernels) against FP32, landmark error in crop pixels (of 256)."""
    import torch

    from engines.blazepose import load_network

    net = load_network("landmark", ("landmarks", "heatmap"))
    half = load_network("landmark", ("landmarks", "heatmap")).half()
    x = torch.from_numpy(crops[:count])
    with torch.no_grad():
        a = net(x)[0].reshape(len(x), 39, 5)[:, :33, :2]
        b = half(x.half())[0].float().reshape(len(x), 39, 5)[:, :33, :2]
    e = torch.linalg.norm(a - b, dim=-1).numpy().reshape(-1)
    return {"median_crop_px": float(np.median(e)), "p95_crop_px": float(np.percentile(e, 95)),
            "max_crop_px": float(e.max()), "crops": len(x)}


def run(video: Path, count: int, repeat: int) -> dict[str, Any]:
    import torch

    from benchmarks.machine import describe

    frames = _frames(video, count)
    h, w = frames[0].shape[:2]
    report: dict[str, Any] = {"machine": describe("torch", "onnxruntime", "mediapipe", "cv2"),
                              "video": str(video), "frames": len(frames), "size": [w, h], "repeat": repeat}
    report["machine"]["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    pipe = {"mediapipe": _stats(_mediapipe_pipeline(frames, repeat)),
            "port onnxruntime": _stats(_port_pipeline(frames, repeat, runtime="onnxruntime")),
            "port torch": _stats(_port_pipeline(frames, repeat, runtime="torch"))}
    report["pipeline_cpu"] = pipe
    det, crops = _real_inputs(frames)
    report["networks_cpu"] = {"onnxruntime": _networks("onnxruntime", "cpu", det, crops, repeat),
                              "torch": _networks("torch", "cpu", det, crops, repeat)}
    ratio = pipe["port onnxruntime"]["p50_ms"] / pipe["mediapipe"]["p50_ms"]
    summary: dict[str, Any] = {"cpu_ratio_p50": ratio, "cpu_target_met": ratio <= TARGET_CPU_RATIO}
    if torch.cuda.is_available():
        gpu = {p: _networks("torch", "cuda", det, crops, repeat, precision=p, batch8=True) for p in ("fp32", "fp16")}
        gpu["pipeline"] = {p: _stats(_port_pipeline(frames, repeat, device="cuda", precision=p)) for p in ("fp32", "fp16")}
        gpu["fp16_error"] = _fp16_error(frames)
        report["gpu"] = gpu
        both = gpu["fp32"]["detector+landmark"]["p50_ms"]
        b8 = gpu["fp32"]["landmark_batch8"]["p50_ms"] / gpu["fp32"]["landmark"]["p50_ms"]
        summary.update({"gpu_detector_landmark_p50_ms": both, "gpu_target_met": both <= TARGET_GPU_MS,
                        "gpu_batch8_ratio": b8, "gpu_batch8_target_met": b8 <= TARGET_BATCH8_RATIO,
                        "fp16_error_px": gpu["fp16_error"]})
    else:
        report["gpu"] = {"skipped": "no CUDA GPU visible to torch"}
        summary["fp16_cpu_standin_error"] = _fp16_standin_error(crops)
    report["summary"] = summary
    return report


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [(f"Machine: {m['cpu']}, {m['cores']} cores, GPU {m.get('gpu') or 'none'}; torch {m['torch']}, "
              f"onnxruntime {m['onnxruntime']}, mediapipe {m['mediapipe']}; clip {Path(report['video']).name} "
              f"({report['size'][0]}x{report['size'][1]}), {report['frames']} frames x {report['repeat']}."), "",
             "| case | p50 ms | p95 ms | p99 ms |", "| --- | --- | --- | --- |"]
    for name, s in report["pipeline_cpu"].items():
        lines.append(f"| pipeline cpu: {name} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} | {s['p99_ms']:.2f} |")
    for rt, nets in report["networks_cpu"].items():
        for name, s in nets.items():
            lines.append(f"| network cpu {rt}: {name} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} | {s['p99_ms']:.2f} |")
    gpu = report.get("gpu", {})
    if "skipped" in gpu:
        lines.append(f"| gpu | skipped: {gpu['skipped']} | | |")
    else:
        for p in ("fp32", "fp16"):
            for name, s in gpu[p].items():
                lines.append(f"| gpu torch {p}: {name} | {s['p50_ms']:.3f} | {s['p95_ms']:.3f} | {s['p99_ms']:.3f} |")
            s = gpu["pipeline"][p]
            lines.append(f"| gpu pipeline {p} | {s['p50_ms']:.3f} | {s['p95_ms']:.3f} | {s['p99_ms']:.3f} |")
    return "\n".join(lines)


def _mediapipe_video(frames: list[np.ndarray]) -> list[dict]:
    """MediaPipe Pose (video mode, defaults): landmarks and the region it derived from them."""
    import cv2
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import pose as mp_pose

    graph = SolutionBase(binary_graph_path=mp_pose._BINARYPB_FILE_PATH,
                         side_inputs={"model_complexity": 1, "smooth_landmarks": True, "enable_segmentation": False,
                                      "smooth_segmentation": True, "use_prev_landmarks": True},
                         outputs=["pose_landmarks", "pose_rect_from_landmarks"])
    out = []
    for img in frames:
        r = graph.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        n = r.pose_rect_from_landmarks
        out.append({"landmarks": None if r.pose_landmarks is None else
                    np.array([[p.x, p.y, p.visibility] for p in r.pose_landmarks.landmark]),
                    "next": None if n is None else (n.x_center, n.y_center, n.width, n.height, n.rotation)})
    graph.close()
    return out


def _distances(ours: list, ref: list[dict], w: int, h: int) -> dict[str, float]:
    errs = []
    for mine, r in zip(ours, ref):
        if mine is None or r["landmarks"] is None:
            continue
        vis = r["landmarks"][:, 2] > 0.5
        errs.append(np.hypot((mine[:, 0] - r["landmarks"][:, 0]) * w, (mine[:, 1] - r["landmarks"][:, 1]) * h)[vis])
    e = np.concatenate(errs)
    return {"median_px": float(np.median(e)), "p95_px": float(np.percentile(e, 95)), "max_px": float(e.max())}


def sensitivity(frame: np.ndarray, shifts=(3e-8, 1e-6)) -> dict[str, dict[str, float]]:
    """How much the landmark model's output moves when its region's centre moves by a tiny
    fraction of the image height: crop values changed (of 256*256*3) and the largest landmark move."""
    from realtime.blazepose import BlazePose, BlazePoseConfig
    from realtime.blazepose import geometry as geo

    pose = BlazePose(BlazePoseConfig(runtime="onnxruntime"))
    h, w = frame.shape[:2]
    _, _, kps = pose.detect(frame)
    rect, _ = geo.rect_from_points(kps[0, 0], kps[0, 1], w, h)

    def landmarks(r):
        x, pad = geo.landmark_input(frame, r)
        raw, _, heat = pose.landmarker(x[None])
        pts = geo.project(geo.refine_with_heatmap(geo.decode_landmarks(raw), heat)[0], r, pad)
        return x, pts[:33, :2] * [w, h]

    x0, p0 = landmarks(rect)
    out = {}
    for eps in shifts:
        x1, p1 = landmarks((rect[0], rect[1] + eps, *rect[2:]))
        out[f"{eps:g}"] = {"crop_values_changed": int((x1 != x0).sum()),
                           "max_landmark_move_px": float(np.linalg.norm(p1 - p0, axis=-1).max())}
    return out


def faithfulness(videos: list[Path], count: int = 100) -> dict[str, Any]:
    from realtime.blazepose import BlazePose, BlazePoseConfig

    out = {}
    for video in videos:
        frames = _frames(video, count)
        h, w = frames[0].shape[:2]
        ref = _mediapipe_video(frames)
        row = {"sensitivity": sensitivity(frames[0])}
        for runtime in ("onnxruntime", "torch"):
            pose = BlazePose(BlazePoseConfig(runtime=runtime))
            closed = []
            for f in frames:
                o = pose.process(f)
                closed.append(o.landmarks[0] if o.persons else None)
            row[f"closed_loop_{runtime}"] = _distances(closed, ref, w, h)
        pose = BlazePose(BlazePoseConfig(runtime="onnxruntime"))
        opened = []
        for i, f in enumerate(frames):
            if i and pose.tracks and ref[i - 1]["next"] is not None:
                pose.tracks[0].rect = ref[i - 1]["next"]
            o = pose.process(f)
            opened.append(o.landmarks[0] if o.persons else None)
        row["open_loop_onnxruntime"] = _distances(opened, ref, w, h)
        rng = np.random.default_rng(0)
        noisy = []
        for f in frames:
            f = f.copy()
            m = rng.random(f.shape) < 0.001
            f[m] = np.clip(f[m].astype(np.int16) + rng.choice([-1, 1], int(m.sum())), 0, 255)
            noisy.append(f)
        row["mediapipe_vs_itself_perturbed"] = _distances([r["landmarks"] for r in _mediapipe_video(noisy)], ref, w, h)
        out[video.name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks detector", description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--faithfulness", action="store_true", help="landmark distance to MediaPipe instead of speed")
    ap.add_argument("--videos", type=Path, nargs="+", default=[DEFAULT_VIDEO, DEFAULT_VIDEO.with_name("cam04.mp4")])
    args = ap.parse_args(argv)
    if args.faithfulness:
        report = faithfulness(args.videos, args.frames)
        for name, row in report.items():
            for eps, d in row["sensitivity"].items():
                print(f"{name:10s} region centre moved by {eps} of the image height: {d['crop_values_changed']} "
                      f"crop values change, landmarks move up to {d['max_landmark_move_px']:.4f} px")
            for case, d in row.items():
                if case == "sensitivity":
                    continue
                print(f"{name:10s} {case:32s} median {d['median_px']:.4f} px  p95 {d['p95_px']:.4f}  max {d['max_px']:.2f}")
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=1))
        return 0
    report = run(args.video, args.frames, args.repeat)
    print(markdown(report))
    print(json.dumps(report["summary"], indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 0
