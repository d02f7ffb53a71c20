"""The MediaPipe Pose detector that engines holds for the pipeline and for multi-view training."""

from __future__ import annotations

import numpy as np

from engines.camera import normalize_screen
from engines.mediapipe_pose import Detection, MediaPipeDetector, to_canonical
from engines.skeleton import CANONICAL
from tests.conftest import MEDIA


def test_to_canonical_gives_screen_coordinates_and_zero_confidence_for_lost_joints():
    rng = np.random.default_rng(0)
    px = rng.uniform(100, 500, (2, 33, 2))
    vis = rng.uniform(0.5, 1.0, (2, 33))
    px[1, :] = np.nan  # the second person is lost entirely
    det = to_canonical(px, vis, np.array([3, 4]), 640, 480)
    assert isinstance(det, Detection) and det.persons == 2 and det.ids.tolist() == [3, 4]
    assert det.keypoints.shape == (2, CANONICAL.num_joints, 3) and np.isfinite(det.keypoints).all()
    np.testing.assert_allclose(det.keypoints[0, :, :2], normalize_screen(det.pixels[0], 640, 480), atol=1e-6)
    assert np.all(det.keypoints[0, :, 2] > 0)
    assert np.all(det.keypoints[1] == 0.0) and det.scores[1] == 0.0


def test_the_cold_detector_finds_what_the_pipelines_warmed_up_one_finds():
    import cv2

    from realtime.detect2d import MediaPipeDetector as PipelineDetector

    cap = cv2.VideoCapture(str(MEDIA / "pose2sim-demo" / "cam04.mp4"))
    frames = [cap.read()[1] for _ in range(3)]
    cap.release()
    found = []
    for detector in (MediaPipeDetector(), PipelineDetector()):
        try:
            found.append(np.stack([detector.detect(f).keypoints for f in frames]))
        finally:
            detector.close()
    assert found[0].shape == (3, 1, CANONICAL.num_joints, 3)
    np.testing.assert_array_equal(found[0], found[1])
