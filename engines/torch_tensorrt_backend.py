"""Compile the lifter with Torch-TensorRT (dynamo IR) and save/load it as an ExportedProgram.

UNVERIFIED: written to the documented torch-tensorrt 2.x dynamo API (``torch_tensorrt.compile``
with ``ir="dynamo"``, ``torch_tensorrt.Input``, ``torch_tensorrt.save(...,
output_format="exported_program")``, loading with ``torch.export.load(path).module()``) and never
run here, because torch-tensorrt and TensorRT cannot be installed in our CI environment.

Precision: with strongly typed TensorRT (10.12+, always in 11) ``enabled_precisions`` alone no
longer lowers anything to fp16, so when the installed ``torch_tensorrt.dynamo.compile`` knows
``enable_autocast`` an fp16 build asks for Torch-TensorRT's autocast as well.

Errors: a missing torch-tensorrt raises ImportError; bad arguments or a corrupt saved program
raise ValueError; no CUDA GPU raises RuntimeError. ``torch_tensorrt`` is imported lazily.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["available", "build_program", "load_program"]

PRECISIONS = ("fp32", "fp16")
_INSTALL_HINT = "torch-tensorrt is not installed (pip install posestream[gpu])."


def _import_torch_tensorrt() -> Any:
    try:
        import torch_tensorrt
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return torch_tensorrt


def available() -> tuple[bool, str]:
    """(True, "torch-tensorrt x.y.z") when torch_tensorrt imports and a CUDA GPU is visible."""
    try:
        tt = _import_torch_tensorrt()
    except ImportError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - e.g. OSError from a TensorRT/torch mismatch
        return False, f"torch-tensorrt is installed but failed to import ({exc})."
    if not torch.cuda.is_available():
        return False, "torch-tensorrt is installed but there is no CUDA GPU."
    return True, f"torch-tensorrt {getattr(tt, '__version__', 'unknown')}"


def _precision_kwargs(tt: Any, precision: str) -> dict[str, Any]:
    if precision == "fp32":
        return {"enabled_precisions": {torch.float32}}
    kwargs: dict[str, Any] = {"enabled_precisions": {torch.float16, torch.float32}}
    if "enable_autocast" in inspect.signature(tt.dynamo.compile).parameters:
        kwargs.update(enable_autocast=True, autocast_low_precision_type=torch.float16)
    return kwargs


def build_program(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    precision: str,
    max_batch: int,
    frames: int,
    joints: int,
    channels: int = 3,
) -> None:
    """Compile ``model`` for inputs (1..max_batch, frames, joints, channels) and save it atomically."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    for name, value in (("max_batch", max_batch), ("frames", frames), ("joints", joints),
                        ("channels", channels)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    tt = _import_torch_tensorrt()
    if not torch.cuda.is_available():
        raise RuntimeError("Torch-TensorRT needs a CUDA GPU and none is available.")
    tail = (int(frames), int(joints), int(channels))
    spec = tt.Input(
        min_shape=(1, *tail), opt_shape=(1, *tail), max_shape=(int(max_batch), *tail),
        dtype=torch.float32,
    )
    module = model.eval().cuda()
    compiled = tt.compile(module, ir="dynamo", inputs=[spec], **_precision_kwargs(tt, precision))
    # Passing the Input spec (not an example tensor) lets save() keep the batch axis dynamic.
    _save_atomically(tt, compiled, Path(path), [spec])


def _save_atomically(tt: Any, compiled: Any, out: Path, inputs: list[Any]) -> None:
    """torch_tensorrt.save to a ``.pt2``-suffixed temp file beside ``out``, then one rename."""
    from engines.fileio import atomic_path

    with atomic_path(out, suffix=".tmp.pt2") as tmp:
        tt.save(compiled, str(tmp), output_format="exported_program", inputs=inputs)


def load_program(path: str | os.PathLike) -> Callable[..., Any]:
    """The callable module of a saved program; ValueError in one sentence if it is corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Torch-TensorRT program not found: {path}.")
    _import_torch_tensorrt()  # registers the tensorrt::execute_engine op the program calls
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # zip, pickle and schema errors all mean "corrupt"
        raise ValueError(
            f"{path} is not a readable Torch-TensorRT program ({type(exc).__name__}); "
            "rebuild it with `engines build`."
        ) from exc
    return program.module()
