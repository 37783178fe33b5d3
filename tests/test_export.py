"""ONNX export: every variant compared with PyTorch in segmentation terms, metadata, bad inputs.

Exports are shared per module (each costs seconds); MobileNetV3 at 64x96 (non-square) carries most tests,
ResNet-50 appears once, at 64x64, in the original project's checkpoint format.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rockedge.cli import main
from rockedge.digest import sha256_file
from rockedge.export.onnx import EXPORT_KEY, SOURCE_SHA_KEY, export_onnx
from rockedge.onnx_proto import read_metadata
from rockedge.runtime.backends.ort import OrtBackend
from rockedge.runtime.backends.pytorch import TorchBackend
from rockedge.spec import METADATA_KEY, ModelSpec
from rockedge.verify.compare import compare, default_frames
from rockedge.verify.parity import ParityBudget

MNV3 = "deeplabv3_mobilenet_v3_large"
SIZE = (64, 96)


def run_cli(*args: str) -> "click.testing.Result":  # noqa: F821
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, target: Path | None = None) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.output
    assert "Traceback" not in result.output
    if target is not None:
        assert not target.exists()
        assert not list(target.parent.glob(f".{target.stem}*")) if target.parent.is_dir() else True


def assert_segments_alike(report, min_share: float = 0.05) -> None:
    """Passing parity on a model that paints one class everywhere would prove nothing."""
    assert report.passed, report.table()
    assert min(report.reference_class_share.values()) > min_share, report.reference_class_share
    assert report.agreement >= 0.9999 and report.boundary_agreement >= 0.999


@pytest.fixture(scope="module")
def ckpt(trained_ckpt) -> Path:
    # Trained at the fixture's default 64x64 (shared with other modules); exported non-square at SIZE.
    return trained_ckpt(arch=MNV3)


@pytest.fixture(scope="module")
def torch_ref(ckpt) -> TorchBackend:
    return TorchBackend(ckpt)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return default_frames(6, SIZE, seed=3)


@pytest.fixture(scope="module")
def cli_export(ckpt, tmp_path_factory) -> tuple[Path, "click.testing.Result"]:  # noqa: F821
    out = tmp_path_factory.mktemp("cli") / "model.onnx"
    return out, run_cli("export", ckpt, "--out", out, "--imgsz", "64x96", "--n", 4)


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    """Factory: one export per distinct set of options, shared across the module."""
    cache: dict[tuple, object] = {}
    root = tmp_path_factory.mktemp("exports")

    def make(**kw):
        key = tuple(sorted(kw.items()))
        if key not in cache:
            cache[key] = export_onnx(ckpt, root / f"m{len(cache)}.onnx", imgsz=SIZE, progress=False, **kw)
        return cache[key]

    return make


# -- the default export, through the CLI -----------------------------------------------------------------------


def test_cli_export_writes_model_report_and_summary(cli_export):
    out, result = cli_export
    assert result.exit_code == 0, result.output
    assert out.is_file()
    for text in ("nodes", "after simplify", "TensorRT lint", "mask agreement", "result: PASS"):
        assert text in result.output
    data = json.loads(out.with_name("model.parity.json").read_text())
    assert data["parity"]["passed"] is True
    assert data["parity"]["max_abs_diff"] < 1e-3
    assert data["export"]["nodes_after_simplify"] < data["export"]["nodes_before_simplify"]
    assert data["export"]["size_bytes"] == out.stat().st_size
    assert not list(out.parent.glob(".*")), "staging files left behind"


def test_default_export_is_static_fp32_and_round_trips_metadata(cli_export, ckpt):
    out, _ = cli_export
    with OrtBackend(out) as ort:
        assert ort.spec == ModelSpec.from_dict({**TorchBackend(ckpt).spec.to_dict(), "input_size": SIZE})
        assert ort.input.shape == (1, 3, *SIZE) and ort.fixed_size == SIZE and ort.fixed_batch == 1
        assert ort.info.precision.value == "fp32"
    meta = read_metadata(out)
    assert meta[SOURCE_SHA_KEY] == sha256_file(ckpt)
    assert meta["rockedge.precision"] == "fp32"
    settings = json.loads(meta[EXPORT_KEY])
    assert settings["opset"] == 17 and settings["dynamic"] is False and settings["imgsz"] == list(SIZE)
    assert ModelSpec.from_json(meta[METADATA_KEY]).input_format == "float"


def test_default_export_resize_nodes_are_tensorrt_friendly(cli_export):
    import onnx

    model = onnx.load(str(cli_export[0]))
    consts = {i.name for i in model.graph.initializer}
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert resizes
    for n in resizes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["mode"] == b"linear" and attrs["coordinate_transformation_mode"] == b"half_pixel"
        assert n.input[3] in consts, "static export must carry constant Resize sizes"
    assert not [n for n in model.graph.node if n.op_type in ("Shape", "Gather")]
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {17}


def test_default_export_lint_has_no_errors(exported):
    lint = exported()  # same options as the CLI default
    rules = {(f["severity"], f["rule"]) for f in lint.report["lint"]}
    assert not [f for f in lint.report["lint"] if f["severity"] == "error"], lint.report["lint"]
    assert ("warning", "newer-op") in rules  # MobileNetV3's HardSwish
    assert not any(r.startswith("resize") for _, r in rules)


# -- variants, each compared with PyTorch ------------------------------------------------------------------------


def test_static_parity_nonsquare(exported, torch_ref, frames):
    with OrtBackend(exported().path) as ort:
        report = compare(torch_ref, ort, frames)
    assert_segments_alike(report)
    assert report.max_abs_diff < 1e-3 and report.mean_abs_diff < 1e-4


def test_static_batch2_parity_pads_last_batch(exported, torch_ref, frames):
    res = exported(batch=2)
    with OrtBackend(res.path) as ort:
        assert ort.fixed_batch == 2
        report = compare(torch_ref, ort, frames[:5], batch=2)  # 5 frames: the last batch is padded
    assert report.frames == 5
    assert_segments_alike(report)


def test_dynamic_parity_at_second_resolution_and_batch2(exported, torch_ref):
    res = exported(dynamic=True)
    from rockedge.onnx_proto import read_info

    info = read_info(res.path)
    assert info.inputs[0].shape == (None, 3, None, None)
    assert info.outputs[0].shape == (None, 2, None, None)  # the class dimension stays fixed
    with OrtBackend(res.path) as ort:
        assert ort.fixed_size is None and ort.fixed_batch is None
        for size in (SIZE, (80, 64)):
            report = compare(torch_ref, ort, default_frames(4, size, seed=5), batch=2, size_hw=size)
            assert report.size_hw == size
            assert_segments_alike(report)
            assert report.max_abs_diff < 1e-3
    kinds = {f["rule"] for f in res.report["lint"]}
    assert {"dynamic-shape", "resize-dynamic-scale"} <= kinds
    assert all(f["severity"] == "info" for f in res.report["lint"] if f["rule"] == "resize-dynamic-scale")


def test_raw_input_graph_normalises_like_prepare(exported, torch_ref, frames):
    res = exported(input_format="raw")
    with OrtBackend(res.path) as ort:
        assert ort.spec.input_format == "raw" and ort.input.shape == (1, *SIZE, 3)
        assert ort.session.get_inputs()[0].type == "tensor(uint8)"
        report = compare(torch_ref, ort, frames)
    assert_segments_alike(report)
    assert report.max_abs_diff < 1e-3  # the folded 1x1 normalisation matches prepare() closely


def test_raw_input_mask_output_variant(exported, torch_ref, frames):
    res = exported(input_format="raw", output_format="mask")
    with OrtBackend(res.path) as ort:
        assert ort.spec.output_format == "mask"
        assert ort.session.get_outputs()[0].type == "tensor(int32)"
        batch = np.ascontiguousarray(np.stack(frames[:1]))
        out = ort.infer(batch)
        assert out.shape == (1, *SIZE) and out.dtype == np.int32
        report = compare(torch_ref, ort, frames)
    assert report.max_abs_diff is None and report.mean_abs_diff is None
    assert_segments_alike(report)
    assert not [f for f in res.report["lint"] if f["severity"] == "error"]


def test_resnet50_original_checkpoint_format(tmp_path):
    """The original project's format: torchvision's 21-class model with aux head, classifier[4] swapped."""
    import torch
    from torchvision.models.segmentation import deeplabv3_resnet50

    torch.manual_seed(0)
    legacy = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    legacy.classifier[4] = torch.nn.Conv2d(256, 2, 1)
    legacy.eval()
    # Training ResNet-50 here costs minutes on 2 cores; instead centre the rock logit of the random model so
    # ~35 % of pixels are rock: its masks then have real boundaries, which is what parity needs.
    from rockedge.runtime.preprocess import prepare

    x, _ = prepare(default_frames(2, (64, 64), seed=9), ModelSpec(arch="deeplabv3_resnet50", input_size=(64, 64)))
    with torch.no_grad():
        out = legacy(torch.from_numpy(x))["out"]
        legacy.classifier[4].bias[1] -= torch.quantile((out[:, 1] - out[:, 0]).flatten(), 0.65)
    src = tmp_path / "orig.pth"
    torch.save(legacy.state_dict(), src)

    out = tmp_path / "r50.onnx"
    result = run_cli("export", src, "--out", out, "--imgsz", 64, "--n", 4)
    assert result.exit_code == 0, result.output
    assert "note: dropped" in result.output and "aux_classifier" in result.output
    assert "carries no class names; assuming background, rock" in result.output
    data = json.loads((tmp_path / "r50.parity.json").read_text())
    assert data["export"]["settings"]["source_format"] == "state_dict"
    with OrtBackend(out) as ort:
        assert ort.spec.arch == "deeplabv3_resnet50" and ort.fixed_size == (64, 64)
        report = compare(TorchBackend(src), ort, default_frames(4, (64, 64), seed=2))
    assert_segments_alike(report)
    assert report.max_abs_diff < 1e-3


# -- parity failure keeps the report, never the target -----------------------------------------------------------


def test_over_budget_export_fails_and_keeps_report(ckpt, tmp_path):
    out = tmp_path / "strict.onnx"
    # No real export matches PyTorch to the last bit, so a zero logit budget must fail.
    result = run_cli("export", ckpt, "--out", out, "--n", 2, "--max-abs-diff", 0)
    assert_one_line_error(result)
    assert "the onnx step is over its budget" in result.output and "max |logit diff|" in result.output
    assert not out.exists()
    assert (tmp_path / "strict.failed.onnx").is_file()
    assert not (tmp_path / "strict.parity.json").exists()  # a failure's report sits beside the .failed file
    data = json.loads((tmp_path / "strict.failed.parity.json").read_text())
    assert data["parity"]["passed"] is False and data["parity"]["failures"]


# -- bad inputs: one line, exit 1, nothing at the target ----------------------------------------------------------


def test_missing_checkpoint(tmp_path):
    out = tmp_path / "m.onnx"
    res = run_cli("export", tmp_path / "nope.pt", "--out", out)
    assert_one_line_error(res, out)
    assert "not found" in res.output


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a torch file" * 10)
    out = tmp_path / "m.onnx"
    res = run_cli("export", bad, "--out", out)
    assert_one_line_error(res, out)
    assert "cannot read checkpoint" in res.output


def test_unknown_architecture(tmp_path, ckpt):
    import torch

    payload = torch.load(ckpt, weights_only=True)
    payload["spec"]["arch"] = "deeplabv3_vgg11"
    src = tmp_path / "odd.pt"
    torch.save(payload, src)
    out = tmp_path / "m.onnx"
    res = run_cli("export", src, "--out", out)
    assert_one_line_error(res, out)
    assert "unknown architecture" in res.output


@pytest.mark.parametrize("imgsz", ["0x64", "8", "64x-3", "64 64"])
def test_invalid_imgsz(ckpt, tmp_path, imgsz):
    out = tmp_path / "m.onnx"
    res = run_cli("export", ckpt, "--out", out, "--imgsz", imgsz)
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "--imgsz" in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_unwritable_output(ckpt, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    out = blocker / "m.onnx"
    res = run_cli("export", ckpt, "--out", out)
    assert_one_line_error(res)
    assert "it is a file, not a folder" in res.output
    assert blocker.read_text().startswith("a file")


def test_output_must_be_onnx(ckpt, tmp_path):
    res = run_cli("export", ckpt, "--out", tmp_path / "m.plan")
    assert_one_line_error(res, tmp_path / "m.plan")


def test_budget_presets_and_overrides():
    assert ParityBudget.for_precision("fp32").min_agreement == 0.9999
    assert ParityBudget.for_precision("fp16").min_agreement == 0.999
    assert ParityBudget.for_precision("int8").min_agreement == 0.98
    assert ParityBudget.for_precision("fp16", min_agreement=0.9).min_agreement == 0.9
    from rockedge.errors import RockedgeError

    with pytest.raises(RockedgeError):
        ParityBudget.for_precision("fp8")
    with pytest.raises(RockedgeError):
        ParityBudget.for_precision("fp32", min_agreement=99.0)  # a percentage, not a fraction


# -- non-finite weights never export ------------------------------------------------------------------------------


def test_nan_weights_are_refused_naming_the_tensors(ckpt, tmp_path):
    import torch

    payload = torch.load(ckpt, weights_only=True)
    sd = payload["state_dict"]
    names = [k for k, v in sd.items() if v.is_floating_point()][:4]
    for k in names:
        sd[k].view(-1)[:3] = float("nan")
    src = tmp_path / "diverged.pt"
    torch.save(payload, src)
    out = tmp_path / "m.onnx"
    res = run_cli("export", src, "--out", out)
    assert_one_line_error(res, out)
    assert "12 non-finite weight values (NaN/Inf) in 4 tensors" in res.output
    assert f"{names[0]} (3)" in res.output and "and 1 more" in res.output


# -- LR-ASPP, the third architecture ----------------------------------------------------------------------------


def test_lraspp_exports_with_parity_and_runs(trained_ckpt, tmp_path):
    src = trained_ckpt(arch="lraspp_mobilenet_v3_large")
    out = tmp_path / "lr.onnx"
    res = run_cli("export", src, "--out", out, "--imgsz", "64x96", "--n", 4)
    assert res.exit_code == 0, res.output
    with TorchBackend(src) as ref, OrtBackend(out) as ort:
        assert ort.spec.arch == "lraspp_mobilenet_v3_large"
        report = compare(ref, ort, default_frames(4, SIZE, seed=6))
    assert_segments_alike(report)
    data = json.loads((tmp_path / "lr.parity.json").read_text())
    assert not [f for f in data["export"]["lint"] if f["severity"] == "error"]
