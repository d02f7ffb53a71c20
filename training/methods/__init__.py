"""Learning a lifter without full 3D labels: the seeds' adversarial, multi-view and ordinal
methods, selected by ``training train --method ...`` (``supervised`` stays in ``training.train``),
plus test-time adaptation (``training adapt``) and the comparison report
(``training methods-report``).

Modules: ``geometry`` (differentiable cameras and poses), ``loop`` (the shared training loop),
``adversarial``, ``multiview``, ``ordinal``, ``clips`` (synchronised multi-view clips: videos +
calibration with cached detections, or synthetic ones from mocap), ``adapt`` and ``report``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["METHODS", "run_method"]

METHODS = ("supervised", "adversarial", "multiview", "ordinal")


def run_method(cfg, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train with ``cfg.train.method`` (anything but ``supervised``)."""
    from training.methods.loop import run_method_loop

    name = cfg.train.method
    if name == "adversarial":
        from training.methods.adversarial import AdversarialMethod as cls
    elif name == "multiview":
        from training.methods.multiview import MultiViewMethod as cls
    elif name == "ordinal":
        from training.methods.ordinal import OrdinalMethod as cls
    else:
        raise ValueError(f"unknown training method {name!r}")
    return run_method_loop(cfg, cls, resume=resume, progress=progress)
