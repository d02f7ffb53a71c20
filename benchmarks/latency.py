"""``python -m benchmarks latency``: every latency number of the product in one report.

    python -m benchmarks latency [--smoke] [--out DIR] [--video PATH] [--frames N] [--note TEXT]

Four parts, each built from the benchmark module that owns it (run alone as ``python -m
benchmarks pipeline|engines|smoothing|transport``):

1. End to end (``benchmarks.pipeline``): the real pipeline on real video (default the 30 fps
   Sports2D clip) replayed at its native rate, then unpaced (``--fast``), with a subscriber in
   another process: capture -> publish and capture -> subscriber p50/p95/p99, fps, CPU and memory,
   the per-stage spans, and the pipeline overhead (latency minus detector and lifter compute,
   with the share of it spent waiting for a busy detector).
2. Lifter per engine backend (``benchmarks.engines``): batch 1 and batch 64, receptive fields
   27/81/243 (27: the shipped model; 81/243: ``training/configs/transformer81|243.toml``
   untrained, which times the same as trained); backends this machine cannot run are listed
   with the reason.
3. Smoothing (``benchmarks.smoothing``): Numba against the NumPy reference, per frame.
4. Transport (``benchmarks.transport``): ZeroMQ tcp and ipc one-way, 1 and 8 persons, subscriber
   in another process.
5. 2D detector per backend (``benchmarks.detector``): MediaPipe against the BlazePose port under
   ONNX Runtime and torch, whole per-frame pipeline and each network; the port on CUDA (FP32,
   FP16, the landmark network batched for 8 people) when a GPU is present.

Then every latency target (lifter engines, pipeline, 2D detector) is read off into one table. ``--smoke``
runs a few frames and iterations of everything (for CI: checks the report is well formed, its
numbers mean little).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["SMOKE", "LatencySettings", "main", "markdown", "run", "targets"]


@dataclass(frozen=True)
class LatencySettings:
    video: Path | None = None  # default: benchmarks.pipeline.default_video()
    frames: int | None = None  # per pipeline run; None: the whole clip
    windows: tuple[int, ...] = (27, 81, 243)
    engine_iterations: int = 500  # batch 1; batch 64 runs a tenth of that (at least 20)
    smoothing_iterations: int = 20000
    numpy_iterations: int = 2000
    transport_rate_hz: float = 200.0
    transport_seconds: float = 3.0
    transport_warmup_s: float = 0.5
    persons: tuple[int, ...] = (1, 8)
    transports: tuple[str, ...] = ("tcp", "ipc")
    detector_frames: int = 30  # frames of the detector clip (benchmarks.detector.DEFAULT_VIDEO), each timed
    detector_repeat: int = 2  # times over


PORT_RUN = "native rate, port"  # the pipeline run with --detector blazepose --max-persons 1

SMOKE = LatencySettings(frames=40, windows=(27,), engine_iterations=20, smoothing_iterations=300,
                        numpy_iterations=100, transport_seconds=0.25, transport_warmup_s=0.1,
                        detector_frames=3, detector_repeat=1)

INCLUDES = {
    "capture -> publish": "from the capture stamp (taken after the frame is grabbed and decoded) to the publisher's "
                          "t_publish_ns stamp, taken once the header is serialised, just before it is handed to ZeroMQ",
    "capture -> subscriber": "the same start, to the moment the subscriber process has the message off its socket "
                             "(before decoding); both processes read CLOCK_MONOTONIC",
    "native rate / unpaced": "native rate replays the file like a camera (stale frames dropped, latency never "
                             "accumulates); unpaced reads it as fast as it decodes and processes every frame (queues of "
                             "8 block), so its latency includes the backlog: a throughput figure, not what a camera sees",
    "stages": "consecutive spans between the pipeline's stamps, so their means add up to capture -> subscriber; "
              "'waiting for the detector' is queueing plus waiting while the detector finishes an earlier frame",
    "pipeline overhead": "capture -> publish minus detector compute minus lifter compute: threads, queues, waiting "
                         "for a busy detector, smoothing, publishing",
    "capture": "grabbing and decoding one frame with OpenCV (before the capture stamp, so outside the latency)",
    "CPU %": "user + system time of the benchmark process (all its threads) per wall second; 100% = one core",
    "memory": "resident set size of the benchmark process (models loaded), sampled every 0.1 s",
    "lifter": "engine.infer on a fixed NumPy batch, host to host, after warm-up",
    "smoothing": "one OneEuroFilter call for one 17-joint person (input check, float64 step, float32 output)",
    "transport": "Publisher.send's publish stamp to the subscriber process's receipt, paced messages",
    "2D detector": "per frame: the whole detector (MediaPipe Pose, or the port: letterbox, networks, decoding, "
                   "tracking) on decoded frames in memory; per network: one call on a prepared input",
}


def _busy_note(run: dict[str, Any]) -> str:
    """How many frames found the detector still busy with the previous one (what the tail is made of)."""
    if "frames_detector_busy" not in run:
        return ""
    n = run["frames_detector_busy"]
    counted = run["published"] - run["warmup_frames"]
    busy = (f"{n} of {counted} frames arrived while the detector was still on the previous frame "
            f"(their wait p50 {run['wait_busy_detector_ms']['p50']:.1f} ms)" if n else
            "no frame arrived while the detector was still on the previous one")
    return f"; {busy}; with the detector idle the wait is p99 {run['wait_idle_detector_ms']['p99']:.2f} ms"


def _machine() -> dict[str, Any]:
    from benchmarks.engines import machine
    from benchmarks.machine import describe

    info = machine()
    libs = ("cv2", "mediapipe", "numba", "zmq")
    info.update({k: v for k, v in describe(*libs).items() if k in libs})
    info["load_average_1_5_15"] = list(os.getloadavg())
    return info


def run(settings: LatencySettings, progress: bool = True) -> dict[str, Any]:
    """Run the four parts; the report dict (see :func:`markdown` for its reading)."""
    from tqdm import tqdm

    from benchmarks import detector as detector_bench
    from benchmarks import engines as engines_bench
    from benchmarks import pipeline, smoothing, transport

    video = settings.video or pipeline.default_video()
    if not Path(video).is_file():
        raise FileNotFoundError(f"video {video} not found; pass --video")
    cases = [(t, p) for t in settings.transports for p in settings.persons]
    steps = ["pipeline, native rate", "pipeline, unpaced", "pipeline, native rate, BlazePose port", "lifter engines",
             "smoothing"]
    steps += [f"transport {t}, {p} person(s)" for t, p in cases] + ["2D detector backends"]
    report: dict[str, Any] = {"benchmark": "latency", "machine": _machine(), "settings": asdict(settings),
                              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "includes": INCLUDES}
    report["settings"]["video"] = str(video)
    bar = tqdm(steps, desc="latency", unit="part", disable=not progress, file=sys.stderr)
    it = iter(bar)
    next(it)
    report["pipeline"] = {"native rate": pipeline.run(Path(video), fast=False, frames=settings.frames)}
    next(it)
    report["pipeline"]["unpaced"] = pipeline.run(Path(video), fast=True, frames=settings.frames)
    next(it)
    report["pipeline"][PORT_RUN] = pipeline.run(Path(video), fast=False, frames=settings.frames,
                                                detector="blazepose", max_persons=1)
    next(it)
    eng = engines_bench.run(list(settings.windows), settings.engine_iterations, progress=False)
    eng["skipped"] = engines_bench.skipped_backends()
    report["engines"] = eng
    next(it)
    report["smoothing"] = smoothing.measure(settings.smoothing_iterations, settings.numpy_iterations)
    rows = []
    with tempfile.TemporaryDirectory(prefix="posestream-bench-") as tmp:
        for t, p in cases:
            next(it)
            rows.append(transport.measure(t, p, settings.transport_rate_hz, settings.transport_seconds,
                                          settings.transport_warmup_s, Path(tmp)))
    report["transport"] = rows
    next(it)
    report["detector"] = detector_bench.run(detector_bench.DEFAULT_VIDEO, settings.detector_frames,
                                            settings.detector_repeat)
    for _ in it:
        pass
    report["machine"]["load_average_1_5_15_at_end"] = list(os.getloadavg())
    report["targets"] = targets(report)
    return report


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every latency target, with what was measured.

    ``issue`` names the target's area by number (4: lifter engines, 5: the streaming pipeline,
    6: the 2D detector; the report's JSON key, kept for readers of older reports); ``met`` is
    True/False, or None where this machine cannot measure it."""
    from benchmarks import engines as eb
    from benchmarks import pipeline as pb
    from benchmarks import smoothing as sb
    from benchmarks import transport as tb

    s = report["engines"]["summary"]
    rows: list[dict[str, Any]] = []
    if "cpu_onnxruntime_p50_ms" in s:
        rows.append({"issue": 4, "target": f"ONNX Runtime on the CPU, default model (T=27), batch 1: p50 <= {eb.TARGET_CPU_P50_MS:g} ms",
                     "measured": f"{s['cpu_onnxruntime_p50_ms']:.2f} ms", "met": s["cpu_target_met"]})
    if "gpu_best_p50_ms" in s:
        rows.append({"issue": 4, "target": f"GPU: best compiled backend p50 <= {eb.TARGET_GPU_P50_MS:g} ms and >= 3x torch eager",
                     "measured": f"{s['gpu_best_backend']}: {s['gpu_best_p50_ms']:.3f} ms, {s['gpu_speedup_vs_eager']:.1f}x eager",
                     "met": s["gpu_target_met"]})
    else:
        rows.append({"issue": 4, "target": f"GPU: best compiled backend p50 <= {eb.TARGET_GPU_P50_MS:g} ms and >= 3x torch eager",
                     "measured": "not measured: no CUDA GPU on this machine", "met": None})
    tput = [r for r in report["engines"]["results"] if r.get("window") == 27 and "batch64" in r]
    rows.append({"issue": 4, "target": "Throughput: batch 64 windows per second, per backend (no threshold)",
                 "measured": ", ".join(f"{r['backend']} {r['batch64']['windows_per_s']:,.0f}/s" for r in tput) or "—",
                 "met": None})
    native = report["pipeline"]["native rate"]
    rows.append({"issue": 5, "target": f"Sustained >= {pb.TARGET_FPS:g} fps on a 30 fps clip at its native rate",
                 "measured": f"{native['fps']:.1f} fps ({native['source']['fps']:g} fps clip)",
                 "met": native["targets"]["fps_met"]})
    rows.append({"issue": 5, "target": f"Pipeline overhead (latency - detector - lifter compute) p99 <= {pb.TARGET_OVERHEAD_P99_MS:g} ms",
                 "measured": (f"{native['overhead_ms']['p99']:.1f} ms, of which waiting for the detector "
                              f"{native['wait_for_detector_ms']['p99']:.1f} ms (p99)" + _busy_note(native)),
                 "met": native["targets"]["overhead_met"]})
    port = report["pipeline"].get(PORT_RUN)
    if port is not None:
        rows.append({"issue": 5, "target": "Same, with `--detector blazepose --max-persons 1` (MediaPipe's networks on "
                                           "ONNX Runtime; the target is stated for MediaPipe)",
                     "measured": (f"overhead p99 {port['overhead_ms']['p99']:.1f} ms (waiting for the detector "
                                  f"{port['wait_for_detector_ms']['p99']:.1f} ms); capture -> publish p50 "
                                  f"{port['latency_ms']['p50']:.1f} ms; {port['fps']:.1f} fps"),
                     "met": None})
    filt = next(r for r in report["smoothing"] if r["what"] == "filter" and r["backend"] == "numba")
    rows.append({"issue": 5, "target": f"Smoothing <= {sb.TARGET_NUMBA_ONE_PERSON_US:g} µs per frame, one person (Numba, p50)",
                 "measured": f"{filt['p50_us']:.2f} µs (p99 {filt['p99_us']:.2f} µs)",
                 "met": filt["p50_us"] <= sb.TARGET_NUMBA_ONE_PERSON_US})
    worst = max(report["transport"], key=lambda r: r["p99_us"])
    rows.append({"issue": 5, "target": f"ZeroMQ one-way p99 <= {tb.TARGET_P99_US / 1000:g} ms (tcp, ipc; 1 and 8 persons)",
                 "measured": f"worst {worst['transport']}/{worst['persons']}: {worst['p99_us']:.0f} µs; "
                             + ", ".join(f"{r['transport']}/{r['persons']} {r['p99_us']:.0f}" for r in report["transport"]),
                 "met": all(r["meets_target"] for r in report["transport"])})
    if "detector" in report:
        from benchmarks import detector as db

        d = report["detector"]["summary"]
        rows.append({"issue": 6, "target": f"BlazePose port under ONNX Runtime (CPU) within {db.TARGET_CPU_RATIO:g}x of "
                                           "MediaPipe's per-frame time (p50)",
                     "measured": f"{d['cpu_ratio_p50']:.2f}x", "met": d["cpu_target_met"]})
        gpu_target = (f"GPU: detector + landmarks <= {db.TARGET_GPU_MS:g} ms per frame, one person; landmarks for 8 "
                      f"people batched <= {db.TARGET_BATCH8_RATIO:g}x one")
        if "gpu_detector_landmark_p50_ms" in d:
            rows.append({"issue": 6, "target": gpu_target,
                         "measured": f"{d['gpu_detector_landmark_p50_ms']:.3f} ms; batch 8 {d['gpu_batch8_ratio']:.2f}x",
                         "met": bool(d["gpu_target_met"] and d["gpu_batch8_target_met"])})
        else:
            rows.append({"issue": 6, "target": gpu_target, "measured": "not measured: no CUDA GPU on this machine",
                         "met": None})
    return rows


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**missed**")


_AREAS = {4: "lifter engines", 5: "pipeline", 6: "2D detector"}


def targets_table(rows: list[dict[str, Any]]) -> str:
    from benchmarks.report import md_table

    return md_table(["area", "target", "measured", "verdict"],
                    [(_AREAS[r["issue"]], r["target"], r["measured"], _verdict(r["met"])) for r in rows])


def markdown(report: dict[str, Any], note: str | None = None) -> str:
    """The report as Markdown: machine, targets, then one table per part."""
    from benchmarks import engines as eb
    from benchmarks import smoothing as sb
    from benchmarks import transport as tb
    from benchmarks.pipeline import STAGE_LABELS
    from benchmarks.report import md_table

    m = report["machine"]
    runs = report["pipeline"]
    first = next(iter(runs.values()))
    out = [(f"Machine: {m['cpu']}, {m['cores']} cores, GPU {m.get('gpu') or 'none'}; Python {m['python']}, "
           f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, mediapipe {m.get('mediapipe')}, numba {m.get('numba')}, "
           f"pyzmq {m.get('zmq')}, numpy {m['numpy']}. Load average (1/5/15 min) at the start "
           f"{', '.join(f'{v:.2f}' for v in m['load_average_1_5_15'])}, at the end "
           f"{', '.join(f'{v:.2f}' for v in m.get('load_average_1_5_15_at_end', []))}. Started {report['started']}.")]
    if note:
        out += ["", f"**{note}**"]
    out += ["", "### Targets", "", targets_table(report["targets"]), "",
            "### End to end", "",
            (f"`{Path(first['video']).name}` ({first['source']['width']}x{first['source']['height']} at "
            f"{first['source']['fps']:g} fps), MediaPipe on the CPU (the '{PORT_RUN}' run: MediaPipe's networks "
            f"ported to PyTorch, on ONNX Runtime, one person), lifter `{first['lifter_backend']}`, Numba smoother, "
            f"ZeroMQ on tcp loopback, subscriber in another process. The first {first['warmup_frames']} published "
            "frames of each run are warm-up and not counted in the percentiles."), ""]
    header = ["ms"] + [f"{name} {q}" for name in runs for q in ("p50", "p95", "p99")]

    def line(label: str, get) -> list[Any]:
        return [label] + [get(r)[q] for r in runs.values() for q in ("p50", "p95", "p99")]

    rows = [line("capture -> publish", lambda r: r["latency_ms"]),
            line("capture -> subscriber (other process)", lambda r: r["stages_ms"]["to_subscriber"]),
            line("model compute: detector", lambda r: r["detect_ms"]),
            line("model compute: lifter", lambda r: r["lift_ms"]),
            line("pipeline overhead", lambda r: r["overhead_ms"]),
            line("... of which waiting for the detector", lambda r: r["wait_for_detector_ms"])]
    if all("frames_detector_busy" in r for r in runs.values()):
        rows += [line("... waiting, detector idle (thread handoff)", lambda r: r["wait_idle_detector_ms"]),
                 line("... waiting, detector still on the previous frame", lambda r: r["wait_busy_detector_ms"])]
    rows += [line(f"stage: {STAGE_LABELS[k]}", lambda r, k=k: r["stages_ms"][k])
             for k in list(next(iter(runs.values()))["stages_ms"]) if k != "to_subscriber"]
    rows.append(line("capture: grab + decode (before the stamp)", lambda r: r["capture_ms"]))
    out += [md_table(header, rows), ""]
    out += [md_table(["run", "frames published / captured", "with a person", "dropped (stale)", "fps",
                      "CPU % of one core", "RSS mean / peak MiB"],
                     [(name, f"{r['published']} / {r['captured']}", r["with_person"], sum(r["dropped"].values()),
                       r["fps"], r["resources"]["cpu_percent_of_one_core"],
                       f"{r['resources']['rss_mean_mib']:.0f} / {r['resources']['rss_peak_mib']:.0f}")
                      for name, r in runs.items()], digits=1), ""]
    out += ["### Lifter per engine backend", "", eb.markdown(report["engines"]), ""]
    skipped = report["engines"].get("skipped") or {}
    if skipped:
        out += ["Not run here: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + ".", ""]
    out += [("The 81- and 243-frame rows time untrained models built from `training/configs/transformer81.toml` "
            "and `transformer243.toml` (one token every 3rd / 9th frame); latency does not depend on the weights."), ""]
    out += ["### Smoothing (One Euro, 17 joints, per frame)", "", sb.markdown(report["smoothing"]), ""]
    out += ["### Transport (ZeroMQ one-way, subscriber in another process)", "", tb.markdown(report["transport"]), ""]
    if "detector" in report:
        from benchmarks import detector as db

        out += ["### 2D detector per backend", "", db.markdown(report["detector"]), ""]
    out += ["### What each number includes", ""] + [f"- **{k}**: {v}." for k, v in report["includes"].items()]
    return "\n".join(out)


def figures(report: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import plots
    from benchmarks.pipeline import STAGE_LABELS, STAGES

    stages = [s[0] for s in STAGES] + ["transport"]
    return {"latency_cdf": plots.latency_cdf(report["pipeline"], report["transport"]),
            "stages": plots.stage_bars(report["pipeline"], stages, STAGE_LABELS)}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import add_common_args, produce

    ap = argparse.ArgumentParser(prog="python -m benchmarks latency", description=__doc__.split("\n\n")[0])
    add_common_args(ap, "latency", "a few frames and iterations of everything (CI)")
    ap.add_argument("--video", default=None, help="clip for the end-to-end runs (default: the 30 fps Sports2D demo)")
    ap.add_argument("--frames", type=int, default=None, help="frames per end-to-end run (default: the whole clip)")
    ap.add_argument("--iterations", type=int, default=None, help="timed batch-1 lifter calls per backend (default 500)")
    ap.add_argument("--note", default=None, help="a line printed above the results, e.g. 'taken on a loaded machine'")
    args = ap.parse_args(argv)
    settings = SMOKE if args.smoke else LatencySettings()
    if args.video:
        settings = replace(settings, video=Path(args.video))
    if args.frames is not None:
        if args.frames < 12:
            ap.error("--frames must be at least 12 (10 are warm-up)")
        settings = replace(settings, frames=args.frames)
    if args.iterations is not None:
        if args.iterations < 1:
            ap.error("--iterations must be at least 1")
        settings = replace(settings, engine_iterations=args.iterations)

    def make() -> dict[str, Any]:
        return {**run(settings, progress=not args.quiet), "note": args.note}

    report = produce("latency", args, make, lambda r: (markdown(r, args.note), figures(r)))
    if report is None:
        return 1
    print(targets_table(report["targets"]))
    return 0
