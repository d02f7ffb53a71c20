"""The README's headline figures: a small table generated from the committed benchmark reports.

``python -m benchmarks docs`` rewrites the block of ``README.md`` between :data:`START` and
:data:`END` with :func:`render`, the same way it rewrites ``docs/benchmarks.md``. Every figure is
read from a report file, never typed by hand:

* ``benchmarks/results/latency/report.json`` (``python -m benchmarks latency``): frame rate,
  latency, pipeline overhead, detector, lifter, smoothing and transport;
* ``benchmarks/results/accuracy/report.json`` (``python -m benchmarks accuracy``): accuracy on the
  Pose2Sim footage against MediaPipe's world landmarks;
* ``benchmarks/results/rig_2core.json`` and ``benchmarks/results/detector_faithfulness.json``
  (the commands in :data:`RIG_COMMAND` and :data:`FAITHFULNESS_COMMAND`).

A test holds the README block equal to what :func:`render` makes of the committed reports, so a
hand edit of the block, or a new report without ``python -m benchmarks docs``, fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.report import RESULTS, md_table

__all__ = ["END", "FAITHFULNESS_COMMAND", "RIG_COMMAND", "START", "current", "render", "splice"]

START = "<!-- headline-figures:start -->"
END = "<!-- headline-figures:end -->"
RIG_COMMAND = "python -m benchmarks rig --json benchmarks/results/rig_2core.json"
FAITHFULNESS_COMMAND = "python -m benchmarks detector --faithfulness --json benchmarks/results/detector_faithfulness.json"
LATENCY_COMMAND = "python -m benchmarks latency"
ACCURACY_COMMAND = "python -m benchmarks accuracy"


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run the benchmark first")
    return json.loads(path.read_text())


def _verdict(met: bool | None) -> str:
    return "" if met is None else (": met" if met else ": **not met**")


def _latency_rows(lat: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, command) rows read off a ``python -m benchmarks latency`` report."""
    from benchmarks import detector as db
    from benchmarks import engines as eb
    from benchmarks import pipeline as pb
    from benchmarks import smoothing as sb
    from benchmarks import transport as tb
    from benchmarks.latency import PORT_RUN

    native = lat["pipeline"]["native rate"]
    src = native["source"]
    video = Path(native["video"])
    clip = f"{video.parent.name}/{video.name} ({src['width']}x{src['height']}, {src['fps']:g} fps) at its native rate"
    lp, ov = native["latency_ms"], native["overhead_ms"]
    rows = [
        (f"Sustained frame rate, {clip}, MediaPipe, lifter on {native['lifter_backend']}",
         f"{native['fps']:.1f} fps", f">= {pb.TARGET_FPS:g} fps{_verdict(native['targets']['fps_met'])}", LATENCY_COMMAND),
        ("Capture to publish, p50 / p99", f"{lp['p50']:.1f} / {lp['p99']:.1f} ms", "", LATENCY_COMMAND),
    ]
    port = lat["pipeline"].get(PORT_RUN)
    if port is not None:
        pl = port["latency_ms"]
        rows.append(("Capture to publish with `--detector blazepose --max-persons 1`, p50 / p99",
                     f"{pl['p50']:.1f} / {pl['p99']:.1f} ms", "", LATENCY_COMMAND))
    rows.append(("Pipeline overhead (latency minus detector and lifter compute), p50 / p99",
                 f"{ov['p50']:.2f} / {ov['p99']:.1f} ms",
                 f"p99 <= {pb.TARGET_OVERHEAD_P99_MS:g} ms{_verdict(native['targets']['overhead_met'])}", LATENCY_COMMAND))
    if "detector" in lat:
        det = lat["detector"]
        cpu, ratio = det["pipeline_cpu"], det["summary"]["cpu_ratio_p50"]
        rows.append(("2D detector per frame, MediaPipe / its networks ported (ONNX Runtime), p50",
                     f"{cpu['mediapipe']['p50_ms']:.1f} / {cpu['port onnxruntime']['p50_ms']:.1f} ms ({ratio:.2f}x)",
                     f"port <= {db.TARGET_CPU_RATIO:g}x MediaPipe{_verdict(det['summary']['cpu_target_met'])}",
                     LATENCY_COMMAND))
    eng = lat["engines"]["summary"]
    if "cpu_onnxruntime_p50_ms" in eng:
        rows.append(("Lifter (27 frames) on ONNX Runtime, batch 1, p50", f"{eng['cpu_onnxruntime_p50_ms']:.2f} ms",
                     f"<= {eb.TARGET_CPU_P50_MS:g} ms{_verdict(eng['cpu_target_met'])}", LATENCY_COMMAND))
    filt = next(r for r in lat["smoothing"] if r["what"] == "filter" and r["backend"] == "numba" and r["persons"] == 1)
    rows.append(("One Euro filter (Numba), one person, p50", f"{filt['p50_us']:.1f} µs",
                 f"<= {sb.TARGET_NUMBA_ONE_PERSON_US:g} µs{_verdict(filt['p50_us'] <= sb.TARGET_NUMBA_ONE_PERSON_US)}",
                 LATENCY_COMMAND))
    worst = max(lat["transport"], key=lambda r: r["p99_us"])
    rows.append(("ZeroMQ one-way to another process, p99, worst of tcp/ipc and 1/8 persons",
                 f"{worst['p99_us'] / 1000:.2f} ms ({worst['transport']}, {worst['persons']})",
                 f"<= {tb.TARGET_P99_US / 1000:g} ms{_verdict(all(r['meets_target'] for r in lat['transport']))}",
                 LATENCY_COMMAND))
    return rows


def _rig_row(rig: dict[str, Any]) -> tuple[str, str, str, str]:
    one = next(r for r in rig["rows"] if r["what"] == "solver" and r["backend"] == "numba" and r["persons"] == 1)
    return ("Rig rotations (`--rotations`), one person, p50", f"{one['p50_us']:.0f} µs",
            f"< {rig['target_us']:g} µs{_verdict(rig['target_met'])}", RIG_COMMAND)


def _faithfulness_row(faith: dict[str, Any]) -> tuple[str, str, str, str]:
    """The port's own tracking against MediaPipe per clip, next to MediaPipe against itself on
    frames with 0.1% of the pixel values one grey level off (the noise floor)."""
    ours = "; ".join(f"{clip.removesuffix('.mp4')} {row['closed_loop_onnxruntime']['median_px']:.2f} / "
                     f"{row['closed_loop_onnxruntime']['p95_px']:.2f} px" for clip, row in sorted(faith.items()))
    floor = "; ".join(f"{clip.removesuffix('.mp4')} {row['mediapipe_vs_itself_perturbed']['median_px']:.2f} / "
                      f"{row['mediapipe_vs_itself_perturbed']['p95_px']:.2f} px" for clip, row in sorted(faith.items()))
    return ("Port's landmarks against MediaPipe's, median / p95 (Pose2Sim clips)", ours,
            f"reference: MediaPipe against itself, one grey level off on 0.1% of pixels: {floor}", FAITHFULNESS_COMMAND)


def _accuracy_rows(acc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """P-MPJPE and MPJVE at the footage's full rate, ours against MediaPipe's world landmarks."""
    rate = max(acc["footage"]["rates"], key=lambda r: float(r.removesuffix("fps")))
    rows = []
    for metric in ("P-MPJPE", "MPJVE"):
        raw = next(t for t in acc["targets"] if t["rate"] == rate and t["metric"] == metric
                   and t["against"] == "MediaPipe world")
        smoothed = next((t for t in acc["targets"] if t["rate"] == rate and t["metric"] == metric
                         and t["against"] == "MediaPipe world (its smoothing)"), None)
        extra = f" ({smoothed['mediapipe_mm']:.1f} with its smoothing)" if smoothed else ""
        met = raw["met"] and (smoothed is None or smoothed["met"])
        rows.append((f"{metric} against a four-view triangulation ({rate.replace('fps', ' fps')}), ours / MediaPipe "
                     "world landmarks",
                     f"{raw['ours_mm']:.1f} / {raw['mediapipe_mm']:.1f} mm{extra}", f"ours lower{_verdict(met)}",
                     ACCURACY_COMMAND))
    return rows


def render(latency: Path = RESULTS / "latency", accuracy: Path = RESULTS / "accuracy",
           results: Path = RESULTS) -> str:
    """The block between :data:`START` and :data:`END` (markers excluded), from the reports in
    ``latency``/``report.json``, ``accuracy``/``report.json``, and ``results``' rig and
    detector-faithfulness files."""
    lat = _json(latency / "report.json")
    acc = _json(accuracy / "report.json")
    rows = (_latency_rows(lat) + [_rig_row(_json(results / "rig_2core.json")),
                                  _faithfulness_row(_json(results / "detector_faithfulness.json"))] + _accuracy_rows(acc))
    rows = [(figure, measured, target, f"`{command}`") for figure, measured, target, command in rows]
    m = lat["machine"]
    intro = (f"Generated by `python -m benchmarks docs` from the reports in `benchmarks/results/` (latency run "
             f"started {lat['started']} on {m['cpu']}, {m['cores']} cores, GPU {m.get('gpu') or 'none'}). "
             "Timings on a shared virtual machine move by tens of percent from run to run; every table, plot "
             "and target is in [docs/benchmarks.md](docs/benchmarks.md).")
    return "\n".join([intro, "", md_table(["figure", "measured", "target", "command"], rows)])


def splice(text: str, block: str) -> str:
    """``text`` with everything between the :data:`START` and :data:`END` lines replaced by ``block``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"expected one {START} line followed by one {END} line")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block.strip()}\n{END}{tail}"


def current(text: str) -> str:
    """The block now between the markers of ``text``."""
    if START not in text or END not in text:
        raise ValueError(f"expected one {START} line followed by one {END} line")
    return text.split(START, 1)[1].split(END, 1)[0].strip()
