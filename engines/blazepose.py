"""MediaPipe's BlazePose networks as PyTorch modules, built from the ``.tflite`` files in the wheel.

Two networks ship with mediapipe 0.10.21 and are ported here:

* ``detector`` (``pose_detection.tflite``): (B, 224, 224, 3) float in [-1, 1] -> ``boxes``
  (B, 2254, 12) raw SSD regressors and ``scores`` (B, 2254, 1) logits;
* ``landmark`` (``pose_landmark_full.tflite``): (B, 256, 256, 3) float in [0, 1] -> ``landmarks``
  (B, 195) = 39 x (x, y, z, visibility logit, presence logit) in crop pixels, ``pose_flag``
  (B, 1) probability, ``segmentation`` (B, 256, 256, 1) logits, ``heatmap`` (B, 64, 64, 39)
  logits and ``world_landmarks`` (B, 117) metres.

Inputs and 4-D outputs keep TFLite's NHWC layout, so the module is a drop-in for the interpreter;
inside, activations run NCHW (what cuDNN, ONNX and TensorRT want), with one transpose at each end.
:class:`TFLiteNet` is a faithful operator-by-operator translation of the graph read by
``engines.tflite``: explicit PAD fused into the following convolution, TFLite's asymmetric SAME
padding reproduced, fused RELU6 as a clamp, RESIZE_BILINEAR with half-pixel centres as
``F.interpolate(align_corners=False)``, DEPTH_TO_SPACE in TFLite's depth-column-row order, and
RESHAPE done on an NHWC view with the batch axis left free (the file says 1; batching works).
Outputs a caller does not ask for are pruned with the operators that only feed them.

Built modules are cached as ``spec.json`` + ``weights.safetensors`` in
``$POSESTREAM_CACHE/blazepose/<network>-<key>/`` (default ``~/.cache/posestream``), the key
hashing the ``.tflite`` file and this code, so the flatbuffer is parsed once per machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.tflite import Graph, TFLiteError, read_tflite

__all__ = ["INPUT_SIZE", "NETWORKS", "TFLiteNet", "blazepose_cache", "load_network", "tflite_path"]

NETWORKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "detector": ("pose_detection/pose_detection.tflite", ("boxes", "scores")),
    "landmark": ("pose_landmark/pose_landmark_full.tflite",
                 ("landmarks", "pose_flag", "segmentation", "heatmap", "world_landmarks")),
}
INPUT_SIZE = {"detector": 224, "landmark": 256}
_SPEC_VERSION = 1


def tflite_path(network: str) -> Path:
    """The ``.tflite`` file of a network inside the installed mediapipe package (not imported)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown BlazePose network {network!r}; choose one of {', '.join(NETWORKS)}")
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(2, "mediapipe is not installed; the BlazePose networks come from its wheel",
                                "mediapipe")
    path = Path(next(iter(spec.submodule_search_locations))) / "modules" / NETWORKS[network][0]
    if not path.is_file():
        raise FileNotFoundError(2, f"mediapipe's {network} network is missing from the installed package", str(path))
    return path


def blazepose_cache() -> Path:
    from engines.artifacts import cache_root

    return cache_root().parent / "blazepose"


# ----------------------------------------------------------------------------------------------
# operators (activations NCHW inside)

def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "NONE":
        return x
    if activation == "RELU6":
        return torch.clamp(x, 0.0, 6.0)
    if activation == "RELU":
        return torch.relu(x)
    raise TFLiteError(f"fused activation {activation} is not supported")


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Conv(nn.Module):
    """CONV_2D or DEPTHWISE_CONV_2D (+ a PAD fused in front, + the fused activation)."""

    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(a["in"], a["out"], tuple(a["kernel"]), tuple(a["stride"]), tuple(a["padding"]),
                              tuple(a["dilation"]), groups=a["groups"], bias=True)
        self.pre_pad = tuple(a["pre_pad"]) if a.get("pre_pad") else None  # (left, right, top, bottom)
        self.activation = a["activation"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        return _activate(self.conv(x), self.activation)


class _Pad(nn.Module):
    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()
        self.pads = tuple(a["pads"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class _Add(nn.Module):
    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()
        self.activation = a["activation"]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _activate(x + y, self.activation)


class _Resize(nn.Module):
    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()
        self.size = tuple(a["size"])
        self.align_corners = a["align_corners"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


class _MaxPool(nn.Module):
    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(a["kernel"]), tuple(a["stride"])
        self.pads = tuple(a["pads"]) if a.get("pads") else None
        self.activation = a["activation"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pads is not None:  # TensorFlow's SAME max pool never picks a padded cell
            x = F.pad(x, self.pads, value=float("-inf"))
        return _activate(F.max_pool2d(x, self.kernel, self.stride), self.activation)


class _DepthToSpace(nn.Module):
    """TFLite's DEPTH_TO_SPACE: channel index (i * block + j) * C_out + c (depth-column-row)."""

    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()
        self.block = int(a["block_size"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.block
        x = x.reshape(b, s, s, c // (s * s), h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(b, c // (s * s), h * s, w * s)


class _Reshape(nn.Module):
    """RESHAPE on TFLite's NHWC view, with the batch axis kept from the input."""

    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()
        self.shape = tuple(a["shape"][1:])
        self.in_rank, self.out_rank = a["in_rank"], len(a["shape"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_rank == 4:
            x = x.permute(0, 2, 3, 1)
        x = x.reshape(x.shape[0], *self.shape)
        return x.permute(0, 3, 1, 2) if self.out_rank == 4 else x


class _Concat(nn.Module):
    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()
        self.axis, self.activation = a["axis"], a["activation"]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return _activate(torch.cat(xs, dim=self.axis), self.activation)


class _Logistic(nn.Module):
    def __init__(self, a: dict[str, Any]) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


_OPS = {"conv": _Conv, "pad": _Pad, "add": _Add, "resize": _Resize, "maxpool": _MaxPool,
        "depth_to_space": _DepthToSpace, "reshape": _Reshape, "concat": _Concat, "logistic": _Logistic}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


# ----------------------------------------------------------------------------------------------
# TFLite graph -> spec (JSON-able) + weights

def graph_to_spec(graph: Graph, output_names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Translate a parsed graph into a list of NCHW operator records and their float32 weights."""
    t = graph.tensors
    consumers: dict[int, int] = {}
    for op in graph.operators:
        for i in op.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    ops: list[dict[str, Any]] = []
    weights: dict[str, np.ndarray] = {}
    fused_pad: dict[int, tuple[int, int, int, int, int]] = {}  # PAD output tensor -> (source, l, r, t, b)
    for op in graph.operators:
        k = op.kind
        if k == "PAD":
            p = graph.const(op.inputs[1]).reshape(-1, 2)
            if p.shape[0] != 4 or p[0].any() or p[3].any():
                raise TFLiteError("PAD is supported on the height and width of NHWC tensors only")
            pads = (int(p[2, 0]), int(p[2, 1]), int(p[1, 0]), int(p[1, 1]))
            if consumers.get(op.outputs[0], 0) == 1 and any(
                    o.inputs and o.inputs[0] == op.outputs[0] and o.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")
                    and o.options["padding"] == "VALID" for o in graph.operators):
                fused_pad[op.outputs[0]] = (op.inputs[0], *pads)
                continue
            ops.append({"op": "pad", "in": [op.inputs[0]], "out": [op.outputs[0]], "pads": list(pads)})
        elif k in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            src = op.inputs[0]
            w = graph.const(op.inputs[1]).astype(np.float32)
            bias = graph.const(op.inputs[2]).astype(np.float32) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            h_in, w_in = t[src].shape[1:3]
            o = op.options
            if k == "CONV_2D":
                cout, kh, kw, cin = w.shape
                wt = w.transpose(0, 3, 1, 2)
                groups = 1
            else:
                _, kh, kw, cout = w.shape
                cin = t[src].shape[3]
                wt = w.transpose(3, 0, 1, 2)  # (1, kh, kw, C*m) -> (C*m, 1, kh, kw)
                groups = cin
            padding, pre_pad = [0, 0], None
            if src in fused_pad:
                src, left, right, top, bottom = fused_pad[src]
                if left == right and top == bottom:
                    padding = [top, left]
                else:
                    pre_pad = [left, right, top, bottom]
            elif o["padding"] == "SAME":
                ph = _same_pads(h_in, kh, o["stride"][0], o["dilation"][0])
                pw = _same_pads(w_in, kw, o["stride"][1], o["dilation"][1])
                if ph[0] == ph[1] and pw[0] == pw[1]:
                    padding = [ph[0], pw[0]]
                else:
                    pre_pad = [pw[0], pw[1], ph[0], ph[1]]
            i = len(ops)
            weights[f"{i}.conv.weight"] = np.ascontiguousarray(wt)
            weights[f"{i}.conv.bias"] = bias if bias is not None else np.zeros(cout, np.float32)
            ops.append({"op": "conv", "in": [src], "out": [op.outputs[0]], "in_ch": cin, "attrs": {
                "in": cin, "out": cout, "kernel": [kh, kw], "stride": list(o["stride"]), "padding": padding,
                "dilation": list(o["dilation"]), "groups": groups, "pre_pad": pre_pad, "activation": o["activation"]}})
        elif k == "ADD":
            if any(graph.is_const(i) for i in op.inputs):
                raise TFLiteError("ADD with a constant operand is not supported")
            ops.append({"op": "add", "in": list(op.inputs), "out": [op.outputs[0]], "attrs": dict(op.options)})
        elif k == "RESIZE_BILINEAR":
            if not op.options["half_pixel_centers"] and not op.options["align_corners"]:
                raise TFLiteError("RESIZE_BILINEAR without half-pixel centres or aligned corners is not supported")
            size = [int(v) for v in graph.const(op.inputs[1]).reshape(-1)]
            ops.append({"op": "resize", "in": [op.inputs[0]], "out": [op.outputs[0]],
                        "attrs": {"size": size, "align_corners": op.options["align_corners"]}})
        elif k == "MAX_POOL_2D":
            o = op.options
            h_in, w_in = t[op.inputs[0]].shape[1:3]
            pads = None
            if o["padding"] == "SAME":
                ph = _same_pads(h_in, o["filter"][0], o["stride"][0])
                pw = _same_pads(w_in, o["filter"][1], o["stride"][1])
                if any(ph + pw):
                    pads = [pw[0], pw[1], ph[0], ph[1]]
            ops.append({"op": "maxpool", "in": [op.inputs[0]], "out": [op.outputs[0]], "attrs": {
                "kernel": list(o["filter"]), "stride": list(o["stride"]), "pads": pads, "activation": o["activation"]}})
        elif k == "DEPTH_TO_SPACE":
            ops.append({"op": "depth_to_space", "in": [op.inputs[0]], "out": [op.outputs[0]], "attrs": dict(op.options)})
        elif k == "RESHAPE":
            ops.append({"op": "reshape", "in": [op.inputs[0]], "out": [op.outputs[0]], "attrs": {
                "shape": list(t[op.outputs[0]].shape), "in_rank": len(t[op.inputs[0]].shape)}})
        elif k == "CONCATENATION":
            rank = len(t[op.outputs[0]].shape)
            axis = op.options["axis"] % rank
            ops.append({"op": "concat", "in": list(op.inputs), "out": [op.outputs[0]], "attrs": {
                "axis": _NHWC_TO_NCHW_AXIS[axis] if rank == 4 else axis, "activation": op.options["activation"]}})
        elif k == "LOGISTIC":
            ops.append({"op": "logistic", "in": [op.inputs[0]], "out": [op.outputs[0]], "attrs": {}})
        else:
            raise TFLiteError(f"operator {k} is not supported by this port")
    for rec in ops:
        rec.setdefault("attrs", {})
        rec.pop("in_ch", None)
        if rec["op"] == "pad":
            rec["attrs"] = {"pads": rec.pop("pads")}
    spec = {"version": _SPEC_VERSION, "input": graph.inputs[0], "input_shape": list(t[graph.inputs[0]].shape),
            "outputs": dict(zip(output_names, graph.outputs)),
            "output_ranks": {n: len(t[i].shape) for n, i in zip(output_names, graph.outputs)}, "ops": ops}
    return spec, weights


class TFLiteNet(nn.Module):
    """A TFLite graph (as a spec from :func:`graph_to_spec`) executed with PyTorch operators.

    ``forward(x)``: x (B, H, W, 3) float32 NHWC, as the TFLite model takes it; returns a tuple
    with the requested outputs in the order of ``self.output_names`` (4-D ones NHWC).
    """

    def __init__(self, spec: dict[str, Any], outputs: tuple[str, ...] | None = None) -> None:
        super().__init__()
        names = tuple(spec["outputs"]) if outputs is None else tuple(outputs)
        unknown = [n for n in names if n not in spec["outputs"]]
        if unknown:
            raise ValueError(f"unknown output(s) {unknown}; this network has {', '.join(spec['outputs'])}")
        self.output_names = names
        self.input_shape = tuple(spec["input_shape"])
        wanted = {spec["outputs"][n] for n in names}
        keep = []
        for i in range(len(spec["ops"]) - 1, -1, -1):  # prune operators that feed no requested output
            rec = spec["ops"][i]
            if wanted & set(rec["out"]):
                keep.append(i)
                wanted.update(rec["in"])
        keep.reverse()
        self.kept = keep  # spec indices of the operators run (state-dict keys use these)
        self.ops = nn.ModuleDict({str(i): _OPS[spec["ops"][i]["op"]](spec["ops"][i]["attrs"]) for i in keep})
        slots: dict[int, int] = {spec["input"]: 0}
        plan = []
        for i in keep:
            rec = spec["ops"][i]
            ins = [slots[j] for j in rec["in"]]
            for j in rec["out"]:
                slots[j] = len(slots)
            plan.append((str(i), ins, [slots[j] for j in rec["out"]]))
        self.plan = plan
        self.num_slots = len(slots)
        self.out_slots = [slots[spec["outputs"][n]] for n in names]
        self.out_ranks = [spec["output_ranks"][n] for n in names]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: list[torch.Tensor | None] = [None] * self.num_slots
        env[0] = x.permute(0, 3, 1, 2)
        for key, ins, outs in self.plan:
            env[outs[0]] = self.ops[key](*[env[i] for i in ins])
        out = []
        for slot, rank in zip(self.out_slots, self.out_ranks):
            y = env[slot]
            out.append(y.permute(0, 2, 3, 1) if rank == 4 else y)
        return tuple(out)


def _code_fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("tflite.py", "blazepose.py"):
        h.update(Path(__file__).with_name(name).read_bytes())
    return h.hexdigest()[:12]


def _build_cached(network: str, path: Path, cache: Path | None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The spec and weights of a network: from the cache, or parsed from the file and cached."""
    from safetensors.numpy import save_file
    from safetensors.torch import load_file

    from engines.artifacts import file_sha256
    from engines.fileio import atomic_path

    key = hashlib.sha256(f"{file_sha256(path)}:{_code_fingerprint()}".encode()).hexdigest()[:16]
    folder = (cache or blazepose_cache()) / f"{network}-{key}"
    spec_file, weight_file = folder / "spec.json", folder / "weights.safetensors"
    if spec_file.is_file() and weight_file.is_file():
        try:
            spec = json.loads(spec_file.read_text())
            if spec.get("version") == _SPEC_VERSION:
                return spec, load_file(str(weight_file))
        except (OSError, ValueError):
            pass  # a damaged entry is rebuilt below
    spec, weights = graph_to_spec(read_tflite(path), NETWORKS[network][1])
    spec["source"] = {"file": str(path), "network": network}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(weight_file, suffix=".safetensors") as tmp:
            save_file(weights, str(tmp))
        with atomic_path(spec_file) as tmp:
            Path(tmp).write_text(json.dumps(spec))
    except OSError:
        pass  # a read-only cache only costs a re-parse next time
    return spec, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}


def load_network(network: str, outputs: tuple[str, ...] | None = None, *, path: str | os.PathLike | None = None,
                 cache: Path | None = None) -> TFLiteNet:
    """A BlazePose network as an eval-mode :class:`TFLiteNet` on the CPU (``.to(device)`` it).

    ``outputs``: a subset of ``NETWORKS[network][1]`` (default all); others are pruned away.
    ``path``: another ``.tflite`` with the same outputs (default: the one in mediapipe's wheel).
    """
    src = Path(path) if path is not None else tflite_path(network)
    spec, weights = _build_cached(network, src, cache)
    net = TFLiteNet(spec, outputs)
    state = {f"ops.{k}": v for k, v in weights.items() if k.split(".", 1)[0] in net.ops}
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


def clear_cache(cache: Path | None = None) -> None:
    """Remove every cached BlazePose module (the next load parses the ``.tflite`` files again)."""
    root = cache or blazepose_cache()
    if root.is_dir():
        for entry in root.iterdir():
            if entry.is_dir() and entry.name.split("-", 1)[0] in NETWORKS:
                shutil.rmtree(entry, ignore_errors=True)

