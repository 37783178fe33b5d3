"""Reading and rewriting ONNX metadata without the onnx package, checked against the onnx package."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rockedge.errors import RockedgeError
from rockedge.onnx_proto import read_info, read_metadata, write_metadata


def _model(path, *, dynamic=False, meta=None):
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8] if dynamic else [1, 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 8, 8])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 1, 1], np.arange(6, dtype=np.float32))
    node = helper.make_node("Conv", ["images", "w"], ["logits"])
    graph = helper.make_graph([node], "g", [x, helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3, 1, 1])],
                              [y], initializer=[w])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    for k, v in (meta or {}).items():
        helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, k: v})
    onnx.save(m, str(path))
    return path


def test_reads_what_onnx_reads(tmp_path):
    p = _model(tmp_path / "m.onnx", dynamic=True, meta={"a": "1", "rockedge.spec": '{"x": "é"}'})
    info = read_info(p)
    assert info.metadata == {"a": "1", "rockedge.spec": '{"x": "é"}'}
    assert info.opset == 17 and info.producer == "test"
    assert [(t.name, t.shape, t.dtype) for t in info.inputs] == [("images", (None, 3, 8, 8), "float32")]  # not "w"
    assert [(t.name, t.shape) for t in info.outputs] == [("logits", (1, 2, 8, 8))]
    assert info.op_types == {"Conv"}


def test_rewrites_metadata_and_keeps_the_graph_byte_for_byte(tmp_path):
    p = _model(tmp_path / "m.onnx", meta={"keep": "me", "rockedge.spec": "old"})
    out = write_metadata(p, tmp_path / "n.onnx", {"rockedge.spec": "new", "rockedge.precision": "int8"})
    a, b = onnx.load(str(p)), onnx.load(str(out))
    onnx.checker.check_model(b, full_check=True)
    assert {q.key: q.value for q in b.metadata_props} == {"keep": "me", "rockedge.spec": "new", "rockedge.precision": "int8"}
    assert a.graph.SerializeToString() == b.graph.SerializeToString()
    assert read_metadata(out)["rockedge.spec"] == "new"
    write_metadata(out, out, {"rockedge.spec": "in place"})
    assert read_metadata(out)["rockedge.spec"] == "in place"


def test_garbage_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xff\xff\xff not protobuf")
    with pytest.raises(RockedgeError, match="not a readable ONNX model"):
        read_info(bad)
    with pytest.raises(RockedgeError, match="cannot read ONNX file"):
        read_info(tmp_path / "missing.onnx")


def test_works_with_onnx_blocked(tmp_path):
    p = _model(tmp_path / "m.onnx", meta={"k": "v"})
    code = textwrap.dedent(f"""
        import sys
        sys.modules["onnx"] = None
        from rockedge.onnx_proto import read_metadata, write_metadata
        write_metadata({str(p)!r}, {str(tmp_path / 'o.onnx')!r}, {{"k": "w"}})
        print(read_metadata({str(tmp_path / 'o.onnx')!r})["k"])
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "w"
