"""Motion data for training: cached preparation, the subject split, samplers and model inputs.

``open_motion`` accepts a prepared ``.npz`` archive or BVH files/folders; BVH input is prepared
once and cached (``$POSESTREAM_CACHE`` or ``~/.cache/posestream``), keyed by the file names, sizes
and modification times and the frame rate, so repeated training runs start in a second.
``motion_windows`` and ``motion_frames`` film motion into model inputs (``training make-windows``),
the files ``engines verify`` reads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.motion import MotionArchive, find_motion_files, load_archive, prepare
from training.synth import DETECTOR, NO_AUGMENTATION, WindowSampler, project_windows, sample_cameras_for

__all__ = ["cache_dir", "open_motion", "Split", "split_by_groups", "group_weights", "motion_windows", "motion_frames"]


def cache_dir() -> Path:
    return Path(os.environ.get("POSESTREAM_CACHE", Path.home() / ".cache" / "posestream"))


def open_motion(source: str | os.PathLike, fps: float = 30.0, progress: bool = True) -> MotionArchive:
    """A motion archive from an ``.npz`` or BVH files/folders (prepared once, then cached)."""
    source = Path(source)
    if source.suffix == ".npz":
        return load_archive(source)
    files = find_motion_files([source])
    h = hashlib.sha256(f"fps={fps}".encode())
    for path, clip, _ in files:
        st = path.stat()
        h.update(f"{clip}|{st.st_size}|{st.st_mtime_ns}".encode())
    cached = cache_dir() / f"motion-{h.hexdigest()[:16]}.npz"
    if cached.is_file():
        return load_archive(cached)
    prepare([source], cached, fps=fps, progress=progress)
    return load_archive(cached)


@dataclass(frozen=True)
class Split:
    train_frames: np.ndarray
    val_frames: np.ndarray
    train_groups: tuple[str, ...]
    val_groups: tuple[str, ...]


def _in_groups(archive: MotionArchive, groups: Sequence[str], what: str = "group") -> np.ndarray:
    """(F,) bool: the frame's clip belongs to one of ``groups``; ``ValueError`` for a group the
    archive does not have."""
    have = np.array(archive.clip_groups)
    missing = sorted(set(groups) - set(have))
    if missing:
        raise ValueError(f"{what}(s) {', '.join(missing)} are not in the motion data "
                         f"(it has {', '.join(sorted(set(have)))})")
    return np.isin(have[archive.clip], list(groups))


def split_by_groups(archive: MotionArchive, validation_groups: tuple[str, ...]) -> Split:
    """Frames of the validation subjects (clip groups) vs all others; never mixed."""
    groups = np.array(archive.clip_groups)
    is_val = _in_groups(archive, validation_groups, "validation group")
    if is_val.all():
        raise ValueError("every clip belongs to a validation group: nothing left to train on")
    return Split(
        train_frames=np.flatnonzero(~is_val),
        val_frames=np.flatnonzero(is_val),
        train_groups=tuple(sorted(set(groups) - set(validation_groups))),
        val_groups=tuple(sorted(validation_groups)),
    )


def median_body_size(archive: MotionArchive, frames: np.ndarray) -> float:
    """The median bone-length sum (``engines.models.bone_sum``) over ``frames``, metres: the size
    a model with ``body_size_m`` gives everyone (a typical adult of its training data)."""
    from engines.models import bone_sum

    if len(frames) == 0:
        raise ValueError("no frames to measure the body size on")
    return float(np.median(bone_sum(archive.joints3d[frames].astype(np.float64))))


def group_weights(archive: MotionArchive, frames: np.ndarray, balance: float) -> np.ndarray:
    """Per-frame sampling weights (group frame count)^-balance: 0 = uniform over frames,
    1 = every group equally often. The CMU salsa takes are a third of the data; 0.5 keeps
    them common without letting them dominate."""
    groups = np.array(archive.clip_groups)[archive.clip[frames]]
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.float64) ** -balance


def make_sampler(archive: MotionArchive, window: int, frames: np.ndarray, weights: np.ndarray | None = None) -> WindowSampler:
    return WindowSampler(archive.joints3d, archive.clip, window, frames=frames, weights=weights)


def _frames_of(archive: MotionArchive, groups: Sequence[str] | None) -> np.ndarray:
    return np.arange(len(archive.clip)) if groups is None else np.flatnonzero(_in_groups(archive, groups))


def motion_windows(source: str | os.PathLike, window: int, count: int, seed: int = 0,
                   groups: Sequence[str] | None = None, progress: bool = False) -> np.ndarray:
    """(count, window, J, 3) float32 model inputs from real motion (an ``.npz`` archive or BVH
    files/folders; only the clips of ``groups`` when given): windows ending at random frames,
    frames before a clip's start repeating its first, each window filmed by its own seeded
    virtual camera with the detector noise model and no augmentation."""
    archive = open_motion(source, progress=progress)
    rng = np.random.default_rng(seed)
    sampler = make_sampler(archive, window, _frames_of(archive, groups))
    return sampler.make(rng, sampler.sample_ends(rng, count), DETECTOR, NO_AUGMENTATION).inputs


def motion_frames(source: str | os.PathLike, count: int, segment: int = 128, seed: int = 0,
                  groups: Sequence[str] | None = None, progress: bool = False) -> np.ndarray:
    """(count, J, 3) float32 model inputs: consecutive frames, like a video's detections.

    Segments of ``segment`` consecutive frames, laid end to end and cut to ``count`` frames. Each
    lies inside one clip, starts at a random frame and is filmed by its own seeded virtual camera,
    aimed at the segment's mean pelvis, with the detector noise model and no augmentation. The
    clips are drawn among those of ``groups`` (or all) that are long enough, each equally likely
    whatever its length and each at most once while there are enough of them. ``ValueError`` when
    no clip is long enough.
    """
    archive = open_motion(source, progress=progress)
    rng = np.random.default_rng(seed)
    sampler = make_sampler(archive, segment, _frames_of(archive, groups))
    ends = sampler.frames[sampler.frames - sampler.clip_start[sampler.frames] >= segment - 1]
    clips = np.unique(archive.clip[ends])
    if len(clips) == 0:
        raise ValueError(f"no clip of {source} has {segment} frames: make the segments shorter")
    n = -(-count // segment)
    chosen = rng.choice(clips, size=n, replace=n > len(clips))
    picked = np.array([rng.choice(ends[archive.clip[ends] == c]) for c in chosen])
    w3 = sampler.gather(picked)
    cameras = sample_cameras_for(rng, w3, aim=w3[:, :, 0].mean(axis=1))
    inputs = project_windows(rng, w3, DETECTOR, NO_AUGMENTATION, cameras=cameras).inputs
    return inputs.reshape(-1, *inputs.shape[2:])[:count]
