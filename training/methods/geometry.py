"""Differentiable geometry shared by the methods that learn without 3D labels (torch).

Frames and units follow ``engines.camera``: camera frame x right, y down, z forward, metres;
screen coordinates = pixels rescaled so the longer image side spans [-1, 1]. Lifter outputs
(``engines.models``) put the root at the depth the model assumes for a
``ASSUMED_FOV_DEG`` camera; :func:`true_camera_frame` moves it to a known camera's depth, the
same correction ``training evaluate`` applies.

Shapes: poses (..., J, 3), 2D (..., J, 2) or keypoints (..., J, 3) = (u, v, confidence); the
leading axes are whatever the caller uses, e.g. (batch, views, frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engines.camera import Camera, CameraBatch
from engines.models import ASSUMED_FOCAL, REFERENCE_BODY_RMS_M
from engines.skeleton import CANONICAL

__all__ = [
    "Rig",
    "facing_sine",
    "normalise_2d",
    "project_assumed",
    "reprojection_error",
    "rotate_about_y",
    "size_prior",
    "triangulate_rig",
    "true_camera_frame",
]

_THORAX, _NOSE = CANONICAL.index("thorax"), CANONICAL.index("neck_nose")
_LSH, _RSH = CANONICAL.index("left_shoulder"), CANONICAL.index("right_shoulder")


@dataclass(frozen=True)
class Rig:
    """Cameras as torch tensors with leading axes (..., V): R (..., V, 3, 3) world -> camera,
    t (..., V, 3) metres, f/c (..., V, 2) pixels, size (..., V, 2) pixels (the images the 2D
    came from), dist (..., V, 5) OpenCV order."""

    R: torch.Tensor
    t: torch.Tensor
    f: torch.Tensor
    c: torch.Tensor
    size: torch.Tensor
    dist: torch.Tensor

    @classmethod
    def from_batch(cls, cams: CameraBatch, views: int) -> Rig:
        """A (B*V)-camera batch, rig after rig, as a (B, V) rig."""
        def arr(a: np.ndarray) -> torch.Tensor:
            a = torch.as_tensor(np.asarray(a, dtype=np.float32))
            return a.view(-1, views, *a.shape[1:])

        return cls(arr(cams.R), arr(cams.t), arr(cams.f), arr(cams.c), arr(cams.size), arr(cams.dist))

    @classmethod
    def from_cameras(cls, cameras: list[Camera], sizes: np.ndarray | None = None) -> Rig:
        """A (V,) rig from calibrated cameras; ``sizes`` (V, 2) overrides the image sizes
        (the videos the detector read, when they differ from the calibrated size)."""
        size = np.array([c.size for c in cameras], np.float32) if sizes is None else np.asarray(sizes, np.float32)

        def t(a) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float32))

        return cls(t([c.R for c in cameras]), t([c.t for c in cameras]), t([[c.fx, c.fy] for c in cameras]),
                   t([[c.cx, c.cy] for c in cameras]), t(size), t([c.dist for c in cameras]))

    def cameras(self, index: int = 0) -> list[Camera]:
        """Rig ``index`` of a (B, V) rig (or the only one of a (V,) rig) as ``Camera`` objects whose
        image sizes are those the 2D came from, so ``(screen * longer + size) / 2`` are their pixels."""
        pick = (lambda a: a[index]) if self.R.dim() == 4 else (lambda a: a)
        R, t, f, c, size, dist = (pick(getattr(self, k)).detach().cpu().double().numpy()
                                  for k in ("R", "t", "f", "c", "size", "dist"))
        return [Camera(f"view{v}", int(round(size[v, 0])), int(round(size[v, 1])), f[v, 0], f[v, 1], c[v, 0], c[v, 1],
                       R[v], t[v], dist[v]) for v in range(len(R))]

    def expand(self, batch: int) -> Rig:
        """The same (V,) rig for every sample: (batch, V)."""
        return Rig(*(getattr(self, k).unsqueeze(0).expand(batch, *getattr(self, k).shape)
                     for k in ("R", "t", "f", "c", "size", "dist")))

    @property
    def depth_scale(self) -> torch.Tensor:
        """(..., V): true depth x this = the depth the lifter predicts (``synth.assumed_depth_scale``)."""
        f_assumed = 0.5 * self.size.max(dim=-1).values * ASSUMED_FOCAL
        return f_assumed / self.f[..., 0]

    def to_world(self, cam: torch.Tensor) -> torch.Tensor:
        """Camera-frame points (..., V, N, J, 3) of each view -> world (..., V, N, J, 3)."""
        # row vectors: (x - t) @ R = R^T (x - t)
        return (cam - self.t[..., None, None, :]) @ self.R[..., None, :, :]

    def from_world(self, world: torch.Tensor) -> torch.Tensor:
        """World points (..., N, J, 3) -> every view's camera frame (..., V, N, J, 3)."""
        return world.unsqueeze(-4) @ self.R.transpose(-1, -2)[..., None, :, :] + self.t[..., None, None, :]

    def project_screen(self, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Camera-frame points (..., V, N, J, 3) -> screen (..., V, N, J, 2) with lens distortion,
        and a mask of points in front of the camera."""
        z = cam[..., 2]
        front = z > 0.05
        xy = cam[..., :2] / torch.where(front, z, torch.ones_like(z)).unsqueeze(-1)
        d = self.dist[..., None, None, :]
        k1, k2, p1, p2, k3 = (d[..., i] for i in range(5))
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        f, c, size = (a[..., None, None, :] for a in (self.f, self.c, self.size))
        px = torch.stack([xd, yd], dim=-1) * f + c
        longer = size.max(dim=-1, keepdim=True).values
        return (2 * px - size) / longer, front


def _undistort(xd: torch.Tensor, dist: torch.Tensor, iterations: int = 6) -> torch.Tensor:
    """Distorted normalised coordinates (..., 2) -> undistorted, OpenCV's model ``dist`` (..., 5),
    by fixed-point iteration (as ``cv2.undistortPoints`` does)."""
    if not bool(dist.abs().max() > 0):
        return xd
    k1, k2, p1, p2, k3 = (dist[..., i] for i in range(5))
    x, y = xd[..., 0], xd[..., 1]
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        x = (xd[..., 0] - (2 * p1 * x * y + p2 * (r2 + 2 * x * x))) / radial
        y = (xd[..., 1] - (p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)) / radial
    return torch.stack([x, y], dim=-1)


@torch.no_grad()
def triangulate_rig(keypoints: torch.Tensor, rig: Rig, max_error: float = 0.025) -> torch.Tensor:
    """World points (B, N, J, 3) where the views' rays meet: keypoints (B, V, N, J, 3) in screen
    coordinates with confidence, seen by the (B, V) ``rig``; batched over rigs (torch).

    Confidence-weighted DLT from all views and from every set of all views but one; the set whose
    worst reprojection error is lowest wins (all views whenever they stay within ``max_error``,
    a fraction of the image's longer side), so one swapped or outlying view is left out. NaN
    where fewer than two views see the joint or the chosen set still reprojects worse than
    ``max_error`` (``engines.triangulation.triangulate_robust`` is the NumPy version for
    ``Camera`` objects)."""
    kp = keypoints.double()
    B, V = kp.shape[:2]
    R, t, f, c, size, dist = (getattr(rig, k).double() for k in ("R", "t", "f", "c", "size", "dist"))
    def per_point(a: torch.Tensor) -> torch.Tensor:  # (B, V, k) -> (B, V, 1, 1, k): over frames and joints
        return a[:, :, None, None, :]

    longer = size.max(dim=-1, keepdim=True).values
    px = (kp[..., :2] * per_point(longer) + per_point(size)) / 2
    xy = _undistort((px - per_point(c)) / per_point(f), per_point(dist))
    P = torch.cat([R, t.unsqueeze(-1)], dim=-1)[:, :, None, None]  # (B, V, 1, 1, 3, 4)
    rows = torch.stack([xy[..., 0:1] * P[..., 2, :] - P[..., 0, :],
                        xy[..., 1:2] * P[..., 2, :] - P[..., 1, :]], dim=-2)  # (B, V, N, J, 2, 4)
    w = kp[..., 2].clamp_min(0.0)  # (B, V, N, J)
    eye = torch.eye(V, dtype=kp.dtype, device=kp.device)
    masks = [torch.ones(V, dtype=kp.dtype, device=kp.device)] + ([1.0 - eye[k] for k in range(V)] if V > 2 else [])
    S = len(masks)
    ws = torch.stack(masks)[:, None, :, None, None] * w  # (S, B, V, N, J)
    A = (rows.unsqueeze(0) * ws[..., None, None]).movedim(2, -3).flatten(-3, -2)  # (S, B, N, J, 2V, 4)
    _, vecs = torch.linalg.eigh(A.transpose(-1, -2) @ A)
    X = vecs[..., :, 0]  # the smallest eigenvalue's vector, (S, B, N, J, 4)
    X = X[..., :3] / X[..., 3:4]
    enough = (ws > 0).sum(dim=2) >= 2  # (S, B, N, J)
    cam = X.unsqueeze(2) @ R.transpose(-1, -2)[None, :, :, None] + t[None, :, :, None, None]  # (S, B, V, N, J, 3)
    sub = Rig(R, t, f, c, size, dist)
    screen, front = sub.project_screen(cam)
    err = (screen - kp[..., :2]).norm(dim=-1)  # (S, B, V, N, J), screen units
    used = ws > 0
    bad = (used & ~front).any(dim=2) | ~enough | ~torch.isfinite(X).all(dim=-1)
    worst = torch.where(used, err, torch.zeros_like(err)).amax(dim=2).masked_fill(bad, float("inf"))  # (S, B, N, J)
    limit = 2.0 * max_error  # screen units span 2 across the longer side
    ranked = worst.clone()
    ranked[0] = torch.where(worst[0] <= limit, torch.full_like(worst[0], -1.0), worst[0])
    pick = ranked.argmin(dim=0)  # (B, N, J)
    out = X.gather(0, pick[None, ..., None].expand(1, *X.shape[1:]))[0]
    chosen = worst.gather(0, pick[None])[0]
    return out.masked_fill(~(chosen <= limit).unsqueeze(-1), float("nan")).to(keypoints.dtype)


def true_camera_frame(pred: torch.Tensor, depth_scale: torch.Tensor) -> torch.Tensor:
    """Lifter output (..., J, 3) -> the camera frame of a camera with ``depth_scale`` (...):
    every joint's depth moves with the root's (x, y do not change: see ``engines.models``)."""
    shift = (1.0 / depth_scale - 1.0)[..., None] * pred[..., 0, 2:3]  # (..., 1)
    return torch.cat([pred[..., :2], pred[..., 2:] + shift.unsqueeze(-2)], dim=-1)


def project_assumed(pred: torch.Tensor) -> torch.Tensor:
    """Lifter output (..., J, 3) -> screen (..., J, 2) through the camera the model assumes
    (centred principal point, ``ASSUMED_FOCAL`` in screen units)."""
    z = pred[..., 2:].clamp_min(0.05)
    return ASSUMED_FOCAL * pred[..., :2] / z


def _scale_2d(keypoints: torch.Tensor) -> torch.Tensor:
    """RMS distance of the visible joints from their centre (...,), screen units."""
    vis = (keypoints[..., 2] > 0).to(keypoints.dtype).unsqueeze(-1)
    n = vis.sum(dim=-2).clamp_min(1.0)
    centre = (keypoints[..., :2] * vis).sum(dim=-2, keepdim=True) / n.unsqueeze(-2)
    d = (keypoints[..., :2] - centre) * vis
    return ((d * d).sum(dim=(-2, -1)) / n.squeeze(-1) + 1e-6).sqrt()


def reprojection_error(screen: torch.Tensor, keypoints: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Confidence-weighted mean distance between projected ``screen`` (..., J, 2) and observed
    ``keypoints`` (..., J, 3), in units of each observed body's 2D size (so near and far people,
    small and large images weigh alike). Joints with confidence 0 or ``valid`` False are ignored."""
    w = keypoints[..., 2].clamp(0, 1)
    if valid is not None:
        w = w * valid.to(w.dtype)
    dist = (screen - keypoints[..., :2]).norm(dim=-1) / _scale_2d(keypoints).unsqueeze(-1)
    return (dist * w).sum() / w.sum().clamp_min(1.0)


def normalise_2d(xy: torch.Tensor) -> torch.Tensor:
    """2D poses (..., J, 2) centred on the pelvis and divided by their RMS distance from it
    (Kudo et al.'s normalisation): what a 2D discriminator compares."""
    d = xy - xy[..., :1, :]
    rms = ((d * d).sum(dim=-1).mean(dim=-1) + 1e-8).sqrt()  # + eps: sqrt'(0) is infinite
    return d / rms[..., None, None]


def rotate_about_y(rel: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Root-relative poses (..., J, 3) turned by ``angle`` (...) radians about the camera's y axis."""
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    x, y, z = rel[..., 0], rel[..., 1], rel[..., 2]
    return torch.stack([c * x + s * z, y, -s * x + c * z], dim=-1)


def facing_sine(pose: torch.Tensor) -> torch.Tensor:
    """Sine of the angle between the face direction (nose - thorax) and the shoulder line
    (left - right shoulder) in the camera's x-z plane, (...).

    The body-orientation heuristic of Kudo et al.'s adversarial lifting. In our camera frame
    (y down) a real person gives a positive value: measured on 4000 CMU training poses seen by
    random cameras, 99.3% are positive, and 99.3% of their depth-flipped mirror images negative. So a negative value marks
    the depth-flipped solution that a 2D discriminator cannot tell apart.
    """
    f = pose[..., _NOSE, :] - pose[..., _THORAX, :]
    s = pose[..., _LSH, :] - pose[..., _RSH, :]
    cross = f[..., 0] * s[..., 2] - f[..., 2] * s[..., 0]
    return cross / (f.norm(dim=-1) * s.norm(dim=-1)).clamp_min(1e-6)


def size_prior(pose: torch.Tensor, tolerance: float = 0.15) -> torch.Tensor:
    """Penalty on a body's size (RMS distance of the joints from their centroid, (..., J, 3))
    leaving ``REFERENCE_BODY_RMS_M`` by more than ``tolerance`` (as a log ratio).

    From 2D alone, size and distance cannot be told apart (a giant far away looks like a child
    nearby): methods without metric 3D fix the scale with this prior, the same constant the
    lifter's depth prior uses, and their MPJPE carries that assumption.
    """
    d = pose - pose.mean(dim=-2, keepdim=True)
    rms = ((d * d).sum(dim=-1).mean(dim=-1) + 1e-8).sqrt()
    excess = (rms / REFERENCE_BODY_RMS_M).log().abs() - tolerance
    return torch.relu(excess).pow(2).mean()
