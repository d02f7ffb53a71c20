"""How a lifter learns: ``training train --method ...`` picks one :class:`Method`, and the one
training loop (``training.train``) runs it.

* ``supervised`` (default): 3D mocap labels filmed by virtual cameras;
* ``adversarial``: 2D poses alone (Kudo et al. 2018), or with ``[method] disc3d`` a supervised
  GAN with a discriminator on 3D poses;
* ``multiview``: synchronised, calibrated views without 3D labels;
* ``ordinal``: pairwise depth order (after Pavlakos et al. 2018).

Also here: test-time adaptation (``training adapt``) and the comparison report
(``training methods-report``). Modules: ``supervised``, ``adversarial``, ``multiview``,
``ordinal``, ``geometry`` (differentiable cameras and poses), ``clips`` (synchronised
multi-view clips: videos + calibration with cached detections, or synthetic ones from mocap),
``adapt`` and ``report``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from training.config import METHODS

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

__all__ = ["METHODS", "Method", "method_class"]


class Method(Protocol):
    """A way of learning: draws its own batches, computes its loss, owns any extra networks.

    Built as ``cls(cfg, sampler, noise, device)``: the run's config, a
    :class:`~training.synth.WindowSampler` over the training subjects' frames, the configured
    2D noise model and the device."""

    name: str
    uses_3d_labels: bool  # True: best.safetensors is the epoch with the lowest validation MPJPE
    distributed: bool  # True: can train under torchrun (gradients averaged by DDP)

    def step(self, model: nn.Module, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Loss terms for one batch; ``total`` is minimised, ``monitor_mpjpe`` (m) only reported."""

    def extra_step(self, model: nn.Module, rng: np.random.Generator, step: int, lr: float) -> dict[str, float]:
        """Anything trained beside the lifter (a discriminator), before its step; {} when nothing."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def method_class(name: str) -> type:
    """The :class:`Method` called ``name`` (one of ``METHODS``)."""
    if name == "supervised":
        from training.methods.supervised import SupervisedMethod as cls
    elif name == "adversarial":
        from training.methods.adversarial import AdversarialMethod as cls
    elif name == "multiview":
        from training.methods.multiview import MultiViewMethod as cls
    elif name == "ordinal":
        from training.methods.ordinal import OrdinalMethod as cls
    else:
        raise ValueError(f"unknown training method {name!r}; choose one of: {', '.join(METHODS)}")
    return cls
