"""Shared test fixtures: where ../shared lives, GPU skipping, and two checks on the slow marker.

``pytest -m "not slow"`` is the quick loop (see the ``slow`` marker in pyproject.toml). Two kinds
of test are slow by construction, and a test of either kind that is not marked slow fails with a
sentence saying so: one that starts a Python interpreter in a subprocess (each one re-imports torch,
1-4 s, the usual way to run a CLI as a user does), and one that uses ``cmu_archive_path``.
"""

from __future__ import annotations

import os
import sys
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


_CONSOLE_SCRIPTS = frozenset({"realtime", "training", "engines"})
_PYTHON = os.path.realpath(sys.executable)
_running: list[pytest.Item] = []  # the test whose setup, call or teardown is running now


def _starts_python(executable: str | bytes | os.PathLike) -> bool:
    path = os.fsdecode(executable)
    name = os.path.basename(path)
    return name in _CONSOLE_SCRIPTS or name.startswith("python") or os.path.realpath(path) == _PYTHON


def _refuse_python_subprocess_outside_slow_tests(event: str, args: tuple) -> None:
    """Audit hook on every ``subprocess.Popen``: a test not marked slow may not start Python."""
    if event != "subprocess.Popen" or not _running or _running[-1].get_closest_marker("slow"):
        return
    executable, argv = args[0], args[1]
    if _starts_python(executable):
        shown = " ".join(map(os.fsdecode, argv))  # Popen has made argv a list by now
        pytest.fail(f"{_running[-1].nodeid} runs `{shown}`: a test that starts Python in a subprocess is slow, "
                    "mark it @pytest.mark.slow", pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    # an audit hook cannot be removed again; outside a test it returns at once
    sys.addaudithook(_refuse_python_subprocess_outside_slow_tests)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture is built: a test that needs all of the CMU mocap prepared is slow."""
    if "cmu_archive_path" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("slow"):
        pytest.fail(f"{item.nodeid} uses cmu_archive_path (all of ../shared's CMU mocap, prepared once per "
                    "session): mark it @pytest.mark.slow", pytrace=False)


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
    """All of ../shared/data/cmu-mocap prepared once per test session (about 6 s on two cores).

    Only tests marked slow may use it (checked in ``pytest_runtest_setup``)."""
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
