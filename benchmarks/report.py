"""Where a benchmark's results go and how they are written: JSON, Markdown and PNG plots.

A run of ``python -m benchmarks latency|accuracy`` writes one folder (default
``benchmarks/results/<name>/``, ``--out`` to choose another): ``report.json`` (every number and
the raw samples behind the plots), ``report.md`` (the tables a reader wants) and one ``.png`` per
plot. Everything is computed and rendered in memory first and each file is then replaced in one
rename (``engines.fileio.atomic_path``), so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "add_common_args", "fmt", "md_table", "produce", "write_results"]

RESULTS = Path(__file__).resolve().parent / "results"


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: numbers with ``digits`` decimals, NaN/None as an em dash, the rest as text."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,d}"
    return str(value)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2) -> str:
    """A GitHub Markdown table; numbers formatted by :func:`fmt`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c, digits) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf become null (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_results(folder: Path, report: dict[str, Any], markdown: str, figures: dict[str, Any]) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``<name>.png`` for each matplotlib figure."""
    from engines.fileio import atomic_path

    blobs: dict[str, bytes] = {"report.json": json.dumps(_clean(report), indent=1, allow_nan=False).encode(),
                               "report.md": (markdown.rstrip() + "\n").encode()}
    blobs.update({f"{name}.png": _png(fig) for name, fig in figures.items()})
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in blobs.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)
        written.append(folder / name)
    return written


def add_common_args(ap, name: str, smoke_help: str) -> None:
    """``--smoke``, ``--out`` and ``--quiet``, the same for every report command."""
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    ap.add_argument("--out", default=None, help=f"results folder (default benchmarks/results/{name}, "
                                                 f"benchmarks/results/{name}-smoke with --smoke)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")


def produce(name: str, args, make: Callable[[], dict[str, Any]],
            render: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """Run ``make()``, render it and write the results folder; a failure a user can cause (a missing
    file, a device that cannot open) is one ``error:`` line on stderr and None, with nothing written."""
    import sys

    out = Path(args.out) if args.out else RESULTS / (f"{name}-smoke" if args.smoke else name)
    try:
        report = make()
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return None
    text, figs = render(report)
    for path in write_results(out, report, text, figs):
        print(f"wrote {path}", file=sys.stderr)
    return report
