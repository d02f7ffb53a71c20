"""``engines build``: compile a lifter checkpoint for one target, into the engine cache.

Targets (see ``docs/engines.md``):

* ``onnx``: ``torch.onnx`` export with a dynamic batch axis, checked by ``onnx.checker`` and
  compared with torch on the spot; runs on ONNX Runtime (CPU, or its CUDA provider).
* ``aoti``: an AOTInductor package (``.pt2``) compiled for this machine's CUDA GPU, loaded later
  without recompiling.
* ``tensorrt``: the ONNX graph built into a TensorRT 10 plan (batch 1..max_batch profile, FP16 on
  request, a timing cache shared between builds) - written to the documented API, unverified here.
* ``torch-tensorrt``: the dynamo path, saved as an exported program - likewise unverified here.
* ``auto``: the fastest target this machine supports; one log line says which and why.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.artifacts import (
    ARTIFACT_NAMES,
    TARGETS,
    EngineError,
    Manifest,
    cache_key,
    cache_root,
    device_fingerprint,
    file_sha256,
    library_versions,
    read_manifest,
    write_manifest,
)
from engines.checkpoint import load_checkpoint, resolve_checkpoint
from engines.fileio import atomic_folder
from engines.skeleton import CANONICAL

__all__ = ["PRECISIONS", "Log", "build", "choose_target", "example_input", "export_onnx"]

PRECISIONS = ("fp32", "fp16")
INPUT_NAME, OUTPUT_NAME = "keypoints", "joints"
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def choose_target(log: Log = _quiet) -> str:
    """The fastest target this machine supports, with one log line saying why."""
    from engines import tensorrt_backend

    ok, why = tensorrt_backend.available()
    if ok:
        log(f"target auto -> tensorrt ({why} on {torch.cuda.get_device_name(0)})")
        return "tensorrt"
    if torch.cuda.is_available():
        log(f"target auto -> aoti (CUDA GPU {torch.cuda.get_device_name(0)}; {why})")
        return "aoti"
    log("target auto -> onnx (no CUDA GPU: ONNX Runtime on the CPU)")
    return "onnx"


def example_input(batch: int, frames: int, joints: int = CANONICAL.num_joints, seed: int = 0) -> torch.Tensor:
    """A plausible input: screen coordinates in [-0.5, 0.5], confidences in [0.5, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, frames, joints, 3, generator=g)
    x[..., :2] -= 0.5
    x[..., 2] = 0.5 + 0.5 * x[..., 2]
    return x


class _Autocast(nn.Module):
    """FP16 compute for the matrix products, float32 in and out (autocast keeps reductions,
    normalisation and the root decoding in float32)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            out = self.model(x)
        return out.float()


def export_onnx(model: nn.Module, path: Path, frames: int, max_batch: int, opset: int = 17) -> None:
    """Export with a dynamic batch axis; check the graph and compare it with torch at batch 1 and 5."""
    import onnx

    model = model.eval().cpu()
    x = example_input(2, frames)
    # with autograd on, torch's fused inference kernels for the encoder (no ONNX equivalent) stay off
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks that are constant here
            torch.onnx.export(model, (x,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              opset_version=opset, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; the user needs one sentence
        raise EngineError(f"ONNX export failed: {str(exc).splitlines()[0]}") from None
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in sorted({1, min(5, max_batch)}):
        xb = example_input(batch, frames, seed=batch)
        with torch.no_grad():
            want = model(xb).numpy()
        got = session.run(None, {INPUT_NAME: xb.numpy()})[0]
        err = float(np.abs(got - want).max())
        if err > 1e-4:
            raise EngineError(f"ONNX export differs from torch by {err:.2e} m at batch {batch}; not saved")


def _export_aoti(model: nn.Module, path: Path, frames: int, max_batch: int, precision: str) -> None:
    model = model.eval().cuda()
    wrapped = _Autocast(model) if precision == "fp16" else model
    x = example_input(2, frames).cuda()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    with torch.no_grad():
        program = torch.export.export(wrapped, (x,), dynamic_shapes=({0: batch},))
        torch._inductor.aoti_compile_and_package(program, package_path=str(path))


def _check_request(target: str, precision: str, max_batch: int) -> None:
    if target not in TARGETS:
        raise EngineError(f"unknown target {target!r}; choose auto, {', '.join(TARGETS)}")
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}; choose fp32 or fp16")
    if not 1 <= max_batch <= 4096:
        raise EngineError(f"--max-batch must be between 1 and 4096, got {max_batch}")
    if target == "onnx" and precision == "fp16":
        raise EngineError("FP16 ONNX is not offered: ONNX Runtime runs the lifter in float32 on the CPU; "
                          "use --target tensorrt or aoti for FP16 on a GPU")
    if target != "onnx" and not torch.cuda.is_available():
        raise EngineError(f"target {target} needs a CUDA GPU and this machine has none; use --target onnx")
    if target in ("tensorrt", "torch-tensorrt"):
        from engines import tensorrt_backend, torch_tensorrt_backend

        ok, why = (tensorrt_backend if target == "tensorrt" else torch_tensorrt_backend).available()
        if not ok:
            raise EngineError(f"target {target} is not available here: {why}")


def build(checkpoint: str | os.PathLike = "default", target: str = "auto", precision: str = "fp32",
          max_batch: int = 64, out: str | os.PathLike | None = None, force: bool = False,
          log: Log = _quiet) -> Manifest:
    """Build (or find in the cache) an engine; returns its manifest. ``out`` puts it in that folder
    instead of the cache."""
    if target == "auto":
        target = choose_target(log)
    _check_request(target, precision, max_batch)
    ckpt = resolve_checkpoint(checkpoint).resolve()
    model, meta = load_checkpoint(ckpt)
    sha = file_sha256(ckpt)
    device = device_fingerprint("cpu" if target == "onnx" else "cuda")
    versions = library_versions(target)
    key = cache_key(sha, target, precision, max_batch, device, versions)
    folder = Path(out) if out is not None else cache_root() / f"{target}-{precision}-{key}"
    if not force and (folder / "manifest.json").is_file():
        try:
            found = read_manifest(folder)
            if found.doc.get("key") == key:
                log(f"cached: {folder}")
                return found
        except EngineError:
            pass  # a broken entry is rebuilt below
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / "manifest.json").is_file())):
        raise EngineError(f"{folder} exists and is not an engine folder; choose an empty or new --out")
    frames = int(model.receptive_field)
    with atomic_folder(folder) as tmp:
        artifact = tmp / ARTIFACT_NAMES[target]
        log(f"building {target} ({precision}, batch 1..{max_batch}) from {ckpt.name}")
        if target == "onnx":
            export_onnx(model, artifact, frames, max_batch)
        elif target == "aoti":
            _export_aoti(model, artifact, frames, max_batch, precision)
        elif target == "tensorrt":
            from engines import tensorrt_backend

            onnx_path = tmp / "model.onnx"
            export_onnx(model, onnx_path, frames, max_batch)
            tensorrt_backend.build_plan(onnx_path, artifact, precision=precision, max_batch=max_batch,
                                        frames=frames, joints=CANONICAL.num_joints,
                                        timing_cache_path=cache_root() / "tensorrt.timing-cache", log=log)
        else:
            from engines import torch_tensorrt_backend

            torch_tensorrt_backend.build_program(model, artifact, precision=precision, max_batch=max_batch,
                                                 frames=frames, joints=CANONICAL.num_joints)
        write_manifest(tmp, {
            "target": target, "precision": precision, "max_batch": max_batch, "key": key,
            "artifact": artifact.name,
            "model": {"sha256": sha, "checkpoint": str(ckpt), "receptive_field": frames,
                      "joints": CANONICAL.num_joints, "channels": 3, "config": meta.get("config")},
            "device": device, "versions": versions,
        })
    log(f"built {folder}")
    return read_manifest(folder)
