"""``training evaluate``: a checkpoint on the validation subjects, through fixed virtual cameras.

Every validation clip is filmed by ``cameras`` static virtual cameras drawn with a fixed seed
(so two runs, or two checkpoints, see exactly the same 2D), aimed at the clip's mean pelvis from
2-6 m plus the clip's radius of travel; the whole clip is projected once and noised once (a
detector sees each frame once), then the lifter runs causally over every frame,
starting from the clip's first frame as the real-time pipeline does. Errors:

* ``mpjpe_mm``: root-relative MPJPE; ``p_mpjpe_mm`` after Procrustes (rotation, scale,
  translation); ``n_mpjpe_mm`` after the least-squares scale;
* ``mpjve_mm`` / ``accel_mm``: root-relative velocity / acceleration error per frame (30 fps);
* with ``missing`` joints hidden from the model (confidence 0 in every frame, as when the legs
  are out of frame): ``hidden_joints_mm`` and ``shown_joints_mm``, the root-relative error of the
  hidden joints and of the rest;
* ``ordinal_accuracy``: the fraction of joint pairs whose camera-frame depth order (nearer,
  farther, or level within 5 cm) the model gets right (``metrics.ordinal_depth_agreement``);
* with ``known_size``, each output is scaled to the clip's true size (median bone-length sum) the
  way ``realtime run --height`` scales it to a user's stated height; needs a model with
  ``body_size_m`` (``training calibrate-size``);
* ``root_error_mm``: distance of the estimated pelvis from the true one in the camera frame, with
  the depth rescaled from the model's assumed field of view to the camera's real one (a user who
  knows their camera can do the same; see ``engines.models``).

Results are averaged over frames per action (CMU descriptions from ``index.csv`` where found,
else the clip's group) and overall, printed as a table and optionally written as JSON.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.camera import VirtualCameraRanges
from engines.checkpoint import load_checkpoint, resolve_checkpoint
from engines.models import bone_sum
from engines.skeleton import CANONICAL
from training import metrics
from training.data import open_motion, split_by_groups
from training.synth import CLEAN, DETECTOR, NO_AUGMENTATION, NoiseModel, assumed_depth_scale, project_windows, sample_cameras_for

__all__ = ["EvalSettings", "clip_views", "evaluate", "format_table", "lift_clip", "noise_for"]

KEYS = ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "accel_mm", "root_error_mm")


@dataclass(frozen=True)
class EvalSettings:
    noise: str = "clean"  # clean | detector
    jitter: float = 0.0  # Gaussian sigma as a fraction of the 2D body height
    outliers: float = 0.0  # fraction of joints moved by ~10% of body height
    body_scale: float = 1.0
    cameras: int = 2
    seed: int = 0
    groups: tuple[str, ...] | None = None  # default: the checkpoint's validation groups
    missing: tuple[str, ...] = ()  # joints hidden from the model in every frame (e.g. legs out of frame)
    known_size: bool = False  # scale outputs to each clip's true body size, as `realtime run --height` does


def noise_for(settings: EvalSettings) -> NoiseModel:
    """The noise model for ``--noise`` plus explicit ``--jitter``/``--outliers`` (white noise)."""
    base = DETECTOR if settings.noise == "detector" else CLEAN
    if settings.jitter or settings.outliers:
        base = replace(base, jitter=settings.jitter or base.jitter, jitter_random=False, jitter_smooth=0.0,
                       outliers=settings.outliers or base.outliers, outlier_scale=0.1)
    return base


def _actions(source: Path) -> dict[str, str]:
    """clip id -> action label from a CMU-style ``index.csv`` beside the data, if there is one."""
    index = (source if source.is_dir() else source.parent) / "index.csv"
    if not index.is_file():
        return {}
    out = {}
    with open(index, newline="") as fh:
        for row in csv.DictReader(fh):
            desc = row.get("description", "").strip()
            label = desc.split(" - ")[0].split(",")[0].strip() or row.get("group", "")
            out[row["file"].removesuffix(".gz").removesuffix(".bvh")] = label
    return out


@torch.no_grad()
def lift_clip(model, inputs: np.ndarray, batch: int = 512) -> np.ndarray:
    """Causal predictions for every frame of one clip's 2D (F, J, 3) -> (F, J, 3)."""
    T = model.receptive_field
    F = len(inputs)
    idx = np.maximum(np.arange(F)[:, None] + np.arange(-T + 1, 1)[None, :], 0)
    out = []
    for s in range(0, F, batch):
        x = torch.from_numpy(inputs[idx[s:s + batch]])
        out.append(model(x).numpy())
    return np.concatenate(out)


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, settings: EvalSettings = EvalSettings(),
             progress: bool = True) -> dict[str, Any]:
    """Evaluate; returns {"overall": {...}, "groups": {label: {...}}, "settings": {...}, ...}."""
    from tqdm import tqdm

    model, meta = load_checkpoint(checkpoint)
    body_size = float(getattr(model.config, "body_size_m", 0.0))
    if settings.known_size and not body_size:
        raise ValueError(f"{checkpoint}: known_size needs a model with a body size prior "
                         "(`training calibrate-size`); this one predicts the size itself")
    archive = open_motion(data, progress=progress)
    groups = settings.groups or tuple(meta.get("training", {}).get("validation_groups", ()))
    if not groups:
        raise ValueError(f"{checkpoint}: no validation groups recorded; pass groups explicitly")
    split = split_by_groups(archive, groups)
    clips = sorted(set(archive.clip[split.val_frames].tolist()))
    actions = _actions(Path(data))
    noise = noise_for(settings)
    hidden = [CANONICAL.index(n) for n in settings.missing]
    per_frame: dict[str, list[np.ndarray]] = {}
    labels: list[str] = []
    for ci in tqdm(clips, desc="evaluate", unit="clip", disable=not progress):
        name = archive.clip_names[ci]
        label = actions.get(name, archive.clip_groups[ci])
        for batch in clip_views(archive, ci, settings, noise):
            cams = batch.cameras
            inputs = batch.inputs[0]
            if hidden:
                inputs = inputs.copy()
                inputs[:, hidden] = 0.0
            pred = lift_clip(model, inputs)
            truth = batch.true_targets[0].astype(np.float64)
            pred = pred.astype(np.float64)
            if settings.known_size:  # the person's height is known: rescale about the camera
                pred *= float(np.median(bone_sum(truth))) / body_size
            pred[:, :, 2] += (1.0 / assumed_depth_scale(cams)[0] - 1.0) * pred[:, :1, 2]
            rel_p, rel_t = pred - pred[:, :1], truth - truth[:, :1]
            vals = {
                "mpjpe_mm": metrics.mpjpe(rel_p, rel_t, axis=-1),
                "p_mpjpe_mm": metrics.p_mpjpe(rel_p, rel_t, axis=-1),
                "n_mpjpe_mm": metrics.n_mpjpe(rel_p, rel_t, axis=-1),
                "root_error_mm": np.linalg.norm(pred[:, 0] - truth[:, 0], axis=-1),
                "mpjve_mm": _pad(metrics.mpjve(rel_p, rel_t, axis=-1), len(rel_p)),
                "accel_mm": _pad(metrics.accel_error(rel_p, rel_t, axis=-1), len(rel_p)),
            }
            if hidden:
                shown = [j for j in range(CANONICAL.num_joints) if j not in hidden]
                err = np.linalg.norm(rel_p - rel_t, axis=-1)
                vals["hidden_joints_mm"] = err[:, hidden].mean(axis=-1)
                vals["shown_joints_mm"] = err[:, shown].mean(axis=-1)
            for key, v in vals.items():
                per_frame.setdefault(key, []).append(np.asarray(v, dtype=np.float64) * 1000.0)
            # a fraction, not a distance: camera-frame depth order of every joint pair, 5 cm band
            per_frame.setdefault("ordinal_accuracy", []).append(metrics.ordinal_depth_agreement(pred, truth))
            labels.extend([label] * len(rel_p))
    labels_arr = np.array(labels)
    cat = {k: np.concatenate(v) for k, v in per_frame.items()}
    result: dict[str, Any] = {"overall": _summary(cat, slice(None)), "groups": {}}
    for label in sorted(set(labels)):
        result["groups"][label] = _summary(cat, labels_arr == label)
    result["settings"] = {**settings.__dict__, "groups": list(groups)}
    result["checkpoint"] = str(resolve_checkpoint(checkpoint))
    result["data"] = str(data)
    result["frames"] = int(len(labels_arr))
    return result


def clip_views(archive, ci: int, settings: EvalSettings, noise: NoiseModel) -> list:
    """The ``settings.cameras`` views of clip ``ci`` that the evaluation lifts: one
    :class:`~training.synth.Batch` of one window (the whole clip) per fixed virtual camera,
    aimed at the clip's mean pelvis from 2-6 m plus its radius of travel. Deterministic: the
    same views for every checkpoint (and for test-time adaptation on them)."""
    world = archive.clip_joints(ci).astype(np.float64)[None]  # (1, F, J, 3)
    pelvis = world[0, :, 0]
    centre = pelvis.mean(axis=0)
    radius = float(np.linalg.norm((pelvis - centre)[:, [0, 2]], axis=-1).max())
    ranges = replace(VirtualCameraRanges(), distance_m=(2.0 + radius, 6.0 + radius))  # whole clip in front
    out = []
    for k in range(settings.cameras):
        rng = np.random.default_rng([settings.seed, ci, k])
        cams = sample_cameras_for(rng, world, ranges, aim=centre[None])
        out.append(project_windows(rng, world, noise, NO_AUGMENTATION, cameras=cams, body_scale=settings.body_scale))
    return out


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    """Per-frame temporal errors have fewer entries than frames: NaN-pad at the start."""
    values = np.atleast_1d(values)
    return np.concatenate([np.full(n - len(values), np.nan), values])


def _summary(cat: dict[str, np.ndarray], where) -> dict[str, float]:
    out = {k: float(np.nanmean(cat[k][where])) for k in cat}
    out["frames"] = int(np.size(cat["mpjpe_mm"][where]))
    return out


def format_table(result: dict[str, Any]) -> str:
    head = f"{'action':28s} {'frames':>7s} " + " ".join(f"{k.removesuffix('_mm'):>10s}" for k in KEYS)
    lines = [head, "-" * len(head)]
    for label, row in list(result["groups"].items()) + [("overall", result["overall"])]:
        lines.append(f"{label[:28]:28s} {row['frames']:7d} " + " ".join(f"{row[k]:10.1f}" for k in KEYS))
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | os.PathLike) -> None:
    from engines.fileio import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1))
