"""BlazePose in video mode for one or several people, as MediaPipe Pose runs it for one.

Per frame (``BlazePose.process``):

1. people tracked from the previous frame keep their region, drawn from their (filtered)
   auxiliary landmarks; when fewer than ``max_persons`` are tracked (MediaPipe: none), the
   detector runs on the letterboxed frame, with the people already tracked blanked out, and each
   detection whose hip point lies outside every tracked person starts a new one (best score
   first), with a new id;
2. all regions are cropped and go through the landmark network in one batch;
3. a person whose pose flag is under ``min_tracking_confidence`` is dropped (its filters reset;
   MediaPipe then detects again on the next frame);
4. landmarks are decoded, refined on the heatmap, projected into the image, filtered
   (``filters.LandmarkFilter``), and the next region is drawn from the auxiliary points;
5. two tracks that converge on one person (their landmark boxes overlap by more than
   ``duplicate_iou``) are merged, keeping the older id.

With ``max_persons=1`` this is MediaPipe Pose's graph (``PoseLandmarkCpu``) step for step;
``tests/realtime/test_blazepose.py`` holds the two together on real video.
Timestamps: seconds per frame; ``None`` advances a simulated 30 fps clock as
``mediapipe.solutions`` does (it stamps frames 33333 us apart whatever the video's rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.blazepose import geometry as geo
from realtime.blazepose.filters import LandmarkFilter

__all__ = ["BlazePose", "BlazePoseConfig", "PoseFrame"]

NUM_BODY = 33


@dataclass(frozen=True)
class BlazePoseConfig:
    """How the port runs. ``runtime``: ``torch`` or ``onnxruntime``; ``device``: ``cpu``|``cuda``;
    ``precision``: ``fp32``|``fp16`` (FP16: torch on CUDA only); ``threads``: ONNX Runtime threads
    per network on the CPU (1, like MediaPipe, which runs its networks on one: measured, its CPU
    time equals its wall time; 0 for ONNX Runtime's default of one per core)."""

    max_persons: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    smooth: bool = True
    runtime: str = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 1
    detect_every: int = 1  # frames between detector runs while fewer than max_persons are tracked
    duplicate_iou: float = 0.5
    refine_kernel: int = 9

    def __post_init__(self) -> None:
        if self.max_persons < 1:
            raise ValueError(f"max_persons must be at least 1, got {self.max_persons}")
        for name in ("min_detection_confidence", "min_tracking_confidence", "duplicate_iou"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {self.detect_every}")


@dataclass
class PoseFrame:
    """One frame's people. ``landmarks`` (P, 33, 3) image-normalised x, y and z (z in units of the
    image width, as MediaPipe); ``visibility``/``presence`` (P, 33); ``ids`` (P,); ``scores`` (P,)
    pose flag; ``pixels`` (P, 33, 2)."""

    landmarks: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    width: int
    height: int

    @property
    def pixels(self) -> np.ndarray:
        return self.landmarks[..., :2] * np.array([self.width, self.height], np.float32)

    @property
    def persons(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class _Track:
    id: int
    rect: geo.Rect
    filt: LandmarkFilter
    box: np.ndarray | None = None  # landmark bounding box (xmin, ymin, w, h), normalised


def _box(points: np.ndarray) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], np.float32)


class BlazePose:
    """The BlazePose pipeline around the ported networks (``engines.blazepose``)."""

    def __init__(self, config: BlazePoseConfig = BlazePoseConfig()) -> None:
        from engines.blazepose_runtime import load_runner

        self.config = config
        kw = {"device": config.device, "precision": config.precision, "threads": config.threads}
        self.detector = load_runner("detector", config.runtime, **kw)
        self.landmarker = load_runner("landmark", config.runtime, outputs=("landmarks", "pose_flag", "heatmap"), **kw)
        self.anchors = geo.anchors()
        self.tracks: list[_Track] = []
        self.next_id = 1
        self.frame_index = 0
        self._since_detect = 0

    def reset(self) -> None:
        self.tracks = []
        self._since_detect = 0

    # -- steps ------------------------------------------------------------------------------
    def detect(self, image_bgr: np.ndarray, exclude: list[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Person detections on a frame: scores (N,), boxes (N, 4) and keypoints (N, 4, 2), image-normalised.

        ``exclude``: boxes (xmin, ymin, w, h), normalised, blanked out of the detector's input: people
        already tracked. MediaPipe's detector was trained to find the most prominent person; hiding
        the ones we have lets it find the next.
        """
        x, pad = geo.letterbox_input(image_bgr)
        if len(exclude):
            left, top, right, bottom = pad
            n = geo.DETECTOR_SIZE
            for box in exclude:
                x0, y0 = box[0] - 0.1 * box[2], box[1] - 0.1 * box[3]
                x1, y1 = box[0] + 1.1 * box[2], box[1] + 1.1 * box[3]
                c0 = int(np.clip(np.floor((x0 * (1 - left - right) + left) * n), 0, n))
                c1 = int(np.clip(np.ceil((x1 * (1 - left - right) + left) * n), 0, n))
                r0 = int(np.clip(np.floor((y0 * (1 - top - bottom) + top) * n), 0, n))
                r1 = int(np.clip(np.ceil((y1 * (1 - top - bottom) + top) * n), 0, n))
                x[r0:r1, c0:c1] = -1.0  # black, like the letterbox border
        boxes, scores = self.detector(x[None])
        s, b, k = geo.decode_detections(boxes[0], scores[0], self.anchors, self.config.min_detection_confidence)
        s, b, k = geo.weighted_nms(s, b, k, 0.3)
        b, k = geo.remove_letterbox(b, k, pad)
        return s, b, k

    def _new_tracks(self, image_bgr: np.ndarray) -> None:
        h, w = image_bgr.shape[:2]
        scores, _, kps = self.detect(image_bgr, [t.box for t in self.tracks if t.box is not None])
        for i in range(len(scores)):
            if len(self.tracks) >= self.config.max_persons:
                break
            if any(t.box is not None and _inside(kps[i, 0], t.box) for t in self.tracks):
                continue  # this person is tracked already
            rect, _ = geo.rect_from_points(kps[i, 0], kps[i, 1], w, h)
            self.tracks.append(_Track(self.next_id, rect, LandmarkFilter(self.config.smooth)))
            self.next_id += 1

    def process(self, image_bgr: np.ndarray, timestamp_s: float | None = None) -> PoseFrame:
        """Landmarks of everyone tracked or found in a BGR frame (H, W, 3) uint8."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image of shape (height, width, 3), got {image_bgr.shape} "
                             f"{image_bgr.dtype}")
        self.frame_index += 1
        t_ns = round(timestamp_s * 1e9) if timestamp_s is not None else self.frame_index * 33_333_000
        h, w = image_bgr.shape[:2]
        if len(self.tracks) < self.config.max_persons:
            if not self.tracks or self._since_detect + 1 >= self.config.detect_every:
                self._new_tracks(image_bgr)
                self._since_detect = 0
            else:
                self._since_detect += 1
        if not self.tracks:
            return _empty(w, h)
        crops, pads = zip(*(geo.landmark_input(image_bgr, t.rect) for t in self.tracks))
        raw, flag, heat = self.landmarker(np.stack(crops))
        lms = geo.decode_landmarks(raw)
        lms = geo.refine_with_heatmap(lms, heat, self.config.refine_kernel)
        kept: list[tuple[_Track, np.ndarray, float]] = []
        for i, track in enumerate(self.tracks):
            score = float(flag[i, 0])
            if score < self.config.min_tracking_confidence:
                continue
            pts = geo.project(lms[i], track.rect, pads[i])
            body, aux = pts[:NUM_BODY], pts[NUM_BODY:NUM_BODY + 2]
            _, object_scale = geo.rect_from_points(aux[0], aux[1], w, h)
            body, aux = track.filt.apply(t_ns, body, aux, object_scale, w, h)
            track.rect, _ = geo.rect_from_points(aux[0], aux[1], w, h)
            track.box = _box(body[:, :2])
            kept.append((track, body, score))
        kept = self._merge_duplicates(kept)
        self.tracks = [k[0] for k in kept]
        if not kept:
            return _empty(w, h)
        body = np.stack([k[1] for k in kept])
        return PoseFrame(body[..., :3].astype(np.float32), body[..., 3].astype(np.float32),
                         body[..., 4].astype(np.float32), np.array([k[0].id for k in kept], np.int64),
                         np.array([k[2] for k in kept], np.float32), w, h)

    def _merge_duplicates(self, kept):
        if len(kept) < 2:
            return kept
        out = []
        for item in sorted(kept, key=lambda k: k[0].id):  # older ids win
            if any(geo.iou(item[0].box, o[0].box[None])[0] > self.config.duplicate_iou for o in out):
                continue
            out.append(item)
        return out

    def close(self) -> None:
        self.tracks = []


def _inside(point: np.ndarray, box: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3])


def _empty(w: int, h: int) -> PoseFrame:
    return PoseFrame(np.zeros((0, NUM_BODY, 3), np.float32), np.zeros((0, NUM_BODY), np.float32),
                     np.zeros((0, NUM_BODY), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32), w, h)
