"""One training loop for every method that learns without (full) 3D labels.

Same data, split, models, schedule (warm-up then cosine, following the wall clock when
``max_minutes`` is set), validation windows, checkpoint format and outputs as the supervised
trainer (``training.train``); what differs is the :class:`Method`: how it draws a batch and what
loss it computes. 3D labels of the *training* subjects never enter a weakly supervised loss;
they are used only to print a monitoring MPJPE (``train_mpjpe_mm``, no gradient), and the
validation subjects' labels only for the validation curve, exactly as in supervised training.
Without labels there is nothing to pick a best epoch with, so ``best.safetensors`` is the
last epoch's model for these methods.

These methods run in one process (no torchrun).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from engines.checkpoint import save_checkpoint
from engines.models import build_model, set_dropout
from training.config import RunConfig
from training.data import group_weights, make_sampler, open_motion, split_by_groups
from training.synth import CLEAN, DETECTOR, NO_AUGMENTATION, NoiseModel, WindowSampler

__all__ = ["Method", "run_method_loop"]


class Method(Protocol):
    """A way of learning: draws its own batches, computes its loss, owns any extra networks."""

    name: str

    def step(self, model: nn.Module, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Loss terms for one batch; ``total`` is minimised, ``monitor_mpjpe`` (m) only printed."""

    def extra_step(self, model: nn.Module, rng: np.random.Generator, step: int, lr: float) -> dict[str, float]:
        """Anything trained beside the lifter (a discriminator); {} when nothing."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def run_method_loop(cfg: RunConfig, make_method, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``cfg.model`` with the method ``make_method(cfg, sampler, noise, device)`` builds."""
    import os

    from tqdm import tqdm

    from training.train import (
        _lr_at,
        _plot,
        _training_meta,
        _validate,
        load_resume_state,
        optimizer_step,
    )

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"method {cfg.train.method!r} trains in one process; run it without torchrun")
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng([tc.seed, 0])
    archive = open_motion(cfg.data.motion, cfg.data.fps, progress=progress)
    split = split_by_groups(archive, cfg.data.validation_groups)
    window = cfg.model.receptive_field
    sampler: WindowSampler = make_sampler(archive, window, split.train_frames,
                                          group_weights(archive, split.train_frames, cfg.data.group_balance))
    noise: NoiseModel = DETECTOR if tc.noise == "detector" else CLEAN
    model = build_model(cfg.model).to(device)
    method = make_method(cfg, sampler, noise, device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    out: Path = tc.out
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume:
        state, history = load_resume_state(out, model, opt, device)
        method.load_state_dict(state.get("method", {}))
        start_epoch = int(state["epoch"])
        rng = np.random.default_rng([tc.seed, 0, start_epoch])
    vrng = np.random.default_rng(12345)
    val_sampler = make_sampler(archive, window, split.val_frames)
    ends = vrng.choice(split.val_frames, size=tc.val_windows, replace=len(split.val_frames) < tc.val_windows)
    val_batches = {}
    for name, nm in (("clean", CLEAN), ("detector", DETECTOR)):
        r = np.random.default_rng(777)
        val_batches[name] = [val_sampler.make(r, ends[i:i + 512], nm, NO_AUGMENTATION) for i in range(0, len(ends), 512)]
    out.mkdir(parents=True, exist_ok=True)

    total_steps = tc.epochs * tc.steps_per_epoch
    budget_s = tc.max_minutes * 60.0
    elapsed0 = float(history[-1]["seconds"]) if history else 0.0
    t_start = time.time()

    def progress_at(step: int) -> float:
        by_time = (elapsed0 + time.time() - t_start) / budget_s if budget_s > 0 else 0.0
        return max(step / max(1, total_steps), by_time)

    entry: dict[str, Any] = {}
    model.train()
    for epoch in range(start_epoch, tc.epochs):
        if tc.dropout_off_at > 0 and progress_at(epoch * tc.steps_per_epoch) >= tc.dropout_off_at:
            set_dropout(model, 0.0)
        bar = tqdm(range(tc.steps_per_epoch), desc=f"{method.name} epoch {epoch + 1}/{tc.epochs}",
                   disable=not progress, leave=False)
        sums: dict[str, float] = {}
        for step_in_epoch in bar:
            step = epoch * tc.steps_per_epoch + step_in_epoch
            lr = _lr_at(step, progress_at(step), tc.lr, tc.lr_final)
            for g in opt.param_groups:
                g["lr"] = lr
            extra = method.extra_step(model, rng, step, lr)
            terms = method.step(model, rng)
            loss = terms["total"]
            optimizer_step(opt, model, loss, f"{method.name} training", step)
            for k, v in list(terms.items()) + list(extra.items()):
                sums[k] = sums.get(k, 0.0) + float(v.detach() if isinstance(v, torch.Tensor) else v)
            if step_in_epoch % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", mpjpe_mm=f"{float(terms['monitor_mpjpe']) * 1000:.0f}")
        bar.close()
        stop = budget_s > 0 and progress_at(step + 1) >= 1.0
        if (epoch + 1) % tc.val_every and epoch + 1 != tc.epochs and not stop:
            continue
        clean = _validate(model, val_batches["clean"])
        det = _validate(model, val_batches["detector"])
        n = tc.steps_per_epoch
        entry = {
            "epoch": epoch + 1, "lr": lr, "seconds": round(elapsed0 + time.time() - t_start, 1),
            "method": method.name,
            "train_loss": sums["total"] / n,
            "train_mpjpe_mm": sums["monitor_mpjpe"] / n * 1000,
            "val_clean_mpjpe_mm": clean["mpjpe_mm"], "val_detector_mpjpe_mm": det["mpjpe_mm"],
            "val_detector_root_error_mm": det["root_error_mm"],
            "terms": {k: v / n for k, v in sums.items() if k not in ("total", "monitor_mpjpe")},
        }
        history.append(entry)
        if progress:
            print(f"epoch {epoch + 1}: {method.name} loss {entry['train_loss']:.4f}, val clean {clean['mpjpe_mm']:.1f} mm, "
                  f"val detector {det['mpjpe_mm']:.1f} mm", flush=True)
        meta = _training_meta(cfg, split, 1, history)
        meta["training"]["method"] = {"name": method.name, **{k: list(v) if isinstance(v, tuple) else v
                                                               for k, v in asdict(cfg.method).items()}}
        save_checkpoint(out / "last.safetensors", model, meta)
        save_checkpoint(out / "best.safetensors", model, meta)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1, "best": 0.0,
                    "method": method.state_dict()}, out / "state.pt")
        (out / "history.json").write_text(json.dumps(history, indent=1))
        _plot(history, out / "curves.png")
        if stop:
            if progress:
                print(f"time budget of {tc.max_minutes:g} min reached after epoch {epoch + 1}", flush=True)
            break
    return entry
