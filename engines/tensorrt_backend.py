"""Build and run TensorRT engines ("plans") of the lifter from its ONNX export.

UNVERIFIED: written to the documented TensorRT 10 Python API (name-based I/O tensors,
``execute_async_v3``, ``build_serialized_network``) and never run here, because TensorRT cannot
be installed in our CI environment (no wheels reachable, no GPU). Only the parts that need
neither TensorRT nor a GPU (shapes, sizes, error paths, the build's control flow against a fake
``tensorrt`` module) are covered by tests.

TensorRT 11 (the version ``posestream[gpu]`` pins) only builds strongly typed networks and has
no ``BuilderFlag.FP16``: there the ONNX file itself decides the precision, so
``build_plan(precision="fp16")`` refuses with a ValueError instead of silently building fp32.

Errors: a missing or too old TensorRT raises ImportError; bad arguments, an ONNX file TensorRT
cannot parse, or a corrupt/incompatible plan raise ValueError; no CUDA GPU raises RuntimeError.
``tensorrt`` is imported lazily, so importing this module never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.fileio import atomic_path

__all__ = [
    "INPUT_NAME",
    "MIN_MAJOR",
    "TensorRTRunner",
    "available",
    "buffer_bytes",
    "build_plan",
    "profile_shapes",
]

INPUT_NAME = "keypoints"
MIN_MAJOR = 10
PRECISIONS = ("fp32", "fp16")
_INSTALL_HINT = "TensorRT is not installed (pip install posestream[gpu])."
_REBUILD_HINT = "rebuild it with `engines build`"


def _major(version: str) -> int | None:
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _import_tensorrt() -> Any:
    """``import tensorrt``, or ImportError in one sentence if it is missing or older than 10."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    version = getattr(trt, "__version__", "unknown")
    major = _major(version)
    if major is None or major < MIN_MAJOR:
        raise ImportError(f"TensorRT {version} is too old: posestream needs TensorRT >= {MIN_MAJOR}.")
    return trt


def available() -> tuple[bool, str]:
    """(True, "TensorRT x.y.z") when TensorRT >= 10 imports and a CUDA GPU is visible."""
    try:
        trt = _import_tensorrt()
    except ImportError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken install (missing libnvinfer) raises OSError
        return False, f"TensorRT is installed but failed to import ({exc})."
    import torch

    if not torch.cuda.is_available():
        return False, "TensorRT is installed but there is no CUDA GPU."
    return True, f"TensorRT {trt.__version__}"


def profile_shapes(
    max_batch: int, frames: int, joints: int, channels: int = 3, opt_batch: int = 1
) -> dict[str, tuple[int, ...]]:
    """The optimization profile of the ``keypoints`` input: only the batch axis varies."""
    for name, value in (("frames", frames), ("joints", joints), ("channels", channels)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    if int(max_batch) < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}.")
    if not 1 <= int(opt_batch) <= int(max_batch):
        raise ValueError(f"opt_batch must lie in [1, max_batch={max_batch}], got {opt_batch}.")
    tail = (int(frames), int(joints), int(channels))
    return {"min": (1, *tail), "opt": (int(opt_batch), *tail), "max": (int(max_batch), *tail)}


def buffer_bytes(shape: Sequence[int], dtype: str | np.dtype = "float32") -> int:
    """Bytes of a dense buffer of ``shape`` and ``dtype``; ValueError on a non-positive dim."""
    if len(shape) == 0:
        raise ValueError("shape must have at least one dimension.")
    if any(int(d) < 1 for d in shape):
        raise ValueError(f"every dimension must be positive, got {tuple(shape)}.")
    return int(np.prod([int(d) for d in shape], dtype=np.int64)) * np.dtype(dtype).itemsize


def build_plan(
    onnx_path: str | os.PathLike,
    plan_path: str | os.PathLike,
    *,
    precision: str = "fp32",
    max_batch: int,
    frames: int,
    joints: int,
    channels: int = 3,
    timing_cache_path: str | os.PathLike | None = None,
    workspace_bytes: int = 1 << 30,
    log: Callable[[str], None] | None = None,
) -> None:
    """Build a TensorRT plan from an ONNX lifter and write it to ``plan_path`` atomically.

    The ``keypoints`` input gets one profile from :func:`profile_shapes` (batch 1..max_batch).
    With ``timing_cache_path`` the cache is loaded when the file exists and written back after
    the build, so repeated builds on one machine skip most kernel timing.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if int(workspace_bytes) < 1:
        raise ValueError(f"workspace_bytes must be positive, got {workspace_bytes}.")
    shapes = profile_shapes(max_batch, frames, joints, channels)
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}.")
    say = log or (lambda _msg: None)
    trt = _import_tensorrt()
    fp16_flag = getattr(trt.BuilderFlag, "FP16", None)
    if precision == "fp16" and fp16_flag is None:
        raise ValueError(
            f"TensorRT {trt.__version__} builds strongly typed networks only and has no FP16 flag: "
            "export an fp16 ONNX (e.g. with ModelOpt AutoCast) and build that with precision='fp32'."
        )

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT could not parse {onnx_path}: {errors or 'no details given'}.")
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if INPUT_NAME not in inputs:
        raise ValueError(f"{onnx_path} has inputs {inputs}, expected one named {INPUT_NAME!r}.")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if precision == "fp16":
        config.set_flag(fp16_flag)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache_path) if timing_cache_path is not None else None
    cache = None
    if cache_path is not None:
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            say(f"timing cache {cache_path} is from another TensorRT or GPU; starting a new one")
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
        elif blob:
            say(f"reusing timing cache {cache_path} ({len(blob)} bytes)")

    say(f"building {precision} TensorRT plan from {onnx_path} (batch 1..{max_batch})")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build a plan from {onnx_path}; see its log above.")
    with atomic_path(plan_path) as tmp:
        tmp.write_bytes(bytes(memoryview(plan)))
    if cache_path is not None:
        final = config.get_timing_cache() or cache
        with atomic_path(cache_path) as tmp:
            tmp.write_bytes(bytes(memoryview(final.serialize())))
    say(f"wrote {plan_path}")


class TensorRTRunner:
    """Runs a plan on one GPU with preallocated device buffers and pinned host staging buffers."""

    def __init__(self, plan_path: str | os.PathLike, max_batch: int, device: int = 0) -> None:
        trt = _import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("TensorRTRunner needs a CUDA GPU and none is available.")
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}.")
        plan_path = Path(plan_path)
        blob = plan_path.read_bytes()  # FileNotFoundError names the path
        self.device = int(device)
        self.max_batch = int(max_batch)
        self._torch = torch
        with torch.cuda.device(self.device):
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            try:
                engine = self._runtime.deserialize_cuda_engine(blob)
            except Exception:  # noqa: BLE001 - some versions raise instead of returning None
                engine = None
            if engine is None:
                raise ValueError(
                    f"{plan_path} is not a TensorRT plan this TensorRT and GPU can load; "
                    f"{_REBUILD_HINT}."
                )
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            if ins != [INPUT_NAME] or len(outs) != 1:
                raise ValueError(
                    f"{plan_path} has inputs {ins} and outputs {outs}, expected the single "
                    f"input {INPUT_NAME!r} and one output; {_REBUILD_HINT}."
                )
            self.input_name, self.output_name = ins[0], outs[0]
            _, _, max_shape = engine.get_tensor_profile_shape(INPUT_NAME, 0)
            self.frame_shape = tuple(int(d) for d in max_shape)[1:]  # (T, J, C)
            if self.max_batch > int(max_shape[0]):
                raise ValueError(
                    f"{plan_path} was built for batches up to {max_shape[0]}, not {max_batch}; "
                    f"{_REBUILD_HINT} --max-batch {max_batch}."
                )
            self._engine = engine
            self._context = engine.create_execution_context()
            full = (self.max_batch, *self.frame_shape)
            self._context.set_input_shape(INPUT_NAME, full)
            out_full = tuple(int(d) for d in self._context.get_tensor_shape(self.output_name))
            dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
            in_dtype = dtypes[engine.get_tensor_dtype(self.input_name)]
            out_dtype = dtypes[engine.get_tensor_dtype(self.output_name)]
            cuda = torch.device("cuda", self.device)
            self._dev_in = torch.empty(full, dtype=in_dtype, device=cuda)
            self._dev_out = torch.empty(out_full, dtype=out_dtype, device=cuda)
            self._host_in = torch.empty(full, dtype=in_dtype, pin_memory=True)
            self._host_out = torch.empty(out_full, dtype=out_dtype, pin_memory=True)
            self._stream = torch.cuda.Stream(device=cuda)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """(B, T, J, C) float32 keypoints with B <= max_batch -> a fresh (B, J, 3) float32 array."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.frame_shape:
            raise ValueError(f"expected (B, *{self.frame_shape}) keypoints, got {x.shape}.")
        b = x.shape[0]
        if not 1 <= b <= self.max_batch:
            raise ValueError(f"batch must lie in [1, {self.max_batch}], got {b}.")
        torch = self._torch
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            self._host_in[:b].copy_(torch.from_numpy(x))
            self._dev_in[:b].copy_(self._host_in[:b], non_blocking=True)
            self._context.set_input_shape(self.input_name, x.shape)
            self._context.set_tensor_address(self.input_name, self._dev_in.data_ptr())
            self._context.set_tensor_address(self.output_name, self._dev_out.data_ptr())
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT failed to enqueue the inference.")
            self._host_out[:b].copy_(self._dev_out[:b], non_blocking=True)
            self._stream.synchronize()
        return self._host_out[:b].numpy().astype(np.float32, copy=True)
