"""The validation curve of a training run: fixed windows of the validation subjects, scored
after every ``[train] val_every`` epochs.

The windows are drawn once per run with fixed seeds (the same ones for every method and every
resume), filmed by virtual cameras with clean 2D and with the detector noise model, without
augmentation. Only the validation subjects' 3D labels are used, and only to score.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.data import Split, make_sampler
from training.motion import MotionArchive
from training.synth import CLEAN, DETECTOR, NO_AUGMENTATION, Batch

__all__ = ["validate", "validation_batches"]


def validation_batches(archive: MotionArchive, split: Split, window: int, count: int) -> dict[str, list[Batch]]:
    """``count`` validation windows of ``window`` frames as batches of at most 512, under
    ``clean`` and ``detector`` 2D."""
    ends = np.random.default_rng(12345).choice(split.val_frames, size=count, replace=len(split.val_frames) < count)
    sampler = make_sampler(archive, window, split.val_frames)
    batches = {}
    for name, noise in (("clean", CLEAN), ("detector", DETECTOR)):
        rng = np.random.default_rng(777)
        batches[name] = [sampler.make(rng, ends[i:i + 512], noise, NO_AUGMENTATION) for i in range(0, len(ends), 512)]
    return batches


@torch.no_grad()
def validate(model: nn.Module, batches: list[Batch]) -> dict[str, float]:
    """Current-frame MPJPE (root-relative) and root error on fixed validation windows, mm."""
    model.eval()
    errs, roots = [], []
    for batch in batches:
        x = torch.from_numpy(batch.inputs)
        out = model(x.to(next(model.parameters()).device)).cpu().numpy()
        tgt = batch.targets[:, -1]
        rel = (out - out[:, :1]) - (tgt - tgt[:, :1])
        errs.append(np.linalg.norm(rel, axis=-1).mean(axis=-1))
        roots.append(np.linalg.norm(out[:, 0] - tgt[:, 0], axis=-1))
    model.train()
    return {"mpjpe_mm": float(np.concatenate(errs).mean() * 1000), "root_error_mm": float(np.concatenate(roots).mean() * 1000)}
