"""Synchronised multi-view clips: what multi-view training and test-time adaptation read.

A :class:`MultiViewClip` holds V views of the same F frames: 2D keypoints (V, F, J, 3) as
(u, v, confidence) in each image's screen coordinates, the calibrated cameras (V) and the image
sizes the 2D came from (V, 2); synthetic clips also keep the true world joints (F, J, 3).

Sources:

* a folder of videos (``*.mp4``, ``*.avi``, ``*.mov``, sorted by name) with one calibration in
  it (``*.qca.txt``, ``calibration.toml`` or ``calibration.json``), e.g.
  ``../shared/media/pose2sim-demo``: video i is calibrated camera i. The 2D comes from our
  MediaPipe detector (``engines.mediapipe_pose``) and is cached (``$POSESTREAM_CACHE`` or
  ``~/.cache/posestream``) by file name, size and modification time, so a clip is detected once.
* an ``.npz`` written by :func:`save_clip` (keys ``keypoints``, ``image_size``, ``fps`` and
  optionally ``truth_world``) with its calibration in our TOML format beside it
  (``<stem>.calibration.toml``) or given explicitly.
* :func:`synthetic_clip`: a mocap clip filmed by V virtual cameras with detector noise.

Bad input is one sentence: views with different frame counts ("not synchronised"), fewer
calibrated cameras than views, a view in which nobody is detected, unreadable videos.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engines.calibration import load_calibration, save_calibration
from engines.camera import Camera, VirtualCameraRanges
from engines.skeleton import CANONICAL

__all__ = ["ClipError", "MultiViewClip", "detect_video", "load_clip", "save_clip", "synthetic_clip"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
J = CANONICAL.num_joints


class ClipError(ValueError):
    """A multi-view clip that cannot be used; the message is one sentence naming the problem."""


@dataclass(frozen=True)
class MultiViewClip:
    keypoints: np.ndarray  # (V, F, J, 3) float32 screen u, v, confidence
    cameras: list[Camera]  # V calibrated cameras (world frame of the calibration, metres)
    image_size: np.ndarray  # (V, 2) width, height of the images the 2D came from
    fps: float
    names: tuple[str, ...]
    truth_world: np.ndarray | None = None  # (F, J, 3) metres, synthetic clips only

    @property
    def views(self) -> int:
        return self.keypoints.shape[0]

    @property
    def frames(self) -> int:
        return self.keypoints.shape[1]

    def pixels(self) -> np.ndarray:
        """(V, F, J, 2) keypoints in pixels (NaN where the confidence is 0)."""
        from engines.camera import denormalize_screen

        out = denormalize_screen(self.keypoints[..., :2].astype(np.float64), self.image_size[:, None, None, 0],
                                 self.image_size[:, None, None, 1])
        return np.where(self.keypoints[..., 2:] > 0, out, np.nan)

    def every(self, step: int) -> MultiViewClip:
        """Every ``step``-th frame (a 60 fps clip for a 30 fps model)."""
        if step <= 1:
            return self
        truth = None if self.truth_world is None else self.truth_world[::step]
        return replace(self, keypoints=self.keypoints[:, ::step], fps=self.fps / step, truth_world=truth)


def _check(clip: MultiViewClip, where: str) -> MultiViewClip:
    kp = clip.keypoints
    if kp.ndim != 4 or kp.shape[2:] != (J, 3):
        raise ClipError(f"{where}: keypoints must be (views, frames, {J}, 3), got {kp.shape}")
    if clip.views < 2:
        raise ClipError(f"{where}: a multi-view clip needs at least 2 views, got {clip.views}")
    if len(clip.cameras) < clip.views:
        raise ClipError(f"{where}: the calibration has {len(clip.cameras)} cameras for {clip.views} views; "
                        "every view needs its calibrated camera")
    if len(clip.cameras) > clip.views:
        raise ClipError(f"{where}: the calibration has {len(clip.cameras)} cameras but only {clip.views} views "
                        "were given; pass every view, in the calibration's order")
    if not np.isfinite(kp).all():
        raise ClipError(f"{where}: keypoints contain NaN or infinite values (use confidence 0 for missing joints)")
    seen = (kp[..., 2] > 0).sum(axis=-1) >= 6  # (V, F): a person in that view and frame
    for v in range(clip.views):
        if not seen[v].any():
            raise ClipError(f"{where}: no person detected in view {clip.names[v]} (0 of {clip.frames} frames)")
    if not (seen.sum(axis=0) >= 2).any():
        raise ClipError(f"{where}: no frame shows the person in two views at once; nothing to learn from")
    return clip


def detect_video(path: Path) -> tuple[np.ndarray, tuple[int, int], float]:
    """MediaPipe keypoints (F, J, 3) of a video (screen coordinates; confidence 0 where nobody
    is found), its (width, height) and frame rate; cached by file name, size and mtime."""
    import cv2

    from training.data import cache_dir

    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|mediapipe".encode()).hexdigest()[:16]
    cached = cache_dir() / f"detections-{path.stem}-{key}.npz"
    if cached.is_file():
        with np.load(cached) as doc:
            return doc["keypoints"], (int(doc["size"][0]), int(doc["size"][1])), float(doc["fps"])
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ClipError(f"{path}: cannot open the video (missing codec or not a video)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 30.0)
    from engines.mediapipe_pose import MediaPipeDetector

    det = MediaPipeDetector()
    frames, size = [], None
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            size = (img.shape[1], img.shape[0])
            d = det.detect(img)
            frames.append(d.keypoints[0] if d.persons else np.zeros((J, 3), np.float32))
    finally:
        cap.release()
        det.close()
    if not frames:
        raise ClipError(f"{path}: no frame could be decoded (corrupt or empty video)")
    kp = np.stack(frames).astype(np.float32)
    from engines.fileio import atomic_path

    with atomic_path(cached, suffix=".npz") as tmp:
        np.savez(tmp, keypoints=kp, size=np.array(size), fps=np.array(fps))
    return kp, size, fps


def _frame_count(path: Path) -> int:
    """Frames a video really decodes to (containers' frame counts are not always right)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ClipError(f"{path}: cannot open the video (missing codec or not a video)")
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    if n == 0:
        raise ClipError(f"{path}: no frame could be decoded (corrupt or empty video)")
    return n


def _calibration_in(folder: Path) -> Path:
    found = sorted(folder.glob("*.qca.txt")) + [folder / n for n in ("calibration.toml", "calibration.json")
                                                if (folder / n).is_file()]
    if not found:
        raise ClipError(f"{folder}: no calibration found (a *.qca.txt, calibration.toml or calibration.json)")
    if len(found) > 1:
        raise ClipError(f"{folder}: several calibrations found ({', '.join(p.name for p in found)}); pass --calibration")
    return found[0]


def load_clip(source: str | Path, calibration: str | Path | None = None, progress: bool = False) -> MultiViewClip:
    """A clip from a folder of synchronised videos or an ``.npz`` (see the module docstring)."""
    source = Path(source)
    if not source.exists():
        raise ClipError(f"{source}: no such clip (a folder of videos or a .npz)")
    if source.is_dir():
        videos = sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if len(videos) < 2:
            raise ClipError(f"{source}: a multi-view clip needs at least 2 videos, found {len(videos)}")
        cams = load_calibration(calibration or _calibration_in(source))
        if len(cams) != len(videos):  # say so before minutes of detection
            _check(MultiViewClip(np.zeros((len(videos), 1, J, 3), np.float32), cams, np.ones((len(videos), 2)), 30.0,
                                 tuple(p.name for p in videos)), str(source))
        counts = [_frame_count(p) for p in videos]  # before minutes of detection
        if len(set(counts)) > 1:
            listing = ", ".join(f"{p.name} has {n}" for p, n in zip(videos, counts))
            raise ClipError(f"{source}: the views are not synchronised (different frame counts: {listing})")
        detections = []
        for p in videos:
            if progress:
                print(f"2D detection (cached after the first run): {p.name}", flush=True)
            detections.append(detect_video(p))
        counts = [len(d[0]) for d in detections]
        if len(set(counts)) > 1:
            listing = ", ".join(f"{p.name} has {n}" for p, n in zip(videos, counts))
            raise ClipError(f"{source}: the views are not synchronised (different frame counts: {listing})")
        fps = {round(d[2], 2) for d in detections}
        if len(fps) > 1:
            raise ClipError(f"{source}: the views are not synchronised (frame rates differ: {sorted(fps)})")
        clip = MultiViewClip(np.stack([d[0] for d in detections]), cams, np.array([d[1] for d in detections], float),
                             detections[0][2], tuple(p.name for p in videos))
        return _check(clip, str(source))
    if source.suffix != ".npz":
        raise ClipError(f"{source}: a clip is a folder of videos or a .npz written by posestream")
    calib = Path(calibration) if calibration else source.with_name(source.name.removesuffix(".npz") + ".calibration.toml")
    if not calib.is_file():
        raise ClipError(f"{source}: its calibration {calib} does not exist; pass --calibration")
    try:
        with np.load(source) as doc:
            kp = doc["keypoints"].astype(np.float32)
            size = doc["image_size"].astype(float)
            fps = float(doc["fps"])
            truth = doc["truth_world"].astype(np.float64) if "truth_world" in doc.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise ClipError(f"{source}: not a readable multi-view clip ({exc})") from None
    cams = load_calibration(calib)
    if kp.ndim == 4 and truth is not None and len(truth) != kp.shape[1]:
        raise ClipError(f"{source}: truth has {len(truth)} frames but the views have {kp.shape[1]}")
    names = tuple(c.name for c in cams[: kp.shape[0]]) + tuple(f"view{i}" for i in range(len(cams), kp.shape[0]))
    return _check(MultiViewClip(kp, cams, size, fps, names, truth), str(source))


def save_clip(clip: MultiViewClip, path: str | Path) -> Path:
    """Write ``path`` (.npz) and ``<stem>.calibration.toml`` beside it, atomically each."""
    from engines.fileio import atomic_path

    path = Path(path)
    doc = {"keypoints": clip.keypoints, "image_size": clip.image_size, "fps": np.array(clip.fps)}
    if clip.truth_world is not None:
        doc["truth_world"] = clip.truth_world
    save_calibration(path.with_name(path.name.removesuffix(".npz") + ".calibration.toml"), clip.cameras)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **doc)
    return path


def synthetic_clip(joints_world: np.ndarray, views: int = 4, seed: int = 0, jitter: float = 0.015,
                   outliers: float = 0.05, fps: float = 30.0) -> MultiViewClip:
    """One mocap clip (F, J, 3) (world y-up, metres) filmed by ``views`` static virtual cameras
    around it, 2-6 m plus its radius of travel away (as ``training evaluate`` places them), with
    white detector noise of ``jitter`` x body height and ``outliers`` (the defaults: the
    noise ``training methods-report`` evaluates with)."""
    from training.evaluate import EvalSettings, noise_for
    from training.synth import NO_AUGMENTATION, project_windows, sample_cameras_for

    world = np.asarray(joints_world, dtype=np.float64)[None]
    pelvis = world[0, :, 0]
    centre = pelvis.mean(axis=0)
    radius = float(np.linalg.norm((pelvis - centre)[:, [0, 2]], axis=-1).max())
    ranges = replace(VirtualCameraRanges(), distance_m=(2.0 + radius, 6.0 + radius))
    noise = noise_for(EvalSettings(jitter=jitter, outliers=outliers))
    rng = np.random.default_rng([seed, 8])
    cams = sample_cameras_for(rng, np.repeat(world, views, 0), ranges, aim=np.repeat(centre[None], views, 0))
    batch = project_windows(rng, np.repeat(world, views, 0), noise, NO_AUGMENTATION, cameras=cams)
    names = tuple(f"virtual{i}" for i in range(views))
    cameras = [cams.camera(i, names[i]) for i in range(views)]
    return MultiViewClip(batch.inputs, cameras, cams.size.astype(float), fps, names, world[0])
