"""Measure the hip and shoulder widths behind ``engines.skeleton.MEDIAPIPE_HIP_WIDTH_SCALE``.

    python -m benchmarks.skeleton_widths

Runs MediaPipe Pose (model_complexity 1, video mode) over every frame of the four Pose2Sim demo
views in ``../shared/media`` and prints the median distance between MediaPipe's two hip world
landmarks and between its shoulders, next to the hip joint-centre width of the CMU mocap
skeleton (``02/02_01``, read through posestream's own importer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"


def mediapipe_widths() -> tuple[float, float, int]:
    import cv2
    import mediapipe as mp

    hips, shoulders = [], []
    for cam in ("cam01", "cam02", "cam03", "cam04"):
        cap = cv2.VideoCapture(str(SHARED / "media" / "pose2sim-demo" / f"{cam}.mp4"))
        with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                res = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                if res.pose_world_landmarks is None:
                    continue
                w = np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark])
                hips.append(np.linalg.norm(w[23] - w[24]))
                shoulders.append(np.linalg.norm(w[11] - w[12]))
        cap.release()
    return float(np.median(hips)), float(np.median(shoulders)), len(hips)


def main() -> None:
    from training.motion import load_clip

    joints, _, _ = load_clip(SHARED / "data" / "cmu-mocap" / "02" / "02_01.bvh.gz")
    cmu_hips = float(np.median(np.linalg.norm(joints[:, 4] - joints[:, 1], axis=-1)))
    hip, shoulder, n = mediapipe_widths()
    print(f"MediaPipe world landmarks, {n} frames: hips {hip:.3f} m apart, shoulders {shoulder:.3f} m")
    print(f"CMU mocap hip joint centres: {cmu_hips:.3f} m apart; ratio {cmu_hips / hip:.2f}")


if __name__ == "__main__":
    main()
