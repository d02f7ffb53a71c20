"""``training adapt``: test-time adaptation of a lifter on a user's own multi-view clip.

No labels: the lifter is fine-tuned on the clip's synchronised, calibrated views with the
multi-view loss (:func:`training.methods.multiview.multiview_terms`: cross-view reprojection,
3D agreement and the pull towards the clip's triangulated 3D), in evaluation mode (batch-norm statistics and dropout as at inference).
What it gains is measured on the same clip by :func:`clip_report`, before and after:

* always: ``reprojection_px`` (each view's 3D estimate projected into every camera, median
  distance to that camera's detections with confidence >= 0.5; a median, because a joint
  estimated near a camera's plane projects arbitrarily far), ``disagreement_mm`` (distance of each
  view's world-frame estimate from the views' mean), and against the 3D triangulated from all
  views' 2D (``engines.triangulation``): ``triangulation_mm`` (absolute joint positions) and
  ``triangulation_p_mpjpe_mm`` (after Procrustes). Triangulation is not ground truth, and the
  adaptation loss pulls towards agreement with all views, so these show consistency gained.
* with a synthetic clip's true 3D: ``mpjpe_mm``, ``n_mpjpe_mm``, ``p_mpjpe_mm``, each view in
  its own camera frame (root-relative), as ``training evaluate`` computes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from training import metrics
from training.methods.clips import MultiViewClip
from training.methods.geometry import Rig, triangulate_rig
from training.methods.multiview import clip_windows, lift_views, multiview_terms
from training.optim import optimizer_step

__all__ = ["AdaptSettings", "adapt", "clip_report", "predict_clip"]


@dataclass(frozen=True)
class AdaptSettings:
    steps: int = 200
    lr: float = 1e-4
    windows: int = 16  # windows per step (each lifted in every view)
    consistency_weight: float = 5.0
    triangulation_weight: float = 5.0
    seed: int = 0


def adapt(model: nn.Module, clips: list[MultiViewClip], settings: AdaptSettings = AdaptSettings(),
          progress: bool = False) -> list[float]:
    """Fine-tune ``model`` in place on ``clips``; returns the loss of every step."""
    from tqdm import tqdm

    if settings.steps < 1 or settings.lr <= 0:
        raise ValueError("adaptation needs steps >= 1 and lr > 0")
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    model.eval()  # inference-time normalisation; gradients still flow
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    rigs = [Rig.from_cameras(c.cameras, c.image_size) for c in clips]
    targets = [triangulate_rig(torch.from_numpy(c.keypoints).unsqueeze(0), r.expand(1))[0] if settings.triangulation_weight > 0
               else None for c, r in zip(clips, rigs)]  # (F, J, 3) world per clip, computed once
    losses = []
    for _ in tqdm(range(settings.steps), desc="adapt", disable=not progress, leave=False):
        k = rng.integers(len(clips))
        clip = clips[k]
        ends = rng.integers(0, clip.frames, settings.windows)
        x = torch.from_numpy(clip_windows(clip, ends, model.receptive_field))
        pred, frames = lift_views(model, x)
        target = None
        if targets[k] is not None:
            absolute = np.maximum(ends[:, None] - model.receptive_field + 1 + np.asarray(frames)[None, :], 0)  # (B, N)
            target = targets[k][torch.from_numpy(absolute)]
        terms = multiview_terms(pred, x[:, :, frames], rigs[k].expand(len(ends)), target)
        loss = terms["reprojection"] + settings.consistency_weight * terms["consistency"]
        if target is not None:
            loss = loss + settings.triangulation_weight * terms["triangulation"]
        optimizer_step(opt, model, loss, "adaptation", fix="lower --lr")
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def predict_clip(model: nn.Module, clip: MultiViewClip) -> np.ndarray:
    """Causal predictions of every view, each in its own true camera frame: (V, F, J, 3), metres."""
    from training.evaluate import lift_clip

    model.eval()
    out = []
    rig = Rig.from_cameras(clip.cameras, clip.image_size)
    scale = rig.depth_scale.numpy().astype(np.float64)
    for v in range(clip.views):
        pred = lift_clip(model, clip.keypoints[v]).astype(np.float64)
        pred[:, :, 2] += (1.0 / scale[v] - 1.0) * pred[:, :1, 2]
        out.append(pred)
    return np.stack(out)


def clip_report(model: nn.Module, clip: MultiViewClip) -> dict[str, float]:
    """Consistency (and, with truth, accuracy) of ``model`` on ``clip`` (see the module docstring)."""
    from engines.triangulation import triangulate

    cam = predict_clip(model, clip)  # (V, F, J, 3)
    world = np.stack([c.camera_to_world(cam[v]) for v, c in enumerate(clip.cameras)])
    pixels = clip.pixels()
    conf = clip.keypoints[..., 2].astype(np.float64)
    tri = triangulate(pixels, clip.cameras, conf)  # (F, J, 3)
    ok = np.isfinite(tri).all(axis=-1)  # (F, J)
    out: dict[str, float] = {}
    proj = np.stack([np.stack([c.project(world[v]) for c in clip.cameras]) for v in range(clip.views)])  # (Vi, Vk, F, J, 2)
    good = (conf >= 0.5)[None]  # (1, Vk, F, J)
    err = np.linalg.norm(proj - pixels[None], axis=-1)
    out["reprojection_px"] = float(np.nanmedian(np.where(good & np.isfinite(err), err, np.nan)))
    out["disagreement_mm"] = float(np.linalg.norm(world - world.mean(axis=0), axis=-1).mean() * 1000)
    if ok.any():
        out["triangulation_mm"] = float(np.linalg.norm(world - tri[None], axis=-1)[:, ok].mean() * 1000)
        full = ok.all(axis=-1)
        if full.any():
            rel_w = world[:, full] - world[:, full, :1]
            rel_t = np.broadcast_to(tri[full] - tri[full, :1], rel_w.shape)
            out["triangulation_p_mpjpe_mm"] = metrics.p_mpjpe(rel_w, rel_t) * 1000
    if clip.truth_world is not None:
        truth = np.stack([c.world_to_camera(clip.truth_world) for c in clip.cameras])
        rel_p, rel_t = cam - cam[..., :1, :], truth - truth[..., :1, :]
        out["mpjpe_mm"] = metrics.mpjpe(rel_p, rel_t) * 1000
        out["n_mpjpe_mm"] = metrics.n_mpjpe(rel_p, rel_t) * 1000
        out["p_mpjpe_mm"] = metrics.p_mpjpe(rel_p, rel_t) * 1000
        out["ordinal_accuracy"] = metrics.ordinal_depth_accuracy(cam, truth)
    return out


def improvement(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Relative reduction (fraction) of every error present in both reports."""
    return {k: (before[k] - after[k]) / before[k] for k in before
            if k in after and k.endswith(("_mm", "_px")) and before[k] > 0}
