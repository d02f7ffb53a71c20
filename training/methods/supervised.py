"""``--method supervised`` (the default): 3D mocap filmed by virtual cameras, learnt from its labels.

Each step draws a batch of training-subject windows (random cameras within ``[data]
camera_distance_m``, the configured 2D noise, the default augmentation) and minimises
:func:`~training.losses.lifter_loss` on every supervised frame; the MLP's intermediate heads
add ``aux_weight`` x their MPJPE. With ``[train] workers`` > 0 the batches are synthesised by
background processes, each with its own seeded generator. The only method that trains under
torchrun: every process draws its own batches, DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.camera import VirtualCameraRanges
from training.config import RunConfig, TrainConfig
from training.losses import lifter_loss, predict_frames
from training.synth import Augmentation, NoiseModel, WindowSampler

__all__ = ["SupervisedMethod", "batch_stream"]


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless training batches for DataLoader workers, each with its own seeded generator."""

    def __init__(self, sampler: WindowSampler, batch_size: int, noise: NoiseModel, seed: list[int],
                 ranges: VirtualCameraRanges) -> None:
        self.sampler, self.batch_size, self.noise, self.seed, self.ranges = sampler, batch_size, noise, seed, ranges

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng(self.seed + [info.id if info else 0])
        while True:
            b = self.sampler.make(rng, self.sampler.sample_ends(rng, self.batch_size), self.noise, Augmentation(), self.ranges)
            yield torch.from_numpy(b.inputs), torch.from_numpy(b.targets)


def batch_stream(sampler: WindowSampler, tc: TrainConfig, noise: NoiseModel, rng: np.random.Generator,
                 ranges: VirtualCameraRanges, pin: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) tensors forever: drawn with ``rng`` in this process, or, with
    ``tc.workers`` > 0, by background processes seeded from ``rng``."""
    if tc.workers <= 0:
        while True:
            b = sampler.make(rng, sampler.sample_ends(rng, tc.batch_size), noise, Augmentation(), ranges)
            yield torch.from_numpy(b.inputs), torch.from_numpy(b.targets)
    seed = [int(s) for s in rng.integers(0, 2**32, 2)]
    loader = torch.utils.data.DataLoader(_BatchStream(sampler, tc.batch_size, noise, seed, ranges), batch_size=None,
                                         num_workers=tc.workers, pin_memory=pin, prefetch_factor=4,
                                         persistent_workers=True)
    yield from loader


class SupervisedMethod:
    """The supervised lifter loss on synthetic 2D of real mocap (see the module docstring)."""

    name = "supervised"
    uses_3d_labels = True
    distributed = True

    def __init__(self, cfg: RunConfig, sampler: WindowSampler, noise: NoiseModel, device: torch.device) -> None:
        self.tc = cfg.train
        self.sampler, self.noise, self.device = sampler, noise, device
        self.ranges = VirtualCameraRanges(distance_m=tuple(cfg.data.camera_distance_m))
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    def extra_step(self, model: nn.Module, rng: np.random.Generator, step: int, lr: float) -> dict[str, float]:
        return {}

    def step(self, model: nn.Module, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        tc = self.tc
        if self._batches is None:  # the generator the loop passes (re-seeded when a run resumes)
            self._batches = batch_stream(self.sampler, tc, self.noise, rng, self.ranges, pin=self.device.type == "cuda")
        inputs, targets = next(self._batches)
        pred, frames, aux = predict_frames(model, inputs.to(self.device, non_blocking=True))
        y = targets[:, frames].to(self.device, non_blocking=True)
        terms = lifter_loss(pred, y, tc.root_weight, tc.velocity_weight)
        total = terms.pop("total")
        for a in aux:
            total = total + tc.aux_weight * lifter_loss(a, y, tc.root_weight, 0.0)["mpjpe"]
        return {"total": total, "monitor_mpjpe": terms.pop("mpjpe").detach(),
                **{k: v.detach() for k, v in terms.items()}}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
