"""``engines verify``: a built engine against torch eager on real model inputs.

Verify reads model inputs, never motion: an ``.npz`` with ``keypoints`` of shape (N, T, J, 3)
windows or (F, J, 3) consecutive frames (a window ends at each frame, the first frame repeated
before the start), or such an array. Without one it uses the bundled
``engines/assets/verify_keypoints.npz``: consecutive frames of CMU mocap clips of subjects never
trained on, filmed by seeded virtual cameras with the detector noise model. ``training
make-windows`` wrote it (the command is in docs/engines.md, Verify) and turns any BVH folder or
motion archive into such a file: filming motion is training's work, and engines imports nothing
above it.

The reference is the engine's source checkpoint in float32 eager PyTorch on the CPU. Tolerances
on the absolute error of the output joints (metres): FP32 1e-4, FP16 2e-3.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.artifacts import EngineError, file_sha256, read_manifest
from engines.checkpoint import load_checkpoint

__all__ = ["DEFAULT_INPUTS", "TOLERANCE_M", "load_keypoints", "real_windows", "verify"]

TOLERANCE_M = {"fp32": 1e-4, "fp16": 2e-3}

DEFAULT_INPUTS = Path(__file__).resolve().parent / "assets" / "verify_keypoints.npz"
"""Bundled model inputs for ``engines verify`` without ``--data`` (see the module docstring)."""

Inputs = str | os.PathLike | np.ndarray | None


def load_keypoints(path: str | os.PathLike | None = None) -> np.ndarray:
    """The ``keypoints`` array of an ``.npz`` of model inputs (default: the bundled one), float32.

    Motion (BVH files and folders, motion archives) is refused with the command that turns it
    into model inputs.
    """
    path = DEFAULT_INPUTS if path is None else Path(path)
    make = f"make model inputs from it with `training make-windows --data {path} --out inputs.npz` first"
    if not path.exists():
        raise EngineError(f"{path}: no such file")
    if path.is_dir() or path.suffix != ".npz":
        raise EngineError(f"{path} is not model inputs (an .npz with 'keypoints'); if it is BVH motion, {make}")
    try:
        with np.load(path, allow_pickle=False) as z:
            keypoints = np.asarray(z["keypoints"], np.float32) if "keypoints" in z.files else None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise EngineError(f"{path}: corrupt or unreadable .npz ({exc})") from None
    if keypoints is None:
        raise EngineError(f"{path} has no 'keypoints', so it is not model inputs; if it is a motion archive, {make}")
    return keypoints


def _windows_from_keypoints(arr: np.ndarray, frames: int) -> np.ndarray:
    if arr.ndim == 4:
        if arr.shape[1] != frames:
            raise EngineError(f"keypoint windows have {arr.shape[1]} frames; this engine needs {frames}")
        return arr
    if arr.ndim == 3:
        idx = np.maximum(np.arange(len(arr))[:, None] + np.arange(-frames + 1, 1)[None, :], 0)
        return arr[idx]
    raise EngineError(f"keypoints must be (N, T, J, 3) windows or (F, J, 3) frames, got {arr.shape}")


def real_windows(data: Inputs, frames: int, count: int = 512) -> np.ndarray:
    """At most ``count`` (N, frames, J, 3) float32 windows from model inputs: an ``.npz`` path, an
    array of windows or frames, or None for the bundled inputs."""
    arr = np.asarray(data, np.float32) if isinstance(data, np.ndarray) else load_keypoints(data)
    return _windows_from_keypoints(arr, frames)[:count]


def verify(engine_path: str | os.PathLike, data: Inputs = None, count: int = 512,
           batch: int | None = None) -> dict[str, Any]:
    """Max and mean absolute error of the engine against eager torch; ``passed`` against the tolerance.

    ``data``: model inputs as :func:`real_windows` takes them (default: the bundled ones).
    """
    from engines.runtime import load

    if not isinstance(data, np.ndarray):
        data = load_keypoints(data)  # a wrong --data fails before any engine work
    manifest = read_manifest(engine_path)
    ckpt = manifest.checkpoint
    if ckpt is None or not ckpt.is_file():
        raise EngineError(f"{manifest.folder}: its source checkpoint {ckpt} is not here; verify needs it as the reference")
    if file_sha256(ckpt) != manifest.doc["model"]["sha256"]:
        raise EngineError(f"{ckpt} changed since the engine was built; rebuild the engine with `engines build`")
    x = real_windows(data, manifest.receptive_field, count)
    engine = load(manifest.folder)
    model, _ = load_checkpoint(ckpt)
    with torch.no_grad():
        want = np.concatenate([model.eval()(torch.from_numpy(x[i:i + 256])).numpy() for i in range(0, len(x), 256)])
    step = batch or engine.max_batch or len(x)
    got = np.concatenate([engine.infer(x[i:i + step]) for i in range(0, len(x), step)])
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    tol = TOLERANCE_M[manifest.precision]
    result = {
        "engine": str(manifest.folder), "backend": engine.backend, "target": manifest.target,
        "precision": manifest.precision, "windows": len(x),
        "max_abs_error_m": float(err.max()), "mean_abs_error_m": float(err.mean()),
        "tolerance_m": tol, "passed": bool(err.max() <= tol),
    }
    engine.close()
    return result
