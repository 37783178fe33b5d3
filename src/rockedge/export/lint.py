"""TensorRT lint: find graph patterns that TensorRT's ONNX parser rejects or treats differently.

The rules follow onnx-tensorrt's operator support notes (docs/operators.md, TensorRT 8.5 to 10.x): the op
support matrix, Resize's supported modes, INT64/DOUBLE handling, UINT8 only at the network boundary, weights
that must be initializers, and dynamic shapes that need an optimisation profile. Running it needs only
``onnx``; no TensorRT. Findings are advice about a parser we cannot run here, so severities mean:

* ``error``: the parser (any version we target) refuses the graph;
* ``warning``: refused or changed by some TensorRT versions (e.g. JetPack 5's TensorRT 8.5), or slow;
* ``info``: worth knowing when building the engine (profiles, implicit casts).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from rockedge.deps import require
from rockedge.errors import RockedgeError

SEVERITIES = ("error", "warning", "info")

# Marked "N" in onnx-tensorrt's support matrix: the parser has no importer for them.
UNSUPPORTED_OPS = frozenset(
    """BitShift Compress ConcatFromSequence ConvInteger Det DynamicQuantizeLinear Hardmax IsInf MatMulInteger
    MaxRoiPool MaxUnpool MeanVarianceNormalization Mod Multinomial NegativeLogLikelihoodLoss NonZero OneHot
    QLinearConv QLinearMatMul RandomNormal RandomNormalLike RoiAlign SequenceAt SequenceConstruct SequenceEmpty
    SequenceErase SequenceInsert SequenceLength Shrink SoftmaxCrossEntropyLoss SplitToSequence StringNormalizer
    TfIdfVectorizer Unique""".split()
)
# Supported by TensorRT 10 but not by the TensorRT 8.x that older JetPacks ship.
NEWER_TRT_OPS = {
    # Opset-14 op used by MobileNetV3: absent from the matrix of TensorRT <= 8.4 (JetPack 4.x, 5.0).
    "HardSwish": "8.5",
    "LayerNormalization": "8.6",
    "GroupNormalization": "10.0",
    "Gelu": "10.0",
    "NonZero": "8.6",
    "OneHot": "10.0",
}
RESIZE_COORD_MODES = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners")
RESIZE_MODES = ("nearest", "linear", "cubic")
RESIZE_NEAREST_MODES = ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil")
# Inputs that TensorRT needs as initializers (weights), not computed tensors.
MUST_BE_CONSTANT = {"Conv": (1,), "ConvTranspose": (1,), "TopK": (1,), "CumSum": (1,), "Slice": (3,), "Squeeze": (1,), "Unsqueeze": (1,)}


@dataclass(frozen=True)
class Finding:
    """One lint result: how bad, where, what."""

    severity: str
    rule: str
    node: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        where = f" [{self.node}]" if self.node else ""
        return f"{self.severity:<7} {self.rule}{where}: {self.message}"


def format_findings(findings: list[Finding]) -> str:
    """A summary line and one line per finding."""
    if not findings:
        return "TensorRT lint: no findings"
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    lines = ["TensorRT lint: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)]
    return "\n".join(lines + [f"  {f}" for f in findings])


def lint_file(path: str | os.PathLike[str]) -> list[Finding]:
    """Lint an ONNX file on disk."""
    onnx = require("onnx", "linting")
    if not os.path.isfile(path):
        raise RockedgeError(f"model not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise RockedgeError(f"cannot read ONNX file {path}: {type(e).__name__}") from None
    return lint_model(model)


@dataclass
class _Graph:
    """What the rules need to know about a graph, computed once."""

    model: Any
    constants: set[str]  # tensors whose value is known when the engine is built
    types: dict[str, int]  # tensor name -> ONNX elem type, after shape inference
    all_static: bool  # every graph input has fixed dims
    findings: list[Finding]

    def add(self, sev: str, rule: str, node: str, msg: str) -> None:
        self.findings.append(Finding(sev, rule, node, msg))


def lint_model(model: Any) -> list[Finding]:
    """Lint an ``onnx.ModelProto``; findings sorted errors first."""
    import onnx

    g = model.graph
    constants = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    all_static = not any(not d.HasField("dim_value") for vi in g.input if vi.name not in constants
                         for d in vi.type.tensor_type.shape.dim)
    ctx = _Graph(model, constants, types, all_static, [])
    for rule in (_lint_opset, _lint_inputs, _lint_outputs, _lint_weights, _lint_nodes):
        rule(ctx)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(ctx.findings, key=lambda f: order[f.severity])


def _lint_opset(ctx: _Graph) -> None:
    opset = next((o.version for o in ctx.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset > 20:
        ctx.add("error", "opset", "", f"opset {opset}: TensorRT 10 parses opset 9..20; export with --opset 17")
    elif opset > 17:
        ctx.add("warning", "opset", "", f"opset {opset}: TensorRT 8.5 (JetPack 5) parses up to opset 17")


def _lint_inputs(ctx: _Graph) -> None:
    from onnx import TensorProto

    g = ctx.model.graph
    for vi in g.input:
        if vi.name in ctx.constants:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in tt.shape.dim]
        if any(not d.HasField("dim_value") for d in tt.shape.dim):
            ctx.add("info", "dynamic-shape", vi.name,
                    f"input shape {dims} has symbolic dims: building an engine needs an optimisation profile "
                    "(min/opt/max shapes); fixed shapes give TensorRT the most freedom")
        if tt.elem_type == TensorProto.UINT8:
            consumers = [n for n in g.node if vi.name in n.input]
            if any(n.op_type != "Cast" and n.op_type != "Transpose" for n in consumers):
                ctx.add("error", "uint8-input", vi.name,
                        "UINT8 input feeds compute ops; TensorRT supports UINT8 only at the network boundary, cast it first")
            else:
                ctx.add("info", "uint8-input", vi.name,
                        "UINT8 input (raw frames): needs TensorRT >= 8.5, which casts it to float on the GPU")
        if tt.elem_type in (TensorProto.INT64, TensorProto.DOUBLE):
            ctx.add("warning", "input-dtype", vi.name,
                    f"{TensorProto.DataType.Name(tt.elem_type)} input: TensorRT < 10 casts it down with clamping")


def _lint_outputs(ctx: _Graph) -> None:
    from onnx import TensorProto

    for vi in ctx.model.graph.output:
        et = vi.type.tensor_type.elem_type
        name = TensorProto.DataType.Name(et) if et else "?"
        if et == TensorProto.INT64:
            ctx.add("error", "int64-output", vi.name,
                    "INT64 output: TensorRT < 10 (JetPack 5 and older) cannot produce INT64 network outputs; cast to INT32")
        elif et == TensorProto.DOUBLE:
            ctx.add("error", "double-output", vi.name, "DOUBLE output: TensorRT computes in float at most; cast to FLOAT")
        elif et == TensorProto.UINT8:
            ctx.add("warning", "uint8-output", vi.name,
                    "UINT8 output: TensorRT allows UINT8 only at the network boundary and only from version 8.5/9 on")
        elif et not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT32, TensorProto.BOOL, TensorProto.INT8):
            ctx.add("warning", "output-dtype", vi.name, f"{name} output is not a TensorRT-native type")


def _lint_weights(ctx: _Graph) -> None:
    from onnx import TensorProto

    g = ctx.model.graph
    int64_weights = [i.name for i in g.initializer if i.data_type == TensorProto.INT64]
    int64_weights += [
        n.output[0] for n in g.node if n.op_type == "Constant"
        and any(a.name == "value" and a.t.data_type == TensorProto.INT64 for a in n.attribute)
    ]
    if int64_weights:
        ctx.add("info", "int64-weights", "",
                f"{len(int64_weights)} INT64 constants (e.g. {', '.join(int64_weights[:3])}): TensorRT < 10 casts INT64 "
                "weights to INT32 (clamped; a warning at parse time, harmless for shapes/axes)")
    doubles = [i.name for i in g.initializer if i.data_type == TensorProto.DOUBLE]
    if doubles:
        ctx.add("warning", "double-weights", "", f"{len(doubles)} DOUBLE initializers are cast down to FLOAT by TensorRT")


def _lint_nodes(ctx: _Graph) -> None:
    import onnx
    from onnx import TensorProto

    shape_ops: Counter[str] = Counter()
    newer: dict[str, list[str]] = {}  # one finding per op type, not per node: 20 identical lines help nobody
    for n in ctx.model.graph.node:
        name = n.name or (n.output[0] if n.output else n.op_type)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        if n.domain not in ("", "ai.onnx"):
            ctx.add("error", "custom-op", name, f"{n.domain}::{n.op_type} is not a standard op; TensorRT needs a plugin")
            continue
        if n.op_type in UNSUPPORTED_OPS and n.op_type not in NEWER_TRT_OPS:
            ctx.add("error", "unsupported-op", name, f"{n.op_type} has no TensorRT importer")
        elif n.op_type in NEWER_TRT_OPS:
            newer.setdefault(n.op_type, []).append(name)
        if n.op_type in ("Shape", "Size"):
            shape_ops[n.op_type] += 1
        for idx in MUST_BE_CONSTANT.get(n.op_type, ()):
            if len(n.input) > idx and n.input[idx] and n.input[idx] not in ctx.constants:
                ctx.add("error" if n.op_type in ("Conv", "ConvTranspose") else "warning", "non-constant-weight", name,
                        f"{n.op_type} input {idx} ({n.input[idx]}) is computed, TensorRT needs an initializer")
        if n.op_type in ("ArgMax", "ArgMin"):
            if attrs.get("select_last_index", 0):
                ctx.add("error", "argmax-last-index", name,
                        f"{n.op_type} select_last_index=1: TensorRT implements it with TopK, which returns the first maximum")
            src_t = ctx.types.get(n.input[0])
            if src_t not in (None, 0, TensorProto.FLOAT, TensorProto.FLOAT16):
                ctx.add("warning", "argmax-dtype", name,
                        f"{n.op_type} on {TensorProto.DataType.Name(src_t)}: TensorRT takes FP32/FP16")
        if n.op_type in ("Resize", "Upsample"):
            _lint_resize(n, name, attrs, ctx.constants, not ctx.all_static, ctx.add)
        if n.op_type == "Cast":
            to = attrs.get("to")
            if isinstance(to, int) and to in (TensorProto.DOUBLE, TensorProto.STRING, TensorProto.COMPLEX64,
                                              TensorProto.COMPLEX128):
                ctx.add("error", "cast-dtype", name, f"Cast to {TensorProto.DataType.Name(to)}: not a TensorRT type")
        if n.op_type in ("Loop", "Scan", "If"):
            ctx.add("warning", "control-flow", name, f"{n.op_type}: data-dependent control flow is slow or unsupported in TensorRT")
        if n.op_type in ("MaxPool",) and len(n.output) > 1 and n.output[1]:
            ctx.add("error", "maxpool-indices", name, "MaxPool Indices output is unsupported by TensorRT")
        if n.op_type in ("Conv", "ConvTranspose", "AveragePool", "MaxPool"):
            ks = attrs.get("kernel_shape")
            if ks is not None and len(ks) not in (2, 3):
                ctx.add("error", "conv-rank", name, f"{n.op_type} with {len(ks)}-D kernel: TensorRT supports 2D/3D only")
    for op, names in newer.items():
        ctx.add("warning", "newer-op", names[0],
                f"{len(names)} {op} node(s): {op} needs TensorRT >= {NEWER_TRT_OPS[op]} (check your JetPack's TensorRT)")
    if ctx.all_static and shape_ops:
        ctx.add("warning", "shape-subgraph", "",
                f"static-shape graph still computes shapes at run time ({dict(shape_ops)}); simplify with onnxsim")


def _lint_resize(n: Any, name: str, attrs: dict[str, Any], constants: set[str], dynamic: bool, add: Any) -> None:
    mode = attrs.get("mode", "nearest")
    if mode not in RESIZE_MODES:
        add("error", "resize-mode", name, f"{n.op_type} mode={mode!r}: TensorRT supports nearest/linear/cubic")
    elif mode == "cubic":
        add("warning", "resize-mode", name, "cubic Resize needs TensorRT >= 8.6 and differs numerically; prefer linear")
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    if n.op_type == "Resize" and coord not in RESIZE_COORD_MODES:
        add("error", "resize-coord", name,
            f"coordinate_transformation_mode={coord!r}: TensorRT supports {', '.join(RESIZE_COORD_MODES)}")
    if mode == "nearest" and attrs.get("nearest_mode", "round_prefer_floor") not in RESIZE_NEAREST_MODES:
        add("error", "resize-nearest", name, f"nearest_mode={attrs['nearest_mode']!r} unsupported")
    if attrs.get("exclude_outside", 0):
        add("error", "resize-exclude-outside", name, "exclude_outside=1 is unsupported by TensorRT")
    if attrs.get("antialias", 0):
        add("error", "resize-antialias", name, "antialias=1 (opset 18) is unsupported by TensorRT")
    if attrs.get("axes") is not None:
        add("warning", "resize-axes", name, "Resize 'axes' (opset 18) is unsupported by TensorRT < 10")
    if n.op_type == "Resize" and len(n.input) > 1 and n.input[1] and n.input[1] not in constants:
        add("warning", "resize-roi", name, "Resize roi is computed; TensorRT ignores roi (only tf_crop_and_resize uses it)")
    # Scales or sizes: input 2 or 3 (Resize), input 1 (Upsample).
    idx = (1,) if n.op_type == "Upsample" else (2, 3)
    given = [n.input[i] for i in idx if len(n.input) > i and n.input[i]]
    for t in given:
        if t not in constants:
            add("info" if dynamic else "warning", "resize-dynamic-scale", name,
                f"{n.op_type} target {t} is computed from shapes at run time: fine for --dynamic (needs a profile), "
                "but in a static graph it should be a constant (run onnxsim)")
