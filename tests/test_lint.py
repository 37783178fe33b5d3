"""TensorRT lint on hand-built graphs: it must be able to fail, and say where."""

from __future__ import annotations

import numpy as np
import onnx
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from rockedge.cli import main
from rockedge.export.lint import lint_model


def bad_model() -> onnx.ModelProto:
    """Every pattern TensorRT's ONNX parser rejects that a segmentation export could plausibly contain."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])
    mask = helper.make_tensor_value_info("mask", TensorProto.INT64, None)
    nz = helper.make_tensor_value_info("nz", TensorProto.INT64, None)
    up = helper.make_tensor_value_info("up", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Relu", ["w"], ["w_relu"], name="make_weight"),
        helper.make_node("Conv", ["x", "w_relu"], ["c"], name="conv_computed_weight"),
        helper.make_node("Shape", ["c"], ["shp"], name="shape"),
        helper.make_node("Cast", ["shp"], ["shp_f"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Div", ["shp_f", "shp_f"], ["scales"], name="scales_from_shape"),
        helper.make_node("Resize", ["c", "", "scales"], ["up"], mode="linear",
                         coordinate_transformation_mode="tf_crop_and_resize", name="bad_resize"),
        helper.make_node("ArgMax", ["up"], ["mask"], axis=1, keepdims=0, select_last_index=1, name="argmax_last"),
        helper.make_node("NonZero", ["up"], ["nz"], name="nonzero"),
    ]
    graph = helper.make_graph(nodes, "bad", [x], [mask, nz, up], initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_bad_graph_findings_name_rule_and_node():
    findings = lint_model(bad_model())
    got = {(f.severity, f.rule, f.node) for f in findings}
    assert ("error", "int64-output", "mask") in got
    assert ("error", "argmax-last-index", "argmax_last") in got
    assert ("error", "resize-coord", "bad_resize") in got
    assert ("error", "non-constant-weight", "conv_computed_weight") in got
    assert ("error", "unsupported-op", "nonzero") in got or ("warning", "newer-op", "nonzero") in got
    assert ("info", "dynamic-shape", "x") in got
    # Errors sort first, so a summary's first line is the worst news.
    assert findings[0].severity == "error"


def test_static_graph_with_shape_computed_resize_is_warned():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Resize", ["x", "", "", "s"], ["y"], mode="linear", name="rs"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    got = {(f.severity, f.rule) for f in lint_model(model)}
    assert ("warning", "resize-dynamic-scale") in got and ("warning", "shape-subgraph") in got


def test_clean_graph_has_no_findings():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    sizes = numpy_helper.from_array(np.array([1, 2, 8, 8], np.int64), "sizes")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                            coordinate_transformation_mode="half_pixel", name="rs")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], initializer=[sizes]),
                              opset_imports=[helper.make_opsetid("", 17)])
    assert [f.rule for f in lint_model(model)] == ["int64-weights"]  # informational only


def test_lint_command_exit_codes(tmp_path):
    bad = tmp_path / "bad.onnx"
    onnx.save(bad_model(), str(bad))
    res = CliRunner().invoke(main, ["lint", str(bad)])
    assert res.exit_code == 1 and "argmax-last-index [argmax_last]" in res.output
    assert res.output.strip().splitlines()[-1].startswith("error: ")
    res = CliRunner().invoke(main, ["lint", str(tmp_path / "missing.onnx")])
    assert res.exit_code == 1 and "not found" in res.output
