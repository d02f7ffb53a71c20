"""Ground contact: which feet stand on the floor, and a body that honours them.

Monocular 3D slides: the lifter's root drifts a few millimetres per frame, so a standing foot
skates over the floor and the body sinks or floats by centimetres. This module works in the world
frame (``realtime.world``: y up, floor at y = 0) on whole skeletons, causally, per person:

* **Contact probability** per foot (left, right) each frame, from the ankle's height above its
  resting height and its speed: ``p = s((h0 - h) / sh) * s((v0 - v) / sv)`` with ``s`` the
  logistic function, then hysteresis (a foot enters contact above 0.6 and leaves below 0.4), so
  contacts do not flicker.
* **Foot lock.** When a foot enters contact its position is locked on the floor. While it stays
  in contact the whole body is translated so that the foot stays where it was locked: the root
  moves over the floor as the person walks, from one stance foot to the next. Translating the
  whole skeleton keeps its bone lengths and rotations, so positions and rig rotations stay
  consistent. With both feet in contact the translation is the contact-weighted mean of what
  each foot asks for.
* **Drift bound.** The translation is an offset from where the lifter put the body. While a foot
  is locked, the lock creeps towards the lifter's foot at most :attr:`ContactConfig.creep_m_per_s`
  (1 mm per frame at 30 fps), and without contact the offset relaxes with
  :attr:`ContactConfig.release_s`; so the body never wanders far from the measured 2D.
* **Floor.** The vertical offset puts a contact foot's ankle at its resting height above the floor
  and relaxes like the horizontal one while both feet are off it, slowly enough that a jump
  lifts both feet; no ankle ever ends below its resting height (no foot sinks into the floor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from realtime.world import ANKLE_HEIGHT_M

__all__ = ["ContactConfig", "ContactSolver", "FOOT_JOINTS"]

FOOT_JOINTS = (6, 3)
"""Canonical joints of the feet in the order contacts are published: ``[left, right]`` ankles."""


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


@dataclass(frozen=True)
class ContactConfig:
    """Contact detection and foot locking (metres, seconds)."""

    ankle_height_m: float = ANKLE_HEIGHT_M
    height_m: float = 0.08  # h0: ankle this far above its resting height is half in contact
    height_scale_m: float = 0.015
    speed_m_per_s: float = 0.5  # v0: an ankle this fast is half in contact
    speed_scale_m_per_s: float = 0.1
    enter: float = 0.6
    leave: float = 0.4
    creep_m_per_s: float = 0.03
    release_s: float = 0.5
    settle_s: float = 0.1  # the vertical offset's time constant
    anchor_s: float = 0.3  # a foot in contact this long counts fully when both feet stand
    forget_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("height_scale_m", "speed_m_per_s", "speed_scale_m_per_s", "release_s", "settle_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ContactConfig.{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.leave <= self.enter < 1:
            raise ValueError("ContactConfig needs 0 < leave <= enter < 1")


@dataclass
class _Foot:
    prev: np.ndarray | None = None  # the lifter's ankle (world) last frame
    contact: bool = False
    lock: np.ndarray | None = None
    p: float = 0.0
    age: float = 0.0  # seconds in contact


@dataclass
class _Person:
    last_ns: int
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    feet: tuple[_Foot, _Foot] = field(default_factory=lambda: (_Foot(), _Foot()))


class ContactSolver:
    """Per-person foot contacts and the body translation that honours them (see module doc)."""

    def __init__(self, config: ContactConfig | None = None) -> None:
        self.config = config or ContactConfig()
        self._people: dict[int, _Person] = {}

    def reset(self) -> None:
        """Forget every lock and offset (the world frame they were made in has moved)."""
        self._people.clear()

    def __call__(self, ids, joints_world: np.ndarray, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """World joints (P, 17, 3) -> (translations (P, 3) to add to each skeleton, contacts (P, 2)
        in ``[left, right]`` order, 0-1)."""
        cfg = self.config
        J = np.asarray(joints_world, np.float64)
        t_ns = int(t_ns)
        shifts = np.zeros((len(J), 3))
        contacts = np.zeros((len(J), 2))
        for k, pid in enumerate(ids):
            pid = int(pid)
            person = self._people.get(pid)
            if person is None:
                person = self._people[pid] = _Person(last_ns=t_ns)
            dt = max(t_ns - person.last_ns, 0) / 1e9
            if dt > 0.5:  # a long gap: start afresh rather than lock to an old floor position
                person = self._people[pid] = _Person(last_ns=t_ns)
                dt = 0.0
            person.last_ns = t_ns
            shifts[k], contacts[k] = self._step(person, J[k], dt)
        self._forget(t_ns)
        return shifts, contacts

    def _step(self, person: _Person, joints: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        o = person.offset
        raw = joints[list(FOOT_JOINTS)]  # (2, 3) the lifter's ankles
        probs = np.zeros(2)
        want = np.zeros(3)
        weight = 0.0
        for f, foot in enumerate(person.feet):
            placed = raw[f] + o
            h = placed[1] - cfg.ankle_height_m
            speed = 0.0 if foot.prev is None or dt <= 0 else float(np.linalg.norm(raw[f] - foot.prev)) / dt
            foot.prev = raw[f].copy()
            p = _sigmoid((cfg.height_m - h) / cfg.height_scale_m) * _sigmoid(
                (cfg.speed_m_per_s - speed) / cfg.speed_scale_m_per_s)
            foot.p = p
            if not foot.contact and p > cfg.enter:
                foot.contact, foot.age = True, 0.0
                foot.lock = np.array([placed[0], cfg.ankle_height_m, placed[2]])
            elif foot.contact and p < cfg.leave:
                foot.contact, foot.lock = False, None
            probs[f] = p
            if foot.contact:
                # the lock creeps towards the lifter's foot (bounded), so drift cannot build up
                step = raw[f, [0, 2]] - foot.lock[[0, 2]]
                norm = float(np.linalg.norm(step))
                limit = cfg.creep_m_per_s * dt
                if norm > limit > 0:
                    step *= limit / norm
                elif limit <= 0:
                    step[:] = 0.0
                foot.lock[[0, 2]] += step
                # a foot that has stood longer is the better anchor (a heel strike is still settling)
                foot.age += dt
                w = p * min(foot.age / cfg.anchor_s, 1.0) + 1e-3
                want += w * (foot.lock - raw[f])
                weight += w
        if weight > 0:
            target = want / weight
            o[[0, 2]] = target[[0, 2]]
            a = 1.0 - math.exp(-dt / cfg.settle_s) if dt > 0 else 1.0
            o[1] += a * (target[1] - o[1])
        else:  # no foot on the floor: the offset relaxes (a jump's feet still rise: it is short)
            o *= math.exp(-dt / cfg.release_s) if dt > 0 else 1.0
        lowest = float(raw[:, 1].min())
        o[1] = max(o[1], cfg.ankle_height_m - lowest)  # no foot below the floor
        return o.copy(), probs

    def _forget(self, now_ns: int) -> None:
        limit = self.config.forget_s * 1e9
        for pid in [pid for pid, p in self._people.items() if now_ns - p.last_ns > limit]:
            del self._people[pid]
