"""One Euro filtering of 3D skeletons, per joint and per axis, compiled with Numba.

The lifter's per-frame output jitters by a few millimetres even when the person stands still;
a fixed low-pass filter would remove the jitter but make fast limbs lag. The One Euro filter
(Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter for Noisy
Input in Interactive Systems", CHI 2012) is a first-order low-pass whose cutoff frequency rises
with the (smoothed) speed of the signal: strong smoothing at rest, little lag in motion::

    dt      = t - t_prev                                   seconds, per joint
    dx      = (x - x_raw_prev) / dt                        speed, m/s
    a_d     = alpha(dt, d_cutoff)
    dx_hat  = a_d * dx + (1 - a_d) * dx_hat_prev           smoothed speed
    cutoff  = min_cutoff + beta * |dx_hat|                 Hz
    a       = alpha(dt, cutoff)
    x_hat   = a * x + (1 - a) * x_hat_prev                 output, metres
    alpha(dt, fc) = 1 / (1 + tau / dt),  tau = 1 / (2 pi fc)

The speed is taken against the previous *raw* sample, as in Casiez's reference implementation
and MediaPipe's ``util/filtering/one_euro_filter.cc``; our default parameters come from
MediaPipe (see :class:`OneEuroConfig`), so we follow the formulation they were tuned for.

Shapes: one skeleton is ``(joints, 3)`` (x, y, z in metres, whatever frame the caller uses;
the filter treats each axis independently, so it does not care). Timestamps are
``time.monotonic_ns()`` at the public API and seconds inside the kernels.

Edge cases, handled identically by both kernels:

* the first valid sample of a joint passes through unchanged;
* a frame whose timestamp is not later than the previous frame's (repeated or out of order)
  changes nothing and returns the previous output (never a division by zero);
* a joint with any non-finite coordinate is *missing*: its previous output is returned and its
  state is left untouched (NaN if it was never seen). Timestamps are kept per joint, so when a
  joint comes back its speed is measured over the whole gap, not over one frame.

Two implementations of one step sit side by side: :func:`one_euro_step_numpy` (the readable
reference) and :func:`_one_euro_step_numba` (the one the realtime pipeline runs, tens of
times cheaper per call; see ``benchmarks/smoothing.py``); ``tests/realtime/test_smooth.py`` holds them equal.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = [
    "OneEuroConfig",
    "OneEuroFilter",
    "OneEuroState",
    "SkeletonSmoother",
    "new_state",
    "one_euro_step_numpy",
    "state_views",
    "warmup",
]

BACKENDS = ("numba", "numpy")
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

# State of one filter: ONE float64 array of shape (J + 1, 11), mutated in place by a step. One
# array rather than six keeps the compiled kernel's call cheap (Numba unboxes every array
# argument on every call: with six that alone costs about a microsecond). Columns of rows 0..J-1:
#   0:3  x_prev       previous raw (valid) sample of each joint, metres
#   3:6  y_prev       previous filtered value of each joint, metres (NaN until first seen): the
#                     filter's output, which a step also copies to the caller's float32 ``out``.
#   6:9  dx_prev      previous smoothed speed, m/s
#   9    t_prev       time of each joint's last valid sample, seconds
#   10   initialised  1.0 once the joint has had a valid sample, else 0.0
# Row J, column 0: t_last, the time of the last accepted frame, seconds (-inf before the first).
# :func:`state_views` names the pieces.
OneEuroState = np.ndarray
_Y, _DX, _TP, _INIT = 3, 6, 9, 10
_COLUMNS = 11


@dataclass(frozen=True)
class OneEuroConfig:
    """Parameters of the One Euro filter, in SI units.

    The defaults are MediaPipe Pose's own settings for its *world* landmarks (metres, hip
    centred, the same kind of output as our lifter): the ``one_euro_filter`` block of the
    ``LandmarksSmoothingCalculator`` on ``world_landmarks`` in MediaPipe's
    ``mediapipe/modules/pose_landmark/pose_landmark_filtering.pbtxt`` (copy in
    ``../shared/notes/blazepose-graphs/PoseLandmarkFiltering.pbtxt``): ``min_cutoff: 0.1``,
    ``beta: 40.0``, ``derivate_cutoff: 1.0``, with ``disable_value_scaling: true`` so ``beta``
    applies to raw metres per second, as here.

    Attributes:
        min_cutoff: cutoff frequency at rest, Hz. Lower removes more jitter of a still pose.
        beta: cutoff increase per unit of speed, Hz per (m/s). Higher means less lag in fast
            motion; 0 makes a plain first-order low-pass at ``min_cutoff``.
        d_cutoff: cutoff frequency of the low-pass on the speed estimate, Hz.
    """

    min_cutoff: float = 0.1
    beta: float = 40.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"OneEuroConfig.{name} must be a finite number > 0, got {value!r}")
        # beta = 0 is a legitimate setting (a fixed low-pass), so only negatives are refused.
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"OneEuroConfig.beta must be a finite number >= 0, got {self.beta!r}")

    def as_tuple(self) -> tuple[float, float, float]:
        """``(min_cutoff, beta, d_cutoff)`` as floats, the form the kernels take."""
        return (float(self.min_cutoff), float(self.beta), float(self.d_cutoff))


def new_state(joints: int) -> OneEuroState:
    """A fresh filter state for ``joints`` joints (nothing seen yet)."""
    state = np.zeros((joints + 1, _COLUMNS), dtype=np.float64)
    state[:joints, _Y:_DX] = np.nan
    state[joints, 0] = -np.inf
    return state


def state_views(state: OneEuroState) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Named views into a state: ``(x_prev (J, 3), y_prev (J, 3), dx_prev (J, 3), t_prev (J,),
    initialised (J,) as 0.0/1.0, t_last (1,))``; writing to them writes the state."""
    J = state.shape[0] - 1
    return (state[:J, 0:_Y], state[:J, _Y:_DX], state[:J, _DX:_TP], state[:J, _TP], state[:J, _INIT], state[J, 0:1])


def one_euro_step_numpy(
    x: np.ndarray, t: float, state: OneEuroState, min_cutoff: float, beta: float, d_cutoff: float,
    out: np.ndarray,
) -> None:
    """Filter one skeleton in place: the plain NumPy reference of :func:`_one_euro_step_numba`.

    Args:
        x: ``(J, 3)`` joints in metres, float64 or float32 (read as float64, so both give the same
            result); a row with any non-finite value is a missing joint.
        t: timestamp of ``x`` in seconds (any origin, the same for every call on this state).
        state: from :func:`new_state`; updated in place.
        min_cutoff, beta, d_cutoff: see :class:`OneEuroConfig` (``OneEuroConfig.as_tuple()``).
        out: ``(J, 3)`` float32, receives the filtered skeleton (NaN for joints never seen); the
            same values, in float64, stay in ``state_views(state)[1]``.

    Nothing is returned: the caller allocates ``out``, so the compiled twin neither allocates
    nor boxes an array, and the float64 -> float32 copy happens inside the kernel (a NumPy
    ``astype`` of the strided state view costs more than the whole compiled step).
    """
    _numpy_step(x, t, state, min_cutoff, beta, d_cutoff)
    out[...] = state_views(state)[1]


def _numpy_step(
    x: np.ndarray, t: float, state: OneEuroState, min_cutoff: float, beta: float, d_cutoff: float
) -> None:
    x_prev, y_prev, dx_prev, t_prev, initialised, t_last = state_views(state)
    if not t > t_last[0]:  # repeated, out of order, or NaN timestamp: nothing changes
        return
    t_last[0] = t

    valid = np.isfinite(x).all(axis=1)
    first = valid & ~(initialised > 0.0)
    x_prev[first] = x[first]
    y_prev[first] = x[first]
    dx_prev[first] = 0.0
    t_prev[first] = t
    initialised[first] = 1.0

    dt_all = t - t_prev
    upd = valid & ~first & (dt_all > 0.0)
    if not upd.any():
        return
    dt = dt_all[upd][:, None]
    xs = x[upd]
    dx = (xs - x_prev[upd]) / dt
    tau_d = 1.0 / (2.0 * math.pi * d_cutoff)
    a_d = 1.0 / (1.0 + tau_d / dt)
    edx = a_d * dx + (1.0 - a_d) * dx_prev[upd]
    cutoff = min_cutoff + beta * np.abs(edx)
    tau = 1.0 / (2.0 * math.pi * cutoff)
    a = 1.0 / (1.0 + tau / dt)
    x_prev[upd] = xs
    y_prev[upd] = a * xs + (1.0 - a) * y_prev[upd]
    dx_prev[upd] = edx
    t_prev[upd] = t


@njit(cache=True)
def _one_euro_step_numba(
    x: np.ndarray, t: float, state: OneEuroState, min_cutoff: float, beta: float, d_cutoff: float,
    out: np.ndarray,
) -> None:
    """Numba twin of :func:`one_euro_step_numpy`: same arguments, same result, loops per joint."""
    _numba_step(x, t, state, min_cutoff, beta, d_cutoff)
    for j in range(x.shape[0]):
        for k in range(3):
            out[j, k] = state[j, _Y + k]


@njit(cache=True)
def _numba_step(
    x: np.ndarray, t: float, state: OneEuroState, min_cutoff: float, beta: float, d_cutoff: float
) -> None:
    J = x.shape[0]
    if not t > state[J, 0]:
        return
    state[J, 0] = t

    tau_d = 1.0 / (2.0 * math.pi * d_cutoff)
    for j in range(J):
        if not (math.isfinite(x[j, 0]) and math.isfinite(x[j, 1]) and math.isfinite(x[j, 2])):
            continue  # missing joint: keep its previous output and state
        if not state[j, _INIT] > 0.0:  # first sample of this joint
            for k in range(3):
                state[j, k] = x[j, k]
                state[j, _Y + k] = x[j, k]
                state[j, _DX + k] = 0.0
            state[j, _TP] = t
            state[j, _INIT] = 1.0
            continue
        dt = t - state[j, _TP]
        if not dt > 0.0:
            continue
        a_d = 1.0 / (1.0 + tau_d / dt)
        for k in range(3):
            xv = x[j, k]
            dx = (xv - state[j, k]) / dt
            edx = a_d * dx + (1.0 - a_d) * state[j, _DX + k]
            cutoff = min_cutoff + beta * abs(edx)
            tau = 1.0 / (2.0 * math.pi * cutoff)
            a = 1.0 / (1.0 + tau / dt)
            state[j, k] = xv
            state[j, _Y + k] = a * xv + (1.0 - a) * state[j, _Y + k]
            state[j, _DX + k] = edx
        state[j, _TP] = t


class OneEuroFilter:
    """One Euro filter over one ``(joints, 3)`` skeleton stream (one person).

    Call it once per frame with the skeleton and its ``time.monotonic_ns()`` timestamp; it
    returns the smoothed skeleton as a new float32 array. ``backend="numba"`` runs the compiled
    kernel (call :func:`warmup` at start-up so the first frame does not pay for compilation);
    ``backend="numpy"`` runs the reference, for checking.
    """

    def __init__(self, joints: int = 17, config: OneEuroConfig = OneEuroConfig(), backend: str = "numba") -> None:
        if isinstance(joints, bool) or not isinstance(joints, (int, np.integer)) or joints <= 0:
            raise ValueError(f"joints must be a positive integer, got {joints!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.joints = int(joints)
        self.config = config
        self.backend = backend
        self._cfg = config.as_tuple()
        self._step = _one_euro_step_numba if backend == "numba" else one_euro_step_numpy
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next call passes its sample through as a first sample."""
        self._state = new_state(self.joints)
        self._t0_ns: int | None = None

    def __call__(self, x: np.ndarray, t_ns: int) -> np.ndarray:
        """Filter one skeleton.

        Args:
            x: ``(joints, 3)`` joint positions in metres; NaN rows mark missing joints.
            t_ns: capture time from ``time.monotonic_ns()``; a repeated or earlier timestamp
                returns the previous output unchanged.

        Returns:
            A new ``(joints, 3)`` float32 array (NaN for joints never seen yet).
        """
        arr = np.asarray(x)
        if (arr.dtype != _F64 and arr.dtype != _F32) or not (arr.flags.c_contiguous and arr.flags.writeable):
            # Anything else would make Numba compile another specialisation mid-stream (about a
            # second); float32 and float64 are both compiled by warmup() and read as float64.
            arr = np.array(arr, dtype=np.float64, order="C")
        if arr.shape != (self.joints, 3):
            raise ValueError(f"expected a skeleton of shape ({self.joints}, 3), got shape {arr.shape}")
        t_ns = operator.index(t_ns)
        if self._t0_ns is None:
            self._t0_ns = t_ns  # seconds from the first frame keep full float64 precision
        out = np.empty((self.joints, 3), dtype=np.float32)
        self._step(arr, (t_ns - self._t0_ns) * 1e-9, self._state, *self._cfg, out)
        return out


class SkeletonSmoother:
    """One :class:`OneEuroFilter` per tracked person id.

    A person absent from a call is forgotten (its filter is dropped), so an id that comes back
    later, or is reused by the tracker for someone else, starts from a fresh filter rather than
    being blended with a stale pose.
    """

    def __init__(self, joints: int = 17, config: OneEuroConfig = OneEuroConfig(), backend: str = "numba") -> None:
        OneEuroFilter(joints, config, backend)  # validate the arguments once, up front
        self.joints = int(joints)
        self.config = config
        self.backend = backend
        self._filters: dict[int, OneEuroFilter] = {}

    @property
    def person_ids(self) -> tuple[int, ...]:
        """Ids of the persons currently being filtered."""
        return tuple(self._filters)

    def reset(self) -> None:
        """Forget every person."""
        self._filters.clear()

    def __call__(self, persons: dict[int, np.ndarray], t_ns: int) -> dict[int, np.ndarray]:
        """Filter every person's ``(joints, 3)`` skeleton of one frame taken at ``t_ns``.

        Returns a new dict with the same ids, each a new float32 ``(joints, 3)`` array.
        """
        for pid in [pid for pid in self._filters if pid not in persons]:
            del self._filters[pid]
        out: dict[int, np.ndarray] = {}
        for pid, skeleton in persons.items():
            filt = self._filters.get(pid)
            if filt is None:
                filt = self._filters[pid] = OneEuroFilter(self.joints, self.config, self.backend)
            out[pid] = filt(skeleton, t_ns)
        return out


def warmup(joints: int = 17) -> None:
    """Compile (or load from Numba's cache) the Numba kernel before the first real frame.

    Compiles both input types :class:`OneEuroFilter` passes (float32 and float64, C-contiguous)
    and runs every branch once on a throwaway state: first sample, update, missing joint and a
    repeated timestamp. About two seconds on a cold cache, a fraction of that when cached.
    """
    cfg = OneEuroConfig().as_tuple()
    for dtype in (np.float64, np.float32):
        state = new_state(joints)
        x, out = np.zeros((joints, 3), dtype=dtype), np.empty((joints, 3), dtype=np.float32)
        _one_euro_step_numba(x, 0.0, state, *cfg, out)
        x[0] = np.nan
        _one_euro_step_numba(x, 1.0 / 30.0, state, *cfg, out)
        _one_euro_step_numba(x, 1.0 / 30.0, state, *cfg, out)
