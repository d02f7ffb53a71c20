"""``--method ordinal``: weak supervision from pairwise depth order (after Pavlakos et al. 2018,
"Ordinal depth supervision for 3D human pose estimation").

The annotation a person can give for a 2D pose is which of two joints is nearer the camera,
or that they are roughly level. Here it is derived from mocap: for every pair of joints
(i < j), the true camera-frame depths give -1 (i nearer), +1 (i farther) or 0 (within
``tolerance_m``, the "roughly equal" band) -- the same relation the ordinal-depth accuracy
metric (``training.metrics.ordinal_depth_agreement``) scores. No 3D coordinate is used.

Loss on the predicted depths ``d = z_i - z_j`` (metres, tolerance ``m``):

* ordered pairs, relation r = +-1: ``softplus((m - r d) / m)``, a smooth hinge asking for the
  right order by a margin of about one band, and nearly flat beyond it;
* level pairs: ``(d / m)^2 / 2``, asking them to stay level;
* plus the 2D reprojection through the assumed camera (the 3D must still explain the 2D) and
  the body-size prior of :func:`~training.methods.geometry.size_prior` (depth order, like 2D,
  says nothing about scale).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engines.skeleton import CANONICAL
from training.config import RunConfig
from training.losses import predict_frames
from training.methods.geometry import project_assumed, reprojection_error, size_prior
from training.synth import Augmentation, NoiseModel, WindowSampler

__all__ = ["OrdinalMethod", "depth_relations", "rank_loss"]

_I, _J = np.triu_indices(CANONICAL.num_joints, 1)


def depth_relations(pose: torch.Tensor, tolerance: float) -> torch.Tensor:
    """(..., J, 3) camera frame -> (..., J(J-1)/2) in {-1, 0, +1}, pairs in ``triu_indices`` order."""
    d = pose[..., _I, 2] - pose[..., _J, 2]
    return torch.where(d.abs() < tolerance, torch.zeros_like(d), torch.sign(d))


def rank_loss(pose: torch.Tensor, relations: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Mean pairwise ranking loss of predicted poses (..., J, 3) against ``relations``."""
    d = (pose[..., _I, 2] - pose[..., _J, 2]) / tolerance
    ordered = F.softplus(1.0 - relations * d)
    level = 0.5 * d * d
    return torch.where(relations == 0, level, ordered).mean()


class OrdinalMethod:
    """Pairwise depth order + 2D reprojection + size prior (see the module docstring)."""

    name = "ordinal"
    uses_3d_labels = False
    distributed = False

    def __init__(self, cfg: RunConfig, sampler: WindowSampler, noise: NoiseModel, device: torch.device) -> None:
        self.mc, self.tc = cfg.method, cfg.train
        if self.mc.tolerance_m <= 0:
            raise ValueError(f"[method] tolerance_m must be > 0, got {self.mc.tolerance_m}")
        self.sampler, self.noise, self.device = sampler, noise, device

    def extra_step(self, model: nn.Module, rng: np.random.Generator, step: int, lr: float) -> dict[str, float]:
        return {}

    def step(self, model: nn.Module, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        b = self.sampler.make(rng, self.sampler.sample_ends(rng, self.tc.batch_size), self.noise, Augmentation())
        x = torch.from_numpy(b.inputs).to(self.device)
        pred, frames, _ = predict_frames(model, x)
        truth = torch.from_numpy(b.true_targets[:, frames]).to(self.device)
        relations = depth_relations(truth, self.mc.tolerance_m)  # the annotation; nothing else of the 3D is used
        rank = rank_loss(pred, relations, self.mc.tolerance_m)
        reproj = reprojection_error(project_assumed(pred), x[:, frames])
        size = size_prior(pred)
        total = self.mc.ordinal_weight * rank + self.mc.reprojection_weight * reproj + self.mc.size_weight * size
        with torch.no_grad():
            monitor = ((pred - pred[..., :1, :]) - (truth - truth[..., :1, :])).norm(dim=-1).mean()
        return {"total": total, "rank": rank.detach(), "reprojection": reproj.detach(), "size": size.detach(),
                "monitor_mpjpe": monitor}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
