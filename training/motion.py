"""Motion archives: BVH files -> one ``.npz`` of canonical joints, and reading it back.

Archive layout (``training prepare`` writes it, training and evaluation read it):

=============== ======================= ===================================================
array           shape / dtype           meaning
=============== ======================= ===================================================
``joints3d``    (F, 17, 3) float32      canonical joints (``engines.skeleton.CANONICAL``),
                                        metres, world frame of the mocap: y up, floor-ish at
                                        y = 0 (not levelled per clip)
``clip``        (F,) int32              index into ``clip_names`` for every frame
``clip_names``  (C,) str                clip id, the file's path relative to its input folder
                                        without ``.bvh[.gz]`` (e.g. ``02/02_01``)
``clip_groups`` (C,) str                the clip's folder (a CMU subject such as ``02``, or
                                        ``salsa``): the unit of train/validation splits
``clip_fps_source`` (C,) float32        the frame rate the clip was read at
``joint_names`` (17,) str               canonical joint names, in order
``parents``     (17,) int32             canonical parents (-1 for the pelvis)
``fps``         () float32              frame rate of every clip in the archive
``skeletons``   (C,) str                BVH skeleton recipe used per clip (``cmu43``...)
=============== ======================= ===================================================

Frames of one clip are contiguous and in time order.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.fileio import atomic_path
from engines.skeleton import CANONICAL, bvh_to_canonical, detect_bvh_skeleton

__all__ = [
    "MotionArchiveError",
    "MotionArchive",
    "find_motion_files",
    "load_clip",
    "prepare",
    "load_archive",
    "save_archive",
]

_SUFFIXES = (".bvh", ".bvh.gz")
_REQUIRED = ("joints3d", "clip", "clip_names", "joint_names", "fps")


class MotionArchiveError(ValueError):
    """An archive that is missing, empty, corrupt or not in posestream's layout."""


def _is_motion_file(path: Path) -> bool:
    return path.name.lower().endswith(_SUFFIXES)


def _clip_id(path: Path, root: Path | None) -> str:
    rel = path.relative_to(root) if root is not None else Path(path.name)
    name = rel.as_posix()
    for suffix in (".gz", ".bvh"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def find_motion_files(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, str, str]]:
    """Expand files and folders into ``(path, clip id, group)``, sorted by clip id per input.

    A folder is searched recursively for ``*.bvh`` and ``*.bvh.gz``; a clip's group is its
    parent folder's name. ``FileNotFoundError`` for an input that does not exist, ``ValueError``
    when nothing usable is found.
    """
    found: list[tuple[Path, str, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and _is_motion_file(p))
            found += [(p, _clip_id(p, path), p.parent.name) for p in files]
        elif path.is_file():
            if not _is_motion_file(path):
                raise ValueError(f"{path}: not a motion file (expected .bvh or .bvh.gz)")
            found.append((path, _clip_id(path, None), path.parent.name or "."))
        else:
            raise FileNotFoundError(2, "no such file or folder", str(path))
    if not found:
        raise ValueError(f"no .bvh or .bvh.gz files in {', '.join(map(str, inputs))}")
    ids = [clip for _, clip, _ in found]
    if len(set(ids)) != len(ids):
        dup = sorted({c for c in ids if ids.count(c) > 1})[0]
        raise ValueError(f"two inputs give the same clip id {dup!r}; pass their common parent folder instead")
    return found


def load_clip(path: str | os.PathLike, fps: float = 30.0, units: str | float = "auto",
              drop_lead_in: bool = True) -> tuple[np.ndarray, str, float]:
    """Read one BVH file to canonical joints: ``(joints (F, 17, 3) metres, recipe, source fps)``.

    The CMU salsa clips are read at 60 fps (their header is wrong, see
    :func:`training.bvh.cmu_fps_override`), the rest-pose lead-in is dropped, then the clip is
    resampled to ``fps``.
    """
    from training.bvh import cmu_fps_override, drop_rest_lead_in, read_bvh, resample

    motion = read_bvh(path, units=units, fps_override=cmu_fps_override(path))
    recipe = detect_bvh_skeleton(motion.names, source=str(path))
    if drop_lead_in:
        motion = drop_rest_lead_in(motion)
    source_fps = motion.fps
    if fps and abs(motion.fps - fps) > 1e-6:
        motion = resample(motion, fps)
    joints = bvh_to_canonical(motion.names, motion.skeleton.rest_positions(), motion.positions,
                              motion.rotations, source=str(path))
    return joints.astype(np.float32), recipe.name, source_fps


def _load_job(args: tuple[str, float, str | float, bool]) -> tuple[np.ndarray, str, float]:
    return load_clip(*args)


@dataclass(frozen=True)
class MotionArchive:
    """An archive in memory; see the module docstring for the arrays."""

    joints3d: np.ndarray
    clip: np.ndarray
    clip_names: tuple[str, ...]
    clip_groups: tuple[str, ...]
    joint_names: tuple[str, ...]
    fps: float

    @property
    def num_clips(self) -> int:
        return len(self.clip_names)

    def clip_slice(self, index: int) -> slice:
        """Frames of clip ``index`` (contiguous)."""
        where = np.flatnonzero(self.clip == index)
        return slice(int(where[0]), int(where[-1]) + 1) if where.size else slice(0, 0)

    def clip_joints(self, index: int) -> np.ndarray:
        return self.joints3d[self.clip_slice(index)]


def prepare(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, fps: float = 30.0,
            units: str | float = "auto", drop_lead_in: bool = True, workers: int | None = None,
            progress: bool = True) -> MotionArchive:
    """Convert motion files/folders into one archive at ``out`` (written atomically).

    Clips are read in parallel (``workers`` processes, default one per core). Any bad file stops
    the run with its own error message and nothing is written.
    """
    from tqdm import tqdm

    files = find_motion_files(inputs)
    jobs = [(str(p), fps, units, drop_lead_in) for p, _, _ in files]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), unit="clip", desc="prepare", disable=not progress)
    results = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for res in pool.map(_load_job, jobs, chunksize=1):
                results.append(res)
                bar.update()
    else:
        for job in jobs:
            results.append(_load_job(job))
            bar.update()
    bar.close()
    kept = [(f, r) for f, r in zip(files, results) if len(r[0])]
    if not kept:
        raise ValueError("every input clip was empty after dropping its rest-pose lead-in")
    joints = np.concatenate([r[0] for _, r in kept])
    clip = np.concatenate([np.full(len(r[0]), i, dtype=np.int32) for i, (_, r) in enumerate(kept)])
    arrays = {
        "joints3d": joints.astype(np.float32),
        "clip": clip,
        "clip_names": np.array([f[1] for f, _ in kept]),
        "clip_groups": np.array([f[2] for f, _ in kept]),
        "clip_fps_source": np.array([r[2] for _, r in kept], dtype=np.float32),
        "skeletons": np.array([r[1] for _, r in kept]),
        "joint_names": np.array(CANONICAL.joint_names),
        "parents": np.array(CANONICAL.parents, dtype=np.int32),
        "fps": np.float32(fps),
    }
    save_archive(Path(out), arrays)
    return _to_archive(arrays)


def save_archive(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an archive's arrays (see the module docstring) to ``out``, compressed and atomically."""
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _to_archive(arrays) -> MotionArchive:
    return MotionArchive(
        joints3d=np.asarray(arrays["joints3d"], dtype=np.float32),
        clip=np.asarray(arrays["clip"], dtype=np.int32),
        clip_names=tuple(str(s) for s in arrays["clip_names"]),
        clip_groups=tuple(str(s) for s in arrays["clip_groups"]) if "clip_groups" in arrays
        else tuple(str(s).split("/")[0] for s in arrays["clip_names"]),
        joint_names=tuple(str(s) for s in arrays["joint_names"]),
        fps=float(arrays["fps"]),
    )


def load_archive(path: str | os.PathLike) -> MotionArchive:
    """Read and validate an archive; ``MotionArchiveError`` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise MotionArchiveError(f"{path}: motion archive does not exist (make one with `training prepare`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _REQUIRED if k not in data.files]
            if missing:
                raise MotionArchiveError(f"{path}: not a posestream motion archive (missing {', '.join(missing)})")
            arrays = {k: data[k] for k in data.files}
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        if isinstance(exc, MotionArchiveError):
            raise
        raise MotionArchiveError(f"{path}: corrupt or unreadable motion archive ({exc})") from None
    archive = _to_archive(arrays)
    j = archive.joints3d
    if j.ndim != 3 or j.shape[1:] != (CANONICAL.num_joints, 3):
        raise MotionArchiveError(f"{path}: joints3d must be (frames, {CANONICAL.num_joints}, 3), got {j.shape}")
    if archive.joint_names != CANONICAL.joint_names:
        raise MotionArchiveError(f"{path}: joint names differ from the canonical skeleton")
    if len(j) == 0:
        raise MotionArchiveError(f"{path}: the archive holds no frames")
    if archive.clip.shape != (len(j),) or archive.clip.min() < 0 or archive.clip.max() >= archive.num_clips:
        raise MotionArchiveError(f"{path}: clip indices do not match joints3d and clip_names")
    if not np.isfinite(j).all():
        raise MotionArchiveError(f"{path}: joints3d contains NaN or infinite values")
    return archive
