"""Serving layouts: Triton's config.pbtxt parsed with Triton's own ModelConfig message, DeepStream's nvinfer config
checked field by field against the model, and the DeepStream model run the way nvinfer feeds and parses it.

Neither server runs here (no GPU, no Triton, no DeepStream): what can be checked on a CPU is checked.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rockedge.cli import main
from rockedge.jobs.serve import write_serving
from rockedge.onnx_proto import read_info, write_metadata
from rockedge.precision import Precision
from rockedge.runtime.manifest import EngineManifest, write_manifest
from rockedge.serving.model import DS_KEY
from rockedge.spec import METADATA_KEY, PRECISION_KEY, ModelSpec

ort = pytest.importorskip("onnxruntime")
LRASPP = "lraspp_mobilenet_v3_large"
H = W = 64


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def model_config_pb2():
    """Triton's ModelConfig message: tritonclient ships it (tritonclient/grpc/model_config_pb2.py); importing
    tritonclient.grpc needs grpcio, so load the generated module by its file path with protobuf alone."""
    pytest.importorskip("google.protobuf")
    try:
        from tritonclient.grpc import model_config_pb2 as m  # type: ignore[import-not-found]

        return m
    except (ImportError, RuntimeError):  # tritonclient without grpcio raises RuntimeError
        pass
    found = importlib.util.find_spec("tritonclient")
    if found is None or not found.submodule_search_locations:
        pytest.skip("tritonclient is not installed (pip install tritonclient)")
    path = Path(next(iter(found.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_config(path: Path):
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    return text_format.Parse(path.read_text(), pb2.ModelConfig()), pb2


@pytest.fixture(scope="module")
def ckpt(trained_ckpt, tmp_path_factory) -> Path:
    # A private copy: exporting a checkpoint writes <stem>.onnx beside it.
    src = trained_ckpt(arch=LRASPP, size=(H, W))
    dst = tmp_path_factory.mktemp("serving") / "rocks.pt"
    shutil.copyfile(src, dst)
    return dst


@pytest.fixture(scope="module")
def triton_repo(ckpt) -> Path:
    repo = ckpt.parent / "repo"
    r = run_cli("export", ckpt, "--format", "triton", "--out", repo, "--max-batch", 4, "--instances", 2, "--n", 2,
                "--quiet")
    assert r.exit_code == 0, r.output
    return repo


@pytest.fixture(scope="module")
def dynamic_onnx(ckpt) -> Path:
    """The same checkpoint exported as the serving formats export it (dynamic batch): the reference for DeepStream."""
    out = ckpt.parent / "dynamic" / "rocks.onnx"
    r = run_cli("export", ckpt, "--out", out, "--dynamic", "--n", 2, "--quiet")
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def static_onnx(ckpt) -> Path:
    out = ckpt.parent / "static" / "rocks.onnx"
    r = run_cli("export", ckpt, "--out", out, "--n", 2, "--quiet")
    assert r.exit_code == 0, r.output
    return out


# -- Triton --------------------------------------------------------------------------------------------------------


def test_triton_repository_config_matches_the_model(triton_repo, ckpt):
    folder = triton_repo / "rocks"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "1", "1/model.onnx", "config.pbtxt", "labels.txt", "rockedge_spec.json"]
    cfg, pb2 = parse_config(folder / "config.pbtxt")
    info = read_info(folder / "1" / "model.onnx")
    spec = ModelSpec.from_json(info.metadata[METADATA_KEY])
    assert cfg.name == "rocks" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 4
    # dims exclude the batch dim (max_batch_size > 0), which the model must therefore have dynamic
    (i,), (o,) = cfg.input, cfg.output
    assert info.inputs[0].shape[0] is None and info.outputs[0].shape[0] is None
    assert (i.name, i.data_type, i.format, list(i.dims)) == (
        info.inputs[0].name, pb2.TYPE_FP32, pb2.ModelInput.FORMAT_NCHW, [3, H, W])
    assert (o.name, o.data_type, list(o.dims)) == (info.outputs[0].name, pb2.TYPE_FP32, [spec.num_classes, H, W])
    assert cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds > 0
    (g,) = cfg.instance_group
    assert (g.count, g.kind) == (2, pb2.ModelInstanceGroup.KIND_GPU)
    # clients get classes and colours beside it
    assert (folder / "labels.txt").read_text().splitlines() == list(spec.classes)
    client = json.loads((folder / "rockedge_spec.json").read_text())
    assert ModelSpec.from_dict(client) == spec and client["serving"]["max_batch_size"] == 4
    # Triton batches requests up to max_batch_size: the served model accepts any batch with those dims
    sess = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run([o.name], {i.name: np.zeros((3, *i.dims), np.float32)})[0]
    assert list(y.shape) == [3, *o.dims]


def test_triton_parser_is_strict():
    # The check above is only worth something if the parser rejects what Triton would reject.
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    with pytest.raises(text_format.ParseError):
        text_format.Parse('name: "x"\nmax_batch: 4\n', pb2.ModelConfig())


def test_triton_fixed_batch_needs_max_batch_0(static_onnx, tmp_path):
    r = run_cli("export", static_onnx, "--format", "triton", "--out", tmp_path / "repo")
    assert r.exit_code == 1 and "fixed batch" in r.output and "--max-batch 0" in r.output
    assert not (tmp_path / "repo" / "rocks").exists()
    r = run_cli("export", static_onnx, "--format", "triton", "--out", tmp_path / "repo", "--max-batch", 0)
    assert r.exit_code == 0, r.output
    cfg, _ = parse_config(tmp_path / "repo" / "rocks" / "config.pbtxt")
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert list(cfg.input[0].dims) == [1, 3, H, W] and list(cfg.output[0].dims) == [1, 2, H, W]


def test_triton_raw_input_mask_output(ckpt, tmp_path):
    onnx = tmp_path / "raw.onnx"
    r = run_cli("export", ckpt, "--out", onnx, "--dynamic", "--input-format", "raw", "--output-format", "mask",
                "--n", 2, "--quiet")
    assert r.exit_code == 0, r.output
    step = write_serving("triton", onnx, tmp_path / "repo", max_batch=8, instances=1)
    cfg, pb2 = parse_config(step.path / "config.pbtxt")
    (i,), (o,) = cfg.input, cfg.output
    assert (i.name, i.data_type, i.format, list(i.dims)) == ("images", pb2.TYPE_UINT8, pb2.ModelInput.FORMAT_NHWC, [H, W, 3])
    assert (o.name, o.data_type, list(o.dims)) == ("mask", pb2.TYPE_INT32, [H, W])


def _fake_plan(tmp_path: Path, lo: int, hi: int, suffix: str = ".plan") -> Path:
    plan = tmp_path / f"rocks.fp16{suffix}"
    plan.write_bytes(b"not a real engine")
    spec = ModelSpec(arch=LRASPP, input_size=(H, W))
    write_manifest(plan, EngineManifest(spec=spec, tensorrt_version="10.3.0.30", gpu_name="Orin",
                                        compute_capability="8.7", precision=Precision.FP16,
                                        input_shapes={"images": {"min": [lo, 3, H, W], "opt": [hi, 3, H, W],
                                                                 "max": [hi, 3, H, W]}}))
    return plan


def test_triton_from_plan(tmp_path):
    plan = _fake_plan(tmp_path, 1, 8)
    r = run_cli("export", plan, "--format", "triton", "--out", tmp_path / "repo", "--max-batch", 8)
    assert r.exit_code == 0, r.output
    folder = tmp_path / "repo" / "rocks_fp16"
    cfg, pb2 = parse_config(folder / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 8
    assert (folder / "1" / "model.plan").read_bytes() == plan.read_bytes()
    assert (cfg.input[0].name, list(cfg.input[0].dims)) == ("images", [3, H, W])
    assert (cfg.output[0].name, cfg.output[0].data_type, list(cfg.output[0].dims)) == ("logits", pb2.TYPE_FP32, [2, H, W])
    assert json.loads((folder / "rockedge_manifest.json").read_text())["tensorrt_version"] == "10.3.0.30"
    # more than the profile allows, a fixed-batch engine, and precision flags on a built engine are refused
    r = run_cli("export", plan, "--format", "triton", "--out", tmp_path / "repo2", "--max-batch", 16)
    assert r.exit_code == 1 and "lower --max-batch to 8" in r.output
    (tmp_path / "fixed").mkdir()
    r = run_cli("export", _fake_plan(tmp_path / "fixed", 1, 1), "--format", "triton", "--out", tmp_path / "repo3")
    assert r.exit_code == 1 and "fixed batch of 1" in r.output
    r = run_cli("export", plan, "--format", "triton", "--out", tmp_path / "repo4", "--half")
    assert r.exit_code == 1 and "precision was fixed" in r.output
    r = run_cli("export", plan, "--format", "deepstream", "--out", tmp_path / "ds")
    assert r.exit_code == 1 and "deepstream" in r.output and not (tmp_path / "ds").exists()


@pytest.mark.parametrize("suffix", [".trt", ".engine"])
def test_triton_from_an_engine_of_any_suffix_through_the_cli(tmp_path, suffix):
    """Every engine suffix the loader accepts (rockedge.runtime.modelfile.FILE_KINDS) goes into Triton as a plan."""
    engine = _fake_plan(tmp_path, 1, 8, suffix)
    r = run_cli("export", engine, "--format", "triton", "--out", tmp_path / "repo", "--max-batch", 8)
    assert r.exit_code == 0, r.output
    folder = tmp_path / "repo" / "rocks_fp16"
    assert (folder / "1" / "model.plan").read_bytes() == engine.read_bytes()  # Triton's name for a TensorRT plan
    assert 'platform: "tensorrt_plan"' in (folder / "config.pbtxt").read_text()
    assert json.loads((folder / "rockedge_manifest.json").read_text())["tensorrt_version"] == "10.3.0.30"


def test_triton_reexport_replaces_only_its_model(triton_repo, static_onnx, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(triton_repo, repo)
    (repo / "other").mkdir()
    (repo / "other" / "config.pbtxt").write_text('name: "other"\n')
    r = run_cli("export", static_onnx, "--format", "triton", "--out", repo, "--max-batch", 0)
    assert r.exit_code == 0, r.output
    assert (repo / "other" / "config.pbtxt").read_text() == 'name: "other"\n'
    assert parse_config(repo / "rocks" / "config.pbtxt")[0].max_batch_size == 0
    assert not [p for p in repo.iterdir() if p.name.startswith(".")]  # no staging left behind


# -- DeepStream ----------------------------------------------------------------------------------------------------


def test_a_serving_export_names_no_report_that_is_gone(ckpt, tmp_path):
    """A checkpoint's intermediate ONNX models for --format triton live in a temporary folder that goes when the
    command ends: the output names no report there. --half names the model folder <stem>_fp16 (serving.md). A
    failed intermediate is kept beside the model with its report, where the error says it is."""
    src = tmp_path / "rocks.pt"
    shutil.copyfile(ckpt, src)
    r = run_cli("export", src, "--format", "triton", "--out", tmp_path / "repo", "--half", "--n", 2)
    assert r.exit_code == 0, r.output
    assert "rockedge-export-" not in r.output and "report:" not in r.output, r.output
    assert (tmp_path / "repo" / "rocks_fp16" / "config.pbtxt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "rocks.pt"]
    r = run_cli("export", src, "--format", "triton", "--out", tmp_path / "repo2", "--n", 2, "--max-abs-diff", 1e-12)
    assert r.exit_code == 1
    failed, report = tmp_path / "rocks.failed.onnx", tmp_path / "rocks.failed.parity.json"
    assert f"kept as {failed} for inspection, report in {report}" in r.output, r.output
    assert failed.is_file() and json.loads(report.read_text())["parity"]["passed"] is False
    assert not (tmp_path / "repo2").exists()


def nvinfer_input(frames_bgr: np.ndarray, props: configparser.SectionProxy) -> np.ndarray:
    """What nvinfer hands TensorRT (DS_plugin_gst-nvinfer: ``y = net-scale-factor * (x - offsets[c])``, x the
    0..255 pixel of the colour plane model-color-format asks for: 0 RGB, 1 BGR), as planar float."""
    order = {"0": [2, 1, 0], "1": [0, 1, 2]}[props["model-color-format"]]
    x = frames_bgr[..., order].astype(np.float32).transpose(0, 3, 1, 2)
    offsets = np.array([float(v) for v in props.get("offsets", "0;0;0").split(";")], np.float32).reshape(1, 3, 1, 1)
    return np.float32(props["net-scale-factor"]) * (x - offsets)


def nvinfer_parse(scores: np.ndarray, threshold: float) -> np.ndarray:
    """DeepStream's SegmentPostprocessor::fillSegmentationOutput on (N, C, H, W) float scores, loop for loop."""
    n, c, h, w = scores.shape
    out = np.full((n, h, w), -1, np.int32)
    best = np.full((n, h, w), -1.0, np.float32)
    for k in range(c):
        take = (scores[:, k] > best) & (scores[:, k] > threshold)
        out[take] = k
        best[take] = scores[:, k][take]
    return out


@pytest.fixture(scope="module")
def deepstream_dir(ckpt) -> tuple[Path, configparser.SectionProxy]:
    out = ckpt.parent / "ds"
    r = run_cli("export", ckpt, "--format", "deepstream", "--out", out, "--max-batch", 3, "--n", 2, "--quiet")
    assert r.exit_code == 0, r.output
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(out / "config_infer_primary_rocks.txt")
    return out, cp["property"]


def test_deepstream_config_fields_match_the_model(deepstream_dir, ckpt):
    out, p = deepstream_dir
    # The intermediate ONNX went to a temporary folder: exporting for DeepStream leaves no rocks.onnx beside the
    # checkpoint (it would replace the user's own export).
    assert not ckpt.with_suffix(".onnx").exists() and not list(ckpt.parent.glob("rocks.parity.json"))
    spec = ModelSpec.from_dict(json.loads((out / "rockedge_spec.json").read_text()))
    info = read_info(out / p["onnx-file"])
    (inp,), (outp,) = info.inputs, info.outputs
    assert p["network-type"] == "2"  # semantic segmentation
    assert p["output-blob-names"] == outp.name == "probs" and outp.dtype == "float32"
    assert int(p["num-detected-classes"]) == spec.num_classes == outp.shape[1]
    assert p["segmentation-output-order"] == "0" and float(p["segmentation-threshold"]) >= 0.0
    assert inp.dtype == "float32" and inp.shape[0] is None  # dynamic batch: nvinfer batches cameras
    assert p["infer-dims"] == ";".join(str(d) for d in inp.shape[1:]) == f"3;{H};{W}"
    assert outp.shape[2:] == (H, W)
    assert int(p["batch-size"]) == 3
    assert p["network-mode"] == "0" and p["model-engine-file"] == f"{p['onnx-file']}_b3_gpu0_fp32.engine"
    # normalisation is in the graph, so nvinfer passes RGB 0..255 through unchanged
    assert (p["model-color-format"], float(p["net-scale-factor"])) == ("0", 1.0)
    assert [float(v) for v in p["offsets"].split(";")] == [0.0, 0.0, 0.0]
    assert (p["maintain-aspect-ratio"], p["scaling-filter"]) == ("0", "1")
    assert (out / p["labelfile-path"]).read_text().splitlines() == list(spec.classes)
    client = json.loads((out / "rockedge_spec.json").read_text())
    assert ModelSpec.from_dict(client) == spec
    assert client["serving"]["check"]["agreement"] >= 0.999
    # no rockedge.spec in the DeepStream graph: rockedge's runtime must not feed it normalised floats
    assert METADATA_KEY not in info.metadata and ModelSpec.from_dict(json.loads(info.metadata[DS_KEY])["spec"]) == spec


def test_deepstream_model_agrees_with_rockedge_model(deepstream_dir, dynamic_onnx):
    from rockedge.runtime.preprocess import normalize
    from rockedge.verify.compare import default_frames

    out, p = deepstream_dir
    src = dynamic_onnx
    spec = ModelSpec.from_json(read_info(src).metadata[METADATA_KEY])
    frames = np.stack(default_frames(6, (H, W), seed=11))  # BGR rock scenes at network size
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    ref_mask = ref.run(None, {"images": normalize(frames, spec)})[0].argmax(axis=1)
    assert 0.05 < ref_mask.mean() < 0.95  # both classes present: agreement means something
    ds = ort.InferenceSession(str(out / p["onnx-file"]), providers=["CPUExecutionProvider"])
    scores = ds.run([p["output-blob-names"]], {"images": nvinfer_input(frames, p)})[0]
    assert scores.shape == (6, int(p["num-detected-classes"]), H, W)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    ds_mask = nvinfer_parse(scores, float(p["segmentation-threshold"]))
    assert (ds_mask == -1).sum() == 0
    assert (ds_mask == ref_mask).mean() >= 0.999
    # why the Softmax: logits are only defined up to a shift, and the default parser marks -1 every pixel whose
    # best score is not above the (non-negative) threshold; the same logits shifted below 0 lose every pixel
    logits = ref.run(None, {"images": normalize(frames, spec)})[0]
    assert (nvinfer_parse(logits - logits.max() - 1.0, 0.0) == -1).all()


def test_deepstream_precision_sets_network_mode(static_onnx, tmp_path):
    half = tmp_path / "rocks.fp16.onnx"
    write_metadata(static_onnx, half, {PRECISION_KEY: "fp16"})
    step = write_serving("deepstream", half, tmp_path / "ds", max_batch=4, n=1)
    assert step.passed
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(step.path / "config_infer_primary_rocks_fp16.txt")
    p = cp["property"]
    # a fixed-batch ONNX keeps its batch; the note says how to batch more
    assert (p["network-mode"], p["batch-size"]) == ("2", "1")
    assert p["model-engine-file"] == "rocks_fp16.onnx_b1_gpu0_fp16.engine"
    assert "fixed batch of 1" in step.text
    assert read_info(step.path / "rocks_fp16.onnx").inputs[0].shape == (1, 3, H, W)


def test_deepstream_refuses_what_nvinfer_cannot_parse(ckpt, static_onnx, tmp_path):
    r = run_cli("export", ckpt, "--format", "deepstream", "--out", tmp_path / "ds", "--output-format", "mask")
    assert r.exit_code == 1 and "--output-format logits" in r.output and not (tmp_path / "ds").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    r = run_cli("export", static_onnx, "--format", "deepstream", "--out", tmp_path / "mine")
    assert r.exit_code == 1 and "not a rockedge serving export" in r.output
    assert [q.name for q in (tmp_path / "mine").iterdir()] == ["notes.txt"]
