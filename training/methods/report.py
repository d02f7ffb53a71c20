"""``training methods-report``: one table comparing the ways of learning a lifter.

Every method trains the same small model (a single-frame residual MLP, 512 wide, two blocks)
on the same training subjects for the same wall-clock budget, and is evaluated by
``training evaluate`` on the same validation subjects, cameras and noise as the shipped model
(``--jitter 0.015 --outliers 0.05``, two virtual cameras per clip; see the model card).
"multi-view + test-time adaptation" is the multi-view model adapted, without labels, on the
evaluation's own views of the validation clips (2 calibrated views per clip) and then evaluated
on them. Below the table,
the same adaptation on one clip at a time: a synthetic 4-view clip of a validation subject
(truth known) and the real 4-camera Pose2Sim clip (consistency with triangulation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.models import MLPConfig
from training.config import DataConfig, MethodConfig, RunConfig, TrainConfig

__all__ = ["HEADER", "ReportSettings", "methods_report"]

HEADER = """# Learning without 3D labels

3D labels are scarce. Besides supervised training, `training train --method ...` offers three
ways to learn a lifter from weaker signals, and `training adapt` fine-tunes a lifter on a
user's own multi-view clip. All use the same models, data, split, evaluation and checkpoint
format (`engines/checkpoint.py`); code in `training/methods/`.

| `--method` | learns from | idea |
| --- | --- | --- |
| `supervised` (default) | 3D mocap filmed by virtual cameras | the shipped lifter's training ([model card](model-card.md)) |
| `adversarial` | 2D poses only | Kudo et al., unsupervised adversarial learning of 3D pose from 2D joints: the lifter's 3D, turned by a random angle about the camera's vertical axis and projected, must fool a 2D pose discriminator; the 3D must reproject onto the observed 2D; the body-orientation heuristic (sign of the face/shoulder angle) penalises depth-flipped poses; 3 generator steps per discriminator step; a body-size prior fixes the scale that 2D cannot. `[method] disc3d = true`: a supervised GAN instead (the supervised loss plus a discriminator on 3D poses). |
| `multiview` | synchronised views + calibrated cameras, no 3D | multi-view consistency: each view is lifted, moved into every other camera and projected; penalised: reprojection against each view's 2D, disagreement of the views' 3D (shape and position), and distance from the 3D triangulated from the views' 2D (robust DLT that leaves out a disagreeing view: label-free pseudo-targets, as in EpipolarPose; `[method] triangulation_weight`, 0 = off). Trains on synthetic rigs (4 virtual cameras around mocap) and, with `[method] real_clips`, real videos (`../shared/media/pose2sim-demo`, 2D from our MediaPipe detector, cached). |
| `ordinal` | pairwise depth order ("nearer", "farther", "level within 5 cm") | Pavlakos et al., ordinal depth supervision: a ranking loss on every joint pair plus the 2D reprojection and the size prior. |

`training adapt --checkpoint CKPT --clip FOLDER|CLIP.npz [--calibration FILE] --out ADAPTED.safetensors`
fine-tunes on a clip with the multi-view loss (no labels; triangulation term included) and prints before/after on that clip:
reprojection (px), disagreement between views (mm), distance to the triangulated 3D (mm) and, for
a synthetic clip with truth (`training make-clip --data ../shared/data/cmu-mocap --clip 09/09_01 --out clip.npz`),
MPJPE/N-MPJPE/P-MPJPE. A folder holds synchronised videos (sorted by name, video i = camera i) and
one calibration (`*.qca.txt`, `calibration.toml` or `.json`). Views with different frame counts,
a calibration with a camera too few or too many, and a view in which nobody is detected are
refused with one sentence (exit 2), before anything is written.

`training evaluate` reports `ordinal_accuracy` (fraction of joint pairs whose camera-frame depth
order, with a 5 cm "level" band, is right; `training.metrics.ordinal_depth_agreement`) beside
the existing keys.

## Comparison

Produced by one command (same validation subjects CMU 02, 06, 09, two fixed virtual cameras per
clip, `--jitter 0.015 --outliers 0.05` as in the [model card](model-card.md); the same small model for every
method: residual MLP, 512 wide, 2 blocks; each trained from scratch for the same wall-clock budget):

```bash
nice -n 10 python -m training.cli methods-report --data ../shared/data/cmu-mocap --minutes 2 --adapt-steps 100 --runs runs/methods --out docs/methods.md
```

MPJPE in parentheses: the method cannot observe scale (2D and depth order say nothing about
size), so it comes from the body-size prior; compare N-MPJPE and P-MPJPE. "multi-view +
test-time adaptation" is the multi-view model adapted without labels on the evaluation's own
views of the validation clips (2 calibrated views per clip), then evaluated on them.

"""
"""The prose above the table in docs/methods.md (the command writes the whole file)."""

SHARED_CLIP = Path(__file__).resolve().parents[2].parent / "shared" / "media" / "pose2sim-demo"
NOISE = {"jitter": 0.015, "outliers": 0.05}


@dataclass(frozen=True)
class ReportSettings:
    data: str
    minutes: float = 3.0
    out_dir: str = "runs/methods"
    adapt_steps: int = 150
    real_clip: str = str(SHARED_CLIP)


def _config(s: ReportSettings, name: str, method: str, **method_kw) -> RunConfig:
    return RunConfig(
        data=DataConfig(motion=Path(s.data).resolve()),
        model=MLPConfig(hidden=512, blocks=2, dropout=0.25),
        train=TrainConfig(epochs=100000, steps_per_epoch=50, batch_size=64, lr=1e-3, dropout_off_at=0.5,
                          val_windows=512, max_minutes=s.minutes, out=Path(s.out_dir).resolve() / name, method=method),
        method=MethodConfig(**method_kw),
    )


def _row(result: dict[str, Any]) -> dict[str, float]:
    o = result["overall"]
    return {k: o[k] for k in ("mpjpe_mm", "n_mpjpe_mm", "p_mpjpe_mm", "ordinal_accuracy")}


def _validation_clips(data: str, checkpoint: Path):
    """The evaluation's own views of every validation clip, as calibrated multi-view clips."""
    from engines.checkpoint import read_metadata
    from training.data import open_motion, split_by_groups
    from training.evaluate import EvalSettings, clip_views, noise_for
    from training.methods.clips import MultiViewClip

    settings = EvalSettings(**NOISE)
    archive = open_motion(data, progress=False)
    groups = tuple(read_metadata(checkpoint)["training"]["validation_groups"])
    split = split_by_groups(archive, groups)
    clips = []
    for ci in sorted(set(archive.clip[split.val_frames].tolist())):
        views = clip_views(archive, ci, settings, noise_for(settings))
        clips.append(MultiViewClip(
            np.stack([b.inputs[0] for b in views]), [b.cameras.camera(0, f"view{k}") for k, b in enumerate(views)],
            np.stack([b.cameras.size[0] for b in views]).astype(float), float(archive.fps),
            tuple(f"view{k}" for k in range(len(views)))))
    return clips, archive, split


def methods_report(s: ReportSettings, progress: bool = True) -> str:
    """Train, adapt, evaluate; returns the markdown of docs/methods.md."""
    from engines.checkpoint import load_checkpoint, save_checkpoint
    from training.evaluate import EvalSettings, evaluate
    from training.methods.adapt import AdaptSettings, adapt, clip_report, improvement
    from training.methods.clips import load_clip, synthetic_clip
    from training.train import train

    real = Path(s.real_clip)
    runs = [("supervised", "supervised", {}), ("adversarial", "adversarial", {}),
            ("multiview", "multiview", {"real_clips": (str(real),)} if real.is_dir() else {}),
            ("ordinal", "ordinal", {})]
    rows: dict[str, dict[str, Any]] = {}
    evals = EvalSettings(**NOISE)
    hardware = ""
    for name, method, kw in runs:
        cfg = _config(s, name, method, **kw)
        if progress:
            print(f"== {name}: training for {s.minutes:g} min", flush=True)
        entry = train(cfg, progress=progress)
        ckpt = cfg.train.out / "last.safetensors"
        _, meta = load_checkpoint(ckpt)
        hardware = meta["training"]["hardware"]
        res = evaluate(ckpt, s.data, evals, progress=False)
        rows[name] = {**_row(res), "minutes": entry["seconds"] / 60, "epochs": entry["epoch"],
                      "steps": entry["epoch"] * cfg.train.steps_per_epoch}

    # multi-view + test-time adaptation on the evaluation's own views
    mv_ckpt = Path(s.out_dir).resolve() / "multiview" / "last.safetensors"
    clips, archive, split = _validation_clips(s.data, mv_ckpt)
    model, meta = load_checkpoint(mv_ckpt)
    t0 = time.time()
    adapt(model, clips, AdaptSettings(steps=s.adapt_steps), progress=progress)
    adapt_min = (time.time() - t0) / 60
    tta_ckpt = Path(s.out_dir).resolve() / "multiview_tta" / "last.safetensors"
    save_checkpoint(tta_ckpt, model, {"training": meta["training"]})
    rows["multiview_tta"] = {**_row(evaluate(tta_ckpt, s.data, evals, progress=False)),
                             "minutes": rows["multiview"]["minutes"] + adapt_min, "steps": rows["multiview"]["steps"]}

    # one clip at a time: synthetic 4-view validation clip with truth, and the real Pose2Sim clip
    own: dict[str, Any] = {}
    ci = int(archive.clip[split.val_frames[0]])
    syn = synthetic_clip(archive.clip_joints(ci)[:300], views=4, seed=1, fps=float(archive.fps), **NOISE)
    own["synthetic"] = _own_clip(mv_ckpt, syn, s.adapt_steps, adapt, clip_report, improvement)
    own["synthetic"]["name"] = archive.clip_names[ci]
    if real.is_dir():
        clip = load_clip(real, progress=progress)
        clip = clip.every(max(1, round(clip.fps / float(meta["training"]["fps"]))))
        own["real"] = _own_clip(mv_ckpt, clip, s.adapt_steps, adapt, clip_report, improvement)
    return _markdown(s, rows, own, hardware)


def _own_clip(ckpt, clip, steps, adapt, clip_report, improvement) -> dict[str, Any]:
    from engines.checkpoint import load_checkpoint

    model, _ = load_checkpoint(ckpt)
    before = clip_report(model, clip)
    adapt(model, [clip], __import__("training.methods.adapt", fromlist=["AdaptSettings"]).AdaptSettings(steps=steps))
    after = clip_report(model, clip)
    return {"before": before, "after": after, "gain": improvement(before, after), "frames": clip.frames,
            "views": clip.views}


def _markdown(s: ReportSettings, rows: dict[str, dict[str, Any]], own: dict[str, Any], hardware: str) -> str:
    labels = {
        "supervised": ("supervised", "all (3D)"),
        "adversarial": ("adversarial (Kudo et al.)", "none: 2D only"),
        "multiview": ("multi-view", "none: 2D + calibrated cameras"),
        "multiview_tta": ("multi-view + test-time adaptation", "none (adapted on the evaluation views)"),
        "ordinal": ("ordinal depth", "pairwise depth order only"),
    }
    scale_known = {"supervised", "multiview", "multiview_tta"}
    sup = rows["supervised"]["p_mpjpe_mm"]
    out = [
        "| method | labels used | MPJPE mm | N-MPJPE mm | P-MPJPE mm | P-MPJPE / supervised | ordinal acc. | training |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for key in ("supervised", "adversarial", "multiview", "multiview_tta", "ordinal"):
        r = rows[key]
        mp = f"{r['mpjpe_mm']:.1f}" if key in scale_known else f"({r['mpjpe_mm']:.1f})"
        steps = f"{r['steps']} steps" + (" + adaptation" if key == "multiview_tta" else "")
        out.append(f"| {labels[key][0]} | {labels[key][1]} | {mp} | {r['n_mpjpe_mm']:.1f} | {r['p_mpjpe_mm']:.1f} | "
                   f"{r['p_mpjpe_mm'] / sup:.2f}x | {r['ordinal_accuracy']:.3f} | {r['minutes']:.1f} min, {steps} |")
    table = "\n".join(out)
    budget = (f"Hardware: {hardware}, torch {torch.__version__}; budget {s.minutes:g} min of wall clock per "
              f"method, {s.adapt_steps} adaptation steps; machine shared with other jobs (timings noisy).")
    lines = [table, "", budget, ""]
    syn = own.get("synthetic")
    if syn:
        b, a, g = syn["before"], syn["after"], syn["gain"]
        lines.append(f"Test-time adaptation on its own clip, synthetic ({syn['name']}, {syn['views']} views x "
                     f"{syn['frames']} frames, truth known): MPJPE {b['mpjpe_mm']:.1f} -> {a['mpjpe_mm']:.1f} mm "
                     f"({100 * g['mpjpe_mm']:.0f}% better), P-MPJPE {b['p_mpjpe_mm']:.1f} -> {a['p_mpjpe_mm']:.1f} mm "
                     f"({100 * g['p_mpjpe_mm']:.0f}%), reprojection {b['reprojection_px']:.1f} -> {a['reprojection_px']:.1f} px.")
    real = own.get("real")
    if real:
        b, a, g = real["before"], real["after"], real["gain"]
        lines.append(f"Real Pose2Sim clip ({real['views']} cameras x {real['frames']} frames at 30 fps, MediaPipe 2D): "
                     f"distance to the triangulated 3D {b['triangulation_mm']:.0f} -> {a['triangulation_mm']:.0f} mm "
                     f"({100 * g['triangulation_mm']:.0f}% better), P-MPJPE against it "
                     f"{b.get('triangulation_p_mpjpe_mm', float('nan')):.1f} -> {a.get('triangulation_p_mpjpe_mm', float('nan')):.1f} mm, "
                     f"reprojection {b['reprojection_px']:.1f} -> {a['reprojection_px']:.1f} px, views' disagreement "
                     f"{b['disagreement_mm']:.0f} -> {a['disagreement_mm']:.0f} mm.")
    header = HEADER.replace("--minutes 2 --adapt-steps 100 --runs runs/methods ",
                            f"--minutes {s.minutes:g} --adapt-steps {s.adapt_steps} --runs {s.out_dir} ")
    return header + "\n".join(lines) + "\n"
