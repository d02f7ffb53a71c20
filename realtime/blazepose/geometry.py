"""The arithmetic around MediaPipe's pose networks, as mediapipe 0.10.21 does it (CPU graph).

Every value here comes from the graph configurations compiled into mediapipe 0.10.21
(``../shared/notes/blazepose-graphs/*.pbtxt``) and from the behaviour of its calculators:

* detector input: the whole image letterboxed into 224x224 (``ImageToTensorCalculator``,
  ``keep_aspect_ratio``, zero border, values ``px * 2/255 - 1``);
* 2254 SSD anchors (``SsdAnchorsCalculator``), box and keypoint decoding with scale 224,
  sigmoid scores clipped at +-100 and kept from 0.5 (``TensorsToDetectionsCalculator``),
  weighted non-maximum suppression at IoU 0.3, letterbox removal;
* region of interest: centre on keypoint 0, side twice the distance to keypoint 1, rotation
  90 degrees minus the angle of that vector, squared on the long side and scaled 1.25
  (``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator``);
* landmark input: the rotated square crop warped to 256x256 with edge replication, ``px / 255``;
* landmark decoding (39 points x (x, y, z, visibility, presence) in crop pixels), heatmap
  refinement over a 9x9 window (the calculator's default: the graph leaves its options empty),
  projection back into the image.

Rectangles are MediaPipe ``NormalizedRect``s: ``(cx, cy, w, h, rotation)`` with centre and size
as fractions of the image width and height, rotation in radians (clockwise on screen).
Crops go through OpenCV 4.11's ``warpPerspective`` on the 8-bit image, as MediaPipe's CPU path
does: resampling differences of one grey level move landmarks by pixels, so this is kept exact.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "DETECTOR_SIZE",
    "LANDMARK_SIZE",
    "NUM_LANDMARKS",
    "anchors",
    "crop",
    "decode_detections",
    "decode_landmarks",
    "iou",
    "landmark_input",
    "letterbox_input",
    "project",
    "rect_from_points",
    "refine_with_heatmap",
    "remove_letterbox",
    "weighted_nms",
]

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
NUM_LANDMARKS = 39  # 33 body points, 2 auxiliary (next region), 4 unused
Rect = tuple[float, float, float, float, float]  # cx, cy, w, h (normalised), rotation (radians)


def anchors(size: int = DETECTOR_SIZE) -> np.ndarray:
    """(2254, 2) anchor centres (x, y) in [0, 1]: strides 8, 16, 32, 32, 32, two anchors per layer
    per cell (aspect 1 and the interpolated scale), layers of equal stride merged cell by cell."""
    strides = (8, 16, 32, 32, 32)
    out = []
    layer = 0
    while layer < len(strides):
        last = layer
        per_cell = 0
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 2
            last += 1
        n = math.ceil(size / strides[layer])
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xs, ys], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(out).astype(np.float32)


def _pad_roi(w: float, h: float, out_w: int, out_h: int) -> tuple[float, float, tuple[float, float, float, float]]:
    """``keep_aspect_ratio``: grow the ROI to the tensor's aspect; the letterbox fractions (l, t, r, b)."""
    tensor_aspect = np.float32(out_h) / np.float32(out_w)
    roi_aspect = np.float32(h) / np.float32(w)
    if tensor_aspect > roi_aspect:
        pad = float((1 - roi_aspect / tensor_aspect) / 2)
        return float(w), float(np.float32(w) * tensor_aspect), (0.0, pad, 0.0, pad)
    pad = float((1 - tensor_aspect / roi_aspect) / 2)
    return float(np.float32(h) / tensor_aspect), float(h), (pad, 0.0, pad, 0.0)


def crop(image: np.ndarray, cx: float, cy: float, w: float, h: float, rotation: float, size: int,
         border: int) -> np.ndarray:
    """The rotated rectangle (pixels; rotation in radians) warped to ``size`` x ``size`` (uint8)."""
    pts = cv2.boxPoints(((cx, cy), (w, h), rotation * 180.0 / math.pi)).astype(np.float32)
    dst = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    m = cv2.getPerspectiveTransform(pts, dst)
    return cv2.warpPerspective(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)


def letterbox_input(image_bgr: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(224, 224, 3) float32 RGB in [-1, 1] for the detector, and the letterbox (l, t, r, b)."""
    h, w = image_bgr.shape[:2]
    pw, ph, pad = _pad_roi(w, h, DETECTOR_SIZE, DETECTOR_SIZE)
    px = crop(image_bgr, w / 2, h / 2, pw, ph, 0.0, DETECTOR_SIZE, cv2.BORDER_CONSTANT)
    x = px[..., ::-1].astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    return x, pad


def landmark_input(image_bgr: np.ndarray, rect: Rect) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(256, 256, 3) float32 RGB in [0, 1]: the region cropped with edge replication; letterbox."""
    h, w = image_bgr.shape[:2]
    cx, cy, rw, rh, rot = rect
    pw, ph, pad = _pad_roi(rw * w, rh * h, LANDMARK_SIZE, LANDMARK_SIZE)
    px = crop(image_bgr, cx * w, cy * h, pw, ph, rot, LANDMARK_SIZE, cv2.BORDER_REPLICATE)
    return px[..., ::-1].astype(np.float32) * np.float32(1.0 / 255.0), pad


def decode_detections(boxes: np.ndarray, scores: np.ndarray, anchor_xy: np.ndarray,
                      min_score: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw detector outputs (2254, 12), (2254, 1) -> kept scores (N,), boxes (N, 4) as
    (xmin, ymin, width, height) and keypoints (N, 4, 2), in letterboxed [0, 1] coordinates."""
    with np.errstate(over="ignore"):  # exp(100) overflows float32 to inf: the score is 0, as in C++
        s = 1.0 / (1.0 + np.exp(-np.clip(scores[:, 0].astype(np.float32), -100.0, 100.0)))
    keep = np.flatnonzero(s >= min_score)
    b = boxes[keep].astype(np.float32) / np.float32(DETECTOR_SIZE)
    a = anchor_xy[keep]
    cx, cy = b[:, 0] + a[:, 0], b[:, 1] + a[:, 1]
    bw, bh = b[:, 2], b[:, 3]
    xmin, ymin = cx - bw / 2, cy - bh / 2
    box = np.stack([xmin, ymin, (cx + bw / 2) - xmin, (cy + bh / 2) - ymin], -1)
    kps = b[:, 4:12].reshape(-1, 4, 2) + a[:, None, :]
    ok = (box[:, 2] >= 0) & (box[:, 3] >= 0)
    return s[keep][ok], box[ok], kps[ok]


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y1 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.where((x1 > x0) & (y1 > y0), (x1 - x0) * (y1 - y0), 0.0)
    union = box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, kps: np.ndarray, threshold: float = 0.3,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: the best remaining box absorbs every box overlapping it
    by more than ``threshold`` (IoU); its box and keypoints become their score-weighted mean, its score stays."""
    order = np.argsort(-scores, kind="stable")
    out_s, out_b, out_k = [], [], []
    while order.size:
        top = order[0]
        overlap = iou(boxes[top], boxes[order]) > threshold
        members = order[overlap]
        wts = scores[members][:, None]
        total = wts.sum()
        corners = np.concatenate([boxes[members, :2], boxes[members, :2] + boxes[members, 2:]], -1)
        c = (corners * wts).sum(0) / total
        out_s.append(scores[top])
        out_b.append(np.array([c[0], c[1], c[2] - c[0], c[3] - c[1]], np.float32))
        out_k.append((kps[members] * wts[:, :, None]).sum(0) / total)
        order = order[~overlap]
    if not out_s:
        return np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32)
    return np.array(out_s, np.float32), np.stack(out_b), np.stack(out_k).astype(np.float32)


def remove_letterbox(boxes: np.ndarray, kps: np.ndarray, pad: tuple[float, float, float, float]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Letterboxed [0, 1] coordinates -> image [0, 1] coordinates (boxes (N, 4), keypoints (N, K, 2))."""
    left, top, right, bottom = pad
    sx, sy = 1.0 - left - right, 1.0 - top - bottom
    b = boxes.copy()
    b[:, 0] = (b[:, 0] - left) / sx
    b[:, 1] = (b[:, 1] - top) / sy
    b[:, 2] /= sx
    b[:, 3] /= sy
    k = kps.copy()
    k[..., 0] = (k[..., 0] - left) / sx
    k[..., 1] = (k[..., 1] - top) / sy
    return b, k


def _normalize_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def rect_from_points(p0: np.ndarray, p1: np.ndarray, width: int, height: int, scale: float = 1.25
                     ) -> tuple[Rect, float]:
    """The region for the landmark model from two normalised points (detector keypoints 0 -> 1,
    or auxiliary landmarks 33 -> 34), and the object scale in pixels (the unscaled side)."""
    x0, y0 = float(p0[0]) * width, float(p0[1]) * height
    x1, y1 = float(p1[0]) * width, float(p1[1]) * height
    side = math.sqrt((x1 - x0) ** 2 + (y1 - y0) ** 2) * 2.0
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
    long_side = max(side, side)  # square_long on an already square box
    return (x0 / width, y0 / height, long_side / width * scale, long_side / height * scale, rotation), side


def decode_landmarks(raw: np.ndarray) -> np.ndarray:
    """(P, 195) landmark tensor -> (P, 39, 5): x, y, z in crop [0, 1] units, visibility and presence
    probabilities."""
    r = raw.reshape(raw.shape[0], NUM_LANDMARKS, 5).astype(np.float32)
    out = np.empty_like(r)
    out[..., :3] = r[..., :3] / np.float32(LANDMARK_SIZE)
    with np.errstate(over="ignore"):  # a very negative logit: probability 0
        out[..., 3:] = 1.0 / (1.0 + np.exp(-r[..., 3:]))
    return out


def refine_with_heatmap(lms: np.ndarray, heatmap: np.ndarray, kernel: int = 9, min_confidence: float = 0.5
                        ) -> np.ndarray:
    """Move each landmark to the sigmoid-weighted mean cell of its ``kernel`` window in the heatmap
    (P, 64, 64, 39) logits, where the window's peak probability reaches ``min_confidence``.
    Cells are indexed from their corner (col / 64), as MediaPipe does; windows are cut at the edge."""
    p, hh, hw, c = heatmap.shape
    out = lms.copy()
    col = np.trunc(lms[..., 0] * hw).astype(np.int64)  # C++ int conversion truncates towards zero
    row = np.trunc(lms[..., 1] * hh).astype(np.int64)
    inside = (col >= 0) & (col < hw) & (row >= 0) & (row < hh)
    off = (kernel - 1) // 2
    steps = np.arange(-off, off + 1)
    rows = row[..., None] + steps  # (P, C, K)
    cols = col[..., None] + steps
    rvalid = (rows >= 0) & (rows < hh)
    cvalid = (cols >= 0) & (cols < hw)
    pi = np.arange(p)[:, None, None, None]
    ci = np.arange(c)[None, :, None, None]
    vals = heatmap[pi, np.clip(rows, 0, hh - 1)[..., :, None], np.clip(cols, 0, hw - 1)[..., None, :], ci]
    conf = 1.0 / (1.0 + np.exp(-vals.astype(np.float32)))
    conf = np.where(rvalid[..., :, None] & cvalid[..., None, :], conf, 0.0)
    total = conf.sum((-1, -2))
    peak = conf.max((-1, -2))
    wc = (conf * cols[..., None, :]).sum((-1, -2))
    wr = (conf * rows[..., :, None]).sum((-1, -2))
    ok = inside & (peak >= min_confidence) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    out[..., 0] = np.where(ok, wc / hw / safe, lms[..., 0])
    out[..., 1] = np.where(ok, wr / hh / safe, lms[..., 1])
    return out


def project(lms: np.ndarray, rect: Rect, pad: tuple[float, float, float, float]) -> np.ndarray:
    """(39, 5) crop-normalised landmarks -> image-normalised (x, y), z scaled like x."""
    left, top, right, bottom = pad
    out = lms.copy()
    x = (lms[:, 0] - left) / (1.0 - left - right) - 0.5
    y = (lms[:, 1] - top) / (1.0 - top - bottom) - 0.5
    z = lms[:, 2] / (1.0 - left - right)
    cx, cy, w, h, rot = rect
    c, s = math.cos(rot), math.sin(rot)
    out[:, 0] = (c * x - s * y) * w + cx
    out[:, 1] = (s * x + c * y) * h + cy
    out[:, 2] = z * w
    return out
