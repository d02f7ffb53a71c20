"""The world-frame benchmark (``python -m benchmarks world``) on a tiny synthetic sequence: the
fixture's rest pose standing, then stepping, filmed by one tilted virtual camera through the real
lifter and body stage (no MediaPipe, no cmu-mocap). Numbers are not judged, only that every score
is there, finite and means what it says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import world as W


@pytest.fixture(scope="module")
def sequence():
    import engines
    from realtime.world import from_calibration

    rng = np.random.default_rng(0)
    joints = W._synthetic_walk(rng, 75)
    cam, desc, _ = W.place_camera(rng, joints)
    true = from_calibration(cam, up="y")
    kp = W.film(rng, cam, joints)
    stages = {v.name: W.body_stage(v, None) for v in W.variants(None)}
    result = W.chain(engines.load("default", backend="auto"), kp, None, stages)
    truth = true.to_world(cam.world_to_camera(joints))
    return cam, desc, true, result, W.score_sequence(truth, np.asarray(true.up), true.height_m, result)


def test_the_camera_is_in_the_ranges_and_keeps_the_subject_in_frame(sequence):
    cam, desc, true, _, _ = sequence
    assert W.PITCH_DEG[0] <= desc["pitch_deg"] <= W.PITCH_DEG[1] and abs(desc["roll_deg"]) <= W.ROLL_DEG[1]
    assert true.height_m == pytest.approx(desc["height_m"])
    assert true.tilt_deg[0] == pytest.approx(desc["pitch_deg"], abs=1e-6)  # the true up is the camera's own


def test_every_score_is_reported_for_both_contact_settings(sequence):
    *_, scores = sequence
    assert set(scores["stages"]) == {"body axis, contacts", "body axis, no contacts"}
    for s in scores["stages"].values():
        assert set(s["up_deg"]) == {"0.5", "1.0", "2.0", "5.0", "end"}
        assert math.isnan(s["up_deg"]["5.0"])  # the sequence is 2.5 s long: no value after its end
        assert all(math.isfinite(s["up_deg"][k]) and math.isfinite(s["height_cm"][k]) for k in ("0.5", "2.0", "end"))
        assert s["bone_std_mm"] < 1.0 and s["fk_mm"] < 1.0  # fixed bones, joints = FK of the rows
    with_c, without = scores["stages"]["body axis, contacts"], scores["stages"]["body axis, no contacts"]
    assert with_c["penetration_max_mm"] < 1e-3  # the contact solver keeps every ankle at or above its rest
    assert [with_c["up_deg"][k] for k in ("0.5", "2.0", "end")] == [without["up_deg"][k] for k in ("0.5", "2.0", "end")]
    # (contacts do not feed the world estimate)


def test_heading_alignment_undoes_a_turn_about_the_vertical():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(50, 3))
    a = math.radians(25.0)
    turned = truth.copy()
    turned[:, 0] = math.cos(a) * truth[:, 0] - math.sin(a) * truth[:, 2]
    turned[:, 2] = math.sin(a) * truth[:, 0] + math.cos(a) * truth[:, 2]
    aligned, theta = W.heading_aligned(turned, truth)
    np.testing.assert_allclose(aligned, truth, atol=1e-9)
    assert abs(theta) == pytest.approx(25.0)


def test_skating_counts_only_frames_where_the_foot_rests():
    ankles = np.zeros((4, 2, 3))
    ankles[:, 0, 0] = [0.0, 0.001, 0.002, 0.5]  # 1 mm per frame, then a step
    contact = np.array([[True, False], [True, False], [True, False], [False, False]])
    assert W.skate_mm(ankles, contact) == pytest.approx(1.0)
