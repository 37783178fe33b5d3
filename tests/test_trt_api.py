"""rockedge's TensorRT code run against each TensorRT version's own names (tests/fakes, tests/data/tensorrt_api).

No TensorRT can run here. The fake ``tensorrt`` defines exactly what 8.5.2, 8.6.1, 10.3.0 and 11.0.0's bindings
define, with the None returns, inspector strings and cache headers TensorRT documents; the fake ``cuda`` answers
as cuda-python does. Every build goes through the real parent/child handshake (the probe and build children
import the fakes through PYTHONPATH) and the real verification against ONNX Runtime. A name rockedge touches that
a version lacks fails here as an AttributeError, as it would on that version.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_runner

from rockedge.cli import main
from rockedge.engine.plan import BuildOptions, DeviceFacts, OnnxFacts, plan_build
from rockedge.errors import BackendUnavailable, RockedgeError
from rockedge.precision import Precision

FAKES = Path(__file__).resolve().parent / "fakes"
DATA = Path(__file__).resolve().parent / "data" / "tensorrt_api"
VERSIONS = ("8.5.2", "8.6.1", "10.3.0", "11.0.0")
WEAKLY_TYPED = ("8.5.2", "8.6.1", "10.3.0")  # precision flags and calibrators exist


def _load_trt_api():
    """The fakes' shared module, loaded by path: putting tests/fakes on sys.path for the whole session would make
    ``import tensorrt`` find the fake in every other test file too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_trt_api", FAKES / "_trt_api.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_trt_api = _load_trt_api()


def names(version: str) -> dict:
    return json.loads((DATA / f"{version}.json").read_text())


@pytest.fixture
def fake_trt(tmp_path, monkeypatch):
    """``use(version, **scenario)`` makes ``import tensorrt`` / cuda-python the fakes for this version, here and in
    the engine build's child processes; returns the path of the fakes' event log."""
    from rockedge import cuda_rt

    def use(version: str, **scenario) -> Path:
        sc = tmp_path / f"scenario-{version}.json"
        sc.write_text(json.dumps(scenario))
        log = tmp_path / "fake-trt.log"
        monkeypatch.setenv("ROCKEDGE_FAKE_TRT", version)
        monkeypatch.setenv("ROCKEDGE_FAKE_TRT_SCENARIO", str(sc))
        monkeypatch.setenv("ROCKEDGE_FAKE_TRT_LOG", str(log))
        monkeypatch.setenv("ROCKEDGE_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")]))
        monkeypatch.syspath_prepend(str(FAKES))
        for name in list(sys.modules):
            if name.split(".")[0] in ("tensorrt", "cuda", "_trt_api"):
                if _is_fake(sys.modules[name]):
                    del sys.modules[name]  # a fake of an earlier use(): never to be restored
                else:
                    monkeypatch.delitem(sys.modules, name)  # the real package comes back after the test
        monkeypatch.setattr(cuda_rt, "_CUDART", None)
        import tensorrt

        assert tensorrt.__version__ == version and Path(tensorrt.__file__).is_relative_to(FAKES)
        return log

    yield use
    for name in list(sys.modules):  # the fakes never outlive the test
        if _is_fake(sys.modules[name]):
            del sys.modules[name]


def _is_fake(module) -> bool:
    return str(getattr(module, "__file__", "") or "").startswith(str(FAKES))


@pytest.fixture(scope="module")
def onnx_models(trained_ckpt, tmp_path_factory) -> dict[str, Path]:
    """The FP32 ONNX, an FP16 one and a Q/DQ one (one Q/DQ pair on the input: what the fake needs to see), all
    with rockedge's spec."""
    import onnx
    from onnx import TensorProto, helper

    from rockedge.calibration.fp16 import to_fp16
    from rockedge.export.onnx import export_onnx

    d = tmp_path_factory.mktemp("trt")
    fp32 = Path(export_onnx(trained_ckpt(), d / "m.onnx", progress=False).path)
    meta = lambda m: {p.key: p.value for p in m.metadata_props}  # noqa: E731
    half = to_fp16(onnx.load(str(fp32)))
    half.metadata_props.add(key="rockedge.precision", value="fp16")
    onnx.save(half, str(d / "m.fp16.onnx"))
    q = onnx.load(str(fp32))
    g = q.graph
    inp = g.input[0].name
    g.initializer.extend([helper.make_tensor("q_scale", TensorProto.FLOAT, [], [0.05]),
                          helper.make_tensor("q_zero", TensorProto.INT8, [], [0])])
    for node in g.node:
        node.input[:] = ["x_dq" if i == inp else i for i in node.input]
    g.node.insert(0, helper.make_node("DequantizeLinear", ["x_q", "q_scale", "q_zero"], ["x_dq"]))
    g.node.insert(0, helper.make_node("QuantizeLinear", [inp, "q_scale", "q_zero"], ["x_q"]))
    for p in q.metadata_props:
        if p.key == "rockedge.precision":
            p.value = "int8"
    if "rockedge.precision" not in meta(q):
        q.metadata_props.add(key="rockedge.precision", value="int8")
    onnx.save(q, str(d / "m.int8.onnx"))
    return {"fp32": fp32, "fp16": d / "m.fp16.onnx", "int8": d / "m.int8.onnx"}


def export(*args) -> tuple[int, str, str]:
    r = cli_runner().invoke(main, ["export", *map(str, args), "-q"])
    return r.exit_code, r.stdout, r.stderr


def manifest(plan: Path) -> dict:
    return json.loads(plan.with_name(plan.name + ".json").read_text())


# -- the names -------------------------------------------------------------------------------------------------

OPTION_MATRIX = [
    dict(precision=Precision.FP16), dict(precision=Precision.INT8), dict(),
    dict(precision=Precision.FP16, dla_core=0), dict(version_compatible=True), dict(optimization_level=2),
    dict(strongly_typed=True),
]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_flag_name_a_plan_records_exists_in_that_version(version):
    """Plans, manifests and caches keep flag *names*; each must be a member of that version's enum."""
    enums = names(version)["enums"]
    checked = 0
    for kw in OPTION_MATRIX:
        for onnx in (OnnxFacts("images", (1, 3, 64, 64), Precision.FP32),
                     OnnxFacts("images", (1, 3, 64, 64), Precision.FP16),
                     OnnxFacts("images", (1, 3, 64, 64), Precision.INT8, has_qdq=True)):
            try:
                p = plan_build(version, BuildOptions(**kw), onnx, DeviceFacts("Orin", (8, 7), 8 << 30, dla_cores=2),
                               default_hw=(64, 64))
            except RockedgeError:
                continue  # refused up front for this version, with its reason
            assert set(p.network_flags) <= set(enums["NetworkDefinitionCreationFlag"]), (kw, p.network_flags)
            assert set(p.builder_flags) <= set(enums["BuilderFlag"]), (kw, p.builder_flags)
            checked += 1
    assert checked >= 8


def test_the_name_lists_say_where_they_came_from():
    for v in VERSIONS:
        src = names(v)["source"]
        assert src["repo"] == "NVIDIA/TensorRT" and len(src["commit"]) == 40
        assert "python/src/infer/pyCore.cpp" in src["files"]
    # Facts rockedge relies on, as the bindings state them.
    assert "engine_host_code_allowed" not in names("8.5.2")["classes"]["Runtime"]
    assert "engine_host_code_allowed" in names("8.6.1")["classes"]["Runtime"]
    assert "EXPLICIT_BATCH" not in names("11.0.0")["enums"]["NetworkDefinitionCreationFlag"]
    assert "GPU_FALLBACK" in names("11.0.0")["enums"]["BuilderFlag"]
    assert "FP16" not in names("11.0.0")["enums"]["BuilderFlag"]
    assert "IInt8EntropyCalibrator2" not in names("11.0.0")["classes"]


def test_the_fake_refuses_what_a_version_lacks(fake_trt):
    fake_trt("8.5.2")
    import tensorrt as trt

    rt = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    with pytest.raises(AttributeError):
        rt.engine_host_code_allowed = True  # absent in 8.5
    fake_trt("11.0.0")
    import tensorrt as trt11

    with pytest.raises(AttributeError):
        trt11.BuilderFlag.FP16  # noqa: B018
    with pytest.raises(AttributeError):
        trt11.NetworkDefinitionCreationFlag.EXPLICIT_BATCH  # noqa: B018
    assert getattr(trt11, "IInt8EntropyCalibrator2", None) is None


# -- TensorRT's own strings: the inspector's formats, calibration-cache headers -------------------------------------

INSPECTOR = json.loads((DATA / "inspector_formats.json").read_text())
# trex (trt-engine-explorer, activations.py) maps each format sentence to a short name whose first word is the
# precision; that mapping, not rockedge's regexes, is the oracle here.
TREX_WORD = {"FP16": "fp16", "Half": "fp16", "FP32": "fp32", "Float": "fp32", "Int8": "int8", "INT8": "int8",
             "BF16": "bf16", "BFloat16": "bf16", "FP8": "fp8", "Int32": "int32", "INT32": "int32", "Int64": "int64",
             "Bool": "bool", "UInt8": "uint8"}
TREX = {fmt: TREX_WORD.get(short.split(" ", 1)[0], "other")
        for fmt, short in INSPECTOR["trex_region_format_dict"]["entries"].items()}
# The other spellings TensorRT uses (docstrings, NvInferRuntime.h, Polygraphy's example output), as written there.
VARIANTS = {"Row major linear FP32 format": "fp32", "Two wide channel vectorized row major FP16 format": "fp16",
            "Channel major FP16 format where C % 8 == 0 and H Stride % 32 == 0": "fp16",
            "Two-wide channel vectorized row-major FP16 format": "fp16", "Format: Float": "fp32"}


@pytest.mark.parametrize("fmt", sorted({f["format"] for f in INSPECTOR["formats"]} | set(TREX) | set(VARIANTS)))
def test_every_real_inspector_format_is_read_as_its_precision(fmt):
    from rockedge.engine.builder import format_precision

    real = {f["format"] for f in INSPECTOR["formats"]}
    assert real <= set(TREX)  # every format of the example engines has trex's reading
    assert set(VARIANTS) <= {v["string"] for v in INSPECTOR["format_string_variants_elsewhere_in_tensorrt"]}
    want = TREX.get(fmt) or VARIANTS[fmt]
    assert format_precision(fmt) == want, (fmt, want)


def test_the_fixture_layers_count_as_their_precision():
    from rockedge.engine.builder import count_layer_precisions

    layers = [f["layer"] for f in INSPECTOR["fixture_layers"]]
    assert count_layer_precisions(layers) == {"fp16": 2, "int8": 1}  # FP16 conv, Int8 conv, FP32->FP16 reformat


CACHES = json.loads((DATA / "calibration_caches.json").read_text())


@pytest.mark.parametrize("entry", CACHES["caches"], ids=lambda c: f"{c['header']}@{c['repo'].split('/')[0]}")
def test_real_calibration_caches_parse(entry, tmp_path):
    """Headers and lines of caches TensorRT 7.2-10.13 wrote (and one a converter wrote): rockedge reads them, and its
    own version code for the version a header encodes is that header's number."""
    from rockedge.calibration.cache import CacheFile, parse_table, version_code

    data = ("\n".join([entry["header"], *entry["sample_lines"]]) + "\n").encode()
    table = parse_table(data)
    assert f"TRT-{table.version_code}-{table.algorithm}" == entry["header"]
    assert table.algorithm in CACHES["algorithm_suffixes_seen"]
    assert len(table.scales) == len(entry["sample_lines"])  # names with spaces, brackets and colons included
    version = entry["tensorrt"].split(" ", 1)[0]
    if entry["written_by"].startswith("TensorRT"):
        assert version_code(version) == table.version_code, entry["tensorrt"]
    for line in entry["sample_lines"]:
        name, _, hexval = line.rpartition(": ")
        assert name in table.scales
        if hexval == "0":
            assert table.scales[name] == 0.0
    if entry["written_by"].startswith("TensorRT") and version.startswith(("8.5", "8.6", "10.")):
        # What TensorRT hands write_calibration_cache on the versions rockedge builds with is stored, not refused.
        cache = CacheFile(tmp_path / "c.cache")
        cache.save(data, {"algorithm": table.algorithm})
        assert cache.load({"algorithm": table.algorithm}) == data


# -- cuda-python's names -----------------------------------------------------------------------------------------

CUDA_PYTHON = json.loads((DATA / "cuda_python_api.json").read_text())["versions"]
SRC = Path(__file__).resolve().parents[1] / "src" / "rockedge"


def cuda_names_used() -> tuple[dict[str, set[str]], list[str]]:
    """What rockedge touches of cuda-python's runtime module, read from the code: {"": module names, enum or class
    name: members} from every ``<x>.cudaName`` / ``<x>.cudaEnum.member`` attribute (CUDA's names are camelCase after
    ``cuda``, rockedge's own ``cuda_gpu``/``cuda_rt`` are not), and the files that hold them."""
    import ast
    import re

    camel = re.compile(r"^cuda[A-Z]")
    used: dict[str, set[str]] = {"": set()}
    files = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and camel.match(node.attr):
                found = True
                inner = node.value
                if isinstance(inner, ast.Attribute) and camel.match(inner.attr):
                    used.setdefault(inner.attr, set()).add(node.attr)  # rt.cudaError_t.cudaSuccess
                else:
                    used[""].add(node.attr)
        if found:
            files.append(str(path.relative_to(SRC)))
    return used, files


def cuda_runtime_declared() -> dict[str, set[str]]:
    """The names :class:`rockedge.cuda_rt.CudaRuntime` (the type gate's view of cuda-python) declares."""
    from rockedge import cuda_rt

    ann = lambda cls: set(cls.__dict__.get("__annotations__", {}))  # noqa: E731
    return {"": ann(cuda_rt.CudaRuntime), "cudaError_t": ann(cuda_rt._ErrorCodes),
            "cudaMemcpyKind": ann(cuda_rt._CopyKinds), "cudaDeviceProp": ann(cuda_rt.DeviceProp)}


def test_the_code_touches_cuda_python_only_through_the_declared_names():
    used, files = cuda_names_used()
    assert "cuda_rt.py" in files, files  # doctor, probes, the backend and the calibrator go through it
    declared = cuda_runtime_declared()
    assert len(used[""]) >= 15 and used["cudaError_t"] >= {"cudaSuccess", "cudaErrorInsufficientDriver"}
    for owner, members in used.items():
        assert members <= declared[owner], (owner or "module", sorted(members - declared[owner]))


@pytest.mark.parametrize("version", list(CUDA_PYTHON))
def test_every_cuda_python_name_rockedge_uses_exists_in_that_release(version):
    """11.8.2 (JetPack 5's pin), 12.x (JetPack 6), 13.x (JetPack 7): every name cuda_rt.CudaRuntime declares and every
    one the code touches is defined by that release's runtime module, which rockedge finds by its path."""
    from rockedge.cuda_rt import CUDART_MODULES

    rec = CUDA_PYTHON[version]
    assert rec["module"] in CUDART_MODULES
    used, _ = cuda_names_used()
    for owner, members in [*cuda_runtime_declared().items(), *used.items()]:
        if owner == "":
            have = set(rec["names"])
        elif owner in rec["enums"]:
            have = set(rec["enums"][owner])
        else:
            have = set(rec["attributes"][owner])
        assert members <= have, (version, owner or rec["module"], sorted(members - have))


def test_the_cuda_python_lists_cover_each_jetpack_and_see_real_removals():
    majors = {v.split(".")[0] for v in CUDA_PYTHON}
    assert majors == {"11", "12", "13"} and "11.8.2" in CUDA_PYTHON
    for v, rec in CUDA_PYTHON.items():
        assert rec["distributions"] and rec["method"] and len(rec["names"]) > 400, v
    # What a list is for: names that exist in one release and not in another.
    assert "cudaThreadSynchronize" in CUDA_PYTHON["11.8.2"]["names"]
    assert "cudaThreadSynchronize" not in CUDA_PYTHON["13.0.0"]["names"]
    assert "clockRate" in CUDA_PYTHON["12.9.10"]["attributes"]["cudaDeviceProp"]
    assert "clockRate" not in CUDA_PYTHON["13.0.0"]["attributes"]["cudaDeviceProp"]
    assert "cudaErrorInsufficientDriver" in CUDA_PYTHON["11.8.2"]["enums"]["cudaError_t"]


# -- builds per version -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_an_fp16_engine_builds_and_passes_its_own_verification(fake_trt, onnx_models, tmp_path, version):
    """Bug 1: the inspector says "Channel major FP16 format ..."; counting the word "Half" failed every --half build."""
    fake_trt(version)
    onnx = onnx_models["fp32"] if version in WEAKLY_TYPED else onnx_models["fp16"]  # 11: FP16 comes from the ONNX
    out = tmp_path / "m.fp16.plan"
    half = ["--half"] if version in WEAKLY_TYPED else []
    code, stdout, err = export(onnx, "--format", "engine", *half, "--out", out)
    assert code == 0, err
    m = manifest(out)
    assert m["precision"] == "fp16" and m["tensorrt_version"] == version
    assert m["build"]["layer_precisions"] == {"fp16": 2, "fp32": 1}
    assert m["verification"]["passed"] is True and m["cpu_arch"]
    assert not list(tmp_path.glob("*.failed.*"))


# Each build option on each version: the option's TensorRT names (config.hardware_compatibility_level,
# HardwareCompatibilityLevel.AMPERE_PLUS, builder_optimization_level, NetworkDefinitionCreationFlag.STRONGLY_TYPED,
# DeviceType.DLA, config.DLA_core, runtime.DLA_core, BuilderFlag.GPU_FALLBACK) run against that version's list, or
# the version's refusal comes first. case -> (ONNX on 8.5-10, ONNX on 11, CLI options, fake scenario).
BUILD_OPTION_CASES = {
    "hardware_compatible": ("fp32", "fp32", ["--hardware-compatible"],
                            {"gpus": [{"name": "RTX A4000", "major": 8, "minor": 6}]}),
    "optimization_level": ("fp32", "fp32", ["--optimization-level", "2"], {}),
    "strongly_typed_fp16": ("fp16", "fp16", ["--strongly-typed"], {}),
    "strongly_typed_qdq": ("int8", "int8", ["--strongly-typed"], {}),
    "dla": ("fp32", "fp16", ["--dla-core", "1"], {"dla_cores": 2}),
}


def _refusal(version: str, case: str) -> str | None:
    if version == "8.5.2" and case == "hardware_compatible":
        return "need TensorRT 8.6 or newer (this is 8.5.2)"
    if version == "8.5.2" and case == "optimization_level":
        return "--optimization-level needs TensorRT 8.6 or newer (this is 8.5.2)"
    if version in ("8.5.2", "8.6.1") and case.startswith("strongly_typed"):
        return f"--strongly-typed needs TensorRT 10 or newer (this is {version})"
    return None


@pytest.mark.parametrize("case", list(BUILD_OPTION_CASES))
@pytest.mark.parametrize("version", VERSIONS)
def test_every_build_option_on_every_version(fake_trt, onnx_models, tmp_path, version, case):
    weak_onnx, onnx_11, options, scenario = BUILD_OPTION_CASES[case]
    log = fake_trt(version, **scenario)
    onnx = onnx_models[weak_onnx if version in WEAKLY_TYPED else onnx_11]
    half = ["--half"] if case == "dla" and version in WEAKLY_TYPED else []
    out = tmp_path / "m.plan"
    code, _, err = export(onnx, "--format", "engine", *options, *half, "--out", out)
    refusal = _refusal(version, case)
    if refusal is not None:
        assert code == 1 and refusal in err and not out.exists(), err
        return
    assert code == 0, err
    m = manifest(out)
    build = [e for e in _trt_api.read_log(log) if e["event"] == "build"][-1]
    assert m["verification"]["passed"] is True
    if case == "hardware_compatible":
        assert m["hardware_compatibility"] == "ampere_plus"
        assert build["hardware_compatibility_level"].endswith("AMPERE_PLUS")
    elif case == "optimization_level":
        assert build["optimization_level"] == 2 and m["build"]["optimization_level"] == 2
    elif case.startswith("strongly_typed"):
        want = "fp16" if case.endswith("fp16") else "int8"
        assert m["precision"] == want and m["build"]["layer_precisions"].get(want)
        assert ("STRONGLY_TYPED" in m["build"]["network_flags"]) == (version == "10.3.0")
        assert not {"FP16", "INT8"} & set(m["build"]["builder_flags"])  # the ONNX's types, no precision flags
    else:
        assert m["build"]["dla_core"] == 1 and "GPU_FALLBACK" in m["build"]["builder_flags"]
        assert build["dla_core"] == 1 and m["precision"] == "fp16"
        verified = [e for e in _trt_api.read_log(log) if e["event"] == "deserialize" and e["pid"] == os.getpid()]
        assert verified and all(e["dla_core"] == 1 for e in verified)


def test_a_build_that_swallows_the_precision_is_kept_as_failed(fake_trt, onnx_models, tmp_path):
    fake_trt("10.3.0", ignore_precision_flags=True)
    out = tmp_path / "m.plan"
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--half", "--out", out)
    assert code == 1 and "no layer of the engine runs in fp16" in (tmp_path / "m.failed.plan.parity.json").read_text()
    assert not out.exists() and (tmp_path / "m.failed.plan").is_file()


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0", "11.0.0"])
def test_a_version_compatible_build_is_inspected_with_host_code_allowed(fake_trt, onnx_models, tmp_path, version):
    """Bug 2: the builder deserialized its own version-compatible plan without engine_host_code_allowed."""
    log = fake_trt(version)
    onnx = onnx_models["fp32"] if version in WEAKLY_TYPED else onnx_models["fp16"]
    out = tmp_path / "vc.plan"
    code, _, err = export(onnx, "--format", "engine", "--version-compatible", "--out", out)
    assert code == 0, err
    assert manifest(out)["version_compatible"] is True
    events = [e for e in _trt_api.read_log(log) if e["event"] == "deserialize"]
    assert len(events) >= 2  # the build child's inspection and the parent's verification


def test_version_compatible_is_refused_on_85(fake_trt, onnx_models, tmp_path):
    fake_trt("8.5.2")
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--version-compatible", "--out", tmp_path / "x.plan")
    assert code == 1 and "need TensorRT 8.6 or newer (this is 8.5.2)" in err


@pytest.mark.parametrize("version", WEAKLY_TYPED)
def test_implicit_int8_calibrates_and_reuses_only_a_matching_cache(fake_trt, onnx_models, tmp_path, version):
    log = fake_trt(version)
    cache = tmp_path / "m.calib.cache"
    args = (onnx_models["fp32"], "--format", "engine", "--int8", "--calib-data", "synth", "--calib-n", 4,
            "--calib-cache", cache)
    code, _, err = export(*args, "--out", tmp_path / "a.plan")
    assert code == 0, err
    code_v = {"8.5.2": "8502", "8.6.1": "8601", "10.3.0": "100300"}[version]
    assert cache.read_text().splitlines()[0] == f"TRT-{code_v}-EntropyCalibration2"  # TensorRT's own header
    sidecar = json.loads(cache.with_name(cache.name + ".json").read_text())
    assert sidecar["tensorrt_version"] == version and len(sidecar["onnx_sha256"]) == 64
    builds = [e for e in _trt_api.read_log(log) if e["event"] == "build"]
    assert builds[-1]["calibrated_batches"] == 4
    code, _, err = export(*args, "--out", tmp_path / "b.plan")
    assert code == 0, err
    assert [e for e in _trt_api.read_log(log) if e["event"] == "build"][-1]["calibrated_batches"] == 0  # reused
    assert manifest(tmp_path / "b.plan")["build"]["layer_precisions"]["int8"] == 2


def test_an_error_inside_get_batch_fails_the_build(fake_trt, onnx_models, tmp_path):
    """TensorRT catches an exception raised in get_batch, prints it and ends calibration (pyInt8.cpp): the engine
    would be calibrated on one batch of four."""
    fake_trt("8.6.1", get_batch_raises_at=1)
    out = tmp_path / "m.plan"
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--int8", "--calib-data", "synth",
                          "--calib-n", 4, "--out", out)
    assert code == 1
    assert "INT8 calibration stopped after 1 of 4 batches" in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob("*.plan"))


def test_tensorrt_11_builds_a_qdq_onnx_and_refuses_calibration(fake_trt, onnx_models, tmp_path):
    fake_trt("11.0.0")
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--int8", "--out", tmp_path / "x.plan")
    assert code == 1 and "has no INT8 calibrators" in err
    out = tmp_path / "q.plan"
    code, _, err = export(onnx_models["int8"], "--format", "engine", "--out", out)
    assert code == 0, err
    assert manifest(out)["precision"] == "int8" and manifest(out)["build"]["builder_flags"] == []


@pytest.mark.parametrize("problem", ["create_none", "set_false", "get_none", "serialize_not_buffer"])
def test_a_timing_cache_problem_never_costs_the_plan(fake_trt, onnx_models, tmp_path, problem):
    fake_trt("10.3.0", timing_cache=problem)
    out = tmp_path / "m.plan"
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--half", "--timing-cache", tmp_path / "t.cache",
                          "--out", out)
    assert code == 0, err
    assert out.is_file() and "warning:" in err and "timing cache" in err
    assert not (tmp_path / "t.cache").exists()


def test_a_timing_cache_is_written_when_all_is_well(fake_trt, onnx_models, tmp_path):
    fake_trt("10.3.0")
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--timing-cache", tmp_path / "t.cache",
                          "--out", tmp_path / "m.plan")
    assert code == 0, err
    assert (tmp_path / "t.cache").read_bytes() == b"FAKE-TIMING-CACHE 10.3.0"


def test_tensorrts_out_of_memory_warnings_reach_the_user(fake_trt, onnx_models, tmp_path):
    fake_trt("10.3.0", oom_warning=True)
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", tmp_path / "m.plan")
    assert code == 0, err
    assert "warning: the build ran short of memory" in err


def test_a_failed_build_is_one_line(fake_trt, onnx_models, tmp_path):
    fake_trt("8.6.1", build_returns_none=True)
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", tmp_path / "m.plan")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1, err
    assert "TensorRT could not build m.onnx: ERROR: [fake] the build failed; nothing was written" in lines[0]


def test_parser_errors_are_one_line(fake_trt, onnx_models, tmp_path):
    fake_trt("10.3.0", parser_errors=["Unsupported ONNX data type: UINT16"])
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", tmp_path / "m.plan")
    assert code == 1 and "TensorRT's ONNX parser rejected m.onnx: Unsupported ONNX data type: UINT16" in err


def test_the_parent_never_touches_tensorrt_or_cuda(fake_trt, onnx_models, tmp_path):
    """Bug 9: the TensorRT version, GPU, memory and DLA cores come from a probe child; on a Jetson the memory the
    build needs is not held by the parent's CUDA context or Builder."""
    log = fake_trt("10.3.0")
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", tmp_path / "m.plan")
    assert code == 0, err
    builders = {e["pid"] for e in _trt_api.read_log(log) if e["event"] == "builder"}
    assert builders and os.getpid() not in builders


# -- DLA, devices, drivers -----------------------------------------------------------------------------------------

def test_a_dla_plan_is_deserialized_onto_its_core(fake_trt, onnx_models, tmp_path):
    log = fake_trt("8.6.1", dla_cores=2)
    out = tmp_path / "dla.plan"
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--half", "--dla-core", 1, "--out", out)
    assert code == 0, err
    m = manifest(out)
    assert m["build"]["dla_core"] == 1 and "GPU_FALLBACK" in m["build"]["builder_flags"]
    verified = [e for e in _trt_api.read_log(log) if e["event"] == "deserialize" and e["pid"] == os.getpid()]
    assert verified and all(e["dla_core"] == 1 for e in verified)  # runtime.DLA_core was set before deserializing


def test_the_backend_runs_on_the_device_it_was_asked_for(fake_trt, onnx_models, tmp_path):
    log = fake_trt("10.3.0", gpus=[{"name": "RTX A4000", "major": 8, "minor": 6}] * 2)
    out = tmp_path / "m.plan"
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", out)
    assert code == 0, err
    from rockedge.runtime.backends.trt import TrtBackend

    with TrtBackend(out, device=1) as be:
        y = be.infer(np.zeros((1, 3, 64, 64), np.float32))
        assert y.shape == (1, 2, 64, 64) and np.isfinite(y).all()
    assert [e["device"] for e in _trt_api.read_log(log) if e["event"] == "cudaSetDevice"][-1] == 1


def test_a_load_that_fails_half_way_releases_what_it_took(fake_trt, onnx_models, tmp_path, monkeypatch):
    """TrtBackend.activate: a failure after the engine, context and stream exist (here, resolving the I/O) destroys
    the stream and drops the engine; the backend can be activated again afterwards."""
    log = fake_trt("10.3.0")
    out = tmp_path / "m.plan"
    assert export(onnx_models["fp32"], "--format", "engine", "--out", out)[0] == 0
    from rockedge.runtime.backends import trt as trt_backend

    def refuse(*args, **kwargs):
        raise RockedgeError("fake: the I/O does not match")

    real = trt_backend.resolve_io
    monkeypatch.setattr(trt_backend, "resolve_io", refuse)
    be = trt_backend.TrtBackend(out)
    before = len(_trt_api.read_log(log))
    with pytest.raises(RockedgeError, match="fake: the I/O does not match"):
        be.infer(np.zeros((1, 3, 64, 64), np.float32))
    events = _trt_api.read_log(log)[before:]
    created = [e["stream"] for e in events if e["event"] == "cudaStreamCreate"]
    assert created and [e["stream"] for e in events if e["event"] == "cudaStreamDestroy"] == created
    assert be.stream is None and be.buffers is None and not be._active
    assert not any(hasattr(be, a) for a in ("context", "engine", "_runtime"))
    monkeypatch.setattr(trt_backend, "resolve_io", real)
    with be:
        assert be.infer(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 2, 64, 64)
    assert be.stream is None


def test_spec_write_reads_a_foreign_plans_profile_from_the_engine(fake_trt, trained_ckpt, tmp_path):
    """A plan built elsewhere (trtexec) from a dynamic ONNX: its manifest records the profile TensorRT reports,
    which the ONNX alone cannot say."""
    from rockedge.export.onnx import export_onnx
    from rockedge.runtime.manifest import manifest_path, read_manifest

    dyn = Path(export_onnx(trained_ckpt(), tmp_path / "dyn.onnx", dynamic=True, progress=False).path)
    fake_trt("10.3.0")
    plan = tmp_path / "m.plan"
    code, _, err = export(dyn, "--format", "engine", "--min-shape", "1x3x64x64", "--max-shape", "4x3x64x64", "--out", plan)
    assert code == 0, err
    built = read_manifest(plan).input_shapes
    assert built["images"]["min"] != built["images"]["max"]  # a real profile, not one fixed shape
    manifest_path(plan).unlink()  # now it is a plan without one, as trtexec leaves it
    r = cli_runner().invoke(main, ["spec", "write", str(plan), "--from", str(dyn)])
    assert r.exit_code == 0, r.stderr
    m = read_manifest(plan)
    assert m.input_shapes == built and m.tensorrt_version == "10.3.0"


def test_the_engine_output_is_the_onnx_output(fake_trt, onnx_models, tmp_path):
    """The backend's buffers, addresses and copies carry the right bytes: the fake engine runs the ONNX on what the
    backend bound, and the result must equal ONNX Runtime's on the same input, at two batch sizes."""
    fake_trt("10.3.0")
    out = tmp_path / "m.plan"
    assert export(onnx_models["fp32"], "--format", "engine", "--out", out)[0] == 0
    from rockedge.runtime.backends.ort import OrtBackend
    from rockedge.runtime.backends.trt import TrtBackend

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with TrtBackend(out) as t, OrtBackend(onnx_models["fp32"], providers=["cpu"]) as o:
        np.testing.assert_array_equal(t.infer(x), o.infer(x))
        t.infer(x)
        assert t.buffers is not None and t.buffers.allocations == 2  # input + output, reused on the second call


@pytest.mark.parametrize("driver, fragment", [("dlopen", "no usable CUDA GPU: Failed to dlopen libcuda.so.1"),
                                              ("insufficient", "no usable CUDA GPU: cudaErrorInsufficientDriver")])
def test_a_machine_without_a_driver_is_one_line(fake_trt, onnx_models, tmp_path, driver, fragment):
    """cuda-python <= 12.6 raises RuntimeError without a driver; 12.9/13 return an error code."""
    fake_trt("10.3.0", driver=driver)
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", tmp_path / "m.plan")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in err
    from rockedge.cuda_rt import require_gpu

    with pytest.raises(BackendUnavailable, match=fragment):
        require_gpu()


def test_an_old_driver_error_names_the_cuda_python_pin(fake_trt, onnx_models, tmp_path):
    """JetPack 6's driver is CUDA 12.6 and `pip install cuda-python` brings 13: the one line says what to install."""
    fake_trt("10.3.0", driver="insufficient", driver_cuda=12060, runtime_cuda=13000)
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", tmp_path / "m.plan")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1, err
    assert ("no usable CUDA GPU: cudaErrorInsufficientDriver (this cuda-python is built for CUDA 13.0 but the driver "
            "supports 12.6: pip install 'cuda-python>=12,<13')") in lines[0]
    fake_trt("8.5.2", driver="insufficient", driver_cuda=11040, runtime_cuda=12060)  # JetPack 5
    from rockedge.cuda_rt import require_gpu

    with pytest.raises(BackendUnavailable, match=r"pip install 'cuda-python>=11.8,<11.8.3'"):
        require_gpu()
    from rockedge.cuda_rt import pin_advice

    assert pin_advice(12020, 12090).endswith("supports 12.2: pip install 'cuda-python>=12,<12.3'")  # one major


def test_the_installed_cuda_python_without_a_driver_says_so_and_names_the_pin(monkeypatch):
    """cuda-python as installed here, on a machine with no NVIDIA driver: cudaGetDeviceCount really returns
    cudaErrorInsufficientDriver and cudaDriverGetVersion 0. Only the driver's version is then made JetPack 6's."""
    from rockedge import cuda_rt

    monkeypatch.setattr(cuda_rt, "_CUDART", None)
    try:
        rt = cuda_rt.cudart()
    except BackendUnavailable:
        pytest.skip("cuda-python is not installed here")
    err, count = rt.cudaGetDeviceCount()
    if err != rt.cudaError_t.cudaErrorInsufficientDriver:
        pytest.skip(f"this machine has a working CUDA driver ({err})")
    with pytest.raises(BackendUnavailable) as e:
        cuda_rt.require_gpu()
    assert str(e.value) == ("no usable CUDA GPU: cudaErrorInsufficientDriver (no NVIDIA driver on this machine; the "
                            "TensorRT backend needs an NVIDIA GPU and its driver)")
    _, runtime = rt.cudaRuntimeGetVersion()
    monkeypatch.setattr(rt, "cudaDriverGetVersion", lambda: (rt.cudaError_t.cudaSuccess, 12060))
    with pytest.raises(BackendUnavailable) as e:
        cuda_rt.require_gpu()
    assert "\n" not in str(e.value)
    assert str(e.value).endswith(f"(this cuda-python is built for CUDA {cuda_rt.cuda_version(runtime)} but the driver "
                                 f"supports 12.6: pip install '{cuda_rt.cuda_python_pin(12060)}')")


@pytest.mark.parametrize("switch, call", [("properties_error", "cudaGetDeviceProperties"),
                                          ("mem_info_error", "cudaMemGetInfo")])
def test_a_failing_device_query_is_one_line(fake_trt, onnx_models, tmp_path, switch, call):
    """cudaGetDeviceProperties / cudaMemGetInfo return an error code instead of raising: checked, and one line."""
    fake_trt("10.3.0", **{switch: "cudaErrorInitializationError"})
    from rockedge.cuda_rt import memory_info, require_gpu

    with pytest.raises(RockedgeError, match=f"^CUDA {call} failed: cudaErrorInitializationError$"):
        require_gpu() if call == "cudaGetDeviceProperties" else memory_info()
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", tmp_path / "m.plan")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and f"CUDA {call} failed: cudaErrorInitializationError" in lines[0], err
    assert "Traceback" not in err and not list(tmp_path.glob("*.plan*"))


# -- plans that carry code (issue: trust boundaries) ----------------------------------------------------------------

def test_a_version_compatible_plan_from_elsewhere_needs_trust_plan_code(fake_trt, onnx_models, scenes, tmp_path,
                                                                       monkeypatch):
    """A copied plan and manifest cannot claim "built here": the record lives in the user's state folder."""
    import cv2

    log = fake_trt("10.3.0")
    plan = tmp_path / "vc.plan"
    assert export(onnx_models["fp32"], "--format", "engine", "--version-compatible", "--out", plan)[0] == 0
    image = tmp_path / "rocks.png"
    cv2.imwrite(str(image), scenes(1, 64, 64)[0][0])
    run = lambda *extra: cli_runner().invoke(main, ["run", str(plan), str(image), "--out", str(tmp_path / "o"),  # noqa: E731
                                                    "-q", *extra])
    r = run()
    assert r.exit_code == 0, r.stderr  # built on this machine: recorded, runs without the flag
    monkeypatch.setenv("ROCKEDGE_STATE_DIR", str(tmp_path / "another-machine"))
    before = len([e for e in _trt_api.read_log(log) if e["event"] == "deserialize"])
    r = run()
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "--trust-plan-code" in lines[0] and "host code" in lines[0]
    assert len([e for e in _trt_api.read_log(log) if e["event"] == "deserialize"]) == before  # refused before TensorRT
    r = run("--trust-plan-code")
    assert r.exit_code == 0, r.stderr


def test_trust_is_checked_before_tensorrt_is_imported(tmp_path, monkeypatch):
    """No TensorRT needed for the refusal: a fake version-compatible plan with a valid manifest."""
    from rockedge.runtime.backends.trt import TrtBackend
    from rockedge.runtime.manifest import EngineManifest, write_manifest
    from rockedge.spec import ModelSpec

    monkeypatch.setenv("ROCKEDGE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # importing it now would raise ImportError
    plan = tmp_path / "vc.plan"
    plan.write_bytes(b"version-compatible plan bytes")
    write_manifest(plan, EngineManifest(spec=ModelSpec(arch="lraspp_mobilenet_v3_large"), tensorrt_version="10.3.0",
                                        gpu_name="Orin", compute_capability="8.7", version_compatible=True))
    with pytest.raises(RockedgeError, match="version-compatible TensorRT plan: it carries TensorRT's lean runtime"):
        TrtBackend(plan)
    assert TrtBackend(plan, trust_plan_code=True).host_code is True  # allowed; TensorRT is imported only on use
