"""The gravity direction in the camera frame, learned from how a person looks: ``UpModel``.

Cameras are rarely level. ``UpModel.predict`` takes windows of 2D keypoints, exactly the lifter's
input (``engines.models``: (N, T, 17, 3) screen u, v and confidence, oldest frame first,
confidence 0 = missing joint, before T frames exist the first repeats), and returns for each
window the world's **up direction in the camera frame** (OpenCV axes: x right, y down,
z forward; a level camera sees up as (0, -1, 0), one pitched down by theta as
(0, -cos theta, -sin theta)) and a confidence in [0, 1]. It sees the tilt in what people's
bodies do in perspective: standing and walking bodies are upright on average, their vertical
lines converge towards the vertical vanishing point, the feet are farther from a camera that looks
down than the head. One window is one noisy vote; a runtime fuses many (``realtime.world``).

Network: every ``stride``-th frame of the window, counting back from the newest, is described
by its joints relative to the window's 2D centre and spread (``window_features``), plus the
centre, log spread and visible fraction themselves (the person's place in the image matters in
perspective); a small MLP maps them to a 3-vector (the direction) and a concentration ``kappa``
of a von Mises-Fisher distribution over directions, trained by its negative log likelihood
(``training.up``). ``confidence = 1 - exp(-kappa / kappa_ref)``: with ``kappa_ref = 200`` a
confidence of 0.63 means an expected angular error of about sqrt(pi / (2 kappa)) = 5 degrees;
``kappa = -kappa_ref * log(1 - confidence)`` undoes it. A window with fewer than
``MIN_VISIBLE_JOINTS`` joints seen gets confidence 0 and the level prior (0, -1, 0).

Inference is NumPy only (two matrix products per window); ``UpNet`` is the same network in torch
for training, and a test holds the two equal. Checkpoints are safetensors files whose metadata
key ``posestream`` holds JSON: ``{"format": "posestream-up", "frames", "stride", "hidden",
"layers", "kappa_ref", ...}``; loading bounds every field and checks it against the tensors.

Floor: ``ANKLE_HEIGHT_M`` is how high the canonical ankle joint sits above the floor when the
foot rests on it, for estimating the floor plane from the feet.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.checkpoint import CheckpointError
from engines.skeleton import CANONICAL

__all__ = [
    "ANKLE_HEIGHT_M",
    "DEFAULT_UP_MODEL",
    "MIN_VISIBLE_JOINTS",
    "UpConfig",
    "UpModel",
    "UpNet",
    "angle_deg",
    "window_features",
]

ANKLE_HEIGHT_M = 0.09
"""Height of the canonical ankle joint above the floor with the foot flat on it, metres.

Measured on the shared CMU motion (``../shared/data/cmu-mocap`` prepared at 30 fps by ``training
prepare``: 169 clips, 14 groups) with ``training.up.measure_ankle_height``: per clip, the median
height of the lower ankle over the frames where that ankle is still (speed < 0.15 m/s, a foot in
stance), then the median over the 155 clips with at least 10 such frames: 0.091 m, kept as
0.09 m. Per CMU subject the median ranges over 0.076-0.120 m (shoes, marker placement). The
prepared joints keep the capture's floor at y = 0 only roughly: the archive is not levelled per
clip, and the ``indian`` and ``martial`` takes stand about 0.07-0.08 m lower (their medians are
0.02 and 0.01 m), a few other clips (a step, a box) decimetres off it. Use the number for the
gap between ankle joint and floor, not the archive's y = 0 as the floor. ``training.synth`` uses 0.08 m for the same gap.
"""

MIN_VISIBLE_JOINTS = 5
"""Windows whose frames show fewer distinct joints than this say nothing about the tilt."""

DEFAULT_UP_MODEL = Path(__file__).resolve().parent / "assets" / "up_default.safetensors"
FORMAT = "posestream-up"
LEVEL_UP = np.array([0.0, -1.0, 0.0])
_J = CANONICAL.num_joints
_BOUNDS = {"frames": (1, 243), "stride": (1, 243), "hidden": (4, 4096), "layers": (1, 8)}


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between direction arrays (..., 3) (need not be unit length)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@dataclass(frozen=True)
class UpConfig:
    """Architecture of an up-direction model: window length ``frames`` (T, what ``predict``
    wants), every ``stride``-th frame used counting back from the newest, an MLP of ``layers``
    hidden layers of width ``hidden``, and ``kappa_ref`` of the confidence mapping."""

    frames: int = 27
    stride: int = 3
    hidden: int = 256
    layers: int = 2
    kappa_ref: float = 200.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in _BOUNDS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise CheckpointError(f"up model {name} must be an integer in [{lo}, {hi}], got {v!r}")
        if self.stride > self.frames:
            raise CheckpointError(f"up model stride ({self.stride}) must not exceed its frames ({self.frames})")
        if not (isinstance(self.kappa_ref, (int, float)) and 1.0 <= float(self.kappa_ref) <= 1e5):
            raise CheckpointError(f"up model kappa_ref must be a number in [1, 100000], got {self.kappa_ref!r}")

    @property
    def used_frames(self) -> np.ndarray:
        """Indices into the window of the frames the model looks at, oldest first."""
        return np.arange(self.frames - 1, -1, -self.stride)[::-1].copy()

    @property
    def features(self) -> int:
        return len(self.used_frames) * _J * 3 + 4


def window_features(windows: np.ndarray, config: UpConfig) -> tuple[np.ndarray, np.ndarray]:
    """Model input (N, F) float32 from windows (N, T, 17, 3), and (N,) distinct joints seen.

    Per used frame and joint: ``(u - cu) / s``, ``(v - cv) / s`` and the confidence (0, 0, 0 for
    a missing joint), with ``(cu, cv)`` the mean and ``s`` the RMS spread of every visible joint
    of the used frames; then ``cu, cv, log s`` and the visible fraction.
    """
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 4 or w.shape[1:] != (config.frames, _J, 3):
        raise ValueError(f"up model windows must have shape (N, {config.frames}, {_J}, 3), got {w.shape}")
    w = np.ascontiguousarray(w[:, (config.frames - 1) % config.stride::config.stride])  # the used frames
    n = len(w)
    finite = np.isfinite(w.sum(-1))
    if not finite.all():  # NaN / inf count as missing, as in the lifter
        w = np.where(finite[..., None], w, np.float32(0.0))
    vis = w[..., 2] > 0
    visf = vis.astype(np.float32)
    conf = np.minimum(w[..., 2], 1.0) * visf
    xy = w[..., :2] * visf[..., None]
    count = visf.reshape(n, -1).sum(1)
    denom = np.maximum(count, 1.0)
    center = xy.reshape(n, -1, 2).sum(1) / denom[:, None]
    d = (xy - center[:, None, None]) * visf[..., None]
    spread = np.maximum(np.sqrt(np.einsum("ni,ni->n", d.reshape(n, -1), d.reshape(n, -1)) / denom), 1e-3)
    out = np.empty((n, config.features), np.float32)
    per_joint = out[:, :-4].reshape(n, w.shape[1], _J, 3)
    np.divide(d, spread[:, None, None, None], out=per_joint[..., :2])
    per_joint[..., 2] = conf
    out[:, -4:-2] = center
    out[:, -2] = np.log(spread)
    out[:, -1] = count / (w.shape[1] * _J)
    return out, vis.any(axis=1).sum(-1)


def _kappa_from_raw(raw: np.ndarray) -> np.ndarray:
    """Concentration from the network's 4th output: log kappa = 9 sigmoid(raw), kappa in [1, 8103]."""
    return np.exp(9.0 / (1.0 + np.exp(-np.clip(raw, -30.0, 30.0))))


class UpModel:
    """Per-window up direction (camera frame) and confidence, NumPy inference.

    >>> model = UpModel.load()                                       # doctest: +SKIP
    >>> up, confidence = model.predict(np.zeros((1, model.frames, 17, 3), np.float32))  # doctest: +SKIP
    """

    def __init__(self, config: UpConfig, weights: list[tuple[np.ndarray, np.ndarray]],
                 metadata: dict[str, Any] | None = None) -> None:
        self.config = config
        self.frames = config.frames
        self.weights = [(np.ascontiguousarray(W.T, dtype=np.float32), np.asarray(b, np.float32)) for W, b in weights]
        self.metadata = dict(metadata or {})

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "UpModel":
        """The model in a safetensors file (default: the shipped ``engines/assets/up_default.safetensors``);
        ``CheckpointError`` in one sentence for a file that is not one."""
        from safetensors import SafetensorError, safe_open

        p = DEFAULT_UP_MODEL if path is None else Path(path)
        if not p.is_file():
            raise CheckpointError(f"{p}: no such up model file")
        try:
            with safe_open(str(p), framework="np") as fh:
                raw = (fh.metadata() or {}).get("posestream")
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{p}: not a readable safetensors file ({exc})") from None
        try:
            meta = json.loads(raw) if raw is not None else None
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{p}: not an up model (its metadata lacks format '{FORMAT}')")
        try:
            config = UpConfig(**{k: meta[k] for k in ("frames", "stride", "hidden", "layers", "kappa_ref")})
        except KeyError as exc:
            raise CheckpointError(f"{p}: up model metadata lacks {exc.args[0]!r}") from None
        except CheckpointError as exc:
            raise CheckpointError(f"{p}: {exc}") from None
        shapes = UpNet.shapes(config)
        weights = []
        for i, (out_f, in_f) in enumerate(shapes):
            W, b = tensors.get(f"layers.{i}.weight"), tensors.get(f"layers.{i}.bias")
            if W is None or b is None or W.shape != (out_f, in_f) or b.shape != (out_f,):
                got = None if W is None else tuple(W.shape)
                raise CheckpointError(f"{p}: layer {i} should be {out_f}x{in_f} for its metadata "
                                      f"({config}), the file holds {got}")
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise CheckpointError(f"{p}: layer {i} holds non-finite weights")
            weights.append((W, b))
        if len(tensors) != 2 * len(shapes):
            raise CheckpointError(f"{p}: holds {len(tensors)} tensors, its metadata describes {2 * len(shapes)}")
        return cls(config, weights, meta)

    def raw(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs (N, 4) and distinct joints seen (N,) for windows (N, T, 17, 3)."""
        h, seen = window_features(windows, self.config)
        last = len(self.weights) - 1
        for i, (Wt, b) in enumerate(self.weights):
            h = h @ Wt + b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h, seen

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``up`` (N, 3) unit vectors in the camera frame and ``confidence`` (N,) in [0, 1] for
        windows (N, T, 17, 3) of the lifter's input format (module docstring)."""
        out, seen = self.raw(windows)
        m = out[:, :3].astype(np.float64)
        norm = np.sqrt((m * m).sum(-1))
        blind = (seen < MIN_VISIBLE_JOINTS) | (norm < 1e-9)
        up = m / np.maximum(norm, 1e-12)[:, None]
        kappa = _kappa_from_raw(out[:, 3].astype(np.float64))
        confidence = 1.0 - np.exp(-kappa / self.config.kappa_ref)
        if blind.any():
            up[blind] = LEVEL_UP
            confidence[blind] = 0.0
        return up, confidence

    def kappa(self, confidence: np.ndarray) -> np.ndarray:
        """The von Mises-Fisher concentration a confidence stands for (inf-safe at 1)."""
        c = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0 - 1e-12)
        return -self.config.kappa_ref * np.log1p(-c)


def _torch():
    import torch
    from torch import nn

    return torch, nn


class UpNet:
    """The torch twin of ``UpModel``'s network, for training: ``UpNet.build(config)`` returns an
    ``nn.Module`` mapping features (N, F) to raw outputs (N, 4) (3 direction, 1 concentration)."""

    @staticmethod
    def shapes(config: UpConfig) -> list[tuple[int, int]]:
        dims = [config.features] + [config.hidden] * config.layers + [4]
        return [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]

    @staticmethod
    def build(config: UpConfig):
        torch, nn = _torch()

        class _Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.config = config
                self.layers = nn.ModuleList(nn.Linear(i, o) for o, i in UpNet.shapes(config))

            def forward(self, x):
                if x.ndim != 2 or x.shape[1] != config.features:
                    raise ValueError(f"UpNet input must have shape (N, {config.features}), got {tuple(x.shape)}")
                for i, layer in enumerate(self.layers):
                    x = layer(x)
                    if i < len(self.layers) - 1:
                        x = torch.relu(x)
                return x

        return _Net()

    @staticmethod
    def to_numpy(net, metadata: dict[str, Any] | None = None) -> UpModel:
        """An ``UpModel`` with the torch network's current weights."""
        weights = [(layer.weight.detach().cpu().numpy(), layer.bias.detach().cpu().numpy()) for layer in net.layers]
        return UpModel(net.config, weights, metadata)

    @staticmethod
    def save(net, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
        """Write the network as an up-model safetensors file (atomically); returns the path."""
        from safetensors.numpy import save_file

        from engines.fileio import atomic_path

        c = net.config
        meta = {"format": FORMAT, "frames": c.frames, "stride": c.stride, "hidden": c.hidden,
                "layers": c.layers, "kappa_ref": c.kappa_ref, **(extra or {})}
        tensors = {}
        for i, layer in enumerate(net.layers):
            tensors[f"layers.{i}.weight"] = layer.weight.detach().cpu().numpy().astype(np.float32)
            tensors[f"layers.{i}.bias"] = layer.bias.detach().cpu().numpy().astype(np.float32)
        with atomic_path(path, suffix=".safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={"posestream": json.dumps(meta)})
        return Path(path)
