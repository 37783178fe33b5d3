"""The one stage-verify-keep step every producer uses, and the one model-file reader every command uses."""

from __future__ import annotations

import pytest

from rockedge.errors import RockedgeError
from rockedge.runtime.manifest import EngineManifest, write_manifest
from rockedge.runtime.modelfile import open_model_file
from rockedge.spec import ModelSpec
from rockedge.steps import failed_path, report_path, run_step, stage


def test_a_passing_artifact_lands_at_the_target_and_a_failing_one_beside_it(tmp_path):
    good = tmp_path / "m.int8.onnx"
    good.write_bytes(b"the good model")
    with stage(good) as st:
        assert st.path.parent == tmp_path and st.path.name.startswith(".") and st.path.suffix == ".onnx"
        st.path.write_bytes(b"a worse model")
        final = st.keep(False)
    assert final == tmp_path / "m.int8.failed.onnx" and final.read_bytes() == b"a worse model"
    assert good.read_bytes() == b"the good model"  # never replaced by a failure
    assert report_path(final).name == "m.int8.failed.parity.json" and report_path(good).name == "m.int8.parity.json"
    with stage(good) as st:
        st.path.write_bytes(b"a better model")
        assert st.keep(True) == good
    assert good.read_bytes() == b"a better model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.failed.onnx", "m.int8.onnx"]


def test_a_step_that_raises_leaves_no_staging_file(tmp_path):
    with pytest.raises(ValueError):
        with stage(tmp_path / "m.plan") as st:
            st.path.write_bytes(b"half a plan")
            raise ValueError("the check crashed")
    assert list(tmp_path.iterdir()) == []


def test_run_step_stages_checks_keeps_and_reports_once(tmp_path):
    import json

    target = tmp_path / "m.fp16.onnx"
    seen = []

    def make(passed):
        def write_and_check(staged):
            assert staged.parent == tmp_path and staged.name.startswith(".")
            staged.write_bytes(b"model passed=%d" % passed)
            return passed, {"score": 0.5}
        return write_and_check

    def report(final, outcome):
        seen.append(final)
        return {"model": str(final), **outcome}

    ok = run_step(target, make(True), report)
    assert ok.path == target and ok.passed and ok.report_path == tmp_path / "m.fp16.parity.json"
    assert json.loads(ok.report_path.read_text()) == ok.report == {"model": str(target), "score": 0.5}
    bad = run_step(target, make(False), report)
    assert bad.path == tmp_path / "m.fp16.failed.onnx" and not bad.passed and target.read_bytes() == b"model passed=1"
    assert bad.report_path == tmp_path / "m.fp16.failed.parity.json" and seen == [target, bad.path]
    engine = run_step(tmp_path / "m.plan", make(True), report, report_to=lambda p: p.with_name(p.name + ".parity.json"))
    assert engine.report_path.name == "m.plan.parity.json"

    def crash(staged):
        staged.write_bytes(b"half")
        raise ValueError("the check crashed")

    with pytest.raises(ValueError):
        run_step(tmp_path / "x.onnx", crash, report)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.name.startswith("x.")]


def test_every_file_producer_goes_through_run_step():
    """Issue 15: the stage/verify/keep/report sequence exists once. The ONNX export, FP16, INT8 and engine producers
    call run_step and never spell it out themselves (stage / keep / report_path)."""
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "rockedge"
    for rel in ("export/pipeline.py", "calibration/fp16.py", "calibration/int8.py", "engine/build.py"):
        tree = ast.parse((src / rel).read_text())
        called = {n.func.id if isinstance(n.func, ast.Name) else n.func.attr
                  for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}
        assert "run_step" in called, rel
        assert not called & {"stage", "keep", "report_path", "write_json"}, (rel, called & {"stage", "keep",
                                                                                           "report_path", "write_json"})


def test_failed_folders_keep_their_name():
    assert failed_path("out/best.deepstream", folder=True).name == "best.deepstream.failed"
    assert failed_path("out/repo").name == "repo.failed"


def test_one_reader_for_every_kind(tmp_path):
    with pytest.raises(RockedgeError, match="model not found"):
        open_model_file(tmp_path / "none.onnx")
    with pytest.raises(RockedgeError, match="cannot tell the model type of notes.txt"):
        (tmp_path / "notes.txt").write_text("x")
        open_model_file(tmp_path / "notes.txt")
    (tmp_path / "d.onnx").mkdir()
    with pytest.raises(RockedgeError, match="is a folder, not a model file"):
        open_model_file(tmp_path / "d.onnx")
    plan = tmp_path / "m.trt"
    plan.write_bytes(b"plan")
    bare = open_model_file(plan)
    assert bare.kind == "engine" and bare.spec is None and bare.spec_source == "none"
    with pytest.raises(RockedgeError, match="carries no rockedge model spec"):
        bare.require_spec("a test")
    spec = ModelSpec(arch="lraspp_mobilenet_v3_large", input_size=(64, 96))
    write_manifest(plan, EngineManifest(spec=spec, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                                        precision="fp16", input_shapes={"images": {"min": [1, 3, 64, 96],
                                                                                   "opt": [2, 3, 64, 96],
                                                                                   "max": [4, 3, 64, 96]}}))
    mf = open_model_file(plan)
    assert mf.spec == spec and mf.precision.value == "fp16" and mf.spec_source == "manifest m.trt.json"
    assert mf.inputs[0].name == "images" and mf.inputs[0].shape == (None, 3, 64, 96)
    assert mf.details()["tensorrt"] == "10.3.0"


def test_an_onnx_file_read_without_onnx(trained_ckpt, tmp_path):
    from rockedge.export.onnx import export_onnx

    path = export_onnx(trained_ckpt(), tmp_path / "m.onnx", progress=False).path
    mf = open_model_file(path)
    assert mf.kind == "onnx" and mf.spec is not None and mf.spec.arch == "lraspp_mobilenet_v3_large"
    assert mf.precision.value == "fp32" and not mf.has_qdq and mf.opset == 17
    assert mf.single_input().describe() == "images 1x3x64x64 float32"
    assert mf.outputs[0].shape == (1, 2, 64, 64)


def test_a_ppm_folder_that_runs_is_also_a_dataset(tmp_path):
    """One image-suffix list (rockedge.media.IMAGE_SUFFIXES): a folder of .ppm frames that `rockedge run` reads is a
    dataset (`--data`) as well, with .pgm index masks beside it."""
    import cv2
    import numpy as np

    from rockedge.data.datasets import open_dataset
    from rockedge.runtime.sources import open_source

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        assert cv2.imwrite(str(tmp_path / "images" / f"f{i}.ppm"), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
        mask = np.zeros((24, 32), np.uint8)
        mask[4:12, 6:20] = 1
        assert cv2.imwrite(str(tmp_path / "masks" / f"f{i}.pgm"), mask)
    src = open_source(tmp_path / "images")
    try:
        frames = [f for f in src]
    finally:
        close = getattr(src, "close", None)
        if close is not None:
            close()
    assert len(frames) == 3
    ds = open_dataset(tmp_path, "all")
    assert [p.suffix for p, _ in ds.samples] == [".ppm"] * 3 and ds.layout == "folders"
    image, mask = ds[0]
    assert image.shape == (24, 32, 3) and mask.dtype == np.uint8 and int(mask.sum()) == 8 * 14
