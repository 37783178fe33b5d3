"""How much arithmetic a model does per image, counted once at export and stamped into its metadata.

``rockedge benchmark`` divides it by the measured latency to report the compute rate a model achieves, next
to the machine's ceiling measured in the same run; the device reads the number from the metadata, without
the onnx package. Only multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm count (as 2 FLOPs each):
in these networks they are >95 % of the arithmetic, and it is the work a matrix-multiply ceiling compares to.
"""

from __future__ import annotations

from typing import Any

FLOPS_KEY = "rockedge.flops"  # FLOPs for one image at the model's own input size


def count_flops(model: Any) -> int:
    """FLOPs (2 x MACs) for one image, from an ``onnx.ModelProto`` with inferable shapes (0 when unknown)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        return 0
    g = inferred.graph
    shapes: dict[str, list[int]] = {}
    for vi in [*g.value_info, *g.input, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
    # Q/DQ pairs keep their input's shape: follow them back to the float weight.
    dq_src = {n.output[0]: n.input[0] for n in g.node if n.op_type in ("DequantizeLinear", "QuantizeLinear")}

    def shape(name: str) -> list[int]:
        seen = 0
        while name not in shapes and name in dq_src and seen < 4:
            name, seen = dq_src[name], seen + 1
        return shapes.get(name, [])

    macs = 0
    for n in g.node:
        out = shape(n.output[0]) if n.output else []
        if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1:
            w = shape(n.input[1])
            if len(w) == 4 and len(out) == 4:
                batch = out[0] or 1
                if n.op_type == "Conv":  # W: (Cout, Cin/groups, kh, kw), one MAC per weight per output pixel
                    macs += w[0] * w[1] * w[2] * w[3] * out[2] * out[3] * batch
                else:  # W: (Cin, Cout/groups, kh, kw), one MAC per weight per input pixel
                    inp = shape(n.input[0])
                    if len(inp) == 4:
                        macs += w[0] * w[1] * w[2] * w[3] * inp[2] * inp[3] * batch
        elif n.op_type in ("MatMul", "Gemm") and len(n.input) > 1:
            a, b = shape(n.input[0]), shape(n.input[1])
            if len(a) >= 2 and len(b) >= 2:
                rows = 1
                for d in a[:-1]:
                    rows *= d or 1
                macs += rows * a[-1] * b[-1]
    batch = next((d for d in shape(g.input[0].name)[:1] if d), 1) if g.input else 1
    return 2 * macs // max(1, batch)
