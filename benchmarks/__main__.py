"""``python -m benchmarks <name> [options]``: run one benchmark (``latency`` and ``accuracy``: the
full reports; ``engines``, ``detector``, ``pipeline``, ``smoothing``, ``transport``: their parts;
``skeleton_widths``, ``rig``, ``world``), or ``docs`` to rewrite docs/benchmarks.md and the README's headline
figures from the latest reports."""

from __future__ import annotations

import sys

NAMES = ("latency", "accuracy", "docs", "engines", "detector", "pipeline", "smoothing", "transport", "skeleton_widths",
         "rig", "world")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in NAMES:
        print(f"usage: python -m benchmarks {{{','.join(NAMES)}}} [options]", file=sys.stderr)
        return 2
    if argv[0] != "skeleton_widths":
        import importlib

        return importlib.import_module(f"benchmarks.{argv[0]}").main(argv[1:])
    from benchmarks.skeleton_widths import main as widths

    widths()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
