"""TensorRT and Torch-TensorRT backends, tested without either library and without a GPU.

The real libraries cannot be installed here, so ``tensorrt`` is either forced missing
(``sys.modules["tensorrt"] = None`` makes ``import tensorrt`` raise ImportError) or replaced by a
small fake that records what ``build_plan`` asks of it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import engines
from engines import tensorrt_backend as trtb
from engines import torch_tensorrt_backend as tttb

SHAPE = {"max_batch": 8, "frames": 27, "joints": 17, "channels": 3}


# --------------------------------------------------------------------------- fake tensorrt


class FakeTensorRT(SimpleNamespace):
    """Just enough of the TensorRT 10 builder/runtime API for build_plan and the runner's init.

    ``calls`` records what was asked: network flags, parsed path, pool limit, flags, profile
    shapes, the timing cache blob loaded, ``ignore_mismatch``; ``build_serialized_network``
    returns ``plan`` and appends ``b"+timed"`` to the attached timing cache, as a real build
    adds entries.
    """

    def __init__(self, version="10.3.0", *, fp16=True, parse_errors=(), inputs=("keypoints",),
                 plan=b"PLAN-BYTES", cache_accepts=True, engine=None):
        calls = SimpleNamespace(network_flags=None, parsed=None, pool=None, flags=[], profile=None,
                                cache_loaded=[], ignore_mismatch=[], built=0)
        self_ = self

        class Logger:
            WARNING = "warning"

            def __init__(self, severity):
                self.severity = severity

        class Cache:
            def __init__(self, blob):
                self.blob = bytes(blob)

            def serialize(self):
                return self.blob

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                calls.profile = (name, tuple(lo), tuple(opt), tuple(hi))

        class Config:
            cache = None

            def set_memory_pool_limit(self, pool, size):
                calls.pool = (pool, size)

            def set_flag(self, flag):
                calls.flags.append(flag)

            def add_optimization_profile(self, profile):
                return 0

            def create_timing_cache(self, blob):
                calls.cache_loaded.append(bytes(blob))
                return Cache(blob)

            def set_timing_cache(self, cache, ignore_mismatch):
                calls.ignore_mismatch.append(ignore_mismatch)
                ok = self_.cache_accepts or len(calls.ignore_mismatch) > 1
                self.cache = cache if ok else None
                return ok

            def get_timing_cache(self):
                return self.cache

        class Network:
            num_inputs = len(inputs)

            def get_input(self, i):
                return SimpleNamespace(name=inputs[i])

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                calls.network_flags = flags
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                calls.built += 1
                if config.cache is not None:
                    config.cache.blob += b"+timed"
                return self_.plan

        class OnnxParser:
            def __init__(self, network, logger):
                self.num_errors = len(parse_errors)

            def parse_from_file(self, path):
                calls.parsed = path
                return not parse_errors

            def get_error(self, i):
                return parse_errors[i]

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, blob):
                return self_.engine

        super().__init__(
            __version__=version, Logger=Logger, Builder=Builder, OnnxParser=OnnxParser,
            Runtime=Runtime, BuilderFlag=SimpleNamespace(**({"FP16": "FP16"} if fp16 else {})),
            MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"),
            TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"),
            DataType=SimpleNamespace(FLOAT="float", HALF="half"),
            calls=calls, plan=plan, cache_accepts=cache_accepts, engine=engine,
        )


class FakeEngine:
    """A deserialized plan with input ``keypoints`` (1..max_batch, T, J, 3) and output (B, J, 3).

    Its context "infers" the mean over frames of each joint's first three channels, reading and
    writing the device buffers whose addresses the runner set, on the runner's stream.
    """

    num_io_tensors = 2

    def __init__(self, max_batch=8, frames=5, joints=4, channels=3):
        self.profile = [(1, frames, joints, channels), (1, frames, joints, channels),
                        (max_batch, frames, joints, channels)]
        self.buffers = {}  # data_ptr -> tensor, filled in by the test once the runner exists

    def get_tensor_name(self, i):
        return ["keypoints", "joints3d"][i]

    def get_tensor_mode(self, name):
        return "in" if name == "keypoints" else "out"

    def get_tensor_dtype(self, name):
        return "float"

    def get_tensor_profile_shape(self, name, index):
        return self.profile

    def create_execution_context(self):
        engine, ctx = self, SimpleNamespace(shape=None, ptr={})
        ctx.set_input_shape = lambda name, shape: setattr(ctx, "shape", tuple(shape))
        ctx.get_tensor_shape = lambda name: (ctx.shape[0], ctx.shape[2], 3)
        ctx.set_tensor_address = lambda name, ptr: ctx.ptr.__setitem__(name, ptr)

        def execute_async_v3(stream_handle):
            b = ctx.shape[0]
            src, dst = engine.buffers[ctx.ptr["keypoints"]], engine.buffers[ctx.ptr["joints3d"]]
            with torch.cuda.stream(torch.cuda.ExternalStream(stream_handle)):
                dst[:b].copy_(src[:b, :, :, :3].mean(dim=1))
            return True

        ctx.execute_async_v3 = execute_async_v3
        return ctx


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)


@pytest.fixture
def no_torch_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)


def _install(monkeypatch, fake) -> FakeTensorRT:
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "lifter.onnx"
    path.write_bytes(b"not parsed by the fake")
    return path


# --------------------------------------------------------------------------- available()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT installed")
def test_available_is_false_in_this_environment():
    ok, reason = trtb.available()
    assert ok is False and "TensorRT" in reason and "not installed" in reason


def test_available_reports_missing_tensorrt(no_tensorrt):
    ok, reason = trtb.available()
    assert ok is False
    assert reason == "TensorRT is not installed (pip install posestream[gpu])."


def test_available_refuses_tensorrt_8(monkeypatch):
    _install(monkeypatch, FakeTensorRT("8.6.1"))
    ok, reason = trtb.available()
    assert ok is False and "8.6.1" in reason and ">= 10" in reason


def test_available_needs_a_gpu_then_reports_the_version(monkeypatch):
    _install(monkeypatch, FakeTensorRT("10.3.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ok, reason = trtb.available()
    assert ok is False and "no CUDA GPU" in reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trtb.available() == (True, "TensorRT 10.3.0")


def test_torch_tensorrt_available_reports_missing_library(no_torch_tensorrt):
    ok, reason = tttb.available()
    assert ok is False
    assert reason == "torch-tensorrt is not installed (pip install posestream[gpu])."


@pytest.mark.parametrize("name", ["engines.tensorrt_backend", "engines.torch_tensorrt_backend"])
def test_modules_import_without_the_libraries(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    monkeypatch.delitem(sys.modules, name)
    attr = name.rsplit(".", 1)[1]
    monkeypatch.setattr(engines, attr, getattr(engines, attr))  # restored after the re-import
    module = importlib.import_module(name)
    assert callable(module.available)
    assert sys.modules["tensorrt"] is None and sys.modules["torch_tensorrt"] is None


# --------------------------------------------------------------------------- shapes and sizes


def test_profile_shapes_vary_only_the_batch():
    assert trtb.profile_shapes(8, 27, 17) == {
        "min": (1, 27, 17, 3), "opt": (1, 27, 17, 3), "max": (8, 27, 17, 3)}
    assert trtb.profile_shapes(4, 81, 17, channels=2, opt_batch=4)["opt"] == (4, 81, 17, 2)
    assert trtb.profile_shapes(1, 1, 1) == {k: (1, 1, 1, 3) for k in ("min", "opt", "max")}


@pytest.mark.parametrize("kwargs, word", [
    ({"max_batch": 0, "frames": 27, "joints": 17}, "max_batch"),
    ({"max_batch": 4, "frames": 27, "joints": 17, "opt_batch": 0}, "opt_batch"),
    ({"max_batch": 4, "frames": 27, "joints": 17, "opt_batch": 5}, "opt_batch"),
    ({"max_batch": 4, "frames": 0, "joints": 17}, "frames"),
    ({"max_batch": 4, "frames": 27, "joints": 17, "channels": 0}, "channels"),
])
def test_profile_shapes_refuses_bad_sizes(kwargs, word):
    with pytest.raises(ValueError, match=word):
        trtb.profile_shapes(**kwargs)


def test_buffer_bytes():
    assert trtb.buffer_bytes((8, 27, 17, 3)) == 8 * 27 * 17 * 3 * 4
    assert trtb.buffer_bytes((8, 27, 17, 3), "float16") == 8 * 27 * 17 * 3 * 2
    assert trtb.buffer_bytes([2, 17, 3], np.float32) == 408
    for bad in [(0, 17, 3), (2, -1, 3), ()]:
        with pytest.raises(ValueError):
            trtb.buffer_bytes(bad)


# --------------------------------------------------------------------------- missing libraries


def test_build_plan_without_tensorrt_raises_import_error(no_tensorrt, onnx_file, tmp_path):
    with pytest.raises(ImportError, match=r"pip install posestream\[gpu\]"):
        trtb.build_plan(onnx_file, tmp_path / "x.plan", **SHAPE)
    assert not (tmp_path / "x.plan").exists()


def test_build_plan_checks_its_arguments_before_needing_tensorrt(no_tensorrt, onnx_file, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        trtb.build_plan(onnx_file, tmp_path / "x.plan", precision="int8", **SHAPE)
    with pytest.raises(ValueError, match="max_batch"):
        trtb.build_plan(onnx_file, tmp_path / "x.plan", **{**SHAPE, "max_batch": 0})
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        trtb.build_plan(tmp_path / "missing.onnx", tmp_path / "x.plan", **SHAPE)


def test_runner_without_tensorrt_raises_import_error(no_tensorrt, tmp_path):
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"whatever")
    with pytest.raises(ImportError, match="TensorRT is not installed"):
        trtb.TensorRTRunner(plan, max_batch=4)


def test_runner_without_a_gpu_raises_runtime_error(monkeypatch, tmp_path):
    _install(monkeypatch, FakeTensorRT())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        trtb.TensorRTRunner(tmp_path / "x.plan", max_batch=4)


def test_runner_refuses_a_corrupt_plan_and_says_to_rebuild(monkeypatch, tmp_path):
    _install(monkeypatch, FakeTensorRT(engine=None))  # deserialize_cuda_engine -> None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="rebuild it with `engines build`") as info:
        trtb.TensorRTRunner(plan, max_batch=4)
    assert str(plan) in str(info.value)


def test_torch_tensorrt_build_without_library_raises_import_error(no_torch_tensorrt, tmp_path):
    with pytest.raises(ImportError, match="torch-tensorrt is not installed"):
        tttb.build_program(torch.nn.Linear(3, 3), tmp_path / "p.pt2", precision="fp32",
                           max_batch=4, frames=27, joints=17)
    with pytest.raises(ValueError, match="precision"):
        tttb.build_program(torch.nn.Linear(3, 3), tmp_path / "p.pt2", precision="bf16",
                           max_batch=4, frames=27, joints=17)


def test_load_program_errors(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError):
        tttb.load_program(tmp_path / "missing.pt2")
    corrupt = tmp_path / "corrupt.pt2"
    corrupt.write_bytes(b"PK\x03\x04 cut short")
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(ImportError, match="torch-tensorrt is not installed"):
        tttb.load_program(corrupt)
    monkeypatch.setitem(sys.modules, "torch_tensorrt", SimpleNamespace())
    with pytest.raises(ValueError, match="not a readable Torch-TensorRT program"):
        tttb.load_program(corrupt)


def test_load_program_returns_the_callable_module(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", SimpleNamespace())
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).eval()
    x = torch.rand(4, 3)
    path = tmp_path / "prog.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(path))
    loaded = tttb.load_program(path)
    assert torch.allclose(loaded(x), model(x))


def test_fp16_asks_for_autocast_only_where_torch_tensorrt_has_it():
    def new_compile(ep, *, enable_autocast=False, autocast_low_precision_type=None):
        pass

    def old_compile(ep, *, enabled_precisions=None):
        pass

    new = SimpleNamespace(dynamo=SimpleNamespace(compile=new_compile))
    old = SimpleNamespace(dynamo=SimpleNamespace(compile=old_compile))
    assert tttb._precision_kwargs(new, "fp32") == {"enabled_precisions": {torch.float32}}
    assert tttb._precision_kwargs(new, "fp16") == {
        "enabled_precisions": {torch.float16, torch.float32},
        "enable_autocast": True, "autocast_low_precision_type": torch.float16}
    assert tttb._precision_kwargs(old, "fp16") == {
        "enabled_precisions": {torch.float16, torch.float32}}


# --------------------------------------------------------------------------- build_plan flow


def test_build_plan_sets_profile_workspace_and_writes_the_plan(monkeypatch, onnx_file, tmp_path):
    fake = _install(monkeypatch, FakeTensorRT())
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real_replace(a, b)))
    plan = tmp_path / "out" / "lifter.plan"
    messages = []
    trtb.build_plan(onnx_file, plan, workspace_bytes=1 << 28, log=messages.append, **SHAPE)

    c = fake.calls
    assert c.network_flags == 0 and c.parsed == str(onnx_file)
    assert c.pool == ("WORKSPACE", 1 << 28)
    assert c.profile == ("keypoints", (1, 27, 17, 3), (1, 27, 17, 3), (8, 27, 17, 3))
    assert c.flags == []  # fp32: no FP16 flag
    assert c.cache_loaded == []  # no timing_cache_path, no cache
    assert plan.read_bytes() == b"PLAN-BYTES"
    # atomic: written under another name in the same folder, then renamed over the target
    assert len(replaced) == 1
    src, dst = map(os.fspath, replaced[0])
    assert dst == os.fspath(plan) and os.path.dirname(src) == os.path.dirname(dst) and src != dst
    assert sorted(p.name for p in plan.parent.iterdir()) == ["lifter.plan"]
    assert any("fp32" in m for m in messages)


def test_build_plan_fp16_sets_the_flag(monkeypatch, onnx_file, tmp_path):
    fake = _install(monkeypatch, FakeTensorRT())
    trtb.build_plan(onnx_file, tmp_path / "a.plan", precision="fp16", **SHAPE)
    assert fake.calls.flags == ["FP16"]


def test_build_plan_fp16_on_strongly_typed_tensorrt_is_refused(monkeypatch, onnx_file, tmp_path):
    fake = _install(monkeypatch, FakeTensorRT("11.0.1", fp16=False))
    with pytest.raises(ValueError, match="strongly typed"):
        trtb.build_plan(onnx_file, tmp_path / "a.plan", precision="fp16", **SHAPE)
    assert fake.calls.built == 0 and not (tmp_path / "a.plan").exists()
    trtb.build_plan(onnx_file, tmp_path / "a.plan", precision="fp32", **SHAPE)  # fp32 still fine
    assert (tmp_path / "a.plan").read_bytes() == b"PLAN-BYTES"


def test_build_plan_reuses_and_saves_the_timing_cache(monkeypatch, onnx_file, tmp_path):
    cache = tmp_path / "timing.cache"
    fake = _install(monkeypatch, FakeTensorRT())
    trtb.build_plan(onnx_file, tmp_path / "a.plan", timing_cache_path=cache, **SHAPE)
    assert fake.calls.cache_loaded == [b""]  # no file yet: a fresh cache
    assert fake.calls.ignore_mismatch == [False]
    assert cache.read_bytes() == b"+timed"  # saved after the build

    fake = _install(monkeypatch, FakeTensorRT())
    messages = []
    trtb.build_plan(onnx_file, tmp_path / "b.plan", timing_cache_path=cache, log=messages.append,
                    **SHAPE)
    assert fake.calls.cache_loaded == [b"+timed"]  # the second build starts from the first's
    assert cache.read_bytes() == b"+timed+timed"
    assert any("reusing timing cache" in m for m in messages)


def test_build_plan_replaces_a_mismatched_timing_cache(monkeypatch, onnx_file, tmp_path):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"from-another-gpu")
    fake = _install(monkeypatch, FakeTensorRT(cache_accepts=False))
    messages = []
    trtb.build_plan(onnx_file, tmp_path / "a.plan", timing_cache_path=cache, log=messages.append,
                    **SHAPE)
    assert fake.calls.cache_loaded == [b"from-another-gpu", b""]
    assert cache.read_bytes() == b"+timed"
    assert any("another TensorRT or GPU" in m for m in messages)


def test_build_plan_parse_failure_names_the_parser_errors(monkeypatch, onnx_file, tmp_path):
    _install(monkeypatch, FakeTensorRT(parse_errors=("node 3: Unsupported op Foo", "bad shape")))
    with pytest.raises(ValueError, match="Unsupported op Foo; bad shape"):
        trtb.build_plan(onnx_file, tmp_path / "a.plan", **SHAPE)
    assert not (tmp_path / "a.plan").exists()


def test_build_plan_needs_the_keypoints_input(monkeypatch, onnx_file, tmp_path):
    _install(monkeypatch, FakeTensorRT(inputs=("input.1",)))
    with pytest.raises(ValueError, match="keypoints"):
        trtb.build_plan(onnx_file, tmp_path / "a.plan", **SHAPE)


def test_failed_build_keeps_the_previous_plan_and_cache(monkeypatch, onnx_file, tmp_path):
    plan, cache = tmp_path / "a.plan", tmp_path / "timing.cache"
    plan.write_bytes(b"OLD-PLAN")
    cache.write_bytes(b"OLD-CACHE")
    _install(monkeypatch, FakeTensorRT(plan=None))  # build_serialized_network -> None
    with pytest.raises(RuntimeError, match="failed to build"):
        trtb.build_plan(onnx_file, plan, timing_cache_path=cache, **SHAPE)
    assert plan.read_bytes() == b"OLD-PLAN" and cache.read_bytes() == b"OLD-CACHE"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.plan", "lifter.onnx", "timing.cache"]


# --------------------------------------------------------------------------- runner on a GPU


@pytest.mark.gpu
def test_runner_moves_batches_through_pinned_and_device_buffers(monkeypatch, tmp_path):
    engine = FakeEngine(max_batch=8, frames=5, joints=4)
    _install(monkeypatch, FakeTensorRT(engine=engine))
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"plan")
    runner = trtb.TensorRTRunner(plan, max_batch=6)
    assert runner._host_in.is_pinned() and runner._host_out.is_pinned()
    assert runner._dev_in.is_cuda and tuple(runner._dev_in.shape) == (6, 5, 4, 3)
    engine.buffers = {runner._dev_in.data_ptr(): runner._dev_in,
                      runner._dev_out.data_ptr(): runner._dev_out}
    rng = np.random.default_rng(0)
    outs = []
    for b in (6, 1, 3):
        x = rng.standard_normal((b, 5, 4, 3)).astype(np.float32)
        y = runner.infer(x)
        assert y.shape == (b, 4, 3) and y.dtype == np.float32
        np.testing.assert_allclose(y, x.mean(axis=1), rtol=1e-5, atol=1e-6)
        outs.append(y)
    assert not np.shares_memory(outs[1], runner._host_out.numpy())  # a copy, not a view
    with pytest.raises(ValueError, match="batch"):
        runner.infer(np.zeros((7, 5, 4, 3), np.float32))
    with pytest.raises(ValueError, match="expected"):
        runner.infer(np.zeros((2, 5, 3, 3), np.float32))
    with pytest.raises(ValueError, match="built for batches up to 8"):
        trtb.TensorRTRunner(plan, max_batch=9)
