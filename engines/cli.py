"""``engines``: the joint-set contract today; compiled inference engines next."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from engines.cli_support import coming_soon, run_cli

_ENGINES_SOON = (
    "compiled lifter engines (ONNX, TensorRT, torch-tensorrt, AOTInductor) arrive with the "
    "compiled-engines work; until then models run in torch eager"
)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engines",
        description="Model runtime for posestream: the canonical skeleton every model, message and "
        "viewer shares, and (coming) compiled inference engines behind one interface.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    p = sub.add_parser("skeleton", help="print the canonical 17-joint skeleton with its definitions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_skeleton)
    for name, text in (
        ("build", "compile a lifter checkpoint for a target (coming)"),
        ("info", "list cached engines (coming)"),
        ("verify", "compare an engine with torch eager (coming)"),
    ):
        p = sub.add_parser(name, help=text, description=f"Not available yet: {_ENGINES_SOON}.")
        p.set_defaults(handler=coming_soon(_ENGINES_SOON), ignore_extra=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
