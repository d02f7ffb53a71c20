"""2D-to-3D lifting models: one ``nn.Module`` per idea, each built from a frozen config.

Input and output contract, shared by every model and every engine backend
--------------------------------------------------------------------------
``x``: (batch, time, joints, 3) float32 with ``time == model.receptive_field``, the canonical 17
joints (``engines.skeleton.CANONICAL``) and channels ``(u, v, confidence)``:

* ``u, v`` are **screen coordinates**: pixels rescaled so the longer image side spans [-1, 1],
  centred on the image, aspect ratio kept (``engines.camera.normalize_screen``). Landscape
  webcams and portrait phones land in one system; image size never reaches the model.
* ``confidence`` in [0, 1]; a joint with confidence 0 is *missing* and its coordinates are
  ignored (set them to anything finite, e.g. 0).
* The last frame is the current one; earlier frames are the past (the models are causal: they
  never see a future frame). Before ``receptive_field`` frames exist, repeat the first frame.

Output: (batch, joints, 3) float32, the current frame's joints in the **camera frame** (OpenCV
axes: x right, y down, z forward), metres. Row 0 (pelvis) is the estimated absolute pelvis
position (the root trajectory); the other rows are absolute as well (pelvis + root-relative
offsets), so ``out - out[:, :1]`` is the root-relative pose.

Body size: a body k times larger standing k times farther away projects to exactly the same 2D,
so a person's size is not observable from one camera. A model whose config sets ``body_size_m``
(the sum of the 16 bone lengths, :func:`bone_sum`) scales every output skeleton about the camera
centre to that size, a typical adult of its training data, instead of trusting its own guess
(which the 2D size biases: nearer people come out larger). Scaling about the camera centre keeps
the projection, so the pelvis depth moves with it. A user who knows the person's height
multiplies the whole output by ``height / reference height`` (:func:`height_scale`).

Focal-length assumption for the root: screen coordinates carry no intrinsics, so depth is
estimated as if the camera had :data:`ASSUMED_FOV_DEG` of field of view across the *longer* image
side, a typical webcam or phone. With a real field of view F the root's depth scales by about
``tan(ASSUMED_FOV/2) / tan(F/2)``; the root-relative pose does not depend on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from engines.skeleton import CANONICAL

__all__ = [
    "ASSUMED_FOV_DEG",
    "ASSUMED_FOCAL",
    "REFERENCE_BODY_RMS_M",
    "TransformerConfig",
    "MLPConfig",
    "ModelConfig",
    "PoseInput",
    "CausalTransformerLifter",
    "ResidualMLPLifter",
    "build_model",
    "bone_sum",
    "height_scale",
    "check_height",
    "config_from_dict",
    "set_dropout",
    "sanitize_keypoints",
    "model_cost",
]

ASSUMED_FOV_DEG = 60.0
ASSUMED_FOCAL = 1.0 / math.tan(math.radians(ASSUMED_FOV_DEG) / 2.0)
"""Focal length in screen units (longer side = 2 units) for :data:`ASSUMED_FOV_DEG`."""

REFERENCE_BODY_RMS_M = 0.45
"""Typical RMS distance of the 17 joints from their centroid for an adult, metres; the depth prior
``z0 = ASSUMED_FOCAL * REFERENCE_BODY_RMS_M / rms_2d`` that the network refines."""


def _check_body_size(config) -> None:
    if not (config.body_size_m == 0 or 1.0 <= config.body_size_m <= 10.0):
        raise ValueError(f"body_size_m must be 0 (off) or an adult-like bone-length sum in metres (1-10), "
                         f"got {config.body_size_m}")
    if config.body_size_m and config.joints != CANONICAL.num_joints:
        raise ValueError("body_size_m needs the canonical joint set (its bones define the size)")


def bone_sum(points):
    """Sum of the canonical skeleton's 16 bone lengths, metres: (..., 17, 3) -> (...).
    Works on NumPy arrays and torch tensors alike (the models use it inside ``forward``)."""
    parents = [p for p in CANONICAL.parents if p >= 0]
    children = [j for j, p in enumerate(CANONICAL.parents) if p >= 0]
    if isinstance(points, torch.Tensor):
        return (points[..., children, :] - points[..., parents, :]).norm(dim=-1).sum(dim=-1)
    points = np.asarray(points)
    return np.linalg.norm(points[..., children, :] - points[..., parents, :], axis=-1).sum(axis=-1)


STATURE_PER_BONE_SUM = 0.42
"""Standing height (crown to sole) per metre of :func:`bone_sum`; see :func:`height_scale`."""


def check_height(height_m: float) -> None:
    """``ValueError`` (one sentence) unless ``height_m`` is a person's height in metres."""
    if not 0.5 <= height_m <= 2.6:
        raise ValueError(f"a person's height must be given in metres (0.5-2.6), got {height_m:g}")


def height_scale(height_m: float, body_size_m: float) -> float:
    """The factor that takes a model's output (scaled to ``body_size_m``) to a person of
    ``height_m`` metres: multiply every output joint, pelvis included, by it.

    The reference height is ``STATURE_PER_BONE_SUM * body_size_m`` (1.66 m for the default model):
    the canonical skeleton stops at the ankles and the head joint, so the ratio was measured on
    upright frames of the CMU training subjects: the head joint's height above the lower ankle plus
    8 cm of ankle height, over the bone sum, is 0.414-0.420 (90th percentile per subject group)."""
    check_height(height_m)
    if body_size_m <= 0:
        raise ValueError("this model predicts the body size itself (body_size_m = 0); a height needs a size prior")
    return float(height_m / (STATURE_PER_BONE_SUM * body_size_m))


@dataclass(frozen=True)
class TransformerConfig:
    """Causal temporal transformer: one token per (strided) past frame, the last token decodes."""

    kind: Literal["transformer"] = "transformer"
    receptive_field: int = 27
    token_stride: int = 1  # use every k-th frame, always including the current one
    d_model: int = 128
    layers: int = 4
    heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    frame_hidden: int = 0  # > 0: each frame's token comes from a residual MLP of this width (else one linear layer)
    frame_blocks: int = 1  # residual blocks in that per-frame MLP
    head_hidden: int = 0  # > 0: the output head is an MLP of this width (else one linear layer)
    joints: int = CANONICAL.num_joints
    body_size_m: float = 0.0  # > 0: outputs scaled to this bone-length sum (module docstring); 0: the network's own size

    def __post_init__(self) -> None:
        _check_body_size(self)
        if self.frame_hidden < 0 or self.head_hidden < 0 or self.frame_blocks < 0:
            raise ValueError("frame_hidden, frame_blocks and head_hidden must be >= 0")
        if self.receptive_field < 1 or self.token_stride < 1:
            raise ValueError("receptive_field and token_stride must be >= 1")
        if self.d_model % self.heads:
            raise ValueError("d_model must be divisible by heads")

    @property
    def tokens(self) -> int:
        return (self.receptive_field - 1) // self.token_stride + 1


@dataclass(frozen=True)
class MLPConfig:
    """Martinez et al.'s single-frame residual MLP; ``blocks=4, aux_after=2`` is the deeper
    variant with intermediate supervision (a second output head after the second block)."""

    kind: Literal["mlp"] = "mlp"
    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.5
    aux_after: int = 0  # 0: no intermediate supervision
    joints: int = CANONICAL.num_joints
    receptive_field: int = 1
    body_size_m: float = 0.0  # as TransformerConfig.body_size_m

    def __post_init__(self) -> None:
        _check_body_size(self)
        if self.receptive_field != 1:
            raise ValueError("the residual MLP is single-frame: receptive_field must be 1")
        if not 0 <= self.aux_after < self.blocks:
            raise ValueError("aux_after must be 0 or name a block before the last")


ModelConfig = TransformerConfig | MLPConfig


def config_from_dict(doc: dict[str, Any]) -> ModelConfig:
    """Rebuild a config from its ``asdict`` form; ``ValueError`` for unknown kinds or fields."""
    kinds = {"transformer": TransformerConfig, "mlp": MLPConfig}
    kind = doc.get("kind")
    if kind not in kinds:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(kinds)}")
    cls = kinds[kind]
    allowed = {f.name for f in fields(cls)}
    unknown = set(doc) - allowed
    if unknown:
        raise ValueError(f"unknown {kind} config fields: {', '.join(sorted(unknown))}")
    return cls(**doc)


class PoseInput(nn.Module):
    """Per-frame normalisation of (u, v, conf) into position-, size- and visibility-aware features.

    For each frame: centre ``c`` = mean of the visible joints, size ``s`` = RMS distance of the
    visible joints from ``c``; features = ((uv - c) / s for visible joints, else 0), confidences,
    ``c`` and ``log s``. Output (B, T, 3J + 3).
    """

    def __init__(self, joints: int) -> None:
        super().__init__()
        self.joints = joints
        self.features = 3 * joints + 3

    def forward(self, x: torch.Tensor, frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        uv, conf = x[..., :2], x[..., 2].clamp(0.0, 1.0)
        vis = (conf > 0).to(x.dtype).unsqueeze(-1)
        n = vis.sum(dim=-2).clamp_min(1.0)  # (B, T, 1)
        centre = (uv * vis).sum(dim=-2) / n  # (B, T, 2)
        d = (uv - centre.unsqueeze(-2)) * vis
        rms = ((d * d).sum(dim=(-2, -1)) / n.squeeze(-1)).sqrt().clamp_min(1e-3)  # (B, T)
        pose = d / rms[..., None, None]
        # (..., J, 2) -> (..., 2J); with the frame count given, as a plain reshape (an ONNX export
        # then computes no shapes at run time and keeps every size but the batch known)
        flat = pose.flatten(-2) if frames is None else pose.reshape(-1, frames, 2 * self.joints)
        feats = torch.cat([flat, conf, centre, rms.log().unsqueeze(-1)], dim=-1)
        return feats, centre, rms


class _RootDecoder(nn.Module):
    """Turns network outputs into camera-frame joints (see module docstring)."""

    def __init__(self, joints: int, body_size_m: float = 0.0) -> None:
        super().__init__()
        self.joints = joints
        self.body_size_m = float(body_size_m)

    def forward(self, raw: torch.Tensor, centre: torch.Tensor, rms: torch.Tensor) -> torch.Tensor:
        rel = raw[:, : 3 * self.joints].view(-1, self.joints, 3)
        rel = rel - rel[:, :1]  # root-relative by construction
        log_dz, offset = raw[:, 3 * self.joints], raw[:, 3 * self.joints + 1 :]
        z = ASSUMED_FOCAL * REFERENCE_BODY_RMS_M / rms * torch.exp(log_dz)
        xy = (centre + offset * rms.unsqueeze(-1)) * (z / ASSUMED_FOCAL).unsqueeze(-1)
        root = torch.cat([xy, z.unsqueeze(-1)], dim=-1)
        out = rel + root.unsqueeze(1)
        if self.body_size_m > 0:  # about the camera centre: the 2D projection stays as it was
            out = out * (self.body_size_m / bone_sum(rel).clamp_min(1e-3))[:, None, None]
        return out


class _PreNormResidual(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


def _frame_encoder(features: int, config: "TransformerConfig") -> nn.Module:
    """Per-frame features -> token: a linear layer, or a residual MLP that reads the pose in
    depth before the temporal layers (the single-frame 2D-to-3D step is the hard part)."""
    if config.frame_hidden <= 0:
        return nn.Linear(features, config.d_model)
    H = config.frame_hidden
    return nn.Sequential(nn.Linear(features, H), nn.GELU(),
                         *[_PreNormResidual(H, config.dropout) for _ in range(config.frame_blocks)],
                         nn.LayerNorm(H), nn.Linear(H, config.d_model))


def _check_input(x: torch.Tensor, frames: int, joints: int) -> None:
    if x.dim() != 4 or x.shape[1] != frames or x.shape[2] != joints or x.shape[3] != 3:
        raise ValueError(f"expected input (batch, {frames}, {joints}, 3), got {tuple(x.shape)}")


def _attention(mha: nn.MultiheadAttention, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None,
               Tq: int, Tk: int) -> torch.Tensor:
    """``mha(query, keys, keys)`` at inference (no dropout, batch first) for ``Tq`` queries and
    ``Tk`` keys, every reshape written with these constant sizes and -1 for the batch.

    ``nn.MultiheadAttention`` computes its shapes from the batch size, which an ONNX export turns
    into Shape/Gather/Unsqueeze/Concat chains that ONNX Runtime runs on every call. With this
    function and ``PoseInput``'s constant reshape the shipped model exports to 322 nodes (186
    after ONNX Runtime's optimiser) instead of 883 (425)."""
    D, H = mha.embed_dim, mha.num_heads
    Dh = D // H
    w, b = mha.in_proj_weight, mha.in_proj_bias
    q = nn.functional.linear(query, w[:D], b[:D]).reshape(-1, Tq, H, Dh).transpose(1, 2)
    k = nn.functional.linear(keys, w[D:2 * D], b[D:2 * D]).reshape(-1, Tk, H, Dh).transpose(1, 2)
    v = nn.functional.linear(keys, w[2 * D:], b[2 * D:]).reshape(-1, Tk, H, Dh).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(Dh))
    if mask is not None:
        scores = scores + mask
    out = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(-1, Tq, D)
    return mha.out_proj(out)


class CausalTransformerLifter(nn.Module):
    """The last ``receptive_field`` frames of 2D keypoints -> the current frame's 3D joints.

    Every (strided) past frame becomes a token (:class:`PoseInput` features through a linear
    layer or, with ``frame_hidden``, a per-frame residual MLP; plus a learned position embedding); a pre-norm transformer encoder mixes them with a causal
    mask, so token k only attends to frames up to k and a streaming implementation could cache
    them; the current frame's token is decoded into root-relative joints, a depth correction and
    a root offset.
    """

    causal = True

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.receptive_field = config.receptive_field
        self.input = PoseInput(config.joints)
        self.embed = _frame_encoder(self.input.features, config)
        self.pos = nn.Parameter(torch.zeros(1, config.tokens, config.d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.heads, config.ff_mult * config.d_model, config.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        out = 3 * config.joints + 3
        self.head = (nn.Linear(config.d_model, out) if config.head_hidden <= 0 else
                     nn.Sequential(nn.Linear(config.d_model, config.head_hidden), nn.GELU(),
                                   nn.Linear(config.head_hidden, out)))
        mask = torch.triu(torch.full((config.tokens, config.tokens), float("-inf")), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)
        self.decode = _RootDecoder(config.joints, config.body_size_m)

    def token_frames(self) -> list[int]:
        """Window frame indices that become tokens (every ``token_stride``-th, ending at the last)."""
        T, k = self.receptive_field, self.config.token_stride
        return list(range((T - 1) % k, T, k))

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token features after the encoder (B, tokens, d), with per-token centre and size."""
        _check_input(x, self.receptive_field, self.config.joints)
        stride = self.config.token_stride
        x = x[:, (self.receptive_field - 1) % stride :: stride] if stride > 1 else x
        feats, centre, rms = self.input(x)
        h = self.embed(feats) + self.pos
        h = self.encoder(h, mask=self.mask, is_causal=True)
        return h, centre, rms

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions for every token's frame, (B, tokens, J, 3).

        The causal mask makes token k depend on frames up to its own only, so training can
        supervise every token at the cost of one pass (``tokens`` times the signal per step);
        :meth:`forward` keeps the last.
        """
        h, centre, rms = self._encode(x)
        B, N = h.shape[:2]
        raw = self.head(self.norm(h)).reshape(B * N, -1)
        out = self.decode(raw, centre.reshape(B * N, 2), rms.reshape(B * N))
        return out.view(B, N, self.config.joints, 3)

    def _encode_current(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like :meth:`_encode`, but the last layer computes the current token only (the other
        tokens' last-layer outputs are never used at inference): same result, ~10% fewer FLOPs."""
        _check_input(x, self.receptive_field, self.config.joints)
        stride = self.config.token_stride
        x = x[:, (self.receptive_field - 1) % stride :: stride] if stride > 1 else x
        T = self.config.tokens
        feats, centre, rms = self.input(x, T)
        h = self.embed(feats) + self.pos
        *first, last = self.encoder.layers
        if self.training:  # dropout and autograd as in training: the stock layers
            for layer in first:
                h = layer(h, src_mask=self.mask, is_causal=True)
            a = last.norm1(h)
            attn = last.self_attn(a[:, -1:], a, a, need_weights=False)[0]  # the last token sees every frame
        else:  # the same arithmetic, written with constant shapes (see _attention)
            for layer in first:
                a = layer.norm1(h)
                h = h + _attention(layer.self_attn, a, a, self.mask, T, T)
                h = h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))
            a = last.norm1(h)
            attn = _attention(last.self_attn, a[:, -1:], a, None, 1, T)
        y = h[:, -1] + last.dropout1(attn[:, 0])
        y = y + last.dropout2(last.linear2(last.dropout(last.activation(last.linear1(last.norm2(y))))))
        return y, centre[:, -1], rms[:, -1]

    def forward(self, x: torch.Tensor, dense: bool = False) -> torch.Tensor:
        """(B, J, 3) for the current frame; ``dense=True``: :meth:`forward_sequence`."""
        if dense:
            return self.forward_sequence(x)
        h, centre, rms = self._encode_current(x)
        raw = self.head(self.norm(h))
        return self.decode(raw, centre, rms)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


class ResidualMLPLifter(nn.Module):
    """Single-frame baseline after Martinez et al. (2017): linear in, residual blocks of
    linear-batchnorm-ReLU-dropout, linear out. With ``aux_after`` > 0 an extra head after that
    block is supervised too (a deeper variant: intermediate supervision); ``forward(x, aux=True)`` returns both."""

    causal = True

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.receptive_field = 1
        self.input = PoseInput(config.joints)
        self.stem = nn.Sequential(
            nn.Linear(self.input.features, config.hidden), nn.BatchNorm1d(config.hidden),
            nn.ReLU(), nn.Dropout(config.dropout),
        )
        self.blocks = nn.ModuleList(_ResidualBlock(config.hidden, config.dropout) for _ in range(config.blocks))
        out = 3 * config.joints + 3
        self.head = nn.Linear(config.hidden, out)
        self.aux_head = nn.Linear(config.hidden, out) if config.aux_after else None
        self.decode = _RootDecoder(config.joints, config.body_size_m)

    def forward(self, x: torch.Tensor, aux: bool = False):
        _check_input(x, 1, self.config.joints)
        feats, centre, rms = self.input(x)
        h = self.stem(feats[:, -1])
        aux_raw = None
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)
            if self.aux_head is not None and i == self.config.aux_after:
                aux_raw = self.aux_head(h)
        out = self.decode(self.head(h), centre[:, -1], rms[:, -1])
        if aux:
            extra = [] if aux_raw is None else [self.decode(aux_raw, centre[:, -1], rms[:, -1])]
            return out, extra
        return out


def build_model(config: ModelConfig) -> nn.Module:
    """The module for a config (one class per idea)."""
    if isinstance(config, TransformerConfig):
        return CausalTransformerLifter(config)
    if isinstance(config, MLPConfig):
        return ResidualMLPLifter(config)
    raise TypeError(f"not a model config: {type(config).__name__}")


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout probability in ``model`` (a training schedule can switch dropout off half way)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
        elif isinstance(m, nn.MultiheadAttention):
            m.dropout = p
        elif isinstance(m, nn.TransformerEncoderLayer):
            m.dropout.p = p


def sanitize_keypoints(x: np.ndarray, joints: int = CANONICAL.num_joints) -> np.ndarray:
    """Check and clean detector keypoints (..., joints, 3) before they reach a model.

    Raises ``ValueError`` naming the shape for a wrong joint or channel count. Joints whose
    coordinates or confidence are NaN/infinite (a detector that lost them) become missing:
    confidence 0, coordinates 0. Confidences are clipped to [0, 1]. Returns a float32 copy.
    """
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim < 2 or arr.shape[-2:] != (joints, 3):
        raise ValueError(f"keypoints must be (..., {joints}, 3) as (u, v, confidence), got {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=-1)
    out = np.where(bad[..., None], 0.0, arr).astype(np.float32)
    out[..., 2] = np.clip(out[..., 2], 0.0, 1.0)
    return out


def model_cost(model: nn.Module) -> dict[str, float]:
    """Parameters and floating-point operations of one real-time step (batch 1, one frame out)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, model.receptive_field, CANONICAL.num_joints, 3)
    x[..., 2] = 1.0
    was_training = model.training
    model.eval()
    # grad mode on: under no_grad PyTorch's fused encoder fast path hides its matmuls from the counter
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return {"parameters": float(sum(p.numel() for p in model.parameters())),
            "flops_per_frame": float(counter.get_total_flops())}
