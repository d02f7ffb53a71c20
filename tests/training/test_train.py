"""`training train`: checkpoints, resume, learning on real mocap, torchrun with two processes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engines.checkpoint import load_checkpoint


def _config(tmp_path, archive, *, epochs=2, steps=3, model="transformer", extra=""):
    models = {
        "transformer": 'kind = "transformer"\nreceptive_field = 27\nd_model = 32\nlayers = 1\nheads = 2',
        "mlp": 'kind = "mlp"\nhidden = 128\nblocks = 4\naux_after = 2',
    }
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f"""
[data]
motion = "{archive}"
validation_groups = ["09"]
[model]
{models[model]}
[train]
epochs = {epochs}
steps_per_epoch = {steps}
batch_size = 16
val_windows = 64
lr = 3e-3
out = "{tmp_path / 'run'}"
{extra}
""")
    return cfg


def _train(*args, env=None):
    return subprocess.run([sys.executable, "-m", "training.cli", "train", *args, "--quiet"],
                          capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_training_writes_checkpoints_curves_and_resumes(tmp_path, cmu_archive_path):
    cfg = _config(tmp_path, cmu_archive_path, epochs=2, steps=3, model="mlp", extra="dropout_off_at = 0.5")
    res = _train("--config", str(cfg))
    assert res.returncode == 0, res.stderr
    run = tmp_path / "run"
    for name in ("best.safetensors", "last.safetensors", "state.pt", "history.json", "curves.png"):
        assert (run / name).is_file(), name
    model, meta = load_checkpoint(run / "last.safetensors")
    assert meta["training"]["validation_groups"] == ["09"] and "09" not in meta["training"]["train_groups"]
    assert model.config.aux_after == 2
    # resume to 4 epochs: the history continues instead of restarting
    cfg.write_text(cfg.read_text().replace("epochs = 2", "epochs = 4"))
    res = _train("--config", str(cfg), "--resume")
    assert res.returncode == 0, res.stderr
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_short_run_learns(tmp_path, cmu_archive_path):
    cfg = _config(tmp_path, cmu_archive_path, epochs=3, steps=25)
    assert _train("--config", str(cfg)).returncode == 0
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist[-1]["val_clean_mpjpe_mm"] < 0.6 * hist[0]["val_clean_mpjpe_mm"] or hist[-1]["val_clean_mpjpe_mm"] < 200


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, cmu_archive_path):
    cfg = _config(tmp_path, cmu_archive_path, epochs=1, steps=2)
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training.cli", "train", "--config", str(cfg), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    _, meta = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert meta["training"]["processes"] == 2


@pytest.mark.slow
def test_fine_tuning_starts_from_a_checkpoint(tmp_path, cmu_archive_path):
    first = _config(tmp_path, cmu_archive_path, epochs=1, steps=12, model="mlp")
    assert _train("--config", str(first)).returncode == 0
    trained = json.loads((tmp_path / "run" / "history.json").read_text())[-1]["val_clean_mpjpe_mm"]
    ckpt = tmp_path / "run" / "last.safetensors"
    (tmp_path / "ft").mkdir()
    tuned = _config(tmp_path / "ft", cmu_archive_path, epochs=1, steps=1, model="mlp",
                    extra=f'init = "{ckpt}"')
    text = tuned.read_text().replace("lr = 3e-3", "lr = 1e-6")
    tuned.write_text(text.replace("[data]", "[data]\ncamera_distance_m = [2.0, 9.0]"))
    assert _train("--config", str(tuned)).returncode == 0
    start = json.loads((tmp_path / "ft" / "run" / "history.json").read_text())[0]["val_clean_mpjpe_mm"]
    assert abs(start - trained) < 0.1 * trained  # one tiny step from the trained weights, not from scratch
    # another architecture cannot be fine-tuned from it
    other = _config(tmp_path / "ft", cmu_archive_path, epochs=1, steps=1, extra=f'init = "{ckpt}"')
    res = _train("--config", str(other))
    assert res.returncode == 2 and "another architecture" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("text,message", [
    ('[data]\nmotion = "x.npz"\ncamera_distance_m = [5, 1]\n', "camera_distance_m must be [near, far]"),
    ('[data]\nmotion = "x.npz"\n[train]\nepochz = 3\n', "unknown key(s) in [train]: epochz"),
    ('[data]\nmotion = "x.npz"\n[model]\nkind = "lstm"\n', "unknown model kind"),
    ("[data\n", "not valid TOML"),
])
def test_bad_configs_are_one_clear_sentence(tmp_path, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    res = _train("--config", str(cfg))
    assert res.returncode == 2 and message in res.stderr and "bad.toml" in res.stderr
    assert "Traceback" not in res.stderr


def test_every_example_config_loads_and_points_at_the_shared_mocap():
    from training.config import load_config
    from tests.conftest import MOCAP, REPO

    configs = sorted((REPO / "training" / "configs").glob("*.toml"))
    assert {c.stem for c in configs} >= {"transformer27", "transformer81", "transformer243", "mlp_baseline", "mlp_deep"}
    for path in configs:
        assert load_config(path).data.motion == MOCAP.resolve()
    # the baseline is trained on exactly the default model's data, split, noise and schedule
    a, b = load_config(configs[0].parent / "transformer27.toml"), load_config(configs[0].parent / "mlp_baseline.toml")
    assert a.data == b.data
    assert (a.train.epochs, a.train.steps_per_epoch, a.train.batch_size, a.train.noise) == \
        (b.train.epochs, b.train.steps_per_epoch, b.train.batch_size, b.train.noise)
