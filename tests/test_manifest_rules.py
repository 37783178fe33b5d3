"""The engine manifest's file handling and rules at their edges: str paths like Path ones, manifests that cannot be
read (each a clear RockedgeError naming the file), version numbers with a build number or none at all, and compute
capabilities at the ampere_plus boundary. All on the CPU; no TensorRT."""

from __future__ import annotations

from pathlib import Path

import pytest

from rockedge.digest import sha256_file
from rockedge.errors import RockedgeError
from rockedge.runtime.manifest import (
    EngineManifest,
    check_manifest,
    check_plan_file,
    find_manifest,
    manifest_path,
    parse_version,
    read_manifest,
    write_manifest,
)
from rockedge.spec import ModelSpec

HERE = dict(tensorrt_version="8.6.2.3", gpu_name="Orin", compute_capability="8.7")


def manifest(**kw) -> EngineManifest:
    base = dict(spec=ModelSpec(arch="deeplabv3_mobilenet_v3_large", input_size=(64, 96)), tensorrt_version="8.6.2.3",
                gpu_name="Orin", compute_capability="8.7", precision="fp16", onnx_path="model.onnx", cpu_arch="")
    return EngineManifest(**{**base, **kw})


@pytest.fixture
def plan(tmp_path) -> Path:
    p = tmp_path / "model.plan"
    p.write_bytes(b"\x00plain serialized engine bytes")
    return p


# -- versions -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, version", [
    ("8.6.2.3", (8, 6, 2, 3)), ("10.3.0", (10, 3, 0)), (" 10.13.3.9\n", (10, 13, 3, 9)), ("11", (11,)),
    ("10.3.0rc1", (10, 3, 0)), ("8.6.1.post1", (8, 6, 1)), ("8.6..1", (8, 6)),
])
def test_parse_version_keeps_the_leading_numbers(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize("text", ["", "unknown", "v10.3.0", ".10", "-"])
def test_parse_version_of_text_without_a_number_is_refused(text):
    with pytest.raises(RockedgeError, match=rf"^cannot read a version number from {text!r}$"):
        parse_version(text)


# -- the file beside the plan: str paths work as Path paths --------------------------------------------------------


def test_manifest_paths_accept_str(plan):
    assert manifest_path(str(plan)) == plan.with_name("model.plan.json")
    assert find_manifest(str(plan)) is None
    written = write_manifest(str(plan), manifest())
    assert written == plan.with_name("model.plan.json") and find_manifest(str(plan)) == written
    back = read_manifest(str(plan))
    assert back.gpu_name == "Orin" and back.plan_sha256 == sha256_file(plan)


def test_a_missing_manifest_is_named_for_a_str_path_too(plan):
    with pytest.raises(RockedgeError, match=r"^model\.plan has no manifest beside it \(model\.plan\.json\)"):
        read_manifest(str(plan))


def test_write_manifest_fills_in_the_plans_sha256_only_when_missing(plan, tmp_path):
    m = manifest(plan_sha256="ab" * 32)  # already known to the caller: kept, the plan is not hashed again
    write_manifest(plan, m)
    assert read_manifest(plan).plan_sha256 == "ab" * 32
    later = tmp_path / "later.plan"  # a manifest written before its plan is there: nothing to hash yet
    write_manifest(later, manifest())
    assert read_manifest(later).plan_sha256 is None


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00{", r"model\.plan\.json is not a rockedge engine manifest \(not UTF-8 JSON text"),
    (b'{"spec": ', r"^cannot read .*model\.plan\.json: "),
    (b"[1, 2, 3]", r"model\.plan\.json is not a rockedge engine manifest"),
    (b'"model"', r"model\.plan\.json is not a rockedge engine manifest"),
])
def test_a_manifest_that_is_not_one_is_refused_naming_the_file(plan, content, message):
    plan.with_name("model.plan.json").write_bytes(content)
    with pytest.raises(RockedgeError, match=message) as e:
        read_manifest(plan)
    assert "\n" not in str(e.value)


# -- the rules at their edges ---------------------------------------------------------------------------------------


def test_the_build_number_after_the_patch_does_not_matter(plan):
    """The rule is major.minor.patch: TensorRT 8.6.2.3 and 8.6.2.1 (or 10.3.0.31 and 10.3.0.26) are one version."""
    assert check_manifest(manifest(tensorrt_version="8.6.2.3"), plan, **{**HERE, "tensorrt_version": "8.6.2.1"}) == []
    vc = manifest(tensorrt_version="10.3.0.31", version_compatible=True)
    assert check_manifest(vc, plan, **{**HERE, "tensorrt_version": "10.3.0.26"}) == []


@pytest.mark.parametrize("built", ["8.6.0", "8.6.1.6", "9.0.1"])
def test_version_compatible_plans_exist_from_tensorrt_8_6_on(plan, built):
    vc = manifest(tensorrt_version=built, version_compatible=True)
    assert check_manifest(vc, plan, **{**HERE, "tensorrt_version": "10.3.0"}) == []


@pytest.mark.parametrize("cc, ok", [("8.0", True), ("7.5", False), ("7.9", False), ("12.0", True)])
def test_ampere_plus_boundary_is_compute_capability_8_0(plan, cc, ok):
    m = manifest(hardware_compatibility="ampere_plus")
    if ok:
        assert check_manifest(m, plan, **{**HERE, "gpu_name": "G", "compute_capability": cc}) == []
    else:
        with pytest.raises(RockedgeError, match=rf"this GPU is G \({cc}\)"):
            check_manifest(m, plan, **{**HERE, "gpu_name": "G", "compute_capability": cc})


def test_a_gpu_name_alone_does_not_refuse_a_plan(plan):
    """Same compute capability, another name: it runs (a warning); an unnamed GPU on either side warns of nothing."""
    (w,) = check_manifest(manifest(), plan, **{**HERE, "gpu_name": "Orin NX"})
    assert w.startswith("model.plan was built on Orin, running on Orin NX")
    assert check_manifest(manifest(gpu_name=""), plan, **HERE) == []
    assert check_manifest(manifest(), plan, **{**HERE, "gpu_name": ""}) == []
    assert check_manifest(manifest(hardware_compatibility="ampere_plus"), plan, **{**HERE, "gpu_name": "Orin NX"}) == []


def test_the_rules_take_a_str_plan_like_a_path(plan):
    """Refusals and warnings name the plan, whether it came as str or Path."""
    m = manifest(onnx_path=None, plan_sha256=sha256_file(plan))
    (w,) = check_manifest(m, str(plan), **{**HERE, "gpu_name": "Orin NX"})
    assert w.startswith("model.plan was built on Orin, running on Orin NX")
    with pytest.raises(RockedgeError, match=r"^model\.plan was built with TensorRT 8\.6\.2\.3, this is TensorRT "
                                            r"10\.3\.0; .*rockedge export model\.onnx --format engine$"):
        check_manifest(m, str(plan), **{**HERE, "tensorrt_version": "10.3.0"})
    plan.write_bytes(b"another engine")
    with pytest.raises(RockedgeError, match=r"^model\.plan does not match its manifest"):
        check_manifest(m, str(plan), **HERE)
    with pytest.raises(RockedgeError, match=r"^model\.plan was built on a aarch64 machine, this is x86_64"):
        check_manifest(manifest(cpu_arch="aarch64"), str(plan), **HERE, cpu_arch="x86_64")


def test_the_plan_file_check_alone_takes_a_str_plan(plan):
    """What the TensorRT backend asks before TensorRT is loaded: the right file, built on this CPU architecture."""
    m = manifest(plan_sha256=sha256_file(plan), cpu_arch="aarch64")
    check_plan_file(m, str(plan), cpu_arch="aarch64")  # the plan its manifest describes: no error
    with pytest.raises(RockedgeError, match=r"^model\.plan was built on a aarch64 machine, this is x86_64"):
        check_plan_file(m, str(plan), cpu_arch="x86_64")
    plan.write_bytes(b"another engine")
    with pytest.raises(RockedgeError, match=r"^model\.plan does not match its manifest"):
        check_plan_file(m, str(plan), cpu_arch="aarch64")
