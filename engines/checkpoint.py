"""Lifter checkpoints: weights in safetensors, everything else as JSON in its header.

One file, ``*.safetensors``: the tensors of ``model.state_dict()`` and, under the metadata key
``posestream``, a JSON document::

    {"format": "posestream-lifter", "version": 1,
     "config": {...},                 # engines.models config (asdict), rebuilds the module
     "joint_names": [...],            # the canonical joint order of inputs and outputs
     "input": {"coords": "screen", "channels": ["u", "v", "confidence"], "assumed_fov_deg": 60},
     "receptive_field": 27, "causal": true,
     "training": {...}, "metrics": {...}}   # free-form: data, split, command, hardware, results

Loading parses JSON and raw tensors only: nothing is unpickled, so a checkpoint from a stranger
cannot run code. A file that is not a checkpoint, was cut short, or holds weights that do not fit
the architecture its metadata names raises :class:`CheckpointError` in one sentence.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engines.fileio import atomic_path
from engines.models import ASSUMED_FOV_DEG, build_model, config_from_dict
from engines.skeleton import CANONICAL

__all__ = [
    "CheckpointError",
    "FORMAT",
    "VERSION",
    "DEFAULT_CHECKPOINT",
    "resolve_checkpoint",
    "save_checkpoint",
    "read_metadata",
    "update_metadata",
    "load_checkpoint",
]

FORMAT = "posestream-lifter"
VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "lifter_default.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or for another architecture."""


def resolve_checkpoint(path_or_default: str | os.PathLike) -> Path:
    """``"default"`` -> the model shipped in the package; anything else -> that path."""
    if str(path_or_default) == "default":
        if not DEFAULT_CHECKPOINT.is_file():
            raise CheckpointError(f"the default model {DEFAULT_CHECKPOINT} is missing from this installation")
        return DEFAULT_CHECKPOINT
    return Path(path_or_default)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (an ``engines.models`` module) and metadata atomically; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(model.config),
        "joint_names": list(CANONICAL.joint_names),
        "input": {"coords": "screen", "channels": ["u", "v", "confidence"], "assumed_fov_deg": ASSUMED_FOV_DEG},
        "receptive_field": int(model.receptive_field),
        "causal": bool(model.causal),
        **(extra or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"posestream": json.dumps(meta)})
    return path


def update_metadata(path: str | os.PathLike, extra: dict[str, Any]) -> None:
    """Merge ``extra`` into a checkpoint's metadata (e.g. evaluation results), atomically."""
    from safetensors.torch import load_file, save_file

    path = Path(path)
    meta = read_metadata(path)
    meta.update(extra)
    tensors = load_file(str(path))
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"posestream": json.dumps(meta)})


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, validated for format and joint set."""
    from safetensors import safe_open

    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("posestream")
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without posestream metadata (not a lifter checkpoint)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta['version']} is newer than this posestream reads ({VERSION})")
    if tuple(meta.get("joint_names", ())) != CANONICAL.joint_names:
        raise CheckpointError(f"{path}: the checkpoint's joint set differs from posestream's canonical skeleton")
    return meta


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, return ``(model.eval(), meta)``."""
    from safetensors.torch import load_file

    path = resolve_checkpoint(path)
    meta = read_metadata(path)
    try:
        model = build_model(config_from_dict(meta["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unusable model config ({exc})") from None
    try:
        state = load_file(str(path), device=str(device))
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt weights ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the {meta['config'].get('kind')} architecture its metadata names ({first})") from None
    return model.to(device).eval(), meta
