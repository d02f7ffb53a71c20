"""What a training run writes into ``[train] out``, and reads back for ``--resume``.

* ``best.safetensors`` and ``last.safetensors``: engines checkpoints whose metadata
  (:func:`training_meta`) records the data, split, settings, hardware and the latest history
  entry;
* ``state.pt``: model, optimiser and method state, the epoch and the lowest validation MPJPE so
  far (plain tensors and numbers, loaded with ``weights_only=True``);
* ``history.json``: one entry per validated epoch; ``curves.png``: its plot.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.config import RunConfig
from training.data import Split

__all__ = ["load_resume_state", "plot_history", "save_state", "training_meta", "write_history"]


def training_meta(cfg: RunConfig, split: Split, processes: int, history: list[dict[str, Any]],
                  method: str) -> dict[str, Any]:
    """Checkpoint metadata of a run trained by ``method`` (its name) in ``processes`` processes."""
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg.method).items()}
    return {
        "training": {
            "data": str(cfg.data.motion),
            "fps": cfg.data.fps,
            "train_groups": list(split.train_groups),
            "validation_groups": list(split.val_groups),
            "config": str(cfg.source) if cfg.source else None,
            "train": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg.train).items()},
            "method": {"name": method, **settings},
            "processes": processes,
            "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                        + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"),
            "torch": torch.__version__,
        },
        "metrics": {"history": history[-1] if history else {}},
    }


def save_state(out: Path, model: nn.Module, opt: torch.optim.Optimizer, epoch: int, best: float,
               method_state: dict[str, Any]) -> None:
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "best": best,
                "method": method_state}, out / "state.pt")


def load_resume_state(out: Path, model: nn.Module, opt: torch.optim.Optimizer,
                      device: torch.device) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Restore ``model`` and ``opt`` from ``out/state.pt``; return the state (epoch, best, the
    method's own state) and ``out/history.json``."""
    state_path = out / "state.pt"
    if not state_path.is_file():
        raise FileNotFoundError(2, "nothing to resume (no state.pt)", str(state_path))
    state = torch.load(state_path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return state, json.loads((out / "history.json").read_text())


def write_history(out: Path, history: list[dict[str, Any]]) -> None:
    (out / "history.json").write_text(json.dumps(history, indent=1))
    plot_history(history, out / "curves.png")


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Training and validation MPJPE, validation root error and the learning rate per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(ep, [h["train_mpjpe_mm"] for h in history], label="train MPJPE (noisy 2D)")
    ax[0].plot(ep, [h["val_clean_mpjpe_mm"] for h in history], label="val MPJPE, clean 2D")
    ax[0].plot(ep, [h["val_detector_mpjpe_mm"] for h in history], label="val MPJPE, detector noise")
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("mm"), ax[0].legend(), ax[0].grid(alpha=0.3)
    ax[1].plot(ep, [h["val_detector_root_error_mm"] for h in history], label="val root error (detector noise)")
    ax[1].plot(ep, [h["lr"] * 1e5 for h in history], label="learning rate x 1e5")
    ax[1].set_xlabel("epoch"), ax[1].legend(), ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
