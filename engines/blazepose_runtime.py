"""Running the ported BlazePose networks: PyTorch (CPU or CUDA, FP32 or FP16) or an ONNX engine.

>>> run = load_runner("landmark", backend="onnxruntime", outputs=("landmarks", "pose_flag", "heatmap"))
>>> landmarks, flag, heatmap = run(x)          # x (B, 256, 256, 3) float32 NHWC -> NumPy arrays

ONNX engines are built like the lifter's (``engines.build``): exported with a dynamic batch axis,
checked with ``onnx.checker`` and against PyTorch on the spot, then kept in the engine cache under
``$POSESTREAM_CACHE/blazepose/<network>-onnx-fp32-<key>/`` with a ``manifest.json`` in the same
format (target ``onnx``), the key hashing the ``.tflite`` file, the requested outputs, the code and
the onnx version. They live beside the lifter's engines, not among them, so ``engines info``
lists lifters only.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from engines.artifacts import (
    EngineError,
    Manifest,
    device_fingerprint,
    file_sha256,
    library_versions,
    read_manifest,
    write_manifest,
)
from engines.blazepose import (
    INPUT_SIZE,
    NETWORKS,
    TFLiteNet,
    _code_fingerprint,
    blazepose_cache,
    load_network,
    tflite_path,
)
from engines.fileio import atomic_folder

__all__ = ["RUNTIMES", "build_onnx", "load_runner"]

RUNTIMES = ("torch", "onnxruntime")
Runner = Callable[[np.ndarray], tuple[np.ndarray, ...]]


def _check_input(x: np.ndarray, size: int) -> np.ndarray:
    if x.ndim != 4 or x.shape[1:] != (size, size, 3):
        raise ValueError(f"expected images of shape (batch, {size}, {size}, 3), got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def example_batch(network: str, batch: int, seed: int = 0) -> np.ndarray:
    """A deterministic input of the network's range (the detector takes [-1, 1], landmarks [0, 1])."""
    size = INPUT_SIZE[network]
    x = np.random.default_rng(seed).random((batch, size, size, 3), dtype=np.float32)
    return x * 2 - 1 if network == "detector" else x


def _export(net: TFLiteNet, network: str, path: Path, opset: int = 17) -> None:
    import onnx

    x = torch.from_numpy(example_batch(network, 2))
    names = list(net.output_names)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=names,
                              dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                              opset_version=opset, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; the user needs one sentence
        raise EngineError(f"ONNX export of the BlazePose {network} network failed: {str(exc).splitlines()[0]}") from None
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        xb = example_batch(network, batch, seed=batch)
        with torch.no_grad():
            want = [t.numpy() for t in net(torch.from_numpy(xb))]
        got = session.run(None, {"image": xb})
        for name, w, g in zip(names, want, got):
            err = float(np.abs(w - g).max() / max(1.0, float(np.abs(w).max())))
            if err > 2e-3:  # float32 reassociation; the deep segmentation decoder reaches ~5e-4 on noise
                raise EngineError(f"ONNX export of {network}/{name} differs from torch by {err:.2e} "
                                  f"(relative) at batch {batch}; not saved")


def build_onnx(network: str, outputs: tuple[str, ...] | None = None, *, force: bool = False) -> Manifest:
    """The ONNX engine of a network (built on first use, then from the cache)."""
    outputs = tuple(NETWORKS[network][1]) if outputs is None else tuple(outputs)
    src = tflite_path(network)
    device = device_fingerprint("cpu")
    versions = library_versions("onnx")
    versions["posestream-blazepose"] = _code_fingerprint()
    doc = f"{file_sha256(src)}:{','.join(outputs)}:{sorted(versions.items())}:{sorted(device.items())}"
    key = hashlib.sha256(doc.encode()).hexdigest()[:16]
    folder = blazepose_cache() / f"{network}-onnx-fp32-{key}"
    if not force and (folder / "manifest.json").is_file():
        try:
            found = read_manifest(folder)
            if found.doc.get("key") == key:
                return found
        except EngineError:
            pass
    net = load_network(network, outputs)
    with atomic_folder(folder) as tmp:
        _export(net, network, tmp / "model.onnx")
        write_manifest(tmp, {"target": "onnx", "precision": "fp32", "max_batch": 64, "key": key,
                             "artifact": "model.onnx",
                             "model": {"network": network, "tflite": str(src), "sha256": file_sha256(src),
                                       "outputs": list(outputs), "input": [-1, INPUT_SIZE[network], INPUT_SIZE[network], 3]},
                             "device": device, "versions": versions})
    return read_manifest(folder)


@contextmanager
def _ieee_fp32_convolutions():
    """cuDNN convolutions in full float32 while inside. PyTorch lets cuDNN run "float32"
    convolutions as TF32 (a 10-bit mantissa) on Ampere and newer GPUs by default; the port's FP32
    must be MediaPipe's arithmetic, so its networks opt out for their own calls (the flag is
    process-wide, hence set and restored around each call rather than once)."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


class _TorchRunner:
    def __init__(self, network: str, outputs: tuple[str, ...] | None, device: str, precision: str,
                 cuda_graphs: bool = True) -> None:
        self.size = INPUT_SIZE[network]
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.net = load_network(network, outputs).to(self.device, self.dtype)
        from engines.runtime import CudaGraphReplay

        self._fn = CudaGraphReplay(self.net) if cuda_graphs and self.device.type == "cuda" else self.net
        exact = self.device.type == "cuda" and self.dtype == torch.float32
        self._precision = _ieee_fp32_convolutions if exact else nullcontext

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        t = torch.from_numpy(_check_input(x, self.size)).to(self.device, self.dtype, non_blocking=True)
        with self._precision():  # graphs are captured on the first call, inside this too
            out = self._fn(t)
        return tuple(o.float().cpu().numpy() for o in out)


class _OrtRunner:
    def __init__(self, network: str, outputs: tuple[str, ...] | None, device: str, threads: int) -> None:
        import onnxruntime as ort

        self.size = INPUT_SIZE[network]
        manifest = build_onnx(network, outputs)
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EngineError("ONNX Runtime has no CUDA provider here (install onnxruntime-gpu); use --device cpu "
                                  "or the torch runtime")
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # idle worker threads that spin steal the cores the rest of the pipeline needs
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(manifest.artifact), opts, providers=providers)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {"image": _check_input(x, self.size)}))


def load_runner(network: str, backend: str = "torch", *, outputs: tuple[str, ...] | None = None,
                device: str = "cpu", precision: str = "fp32", threads: int = 0, cuda_graphs: bool = True) -> Runner:
    """A callable (B, S, S, 3) float32 -> tuple of NumPy outputs for one network.

    ``backend``: ``torch`` (eager, CPU or CUDA, FP32 or FP16 weights and activations) or
    ``onnxruntime`` (the ONNX engine from the cache; CPU, or its CUDA provider when installed).
    ``cuda_graphs``: torch on CUDA replays captured CUDA graphs (one per input shape).
    ``threads``: ONNX Runtime's threads per network (0: its default, one per core); torch keeps
    the process-wide setting (``torch.set_num_threads``), which the lifter shares.
    """
    if network not in NETWORKS:
        raise ValueError(f"unknown BlazePose network {network!r}; choose one of {', '.join(NETWORKS)}")
    if backend not in RUNTIMES:
        raise ValueError(f"unknown BlazePose runtime {backend!r}; choose one of {', '.join(RUNTIMES)}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise EngineError("--device cuda was requested but torch sees no CUDA GPU on this machine")
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"unknown precision {precision!r}; choose fp32 or fp16")
    if backend == "torch":
        if precision == "fp16" and device == "cpu":
            raise EngineError("FP16 needs --device cuda (half-precision convolutions on the CPU are slow)")
        return _TorchRunner(network, outputs, device, precision, cuda_graphs)
    if precision == "fp16":
        raise EngineError("FP16 is offered through the torch runtime on CUDA only")
    return _OrtRunner(network, outputs, device, threads)
