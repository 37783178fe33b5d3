"""Engine build planning for TensorRT 8.5, 8.6, 10 and 11: flags, profiles, workspace, and the lines users get."""

from __future__ import annotations

import pytest

from rockedge.engine.plan import (
    BuildOptions,
    DeviceFacts,
    OnnxFacts,
    failure_advice,
    parse_shape,
    plan_build,
    plan_shapes,
)
from rockedge.errors import RockedgeError
from rockedge.precision import Precision

FP32, FP16, INT8 = Precision.FP32, Precision.FP16, Precision.INT8
ORIN = DeviceFacts("Orin", (8, 7), 8 * 2**30, dla_cores=2, is_jetson=True)
NANO = DeviceFacts("Orin Nano", (8, 7), 8 * 2**30, dla_cores=0, is_jetson=True)
XAVIER = DeviceFacts("Xavier", (7, 2), 32 * 2**30, dla_cores=2, is_jetson=True)
RTX = DeviceFacts("RTX A4000", (8, 6), 16 * 2**30)
TURING = DeviceFacts("T4", (7, 5), 16 * 2**30)
STATIC = OnnxFacts("images", (1, 3, 256, 256), FP32)
DYNAMIC = OnnxFacts("images", (None, 3, None, None), FP32)
QDQ = OnnxFacts("images", (1, 3, 256, 256), INT8, has_qdq=True)
FP16_ONNX = OnnxFacts("images", (1, 3, 256, 256), FP16)


def plan(version, onnx=STATIC, device=ORIN, **kw):
    return plan_build(version, BuildOptions(**kw), onnx, device, default_hw=(256, 256))


@pytest.mark.parametrize("version, network", [("8.5.2.2", ["EXPLICIT_BATCH"]), ("8.6.2.3", ["EXPLICIT_BATCH"]),
                                              ("10.3.0.30", []), ("11.0.0", [])])
def test_network_flags_per_version(version, network):
    assert plan(version).network_flags == network


def test_precision_flags_on_weakly_typed_versions():
    assert plan("8.5.2", precision=FP16).builder_flags == ["FP16"]
    p = plan("8.6.2", precision=INT8)
    assert p.builder_flags == ["INT8", "FP16"] and p.implicit_int8  # no Q/DQ: entropy calibration
    p = plan("10.3.0", onnx=QDQ, precision=INT8)
    assert p.builder_flags == ["INT8", "FP16"] and not p.implicit_int8  # Q/DQ: the ONNX carries the scales
    p = plan("10.3.0", precision=INT8)
    assert p.implicit_int8 and any("deprecated since TensorRT 10.1" in n for n in p.notes)
    p = plan("10.3.0", onnx=FP16_ONNX, strongly_typed=True)
    assert p.network_flags == ["STRONGLY_TYPED"] and p.builder_flags == [] and p.precision is FP16


def test_tensorrt_11_builds_what_the_onnx_says():
    assert plan("11.0.0", onnx=QDQ).builder_flags == [] and plan("11.0.0", onnx=QDQ).precision is INT8
    assert plan("11.0.0", onnx=FP16_ONNX).precision is FP16 and plan("11.0.0", onnx=FP16_ONNX).strongly_typed
    with pytest.raises(RockedgeError, match="no FP16 flag: make an FP16 ONNX on the workstation"):
        plan("11.0.0", precision=FP16)
    with pytest.raises(RockedgeError, match="no INT8 calibrators: quantize on the workstation"):
        plan("11.0.0", precision=INT8)


def test_too_old_and_version_gated_features():
    with pytest.raises(RockedgeError, match="too old"):
        plan("8.4.3")
    with pytest.raises(RockedgeError, match="need TensorRT 8.6 or newer"):
        plan("8.5.2", version_compatible=True)
    assert "VERSION_COMPATIBLE" in plan("8.6.1", version_compatible=True).builder_flags
    assert plan("10.3.0", device=RTX, hardware_compatible=True).hardware_compatibility == "ampere_plus"
    with pytest.raises(RockedgeError, match="Ampere-or-newer GPU"):
        plan("8.6.2", device=TURING, hardware_compatible=True)
    # NVIDIA documents hardware compatibility as unsupported on Jetson; a DLA plan is tied to its DLA.
    with pytest.raises(RockedgeError, match="not supported on Jetson"):
        plan("10.3.0", device=ORIN, hardware_compatible=True)
    with pytest.raises(RockedgeError, match="--hardware-compatible and --dla-core do not go together"):
        plan("10.3.0", device=DeviceFacts("A100", (8, 0), 40 * 2**30, dla_cores=1), precision=FP16, dla_core=0,
             hardware_compatible=True)
    with pytest.raises(RockedgeError, match="--strongly-typed needs TensorRT 10"):
        plan("8.6.2", strongly_typed=True)
    with pytest.raises(RockedgeError, match="optimization-level must be 0..5"):
        plan("10.3.0", optimization_level=7)


def test_dla_needs_cores_and_reduced_precision():
    p = plan("8.5.2", precision=FP16, dla_core=1)
    assert p.dla_core == 1 and "GPU_FALLBACK" in p.builder_flags
    # TensorRT 11 still has BuilderFlag.GPU_FALLBACK: without it any layer DLA cannot run fails the build.
    p = plan("11.0.0", onnx=FP16_ONNX, dla_core=0)
    assert p.dla_core == 0 and "GPU_FALLBACK" in p.builder_flags
    with pytest.raises(RockedgeError, match="has 0 DLA cores"):
        plan("10.3.0", device=NANO, precision=FP16, dla_core=0)
    with pytest.raises(RockedgeError, match="DLA runs FP16 and INT8 only"):
        plan("10.3.0", dla_core=0)


@pytest.mark.parametrize("precision, fix", [(FP16, "rockedge export MODEL --half"), (INT8, "rockedge export MODEL --int8")])
def test_strongly_typed_with_a_precision_the_onnx_lacks_is_refused(precision, fix):
    # A strongly typed TensorRT 10 network ignores precision flags: an FP32 ONNX would silently build FP32.
    with pytest.raises(RockedgeError, match="--strongly-typed builds the ONNX's own types") as e:
        plan("10.3.0", precision=precision, strongly_typed=True)
    assert fix in str(e.value)
    assert plan("10.3.0", onnx=QDQ, precision=INT8, strongly_typed=True).network_flags == ["STRONGLY_TYPED"]
    assert plan("10.3.0", onnx=FP16_ONNX, precision=FP16, strongly_typed=True).precision is FP16


def test_an_onnx_that_is_already_reduced_precision():
    with pytest.raises(RockedgeError, match="already int8"):
        plan("10.3.0", onnx=QDQ, precision=FP16)
    assert plan("8.6.2", onnx=FP16_ONNX).builder_flags == ["FP16"]  # weakly typed: the flag lets FP16 kernels run


def test_workspace_defaults_by_device_memory_and_flag():
    assert plan("10.3.0").workspace_bytes == 512 * 2**20  # 8 GB Orin: builds beyond that get OOM-killed
    assert plan("10.3.0", device=XAVIER).workspace_bytes == 2 * 2**30
    assert plan("8.5.2", device=DeviceFacts("Nano 4GB", (8, 7), 4 * 2**30)).workspace_bytes == 256 * 2**20
    assert plan("10.3.0", workspace_gb=0.25).workspace_bytes == 2**28
    with pytest.raises(RockedgeError, match="too small"):
        plan("10.3.0", workspace_gb=0.001)


def test_profiles_from_dynamic_shapes():
    s = plan_shapes(DYNAMIC, BuildOptions(), (256, 320), batch=4)
    assert s.min == (1, 3, 256, 320) and s.opt == (4, 3, 256, 320) and s.max == (4, 3, 256, 320)
    s = plan_shapes(DYNAMIC, BuildOptions(min_shape=(1, 3, 128, 128), opt_shape=(2, 3, 256, 256),
                                          max_shape=(4, 3, 512, 512)), (256, 256))
    assert (s.min, s.opt, s.max) == ((1, 3, 128, 128), (2, 3, 256, 256), (4, 3, 512, 512))
    s = plan_shapes(OnnxFacts("x", (None, 256, 256, 3), FP32), BuildOptions(), (256, 256), batch=2)
    assert s.opt == (2, 256, 256, 3)  # raw NHWC input
    assert plan_shapes(STATIC, BuildOptions(), (64, 64)).min == (1, 3, 256, 256)  # static wins
    with pytest.raises(RockedgeError, match="min <= opt <= max"):
        plan_shapes(DYNAMIC, BuildOptions(min_shape=(4, 3, 256, 256), max_shape=(1, 3, 256, 256)), (256, 256))
    with pytest.raises(RockedgeError, match="axis 1 of images is fixed at 3"):
        plan_shapes(DYNAMIC, BuildOptions(opt_shape=(1, 4, 256, 256)), (256, 256))
    with pytest.raises(RockedgeError, match="is static 1x3x256x256"):
        plan_shapes(STATIC, BuildOptions(max_shape=(2, 3, 256, 256)), (256, 256))


def test_trtexec_shape_spelling():
    assert parse_shape("images:1x3x512x512") == (1, 3, 512, 512) and parse_shape("2x3x64x64") == (2, 3, 64, 64)
    assert parse_shape(None) is None
    with pytest.raises(RockedgeError, match="expected dims joined by 'x'"):
        parse_shape("1,3,512")


def test_failure_advice_for_a_killed_build():
    p = plan("10.3.0", precision=INT8)
    text = failure_advice(p, ORIN, killed=True, swap_bytes=0)
    assert text.startswith("the engine build was killed (out of memory?)")
    assert "--workspace 0.25" in text and "swapon" in text and "Q/DQ ONNX" in text
    assert "swapon" not in failure_advice(p, ORIN, killed=True, swap_bytes=8 << 30)


def test_plan_round_trips_through_json():
    import json

    from rockedge.engine.plan import BuildPlan

    p = plan("8.6.2", onnx=DYNAMIC, precision=INT8, dla_core=0, version_compatible=True)
    back = BuildPlan.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p
