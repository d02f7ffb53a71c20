"""MediaPipe Pose's landmark filtering (``PoseLandmarkFiltering``), per tracked person.

What mediapipe 0.10.21 runs on the image landmarks in video mode, with the values from its graph
(``../shared/notes/blazepose-graphs/PoseLandmarkFiltering.pbtxt``):

* visibility: a low-pass with alpha 0.1 (body and auxiliary points);
* body landmarks: One Euro, min cutoff 0.05 Hz, beta 80, derivative cutoff 1 Hz;
* auxiliary landmarks (they steer the next region): One Euro, 0.01 Hz, beta 10, 1 Hz;
* both on pixel coordinates (x * width, y * height, z * width), with the speed multiplied by
  1 / object scale, the object scale being the side of the region drawn from the *unfiltered*
  auxiliary points (so beta means "per body size per second").

This is MediaPipe's own formulation (``util/filtering/one_euro_filter.cc``), which differs from
``realtime.smooth`` (ours, for 3D joints in metres) in that value scaling and in its clock: the
rate starts at 30 Hz and follows the timestamps from the second sample on; a timestamp that is
not later than the last one returns the input unfiltered. Vectorised over all values of a person.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LandmarkFilter", "MediaPipeOneEuro", "OneEuroParams"]


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float
    beta: float
    derivate_cutoff: float = 1.0


BODY = OneEuroParams(0.05, 80.0, 1.0)
AUX = OneEuroParams(0.01, 10.0, 1.0)
VISIBILITY_ALPHA = 0.1


class _LowPass:
    def __init__(self) -> None:
        self.stored: np.ndarray | None = None
        self.raw: np.ndarray | None = None

    def apply(self, value: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
        out = value if self.stored is None else alpha * value + (1.0 - alpha) * self.stored
        self.raw = value
        self.stored = out
        return out


class MediaPipeOneEuro:
    """MediaPipe's One Euro filter over a vector of values sharing one clock."""

    def __init__(self, params: OneEuroParams, frequency: float = 30.0) -> None:
        self.params = params
        self.frequency = frequency
        self.last_ns = 0
        self.x = _LowPass()
        self.dx = _LowPass()

    def _alpha(self, cutoff: float | np.ndarray) -> float | np.ndarray:
        te = 1.0 / self.frequency
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def apply(self, t_ns: int, value_scale: float, value: np.ndarray) -> np.ndarray:
        if self.last_ns >= t_ns:
            return value
        if self.last_ns != 0 and t_ns != 0:
            self.frequency = 1.0 / ((t_ns - self.last_ns) * 1e-9)
        self.last_ns = t_ns
        if self.x.raw is not None:
            dvalue = (value - self.x.raw) * value_scale * self.frequency
        else:
            dvalue = np.zeros_like(value)
        edvalue = self.dx.apply(dvalue, self._alpha(self.params.derivate_cutoff))
        cutoff = self.params.min_cutoff + self.params.beta * np.abs(edvalue)
        return self.x.apply(value, self._alpha(cutoff))


class LandmarkFilter:
    """Body (33) and auxiliary (2) landmark smoothing of one person, as MediaPipe does it.

    ``apply(t_ns, body, aux, object_scale, width, height)``: ``body`` (33, 4) and ``aux`` (2, 4)
    normalised (x, y, z, visibility); returns both filtered, same shapes.
    """

    def __init__(self, smooth_body: bool = True) -> None:
        self.smooth_body = smooth_body  # MediaPipe's smooth_landmarks; the auxiliary points are always filtered
        self.body = MediaPipeOneEuro(BODY)
        self.aux = MediaPipeOneEuro(AUX)
        self.body_vis = _LowPass()
        self.aux_vis = _LowPass()

    def apply(self, t_ns: int, body: np.ndarray, aux: np.ndarray, object_scale: float, width: int,
              height: int) -> tuple[np.ndarray, np.ndarray]:
        to_px = np.array([width, height, width], np.float64)
        scale = 1.0 / object_scale if object_scale >= 1e-6 else None
        out = []
        for pts, filt, vis in ((body, self.body, self.body_vis), (aux, self.aux, self.aux_vis)):
            if filt is self.body and not self.smooth_body:
                out.append(pts.astype(np.float64))
                continue
            v = vis.apply(pts[:, 3].astype(np.float64), VISIBILITY_ALPHA)
            xyz = pts[:, :3].astype(np.float64) * to_px
            if scale is not None:
                xyz = filt.apply(t_ns, scale, xyz.reshape(-1)).reshape(-1, 3)
            res = np.empty_like(pts, dtype=np.float64)
            res[:, :3] = xyz / to_px
            res[:, 3] = v
            res[:, 4:] = pts[:, 4:]
            out.append(res)
        return out[0], out[1]
