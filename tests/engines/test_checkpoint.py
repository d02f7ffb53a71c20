"""Checkpoints: safe format, metadata, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from engines.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from engines.models import MLPConfig, TransformerConfig, build_model


def _model():
    torch.manual_seed(0)
    return build_model(TransformerConfig(d_model=32, layers=1, heads=2)).eval()


def test_round_trip_reproduces_outputs_and_metadata(tmp_path):
    m = _model()
    path = save_checkpoint(tmp_path / "m.safetensors", m, {"metrics": {"mpjpe_mm": 33.0}})
    loaded, meta = load_checkpoint(path)
    x = torch.rand(2, 27, 17, 3)
    assert torch.equal(m(x), loaded(x))
    assert meta["receptive_field"] == 27 and meta["causal"] is True
    assert meta["config"]["d_model"] == 32 and meta["metrics"]["mpjpe_mm"] == 33.0
    assert meta["joint_names"][0] == "pelvis" and meta["input"]["coords"] == "screen"
    # safetensors: an 8-byte header length then JSON, no pickle opcodes
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    json.loads(raw[8 : 8 + n])
    assert b"\x80\x04" not in raw[:2]


def test_checkpoint_for_another_architecture_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    path = save_checkpoint(tmp_path / "m.safetensors", _model())
    meta = read_metadata(path)
    meta["config"]["d_model"] = 64  # metadata says one architecture, weights are another
    save_file(load_file(str(path)), str(tmp_path / "x.safetensors"), metadata={"posestream": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="do not fit the transformer architecture"):
        load_checkpoint(tmp_path / "x.safetensors")


def test_corrupt_and_foreign_files(tmp_path):
    from safetensors.torch import save_file

    path = save_checkpoint(tmp_path / "m.safetensors", build_model(MLPConfig(hidden=32)))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_checkpoint(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_checkpoint(junk)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    with pytest.raises(CheckpointError, match="not a lifter checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    import safetensors.torch

    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    target = tmp_path / "b.safetensors"
    good = save_checkpoint(target, _model())
    before = good.read_bytes()
    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(OSError):
        save_checkpoint(target, _model())
    assert [p.name for p in tmp_path.iterdir()] == ["b.safetensors"]
    assert target.read_bytes() == before  # the previous checkpoint survives intact


def test_the_default_model_ships_in_the_package():
    from engines.checkpoint import DEFAULT_CHECKPOINT

    model, meta = load_checkpoint("default")
    assert DEFAULT_CHECKPOINT.stat().st_size <= 20 * 1024 * 1024
    assert meta["causal"] and meta["config"]["kind"] == "transformer" and model.receptive_field == 27
    assert set(meta["training"]["validation_groups"]).isdisjoint(meta["training"]["train_groups"])


def test_metadata_can_be_extended_without_touching_weights(tmp_path):
    from engines.checkpoint import update_metadata

    m = _model()
    path = save_checkpoint(tmp_path / "m.safetensors", m)
    update_metadata(path, {"metrics": {"evaluation": {"mpjpe_mm": 50.0}}})
    loaded, meta = load_checkpoint(path)
    assert meta["metrics"]["evaluation"]["mpjpe_mm"] == 50.0 and meta["receptive_field"] == 27
    x = torch.rand(1, 27, 17, 3)
    assert torch.equal(loaded(x), m(x))
