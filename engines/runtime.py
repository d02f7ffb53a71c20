"""One interface over every way to run a lifter: ``engines.load(...)`` -> :class:`Engine`.

>>> engine = engines.load("default", backend="auto")   # or a checkpoint path, or an engine folder
>>> joints = engine.infer(x)        # x (B, T, J, 3) float32 (u, v, confidence) -> (B, J, 3) metres
>>> engine.receptive_field, engine.backend, engine.input_spec()

Backends, fastest first where the machine has them:

* ``tensorrt``: a TensorRT 10 plan (``engines.tensorrt_backend``; unverified in our CI);
* ``torch-tensorrt``: torch-tensorrt's dynamo path (unverified in our CI);
* ``aoti``: an AOTInductor package on CUDA, replayed through CUDA graphs per batch size;
* ``torch-compile``: ``torch.compile(mode="reduce-overhead")`` on CUDA (CUDA graphs; nothing saved);
* ``onnxruntime``: ONNX Runtime, CUDA provider where installed, else the CPU;
* ``torch``: eager PyTorch on CUDA or CPU (the reference every other backend is verified against).

``backend="auto"`` picks TensorRT, else AOTInductor on a CUDA GPU, else ONNX Runtime on the CPU.
Artifact backends build through the engine cache on first use (``engines.build``); an engine
built for another GPU or other library versions is rebuilt when its source checkpoint is at
hand, and otherwise refused with the command to run. A requested TensorRT that is missing falls
back with one log line.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.artifacts import (
    EngineError,
    Manifest,
    compatibility_problem,
    read_manifest,
)
from engines.checkpoint import load_checkpoint, resolve_checkpoint
from engines.models import sanitize_keypoints
from engines.skeleton import CANONICAL

__all__ = ["BACKENDS", "Engine", "EngineError", "load"]

log = logging.getLogger("posestream.engines")

BACKENDS = ("auto", "tensorrt", "torch-tensorrt", "aoti", "torch-compile", "onnxruntime", "torch")
_TARGET_OF = {"tensorrt": "tensorrt", "torch-tensorrt": "torch-tensorrt", "aoti": "aoti", "onnxruntime": "onnx"}
_BACKEND_OF = {v: k for k, v in _TARGET_OF.items()}


class Engine:
    """A loaded lifter. Subclasses implement ``_run`` on a float32 batch of at most ``max_batch``."""

    backend = "base"

    def __init__(self, receptive_field: int, max_batch: int | None, device: str, precision: str = "fp32",
                 source: str = "") -> None:
        self.receptive_field = int(receptive_field)
        self.joints = CANONICAL.num_joints
        self.max_batch = max_batch
        self.device = device
        self.precision = precision
        self.source = source
        self.model_config: dict[str, Any] = {}  # the checkpoint's engines.models config, as a dict

    @property
    def body_size_m(self) -> float:
        """The bone-length sum every output is scaled to (``engines.models``); 0: the model's own size."""
        return float(self.model_config.get("body_size_m", 0.0) or 0.0)

    def input_spec(self) -> dict[str, Any]:
        """What ``infer`` takes and returns (names, shapes, dtype, meaning)."""
        return {
            "name": "keypoints", "shape": ["batch", self.receptive_field, self.joints, 3], "dtype": "float32",
            "channels": ["u", "v", "confidence"], "coords": "screen (longer image side spans [-1, 1])",
            "max_batch": self.max_batch,
            "output": {"name": "joints", "shape": ["batch", self.joints, 3], "dtype": "float32",
                       "units": "m", "frame": "camera (x right, y down, z forward)",
                       "joints": list(CANONICAL.joint_names)},
        }

    def infer(self, x: np.ndarray) -> np.ndarray:
        """(B, T, J, 3) keypoints -> (B, J, 3) camera-frame joints. NaN/inf joints count as missing;
        batches larger than ``max_batch`` run in chunks."""
        arr = np.asarray(x)
        if arr.ndim != 4 or arr.shape[1:] != (self.receptive_field, self.joints, 3):
            raise EngineError(f"expected keypoints of shape (batch, {self.receptive_field}, {self.joints}, 3), "
                              f"got {arr.shape}")
        if arr.shape[0] == 0:
            return np.zeros((0, self.joints, 3), np.float32)
        arr = np.ascontiguousarray(sanitize_keypoints(arr, self.joints))
        step = self.max_batch or arr.shape[0]
        if arr.shape[0] <= step:
            return self._run(arr)
        return np.concatenate([self._run(arr[i:i + step]) for i in range(0, arr.shape[0], step)])

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} backend={self.backend} device={self.device} precision={self.precision} "
                f"T={self.receptive_field} max_batch={self.max_batch} source={self.source}>")


class CudaGraphReplay:
    """Replays ``fn`` (a tensor in; a tensor or a tuple of tensors out) through one captured CUDA
    graph per input shape (static shapes); many small kernels then cost one launch. A capture
    that fails (``fn`` does something a graph cannot hold) switches graphs off with one log line.
    Used by the lifter's engines and the BlazePose networks."""

    def __init__(self, fn, max_graphs: int = 8) -> None:
        self.fn = fn
        self.disabled = False
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}
        self.max_graphs = max_graphs

    def __call__(self, x: torch.Tensor):
        entry = self.graphs.get(tuple(x.shape))
        if entry is None:
            if self.disabled or len(self.graphs) >= self.max_graphs:
                return self.fn(x)
            try:
                entry = self._capture(x)
            except Exception as exc:  # noqa: BLE001 - the callable does something a graph cannot hold: run it directly
                self.disabled = True
                log.warning("CUDA graph capture failed (%s); running without CUDA graphs", str(exc).splitlines()[0])
                torch.cuda.synchronize()
                return self.fn(x)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone() if isinstance(static_out, torch.Tensor) else tuple(t.clone() for t in static_out)

    def _capture(self, x: torch.Tensor):
        static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.fn(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.fn(static_in)
        entry = self.graphs[tuple(x.shape)] = (graph, static_in, static_out)
        return entry


class TorchEngine(Engine):
    """Eager PyTorch (``compile=True``: ``torch.compile`` with CUDA graphs, backend ``torch-compile``)."""

    def __init__(self, checkpoint: str | os.PathLike, device: str | None = None, compile: bool = False) -> None:
        model, _ = load_checkpoint(checkpoint)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if compile and not device.startswith("cuda"):
            raise EngineError("backend torch-compile needs a CUDA GPU (it replays CUDA graphs); use torch or onnxruntime")
        super().__init__(model.receptive_field, None, device, source=str(resolve_checkpoint(checkpoint)))
        self.backend = "torch-compile" if compile else "torch"
        self.model_config = asdict(model.config)
        self.model = model.eval().to(device)
        self._fn = torch.compile(self.model, mode="reduce-overhead", dynamic=False) if compile else self.model

    @torch.inference_mode()
    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self._fn(torch.from_numpy(x).to(self.device, non_blocking=True))
        return out.float().cpu().numpy()


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, manifest: Manifest, device: str | None = None, threads: int = 0, spin: bool = True) -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        if not spin:  # worker threads sleep between calls: CPU left to the threads beside us (see load)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(manifest.artifact), opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for corrupt files
            raise EngineError(f"{manifest.artifact}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]}); "
                              f"rebuild it with `engines build --target onnx`") from None
        used = self.session.get_providers()[0]
        super().__init__(manifest.receptive_field, manifest.max_batch,
                         "cuda" if used == "CUDAExecutionProvider" else "cpu", manifest.precision, str(manifest.folder))
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


def _load_aoti_package(path: Path, single_threaded: bool):
    """``torch._inductor.aoti_load_package``, asking for the single-threaded runner where this
    torch offers it (the option is recent; an older torch loads the pooled runner)."""
    load_package = torch._inductor.aoti_load_package
    if single_threaded and "run_single_threaded" in inspect.signature(load_package).parameters:
        return load_package(str(path), run_single_threaded=True)
    return load_package(str(path))


class AOTIEngine(Engine):
    backend = "aoti"

    def __init__(self, manifest: Manifest, cuda_graphs: bool = True) -> None:
        # By default the package's runner guards a pool of model instances with CUDA events that
        # it records and waits on around every run; waiting on an event inside a CUDA graph capture
        # is illegal, so the capture fails ("operation failed due to a previous error during
        # capture"). The single-threaded runner drops that logic (torch documents it for CUDA
        # graphs); CudaGraphReplay is single-threaded anyway.
        try:
            runner = _load_aoti_package(manifest.artifact, single_threaded=cuda_graphs)
        except Exception as exc:  # noqa: BLE001 - torch raises many types here
            raise EngineError(f"{manifest.artifact}: AOTInductor cannot load it ({str(exc).splitlines()[0]}); "
                              f"rebuild it with `engines build --target aoti`") from None
        super().__init__(manifest.receptive_field, manifest.max_batch, "cuda", manifest.precision, str(manifest.folder))
        self._fn = CudaGraphReplay(runner) if cuda_graphs else runner

    @torch.inference_mode()
    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._fn(torch.from_numpy(x).cuda(non_blocking=True)).float().cpu().numpy()


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, manifest: Manifest) -> None:
        from engines.tensorrt_backend import TensorRTRunner

        self.runner = TensorRTRunner(manifest.artifact, max_batch=manifest.max_batch)
        super().__init__(manifest.receptive_field, manifest.max_batch, "cuda", manifest.precision, str(manifest.folder))

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.runner.infer(x)


class TorchTensorRTEngine(Engine):
    backend = "torch-tensorrt"

    def __init__(self, manifest: Manifest) -> None:
        from engines.torch_tensorrt_backend import load_program

        self._fn = load_program(manifest.artifact)
        super().__init__(manifest.receptive_field, manifest.max_batch, "cuda", manifest.precision, str(manifest.folder))

    @torch.inference_mode()
    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._fn(torch.from_numpy(x).cuda()).float().cpu().numpy()


def _from_manifest(manifest: Manifest, device: str | None, spin: bool = True) -> Engine:
    if manifest.target == "onnx":
        engine: Engine = OnnxRuntimeEngine(manifest, device, spin=spin)
    elif manifest.target == "aoti":
        engine = AOTIEngine(manifest)
    elif manifest.target == "tensorrt":
        engine = TensorRTEngine(manifest)
    else:
        engine = TorchTensorRTEngine(manifest)
    engine.model_config = dict(manifest.doc.get("model", {}).get("config") or {})
    return engine


def _is_engine_path(source: str | os.PathLike) -> bool:
    p = Path(source)
    return p.is_dir() or (p.suffix in (".onnx", ".pt2", ".plan", ".ep", ".json"))


def _auto_backend(device: str | None) -> str:
    from engines import tensorrt_backend

    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda and tensorrt_backend.available()[0]:
        return "tensorrt"
    return "aoti" if cuda else "onnxruntime"


def load(source: str | os.PathLike = "default", backend: str = "auto", *, device: str | None = None,
         precision: str = "fp32", max_batch: int = 64, rebuild: bool = True, spin: bool = True) -> Engine:
    """Load a lifter for inference.

    ``source``: ``"default"``, a checkpoint (``.safetensors``), or a built engine (its folder or
    artifact file, with ``manifest.json`` beside it). ``backend``: one of :data:`BACKENDS`.
    ``device``: ``"cpu"`` or ``"cuda"`` for the torch and onnxruntime backends. ``spin``: ONNX
    Runtime's CPU worker threads busy-wait for the next call (its default: the lowest latency when
    the lifter has the CPU to itself); ``False`` lets them sleep, which the realtime pipeline wants:
    there, spinning threads take the cores from the 2D detector (on a 2-core machine they slow
    MediaPipe down by about a quarter per frame).
    """
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if _is_engine_path(source):
        manifest = read_manifest(source)
        if backend not in ("auto", _BACKEND_OF[manifest.target]):
            raise EngineError(f"{source} is a {manifest.target} engine; load it with backend "
                              f"{_BACKEND_OF[manifest.target]!r} or 'auto'")
        problem = compatibility_problem(manifest)
        if problem is None:
            return _from_manifest(manifest, device, spin)
        ckpt = manifest.checkpoint
        if not rebuild or ckpt is None or not ckpt.is_file():
            raise EngineError(f"{manifest.folder}: cannot use this engine here: {problem}; rebuild it with "
                              f"`engines build --checkpoint {ckpt or 'CHECKPOINT'} --target {manifest.target} "
                              f"--precision {manifest.precision}`")
        log.warning("rebuilding %s engine: %s", manifest.target, problem)
        return load(ckpt, _BACKEND_OF[manifest.target], device=device, precision=manifest.precision,
                    max_batch=manifest.max_batch, spin=spin)
    ckpt = resolve_checkpoint(source)
    if backend == "auto":
        backend = _auto_backend(device)
    if backend in ("tensorrt", "torch-tensorrt"):
        from engines import tensorrt_backend, torch_tensorrt_backend

        ok, why = (tensorrt_backend if backend == "tensorrt" else torch_tensorrt_backend).available()
        if not ok:
            fallback = "aoti" if torch.cuda.is_available() and device != "cpu" else "onnxruntime"
            log.warning("%s unavailable: %s; falling back to %s", backend, why.rstrip("."), fallback)
            backend = fallback
    if backend == "torch":
        return TorchEngine(ckpt, device)
    if backend == "torch-compile":
        return TorchEngine(ckpt, device or "cuda", compile=True)
    if backend == "aoti" and (device == "cpu" or not torch.cuda.is_available()):
        raise EngineError("backend aoti needs a CUDA GPU and none is visible; use onnxruntime or torch")
    from engines.build import build

    target = _TARGET_OF[backend]
    manifest = build(ckpt, target, "fp32" if target == "onnx" else precision, max_batch,
                     log=lambda m: log.info(m))
    return _from_manifest(manifest, device, spin)
