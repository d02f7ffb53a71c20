"""Training configuration: frozen dataclasses built once from a TOML file.

Example (``training/configs/transformer27.toml``)::

    [data]
    motion = "../shared/data/cmu-mocap"   # a folder of BVH files or a prepared .npz archive
    validation_groups = ["02", "06", "09"] # subjects never trained on
    fps = 30

    [model]                                # any engines.models config field
    kind = "transformer"
    receptive_field = 27

    [train]
    epochs = 40
    steps_per_epoch = 250
    batch_size = 64
    lr = 1e-3
    seed = 0
    out = "runs/transformer27"

Relative paths are resolved against the config file's folder, so a config in
``training/configs/`` can point at ``../../../shared`` and work from any working directory.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # engines.models imports torch; the CLI reads configs without it
    from engines.models import ModelConfig

__all__ = ["ConfigError", "DataConfig", "TrainConfig", "MethodConfig", "METHODS", "RunConfig", "load_config"]


# ``[train] method``: how the lifter learns (training/methods/; supervised = from 3D labels).
METHODS = ("supervised", "adversarial", "multiview", "ordinal")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class DataConfig:
    motion: Path
    validation_groups: tuple[str, ...] = ("02", "06", "09")
    fps: float = 30.0
    group_balance: float = 0.5  # sample frames with weight (group size)^-balance: salsa does not dominate
    camera_distance_m: tuple[float, float] = (2.0, 6.0)  # virtual cameras' horizontal distance range


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    steps_per_epoch: int = 250
    batch_size: int = 64
    lr: float = 1e-3
    lr_final: float = 1e-5
    weight_decay: float = 0.01
    seed: int = 0
    noise: str = "detector"  # clean | detector
    dropout_off_at: float = 0.0  # fraction of training after which dropout is 0 (0.5: half way); 0 = never
    root_weight: float = 0.1
    velocity_weight: float = 0.5
    aux_weight: float = 0.5  # intermediate supervision heads
    val_windows: int = 2048
    val_every: int = 1  # epochs
    threads: int = 0  # torch intra-op threads per process; 0 = torch's default
    max_minutes: float = 0.0  # wall-clock budget: the schedule follows time when that is further along, and training
    # stops after the epoch that reaches it (0 = no budget: run all epochs)
    workers: int = 0  # processes synthesising batches in the background (GPU runs); 0 = in the training loop
    out: Path = Path("runs/lifter")
    init: str = ""  # start from this checkpoint's weights ("default" = the shipped model; same architecture)
    method: str = "supervised"  # supervised | adversarial | multiview | ordinal (training/methods/)


@dataclass(frozen=True)
class MethodConfig:
    """Settings of the learning methods without full 3D labels (``[method]``; see training/methods/).

    adversarial: ``gen_steps`` generator steps per discriminator step, ``disc_lr``, weights of the
    adversarial term, the 2D reprojection term and the body-orientation heuristic, and
    ``disc3d = true`` for a supervised GAN (3D labels plus a discriminator on 3D poses).
    multiview: ``views`` virtual cameras per synthetic rig, ``consistency_weight``,
    ``triangulation_weight`` (the views' triangulated 3D as a label-free target), and
    ``real_clips``: folders of synchronised calibrated videos (e.g. ../shared/media/pose2sim-demo)
    mixed into training with probability ``real_fraction``.
    ordinal: ``tolerance_m`` (the "roughly equal" band), ``ordinal_weight``.
    """

    gen_steps: int = 3
    disc_lr: float = 2e-4
    adversarial_weight: float = 0.1
    reprojection_weight: float = 1.0
    heuristic_weight: float = 1.0
    size_weight: float = 1.0  # adversarial, ordinal: body-size prior (scale is not observable without 3D)
    disc3d: bool = False
    views: int = 4
    consistency_weight: float = 5.0  # metres vs reprojection in body sizes: 5 learnt faster in short runs
    triangulation_weight: float = 5.0  # pull towards the 3D triangulated from the views (0 = off)
    real_clips: tuple[str, ...] = ()
    real_fraction: float = 0.2
    tolerance_m: float = 0.05
    ordinal_weight: float = 1.0


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    source: Path | None = None
    method: MethodConfig = MethodConfig()


def _build(cls, table: dict[str, Any], path: Path, section: str, base: Path):
    known = {f.name: f for f in fields(cls)}
    unknown = set(table) - set(known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    kwargs = {}
    for key, value in table.items():
        kind = known[key].type
        if "Path" in str(kind):
            value = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
        elif "tuple[float" in str(kind):
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ConfigError(f"{path}: [{section}] {key} must be a list of numbers, got {value!r}") from None
        elif "tuple" in str(kind):
            value = tuple(str(v) for v in value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{path}: [{section}] {exc}") from None


def load_config(path: str | Path) -> RunConfig:
    from engines.models import config_from_dict

    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(doc) - {"data", "model", "train", "method"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}; expected [data], [model], [train], [method]")
    if "data" not in doc or "motion" not in doc["data"]:
        raise ConfigError(f"{path}: [data] motion = <folder or .npz> is required")
    base = path.resolve().parent
    data = _build(DataConfig, doc["data"], path, "data", base)
    try:
        model = config_from_dict(dict(doc.get("model", {"kind": "transformer"})))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: [model] {exc}") from None
    train = _build(TrainConfig, doc.get("train", {}), path, "train", base)
    lo, hi = (data.camera_distance_m + (0.0, 0.0))[:2]
    if len(data.camera_distance_m) != 2 or not 0.5 <= lo <= hi:
        raise ConfigError(f"{path}: [data] camera_distance_m must be [near, far] metres with 0.5 <= near <= far, "
                          f"got {list(data.camera_distance_m)}")
    if train.noise not in ("clean", "detector"):
        raise ConfigError(f"{path}: [train] noise must be 'clean' or 'detector', got {train.noise!r}")
    if train.method not in METHODS:
        raise ConfigError(f"{path}: [train] method must be one of {', '.join(METHODS)}, got {train.method!r}")
    method = _build(MethodConfig, doc.get("method", {}), path, "method", base)
    if method.real_clips:  # folders are relative to the config file, like every other path
        method = replace(method, real_clips=tuple(str((base / c).resolve()) for c in method.real_clips))
    return RunConfig(data=data, model=model, train=train, source=path.resolve(), method=method)
