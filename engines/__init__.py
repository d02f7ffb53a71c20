"""posestream engines: models, checkpoints and the runtime that runs them.

``engines.load(source, backend="auto")`` returns an :class:`engines.runtime.Engine`
(imported lazily, so ``import engines`` stays light).
"""

from __future__ import annotations

__all__ = ["BACKENDS", "Engine", "EngineError", "load"]


def __getattr__(name: str):
    if name in __all__:
        from engines import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'engines' has no attribute {name!r}")
