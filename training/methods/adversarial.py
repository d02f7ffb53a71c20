"""``--method adversarial``: lifting learnt from 2D poses alone (Kudo et al. 2018, "Unsupervised
adversarial learning of 3D human pose from 2D joint locations"), and a supervised GAN with a 3D
discriminator (``[method] disc3d = true``).

Unsupervised (the default). The lifter is the generator. Its 3D output must reproject onto the
observed 2D through the camera the model assumes (``reprojection_weight``): given the 2D, what
is left to learn is each joint's depth, which is what Kudo et al.'s generator predicts. The
root-relative 3D pose is then turned about the camera's vertical axis by a random angle and
projected; a :class:`PoseDiscriminator2D` tells these projections from real 2D poses (other
windows of the same 2D data), both normalised (pelvis-centred, divided by their RMS size) and
given the same missing-joint pattern, so neither size nor missing joints give the game away.
A correct 3D pose looks like a real 2D pose from any side; a wrong one does not. Depth-flipped
poses (every joint mirrored in depth) project like correct ones turned the other way, so a
body-orientation heuristic penalises a negative :func:`~training.methods.geometry.facing_sine`.
The generator takes ``gen_steps`` steps per discriminator step. No 3D label is used.

Supervised GAN (``disc3d``): the supervised lifter loss plus ``adversarial_weight`` x the
generator term of a :class:`PoseDiscriminator3D` that tells predicted root-relative 3D poses
from true ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engines.skeleton import CANONICAL
from training.config import RunConfig
from training.losses import lifter_loss, predict_frames
from training.methods.geometry import (
    facing_sine,
    normalise_2d,
    project_assumed,
    reprojection_error,
    rotate_about_y,
    size_prior,
)
from training.synth import Augmentation, NoiseModel, WindowSampler

__all__ = ["AdversarialMethod", "PoseDiscriminator2D", "PoseDiscriminator3D"]

J = CANONICAL.num_joints


class _MLPDiscriminator(nn.Module):
    """Three hidden LeakyReLU layers and one logit."""

    def __init__(self, features: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(-1)


class PoseDiscriminator2D(_MLPDiscriminator):
    """Real or generated? Normalised 2D poses (B, J, 2) -> logits (B,)."""

    def __init__(self, hidden: int = 256) -> None:
        super().__init__(2 * J, hidden)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        if xy.dim() != 3 or xy.shape[1:] != (J, 2):
            raise ValueError(f"expected 2D poses (batch, {J}, 2), got {tuple(xy.shape)}")
        return super().forward(xy)


class PoseDiscriminator3D(_MLPDiscriminator):
    """Real or generated? Root-relative 3D poses in metres (B, J, 3) -> logits (B,)."""

    def __init__(self, hidden: int = 256) -> None:
        super().__init__(3 * J, hidden)

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        if pose.dim() != 3 or pose.shape[1:] != (J, 3):
            raise ValueError(f"expected 3D poses (batch, {J}, 3), got {tuple(pose.shape)}")
        return super().forward(pose)


class AdversarialMethod:
    """State and losses of adversarial training (see the module docstring)."""

    name = "adversarial"
    uses_3d_labels = False  # set per run: the supervised GAN (disc3d) learns from 3D labels
    distributed = False

    def __init__(self, cfg: RunConfig, sampler: WindowSampler, noise: NoiseModel, device: torch.device) -> None:
        self.mc, self.tc = cfg.method, cfg.train
        self.sampler, self.noise, self.device = sampler, noise, device
        self.uses_3d_labels = self.mc.disc3d  # the supervised GAN
        self.disc = (PoseDiscriminator3D() if self.uses_3d_labels else PoseDiscriminator2D()).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=self.mc.disc_lr, betas=(0.5, 0.999))
        if self.uses_3d_labels:
            self.name = "adversarial-3d"

    def _batch(self, rng: np.random.Generator):
        b = self.sampler.make(rng, self.sampler.sample_ends(rng, self.tc.batch_size), self.noise, Augmentation())
        return torch.from_numpy(b.inputs).to(self.device), torch.from_numpy(b.targets).to(self.device)

    def _fake(self, model: nn.Module, x: torch.Tensor, rng: np.random.Generator):
        """Generator output for a batch: predictions (B, N, J, 3), the frames' 2D (B, N, J, 3)
        and the discriminator's fake samples."""
        pred, frames, _ = predict_frames(model, x)
        kp = x[:, frames]
        rel = pred - pred[..., :1, :]
        if self.uses_3d_labels:
            return pred, kp, frames, rel.reshape(-1, J, 3)
        B, N = pred.shape[:2]
        angle = torch.as_tensor(rng.uniform(-math.pi, math.pi, (B, N)), dtype=pred.dtype, device=pred.device)
        xy = rotate_about_y(rel, angle)[..., :2]  # orthographic, as Kudo et al.: the person is far from the lens
        fake = normalise_2d(xy) * (kp[..., 2:] > 0).to(xy.dtype)  # the input's missing joints are missing here too
        return pred, kp, frames, fake.reshape(-1, J, 2)

    def _real(self, rng: np.random.Generator) -> torch.Tensor:
        x, y = self._batch(rng)
        if self.uses_3d_labels:
            rel = y[:, -1] - y[:, -1, :1]
            return rel
        kp = x[:, -1]
        return normalise_2d(kp[..., :2]) * (kp[..., 2:] > 0).to(kp.dtype)

    def extra_step(self, model: nn.Module, rng: np.random.Generator, step: int, lr: float) -> dict[str, float]:
        if step % max(1, self.mc.gen_steps):
            return {}
        x, _ = self._batch(rng)
        with torch.no_grad():
            fake = self._fake(model, x, rng)[3]
        real = self._real(rng)
        logits_real, logits_fake = self.disc(real), self.disc(fake)
        loss = (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
                + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"disc_loss": loss.item() * self.mc.gen_steps}  # averaged per step by the loop

    def step(self, model: nn.Module, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        x, y = self._batch(rng)
        pred, kp, frames, fake = self._fake(model, x, rng)
        logits = self.disc(fake)
        adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        target = y[:, frames]
        with torch.no_grad():
            monitor = ((pred - pred[..., :1, :]) - (target - target[..., :1, :])).norm(dim=-1).mean()
        if self.uses_3d_labels:
            sup = lifter_loss(pred, target, self.tc.root_weight, self.tc.velocity_weight)["total"]
            total = sup + self.mc.adversarial_weight * adv
            return {"total": total, "supervised": sup.detach(), "adversarial": adv.detach(), "monitor_mpjpe": monitor}
        reproj = reprojection_error(project_assumed(pred), kp)
        heuristic = F.relu(-facing_sine(pred)).mean()
        size = size_prior(pred)
        total = (self.mc.adversarial_weight * adv + self.mc.reprojection_weight * reproj
                 + self.mc.heuristic_weight * heuristic + self.mc.size_weight * size)
        return {"total": total, "adversarial": adv.detach(), "reprojection": reproj.detach(),
                "heuristic": heuristic.detach(), "size": size.detach(), "monitor_mpjpe": monitor}

    def state_dict(self) -> dict[str, Any]:
        return {"disc": self.disc.state_dict(), "disc_opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.disc.load_state_dict(state["disc"])
            self.opt.load_state_dict(state["disc_opt"])
