"""A small TFLite flatbuffer reader: tensors, constant weights and the operator list of one graph.

It reads what MediaPipe's BlazePose networks need, with the ``tflite`` schema package (generated
flatbuffers accessors, no TensorFlow): float32 and float16 constants, TFLite's sparse tensor format
(expanded by :func:`densify`) and the options of PAD, CONV_2D, DEPTHWISE_CONV_2D, ADD,
RESIZE_BILINEAR, RESHAPE, CONCATENATION, DEPTH_TO_SPACE, MAX_POOL_2D and LOGISTIC. Constant
DEQUANTIZE (float16 -> float32) and DENSIFY operators are folded at read time, so the graph that
comes back holds only operators that compute on activations, with float32 weights.

Layouts stay TFLite's: activations NHWC, CONV_2D filters (out, kh, kw, in), depthwise filters
(1, kh, kw, channels). Turning them into PyTorch modules is ``engines.blazepose``'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Graph", "Operator", "TFLiteError", "Tensor", "densify", "read_tflite", "sparse_tensors"]

_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
           9: np.int8, 10: np.float64}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_PADDING = {0: "SAME", 1: "VALID"}


class TFLiteError(ValueError):
    """A file that is not a TFLite model this reader understands (the message says why)."""


@dataclass
class Tensor:
    """One tensor of the graph; ``data`` holds the value of a constant (None for activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None = None


@dataclass
class Operator:
    """One operator: its TFLite name (``CONV_2D``...), tensor indices in and out, parsed options."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """The first subgraph of a model, with constants folded (see the module docstring)."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    folded: dict[int, tuple[str, int]] = field(default_factory=dict)  # output tensor -> (DEQUANTIZE|DENSIFY, input)

    def const(self, index: int) -> np.ndarray:
        data = self.tensors[index].data
        if data is None:
            raise TFLiteError(f"tensor {self.tensors[index].name!r} is not a constant")
        return data

    def is_const(self, index: int) -> bool:
        return index >= 0 and self.tensors[index].data is not None


def _index_vector(kind: int, table) -> np.ndarray:
    """A SparseIndexVector union member (Int32Vector, Uint16Vector or Uint8Vector) as int64."""
    import tflite

    cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}.get(kind)
    if cls is None:
        raise TFLiteError(f"unsupported sparse index vector type {kind}")
    vec = cls()
    vec.Init(table.Bytes, table.Pos)
    return np.asarray(vec.ValuesAsNumpy(), dtype=np.int64).reshape(-1)


def densify(values: np.ndarray, shape: tuple[int, ...], traversal_order: list[int], block_map: list[int],
            dim_metadata: list[dict[str, Any]]) -> np.ndarray:
    """Expand a tensor stored in TFLite's sparse format into a dense array of ``shape``.

    ``dim_metadata`` has one entry per traversal level: ``{"format": "DENSE", "dense_size": n}``
    or ``{"format": "SPARSE_CSR", "segments": array, "indices": array}``. Levels are walked in
    ``traversal_order``; levels past the tensor's rank are block dimensions, mapped onto the
    original dimensions by ``block_map``. The stored ``values`` are the non-zero entries in
    traversal order. Vectorised: each level expands every position of the level above at once.
    """
    rank = len(shape)
    levels = len(traversal_order)
    if len(dim_metadata) != levels:
        raise TFLiteError(f"sparse tensor has {len(dim_metadata)} dimension records for {levels} levels")
    pos = np.zeros(1, np.int64)  # position within the current level, per partial path
    coords: list[np.ndarray] = []  # per level: the coordinate of every partial path
    for meta in dim_metadata:
        if meta["format"] == "DENSE":
            n = int(meta["dense_size"])
            child = np.arange(n, dtype=np.int64)
            coords = [np.repeat(c, n) for c in coords]
            coords.append(np.tile(child, pos.size))
            pos = (pos[:, None] * n + child[None, :]).reshape(-1)
        else:
            seg, idx = meta["segments"], meta["indices"]
            start, stop = seg[pos], seg[pos + 1]
            counts = stop - start
            coords = [np.repeat(c, counts) for c in coords]
            # child positions: start..stop for every parent, flattened in order
            offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
            pos = np.repeat(start, counts) + offsets
            coords.append(idx[pos])
    if pos.size != values.size:
        raise TFLiteError(f"sparse tensor stores {values.size} values but its index describes {pos.size}")
    # traversal level k walks expanded dimension traversal_order[k]: 0..rank-1 are the original
    # dimensions (in block units when blocked), rank+j is the inner block of dimension block_map[j]
    where = {d: k for k, d in enumerate(traversal_order)}
    full = [coords[where[d]] for d in range(rank)]
    for j, dim in enumerate(block_map):
        level = where[rank + j]
        full[dim] = full[dim] * int(dim_metadata[level]["dense_size"]) + coords[level]
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(full)] = values.reshape(-1)
    return dense


def _sparsity(t) -> tuple[list[int], list[int], list[dict[str, Any]]] | None:
    sp = t.Sparsity()
    if sp is None:
        return None
    order = [int(v) for v in sp.TraversalOrderAsNumpy()] if sp.TraversalOrderLength() else []
    block = [int(v) for v in sp.BlockMapAsNumpy()] if sp.BlockMapLength() else []
    dims = []
    for k in range(sp.DimMetadataLength()):
        dm = sp.DimMetadata(k)
        if dm.Format() == 0:
            dims.append({"format": "DENSE", "dense_size": int(dm.DenseSize())})
        else:
            dims.append({"format": "SPARSE_CSR", "segments": _index_vector(dm.ArraySegmentsType(), dm.ArraySegments()),
                         "indices": _index_vector(dm.ArrayIndicesType(), dm.ArrayIndices())})
    return order, block, dims


def _options(kind: str, op, model, graph) -> dict[str, Any]:
    import tflite

    table = op.BuiltinOptions()
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        o = tflite.Conv2DOptions() if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions()
        o.Init(table.Bytes, table.Pos)
        out = {"padding": _PADDING[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
               "dilation": (o.DilationHFactor(), o.DilationWFactor()),
               "activation": _ACTIVATIONS[o.FusedActivationFunction()]}
        if kind == "DEPTHWISE_CONV_2D":
            out["depth_multiplier"] = o.DepthMultiplier()
        return out
    if kind == "MAX_POOL_2D":
        o = tflite.Pool2DOptions()
        o.Init(table.Bytes, table.Pos)
        return {"padding": _PADDING[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
                "filter": (o.FilterHeight(), o.FilterWidth()), "activation": _ACTIVATIONS[o.FusedActivationFunction()]}
    if kind == "ADD":
        o = tflite.AddOptions()
        o.Init(table.Bytes, table.Pos)
        return {"activation": _ACTIVATIONS[o.FusedActivationFunction()]}
    if kind == "CONCATENATION":
        o = tflite.ConcatenationOptions()
        o.Init(table.Bytes, table.Pos)
        return {"axis": o.Axis(), "activation": _ACTIVATIONS[o.FusedActivationFunction()]}
    if kind == "RESIZE_BILINEAR":
        o = tflite.ResizeBilinearOptions()
        o.Init(table.Bytes, table.Pos)
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
    if kind == "DEPTH_TO_SPACE":
        o = tflite.DepthToSpaceOptions()
        o.Init(table.Bytes, table.Pos)
        return {"block_size": o.BlockSize()}
    return {}


def _opcode_names(model) -> list[str]:
    from tflite.BuiltinOperator import BuiltinOperator

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # small codes live in the deprecated field
        out.append(names.get(code, f"CUSTOM({oc.CustomCode()})" if code == 32 else f"OP{code}"))
    return out


def _load_model(path: str | os.PathLike):
    import tflite

    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise TFLiteError(f"{path}: cannot read it ({exc.strerror})") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TFLiteError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise TFLiteError(f"{path}: the model has no graph")
    except TFLiteError:
        raise
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises assorted errors on a damaged file
        raise TFLiteError(f"{path}: damaged TFLite flatbuffer ({exc})") from None
    return model


def _raw_tensors(model) -> tuple[list[Tensor], dict[int, tuple]]:
    g = model.Subgraphs(0)
    tensors: list[Tensor] = []
    sparse: dict[int, tuple] = {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        dtype = _DTYPES.get(t.Type())
        if dtype is None:
            raise TFLiteError(f"tensor {t.Name().decode()!r} has an unsupported type {t.Type()}")
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data = None
        buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        if buf is not None and buf.DataLength() > 0:
            raw = buf.DataAsNumpy().tobytes()
            data = np.frombuffer(raw, dtype=dtype).copy()
            sp = _sparsity(t)
            if sp is not None:
                sparse[i] = sp
            else:
                data = data.reshape(shape)
        tensors.append(Tensor(i, t.Name().decode(), shape, np.dtype(dtype).name, data))
    return tensors, sparse


def sparse_tensors(path: str | os.PathLike) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Every sparse constant of a model: tensor index -> (stored non-zero values, dense expansion)."""
    model = _load_model(path)
    tensors, sparse = _raw_tensors(model)
    return {i: (tensors[i].data, densify(tensors[i].data, tensors[i].shape, *sp)) for i, sp in sparse.items()}


def read_tflite(path: str | os.PathLike) -> Graph:
    """Parse the first subgraph of a ``.tflite`` file; ``TFLiteError`` (one sentence) if it cannot."""
    model = _load_model(path)
    tensors, sparse = _raw_tensors(model)
    for i, sp in sparse.items():
        tensors[i].data = densify(tensors[i].data, tensors[i].shape, *sp)
    g = model.Subgraphs(0)
    names = _opcode_names(model)
    operators: list[Operator] = []
    folded: dict[int, tuple[str, int]] = {}
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        kind = names[op.OpcodeIndex()]
        ins = tuple(int(v) for v in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(int(v) for v in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        if kind in ("DEQUANTIZE", "DENSIFY") and tensors[ins[0]].data is not None:
            # constant folding: float16 (or sparse) weights become dense float32 constants
            src = tensors[ins[0]].data
            tensors[outs[0]].data = src.astype(np.float32) if kind == "DEQUANTIZE" else src.copy()
            folded[outs[0]] = (kind, ins[0])
            continue
        operators.append(Operator(kind, ins, outs, _options(kind, op, model, g)))
    inputs = tuple(int(v) for v in g.InputsAsNumpy())
    outputs = tuple(int(v) for v in g.OutputsAsNumpy())
    return Graph(tensors, operators, inputs, outputs, folded)
