"""Multi-view triangulation of 2D keypoints into world points (linear DLT, weighted, batched).

Frames: inputs are pixels of each camera (u right, v down); outputs are world-frame points in
metres, in whatever world frame the cameras' extrinsics use (``X_cam = R X_world + t``).

Method. Each view v first undistorts its pixel to normalised coordinates ``(x, y)``
(``Camera.undistort_points``), so lens distortion is handled exactly and the linear system only
involves the extrinsics ``P = [R | t]`` (3x4). A world point ``X`` (homogeneous, 4-vector) seen
at ``(x, y)`` satisfies ``x (P_3 X) = P_1 X`` and ``y (P_3 X) = P_2 X`` (``P_i`` the rows of P),
i.e. two linear equations per view::

    w_v (x P_3 - P_1) X = 0
    w_v (y P_3 - P_2) X = 0

with ``w_v`` the view's confidence. Stacking all views gives ``A X = 0`` (A is 2V x 4); the
least-squares solution with ``|X| = 1`` is the right singular vector of A with the smallest
singular value. Working in normalised coordinates (values ~1) rather than pixels (~1000) keeps A
well conditioned without Hartley normalisation. A view whose pixel is NaN or whose confidence is
zero / NaN / negative gets weight 0, i.e. its rows vanish; points with fewer than
``min_views`` (at least 2) usable views are NaN. All points are solved at once with one batched
``numpy.linalg.svd`` over the stacked (..., 2V, 4) matrices.

Shapes: ``points2d`` is (V, ..., 2) for V views and any point axes (frames, joints, ...),
``confidence`` is (V, ...), the result is (..., 3).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from engines.camera import Camera

__all__ = ["triangulate", "triangulate_robust", "reprojection_error"]


def _check_views(points2d: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    p = np.asarray(points2d, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != 2:
        raise ValueError(f"points2d must have shape (views, ..., 2), got {p.shape}.")
    if len(cameras) != p.shape[0]:
        raise ValueError(
            f"points2d has {p.shape[0]} views (shape {p.shape}) but {len(cameras)} cameras were given."
        )
    return p


def triangulate(
    points2d: np.ndarray,
    cameras: Sequence[Camera],
    confidence: np.ndarray | None = None,
    min_views: int = 2,
) -> np.ndarray:
    """Triangulate pixels (V, ..., 2) seen by ``cameras`` (V) into world points (..., 3), metres.

    ``confidence`` (V, ...) weights each view's two DLT equations (default 1 everywhere); views
    with a NaN pixel or a confidence that is not > 0 are ignored for that point. Points seen by
    fewer than ``min_views`` usable views come back as NaN, as do degenerate configurations
    (e.g. all rays parallel, giving a point at infinity). See the module docstring for the maths.
    """
    p = _check_views(points2d, cameras)
    if min_views < 2:
        raise ValueError(f"min_views must be at least 2 (one view fixes only a ray), got {min_views}.")
    V, pt_shape = p.shape[0], p.shape[1:-1]
    if confidence is None:
        w = np.ones((V,) + pt_shape)
    else:
        w = np.asarray(confidence, dtype=np.float64)
        if w.shape != (V,) + pt_shape:
            raise ValueError(
                f"confidence must have shape {(V,) + pt_shape} to match points2d {p.shape}, "
                f"got {w.shape}."
            )

    xy = np.stack([cam.undistort_points(p[v]) for v, cam in enumerate(cameras)])  # (V, ..., 2)
    usable = np.isfinite(xy).all(axis=-1) & np.isfinite(w) & (w > 0)  # (V, ...)
    w = np.where(usable, w, 0.0)
    xy = np.where(usable[..., None], xy, 0.0)
    n_usable = usable.sum(axis=0)  # (...)

    P = np.stack([cam.extrinsics for cam in cameras])  # (V, 3, 4)
    Pk = P.reshape((V,) + (1,) * len(pt_shape) + (3, 4))
    rows_x = xy[..., 0, None] * Pk[..., 2, :] - Pk[..., 0, :]  # (V, ..., 4)
    rows_y = xy[..., 1, None] * Pk[..., 2, :] - Pk[..., 1, :]
    A = np.stack([rows_x, rows_y], axis=1) * w[:, None, ..., None]  # (V, 2, ..., 4)
    A = np.moveaxis(A.reshape((2 * V,) + pt_shape + (4,)), 0, -2)  # (..., 2V, 4)

    _, _, vh = np.linalg.svd(A)
    X = vh[..., -1, :]  # (..., 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = X[..., :3] / X[..., 3:4]
    out[(n_usable < min_views) | ~np.isfinite(out).all(axis=-1)] = np.nan
    return out


def reprojection_error(
    points3d: np.ndarray, points2d: np.ndarray, cameras: Sequence[Camera]
) -> np.ndarray:
    """Pixel distance (V, ...) between each camera's projection of ``points3d`` (..., 3, world,
    metres) and the observed ``points2d`` (V, ..., 2); NaN where either side is missing."""
    p = _check_views(points2d, cameras)
    X = np.asarray(points3d, dtype=np.float64)
    if X.shape != p.shape[1:-1] + (3,):
        raise ValueError(
            f"points3d must have shape {p.shape[1:-1] + (3,)} to match points2d {p.shape}, "
            f"got {X.shape}."
        )
    proj = np.stack([cam.project(X) for cam in cameras])
    return np.linalg.norm(proj - p, axis=-1)


def triangulate_robust(
    points2d: np.ndarray,
    cameras: Sequence[Camera],
    confidence: np.ndarray | None = None,
    max_error_px: float = 30.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`triangulate`, but one view that disagrees (a left/right swap, an outlier, a
    limb hidden behind the body) is left out: each point is triangulated from all views and from
    every set of all views but one, and the set whose worst reprojection error is lowest wins
    (all views whenever they stay within ``max_error_px``). Points whose chosen set still
    reprojects worse than ``max_error_px`` in one of its views come back NaN.

    Returns ``(points (..., 3), chosen set (...): 0 = all views, k + 1 = all but view k,
    worst reprojection of the chosen set (...) in pixels)``.
    """
    p = _check_views(points2d, cameras)
    V = p.shape[0]
    conf = np.ones(p.shape[:-1]) if confidence is None else np.asarray(confidence, dtype=np.float64)
    subsets = [list(range(V))] + ([[k for k in range(V) if k != v] for v in range(V)] if V > 2 else [])
    cands, worst = [], []
    for sub in subsets:
        X = triangulate(p[sub], [cameras[k] for k in sub], confidence=conf[sub])
        e = reprojection_error(X, p[sub], [cameras[k] for k in sub])
        cands.append(X)
        with np.errstate(invalid="ignore"):
            worst.append(np.where(np.isfinite(e).any(0), np.nanmax(np.where(np.isfinite(e), e, -1.0), axis=0), np.inf))
    cand_arr, worst_arr = np.stack(cands), np.stack(worst)  # (S, ..., 3), (S, ...)
    worst_arr[~np.isfinite(cand_arr).all(-1)] = np.inf
    ranked = worst_arr.copy()
    ranked[0] = np.where(ranked[0] <= max_error_px, -1.0, ranked[0])  # every view unless dropping one clearly helps
    pick = ranked.argmin(axis=0)
    X = np.take_along_axis(cand_arr, pick[None, ..., None], axis=0)[0]
    chosen = np.take_along_axis(worst_arr, pick[None], axis=0)[0]
    X[~(chosen <= max_error_px)] = np.nan
    return X, pick, chosen
