"""The ONNX graph surgery DeepStream needs (the ``onnx`` package: a workstation step): normalisation moved
into the graph as one exact 1x1 Conv, and a Softmax appended so nvinfer's parser sees probabilities.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from rockedge.deps import require
from rockedge.errors import RockedgeError
from rockedge.serving.model import DS_INPUT, DS_KEY, DS_OUTPUT, Source
from rockedge.spec import METADATA_KEY


def _onnx() -> Any:
    return require("onnx", "--format deepstream")

def _rename_inputs(graph: Any, old: str, new: str) -> None:
    """Point every node input named ``old`` at ``new`` (subgraphs of If/Loop included)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename_inputs(attr.g, old, new)
            for g in attr.graphs:
                _rename_inputs(g, old, new)

def deepstream_model(src: Source) -> Any:
    """The source ONNX with a normalising 1x1 Conv before it and a Softmax after it (see the module docstring):
    input ``images`` float32 (N, 3, H, W) RGB in 0..255, output ``probs`` float32 (N, C, H, W)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src.path))
    if src.opset < 13:
        raise RockedgeError(f"{src.path.name} has opset {src.opset}; the DeepStream model needs >= 13 (Softmax over axis 1)")
    g = m.graph
    initializers = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in initializers]
    if len(inputs) != 1 or len(g.output) != 1:
        raise RockedgeError(f"{src.path.name} needs exactly one input and one output for DeepStream")
    inp, out = inputs[0], g.output[0]
    s = src.spec
    used = {x for node in g.node for x in (*node.input, *node.output)} | initializers
    def fresh(base: str) -> str:
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        return name

    normalised, w_name, b_name = fresh("rockedge_normalised"), fresh("rockedge_norm_w"), fresh("rockedge_norm_b")
    _rename_inputs(g, inp.name, normalised)
    # (x / 255 - mean) / std per RGB channel as one diagonal 1x1 convolution (as the raw-input export does).
    w = np.zeros((3, 3, 1, 1), np.float32)
    b = np.zeros(3, np.float32)
    for c in range(3):
        w[c, c, 0, 0] = 1.0 / (255.0 * s.std[c])
        b[c] = -s.mean[c] / s.std[c]
    g.initializer.extend([numpy_helper.from_array(w, w_name), numpy_helper.from_array(b, b_name)])
    g.node.insert(0, helper.make_node("Conv", [inp.name, w_name, b_name], [normalised], name="rockedge_normalise",
                                      kernel_shape=[1, 1]))
    if inp.name != DS_INPUT:
        _rename_inputs(g, inp.name, DS_INPUT)
        inp.name = DS_INPUT
    g.node.append(helper.make_node("Softmax", [out.name], [DS_OUTPUT], name="rockedge_probabilities", axis=1))
    batch: int | str = "batch" if src.batch_dynamic else int(src.input.shape[0] or 1)
    del inp.type.tensor_type.shape.dim[:]
    for d in (batch, 3, s.height, s.width):
        dim = inp.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d
    g.output.remove(out)
    g.output.append(helper.make_tensor_value_info(DS_OUTPUT, TensorProto.FLOAT, [batch, s.num_classes, s.height, s.width]))
    keep = [p for p in m.metadata_props if p.key not in (METADATA_KEY, DS_KEY)]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    # No rockedge.spec: this graph takes 0..255 input and gives probabilities, which no rockedge input/output
    # format describes, so rockedge's runtime must not take it for the model it came from.
    entry = m.metadata_props.add()
    entry.key, entry.value = DS_KEY, json.dumps({"spec": s.to_dict(), "source": src.path.name, "input": "float32 NCHW "
                                                 "RGB 0..255", "output": "softmax probabilities", "net-scale-factor": 1.0,
                                                 "offsets": [0.0, 0.0, 0.0]}, sort_keys=True)
    m.doc_string = f"rockedge {s.arch} for DeepStream nvinfer (RGB 0..255 in, probabilities out)"
    try:
        m = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:  # noqa: BLE001 - onnx raises many types; all mean "this graph is invalid"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RockedgeError(f"the DeepStream graph made from {src.path.name} fails onnx.checker: {first}") from None
    return m
