"""The report plots (matplotlib, Agg backend: no display needed): latency CDFs, per-stage
stacked bars, accuracy per joint. Each function takes a report section and returns a figure."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["accuracy_per_joint", "latency_cdf", "stage_bars"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cdf(ax, values, label: str) -> None:
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    if v.size:
        ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=f"{label} (n={v.size})")


def latency_cdf(pipeline: dict[str, dict[str, Any]], transport: list[dict[str, Any]]):
    """Left: capture -> publish and -> subscriber per pipeline run; right: ZeroMQ one-way latency."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in pipeline.items():
        _cdf(a, run["samples_ms"]["capture_to_publish"], f"{name}: capture→publish")
        _cdf(a, run["samples_ms"]["capture_to_subscriber"], f"{name}: capture→subscriber")
    a.set(xlabel="ms", ylabel="fraction of frames", title="End to end (real video, MediaPipe + lifter)")
    a.set_xscale("log")
    for row in transport:
        _cdf(b, row["samples_us"], f"{row['transport']}, {row['persons']} person(s)")
    b.axvline(1000.0, color="k", ls="--", lw=0.8, label="target p99 1 ms")
    b.set(xlabel="µs", title="ZeroMQ one-way, subscriber in another process")
    b.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for ax in (a, b):
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def stage_bars(pipeline: dict[str, dict[str, Any]], stages: list[str], labels: dict[str, str]):
    """Mean time per stage, stacked, one bar per pipeline run (means add up; percentiles do not)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 1.4 + 0.7 * len(pipeline)))
    names = list(pipeline)
    left = np.zeros(len(names))
    colors = plt.get_cmap("tab10")
    for k, stage in enumerate(stages):
        widths = np.array([pipeline[n]["stages_ms"][stage]["mean"] or 0.0 for n in names], dtype=np.float64)
        widths = np.nan_to_num(widths)
        ax.barh(names, widths, left=left, color=colors(k % 10), label=labels.get(stage, stage))
        left += widths
    ax.set(xlabel="mean ms per published frame (capture stamp → subscriber receipt)",
           title="Where a frame's time goes")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def accuracy_per_joint(joint_names: list[str], series: dict[str, list[float]], metric: str = "P-MPJPE"):
    """Grouped bars: one group per joint, one bar per method (mm)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, 4))
    x = np.arange(len(joint_names))
    width = 0.8 / max(len(series), 1)
    for k, (name, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, np.nan_to_num(np.asarray(values, float)), width, label=name)
    ax.set_xticks(x, joint_names, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel=f"{metric} per joint (mm)", title=f"Real footage, all views: {metric} per joint")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
