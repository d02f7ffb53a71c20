"""Supervised lifter training on synthetic 2D from real mocap; single process or torchrun/DDP.

Run under ``torchrun --nproc_per_node N -m training.cli train --config FILE`` and every process
trains on its own random windows and cameras (seeded by rank) with gradients averaged by
DistributedDataParallel (NCCL on GPUs, gloo on CPUs); rank 0 validates, writes checkpoints, the
history and the curve plot. Outputs in ``[train] out``:

* ``best.safetensors`` (lowest validation MPJPE) and ``last.safetensors``: engines checkpoints;
* ``state.pt``: optimizer, schedule and RNG state for ``--resume`` (plain tensors and numbers,
  loaded with ``weights_only=True``);
* ``history.json`` and ``curves.png``.

Loss per supervised frame (every token frame of the causal transformer, the last frame of the
MLP): root-relative MPJPE + ``root_weight`` x (|log z - log z*| + |xy - xy*| / z*) +
``velocity_weight`` x root-relative velocity error between consecutive token frames; the MLP's
intermediate heads add ``aux_weight`` x their MPJPE.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.camera import VirtualCameraRanges
from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.models import CausalTransformerLifter, build_model, set_dropout
from training.config import ConfigError, RunConfig
from training.data import group_weights, make_sampler, open_motion, split_by_groups
from training.synth import CLEAN, DETECTOR, NO_AUGMENTATION, Augmentation, Batch

__all__ = ["lifter_loss", "predict_frames", "train"]


def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def predict_frames(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[int], list[torch.Tensor]]:
    """Training-time predictions: (B, N, J, 3) for window frames ``frames`` plus auxiliary heads."""
    core = model.module if hasattr(model, "module") else model
    T = x.shape[1]
    if isinstance(core, CausalTransformerLifter):
        return model(x, dense=True), core.token_frames(), []
    out, aux = model(x, aux=True)
    return out.unsqueeze(1), [T - 1], [a.unsqueeze(1) for a in aux]


MIN_ROOT_DEPTH_M = 0.5


def lifter_loss(pred: torch.Tensor, target: torch.Tensor, root_weight: float, velocity_weight: float) -> dict[str, torch.Tensor]:
    """Loss terms for predictions and targets (B, N, J, 3), camera frame, metres.

    Frames whose true pelvis is closer than ``MIN_ROOT_DEPTH_M`` to the camera (or behind it:
    early frames of a window in which the subject ran past the camera) are not supervised.
    """
    rel_p = pred - pred[..., :1, :]
    rel_t = target - target[..., :1, :]
    zt = target[..., 0, 2]
    valid = (zt > MIN_ROOT_DEPTH_M).to(pred.dtype)  # (B, N)
    n = valid.sum().clamp_min(1.0)
    mpjpe = ((rel_p - rel_t).norm(dim=-1).mean(dim=-1) * valid).sum() / n
    zp = pred[..., 0, 2].clamp_min(1e-3)
    zt_safe = torch.where(valid > 0, zt, torch.ones_like(zt))
    root_err = (zp.log() - zt_safe.log()).abs() + (pred[..., 0, :2] - target[..., 0, :2]).norm(dim=-1) / zt_safe
    root = (root_err * valid).sum() / n
    terms = {"mpjpe": mpjpe, "root": root}
    total = mpjpe + root_weight * root
    if pred.shape[1] > 1 and velocity_weight > 0:
        both = valid[:, 1:] * valid[:, :-1]
        dv = ((rel_p[:, 1:] - rel_p[:, :-1]) - (rel_t[:, 1:] - rel_t[:, :-1])).norm(dim=-1).mean(dim=-1)
        vel = (dv * both).sum() / both.sum().clamp_min(1.0)
        terms["velocity"] = vel
        total = total + velocity_weight * vel
    terms["total"] = total
    return terms


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless training batches for DataLoader workers, each with its own seeded generator."""

    def __init__(self, sampler, batch_size: int, noise, seed: list[int], ranges: VirtualCameraRanges) -> None:
        self.sampler, self.batch_size, self.noise, self.seed, self.ranges = sampler, batch_size, noise, seed, ranges

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng(self.seed + [info.id if info else 0])
        while True:
            b = self.sampler.make(rng, self.sampler.sample_ends(rng, self.batch_size), self.noise, Augmentation(), self.ranges)
            yield torch.from_numpy(b.inputs), torch.from_numpy(b.targets)


def _batches(sampler, tc, noise, rng: np.random.Generator, seed: list[int], pin: bool, ranges: VirtualCameraRanges):
    """(inputs, targets) tensors forever: in-process, or from ``tc.workers`` background processes."""
    if tc.workers <= 0:
        while True:
            b = sampler.make(rng, sampler.sample_ends(rng, tc.batch_size), noise, Augmentation(), ranges)
            yield torch.from_numpy(b.inputs), torch.from_numpy(b.targets)
    loader = torch.utils.data.DataLoader(_BatchStream(sampler, tc.batch_size, noise, seed, ranges), batch_size=None,
                                         num_workers=tc.workers, pin_memory=pin, prefetch_factor=4,
                                         persistent_workers=True)
    yield from loader


def optimizer_step(opt: torch.optim.Optimizer, model: nn.Module, loss: torch.Tensor, what: str, step: int | None = None,
                   fix: str = "lower [train] lr") -> None:
    """One optimiser step on ``loss`` with gradients clipped to norm 1; a non-finite loss stops
    the run with one sentence (``what`` names the run, ``fix`` what to change) instead of
    poisoning the weights."""
    if not torch.isfinite(loss):
        at = f" at step {step}" if step is not None else ""
        raise FloatingPointError(f"{what} diverged{at} (loss {loss.item()}); {fix}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def load_resume_state(out: Path, model: nn.Module, opt: torch.optim.Optimizer,
                      device: torch.device) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Restore ``model`` and ``opt`` from ``out/state.pt`` (plain tensors, ``weights_only``);
    return the state (epoch and whatever else the trainer saved) and ``out/history.json``."""
    state_path = out / "state.pt"
    if not state_path.is_file():
        raise FileNotFoundError(2, "nothing to resume (no state.pt)", str(state_path))
    state = torch.load(state_path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return state, json.loads((out / "history.json").read_text())


def _lr_at(step: int, progress: float, lr: float, lr_final: float, warmup: int = 200) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` to ``lr_final`` over ``progress`` in [0, 1]."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def _validate(model: nn.Module, batches: list[Batch]) -> dict[str, float]:
    """Current-frame MPJPE (root-relative) and root error on fixed validation windows, mm."""
    core = model.module if hasattr(model, "module") else model
    core.eval()
    errs, roots = [], []
    for batch in batches:
        x = torch.from_numpy(batch.inputs)
        out = core(x.to(next(core.parameters()).device)).cpu().numpy()
        tgt = batch.targets[:, -1]
        rel = (out - out[:, :1]) - (tgt - tgt[:, :1])
        errs.append(np.linalg.norm(rel, axis=-1).mean(axis=-1))
        roots.append(np.linalg.norm(out[:, 0] - tgt[:, 0], axis=-1))
    core.train()
    return {"mpjpe_mm": float(np.concatenate(errs).mean() * 1000), "root_error_mm": float(np.concatenate(roots).mean() * 1000)}


def _plot(history: list[dict[str, Any]], path: Path) -> None:
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


def train(cfg: RunConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train as configured; returns the final history entry (rank 0) or {} (other ranks).

    ``[train] method`` other than ``supervised`` hands over to ``training.methods``."""
    from tqdm import tqdm

    if cfg.train.method != "supervised":
        from training.methods import run_method

        return run_method(cfg, resume=resume, progress=progress)

    rank, local_rank, world = _dist_env()
    distributed = world > 1
    use_cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if distributed:
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    tc = cfg.train
    out = tc.out
    torch.manual_seed(tc.seed + rank)
    rng = np.random.default_rng([tc.seed, rank])

    archive = open_motion(cfg.data.motion, cfg.data.fps, progress=progress and rank == 0)
    split = split_by_groups(archive, cfg.data.validation_groups)
    window = cfg.model.receptive_field
    train_sampler = make_sampler(archive, window, split.train_frames,
                                 group_weights(archive, split.train_frames, cfg.data.group_balance))
    noise = DETECTOR if tc.noise == "detector" else CLEAN

    model = build_model(cfg.model)
    if tc.init and not resume:
        _initialise(model, cfg)
    model = model.to(device)
    core = model
    if distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if use_cuda else None)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    total_steps = tc.epochs * tc.steps_per_epoch
    history: list[dict[str, Any]] = []
    start_epoch, best = 0, float("inf")
    if resume:
        state, history = load_resume_state(out, core, opt, device)
        start_epoch, best = int(state["epoch"]), float(state["best"])
        rng = np.random.default_rng([tc.seed, rank, start_epoch])
        torch.manual_seed(tc.seed + rank + 1000 * start_epoch)

    val_batches: dict[str, list[Batch]] = {}
    if rank == 0:
        vrng = np.random.default_rng(12345)
        val_sampler = make_sampler(archive, window, split.val_frames)
        ends = vrng.choice(split.val_frames, size=tc.val_windows, replace=len(split.val_frames) < tc.val_windows)
        for name, nm in (("clean", CLEAN), ("detector", DETECTOR)):
            r = np.random.default_rng(777)
            val_batches[name] = [val_sampler.make(r, ends[i:i + 512], nm, NO_AUGMENTATION) for i in range(0, len(ends), 512)]
        out.mkdir(parents=True, exist_ok=True)

    dropout_off_epoch = math.ceil(tc.dropout_off_at * tc.epochs) if tc.dropout_off_at > 0 else None
    t_start = time.time()
    ranges = VirtualCameraRanges(distance_m=tuple(cfg.data.camera_distance_m))
    stream = _batches(train_sampler, tc, noise, rng, [tc.seed, rank, start_epoch, 1], pin=use_cuda, ranges=ranges)
    model.train()
    entry: dict[str, Any] = {}
    budget_s = tc.max_minutes * 60.0
    elapsed0 = float(history[-1]["seconds"]) if history else 0.0  # resumed runs keep their clock

    def progress_at(step: int) -> float:
        by_steps = step / max(1, total_steps)
        by_time = (elapsed0 + time.time() - t_start) / budget_s if budget_s > 0 else 0.0
        return max(by_steps, by_time)

    for epoch in range(start_epoch, tc.epochs):
        if dropout_off_epoch is not None and (epoch >= dropout_off_epoch or progress_at(epoch * tc.steps_per_epoch) >= tc.dropout_off_at):
            set_dropout(core, 0.0)
        bar = tqdm(range(tc.steps_per_epoch), desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not progress or rank != 0, leave=False)
        sums = {"mpjpe": 0.0}
        for step_in_epoch in bar:
            step = epoch * tc.steps_per_epoch + step_in_epoch
            lr = _lr_at(step, progress_at(step), tc.lr, tc.lr_final)
            for g in opt.param_groups:
                g["lr"] = lr
            inputs, targets = next(stream)
            x = inputs.to(device, non_blocking=True)
            pred, frames, aux = predict_frames(model, x)
            y = targets[:, frames].to(device, non_blocking=True)
            terms = lifter_loss(pred, y, tc.root_weight, tc.velocity_weight)
            loss = terms["total"]
            for a in aux:
                loss = loss + tc.aux_weight * lifter_loss(a, y, tc.root_weight, 0.0)["mpjpe"]
            optimizer_step(opt, model, loss, "training", step)
            sums["mpjpe"] += terms["mpjpe"].detach()
            if step_in_epoch % 10 == 0:
                bar.set_postfix(mpjpe_mm=f"{terms['mpjpe'].item() * 1000:.1f}", lr=f"{lr:.1e}")
        bar.close()
        stop = budget_s > 0 and progress_at(step + 1) >= 1.0
        if distributed:  # every process stops after the same epoch
            import torch.distributed as dist

            flag = torch.tensor([float(stop)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if rank != 0:
            if stop:
                break
            continue
        if (epoch + 1) % tc.val_every and epoch + 1 != tc.epochs and not stop:
            continue
        clean = _validate(core, val_batches["clean"])
        det = _validate(core, val_batches["detector"])
        entry = {
            "epoch": epoch + 1, "lr": lr, "seconds": round(elapsed0 + time.time() - t_start, 1),
            "train_mpjpe_mm": float(sums["mpjpe"]) / tc.steps_per_epoch * 1000,
            "val_clean_mpjpe_mm": clean["mpjpe_mm"], "val_detector_mpjpe_mm": det["mpjpe_mm"],
            "val_detector_root_error_mm": det["root_error_mm"],
        }
        history.append(entry)
        if progress:
            print(f"epoch {epoch + 1}: train {entry['train_mpjpe_mm']:.1f} mm, val clean {clean['mpjpe_mm']:.1f} mm, "
                  f"val detector {det['mpjpe_mm']:.1f} mm, root {det['root_error_mm']:.0f} mm", flush=True)
        meta = _training_meta(cfg, split, world, history)
        save_checkpoint(out / "last.safetensors", core, meta)
        if det["mpjpe_mm"] < best:
            best = det["mpjpe_mm"]
            save_checkpoint(out / "best.safetensors", core, meta)
        torch.save({"model": core.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1, "best": best},
                   out / "state.pt")
        (out / "history.json").write_text(json.dumps(history, indent=1))
        _plot(history, out / "curves.png")
        if stop:
            if progress:
                print(f"time budget of {tc.max_minutes:g} min reached after epoch {epoch + 1}", flush=True)
            break
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return entry if rank == 0 else {}


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


def _training_meta(cfg: RunConfig, split, world: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "training": {
            "data": str(cfg.data.motion),
            "fps": cfg.data.fps,
            "train_groups": list(split.train_groups),
            "validation_groups": list(split.val_groups),
            "config": str(cfg.source) if cfg.source else None,
            "train": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg.train).items()},
            "processes": world,
            "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                        + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"),
            "torch": torch.__version__,
        },
        "metrics": {"history": history[-1] if history else {}},
    }
