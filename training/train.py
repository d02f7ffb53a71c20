"""The training loop: one lifter, one :class:`~training.methods.Method`, one schedule.

Every method (``[train] method``: supervised, adversarial, multiview, ordinal) trains in this
loop on the same data, split, model, optimiser (AdamW), schedule (``training.optim``),
validation windows (``training.validation``) and outputs (``training.run_folder``); the method
only draws its batches and computes its loss. Per step: set the learning rate, let the method
train whatever it owns beside the lifter, one clipped optimiser step on its loss. Per validated
epoch: the history entry, both checkpoints, the resumable state and the curves.

``best.safetensors`` is the epoch with the lowest validation MPJPE (detector noise) for methods
that learn from 3D labels (supervised, adversarial with ``disc3d``), and the last epoch for the
others: choosing an epoch by its 3D error would use the 3D labels they are meant to do without.
3D labels of the training subjects never enter a label-free method's loss; they only give the
monitoring MPJPE (``train_mpjpe_mm``, no gradient).

Supervised training also runs under ``torchrun --nproc_per_node N -m training.cli train --config
FILE``: every process trains on its own random windows and cameras (seeded by rank) with
gradients averaged by DistributedDataParallel (NCCL on GPUs, gloo on CPUs); rank 0 validates and
writes the outputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.models import build_model, set_dropout
from training.config import ConfigError, RunConfig
from training.data import group_weights, make_sampler, open_motion, split_by_groups
from training.losses import lifter_loss, predict_frames  # noqa: F401  (re-exported: training.train's public names)
from training.methods import method_class
from training.optim import Schedule, optimizer_step
from training.run_folder import load_resume_state, save_state, training_meta, write_history
from training.synth import CLEAN, DETECTOR
from training.validation import validate, validation_batches

__all__ = ["lifter_loss", "predict_frames", "train"]


def train(cfg: RunConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train as configured; returns the final history entry (rank 0) or {} (other ranks)."""
    from tqdm import tqdm

    tc, out = cfg.train, cfg.train.out
    make_method = method_class(tc.method)
    rank, device, world = _start_process(distributed=make_method.distributed, method=tc.method)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed + rank)
    rng = np.random.default_rng([tc.seed, rank])

    archive = open_motion(cfg.data.motion, cfg.data.fps, progress=progress and rank == 0)
    split = split_by_groups(archive, cfg.data.validation_groups)
    window = cfg.model.receptive_field
    sampler = make_sampler(archive, window, split.train_frames,
                           group_weights(archive, split.train_frames, cfg.data.group_balance))
    core = build_model(cfg.model)
    if tc.init and not resume:
        _initialise(core, cfg)
    core = core.to(device)
    method = make_method(cfg, sampler, DETECTOR if tc.noise == "detector" else CLEAN, device)
    model = core if world == 1 else nn.parallel.DistributedDataParallel(
        core, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    history: list[dict[str, Any]] = []
    start_epoch, best = 0, float("inf")
    if resume:
        state, history = load_resume_state(out, core, opt, device)
        method.load_state_dict(state.get("method", {}))
        start_epoch, best = int(state["epoch"]), float(state["best"])
        rng = np.random.default_rng([tc.seed, rank, start_epoch])
        torch.manual_seed(tc.seed + rank + 1000 * start_epoch)
    if rank == 0:
        val = validation_batches(archive, split, window, tc.val_windows)
        out.mkdir(parents=True, exist_ok=True)
    schedule = Schedule(tc, elapsed_s=float(history[-1]["seconds"]) if history else 0.0)

    entry: dict[str, Any] = {}
    model.train()
    for epoch in range(start_epoch, tc.epochs):
        first = epoch * tc.steps_per_epoch
        if schedule.dropout_off(first):
            set_dropout(core, 0.0)
        sums: dict[str, Any] = {}  # detached tensors: no wait for the GPU at every step
        bar = tqdm(range(first, first + tc.steps_per_epoch), desc=f"{method.name} epoch {epoch + 1}/{tc.epochs}",
                   disable=not progress or rank != 0, leave=False)
        for step in bar:
            lr = schedule.lr(step)
            for g in opt.param_groups:
                g["lr"] = lr
            extra = method.extra_step(model, rng, step, lr)
            terms = method.step(model, rng)
            optimizer_step(opt, model, terms["total"], f"{method.name} training", step)
            for k, v in {**terms, **extra}.items():
                sums[k] = sums.get(k, 0.0) + (v.detach() if isinstance(v, torch.Tensor) else v)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{terms['total'].item():.4f}", lr=f"{lr:.1e}",
                                mpjpe_mm=f"{float(terms['monitor_mpjpe']) * 1000:.1f}")
        bar.close()
        stop = _any_process(schedule.out_of_time(step + 1), device, world)
        validated = (epoch + 1) % tc.val_every == 0 or epoch + 1 == tc.epochs or stop
        if rank == 0 and validated:
            clean, det = validate(core, val["clean"]), validate(core, val["detector"])
            mean = {k: float(v) / tc.steps_per_epoch for k, v in sums.items()}
            entry = {
                "epoch": epoch + 1, "lr": lr, "seconds": round(schedule.seconds(), 1), "method": method.name,
                "train_loss": mean.pop("total"), "train_mpjpe_mm": mean.pop("monitor_mpjpe") * 1000,
                "val_clean_mpjpe_mm": clean["mpjpe_mm"], "val_detector_mpjpe_mm": det["mpjpe_mm"],
                "val_detector_root_error_mm": det["root_error_mm"], "terms": mean,
            }
            history.append(entry)
            if progress:
                print(f"epoch {epoch + 1}: {method.name} loss {entry['train_loss']:.4f}, "
                      f"train {entry['train_mpjpe_mm']:.1f} mm, val clean {clean['mpjpe_mm']:.1f} mm, "
                      f"val detector {det['mpjpe_mm']:.1f} mm, root {det['root_error_mm']:.0f} mm", flush=True)
            meta = training_meta(cfg, split, world, history, method.name)
            save_checkpoint(out / "last.safetensors", core, meta)
            improved = det["mpjpe_mm"] < best
            best = min(best, det["mpjpe_mm"])
            if improved or not method.uses_3d_labels:
                save_checkpoint(out / "best.safetensors", core, meta)
            save_state(out, core, opt, epoch + 1, best, method.state_dict())
            write_history(out, history)
            if stop and progress:
                print(f"time budget of {tc.max_minutes:g} min reached after epoch {epoch + 1}", flush=True)
        if stop:
            break
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return entry if rank == 0 else {}


def _start_process(distributed: bool, method: str) -> tuple[int, torch.device, int]:
    """(rank, device, world size) of this process; joins the torchrun process group if there is one."""
    rank, local_rank, world = (int(os.environ.get(k, d)) for k, d in (("RANK", "0"), ("LOCAL_RANK", "0"),
                                                                          ("WORLD_SIZE", "1")))
    if world > 1 and not distributed:
        raise ValueError(f"method {method!r} trains in one process; run it without torchrun")
    use_cuda = torch.cuda.is_available()
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"), world


def _any_process(flag: bool, device: torch.device, world: int) -> bool:
    """``flag`` of any process, so that every process stops after the same epoch."""
    if world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _initialise(model: nn.Module, cfg: RunConfig) -> None:
    """Copy the weights of ``[train] init`` (fine-tuning); its architecture must be the configured one."""
    init = cfg.train.init
    if init != "default" and not Path(init).is_absolute() and cfg.source is not None:
        init = str(cfg.source.parent / init)
    source, _ = load_checkpoint(init)
    if source.config != cfg.model:
        raise ConfigError(f"{cfg.source}: [train] init {cfg.train.init} is a {source.config.kind} of another "
                          f"architecture than [model]; fine-tuning needs the same one")
    model.load_state_dict(source.state_dict())
