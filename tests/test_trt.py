"""TensorRT backend logic that runs without TensorRT (manifest, versions, shapes, buffers) and its failure lines on
this GPU-less machine. The static gate is tests/test_device_gate.py; runs against each version's names are
tests/test_trt_api.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rockedge.errors import BackendUnavailable, RockedgeError
from rockedge.precision import Precision
from rockedge.runtime.backends.trt_io import (
    BufferSet,
    Profile,
    TensorPlan,
    dtype_of,
    output_shape,
    resolve_input_shape,
    trt_api,
)
from rockedge.runtime.manifest import (
    EngineManifest,
    check_manifest,
    find_manifest,
    manifest_path,
    parse_version,
    read_manifest,
    write_manifest,
)
from rockedge.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


def make_manifest(**kw) -> EngineManifest:
    base = dict(spec=ModelSpec(arch="deeplabv3_mobilenet_v3_large", input_size=(64, 96)), tensorrt_version="8.6.2.3",
                gpu_name="Orin", compute_capability="8.7", precision="fp16",
                input_shapes={"input": {"min": [1, 3, 64, 96], "opt": [1, 3, 64, 96], "max": [1, 3, 64, 96]}},
                onnx_sha256="ab" * 32, onnx_path="model.onnx")
    base.update(kw)
    return EngineManifest(**base)


@pytest.fixture
def plan(tmp_path) -> Path:
    p = tmp_path / "model.plan"
    p.write_bytes(b"\x00plain serialized engine bytes")
    return p


# -- manifest ------------------------------------------------------------------------------------
def test_manifest_round_trip_beside_a_plain_plan(plan):
    m = make_manifest()
    path = write_manifest(plan, m)
    assert path == manifest_path(plan) == plan.with_name("model.plan.json")
    assert plan.read_bytes() == b"\x00plain serialized engine bytes"  # the plan itself is untouched
    back = read_manifest(plan)
    assert back.spec == m.spec and back.tensorrt_version == "8.6.2.3" and back.precision == "fp16"
    assert back.input_shapes["input"]["opt"] == [1, 3, 64, 96]
    assert back.plan_sha256 and back.built_at and back.rockedge_version


def test_manifest_alternative_name_and_missing(plan):
    with pytest.raises(RockedgeError, match="no manifest beside it"):
        read_manifest(plan)
    alt = plan.with_name("model.manifest.json")
    write_manifest(plan, make_manifest()).rename(alt)
    assert find_manifest(plan) == alt and read_manifest(plan).gpu_name == "Orin"


def test_manifest_accepts_same_trt_and_gpu(plan):
    m = make_manifest()
    write_manifest(plan, m)
    assert check_manifest(read_manifest(plan), plan, tensorrt_version="8.6.2.3.post1", gpu_name="Orin",
                          compute_capability="8.7") == []


@pytest.mark.parametrize(
    "here, fragment",
    [
        (dict(tensorrt_version="10.3.0"), "built with TensorRT 8.6.2.3, this is TensorRT 10.3.0"),
        (dict(tensorrt_version="8.6.1"), "engines do not move between TensorRT versions"),
        (dict(compute_capability="7.2", gpu_name="Xavier"), "built for Orin (compute capability 8.7)"),
    ],
)
def test_manifest_mismatch_says_how_to_rebuild(plan, here, fragment):
    write_manifest(plan, make_manifest())
    kw = dict(tensorrt_version="8.6.2.3", gpu_name="Orin", compute_capability="8.7") | here
    with pytest.raises(RockedgeError, match="rebuild it on this device") as e:
        check_manifest(read_manifest(plan), plan, **kw)
    assert fragment in str(e.value) and "rockedge export model.onnx --format engine" in str(e.value)
    assert "\n" not in str(e.value)


def test_manifest_compatibility_modes_and_warnings(plan):
    vc = make_manifest(version_compatible=True, hardware_compatibility="ampere_plus")
    assert check_manifest(vc, plan, tensorrt_version="8.6.9", gpu_name="RTX A4000", compute_capability="8.6") == []
    # NVIDIA: a version-compatible plan built with 8.6 runs on later 8.x/9/10, one built with 10 on 11. rockedge lets
    # every later version through and leaves the rest to TensorRT.
    assert check_manifest(vc, plan, tensorrt_version="10.0.1", gpu_name="Orin", compute_capability="8.7") == []
    assert check_manifest(make_manifest(version_compatible=True, tensorrt_version="10.3.0"), plan,
                          tensorrt_version="11.0.0", gpu_name="Orin", compute_capability="8.7") == []
    with pytest.raises(RockedgeError, match="same or a later TensorRT only"):  # never an older one
        check_manifest(make_manifest(version_compatible=True, tensorrt_version="10.3.0"), plan,
                       tensorrt_version="10.2.9", gpu_name="Orin", compute_capability="8.7")
    with pytest.raises(RockedgeError):  # a plain plan does not cross a major (nor a patch) version
        check_manifest(make_manifest(), plan, tensorrt_version="10.0.1", gpu_name="Orin", compute_capability="8.7")
    with pytest.raises(RockedgeError):  # ampere_plus does not cover Volta
        check_manifest(vc, plan, tensorrt_version="8.6.2", gpu_name="Xavier", compute_capability="7.2")
    warns = check_manifest(make_manifest(), plan, tensorrt_version="8.6.2.3", gpu_name="Orin Nano",
                           compute_capability="8.7")
    assert len(warns) == 1 and "built on Orin, running on Orin Nano" in warns[0]


@pytest.mark.parametrize("built, here, ok", [
    ("10.3.0", "10.3.0", True), ("10.3.0", "10.3.1", True), ("10.3.0", "10.4.0", True), ("8.6.1", "10.3.0", True),
    ("10.3.0", "10.2.9", False), ("10.3.1", "10.3.0", False), ("8.6.2", "8.6.1", False), ("10.3.0", "9.9.9", False),
    ("8.5.2", "8.6.1", False),  # 8.5 built no version-compatible plans: the flag cannot be taken at its word
])
def test_a_version_compatible_plan_runs_on_the_same_or_a_later_tensorrt_only(plan, built, here, ok):
    """Down to the patch: an older TensorRT, even one patch older, never accepts a version-compatible plan."""
    m = make_manifest(version_compatible=True, tensorrt_version=built)
    kw = dict(tensorrt_version=here, gpu_name="Orin", compute_capability="8.7")
    if ok:
        assert check_manifest(m, plan, **kw) == []
    else:
        with pytest.raises(RockedgeError, match="same or a later TensorRT only"):
            check_manifest(m, plan, **kw)


@pytest.mark.parametrize("built, here", [("8.7", "8.6"), ("8.6", "8.7"), ("8.7", "7.2"), ("8.7", "9.0"),
                                         ("8.7", "8.9")])
def test_compute_capability_is_compared_on_major_and_minor(plan, built, here):
    """An Orin plan (8.7) does not run on an RTX 30 (8.6) of the same major, nor the other way."""
    m = make_manifest(compute_capability=built)
    with pytest.raises(RockedgeError, match=rf"compute capability {built}\); this GPU is X \({here}\)"):
        check_manifest(m, plan, tensorrt_version="8.6.2.3", gpu_name="X", compute_capability=here)
    assert check_manifest(m, plan, tensorrt_version="8.6.2.3", gpu_name="Orin", compute_capability=built) == []


def test_ampere_plus_needs_compute_capability_8_0_or_later(plan):
    m = make_manifest(hardware_compatibility="ampere_plus", compute_capability="8.7")
    for cc in ("8.0", "8.6", "8.9", "9.0"):
        assert check_manifest(m, plan, tensorrt_version="8.6.2.3", gpu_name="G", compute_capability=cc) == []
    with pytest.raises(RockedgeError, match="this GPU is Xavier"):
        check_manifest(m, plan, tensorrt_version="8.6.2.3", gpu_name="Xavier", compute_capability="7.2")


@pytest.mark.parametrize("missing, still_refused", [
    (dict(tensorrt_version=""), dict(compute_capability="7.2")),  # the GPU is still checked
    (dict(compute_capability="", gpu_name=""), dict(tensorrt_version="10.3.0")),  # the version is still checked
])
def test_a_manifest_missing_a_field_still_checks_the_others(plan, missing, still_refused):
    """A manifest without a TensorRT version (or GPU) skips that rule, says so, and checks every rule it can."""
    m = make_manifest(**missing)
    here = dict(tensorrt_version="8.6.2.3", gpu_name="Orin", compute_capability="8.7")
    (warning,) = check_manifest(m, plan, **here)
    what = "TensorRT version" if "tensorrt_version" in missing else "GPU"
    assert warning == (f"model.plan's manifest does not record the {what} that built it, so that is not checked here "
                       "(TensorRT refuses a plan it cannot run when it loads it)")
    with pytest.raises(RockedgeError, match="rebuild it on this device"):
        check_manifest(m, plan, **{**here, **still_refused})


def test_a_manifest_written_without_tensorrt_says_what_is_not_checked(plan):
    """`rockedge spec write` where TensorRT is not: no version, no GPU. Both unchecked, in one warning; a replaced
    plan is still refused."""
    m = make_manifest(tensorrt_version="", gpu_name="", compute_capability="", cpu_arch="")
    warnings = check_manifest(m, plan, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7")
    assert warnings == ["model.plan's manifest does not record the TensorRT version or GPU that built it, so that "
                        "is not checked here (TensorRT refuses a plan it cannot run when it loads it)"]
    write_manifest(plan, m)
    plan.write_bytes(b"another engine")
    with pytest.raises(RockedgeError, match="does not match its manifest"):
        check_manifest(read_manifest(plan), plan, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7")


def test_a_plan_does_not_move_between_cpu_architectures(plan):
    m = make_manifest(cpu_arch="aarch64", hardware_compatibility="ampere_plus")
    with pytest.raises(RockedgeError, match="built on a aarch64 machine, this is x86_64: TensorRT plans do not move"):
        check_manifest(m, plan, tensorrt_version="8.6.2.3", gpu_name="Orin", compute_capability="8.7",
                       cpu_arch="x86_64")
    assert check_manifest(m, plan, tensorrt_version="8.6.2.3", gpu_name="Orin", compute_capability="8.7",
                          cpu_arch="aarch64") == []
    write_manifest(plan, make_manifest())  # recorded from the machine that writes it
    import platform

    assert read_manifest(plan).cpu_arch == platform.machine()
    legacy = make_manifest(cpu_arch="")  # an older manifest without the field is not refused for it
    assert check_manifest(legacy, plan, tensorrt_version="8.6.2.3", gpu_name="Orin", compute_capability="8.7",
                          cpu_arch="x86_64") == []


def test_manifest_detects_a_replaced_plan(plan):
    write_manifest(plan, make_manifest())
    plan.write_bytes(b"another engine")
    with pytest.raises(RockedgeError, match="does not match its manifest"):
        check_manifest(read_manifest(plan), plan, tensorrt_version="8.6.2.3", gpu_name="Orin",
                       compute_capability="8.7")


# -- versions and dtypes ---------------------------------------------------------------------------
def test_version_branching():
    assert parse_version("10.3.0.26") == (10, 3, 0, 26) and parse_version("8.6.1.post1") == (8, 6, 1)
    with pytest.raises(BackendUnavailable, match="needs 8.5 or newer"):
        trt_api("8.4.1")
    j5, j6, t10, t11 = trt_api("8.5.2.2"), trt_api("8.6.2"), trt_api("10.3.0"), trt_api("11.0.0")
    assert not j6.int64_io and t10.int64_io and t11.int64_io
    assert not j5.version_compatible_engines and j6.version_compatible_engines
    assert not j6.v2_device_memory and t10.v2_device_memory


def test_dtypes():
    assert dtype_of("DataType.FLOAT") == np.float32 and dtype_of("HALF") == np.float16
    assert dtype_of("DataType.INT64") == np.int64
    with pytest.raises(RockedgeError, match="numpy cannot hold"):
        dtype_of("DataType.BF16", tensor="logits")
    # kUINT8 network I/O is bound from 8.5 on (tests/data/tensorrt_api/8.5.2.json): a raw-frame model runs there too
    for v in ("8.5.2", "8.6.1", "10.3.0"):
        assert dtype_of("DataType.UINT8", trt_api(v), tensor="frames") == np.uint8


# -- shapes ------------------------------------------------------------------------------------------
def test_static_shapes_must_match():
    assert resolve_input_shape("input", (1, 3, 64, 96), (1, 3, 64, 96), None) == (1, 3, 64, 96)
    with pytest.raises(RockedgeError, match="fixed at 1x3x64x96, got 4x3x64x96"):
        resolve_input_shape("input", (1, 3, 64, 96), (4, 3, 64, 96), None)
    with pytest.raises(RockedgeError, match="rank 4"):
        resolve_input_shape("input", (1, 3, 64, 96), (3, 64, 96), None)


def test_dynamic_shapes_follow_the_profile():
    prof = Profile((1, 3, 64, 64), (4, 3, 256, 256), (8, 3, 512, 512))
    assert resolve_input_shape("input", (-1, 3, -1, -1), (8, 3, 512, 320), prof) == (8, 3, 512, 320)
    with pytest.raises(RockedgeError, match="outside the engine's profile 1x3x64x64 .. 8x3x512x512"):
        resolve_input_shape("input", (-1, 3, -1, -1), (9, 3, 256, 256), prof)
    with pytest.raises(RockedgeError, match="axis 1"):
        resolve_input_shape("input", (-1, 3, -1, -1), (2, 4, 256, 256), prof)
    assert output_shape("out", (2, 2, 256, 256)) == (2, 2, 256, 256)
    with pytest.raises(RockedgeError, match="unknown dims"):
        output_shape("out", (2, -1, 256, 256))


# -- buffers -------------------------------------------------------------------------------------
class HostMemory:
    """Plain numpy memory behind the allocator interface that cudaMallocHost/cudaMalloc fill on a GPU."""

    def __init__(self) -> None:
        self.blocks: dict[int, np.ndarray] = {}
        self.live = 0

    def alloc(self, n: int) -> int:
        a = np.zeros(n, np.uint8)
        self.blocks[a.ctypes.data] = a
        self.live += 1
        return a.ctypes.data

    def free(self, ptr: int) -> None:
        del self.blocks[ptr]
        self.live -= 1

    def array(self, ptr: int, n: int) -> np.ndarray:
        return self.blocks[ptr][:n]


def test_buffers_reallocate_only_when_a_shape_needs_more():
    host, dev = HostMemory(), HostMemory()
    bs = BufferSet(host.alloc, dev.alloc, host.free, dev.free, host.array)

    def plans(n: int, h: int = 64) -> list[TensorPlan]:
        return [TensorPlan("input", True, np.dtype(np.float32), (n, 3, h, 96)),
                TensorPlan("logits", False, np.dtype(np.float16), (n, 2, h, 96))]

    assert bs.ensure(plans(2)) == ["input", "logits"] and bs.allocations == 2
    addr = dict(bs.device)
    assert bs.ensure(plans(2)) == [] and bs.allocations == 2  # same shape: nothing moves
    assert bs.ensure(plans(1)) == [] and bs.device == addr  # smaller: reuse through a view
    v = bs.host_view("input")
    assert v.shape == (1, 3, 64, 96) and v.dtype == np.float32
    v[...] = 7.0
    assert bs.host_view("logits").shape == (1, 2, 64, 96) and bs.host_view("logits").dtype == np.float16
    assert bs.ensure(plans(4)) == ["input", "logits"] and bs.allocations == 4  # bigger: reallocate
    assert host.live == 2 and dev.live == 2  # the old blocks were freed
    bs.close()
    assert host.live == 0 and dev.live == 0


# -- what happens here, without TensorRT or a GPU ----------------------------------------------------
def test_plan_without_tensorrt_fails_with_one_line(plan, monkeypatch):
    from rockedge.runtime.backends.loader import open_backend

    write_manifest(plan, make_manifest())
    if importlib.util.find_spec("tensorrt") is not None and hasattr(__import__("tensorrt"), "Runtime"):
        pytest.skip("a real TensorRT is installed here")
    with pytest.raises(BackendUnavailable, match="comes with JetPack") as e:
        open_backend(plan)
    assert "\n" not in str(e.value)


def test_no_gpu_is_reported_from_cuda_python():
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is not installed")
    from rockedge.cuda_rt import cudart, require_gpu

    err, count = cudart().cudaGetDeviceCount()
    if err == cudart().cudaError_t.cudaSuccess and count > 0:
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailable, match="no usable CUDA GPU: cudaError"):
        require_gpu()


@pytest.mark.tensorrt
def test_plan_matches_onnx_runtime_on_a_gpu(trained_ckpt, tmp_path):  # pragma: no cover - needs a GPU
    import tensorrt as trt

    from rockedge.cuda_rt import require_gpu
    from rockedge.digest import sha256_file
    from rockedge.engine.plan import BuildOptions, DeviceFacts, OnnxFacts, plan_build
    from rockedge.export.onnx import export_onnx
    from rockedge.runtime.backends.ort import OrtBackend
    from rockedge.runtime.backends.trt import TrtBackend

    res = export_onnx(trained_ckpt(), tmp_path / "m.onnx")
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    # The network flags the builder uses: 8.5/8.6's ONNX parser rejects a network made without EXPLICIT_BATCH.
    planned = plan_build(trt.__version__, BuildOptions(), OnnxFacts("images", (1, 3, 64, 64), Precision.FP32),
                         DeviceFacts(), default_hw=(64, 64))
    flags = 0
    for flag in planned.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, flag))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt.Logger(trt.Logger.WARNING))
    assert parser.parse(Path(res.path).read_bytes())
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 28)
    plan = tmp_path / "m.plan"
    plan.write_bytes(bytes(builder.build_serialized_network(network, config)))
    name, cc = require_gpu()
    write_manifest(plan, EngineManifest(spec=res.spec, tensorrt_version=trt.__version__, gpu_name=name,
                                        compute_capability=cc, onnx_sha256=sha256_file(res.path)))
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with TrtBackend(plan) as t, OrtBackend(res.path, providers=["cpu"]) as o:
        assert np.abs(t.infer(x) - o.infer(x)).max() < 1e-2
        t.infer(x)
        assert t.buffers is not None and t.buffers.allocations == 2  # second call reuses every buffer
