"""``--method multiview``: learning from synchronised, calibrated views without 3D labels.

Every view of a rig is lifted on its own. Each view's estimate is moved from its camera into
the world (the lifter's root depth first corrected from the field of view it assumes to the
camera's real one, as ``training evaluate`` does), then into every camera of the rig, and
projected with that camera's intrinsics and lens distortion. The loss is

* ``reprojection``: distance of those projections from each view's observed 2D (confidence
  weighted, in units of the observed 2D body size), over all pairs of estimate and view, and
* ``consistency_weight`` x ``consistency``: distance (metres) of each view's world-frame
  estimate from the confidence-weighted mean of all views' estimates, for the root-relative
  pose (in the shared world axes) and the root position separately, and
* ``triangulation_weight`` x ``triangulation``: distance (metres) of each view's world-frame
  estimate from the 3D triangulated from all views' 2D (:func:`training.methods.geometry.triangulate_rig`: robust
  DLT that leaves out a disagreeing view and drops joints that still reproject badly), again
  shape and root separately. The triangulated point is where the views' rays meet, the
  closed-form answer the reprojection term is slowly descending to; as a target it gives every
  joint a direct 3D pull (pseudo-labels from multi-view geometry, as in EpipolarPose, Kocabas
  et al. 2019), still without any 3D label.

Calibrated extrinsics are metric, so the scale is recoverable: agreement across views fixes
the size and distance that one view cannot. Training rigs are synthetic (``views`` virtual
cameras around a training-subject mocap window, detector noise, one augmentation shared by
all views) and, with ``[method] real_clips``, real synchronised videos (e.g.
``../shared/media/pose2sim-demo``) with 2D from our detector, drawn with probability
``real_fraction``. :func:`multiview_terms` is also what ``training adapt`` minimises.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from engines.skeleton import CANONICAL
from training.config import RunConfig
from training.losses import predict_frames
from training.methods.clips import MultiViewClip, load_clip
from training.methods.geometry import Rig, reprojection_error, triangulate_rig, true_camera_frame
from training.synth import (
    NO_AUGMENTATION,
    Augmentation,
    NoiseModel,
    WindowSampler,
    project_windows,
    sample_cameras_for,
    scale_bones,
)

__all__ = ["MultiViewMethod", "clip_windows", "lift_views", "multiview_terms"]


def triangulation_term(world: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean distance (metres) of world-frame estimates (B, V, N, J, 3) from triangulated targets
    (B, N, J, 3, NaN = none): root-relative shape where the target's joint and root exist, plus
    the root position."""
    ok = torch.isfinite(target).all(dim=-1)  # (B, N, J)
    tgt = torch.nan_to_num(target.to(world.dtype))
    root_ok = ok[..., 0]  # (B, N)
    shape_ok = (ok & root_ok[..., None]).unsqueeze(1).to(world.dtype)  # (B, 1, N, J)
    V = world.shape[1]
    rel = (world - world[..., :1, :]) - (tgt - tgt[..., :1, :]).unsqueeze(1)
    shape = (rel.norm(dim=-1) * shape_ok).sum() / (shape_ok.sum() * V).clamp_min(1.0)
    root_w = root_ok.unsqueeze(1).to(world.dtype)  # (B, 1, N)
    root = ((world[..., 0, :] - tgt[..., 0, :].unsqueeze(1)).norm(dim=-1) * root_w).sum() / (root_w.sum() * V).clamp_min(1.0)
    return shape + root


def lift_views(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Lift every view: keypoints (B, V, T, J, 3) -> predictions (B, V, N, J, 3) for the
    model's supervised window frames (every token frame of the transformer, the last of an MLP)."""
    if x.dim() != 5:
        raise ValueError(f"expected views (batch, views, time, joints, 3), got {tuple(x.shape)}")
    B, V = x.shape[:2]
    pred, frames, _ = predict_frames(model, x.flatten(0, 1))
    return pred.view(B, V, *pred.shape[1:]), frames


def multiview_terms(pred: torch.Tensor, keypoints: torch.Tensor, rig: Rig,
                    targets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Cross-view reprojection and 3D consistency for predictions (B, V, N, J, 3), the views'
    2D (B, V, N, J, 3) and their cameras ``rig`` (B, V); with triangulated ``targets``
    (B, N, J, 3), also the ``triangulation`` term. Also returns the world-frame estimates
    (B, V, N, J, 3) under ``world``."""
    B, V = pred.shape[:2]
    cam = true_camera_frame(pred, rig.depth_scale[..., None])
    world = rig.to_world(cam)  # (B, Vi, N, J, 3)
    into = torch.einsum("bkxy,binjy->biknjx", rig.R, world) + rig.t[:, None, :, None, None, :]  # (B, Vi, Vk, N, J, 3)
    target_rig = Rig(*(getattr(rig, k).unsqueeze(1) for k in ("R", "t", "f", "c", "size", "dist")))
    screen, front = target_rig.project_screen(into)
    reproj = reprojection_error(screen, keypoints.unsqueeze(1).expand(B, V, V, *keypoints.shape[2:]), front)
    w = keypoints[..., 2].mean(dim=-1, keepdim=True).unsqueeze(-1)  # (B, V, N, 1, 1): how well each view sees it
    def spread(p: torch.Tensor) -> torch.Tensor:  # weighted mean distance from the views' weighted mean
        mean = (p * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp_min(1e-6)
        return ((p - mean).norm(dim=-1, keepdim=True) * w).sum() / (w.sum() * p.shape[-2]).clamp_min(1e-6)

    # the shape (root-relative, in the shared world axes) and the position separately: a view's
    # wrong distance must not be "fixed" by bending its pose
    consistency = spread(world - world[..., :1, :]) + spread(world[..., :1, :])
    out = {"reprojection": reproj, "consistency": consistency, "world": world}
    if targets is not None:
        out["triangulation"] = triangulation_term(world, targets)
    return out


def clip_windows(clip: MultiViewClip, ends: np.ndarray, window: int) -> np.ndarray:
    """Windows (B, V, T, J, 3) of a clip's 2D ending at frames ``ends`` (B,), the first frame
    repeated before the clip starts (as the real-time buffer does)."""
    idx = np.maximum(ends[:, None] + np.arange(-window + 1, 1)[None, :], 0)  # (B, T)
    return np.moveaxis(clip.keypoints[:, idx], 0, 1)


class MultiViewMethod:
    """Synthetic rigs from mocap plus optional real clips (see the module docstring)."""

    name = "multiview"
    uses_3d_labels = False
    distributed = False

    def __init__(self, cfg: RunConfig, sampler: WindowSampler, noise: NoiseModel, device: torch.device) -> None:
        self.mc, self.tc = cfg.method, cfg.train
        if self.mc.views < 2:
            raise ValueError(f"[method] views must be at least 2 for multi-view training, got {self.mc.views}")
        self.sampler, self.noise, self.device = sampler, noise, device
        self.window = cfg.model.receptive_field
        self.clips: list[MultiViewClip] = []
        for folder in self.mc.real_clips:
            clip = load_clip(folder, progress=True)
            self.clips.append(clip.every(max(1, round(clip.fps / cfg.data.fps))))

    def _synthetic(self, rng: np.random.Generator):
        V = self.mc.views
        B = max(1, self.tc.batch_size // V)
        w3 = self.sampler.gather(self.sampler.sample_ends(rng, B))
        aug = Augmentation()
        root = w3[:, -1:, :1, :]
        local = w3 - root
        flip = rng.uniform(size=B) < aug.flip
        local[flip] = CANONICAL.flip(local[flip], axis=0)
        factor = rng.uniform(1 - aug.bone_scale, 1 + aug.bone_scale, (B, CANONICAL.num_joints))
        for a, b in CANONICAL.left_right_pairs:
            factor[:, b] = factor[:, a]
        w3 = scale_bones(local, factor * rng.uniform(*aug.body_scale, (B, 1))) + root
        rep = np.repeat(w3, V, axis=0)  # rig after rig: (B*V, T, J, 3)
        aim = np.repeat(w3[:, -1, 0, :] + rng.uniform(-1, 1, (B, 3)) * np.asarray(aug.aim_offset_m), V, axis=0)
        cams = sample_cameras_for(rng, rep, aim=aim)
        batch = project_windows(rng, rep, self.noise, NO_AUGMENTATION, cameras=cams)
        x = torch.from_numpy(batch.inputs).view(B, V, *batch.inputs.shape[1:])
        y = torch.from_numpy(batch.true_targets).view(B, V, *batch.true_targets.shape[1:])
        return x, y, Rig.from_batch(cams, V)

    def _real(self, rng: np.random.Generator):
        clip = self.clips[rng.integers(len(self.clips))]
        B = max(1, self.tc.batch_size // clip.views)
        x = torch.from_numpy(clip_windows(clip, rng.integers(0, clip.frames, B), self.window))
        return x, None, Rig.from_cameras(clip.cameras, clip.image_size).expand(B)

    def extra_step(self, model: nn.Module, rng: np.random.Generator, step: int, lr: float) -> dict[str, float]:
        return {}

    def step(self, model: nn.Module, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        real = bool(self.clips) and rng.uniform() < self.mc.real_fraction
        x, y, rig = self._real(rng) if real else self._synthetic(rng)
        x = x.to(self.device)
        rig = Rig(*(getattr(rig, k).to(self.device) for k in ("R", "t", "f", "c", "size", "dist")))
        pred, frames = lift_views(model, x)
        targets = None
        if self.mc.triangulation_weight > 0:
            targets = triangulate_rig(x[:, :, frames], rig)
        terms = multiview_terms(pred, x[:, :, frames], rig, targets)
        total = terms["reprojection"] + self.mc.consistency_weight * terms["consistency"]
        if targets is not None:
            total = total + self.mc.triangulation_weight * terms["triangulation"]
        if y is None:
            monitor = torch.tensor(float("nan"))
        else:
            with torch.no_grad():
                t = y[:, :, frames].to(self.device)
                monitor = ((pred - pred[..., :1, :]) - (t - t[..., :1, :])).norm(dim=-1).mean()
        return {"total": total, "reprojection": terms["reprojection"].detach(),
                "triangulation": terms.get("triangulation", torch.tensor(float("nan"))).detach(),
                "consistency": terms["consistency"].detach(), "real": torch.tensor(float(real)), "monitor_mpjpe": monitor}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
