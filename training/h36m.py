"""Human3.6M in the public VideoPose3D archive format -> posestream motion archives.

For users who hold the Human3.6M licence and have prepared its data with VideoPose3D's scripts.
Nothing here downloads or ships Human3.6M; the functions read files the user already has.

Input files
-----------
``data_3d_h36m.npz``
    One key, ``positions_3d``: a pickled ``{subject: {action: (F, 32, 3) float}}`` (subjects such
    as ``"S1"``, actions such as ``"Walking 1"``), metres, in the motion-capture world frame with
    **z up**, 50 frames per second. The 17 VideoPose3D joints are the 32-joint indices
    :data:`H36M32_TO_17`; arrays that already hold those 17 joints are accepted too.
``data_2d_h36m_<detector>.npz`` (``..._gt``, ``..._cpn_ft_h36m_dbb``...)
    ``positions_2d``: a pickled ``{subject: {action: [4 arrays (F, 17, 2), one per camera]}}`` in
    pixels, and ``metadata``: a pickled dict with ``layout_name`` (``"h36m"``), ``num_joints``
    (17) and ``keypoints_symmetry`` (``[left joints, right joints]``). Detector outputs can be a
    few frames longer than the motion capture; :func:`load_h36m_2d` trims them to the 3D length
    when given the 3D data (as VideoPose3D does).

Security: restricted unpickling
-------------------------------
Both files hold *pickled Python objects* (``np.savez`` stores a dict as an object array, i.e. a
pickle). Unpickling runs whatever callables the pickle names, so ``np.load(...,
allow_pickle=True)`` on a file from elsewhere can execute arbitrary code. This module never
does that: it opens the ``.npz`` as a zip itself, reads each ``.npy`` member's header with
``numpy.lib.format``, and unpickles object-dtype payloads with :class:`RestrictedUnpickler`,
whose ``find_class`` returns only the handful of callables that numpy arrays of dicts and lists
of arrays need (:data:`ALLOWED_PICKLE_GLOBALS`: numpy's ``_reconstruct``, ``scalar`` and
``_frombuffer`` under their numpy 1 and numpy 2 module names, ``numpy.ndarray``,
``numpy.dtype``, builtins ``dict``, ``list``, ``bytes``, and ``_codecs.encode`` restricted to
latin-1, which older numpy's protocol-2 pickles use for raw bytes). Any other global, e.g.
``os.system``, is refused *before* it is looked up, so nothing in the file runs; the refusal is
an :class:`H36MFormatError`. Numeric ``.npy`` members are read with ``allow_pickle=False``.

Coordinates
-----------
Human3.6M's world frame is right-handed with z up; posestream archives are y up (see
:mod:`training.motion`). :func:`zup_to_yup` maps ``(x, y, z) -> (x, z, -y)``, a rotation by -90
degrees about the x axis (determinant +1), so the frame stays right-handed, distances and left /
right are unchanged, and height above the floor (z) becomes y. Units stay metres.

Resampling
----------
:func:`resample_linear` (used by :func:`h36m_to_archive`) samples a clip at times ``k / fps``
for ``k = 0 .. floor((F - 1) * fps / 50)``, i.e. it never extrapolates past the last source
frame, and linearly interpolates each coordinate between the two source frames around each
time. Target times that coincide with a source frame (every 0.1 s for 50 -> 30 fps) copy that
frame exactly. Joint positions are interpolated independently (no rotations exist in this
data); at 50 fps the chord error of linear interpolation is negligible.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engines.skeleton import CANONICAL, H36M_TO_CANONICAL
from training.motion import MotionArchive, load_archive, save_archive

__all__ = [
    "H36MFormatError",
    "H36M_FPS",
    "H36M32_TO_17",
    "H36M_TRAIN_SUBJECTS",
    "H36M_VALIDATION_SUBJECTS",
    "ALLOWED_PICKLE_GLOBALS",
    "RestrictedUnpickler",
    "read_npz_restricted",
    "select_h36m17",
    "zup_to_yup",
    "resample_linear",
    "load_h36m_3d",
    "load_h36m_2d",
    "h36m_to_archive",
]

H36M_FPS = 50.0
"""Frame rate of Human3.6M motion capture (and of VideoPose3D's archives)."""

H36M32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
"""Indices into Human3.6M's 32 joints of the 17 VideoPose3D (= canonical) joints, in order."""

H36M_TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
"""The conventional Human3.6M training subjects (protocols 1 and 2)."""

H36M_VALIDATION_SUBJECTS: tuple[str, ...] = ("S9", "S11")
"""The conventional Human3.6M evaluation subjects."""

_SKELETON_NAME = "h36m17"
_LEFT = tuple(a for a, _ in CANONICAL.left_right_pairs)
_RIGHT = tuple(b for _, b in CANONICAL.left_right_pairs)


class H36MFormatError(ValueError):
    """A Human3.6M (VideoPose3D) file that is missing, malformed, or holds disallowed pickles."""


# --- restricted unpickling ------------------------------------------------------------------------


class _DisallowedGlobal(pickle.UnpicklingError):
    """A pickle names a global outside :data:`ALLOWED_PICKLE_GLOBALS`."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualname = f"{module}.{name}"


_LATIN1_NAMES = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"})


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as older numpy pickles use it (raw bytes as latin-1 text), nothing else."""
    if not isinstance(text, str) or str(encoding).lower() not in _LATIN1_NAMES or errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode is allowed only to turn latin-1 text into bytes")
    return text.encode("latin-1")


def _numpy_callables() -> dict[str, Any]:
    # Taken from numpy's own reduce results, so the right objects are found on numpy 1 and 2.
    return {
        "_reconstruct": np.empty(0).__reduce__()[0],
        "scalar": np.float64(0).__reduce__()[0],
        "_frombuffer": np.empty(1).__reduce_ex__(5)[0],
    }


def _allowed_globals() -> dict[tuple[str, str], Any]:
    np_fn = _numpy_callables()
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = np_fn["_reconstruct"]
        allowed[(f"{core}.multiarray", "scalar")] = np_fn["scalar"]
        allowed[(f"{core}.numeric", "_frombuffer")] = np_fn["_frombuffer"]
    for builtins_name in ("builtins", "__builtin__"):  # protocol <= 2 pickles say __builtin__
        allowed[(builtins_name, "dict")] = dict
        allowed[(builtins_name, "list")] = list
        allowed[(builtins_name, "bytes")] = bytes
    return allowed


ALLOWED_PICKLE_GLOBALS: Mapping[tuple[str, str], Any] = _allowed_globals()
"""``(module, name) -> object``: every global a pickle in these files may name."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_PICKLE_GLOBALS` (numpy arrays, dicts, lists).

    Any other global raises ``pickle.UnpicklingError`` without importing or calling anything.
    Persistent ids are refused by :class:`pickle.Unpickler` itself (no ``persistent_load``).
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_PICKLE_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise _DisallowedGlobal(str(module), str(name)) from None


def _read_member(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    with zf.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        if dtype.hasobject:
            arr = RestrictedUnpickler(fh, encoding="latin1").load()
            if not isinstance(arr, np.ndarray):
                raise ValueError(f"the pickled payload is a {type(arr).__name__}, not an array")
            return arr
    with zf.open(member) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def read_npz_restricted(path: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read arrays ``keys`` (default: all) of an ``.npz``, unpickling object arrays safely.

    Object-dtype members go through :class:`RestrictedUnpickler`; others are read with
    ``allow_pickle=False``. :class:`H36MFormatError` for a missing file, a file that is not a
    zip, a missing key, a corrupt member or a pickle naming a disallowed global.
    """
    path = Path(path)
    if not path.is_file():
        raise H36MFormatError(f"{path}: file does not exist")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise H36MFormatError(f"{path}: not an .npz archive ({exc})") from None
    with zf:
        members = {n[: -len(".npy")]: n for n in zf.namelist() if n.endswith(".npy")}
        wanted = list(members) if keys is None else list(keys)
        missing = [k for k in wanted if k not in members]
        if missing:
            have = ", ".join(sorted(members)) or "none"
            raise H36MFormatError(f"{path}: has no {', '.join(map(repr, missing))} array (arrays: {have})")
        out: dict[str, np.ndarray] = {}
        for key in wanted:
            try:
                out[key] = _read_member(zf, members[key])
            except _DisallowedGlobal as exc:
                raise H36MFormatError(
                    f"{path}: {key!r} holds a pickle that names {exc.qualname}, which is not allowed "
                    f"(only numpy arrays, dicts and lists are unpickled, so it was not run)"
                ) from None
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure inside a member is a bad file
                why = f"{type(exc).__name__}: {exc}"
                raise H36MFormatError(f"{path}: {key!r} is corrupt or unreadable ({why})") from None
    return out


def _pickled_dict(path: Path, arrays: dict[str, np.ndarray], key: str) -> dict:
    arr = arrays[key]
    obj = arr.item() if arr.dtype.hasobject and arr.shape == () else None
    if not isinstance(obj, dict):
        raise H36MFormatError(f"{path}: {key!r} is not a pickled dict as VideoPose3D writes it")
    if not obj:
        raise H36MFormatError(f"{path}: {key!r} is an empty dict (no subjects)")
    return obj


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name)))


# --- geometry -------------------------------------------------------------------------------------


def select_h36m17(positions: np.ndarray) -> np.ndarray:
    """(..., 32, C) Human3.6M joints -> (..., 17, C) canonical joints; 17-joint input is returned as is."""
    arr = np.asarray(positions)
    if arr.ndim < 2 or arr.shape[-2] not in (32, CANONICAL.num_joints):
        raise ValueError(f"expected Human3.6M joints shaped (..., 32 or 17, C), got {arr.shape}")
    if arr.shape[-2] == 32:
        arr = arr[..., list(H36M32_TO_17), :]
    return H36M_TO_CANONICAL(arr)


def zup_to_yup(points: np.ndarray) -> np.ndarray:
    """(..., 3) points in a right-handed z-up frame -> right-handed y-up: ``(x, y, z) -> (x, z, -y)``."""
    p = np.asarray(points)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def resample_linear(frames: np.ndarray, source_fps: float, fps: float) -> np.ndarray:
    """Resample ``frames`` (F, ...) from ``source_fps`` to ``fps`` by linear interpolation in time.

    Output frame ``k`` is at time ``k / fps``; there are ``floor((F - 1) * fps / source_fps) + 1``
    of them (none past the last source frame; 0 for an empty input). Frames at coincident times
    are exact copies. The dtype is kept for floating input.
    """
    x = np.asarray(frames)
    source_fps, fps = float(source_fps), float(fps)
    if not (math.isfinite(fps) and fps > 0 and math.isfinite(source_fps) and source_fps > 0):
        raise ValueError(f"frame rates must be positive, got {source_fps} -> {fps}")
    n = len(x)
    if n == 0 or fps == source_fps:
        return x.copy()
    ratio = source_fps / fps  # source frames per output frame
    n_out = int(math.floor((n - 1) / ratio + 1e-9)) + 1
    u = np.arange(n_out) * ratio
    nearest = np.round(u)
    u = np.where(np.abs(u - nearest) < 1e-6, nearest, u)
    i0 = np.clip(np.floor(u).astype(np.int64), 0, n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (u - i0).reshape((-1,) + (1,) * (x.ndim - 1))
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    a, b = x[i0].astype(np.float64), x[i1].astype(np.float64)
    out = ((1.0 - w) * a + w * b).astype(dtype)
    exact = w.reshape(-1) == 0.0
    out[exact] = x[i0[exact]]
    return out


# --- loaders --------------------------------------------------------------------------------------


def load_h36m_3d(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read VideoPose3D's ``data_3d_h36m.npz``: ``{subject: {action: (F, 17, 3) float32}}``.

    The 17 canonical joints (:data:`H36M32_TO_17` of 32, or 17 as stored), metres, converted from
    Human3.6M's z-up world to posestream's y-up world (:func:`zup_to_yup`), still at 50 fps.
    """
    path = Path(path)
    data = _pickled_dict(path, read_npz_restricted(path, ["positions_3d"]), "positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject in sorted(data, key=_natural_key):
        actions = data[subject]
        if not isinstance(actions, dict) or not actions:
            raise H36MFormatError(f"{path}: subject {subject!r} holds no dict of actions")
        out[str(subject)] = {}
        for action in sorted(actions, key=_natural_key):
            pos = actions[action]
            where = f"{subject}/{action}"
            if not isinstance(pos, np.ndarray) or pos.dtype.kind not in "fiu":
                raise H36MFormatError(f"{path}: {where} is not a numeric array")
            if pos.ndim != 3 or pos.shape[1] not in (32, 17) or pos.shape[2] != 3:
                raise H36MFormatError(f"{path}: {where} must be (frames, 32 or 17, 3), got {pos.shape}")
            if len(pos) == 0:
                raise H36MFormatError(f"{path}: {where} holds no frames")
            if not np.isfinite(pos).all():
                raise H36MFormatError(f"{path}: {where} contains NaN or infinite values")
            out[str(subject)][str(action)] = zup_to_yup(select_h36m17(pos.astype(np.float32)))
    return out


def _check_metadata(path: Path, meta: dict) -> dict:
    missing = [k for k in ("layout_name", "num_joints", "keypoints_symmetry") if k not in meta]
    if missing:
        raise H36MFormatError(f"{path}: 'metadata' lacks {', '.join(missing)}")
    if str(meta["layout_name"]) != "h36m":
        raise H36MFormatError(f"{path}: keypoint layout is {meta['layout_name']!r}, expected 'h36m'")
    try:
        num = int(meta["num_joints"])
        left, right = ([int(j) for j in side] for side in meta["keypoints_symmetry"])
    except (TypeError, ValueError):
        raise H36MFormatError(f"{path}: 'metadata' has malformed num_joints or keypoints_symmetry") from None
    if num != CANONICAL.num_joints:
        raise H36MFormatError(f"{path}: metadata says {num} joints, expected {CANONICAL.num_joints}")
    if sorted(left) != sorted(_LEFT) or sorted(right) != sorted(_RIGHT):
        raise H36MFormatError(f"{path}: keypoints_symmetry {[left, right]} is not the Human3.6M 17-joint order")
    return {**meta, "num_joints": num, "keypoints_symmetry": [left, right]}


def load_h36m_2d(
    path: str | os.PathLike, positions_3d: Mapping[str, Mapping[str, np.ndarray]] | None = None
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict]:
    """Read a VideoPose3D ``data_2d_h36m_<detector>.npz``: ``({subject: {action: [(F, 17, 2)...]}}, metadata)``.

    One float32 pixel array per camera, in the canonical joint order. With ``positions_3d``
    (e.g. from :func:`load_h36m_3d`) every camera of each subject/action found there is trimmed
    to the 3D frame count; a 2D sequence that is *shorter* than its 3D one, or missing, is an
    error. ``metadata`` is the file's dict with ``num_joints`` as an int and
    ``keypoints_symmetry`` as two int lists.
    """
    path = Path(path)
    arrays = read_npz_restricted(path, ["positions_2d", "metadata"])
    data = _pickled_dict(path, arrays, "positions_2d")
    meta = _check_metadata(path, _pickled_dict(path, arrays, "metadata"))
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject in sorted(data, key=_natural_key):
        actions = data[subject]
        if not isinstance(actions, dict) or not actions:
            raise H36MFormatError(f"{path}: subject {subject!r} holds no dict of actions")
        out[str(subject)] = {}
        for action in sorted(actions, key=_natural_key):
            cams = actions[action]
            where = f"{subject}/{action}"
            if not isinstance(cams, (list, tuple)) or not cams:
                raise H36MFormatError(f"{path}: {where} is not a list of per-camera arrays")
            views = []
            for c, kp in enumerate(cams):
                if not isinstance(kp, np.ndarray) or kp.dtype.kind not in "fiu":
                    raise H36MFormatError(f"{path}: {where} camera {c} is not a numeric array")
                if kp.ndim != 3 or kp.shape[1:] != (CANONICAL.num_joints, 2):
                    raise H36MFormatError(f"{path}: {where} camera {c} must be (frames, 17, 2), got {kp.shape}")
                views.append(kp.astype(np.float32))
            out[str(subject)][str(action)] = views
    if positions_3d is not None:
        for subject, actions in positions_3d.items():
            for action, pos in actions.items():
                where = f"{subject}/{action}"
                views = out.get(str(subject), {}).get(str(action))
                if views is None:
                    raise H36MFormatError(f"{path}: has no 2D keypoints for {where}, which the 3D data holds")
                n = len(pos)
                for c, kp in enumerate(views):
                    if len(kp) < n:
                        raise H36MFormatError(
                            f"{path}: {where} camera {c} has {len(kp)} frames, fewer than the 3D data's {n}"
                        )
                out[str(subject)][str(action)] = [kp[:n] for kp in views]
    return out, meta


def h36m_to_archive(
    path_3d: str | os.PathLike,
    out: str | os.PathLike,
    fps: float = 30.0,
    subjects: Iterable[str] | None = None,
) -> MotionArchive:
    """Convert ``data_3d_h36m.npz`` into a posestream motion archive at ``out`` (written atomically).

    Each subject/action becomes a clip named ``"<subject>/<action>"`` (e.g. ``"S1/Walking 1"``)
    whose group is the subject, resampled from 50 fps to ``fps`` (:func:`resample_linear`), with
    ``clip_fps_source`` 50 and skeleton ``"h36m17"``. ``subjects`` keeps only those subjects
    (e.g. :data:`H36M_TRAIN_SUBJECTS`); naming one the file lacks is an error. Returns the archive
    as :func:`training.motion.load_archive` reads it back.
    """
    path_3d = Path(path_3d)
    fps = float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"target fps must be positive, got {fps}")
    data = load_h36m_3d(path_3d)
    if subjects is not None:
        wanted = [str(s) for s in subjects]
        absent = [s for s in wanted if s not in data]
        if absent:
            raise H36MFormatError(f"{path_3d}: has no subject {', '.join(absent)} (subjects: {', '.join(data)})")
        data = {s: data[s] for s in data if s in wanted}
        if not data:
            raise ValueError("subjects is empty: nothing to convert")
    clips, names, groups = [], [], []
    for subject, actions in data.items():
        for action, pos in actions.items():
            clips.append(resample_linear(pos, H36M_FPS, fps).astype(np.float32))
            names.append(f"{subject}/{action}")
            groups.append(subject)
    arrays = {
        "joints3d": np.concatenate(clips).astype(np.float32),
        "clip": np.concatenate([np.full(len(c), i, dtype=np.int32) for i, c in enumerate(clips)]),
        "clip_names": np.array(names),
        "clip_groups": np.array(groups),
        "clip_fps_source": np.full(len(clips), H36M_FPS, dtype=np.float32),
        "skeletons": np.array([_SKELETON_NAME] * len(clips)),
        "joint_names": np.array(CANONICAL.joint_names),
        "parents": np.array(CANONICAL.parents, dtype=np.int32),
        "fps": np.float32(fps),
    }
    out = Path(out)
    save_archive(out, arrays)
    return load_archive(out)
