"""The one stage-verify-keep step every producer uses, and the one model-file reader every command uses."""

from __future__ import annotations

import pytest

from rockedge.errors import RockedgeError
from rockedge.runtime.manifest import EngineManifest, write_manifest
from rockedge.runtime.modelfile import open_model_file
from rockedge.spec import ModelSpec
from rockedge.steps import failed_path, report_path, stage


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
