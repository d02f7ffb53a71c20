"""The optimiser's side of a training run: one learning-rate and dropout schedule, one step.

Progress through a run is the fraction of its steps done or, with ``[train] max_minutes``, the
fraction of that wall-clock budget used, whichever is further along (a resumed run keeps the
clock of its earlier sessions). From progress follow:

* the learning rate: linear warm-up over the first ``WARMUP_STEPS`` steps, then a cosine from
  ``[train] lr`` down to ``lr_final`` as progress goes from 0 to 1;
* dropout: off for good from the first epoch that starts at or past ``dropout_off_at``;
* the end: training stops after the epoch in which the wall-clock budget runs out.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from training.config import TrainConfig

__all__ = ["WARMUP_STEPS", "Schedule", "optimizer_step"]

WARMUP_STEPS = 200


class Schedule:
    """The schedule of one run (see the module docstring); ``elapsed_s``: seconds trained before
    this session (a resumed run)."""

    def __init__(self, tc: TrainConfig, elapsed_s: float = 0.0) -> None:
        self.tc = tc
        self.total_steps = max(1, tc.epochs * tc.steps_per_epoch)
        self.budget_s = tc.max_minutes * 60.0
        self._started = time.time() - elapsed_s

    def seconds(self) -> float:
        """Wall-clock seconds trained so far, earlier sessions included."""
        return time.time() - self._started

    def progress(self, step: int) -> float:
        by_time = self.seconds() / self.budget_s if self.budget_s > 0 else 0.0
        return max(step / self.total_steps, by_time)

    def lr(self, step: int) -> float:
        tc = self.tc
        if step < WARMUP_STEPS:
            return tc.lr * (step + 1) / WARMUP_STEPS
        return tc.lr_final + 0.5 * (tc.lr - tc.lr_final) * (1 + math.cos(math.pi * min(1.0, self.progress(step))))

    def dropout_off(self, step: int) -> bool:
        """Whether an epoch starting at ``step`` trains without dropout."""
        return self.tc.dropout_off_at > 0 and self.progress(step) >= self.tc.dropout_off_at

    def out_of_time(self, steps_done: int) -> bool:
        return self.budget_s > 0 and self.progress(steps_done) >= 1.0


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
