"""Shared test fixtures: where ../shared lives, and GPU skipping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MOCAP = SHARED / "data" / "cmu-mocap"
MEDIA = SHARED / "media"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared is missing beside the checkout ({SHARED}); tests need its real data")
    return SHARED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cmu_archive_path(tmp_path_factory, shared_dir) -> Path:
    """All of ../shared/data/cmu-mocap prepared once per test session (about 30 s)."""
    from training.motion import prepare

    out = tmp_path_factory.mktemp("cmu") / "cmu.npz"
    prepare([MOCAP], out, fps=30.0, progress=False)
    return out


@pytest.fixture(scope="session")
def blazepose_cache(tmp_path_factory) -> Iterator[Path]:
    """One BlazePose cache (built modules, ONNX engines) for the session, away from the user's."""
    import os

    saved = os.environ.get("POSESTREAM_CACHE")
    if saved is None:
        os.environ["POSESTREAM_CACHE"] = str(tmp_path_factory.mktemp("posestream-cache"))
    from engines.blazepose import blazepose_cache as root

    yield root()
    if saved is None:
        os.environ.pop("POSESTREAM_CACHE", None)
