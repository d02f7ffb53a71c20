"""Compiled-engine artifacts: manifests, the machine fingerprint and the cache that keys them.

A built engine is a folder holding the artifact (``model.onnx``, ``model.pt2``, ``model.plan``
or ``model.ep``) and ``manifest.json``::

    {"format": "posestream-engine", "version": 1,
     "target": "onnx" | "aoti" | "tensorrt" | "torch-tensorrt",
     "precision": "fp32" | "fp16", "max_batch": 64,
     "artifact": "model.onnx",
     "model": {"sha256": ..., "checkpoint": "/abs/path.safetensors", "receptive_field": 27,
               "joints": 17, "channels": 3},
     "device": {"kind": "cpu" | "cuda", "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
     "versions": {"posestream-engine": 1, "torch": ..., "onnx": ..., "tensorrt": ..., ...},
     "created": "2026-11-24T01:00:00Z"}

The cache lives in ``$POSESTREAM_CACHE/engines`` (default ``~/.cache/posestream/engines``); an
entry's folder name is ``<target>-<precision>-<key>`` where the key hashes the model, target,
precision, batch limit, device and the versions of the libraries that the target depends on.
Change any of them and the key changes, so a stale engine is never picked up by mistake.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.fileio import atomic_path

__all__ = [
    "ARTIFACT_NAMES",
    "TARGETS",
    "EngineError",
    "Manifest",
    "cache_key",
    "cache_root",
    "compatibility_problem",
    "device_fingerprint",
    "file_sha256",
    "library_versions",
    "list_cache",
    "read_manifest",
    "write_manifest",
]

MANIFEST_FORMAT = "posestream-engine"
MANIFEST_VERSION = 1
TARGETS = ("onnx", "aoti", "tensorrt", "torch-tensorrt")
ARTIFACT_NAMES = {"onnx": "model.onnx", "aoti": "model.pt2", "tensorrt": "model.plan", "torch-tensorrt": "model.ep"}
# the libraries whose versions an artifact of each target depends on
_TARGET_LIBRARIES = {
    "onnx": ("onnx",),
    "aoti": ("torch",),
    "tensorrt": ("tensorrt",),
    "torch-tensorrt": ("torch", "torch_tensorrt", "tensorrt"),
}
_GPU_TARGETS = ("aoti", "tensorrt", "torch-tensorrt")


class EngineError(ValueError):
    """An engine that cannot be built, loaded or used here; the message says what to run."""


def cache_root() -> Path:
    base = Path(os.environ.get("POSESTREAM_CACHE", Path.home() / ".cache" / "posestream"))
    return base / "engines"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def device_fingerprint(kind: str) -> dict[str, str]:
    """What a compiled artifact is tied to: the GPU's name and compute capability (CUDA), or the CPU."""
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise EngineError("this target needs a CUDA GPU and none is visible to torch")
        major, minor = torch.cuda.get_device_capability(0)
        return {"kind": "cuda", "name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}
    import platform

    return {"kind": "cpu", "name": platform.machine()}


def _version(module: str) -> str | None:
    from importlib import metadata

    dist = {"torch_tensorrt": "torch-tensorrt", "tensorrt": "tensorrt"}.get(module, module)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        try:
            return str(__import__(module).__version__)
        except Exception:  # noqa: BLE001 - a broken install has no usable version
            return None


def _models_fingerprint() -> str:
    """Changes whenever the model code changes: an engine traces the code as well as the weights."""
    return file_sha256(Path(__file__).with_name("models.py"))[:12]


def library_versions(target: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {"posestream-engine": str(MANIFEST_VERSION), "posestream-models": _models_fingerprint()}
    for lib in _TARGET_LIBRARIES[target]:
        out[lib] = _version(lib)
    if target in _GPU_TARGETS:
        import torch

        out["cuda"] = torch.version.cuda
    return out


def cache_key(model_sha256: str, target: str, precision: str, max_batch: int,
              device: dict[str, str], versions: dict[str, str | None]) -> str:
    doc = json.dumps({"model": model_sha256, "target": target, "precision": precision, "max_batch": max_batch,
                      "device": device, "versions": versions}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Manifest:
    folder: Path
    doc: dict[str, Any]

    @property
    def target(self) -> str:
        return self.doc["target"]

    @property
    def precision(self) -> str:
        return self.doc["precision"]

    @property
    def max_batch(self) -> int:
        return int(self.doc["max_batch"])

    @property
    def artifact(self) -> Path:
        return self.folder / self.doc["artifact"]

    @property
    def receptive_field(self) -> int:
        return int(self.doc["model"]["receptive_field"])

    @property
    def checkpoint(self) -> Path | None:
        path = self.doc["model"].get("checkpoint")
        return Path(path) if path else None


def write_manifest(folder: Path, doc: dict[str, Any]) -> Manifest:
    doc = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, **doc,
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with atomic_path(folder / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=1))
    return Manifest(folder, doc)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest of an engine folder, or of the folder holding an artifact file."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    mpath = folder / "manifest.json"
    if not path.exists():
        raise EngineError(f"{path}: no such engine (build one with `engines build`)")
    if not mpath.is_file():
        raise EngineError(f"{folder}: no manifest.json beside the engine; rebuild it with `engines build`")
    try:
        doc = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EngineError(f"{mpath}: corrupt engine manifest; rebuild it with `engines build`") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise EngineError(f"{mpath}: not a posestream engine manifest")
    if doc.get("version") != MANIFEST_VERSION or doc.get("target") not in TARGETS:
        raise EngineError(f"{mpath}: engine manifest version {doc.get('version')} / target {doc.get('target')!r} "
                          f"is not supported by this posestream; rebuild it with `engines build`")
    manifest = Manifest(folder, doc)
    if path.is_file() and path.name != "manifest.json" and path.name != doc.get("artifact"):
        raise EngineError(f"{path}: the manifest beside it describes {doc.get('artifact')}, not this file")
    if not manifest.artifact.is_file():
        raise EngineError(f"{manifest.artifact}: engine artifact missing; rebuild it with `engines build`")
    return manifest


def compatibility_problem(manifest: Manifest) -> str | None:
    """None if the engine can run on this machine with these libraries, else why not (one clause)."""
    want_dev = manifest.doc.get("device", {})
    if want_dev.get("kind") == "cuda":
        try:
            here = device_fingerprint("cuda")
        except EngineError:
            return f"it was built for the GPU {want_dev.get('name')} and this machine has no CUDA GPU"
        if (here["name"], here["compute_capability"]) != (want_dev.get("name"), want_dev.get("compute_capability")):
            return (f"it was built for {want_dev.get('name')} (compute capability {want_dev.get('compute_capability')}) "
                    f"and this GPU is {here['name']} ({here['compute_capability']})")
    have = library_versions(manifest.target)
    for lib, version in manifest.doc.get("versions", {}).items():
        if lib in have and have[lib] != version:
            return f"it was built with {lib} {version} and this machine has {lib} {have[lib]}"
    return None


def list_cache(root: Path | None = None) -> list[Manifest]:
    root = cache_root() if root is None else root
    out = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            try:
                out.append(read_manifest(folder))
            except EngineError:
                continue
    return out
