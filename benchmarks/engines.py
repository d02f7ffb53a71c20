"""Lifter latency per engine backend: batch 1 (p50/p95/p99) and batch 64 (windows per second).

    python -m benchmarks engines [--windows 27 81 243] [--iterations 500] [--json out.json]

For each receptive field, the default architecture is built untrained with that window (latency
does not depend on the weights; the 27-frame row uses the shipped model itself), then every
backend this machine offers runs it: torch eager (CPU, and CUDA where present), ONNX Runtime
(CPU; CUDA provider when installed), and on a GPU torch.compile with CUDA graphs and the
AOTInductor package (FP32 and FP16) replayed through CUDA graphs. Each measurement: warm-up,
then ``iterations`` timed calls of ``engine.infer`` on a fixed NumPy input, host to host
(copies to and from the GPU included, as the realtime pipeline sees it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

TARGET_CPU_P50_MS = 2.0
TARGET_GPU_P50_MS = 0.5


def machine() -> dict[str, Any]:
    from benchmarks.machine import describe

    info = describe("torch", "onnxruntime", "numpy")
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def _checkpoint_for(window: int, folder: Path) -> str:
    """The shipped model for its own window; for another window the model of
    ``training/configs/transformer{window}.toml`` (the shipped architecture, one token every
    3rd / 9th frame), untrained: latency does not depend on the weights."""
    from engines.checkpoint import load_checkpoint, save_checkpoint
    from engines.models import build_model
    from training.config import load_config

    model, _meta = load_checkpoint("default")
    if window == model.receptive_field:
        return "default"
    config = CONFIGS / f"transformer{window}.toml"
    if config.is_file():
        cfg = load_config(config).model
    else:  # no config for this window: the shipped architecture with one token per frame
        cfg = replace(model.config, receptive_field=window, token_stride=1)
    path = folder / f"lifter_T{window}.safetensors"
    save_checkpoint(path, build_model(cfg), {"training": {"note": "untrained, for latency only"}})
    return str(path)


def time_engine(engine, window: int, iterations: int, batch: int = 1) -> dict[str, float]:
    from engines.build import example_input

    x = example_input(batch, window).numpy()
    for _ in range(max(3, iterations // 10)):  # warm-up: a tenth of the timed calls, at least 3
        engine.infer(x)
    times = np.empty(iterations)
    for i in range(iterations):
        t0 = time.perf_counter_ns()
        engine.infer(x)
        times[i] = time.perf_counter_ns() - t0
    ms = times / 1e6
    out = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
           "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}
    if batch > 1:
        out["windows_per_s"] = float(batch / (ms.mean() / 1000))
    return out


def _backends(cuda: bool, full_gpu: bool = True) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = [("torch (cpu)", {"backend": "torch", "device": "cpu"}),
                                              ("onnxruntime (cpu)", {"backend": "onnxruntime", "device": "cpu"})]
    if cuda:
        import onnxruntime as ort

        rows += [("torch (cuda)", {"backend": "torch", "device": "cuda"}),
                 ("torch-compile (cuda graphs)", {"backend": "torch-compile", "device": "cuda"}),
                 ("aoti fp32 (cuda graphs)", {"backend": "aoti", "precision": "fp32"}),
                 ("aoti fp16 (cuda graphs)", {"backend": "aoti", "precision": "fp16"})]
        if not full_gpu:
            rows = [r for r in rows if not r[0].startswith("aoti fp16")]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            rows.append(("onnxruntime (cuda)", {"backend": "onnxruntime", "device": "cuda"}))
    return rows


def skipped_backends() -> dict[str, str]:
    """Backends this machine does not run, each with the reason, for the report."""
    from engines import tensorrt_backend, torch_tensorrt_backend

    out: dict[str, str] = {}
    if not torch.cuda.is_available():
        out.update({name: "no CUDA GPU on this machine" for name in
                    ("torch (cuda)", "torch-compile (cuda graphs)", "aoti fp32 (cuda graphs)",
                     "aoti fp16 (cuda graphs)", "onnxruntime (cuda)")})
    for name, module in (("tensorrt", tensorrt_backend), ("torch-tensorrt", torch_tensorrt_backend)):
        ok, why = module.available()
        if not ok:
            out[name] = why
    return out


def run(windows: list[int], iterations: int, batch_large: int = 64, progress: bool = True,
        partial: Path | None = None) -> dict[str, Any]:
    from tqdm import tqdm

    import engines

    cuda = torch.cuda.is_available()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # FP16 AOTInductor for the first window only: each package takes a minute to compile
        jobs = [(w, name, kw) for i, w in enumerate(windows) for name, kw in _backends(cuda, full_gpu=i == 0)]
        checkpoints = {w: _checkpoint_for(w, Path(tmp)) for w in windows}  # written once per window
        for window, name, kw in tqdm(jobs, desc="engines", disable=not progress):
            ckpt = checkpoints[window]
            try:
                engine = engines.load(ckpt, **kw)
            except Exception as exc:  # noqa: BLE001 - a backend that cannot run here is reported, not fatal
                results.append({"window": window, "backend": name, "error": str(exc).splitlines()[0]})
                continue
            row = {"window": window, "backend": name, "batch1": time_engine(engine, window, iterations)}
            row[f"batch{batch_large}"] = time_engine(engine, window, max(5, iterations // 10), batch_large)
            results.append(row)
            engine.close()
            if partial is not None:  # what is done survives an interrupted run
                partial.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    return {"machine": machine(), "iterations": iterations, "results": results, "summary": summarize(results)}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The lifter's latency targets (CPU p50 <= TARGET_CPU_P50_MS; GPU p50 <= TARGET_GPU_P50_MS and
    >= 3x torch eager), read off the 27-frame rows."""
    rows = {r["backend"]: r for r in results if r["window"] == 27 and "batch1" in r}
    out: dict[str, Any] = {}
    if "onnxruntime (cpu)" in rows:
        p50 = rows["onnxruntime (cpu)"]["batch1"]["p50_ms"]
        out["cpu_onnxruntime_p50_ms"] = p50
        out["cpu_target_met"] = p50 <= TARGET_CPU_P50_MS
    gpu = {k: v for k, v in rows.items() if k.startswith(("torch-compile", "aoti", "onnxruntime (cuda)"))}
    if gpu and "torch (cuda)" in rows:
        best_name = min(gpu, key=lambda k: gpu[k]["batch1"]["p50_ms"])
        best, eager = gpu[best_name]["batch1"]["p50_ms"], rows["torch (cuda)"]["batch1"]["p50_ms"]
        out.update({"gpu_best_backend": best_name, "gpu_best_p50_ms": best, "gpu_eager_p50_ms": eager,
                    "gpu_speedup_vs_eager": eager / best,
                    "gpu_target_met": best <= TARGET_GPU_P50_MS and eager / best >= 3.0})
    return out


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [(f"Machine: {m['cpu']}, {m['cores']} cores, GPU {m['gpu'] or 'none'}; torch {m['torch']}, "
             f"onnxruntime {m['onnxruntime']}; {report['iterations']} timed calls per batch-1 row."), "",
             "| window | backend | batch 1 p50 ms | p95 ms | p99 ms | batch 64 windows/s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['window']} | {r['backend']} | unavailable: {r['error']} | | | |")
            continue
        b1, b64 = r["batch1"], r.get("batch64", {})
        lines.append(f"| {r['window']} | {r['backend']} | {b1['p50_ms']:.3f} | {b1['p95_ms']:.3f} | {b1['p99_ms']:.3f} | "
                     f"{b64.get('windows_per_s', float('nan')):,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks engines", description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, nargs="+", default=[27, 81, 243])
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    report = run(args.windows, args.iterations, progress=not args.quiet,
                 partial=Path(args.json_out) if args.json_out else None)
    text = markdown(report)
    print(text)
    print(json.dumps(report["summary"], indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0
