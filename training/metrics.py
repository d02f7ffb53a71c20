"""Pose-estimation evaluation metrics (pure numpy).

Conventions shared by every function in this module
---------------------------------------------------

* **Shapes.** Poses are arrays of shape ``(..., J, C)``: any number of leading
  axes (in this project ``(batch, time, joints, channels)``), then ``J`` joints,
  then ``C`` coordinates (``C == 3`` for the 3D metrics, ``C == 2`` for the 2D
  ones). ``pred`` and ``target`` must have identical shapes; anything else
  raises ``ValueError`` quoting the shapes received. Inputs are converted to
  float64 (lists, float32 arrays and CPU torch tensors are all accepted).
* **Units.** 3D inputs are in **metres** and every distance returned is in
  metres (velocities in metres per frame, accelerations in metres per
  frame^2 unless ``fps`` is given). Multiply by 1000 for the millimetres used
  in papers; :func:`summarize` does that for you. 2D functions work in
  whatever unit the inputs use (normally pixels).
* **Masks / weights.** ``mask`` is an optional array broadcastable to
  ``pred.shape[:-1]`` i.e. ``(..., J)``: boolean, or non-negative float
  weights. A reduced metric is then the weighted mean
  ``sum(w * e) / sum(w)``. Joints with weight 0 are *completely* ignored:
  their values never enter the arithmetic, so they may hold NaN/inf (e.g.
  unlabelled joints in the ground truth). If every weight in a reduction is
  zero the result is NaN.
* **NaN policy.** Without a mask nothing is skipped silently: a NaN anywhere in
  the data that a metric uses propagates to a NaN result (PCK-type metrics
  also return NaN rather than counting a NaN joint as a miss). To evaluate with
  missing ground-truth joints, pass ``mask=finite_joint_mask(target)`` (or the
  dataset's own visibility flags).
* **Reductions.** Error functions take ``axis``: ``None`` (default) averages
  over everything and returns a Python ``float``; otherwise ``axis`` is an int
  or tuple of ints indexing the *per-joint error array* of shape ``(..., J)``
  (the channel axis is already gone), and an ndarray is returned. For example
  with ``(B, T, J, 3)`` inputs, ``axis=(0, 1)`` gives a per-joint ``(J,)``
  table and ``axis=-1`` a per-frame ``(B, T)`` table. :func:`per_joint_error`
  returns the unreduced ``(..., J)`` distances.

Everything is vectorised over the leading axes; nothing runs at import time.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "finite_joint_mask",
    "per_joint_error",
    "mpjpe",
    "procrustes_align",
    "p_mpjpe",
    "n_mpjpe",
    "mpjve",
    "accel_error",
    "pck3d",
    "auc_pck3d",
    "body_size_2d",
    "pck2d",
    "mean_joint_distance_2d",
    "ordinal_depth_relations",
    "ordinal_depth_accuracy",
    "ordinal_depth_agreement",
    "summarize",
]

Axis = int | tuple[int, ...] | None

#: Default PCK threshold for 3D poses, metres (150 mm, the MPI-INF-3DHP convention).
PCK3D_THRESHOLD_M = 0.150
#: Default half-width of the "roughly equal depth" band for ordinal depth, metres.
ORDINAL_DEPTH_TOLERANCE_M = 0.05


# --------------------------------------------------------------------------- #
# validation / reduction helpers
# --------------------------------------------------------------------------- #


def _as_pose(x: ArrayLike, name: str, channels: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != channels or a.shape[-2] < 1:
        raise ValueError(
            f"{name} must have shape (..., J, {channels}) with J >= 1, got shape {a.shape}"
        )
    return a


def _as_pair(
    pred: ArrayLike, target: ArrayLike, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    p = _as_pose(pred, "pred", channels)
    t = _as_pose(target, "target", channels)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: pred {p.shape} vs target {t.shape}")
    return p, t


def _as_weights(mask: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """Broadcast ``mask`` to ``shape`` (= pose.shape[:-1]) as float64 weights."""
    if mask is None:
        return None
    m = np.asarray(mask)
    try:
        w = np.broadcast_to(m.astype(np.float64), shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {m.shape} does not broadcast to the per-joint shape {shape}"
        ) from None
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("mask weights must be finite and non-negative")
    return w


def _reduce(values: np.ndarray, weights: np.ndarray | None, axis: Axis) -> float | np.ndarray:
    """(Weighted) mean of ``values`` over ``axis``; weight-0 entries never enter the sum."""
    if weights is None:
        out = values.mean(axis=axis)
    else:
        w = np.broadcast_to(weights, values.shape)
        v = np.where(w > 0, values, 0.0)
        num = (v * w).sum(axis=axis)
        den = w.sum(axis=axis)
        out = np.divide(
            num, den, out=np.full(np.shape(num), np.nan), where=np.asarray(den) > 0
        )
    if axis is None:
        return float(out)
    return np.asarray(out)


def _check_nonneg_scalar(value: float, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return v


def finite_joint_mask(*poses: ArrayLike) -> np.ndarray:
    """Boolean ``(..., J)`` mask: True where a joint is finite in *all* given poses.

    Use it as ``mask=`` to drop missing (NaN) ground-truth joints explicitly,
    e.g. ``mpjpe(pred, target, mask=finite_joint_mask(target))``.
    """
    if not poses:
        raise ValueError("finite_joint_mask needs at least one pose array")
    masks = []
    for i, p in enumerate(poses):
        a = np.asarray(p, dtype=np.float64)
        if a.ndim < 2:
            raise ValueError(f"pose {i} must have shape (..., J, C), got shape {a.shape}")
        masks.append(np.isfinite(a).all(axis=-1))
    return np.logical_and.reduce(np.broadcast_arrays(*masks))


def _time_axis(ndim: int, time_axis: int) -> int:
    ax = time_axis + ndim if time_axis < 0 else time_axis
    if not 0 <= ax <= ndim - 3:
        raise ValueError(
            f"time_axis={time_axis} is not a leading axis of a {ndim}-d pose array "
            "(expected shape (..., T, J, C) with the time axis before J and C)"
        )
    return ax


# --------------------------------------------------------------------------- #
# MPJPE family
# --------------------------------------------------------------------------- #


def per_joint_error(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Euclidean distance per joint, shape ``(..., J)``, in the input unit (metres).

    ``e[..., j] = || pred[..., j, :] - target[..., j, :] ||_2``. This is the
    building block for per-joint / per-joint-group tables: average it over the
    axes you want (or use ``mpjpe(..., axis=...)`` which also handles masks).
    Works for any channel count C >= 1 (2D or 3D).
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] < 1:
        raise ValueError(f"pred must have shape (..., J, C), got shape {p.shape}")
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: pred {p.shape} vs target {t.shape}")
    return np.linalg.norm(p - t, axis=-1)


def mpjpe(
    pred: ArrayLike,
    target: ArrayLike,
    mask: ArrayLike | None = None,
    axis: Axis = None,
) -> float | np.ndarray:
    """Mean Per-Joint Position Error, metres.

    ``MPJPE = mean_{poses, j} || pred_j - target_j ||_2`` (weighted by ``mask``
    if given). It is the standard "protocol #1" 3D pose error: no alignment
    at all, so it measures global placement of every joint (callers normally
    pass root-relative poses). Shapes ``(..., J, 3)``; see the module docstring
    for ``mask``, ``axis`` and NaN handling.
    """
    p, t = _as_pair(pred, target, 3)
    return _reduce(per_joint_error(p, t), _as_weights(mask, p.shape[:-1]), axis)


def _similarity_fit(
    p: np.ndarray, t: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched weighted Umeyama fit. Returns (aligned, R, s, translation)."""
    lead, n_j, c = p.shape[:-2], p.shape[-2], p.shape[-1]
    if w is None:
        w = np.ones(lead + (n_j,))
    inc = (w > 0)[..., None]
    # Excluded joints are zeroed before any arithmetic so NaNs there cannot leak.
    pz = np.where(inc, p, 0.0)
    tz = np.where(inc, t, 0.0)
    wc = w[..., None]  # (..., J, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        wsum = wc.sum(axis=-2, keepdims=True)  # (..., 1, 1)
        mu_p = (wc * pz).sum(axis=-2, keepdims=True) / wsum  # (..., 1, C)
        mu_t = (wc * tz).sum(axis=-2, keepdims=True) / wsum
        x = np.where(inc, pz - mu_p, 0.0)
        y = np.where(inc, tz - mu_t, 0.0)
        h = np.swapaxes(wc * x, -1, -2) @ y  # (..., C, C) = X^T W Y
        var_p = (wc * x * x).sum(axis=(-2, -1))  # (...,)
    bad = ~(np.isfinite(h).all(axis=(-2, -1)) & np.isfinite(var_p))
    h = np.where(bad[..., None, None], np.eye(c), h)  # keep the SVD well-defined
    u, sv, vt = np.linalg.svd(h)
    # Proper rotation only: flip the axis of the smallest singular value if the
    # unconstrained optimum U V^T would be a reflection (det = -1).
    d = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    d = np.where(d == 0, 1.0, d)
    u[..., :, -1] *= d[..., None]
    sv[..., -1] *= d
    r = u @ vt  # (..., C, C), row-vector convention: aligned = s * x @ R + mu_t
    s = np.divide(sv.sum(axis=-1), var_p, out=np.zeros_like(var_p), where=var_p > 0)
    trans = mu_t - s[..., None, None] * (mu_p @ r)  # (..., 1, C)
    aligned = s[..., None, None] * (p @ r) + trans
    nan = np.nan
    aligned = np.where(bad[..., None, None], nan, aligned)
    r = np.where(bad[..., None, None], nan, r)
    s = np.where(bad, nan, s)
    trans = np.where(bad[..., None, None], nan, trans)[..., 0, :]
    return aligned, r, s, trans


def procrustes_align(
    pred: ArrayLike,
    target: ArrayLike,
    mask: ArrayLike | None = None,
    return_transform: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Align each predicted pose to its target with the optimal similarity transform.

    For every pose independently (all leading axes are batch axes) find a
    rotation R (det R = +1), a scale s > 0 and a translation t minimising
    ``sum_j w_j || s * pred_j @ R + t - target_j ||^2`` (row vectors), and
    return ``s * pred @ R + t`` with shape ``(..., J, 3)``.

    Closed form (Umeyama 1991 / Kabsch): centre both point sets (weighted
    centroids mu_p, mu_t), form ``H = X^T W Y`` (3x3), take its SVD
    ``H = U S V^T``; then ``R = U D V^T`` with ``D = diag(1, 1, sign det(U V^T))``,
    ``s = trace(D S) / sum_j w_j ||x_j||^2`` and ``t = mu_t - s * mu_p @ R``.
    The ``D`` correction matters: without it a mirrored (wrong-handed)
    prediction could be "aligned" by a reflection and score perfectly.
    Removing rotation, scale and translation isolates articulation error
    from global orientation/size mistakes, which is why P-MPJPE is reported
    ("protocol #2").

    ``mask`` weights the fit; weight-0 joints do not influence it (they may be
    NaN) but are still transformed in the output. Poses whose data is
    non-finite (or whose weights are all zero) come back as NaN. A pose whose
    prediction has all joints at one point gets s = 0 (collapses to mu_t).
    With ``return_transform=True`` also returns ``R (..., 3, 3)``,
    ``s (...,)`` and ``t (..., 3)``.
    """
    p, t = _as_pair(pred, target, 3)
    aligned, r, s, trans = _similarity_fit(p, t, _as_weights(mask, p.shape[:-1]))
    if return_transform:
        return aligned, r, s, trans
    return aligned


def p_mpjpe(
    pred: ArrayLike,
    target: ArrayLike,
    mask: ArrayLike | None = None,
    axis: Axis = None,
) -> float | np.ndarray:
    """Procrustes-aligned MPJPE, metres: ``mpjpe(procrustes_align(pred, target), target)``.

    Invariant to any rotation, uniform scaling and translation of each
    predicted pose (but not to reflection). ``mask`` is used both for the
    alignment fit and for the average.
    """
    p, t = _as_pair(pred, target, 3)
    w = _as_weights(mask, p.shape[:-1])
    aligned = _similarity_fit(p, t, w)[0]
    return _reduce(per_joint_error(aligned, t), w, axis)


def n_mpjpe(
    pred: ArrayLike,
    target: ArrayLike,
    mask: ArrayLike | None = None,
    axis: Axis = None,
) -> float | np.ndarray:
    """Scale-normalised MPJPE, metres: MPJPE after the optimal per-pose scale.

    For each pose, ``s = <pred, target> / <pred, pred>`` (sums over joints and
    coordinates, weighted by ``mask``) is the least-squares minimiser of
    ``sum_j w_j || s * pred_j - target_j ||^2``; the metric is
    ``mpjpe(s * pred, target)``. Only scale is fitted - no translation or
    rotation - so **poses must be root-relative** (e.g. pelvis at the origin)
    for this to make sense: the scaling is about the coordinate origin. It
    removes the monocular scale ambiguity while still penalising orientation
    errors. A pose whose prediction is all zeros gets s = 0.
    """
    p, t = _as_pair(pred, target, 3)
    w = _as_weights(mask, p.shape[:-1])
    wj = np.ones(p.shape[:-1]) if w is None else w
    inc = (wj > 0)[..., None]
    pz = np.where(inc, p, 0.0)
    tz = np.where(inc, t, 0.0)
    wc = wj[..., None]
    num = (wc * pz * tz).sum(axis=(-2, -1))
    den = (wc * pz * pz).sum(axis=(-2, -1))
    s = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    s = np.where(np.isfinite(den), s, np.nan)
    return _reduce(per_joint_error(s[..., None, None] * p, t), w, axis)


# --------------------------------------------------------------------------- #
# temporal metrics
# --------------------------------------------------------------------------- #


def _difference_error(
    pred: ArrayLike,
    target: ArrayLike,
    order: int,
    time_axis: int,
    fps: float | None,
    mask: ArrayLike | None,
    axis: Axis,
    name: str,
) -> float | np.ndarray:
    p, t = _as_pair(pred, target, 3)
    ax = _time_axis(p.ndim, time_axis)
    n_t = p.shape[ax]
    if n_t < order + 1:
        raise ValueError(
            f"{name} needs at least {order + 1} frames along time_axis={time_axis}, "
            f"got shape {p.shape}"
        )
    w = _as_weights(mask, p.shape[:-1])
    if w is not None:
        # Any masked frame contributing to a finite difference masks the difference.
        frames = np.where((w > 0)[..., None], p - t, 0.0)
    else:
        frames = p - t
    # (pred[t] - pred[t-1]) - (target[t] - target[t-1]) == diff(pred - target)
    err = np.linalg.norm(np.diff(frames, n=order, axis=ax), axis=-1)
    if fps is not None:
        f = float(fps)
        if not np.isfinite(f) or f <= 0:
            raise ValueError(f"fps must be a finite positive number, got {fps!r}")
        err = err * f**order
    dw = None
    if w is not None:

        def sl(k: int) -> tuple[slice, ...]:
            return (slice(None),) * ax + (slice(k, n_t - order + k),)

        dw = w[sl(0)]
        for k in range(1, order + 1):
            dw = dw * w[sl(k)]
    return _reduce(err, dw, axis)


def mpjve(
    pred: ArrayLike,
    target: ArrayLike,
    time_axis: int = -3,
    fps: float | None = None,
    mask: ArrayLike | None = None,
    axis: Axis = None,
) -> float | np.ndarray:
    """Mean Per-Joint Velocity Error: metres **per frame** (or per second with ``fps``).

    ``MPJVE = mean_{t >= 1, j} || (pred[t]-pred[t-1]) - (target[t]-target[t-1]) ||_2``
    over poses of shape ``(..., T, J, 3)`` with time on ``time_axis`` (default
    -3). It measures temporal consistency (jitter) independently of static
    offsets: a constant error gives MPJVE 0. Following the usual convention
    (VideoPose3D and most later work report "MPJVE" in mm per frame) the
    default is per frame; pass ``fps`` to get metres per second (the value is
    multiplied by ``fps``). Needs T >= 2. The result has T-1 samples along
    the time axis, so an ``axis`` selection refers to a ``(..., T-1, J)``
    array. With ``mask``, a velocity sample's weight is the product of the
    weights of the two frames it uses (for 0/1 masks: both must be valid).
    """
    return _difference_error(pred, target, 1, time_axis, fps, mask, axis, "mpjve")


def accel_error(
    pred: ArrayLike,
    target: ArrayLike,
    time_axis: int = -3,
    fps: float | None = None,
    mask: ArrayLike | None = None,
    axis: Axis = None,
) -> float | np.ndarray:
    """Mean per-joint acceleration error: metres **per frame^2** (per s^2 with ``fps``).

    ``ACCEL = mean_{t, j} || a_pred[t] - a_target[t] ||_2`` with the second
    difference ``a[t] = x[t+1] - 2 x[t] + x[t-1]``. The standard smoothness
    metric (e.g. HMMR / VIBE report it in mm/frame^2): it is zero for errors
    that are constant *or drift linearly* in time and large for jitter. With
    ``fps`` the value is multiplied by ``fps**2``. Needs T >= 3; an ``axis``
    selection refers to the ``(..., T-2, J)`` array. With ``mask`` a sample's
    weight is the product of the weights of its three frames.
    """
    return _difference_error(pred, target, 2, time_axis, fps, mask, axis, "accel_error")


# --------------------------------------------------------------------------- #
# PCK family
# --------------------------------------------------------------------------- #


def _hits(err: np.ndarray, limit: float | np.ndarray) -> np.ndarray:
    """1.0 where err <= limit, 0.0 otherwise, NaN where either is NaN."""
    return np.where(np.isnan(err) | np.isnan(limit), np.nan, (err <= limit).astype(np.float64))


def pck3d(
    pred: ArrayLike,
    target: ArrayLike,
    threshold: float = PCK3D_THRESHOLD_M,
    mask: ArrayLike | None = None,
    axis: Axis = None,
) -> float | np.ndarray:
    """3D Percentage of Correct Keypoints, as a fraction in [0, 1].

    ``PCK = mean_{poses, j} [ || pred_j - target_j ||_2 <= threshold ]``; the
    threshold is in metres (default 0.150 m = 150 mm, the MPI-INF-3DHP
    convention). A joint exactly at the threshold counts as correct.
    Complements MPJPE by being robust to a few wildly wrong joints.
    A NaN distance gives a NaN result (it is not counted as a miss).
    """
    p, t = _as_pair(pred, target, 3)
    thr = _check_nonneg_scalar(threshold, "threshold")
    return _reduce(_hits(per_joint_error(p, t), thr), _as_weights(mask, p.shape[:-1]), axis)


def auc_pck3d(
    pred: ArrayLike,
    target: ArrayLike,
    thresholds: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    method: Literal["mean", "trapezoid"] = "mean",
) -> float:
    """Area under the 3D PCK curve, normalised to [0, 1].

    ``thresholds`` (metres, non-decreasing) default to
    ``np.linspace(0, 0.150, 31)`` i.e. 0, 5, ..., 150 mm. With
    ``method="mean"`` (default) the AUC is ``mean_k PCK(thresholds[k])``,
    which is how the MPI-INF-3DHP AUC is defined and reported in the
    literature (a Riemann sum of the curve, normalised by the number of
    thresholds). ``method="trapezoid"`` integrates the curve with the
    trapezoid rule and divides by ``thresholds[-1] - thresholds[0]`` (needs
    at least two distinct thresholds). Either is 1 for a perfect prediction
    and 0 when every error exceeds the largest threshold. It summarises
    accuracy over a range of tolerances instead of one arbitrary cut-off.

    Computed by sorting the errors once (O(N log N)), so no
    ``N x len(thresholds)`` temporary is built. NaN errors -> NaN.
    """
    p, t = _as_pair(pred, target, 3)
    if thresholds is None:
        thr = np.linspace(0.0, PCK3D_THRESHOLD_M, 31)
    else:
        thr = np.asarray(thresholds, dtype=np.float64)
    if thr.ndim != 1 or thr.size < 1 or not np.all(np.isfinite(thr)) or np.any(thr < 0):
        raise ValueError(
            f"thresholds must be a non-empty 1-D array of finite non-negative values, "
            f"got shape {thr.shape}"
        )
    if np.any(np.diff(thr) < 0):
        raise ValueError("thresholds must be non-decreasing")
    if method not in ("mean", "trapezoid"):
        raise ValueError(f"method must be 'mean' or 'trapezoid', got {method!r}")
    if method == "trapezoid" and not thr[-1] > thr[0]:
        raise ValueError("trapezoid AUC needs thresholds spanning a non-zero range")

    err = per_joint_error(p, t).ravel()
    w = _as_weights(mask, p.shape[:-1])
    if w is not None:
        wf = w.ravel()
        keep = wf > 0
        err, wf = err[keep], wf[keep]
    else:
        wf = np.ones_like(err)
    if err.size == 0 or np.isnan(err).any():
        return float("nan")
    order = np.argsort(err, kind="stable")
    cum_w = np.concatenate(([0.0], np.cumsum(wf[order])))
    idx = np.searchsorted(err[order], thr, side="right")  # count of errors <= thr
    pck = cum_w[idx] / cum_w[-1]
    if method == "mean":
        return float(pck.mean())
    area = float(np.sum(0.5 * (pck[1:] + pck[:-1]) * np.diff(thr)))
    return area / float(thr[-1] - thr[0])


def body_size_2d(
    pose2d: ArrayLike,
    kind: Literal["bbox", "pair"] = "bbox",
    joints: Sequence[int] | None = None,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    """Per-pose 2D size used to normalise PCK thresholds, shape ``(...)``.

    * ``kind="bbox"`` (default): diagonal of the tight axis-aligned box around
      the joints (optionally only the indices in ``joints``):
      ``sqrt((max x - min x)^2 + (max y - min y)^2)``. Joints with mask weight
      0 are ignored; without a mask a NaN joint gives NaN.
    * ``kind="pair"``: distance between the two joints ``joints = (a, b)``.
      This covers the classic normalisers: torso diameter (left shoulder to
      right hip, "PCK@0.2" of Yang & Ramanan) or head segment length (PCKh).

    Normalising by body size makes a 2D PCK threshold comparable between
    people near and far from the camera. Input shape ``(..., J, 2)``, same
    unit as the input (pixels).
    """
    p = _as_pose(pose2d, "pose2d", 2)
    n_j = p.shape[-2]
    if kind == "pair":
        if joints is None or len(joints) != 2:
            raise ValueError("kind='pair' needs joints=(a, b)")
        a, b = (int(j) for j in joints)
        if not (-n_j <= a < n_j and -n_j <= b < n_j):
            raise ValueError(f"joint indices {joints} out of range for shape {p.shape}")
        return np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1)
    if kind != "bbox":
        raise ValueError(f"kind must be 'bbox' or 'pair', got {kind!r}")
    w = _as_weights(mask, p.shape[:-1])
    inc = np.ones(p.shape[:-1], dtype=bool) if w is None else (w > 0)
    if joints is not None:
        sel = np.zeros(n_j, dtype=bool)
        try:
            sel[np.asarray(joints, dtype=np.intp)] = True
        except IndexError:
            raise ValueError(f"joint indices {joints} out of range for shape {p.shape}") from None
        inc = inc & sel
    inc3 = inc[..., None]
    lo = np.where(inc3, p, np.inf).min(axis=-2)
    hi = np.where(inc3, p, -np.inf).max(axis=-2)
    with np.errstate(invalid="ignore"):
        size = np.linalg.norm(hi - lo, axis=-1)
    return np.where(inc.any(axis=-1), size, np.nan)


def pck2d(
    pred2d: ArrayLike,
    target2d: ArrayLike,
    threshold: float,
    normalizer: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    axis: Axis = None,
) -> float | np.ndarray:
    """2D PCK, as a fraction in [0, 1].

    A joint is correct when ``|| pred_j - target_j ||_2 <= limit`` where
    ``limit = threshold`` (absolute, input units e.g. pixels) if
    ``normalizer`` is None, else ``limit = threshold * normalizer`` with
    ``normalizer`` a per-pose size broadcastable to ``pred2d.shape[:-2]``
    (e.g. ``body_size_2d(target2d)``, so ``threshold=0.05`` is "within 5% of
    the bbox diagonal"). Shapes ``(..., J, 2)``. NaN distances or
    normalisers give NaN.
    """
    p, t = _as_pair(pred2d, target2d, 2)
    thr = _check_nonneg_scalar(threshold, "threshold")
    err = per_joint_error(p, t)
    if normalizer is None:
        limit: float | np.ndarray = thr
    else:
        norm = np.asarray(normalizer, dtype=np.float64)
        try:
            norm = np.broadcast_to(norm, p.shape[:-2])
        except ValueError:
            raise ValueError(
                f"normalizer of shape {norm.shape} does not broadcast to the per-pose "
                f"shape {p.shape[:-2]} of poses {p.shape}"
            ) from None
        if np.any(norm < 0):
            raise ValueError("normalizer must be non-negative")
        limit = thr * norm[..., None]
    return _reduce(_hits(err, limit), _as_weights(mask, p.shape[:-1]), axis)


def mean_joint_distance_2d(
    pred2d: ArrayLike,
    target2d: ArrayLike,
    mask: ArrayLike | None = None,
    axis: Axis = None,
) -> float | np.ndarray:
    """Mean 2D Euclidean joint distance (input units, e.g. pixels).

    ``mean_{poses, j} || pred_j - target_j ||_2`` on ``(..., J, 2)`` arrays:
    the 2D analogue of MPJPE, used to judge the keypoint detector that feeds
    the lifter.
    """
    p, t = _as_pair(pred2d, target2d, 2)
    return _reduce(per_joint_error(p, t), _as_weights(mask, p.shape[:-1]), axis)


# --------------------------------------------------------------------------- #
# ordinal depth
# --------------------------------------------------------------------------- #


def ordinal_depth_relations(
    pose: ArrayLike,
    tolerance: float = ORDINAL_DEPTH_TOLERANCE_M,
    depth_axis: int = 2,
) -> np.ndarray:
    """Pairwise depth relations, shape ``(..., J*(J-1)/2)``, pairs in ``np.triu_indices(J, 1)`` order.

    For each pair i < j with depth difference ``d = z_i - z_j``:
    ``-1`` = joint i is closer than j (``d <= -tolerance``), ``+1`` = i is
    farther (``d >= tolerance``), ``0`` = roughly equal (``|d| < tolerance``).
    Returned as float so NaN depths give NaN relations. Input ``(..., J, 3)``
    in metres; depth is coordinate ``depth_axis`` (camera z by default,
    positive away from the camera).
    """
    p = _as_pose(pose, "pose", 3)
    tol = _check_nonneg_scalar(tolerance, "tolerance")
    if not -3 <= depth_axis < 3:
        raise ValueError(f"depth_axis must index one of 3 coordinates, got {depth_axis}")
    z = p[..., depth_axis]
    i, j = np.triu_indices(z.shape[-1], 1)
    d = z[..., i] - z[..., j]
    rel = np.where(np.abs(d) < tol, 0.0, np.sign(d))
    return np.where(np.isnan(d), np.nan, rel)


def ordinal_depth_accuracy(
    pred: ArrayLike,
    target: ArrayLike,
    tolerance: float = ORDINAL_DEPTH_TOLERANCE_M,
    depth_axis: int = 2,
    mask: ArrayLike | None = None,
) -> float:
    """Fraction of joint pairs whose front/behind relation is predicted correctly.

    For every pose and every pair i < j, the target and the prediction are
    each labelled closer / farther / roughly-equal by
    :func:`ordinal_depth_relations` (equal when ``|z_i - z_j| < tolerance``);
    accuracy = fraction of pairs (over all poses) whose labels agree. Depth
    order is exactly what a monocular lifter finds hardest (the classic
    forward/backward limb flip), and it is invisible to 2D metrics; this score
    isolates it independently of absolute depth or scale errors.

    ``tolerance`` defaults to 0.05 m (5 cm): depth differences below that are
    within a limb's own thickness and below the typical 3D error of a good
    lifter (~40-50 mm MPJPE), so demanding a strict order there would score
    noise. It is applied to both poses, hence a prediction must also put
    roughly-level joints within 5 cm of each other. Set ``tolerance=0`` for a
    strict order. Metres in; the result is a fraction in [0, 1] (1 for
    identical poses; needs J >= 2). With ``mask`` a pair's weight is
    ``w_i * w_j``. NaN depths in included joints -> NaN.
    """
    p, t = _as_pair(pred, target, 3)
    if p.shape[-2] < 2:
        raise ValueError(f"ordinal depth needs at least 2 joints, got shape {p.shape}")
    w = _as_weights(mask, p.shape[:-1])
    if w is not None:
        inc = (w > 0)[..., None]
        p = np.where(inc, p, 0.0)
        t = np.where(inc, t, 0.0)
    tol = _check_nonneg_scalar(tolerance, "tolerance")
    if not -3 <= depth_axis < 3:
        raise ValueError(f"depth_axis must index one of 3 coordinates, got {depth_axis}")
    zp, zt = p[..., depth_axis], t[..., depth_axis]
    if not (np.isfinite(zp).all() and np.isfinite(zt).all()):
        return float("nan")
    i, j = np.triu_indices(p.shape[-2], 1)

    def labels(z: np.ndarray) -> np.ndarray:  # int8 version of ordinal_depth_relations
        d = z[..., i] - z[..., j]
        return (d >= tol).view(np.int8) - (d <= -tol).view(np.int8)

    agree = labels(zp) == labels(zt)
    if w is None:
        return float(agree.mean())
    return float(_reduce(agree.astype(np.float64), w[..., i] * w[..., j], None))


def ordinal_depth_agreement(
    pred: ArrayLike,
    target: ArrayLike,
    tolerance: float = ORDINAL_DEPTH_TOLERANCE_M,
    depth_axis: int = 2,
) -> np.ndarray:
    """Per-pose ordinal-depth accuracy, shape ``pred.shape[:-2]``.

    The fraction of joint pairs of each pose whose closer / farther / roughly-equal label
    (:func:`ordinal_depth_relations`, same ``tolerance``) agrees between prediction and
    target; its mean over poses is :func:`ordinal_depth_accuracy`. Per pose, so evaluations
    can average it per action like the other per-frame errors. NaN depths -> NaN for that pose.
    """
    p, t = _as_pair(pred, target, 3)
    if p.shape[-2] < 2:
        raise ValueError(f"ordinal depth needs at least 2 joints, got shape {p.shape}")
    rp = ordinal_depth_relations(p, tolerance, depth_axis)
    rt = ordinal_depth_relations(t, tolerance, depth_axis)
    agree = (rp == rt).astype(np.float64)
    bad = np.isnan(rp).any(axis=-1) | np.isnan(rt).any(axis=-1)
    return np.where(bad, np.nan, agree.mean(axis=-1))


# --------------------------------------------------------------------------- #
# summary
# --------------------------------------------------------------------------- #


def summarize(
    pred: ArrayLike,
    target: ArrayLike,
    mask: ArrayLike | None = None,
) -> dict[str, float]:
    """Standard metric set for one sequence or a batch of sequences.

    ``pred`` / ``target``: ``(T, J, 3)`` or ``(B, T, J, 3)`` in metres
    (root-relative for ``n_mpjpe_mm`` to be meaningful). Returns plain
    floats: ``mpjpe_mm``, ``p_mpjpe_mm``, ``n_mpjpe_mm`` (millimetres),
    ``mpjve_mm`` (mm per frame), ``accel_mm`` (mm per frame^2), ``pck3d_150``
    (fraction of joints within 150 mm) and ``auc_pck3d`` (fraction, default
    0..150 mm thresholds). Temporal keys are NaN when there are too few
    frames (T < 2 for velocity, T < 3 for acceleration) instead of raising,
    so short clips can still be tabulated. ``mask`` as in the other functions.
    """
    p, t = _as_pair(pred, target, 3)
    if p.ndim not in (3, 4):
        raise ValueError(f"summarize expects (T, J, 3) or (B, T, J, 3), got shape {p.shape}")
    n_t = p.shape[-3]
    mm = 1000.0
    return {
        "mpjpe_mm": mm * float(mpjpe(p, t, mask)),
        "p_mpjpe_mm": mm * float(p_mpjpe(p, t, mask)),
        "n_mpjpe_mm": mm * float(n_mpjpe(p, t, mask)),
        "mpjve_mm": mm * float(mpjve(p, t, mask=mask)) if n_t >= 2 else float("nan"),
        "accel_mm": mm * float(accel_error(p, t, mask=mask)) if n_t >= 3 else float("nan"),
        "pck3d_150": float(pck3d(p, t, PCK3D_THRESHOLD_M, mask)),
        "auc_pck3d": auc_pck3d(p, t, mask=mask),
    }
