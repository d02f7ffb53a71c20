"""Lifter models: the input/output contract, causality, missing joints, cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.models import (
    MLPConfig,
    TransformerConfig,
    build_model,
    config_from_dict,
    model_cost,
    sanitize_keypoints,
    set_dropout,
)


def _inputs(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, t, 17, 3, generator=g) * 0.8 - 0.4
    x[..., 2] = 1.0
    return x


@pytest.fixture(params=[TransformerConfig(d_model=32, layers=2, heads=2), TransformerConfig(receptive_field=81, token_stride=3, d_model=32, layers=1, heads=2),
                        MLPConfig(hidden=64), MLPConfig(hidden=64, blocks=4, aux_after=2)], ids=["tf27", "tf81s3", "mlp", "mlp-deep"])
def model(request):
    torch.manual_seed(0)
    return build_model(request.param).eval()


def test_output_is_camera_frame_joints_in_front_of_the_camera(model):
    y = model(_inputs(5, model.receptive_field))
    assert y.shape == (5, 17, 3)
    assert torch.all(y[:, 0, 2] > 0)  # the root has positive depth
    assert model.causal and model.receptive_field == model.config.receptive_field


def test_wrong_shapes_are_named(model):
    with pytest.raises(ValueError, match=r"\(2, %d, 16, 3\)" % model.receptive_field):
        model(torch.zeros(2, model.receptive_field, 16, 3))


def test_missing_joints_are_ignored(model):
    x = _inputs(3, model.receptive_field)
    x[:, :, 5, 2] = 0.0  # left knee missing everywhere
    a = model(x)
    x[:, :, 5, :2] = 123.0  # garbage coordinates for the missing joint
    assert torch.allclose(a, model(x), atol=1e-5)


def test_transformer_is_causal_and_dense_matches_last():
    torch.manual_seed(0)
    m = build_model(TransformerConfig(d_model=32, layers=2, heads=2)).eval()
    x = _inputs(2, 27)
    dense = m(x, dense=True)
    assert dense.shape == (2, 27, 17, 3)
    assert torch.allclose(dense[:, -1], m(x), atol=1e-5)
    x2 = x.clone()
    x2[:, 20:, :, :2] += 0.1  # change the future of frame 19
    dense2 = m(x2, dense=True)
    assert torch.allclose(dense[:, :20], dense2[:, :20], atol=1e-5)
    assert not torch.allclose(dense[:, 20:], dense2[:, 20:], atol=1e-4)


def test_current_frame_shortcut_equals_the_full_encoder_for_the_shipped_architecture():
    """At inference the last layer computes only the current token; it must equal the full pass."""
    torch.manual_seed(1)
    cfg = TransformerConfig(receptive_field=81, token_stride=3, d_model=32, layers=3, heads=2,
                            frame_hidden=64, head_hidden=64)
    m = build_model(cfg).eval()
    x = _inputs(3, 81)
    with torch.no_grad():
        assert torch.allclose(m(x), m(x, dense=True)[:, -1], atol=1e-5)


def test_strided_tokens_end_at_the_current_frame():
    m = build_model(TransformerConfig(receptive_field=81, token_stride=3, d_model=32, layers=1, heads=2))
    frames = m.token_frames()
    assert frames[-1] == 80 and len(frames) == 27 and all(b - a == 3 for a, b in zip(frames, frames[1:]))


def test_mlp_intermediate_supervision_heads():
    m = build_model(MLPConfig(hidden=64, blocks=4, aux_after=2)).train()
    out, aux = m(_inputs(4, 1), aux=True)
    assert out.shape == (4, 17, 3) and len(aux) == 1 and aux[0].shape == (4, 17, 3)
    assert len(build_model(MLPConfig(hidden=64)).train()(_inputs(4, 1), aux=True)[1]) == 0


def test_dropout_can_be_switched_off():
    m = build_model(MLPConfig(hidden=64, dropout=0.5)).train()
    x = _inputs(8, 1)
    assert not torch.allclose(m(x), m(x))
    set_dropout(m, 0.0)
    m.eval()  # batch norm statistics fixed too
    assert torch.allclose(m(x), m(x))


def test_config_round_trip_and_unknown_fields():
    from dataclasses import asdict

    cfg = TransformerConfig(receptive_field=81, token_stride=3)
    assert config_from_dict(asdict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown transformer config fields: widht"):
        config_from_dict({"kind": "transformer", "widht": 3})
    with pytest.raises(ValueError, match="unknown model kind"):
        config_from_dict({"kind": "lstm"})


def test_real_time_cost_of_the_default_architecture():
    cost = model_cost(build_model(TransformerConfig()))
    assert cost["parameters"] < 1e6
    assert 5e6 < cost["flops_per_frame"] < 1e8  # tens of MFLOPs per frame: real time on a CPU


def test_sanitize_keypoints_turns_detector_nans_into_missing_joints():
    kp = np.ones((2, 17, 3), dtype=np.float32)
    kp[0, 3, 0] = np.nan
    kp[1, 4, 2] = np.inf
    kp[1, 5, 2] = 1.7
    out = sanitize_keypoints(kp)
    assert np.isfinite(out).all()
    assert out[0, 3, 2] == 0 and out[1, 4, 2] == 0 and out[1, 5, 2] == 1.0 and out[0, 2, 2] == 1.0
    with pytest.raises(ValueError, match=r"got \(2, 33, 3\)"):
        sanitize_keypoints(np.zeros((2, 33, 3)))


def _project(points: torch.Tensor) -> torch.Tensor:
    return points[..., :2] / points[..., 2:3]


@pytest.mark.parametrize("config", [TransformerConfig(d_model=32, layers=2, heads=2), MLPConfig(hidden=64)], ids=["tf", "mlp"])
def test_body_size_prior_fixes_the_bone_sum_and_keeps_the_projection(config):
    """A size prior rescales the whole skeleton about the camera: every person gets the prior's
    bone-length sum, and the 2D the skeleton projects to (what the detector saw) is unchanged."""
    from dataclasses import replace

    from engines.models import bone_sum

    torch.manual_seed(0)
    free = build_model(config).eval()
    sized = build_model(replace(config, body_size_m=3.95)).eval()
    sized.load_state_dict(free.state_dict())  # same weights: the prior adds no parameters
    x = _inputs(6, free.receptive_field)
    a, b = free(x), sized(x)
    assert not torch.allclose(bone_sum(a), torch.full((6,), 3.95), atol=0.05)  # the free model's own guess
    assert torch.allclose(bone_sum(b), torch.full((6,), 3.95), atol=1e-4)
    assert torch.allclose(_project(a), _project(b), atol=1e-5)
    assert torch.allclose(a[:, 0] / a[:, 0].norm(dim=-1, keepdim=True), b[:, 0] / b[:, 0].norm(dim=-1, keepdim=True), atol=1e-5)


def test_body_size_prior_is_checked_and_numpy_bone_sum_agrees():
    from engines.models import bone_sum, check_height, height_scale

    with pytest.raises(ValueError, match="body_size_m"):
        TransformerConfig(body_size_m=0.4)  # a bone sum of 40 cm is not an adult
    pts = np.random.default_rng(0).normal(size=(4, 17, 3))
    assert np.allclose(bone_sum(pts), bone_sum(torch.from_numpy(pts)).numpy())
    assert height_scale(0.42 * 3.95, 3.95) == pytest.approx(1.0)
    assert height_scale(1.9, 3.95) == pytest.approx(1.9 / (0.42 * 3.95))
    with pytest.raises(ValueError, match="metres"):
        check_height(175)  # centimetres by mistake
    with pytest.raises(ValueError, match="predicts the body size itself"):
        height_scale(1.8, 0.0)


def test_old_configs_without_a_size_prior_still_load():
    doc = {k: v for k, v in asdict_config(TransformerConfig()).items() if k != "body_size_m"}
    assert config_from_dict(doc).body_size_m == 0.0


def asdict_config(config):
    from dataclasses import asdict

    return asdict(config)
