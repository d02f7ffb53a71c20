"""What every learning method shares about the lifter's output: its training-time predictions
and the supervised loss on them.

Shapes: model inputs (B, T, J, 3) = (u, v, confidence); predictions and targets (B, N, J, 3),
camera frame, metres, for the N supervised frames of the window (every token frame of the
causal transformer, the last frame of the MLP).

Loss per supervised frame: root-relative MPJPE + ``root_weight`` x (|log z - log z*| +
|xy - xy*| / z*) + ``velocity_weight`` x root-relative velocity error between consecutive
supervised frames.
"""

from __future__ import annotations

import torch
from torch import nn

from engines.models import CausalTransformerLifter

__all__ = ["MIN_ROOT_DEPTH_M", "lifter_loss", "predict_frames"]

MIN_ROOT_DEPTH_M = 0.5


def predict_frames(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[int], list[torch.Tensor]]:
    """Training-time predictions (B, N, J, 3), the window frames they are for, and the MLP's
    intermediate heads (each (B, 1, J, 3); none for the transformer). ``model`` may be wrapped
    in DistributedDataParallel."""
    core = model.module if hasattr(model, "module") else model
    T = x.shape[1]
    if isinstance(core, CausalTransformerLifter):
        return model(x, dense=True), core.token_frames(), []
    out, aux = model(x, aux=True)
    return out.unsqueeze(1), [T - 1], [a.unsqueeze(1) for a in aux]


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
