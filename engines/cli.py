"""``engines``: the joint-set contract and compiled inference engines (build, info, verify)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from engines.cli_support import run_cli


def _skeleton(args: argparse.Namespace) -> int:
    from engines.skeleton import CANONICAL

    if args.json:
        doc = {
            "name": CANONICAL.name,
            "joints": list(CANONICAL.joint_names),
            "parents": list(CANONICAL.parents),
            "left_right_pairs": [list(p) for p in CANONICAL.left_right_pairs],
            "edges": [list(e) for e in CANONICAL.edges],
            "definitions": list(CANONICAL.definitions),
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"canonical skeleton {CANONICAL.name}: {CANONICAL.num_joints} joints, metres, root = pelvis")
    for i, (name, parent, text) in enumerate(
        zip(CANONICAL.joint_names, CANONICAL.parents, CANONICAL.definitions)
    ):
        parent_name = CANONICAL.joint_names[parent] if parent >= 0 else "-"
        print(f"{i:2d}  {name:15s} parent {parent_name:15s} {text.split(': ', 1)[1]}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from engines.build import build

    manifest = build(args.checkpoint, args.target, args.precision, args.max_batch, args.out, force=args.force,
                     log=lambda m: print(m, flush=True))
    print(f"{manifest.target} engine ({manifest.precision}, batch 1..{manifest.max_batch}): {manifest.artifact}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from engines import tensorrt_backend, torch_tensorrt_backend
    from engines.artifacts import cache_root, compatibility_problem, list_cache

    entries = list_cache()
    rows = []
    for m in entries:
        problem = compatibility_problem(m)
        dev = m.doc.get("device", {})
        rows.append({
            "folder": str(m.folder), "target": m.target, "precision": m.precision, "max_batch": m.max_batch,
            "receptive_field": m.receptive_field, "device": dev.get("name"),
            "compute_capability": dev.get("compute_capability"), "versions": m.doc.get("versions", {}),
            "checkpoint": m.doc["model"].get("checkpoint"), "created": m.doc.get("created"),
            "usable_here": problem is None, "problem": problem,
        })
    if args.json:
        print(json.dumps({"cache": str(cache_root()), "engines": rows}, indent=2))
        return 0
    import torch

    print(f"engine cache: {cache_root()} ({len(rows)} engine{'s' if len(rows) != 1 else ''})")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"this machine: CUDA GPU {gpu}; TensorRT: {tensorrt_backend.available()[1]}; "
          f"torch-tensorrt: {torch_tensorrt_backend.available()[1]}")
    for r in rows:
        libs = ", ".join(f"{k} {v}" for k, v in r["versions"].items() if k != "posestream-engine")
        state = "ok here" if r["usable_here"] else f"not usable here: {r['problem']}"
        print(f"- {r['target']:14s} {r['precision']} T={r['receptive_field']} batch<= {r['max_batch']} "
              f"for {r['device']} ({libs}) [{state}]\n  {r['folder']}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from engines.verify import verify

    r = verify(args.engine, args.data, args.windows)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        verdict = "PASS" if r["passed"] else "FAIL"
        print(f"{verdict}: {r['backend']} {r['precision']} vs torch eager on {r['windows']} real windows: "
              f"max |error| {r['max_abs_error_m'] * 1000:.4f} mm, mean {r['mean_abs_error_m'] * 1000:.5f} mm "
              f"(tolerance {r['tolerance_m'] * 1000:g} mm)")
    return 0 if r["passed"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engines",
        description="Model runtime for posestream: the canonical skeleton every model, message and "
        "viewer shares, and compiled inference engines (build, info, verify) behind one interface.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    p = sub.add_parser("skeleton", help="print the canonical 17-joint skeleton with its definitions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_skeleton)

    p = sub.add_parser("build", help="compile a lifter checkpoint for a target (into the engine cache)",
                       description="Compile a lifter checkpoint: ONNX (CPU), AOTInductor (CUDA), TensorRT or "
                       "torch-tensorrt (CUDA, unverified in our CI). Cached by model, target, precision, GPU and "
                       "library versions.")
    p.add_argument("--checkpoint", default="default", help="checkpoint path, or 'default' for the shipped model")
    p.add_argument("--target", default="auto", choices=("auto", "tensorrt", "torch-tensorrt", "aoti", "onnx"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    p.add_argument("--max-batch", type=int, default=64, help="largest batch the engine accepts (default 64)")
    p.add_argument("--out", default=None, help="write the engine to this folder instead of the cache")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching engine is cached")
    p.set_defaults(handler=_build)

    p = sub.add_parser("info", help="list cached engines and what they were built for")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_info)

    p = sub.add_parser("verify", help="compare an engine with torch eager on real inputs",
                       description="Max and mean absolute error of an engine against its checkpoint in torch eager, "
                       "on real model inputs: the bundled CMU mocap filmed by virtual cameras, or --data. "
                       "Exit 1 above 1e-4 m (FP32) or 2 mm (FP16).")
    p.add_argument("--engine", required=True, help="engine folder or artifact (with manifest.json beside it)")
    p.add_argument("--data", default=None, help=".npz with 'keypoints', (N, T, 17, 3) windows or (F, 17, 3) frames; "
                   "make them from BVH or a motion archive with `training make-windows` "
                   "(default: engines/assets/verify_keypoints.npz)")
    p.add_argument("--windows", type=int, default=512, help="input windows to compare (default 512)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
