"""``engines verify``: a built engine against torch eager on real inputs.

Inputs are real motion: a slice of the CMU mocap in ``../shared/data/cmu-mocap`` (or any BVH
folder or motion archive given with ``--data``) projected to 2D through seeded virtual cameras
with the detector noise model, or a user's own keypoints file (``.npz`` with ``keypoints`` of
shape (N, T, J, 3) windows or (F, J, 3) frames). The reference is the engine's source
checkpoint in float32 eager PyTorch on the CPU. Tolerances on the absolute error of the output
joints (metres): FP32 1e-4, FP16 2e-3.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.artifacts import EngineError, file_sha256, read_manifest
from engines.checkpoint import load_checkpoint

__all__ = ["TOLERANCE_M", "default_motion_source", "real_windows", "verify"]

TOLERANCE_M = {"fp32": 1e-4, "fp16": 2e-3}


def default_motion_source() -> Path | None:
    """``../shared/data/cmu-mocap`` next to the working directory or the source checkout."""
    env = os.environ.get("POSESTREAM_MOCAP")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd() / ".." / "shared" / "data" / "cmu-mocap",
                   Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu-mocap"]
    return next((c.resolve() for c in candidates if c.exists()), None)


def _windows_from_keypoints(arr: np.ndarray, frames: int) -> np.ndarray:
    if arr.ndim == 4:
        if arr.shape[1] != frames:
            raise EngineError(f"keypoint windows have {arr.shape[1]} frames; this engine needs {frames}")
        return arr
    if arr.ndim == 3:
        idx = np.maximum(np.arange(len(arr))[:, None] + np.arange(-frames + 1, 1)[None, :], 0)
        return arr[idx]
    raise EngineError(f"keypoints must be (N, T, J, 3) windows or (F, J, 3) frames, got {arr.shape}")


def real_windows(source: str | os.PathLike | None, frames: int, count: int = 512, seed: int = 0) -> np.ndarray:
    """(count, frames, J, 3) model inputs from real motion (see the module docstring)."""
    if source is None:
        source = default_motion_source()
        if source is None:
            raise EngineError("no inputs: ../shared/data/cmu-mocap was not found; pass --data "
                              "(a BVH folder, a motion archive, or an .npz with 'keypoints')")
    path = Path(source)
    if path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if "keypoints" in z.files:
                return _windows_from_keypoints(np.asarray(z["keypoints"], np.float32), frames)[:count]
    # Reading BVH and synthesising 2D from 3D are training's (training/bvh.py, training/synth.py):
    # the one place engines still reaches up, listed in tests/test_layering.py.
    from training.data import motion_windows

    return motion_windows(path, frames, count, seed)


def verify(engine_path: str | os.PathLike, data: str | os.PathLike | None = None, count: int = 512,
           batch: int | None = None) -> dict[str, Any]:
    """Max and mean absolute error of the engine against eager torch; ``passed`` against the tolerance."""
    from engines.runtime import load

    manifest = read_manifest(engine_path)
    ckpt = manifest.checkpoint
    if ckpt is None or not ckpt.is_file():
        raise EngineError(f"{manifest.folder}: its source checkpoint {ckpt} is not here; verify needs it as the reference")
    if file_sha256(ckpt) != manifest.doc["model"]["sha256"]:
        raise EngineError(f"{ckpt} changed since the engine was built; rebuild the engine with `engines build`")
    engine = load(manifest.folder)
    x = real_windows(data, manifest.receptive_field, count)
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
