"""BVH (Biovision Hierarchy) reader with vectorised forward kinematics.

Written for this project (no third-party BVH code).  Everything that leaves this module is in
METRES and SECONDS; rotations are 3x3 matrices.

Format handled
--------------
* ``HIERARCHY`` with exactly one ``ROOT`` (several roots raise :class:`BvhError`), nested
  ``JOINT`` blocks of any depth and ``End Site`` blocks.  End sites are kept as extra leaf joints
  named ``"<parent>_end"`` (made unique if that name is taken) and flagged in
  :attr:`BvhSkeleton.is_end_site`.
* ``CHANNELS`` per joint, any count 0..6, any subset and order of ``X/Y/Zposition`` and
  ``X/Y/Zrotation`` (names are matched case-insensitively), on any joint, not only the root.
* **Position channels REPLACE the joint's OFFSET** (they *are* the joint's local translation);
  they are not added to it.  If only some position axes are present, those components replace
  the offset's and the other components keep the OFFSET value.
* Rotation channels are Euler angles in degrees, composed in the order they are written:
  ``Zrotation Xrotation Yrotation`` gives ``R_local = Rz @ Rx @ Ry`` (the usual BVH convention,
  i.e. intrinsic rotations in the written order).  A joint's global transform is
  ``R_global = R_global(parent) @ R_local``, ``p = p(parent) + R_global(parent) @ t_local``.
* ``MOTION`` / ``Frames:`` / ``Frame Time:`` and one row of numbers per frame.
* Plain ``.bvh`` and gzip ``.bvh.gz`` files (gzip is detected by its magic bytes).

Units (``units=``)
------------------
``"m"``, ``"cm"``, ``"mm"``, ``"inch"`` (``"in"``), ``"cmu"`` (the historic CMU ASF length unit,
1/0.45 inch = 0.056444 m), a float (metres per file unit), or ``"auto"``.

``"auto"`` rule: measure the *figure span* = the longest joint-to-joint path through the
skeleton tree (the tree diameter, summing local bone-translation lengths; for a human this is
roughly toe-to-head or fingertip-to-fingertip, ~1.6-2.2 m for an adult).  Bone translations are
the OFFSETs, except that a non-root joint with position channels uses its first-frame channel
values (they replace the offset); the root's own translation is not a bone and is ignored.  Every
candidate unit (m, cm, mm, inch, cmu) converts the span to metres; the candidate closest to
:data:`AUTO_REFERENCE_SPAN_M` (1.8 m) on a log scale wins, provided its span lies in
:data:`AUTO_PLAUSIBLE_SPAN_M` (1.0-3.2 m); otherwise :class:`BvhError` asks for explicit units.

Frame rate
----------
``fps = 1 / Frame Time``; because headers print 1/120 as ``0.00833333`` the value is snapped to
the nearest integer when within 0.01 %.  ``fps_override`` replaces the header's rate (see
:func:`cmu_fps_override` for the CMU salsa clips, whose header is wrong).

Resampling (:func:`resample`)
-----------------------------
New frames are at ``t = k / fps`` for ``t <= duration``.  Where a new time coincides with a
source frame (e.g. 120 -> 30 fps: every 4th frame) that frame is copied exactly.  Otherwise the
*local* joint rotations are interpolated by quaternion slerp (shortest arc) and local
translations linearly, then forward kinematics is re-run, so bone lengths stay exact and a
linearly moving root moves exactly linearly.

Rest lead-in (:func:`drop_rest_lead_in`)
----------------------------------------
A leading rest pose (root rotation exactly zero, small joint rotations) is detected from the
data; it and the fixed number of conversion blend frames after it (7, measured on the shared CMU
set) are dropped.  Clips without a rest pose are returned unchanged.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from engines.rotations import matrix_angle, matrix_from_euler, matrix_from_quat, quat_from_matrix, quat_slerp

__all__ = [
    "AUTO_PLAUSIBLE_SPAN_M",
    "AUTO_REFERENCE_SPAN_M",
    "BvhError",
    "BvhMotion",
    "BvhSkeleton",
    "CMU_ASF_UNIT_M",
    "UNIT_SCALES",
    "cmu_fps_override",
    "CMU_BLEND_FRAMES",
    "drop_rest_lead_in",
    "read_cmu_bvh",
    "rest_lead_in_length",
    "forward_kinematics",
    "infer_unit_scale",
    "parse_bvh",
    "read_bvh",
    "resample",
]

#: The historic CMU ASF length unit: lengths in the ASF files are inches * 0.45, so one unit is
#: 1/0.45 inch.
CMU_ASF_UNIT_M = 0.0254 / 0.45

#: Metres per file unit for the named units accepted by ``units=``.
UNIT_SCALES: dict[str, float] = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "inch": 0.0254,
    "in": 0.0254,
    "cmu": CMU_ASF_UNIT_M,
}
_AUTO_CANDIDATES = ("m", "cm", "mm", "inch", "cmu")

#: Target of the ``units="auto"`` rule: the figure span (tree diameter) of a typical adult.
AUTO_REFERENCE_SPAN_M = 1.8
#: Figure spans (metres) accepted by ``units="auto"``.
AUTO_PLAUSIBLE_SPAN_M = (1.0, 3.2)

_CHANNEL_NAMES = {
    "xposition": "Xposition",
    "yposition": "Yposition",
    "zposition": "Zposition",
    "xrotation": "Xrotation",
    "yrotation": "Yrotation",
    "zrotation": "Zrotation",
}
_AXIS = {"X": 0, "Y": 1, "Z": 2}


class BvhError(ValueError):
    """A BVH file could not be read; the message names the file and the problem."""


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


def _frozen_array(a, dtype) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class BvhSkeleton:
    """Joint hierarchy in topological order (every parent precedes its children).

    ``offsets`` are in metres (already scaled by ``unit_scale``); ``channels[j]`` lists joint j's
    channel names in file order (empty for end sites); ``unit_scale`` is metres per file unit.
    """

    names: tuple[str, ...]
    parents: np.ndarray  # (J,) int, -1 for the root
    offsets: np.ndarray  # (J, 3) metres
    channels: tuple[tuple[str, ...], ...]
    is_end_site: np.ndarray  # (J,) bool
    unit_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "channels", tuple(tuple(c) for c in self.channels))
        object.__setattr__(self, "parents", _frozen_array(self.parents, np.int64))
        object.__setattr__(self, "offsets", _frozen_array(self.offsets, np.float64))
        object.__setattr__(self, "is_end_site", _frozen_array(self.is_end_site, bool))
        n = len(self.names)
        if self.parents.shape != (n,) or self.offsets.shape != (n, 3) or len(self.channels) != n \
                or self.is_end_site.shape != (n,):
            raise ValueError("BvhSkeleton fields have inconsistent joint counts")
        for j, p in enumerate(self.parents):
            if not (-1 <= p < j):
                raise ValueError("BvhSkeleton joints must be in topological order")
        if len(set(self.names)) != n:
            raise ValueError("BvhSkeleton joint names must be unique")
        object.__setattr__(self, "_index", {nm: i for i, nm in enumerate(self.names)})

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def index(self, name: str) -> int:
        """Index of the joint called ``name`` (KeyError listing nothing else if absent)."""
        try:
            return self._index[name]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"no joint named {name!r} in this skeleton") from None

    def children(self, j: int) -> list[int]:
        return [int(i) for i in np.nonzero(self.parents == j)[0]]

    def rest_positions(self) -> np.ndarray:
        """Global joint positions (J, 3) in metres of the rest pose.

        The rest pose is all rotation channels zero with the OFFSETs as local translations (the
        root's OFFSET, usually zero, places the root).  Position channels are not used: the
        header OFFSETs define the rest pose.
        """
        F = 1
        pos, _ = forward_kinematics(self.parents, np.broadcast_to(np.eye(3), (F, self.num_joints, 3, 3)),
                                    np.broadcast_to(self.offsets, (F, self.num_joints, 3)))
        return pos[0]


@dataclass(frozen=True, eq=False)
class BvhMotion:
    """A clip: global joint positions (F, J, 3) in metres and global rotations (F, J, 3, 3).

    ``source`` is the file it was read from (``None`` for text); ``lead_in_dropped`` counts the
    source frames removed by :func:`drop_rest_lead_in`.
    """

    skeleton: BvhSkeleton
    fps: float
    positions: np.ndarray
    rotations: np.ndarray
    source: Path | None = None
    lead_in_dropped: int = 0

    def __post_init__(self) -> None:
        J = self.skeleton.num_joints
        pos = np.asarray(self.positions, dtype=np.float64)
        rot = np.asarray(self.rotations, dtype=np.float64)
        if pos.ndim != 3 or pos.shape[1:] != (J, 3):
            raise ValueError(f"positions must be (F, {J}, 3), got {pos.shape}")
        if rot.shape != pos.shape[:2] + (3, 3):
            raise ValueError(f"rotations must be (F, {J}, 3, 3), got {rot.shape}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be positive, got {self.fps}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "rotations", rot)
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def num_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def names(self) -> tuple[str, ...]:
        return self.skeleton.names

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return max(self.num_frames - 1, 0) / self.fps

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.num_frames) / self.fps

    def index(self, name: str) -> int:
        return self.skeleton.index(name)

    def local_rotations(self) -> np.ndarray:
        """Local (parent-relative) rotations (F, J, 3, 3)."""
        return _local_from_global(self.skeleton.parents, self.positions, self.rotations)[0]

    def local_translations(self) -> np.ndarray:
        """Local translations (F, J, 3) in metres (the root's is its global position)."""
        return _local_from_global(self.skeleton.parents, self.positions, self.rotations)[1]


# --------------------------------------------------------------------------------------------
# Units and frame rate helpers
# --------------------------------------------------------------------------------------------


def cmu_fps_override(path: str | os.PathLike) -> float | None:
    """Frame-rate override for the shared CMU set: 60.0 for the ``salsa`` group, else None.

    Every CMU file's header says 1/120 s, but the source of the salsa clips states 60 fps and the
    motion agrees: read at 120 fps, salsa's left-right foot alternation is 2 Hz and the pelvis
    moves at ~1.0 m/s, twice the other dances (see ``../shared/data/cmu-mocap/README.md``).
    """
    parts = [p.lower() for p in Path(path).parts]
    if len(parts) >= 2 and parts[-2] == "salsa":
        return 60.0
    return None


def _figure_span(parents: np.ndarray, bone_lengths: np.ndarray) -> float:
    """Tree diameter: longest path between two joints, with edge j->parent(j) of bone_lengths[j]."""
    J = len(parents)
    if J < 2:
        return 0.0
    down = np.zeros(J)  # longest downward path from j to a descendant
    best = 0.0
    # children after parents in topological order: go backwards
    top2 = np.zeros((J, 2))
    for j in range(J - 1, 0, -1):
        p = parents[j]
        cand = down[j] + bone_lengths[j]
        if cand > top2[p, 0]:
            top2[p, 1] = top2[p, 0]
            top2[p, 0] = cand
        elif cand > top2[p, 1]:
            top2[p, 1] = cand
        down[p] = top2[p, 0]
    best = float(np.max(top2.sum(axis=1)))
    return best


def infer_unit_scale(parents: np.ndarray, local_translations: np.ndarray,
                     source: str = "<skeleton>") -> float:
    """Metres per file unit by the ``units="auto"`` rule (see the module docstring).

    ``local_translations`` (J, 3) are in file units; the root's entry is ignored.
    """
    lengths = np.linalg.norm(np.asarray(local_translations, dtype=np.float64), axis=1)
    span = _figure_span(np.asarray(parents), lengths)
    if not (span > 0 and math.isfinite(span)):
        raise BvhError(f"{source}: cannot infer units automatically because the skeleton has no "
                       f"extent; pass units explicitly.")
    lo, hi = AUTO_PLAUSIBLE_SPAN_M
    best_name, best_err = None, math.inf
    for name in _AUTO_CANDIDATES:
        metres = span * UNIT_SCALES[name]
        err = abs(math.log(metres / AUTO_REFERENCE_SPAN_M))
        if lo <= metres <= hi and err < best_err:
            best_name, best_err = name, err
    if best_name is None:
        raise BvhError(f"{source}: cannot infer units automatically because a figure span of "
                       f"{span:g} file units is not a plausible human size ({lo}-{hi} m) in m, "
                       f"cm, mm, inch or CMU units; pass units explicitly.")
    return UNIT_SCALES[best_name]


def _resolve_units(units, source: str) -> float | None:
    if isinstance(units, str):
        key = units.strip().lower()
        if key == "auto":
            return None
        if key in UNIT_SCALES:
            return UNIT_SCALES[key]
        raise ValueError(f"unknown units {units!r}; use 'auto', one of {sorted(UNIT_SCALES)}, "
                         f"or a float scale to metres")
    scale = float(units)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"units scale must be a positive number of metres, got {units!r}")
    return scale


def _snap_fps(fps: float) -> float:
    r = round(fps)
    if r > 0 and abs(fps - r) <= 1e-4 * fps:
        return float(r)
    return float(fps)


# --------------------------------------------------------------------------------------------
# Forward kinematics
# --------------------------------------------------------------------------------------------


def forward_kinematics(parents: Sequence[int] | np.ndarray, local_rotations: np.ndarray,
                       local_translations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global positions (F, J, 3) and rotations (F, J, 3, 3) from local ones.

    ``local_rotations`` (F, J, 3, 3) and ``local_translations`` (F, J, 3) are relative to the
    parent (the root's are global); joints must be in topological order.
    """
    parents = np.asarray(parents)
    F, J = local_translations.shape[:2]
    pos = np.empty((F, J, 3))
    rot = np.empty((F, J, 3, 3))
    for j in range(J):
        p = parents[j]
        if p < 0:
            rot[:, j] = local_rotations[:, j]
            pos[:, j] = local_translations[:, j]
        else:
            Rp = rot[:, p]
            rot[:, j] = Rp @ local_rotations[:, j]
            pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", Rp, local_translations[:, j])
    return pos, rot


def _fk_from_channels(skel: BvhSkeleton, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FK from a (F, C) channel matrix (positions already in metres, rotations in degrees)."""
    F = values.shape[0]
    J = skel.num_joints
    parents = skel.parents
    pos_list: list[np.ndarray] = [None] * J  # type: ignore[list-item]
    rot_list: list[np.ndarray | None] = [None] * J  # None = same as the parent's (or identity)
    eye = np.broadcast_to(np.eye(3), (F, 3, 3))
    col = 0
    for j in range(J):
        chans = skel.channels[j]
        t_local: np.ndarray = skel.offsets[j]
        R_local: np.ndarray | None = None
        if chans:
            t_frames = None
            axes, angles = "", []
            for c in chans:
                v = values[:, col]
                col += 1
                if c.endswith("position"):
                    if t_frames is None:
                        t_frames = np.repeat(skel.offsets[j][None, :], F, axis=0)
                    t_frames[:, _AXIS[c[0]]] = v
                else:
                    axes += c[0]
                    angles.append(v)
            if axes:  # intrinsic, in the written order
                R_local = matrix_from_euler(np.stack(angles, axis=-1), axes, degrees=True)
            if t_frames is not None:
                t_local = t_frames
        p = parents[j]
        if p < 0:
            rot_list[j] = R_local
            pos_list[j] = np.broadcast_to(t_local, (F, 3)).copy() if t_local.ndim == 1 else t_local
        else:
            Rp = rot_list[p]
            if Rp is None:
                pos_list[j] = pos_list[p] + t_local
                rot_list[j] = R_local
            else:
                if t_local.ndim == 1:
                    pos_list[j] = pos_list[p] + Rp @ t_local
                else:
                    pos_list[j] = pos_list[p] + np.einsum("fij,fj->fi", Rp, t_local)
                rot_list[j] = Rp if R_local is None else Rp @ R_local
    positions = np.stack(pos_list, axis=1) if J else np.zeros((F, 0, 3))
    rotations = np.empty((F, J, 3, 3))
    for j in range(J):
        rotations[:, j] = eye if rot_list[j] is None else rot_list[j]
    return positions, rotations


def _local_from_global(parents: np.ndarray, positions: np.ndarray, rotations: np.ndarray):
    local_R = np.empty_like(rotations)
    local_t = np.empty_like(positions)
    for j, p in enumerate(parents):
        if p < 0:
            local_R[:, j] = rotations[:, j]
            local_t[:, j] = positions[:, j]
        else:
            RpT = np.swapaxes(rotations[:, p], -1, -2)
            local_R[:, j] = RpT @ rotations[:, j]
            local_t[:, j] = np.einsum("fij,fj->fi", RpT, positions[:, j] - positions[:, p])
    return local_R, local_t


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    src = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise BvhError(f"{src}: file not found.") from None
    except OSError as exc:
        raise BvhError(f"{src}: cannot be read ({exc}).") from exc
    if raw[:2] == b"\x1f\x8b" or path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise BvhError(f"{src}: the gzip data is corrupt or truncated ({exc}).") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_MOTION_RE = re.compile(r"^[ \t]*MOTION[ \t]*$", re.MULTILINE | re.IGNORECASE)


class _Block:
    __slots__ = ("j", "name", "line", "end_site", "offset_seen")

    def __init__(self, j: int, name: str, line: int, end_site: bool) -> None:
        self.j, self.name, self.line, self.end_site = j, name, line, end_site
        self.offset_seen = False


class _HierarchyParser:
    """Iterative (stack-based) parser, so any hierarchy depth works."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.toks: list[tuple[str, int]] = []  # braces are separate tokens
        for ln, line in enumerate(text.split("\n"), start=1):
            for tok in line.replace("{", " { ").replace("}", " } ").split():
                self.toks.append((tok, ln))
        self.i = 0
        self.names: list[str | None] = []
        self.parents: list[int] = []
        self.offsets: list[tuple[float, float, float]] = []
        self.channels: list[tuple[str, ...]] = []
        self.end_site: list[bool] = []

    def err(self, msg: str, line: int | None = None) -> BvhError:
        where = f" (line {line})" if line is not None else ""
        return BvhError(f"{self.source}: {msg}{where}.")

    def peek(self) -> tuple[str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self, what: str, block: _Block | None = None) -> tuple[str, int]:
        if self.i >= len(self.toks):
            last = self.toks[-1][1] if self.toks else None
            if block is not None:
                raise self.err(f"unbalanced braces: {self._describe(block)} opened on line "
                               f"{block.line} is not closed before MOTION", None)
            raise self.err(f"the HIERARCHY ends early while expecting {what}", last)
        t = self.toks[self.i]
        self.i += 1
        return t

    @staticmethod
    def _describe(block: _Block) -> str:
        return "an End Site" if block.end_site else f"joint '{block.name}'"

    def number(self, what: str, block: _Block) -> float:
        tok, ln = self.next(what, block)
        try:
            v = float(tok)
        except ValueError:
            raise self.err(f"expected a number for {what} of {self._describe(block)} but found "
                           f"'{tok}'", ln) from None
        if not math.isfinite(v):
            raise self.err(f"{what} of {self._describe(block)} is not finite ('{tok}')", ln)
        return v

    def _open(self, parent: int, name: str | None, line: int, end_site: bool,
              stack: list[_Block]) -> None:
        tok, ln = self.next("'{'")
        if tok != "{":
            raise self.err(f"unbalanced braces: expected '{{' after "
                           f"{'End Site' if end_site else repr(name)} but found '{tok}'", ln)
        j = len(self.names)
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append((0.0, 0.0, 0.0))
        self.channels.append(())
        self.end_site.append(end_site)
        stack.append(_Block(j, name or "End Site", line, end_site))

    def _joint_name(self, kw_line: int) -> str:
        parts = []
        while True:
            t = self.peek()
            if t is None or t[1] != kw_line or t[0] in "{}":
                break
            parts.append(t[0])
            self.i += 1
        if not parts:
            raise self.err("a joint has no name", kw_line)
        name = " ".join(parts)
        if name in self.names:
            raise self.err(f"joint name '{name}' is used twice", kw_line)
        return name

    def parse(self) -> None:
        if not self.toks:
            raise self.err("the file has no HIERARCHY section")
        tok, ln = self.next("HIERARCHY")
        if tok.upper() != "HIERARCHY":
            raise self.err(f"the file does not start with HIERARCHY (found '{tok}')", ln)
        roots = 0
        stack: list[_Block] = []
        while self.peek() is not None or stack:
            top = stack[-1] if stack else None
            tok, ln = self.next("ROOT", top)
            up = tok.upper()
            if top is None:
                if up == "ROOT":
                    roots += 1
                    if roots > 1:
                        raise self.err("the file has more than one ROOT hierarchy, which is not "
                                       "supported", ln)
                    self._open(-1, self._joint_name(ln), ln, False, stack)
                elif tok == "}":
                    raise self.err("unbalanced braces: an extra '}' closes nothing", ln)
                else:
                    raise self.err(f"expected ROOT but found '{tok}'", ln)
                continue
            if tok == "}":
                if not top.offset_seen and not top.end_site:
                    raise self.err(f"joint '{top.name}' has no OFFSET", top.line)
                stack.pop()
            elif up == "OFFSET":
                self.offsets[top.j] = (self.number("OFFSET x", top), self.number("OFFSET y", top),
                                       self.number("OFFSET z", top))
                top.offset_seen = True
            elif up == "CHANNELS" and not top.end_site:
                self._channels(top)
            elif up == "JOINT" and not top.end_site:
                self._open(top.j, self._joint_name(ln), ln, False, stack)
            elif up == "END" and not top.end_site:
                t2, ln2 = self.next("'Site'", top)
                if t2.upper() != "SITE":
                    raise self.err(f"expected 'End Site' but found 'End {t2}'", ln2)
                self._open(top.j, None, ln, True, stack)
            elif up == "ROOT":
                raise self.err(f"ROOT inside {self._describe(top)} (unbalanced braces, or more "
                               f"than one ROOT, which is not supported)", ln)
            elif tok == "{":
                raise self.err(f"unbalanced braces: unexpected '{{' inside {self._describe(top)}", ln)
            else:
                raise self.err(f"unexpected '{tok}' inside {self._describe(top)}", ln)
        if roots == 0:
            raise self.err("the HIERARCHY section has no ROOT joint")
        # end sites: "<parent>_end", made unique against every other name
        taken = {n for n in self.names if n is not None}
        for j, n in enumerate(self.names):
            if n is None:
                base = f"{self.names[self.parents[j]]}_end"
                name, k = base, 2
                while name in taken:
                    name, k = f"{base}{k}", k + 1
                taken.add(name)
                self.names[j] = name

    def _channels(self, top: _Block) -> None:
        ctok, cln = self.next("the channel count", top)
        try:
            n = int(ctok)
        except ValueError:
            raise self.err(f"CHANNELS of joint '{top.name}' needs a count, found '{ctok}'", cln) from None
        if not 0 <= n <= 6:
            raise self.err(f"joint '{top.name}' declares {n} channels (0 to 6 are allowed)", cln)
        chans = []
        for _ in range(n):
            c, cl = self.next(f"a channel name of joint '{top.name}'", top)
            canon = _CHANNEL_NAMES.get(c.lower())
            if canon is None:
                raise self.err(f"unknown channel name '{c}' for joint '{top.name}' (CHANNELS "
                               f"{n} expects {n} of Xposition, Yposition, Zposition, Xrotation, "
                               f"Yrotation, Zrotation)", cl)
            chans.append(canon)
        if len(set(chans)) != len(chans):
            raise self.err(f"joint '{top.name}' lists a channel twice", cln)
        self.channels[top.j] = tuple(chans)


def _parse_motion(text: str, first_line: int, n_channels: int, source: str):
    """Parse 'Frames:', 'Frame Time:' and the rows. Returns (values (F, C), frame_time)."""
    lines = text.split("\n")
    k = 0

    def header(label: str) -> tuple[str, int]:
        nonlocal k
        while k < len(lines) and not lines[k].strip():
            k += 1
        if k >= len(lines):
            raise BvhError(f"{source}: the MOTION section ends before its '{label}' line.")
        line = lines[k]
        ln = first_line + k
        k += 1
        m = re.match(r"\s*" + label.replace(" ", r"\s*") + r"\s*(\S+)\s*$", line, re.IGNORECASE)
        if not m:
            raise BvhError(f"{source}: expected a '{label}' line after MOTION but found "
                           f"'{line.strip()[:60]}' (line {ln}).")
        return m.group(1), ln

    ftok, fln = header("Frames:")
    try:
        n_frames = int(ftok)
        if n_frames < 0:
            raise ValueError
    except ValueError:
        raise BvhError(f"{source}: 'Frames:' must be a non-negative integer, found '{ftok}' "
                       f"(line {fln}).") from None
    ttok, tln = header("Frame Time:")
    try:
        frame_time = float(ttok)
    except ValueError:
        frame_time = float("nan")
    if not (frame_time > 0 and math.isfinite(frame_time)):
        raise BvhError(f"{source}: 'Frame Time:' must be a positive number of seconds, found "
                       f"'{ttok}' (line {tln}).")

    body = lines[k:]
    # drop trailing blank lines; blank lines inside the block are errors (a row is missing)
    end = len(body)
    while end > 0 and not body[end - 1].strip():
        end -= 1
    body = body[:end]
    row_tokens = [ln.split() for ln in body]
    if len(row_tokens) < n_frames:
        raise BvhError(f"{source}: the file is truncated: 'Frames:' says {n_frames} but only "
                       f"{len(row_tokens)} motion rows are present.")
    if len(row_tokens) > n_frames:
        warnings.warn(f"{source}: {len(row_tokens)} motion rows but 'Frames:' says {n_frames}; "
                      f"the extra rows are ignored.", stacklevel=3)
        row_tokens = row_tokens[:n_frames]
    for i, toks in enumerate(row_tokens):
        if len(toks) != n_channels:
            what = ("is empty" if not toks else f"has {len(toks)} values")
            if i == len(row_tokens) - 1 and 0 < len(toks) < n_channels:
                raise BvhError(f"{source}: the file is truncated: the last motion row (frame {i}, "
                               f"line {first_line + k + i}) has {len(toks)} of the expected "
                               f"{n_channels} values.")
            raise BvhError(f"{source}: channel count mismatch: motion row for frame {i} (line "
                           f"{first_line + k + i}) {what} but the hierarchy declares "
                           f"{n_channels} channels.")
    flat = [t for toks in row_tokens for t in toks]
    try:
        values = np.array(flat, dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.all(np.isfinite(values)):
        for i, toks in enumerate(row_tokens):
            for t in toks:
                try:
                    ok = math.isfinite(float(t))
                except ValueError:
                    ok = False
                if not ok:
                    raise BvhError(f"{source}: non-numeric value '{t[:30]}' in the motion row "
                                   f"for frame {i} (line {first_line + k + i}).")
    return values.reshape(n_frames, n_channels), frame_time


def parse_bvh(text: str, source: str | os.PathLike | None = None, *, units="auto",
              fps_override: float | None = None) -> BvhMotion:
    """Parse BVH ``text`` (see the module docstring); ``source`` is used in messages."""
    src = str(source) if source is not None else "<bvh text>"
    scale = _resolve_units(units, src)
    if not text.strip():
        raise BvhError(f"{src}: the file is empty.")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    m = _MOTION_RE.search(text)
    if m is None:
        if not re.match(r"\s*HIERARCHY\b", text, re.IGNORECASE):
            raise BvhError(f"{src}: not a BVH file (it has neither a HIERARCHY nor a MOTION section).")
        raise BvhError(f"{src}: the file has no MOTION section (truncated after the hierarchy?).")
    hier = _HierarchyParser(text[:m.start()], src)
    hier.parse()
    motion_line = text.count("\n", 0, m.start()) + 1
    n_channels = sum(len(c) for c in hier.channels)
    values, frame_time = _parse_motion(text[m.end():], motion_line, n_channels, src)

    offsets_file = np.array(hier.offsets, dtype=np.float64).reshape(-1, 3)
    parents = np.array(hier.parents, dtype=np.int64)
    if scale is None:
        bones = offsets_file.copy()
        col = 0
        for j, chans in enumerate(hier.channels):
            for c in chans:
                if c.endswith("position") and parents[j] >= 0 and values.shape[0] > 0:
                    bones[j, _AXIS[c[0]]] = values[0, col]
                col += 1
        scale = infer_unit_scale(parents, bones, src)

    skel = BvhSkeleton(names=tuple(hier.names), parents=parents, offsets=offsets_file * scale,
                       channels=tuple(hier.channels), is_end_site=np.array(hier.end_site),
                       unit_scale=float(scale))
    # scale position channels to metres
    if scale != 1.0:
        pos_cols = [i for i, c in enumerate(c for ch in hier.channels for c in ch)
                    if c.endswith("position")]
        if pos_cols:
            values[:, pos_cols] *= scale
    positions, rotations = _fk_from_channels(skel, values)
    fps = float(fps_override) if fps_override is not None else _snap_fps(1.0 / frame_time)
    path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    return BvhMotion(skeleton=skel, fps=fps, positions=positions, rotations=rotations, source=path)


def read_bvh(path: str | os.PathLike, *, units="auto", fps_override: float | None = None,
             drop_lead_in: bool = False) -> BvhMotion:
    """Read a ``.bvh`` or ``.bvh.gz`` file into a :class:`BvhMotion` (metres, global FK).

    ``fps_override`` replaces the header's frame rate (e.g. ``cmu_fps_override(path)``);
    ``drop_lead_in=True`` applies :func:`drop_rest_lead_in`.
    """
    p = Path(path)
    text = _read_text(p)
    motion = parse_bvh(text, p, units=units, fps_override=fps_override)
    if drop_lead_in:
        motion = drop_rest_lead_in(motion)
    return motion


# --------------------------------------------------------------------------------------------
# Resampling and lead-in removal
# --------------------------------------------------------------------------------------------


def resample(motion: BvhMotion, fps: float = 30.0) -> BvhMotion:
    """Resample ``motion`` to ``fps`` (see the module docstring for the method)."""
    fps = float(fps)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"target fps must be positive, got {fps}")
    F = motion.num_frames
    if F == 0 or fps == motion.fps:
        return replace(motion, fps=fps)
    ratio = motion.fps / fps  # source frames per target frame
    n_new = int(math.floor((F - 1) / ratio + 1e-9)) + 1
    u = np.arange(n_new) * ratio  # fractional source frame index
    nearest = np.round(u)
    exact = np.abs(u - nearest) < 1e-6
    u = np.where(exact, nearest, u)
    i0 = np.clip(np.floor(u).astype(np.int64), 0, F - 1)
    a = u - i0
    if np.all(exact):
        return replace(motion, fps=fps, positions=motion.positions[i0].copy(),
                       rotations=motion.rotations[i0].copy())
    i1 = np.clip(i0 + 1, 0, F - 1)
    parents = motion.skeleton.parents
    # only the frames that are needed
    need = np.unique(np.concatenate([i0, i1]))
    remap = np.zeros(F, dtype=np.int64)
    remap[need] = np.arange(len(need))
    lR, lt = _local_from_global(parents, motion.positions[need], motion.rotations[need])
    q = quat_from_matrix(lR)
    q0, q1 = q[remap[i0]], q[remap[i1]]
    qn = quat_slerp(q0, q1, a[:, None])
    w = a[:, None, None]
    tn = (1 - w) * lt[remap[i0]] + w * lt[remap[i1]]
    pos, rot = forward_kinematics(parents, matrix_from_quat(qn), tn)
    # copy coincident frames bit-exactly
    pos[exact] = motion.positions[i0[exact]]
    rot[exact] = motion.rotations[i0[exact]]
    return replace(motion, fps=fps, positions=pos, rotations=rot)


#: Blend frames dropped after a rest pose by :func:`drop_rest_lead_in` (see its docstring).
CMU_BLEND_FRAMES = 7


def rest_lead_in_length(motion: BvhMotion, *, blend_frames: int = CMU_BLEND_FRAMES,
                        root_tol_deg: float = 0.01, rest_rms_deg: float = 15.0,
                        max_rest_frames: int = 30) -> int:
    """Number of leading frames :func:`drop_rest_lead_in` would drop (0 if there is no lead-in).

    A frame is a *rest frame* when its root rotation is the identity (within ``root_tol_deg``)
    and the RMS over the joints with rotation channels of their local rotation angles is at most
    ``rest_rms_deg`` (the CMU rest frame has an exactly zero root rotation and an RMS of 3.3
    degrees, from a few constant finger/leg angles; over all 227k later frames of the shared CMU
    set no frame away from the start has an exactly zero root rotation).  The lead-in is the
    leading run of rest frames (at least one, at most ``max_rest_frames``, never the whole clip)
    plus the ``blend_frames`` frames after it; a longer run is not treated as a lead-in.
    """
    F = motion.num_frames
    skel = motion.skeleton
    if F == 0 or motion.lead_in_dropped > 0:
        return 0
    n = min(F, max_rest_frames + 1)
    lR = _local_from_global(skel.parents, motion.positions[:n], motion.rotations[:n])[0]
    rotating = np.array([any(c.endswith("rotation") for c in ch) for ch in skel.channels])
    rotating[0] = True
    ang = np.degrees(matrix_angle(lR[:, rotating]))  # (n, Jr)
    root_rest = np.degrees(matrix_angle(lR[:, 0])) <= root_tol_deg
    rms = np.sqrt(np.mean(ang ** 2, axis=1))
    rest = root_rest & (rms <= rest_rms_deg)
    run = int(np.argmin(rest)) if not rest.all() else n
    if run == 0 or run > max_rest_frames or run >= F:
        return 0
    return min(run + int(blend_frames), F - 1)


def drop_rest_lead_in(motion: BvhMotion, *, blend_frames: int = CMU_BLEND_FRAMES,
                      root_tol_deg: float = 0.01, rest_rms_deg: float = 15.0,
                      max_rest_frames: int = 30) -> BvhMotion:
    """Drop a leading rest (zero) pose and the frames that blend out of it.

    The CMU BVH conversion starts every clip with a rest pose (root rotation exactly zero, limbs
    in the skeleton's zero pose) and then blends into the motion.  The rest frames are detected
    as described in :func:`rest_lead_in_length`.  The blend length is a fixed property of the
    conversion, so a fixed count is dropped after the rest run: ``blend_frames = 7``, measured
    on all 169 shared clips: the per-frame change of the local joint rotations, relative to each
    clip's own median, is (median over clips) 17.7, 18.6, 16.5, 11.4, 4.7, 1.1, 2.8, 1.8 for the
    transitions 0->1 .. 7->8 (a decaying, ringing transient) and 0.75-0.8 from 8->9 on, so frame
    8 is the first clean frame (the README's "~5 frames" is the visible part of it).  Counts are
    in source frames (the conversion's frames), whatever the frame rate.

    Clips without a rest lead-in (or already trimmed: ``lead_in_dropped > 0``) are returned
    unchanged.  The result records the count in ``lead_in_dropped``.
    """
    k = rest_lead_in_length(motion, blend_frames=blend_frames, root_tol_deg=root_tol_deg,
                            rest_rms_deg=rest_rms_deg, max_rest_frames=max_rest_frames)
    if k == 0:
        return motion
    return replace(motion, positions=motion.positions[k:].copy(),
                   rotations=motion.rotations[k:].copy(), lead_in_dropped=k)


def read_cmu_bvh(path: str | os.PathLike, *, units="auto") -> BvhMotion:
    """Read a clip of the shared CMU set the recommended way: the salsa frame-rate fix
    (:func:`cmu_fps_override`) and the rest lead-in dropped (:func:`drop_rest_lead_in`)."""
    return read_bvh(path, units=units, fps_override=cmu_fps_override(path), drop_lead_in=True)
