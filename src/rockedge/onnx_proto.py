"""Read and rewrite an ONNX file's metadata and I/O signature without the ``onnx`` package.

A Jetson builds engines from ONNX files but has no business installing ``onnx`` (and rockedge's
device code must not import it). What the device needs from the file is small: the ``metadata_props``
(the ModelSpec travels there), the opset, and the graph's inputs and outputs. This module walks the
protobuf wire format of ``ModelProto`` for exactly those fields, skipping everything else (weights
included) without decoding it, and can write a copy whose metadata entries are replaced: every other
field is copied byte for byte, so the graph is untouched.

Field numbers are those of onnx.proto (ModelProto, GraphProto, ValueInfoProto, TypeProto,
TensorShapeProto, StringStringEntryProto, OperatorSetIdProto, TensorProto), stable since ONNX 1.0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rockedge.atomic import write_bytes
from rockedge.errors import RockedgeError
from rockedge.tensors import TensorInfo

# ModelProto
_OPSET_IMPORT, _PRODUCER, _GRAPH, _METADATA = 8, 2, 7, 14
# GraphProto
_NODE, _INITIALIZER, _INPUT, _OUTPUT = 1, 5, 11, 12
# NodeProto
_OP_TYPE = 4
# TensorProto.DataType -> numpy dtype name
ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
              10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


@dataclass
class OnnxInfo:
    """What a device needs to know about an ONNX file."""

    metadata: dict[str, str] = field(default_factory=dict)
    opset: int = 0
    producer: str = ""
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    op_types: set[str] = field(default_factory=set)  # of the main graph's nodes (Q/DQ means explicit INT8)


class _Bad(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Bad("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Bad("varint too long")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview, int, int]]:
    """(field number, wire type, value, start, end) of each top-level field of a message."""
    pos = 0
    n = len(buf)
    while pos < n:
        start = pos
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise _Bad(f"unsupported wire type {wire}")
        if pos > n:
            raise _Bad("truncated field")
        yield num, wire, value, start, pos


def _string(v: int | memoryview) -> str:
    if not isinstance(v, memoryview):
        raise _Bad("expected a string")
    return bytes(v).decode("utf-8", errors="replace")


def _entry(v: int | memoryview) -> tuple[str, str]:
    key = value = ""
    for num, _, x, _, _ in _fields(_msg(v)):
        if num == 1:
            key = _string(x)
        elif num == 2:
            value = _string(x)
    return key, value


def _msg(v: int | memoryview) -> memoryview:
    if not isinstance(v, memoryview):
        raise _Bad("expected a message")
    return v


def _value_info(v: int | memoryview) -> TensorInfo:
    name, elem, dims = "", 0, []
    for num, _, x, _, _ in _fields(_msg(v)):
        if num == 1:
            name = _string(x)
        elif num == 2:  # TypeProto
            for tnum, _, tx, _, _ in _fields(_msg(x)):
                if tnum != 1:  # tensor_type
                    continue
                for knum, _, kx, _, _ in _fields(_msg(tx)):
                    if knum == 1 and isinstance(kx, int):
                        elem = kx
                    elif knum == 2:  # TensorShapeProto
                        for dnum, _, dx, _, _ in _fields(_msg(kx)):
                            if dnum == 1:
                                dims.append(_dim(dx))
    return TensorInfo(name, tuple(dims), ELEM_TYPES.get(elem, f"elem_type_{elem}"))


def _dim(v: int | memoryview) -> int | None:
    for num, _, x, _, _ in _fields(_msg(v)):
        if num == 1 and isinstance(x, int):
            return x if x > 0 else None
    return None


def _tensor_name(v: int | memoryview) -> str:
    for num, _, x, _, _ in _fields(_msg(v)):
        if num == 8:
            return _string(x)
    return ""


def _load(path: str | os.PathLike[str]) -> memoryview:
    try:
        return memoryview(Path(path).read_bytes())
    except OSError as e:
        raise RockedgeError(f"cannot read ONNX file {path}: {e.strerror or e}") from None


def read_info(path: str | os.PathLike[str]) -> OnnxInfo:
    """Metadata, opset, producer and graph inputs/outputs of an ONNX file (initializers are not inputs)."""
    buf = _load(path)
    info = OnnxInfo()
    try:
        graph: memoryview | None = None
        for num, _, v, _, _ in _fields(buf):
            if num == _METADATA:
                k, val = _entry(v)
                info.metadata[k] = val
            elif num == _OPSET_IMPORT:
                domain, version = "", 0
                for onum, _, ov, _, _ in _fields(_msg(v)):
                    if onum == 1:
                        domain = _string(ov)
                    elif onum == 2 and isinstance(ov, int):
                        version = ov
                if domain in ("", "ai.onnx"):
                    info.opset = version
            elif num == _PRODUCER:
                info.producer = _string(v)
            elif num == _GRAPH:
                graph = _msg(v)
        if graph is None:
            raise _Bad("no graph")
        initializers: set[str] = set()
        inputs, outputs = [], []
        for num, _, v, _, _ in _fields(graph):
            if num == _NODE:
                for nnum, _, nv, _, _ in _fields(_msg(v)):
                    if nnum == _OP_TYPE:
                        info.op_types.add(_string(nv))
            elif num == _INITIALIZER:
                initializers.add(_tensor_name(v))
            elif num == _INPUT:
                inputs.append(_value_info(v))
            elif num == _OUTPUT:
                outputs.append(_value_info(v))
        info.inputs = [t for t in inputs if t.name not in initializers]
        info.outputs = outputs
    except _Bad as e:
        raise RockedgeError(f"{path} is not a readable ONNX model ({e})") from None
    return info


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    return read_info(path).metadata


def with_metadata(path: str | os.PathLike[str], updates: Mapping[str, str]) -> bytes:
    """The file's bytes with metadata entries ``updates`` set (same keys replaced, others kept in place)."""
    buf = _load(path)
    parts: list[memoryview | bytes] = []
    try:
        for num, _, v, start, end in _fields(buf):
            if num == _METADATA and _entry(v)[0] in updates:
                continue
            parts.append(buf[start:end])
    except _Bad as e:
        raise RockedgeError(f"{path} is not a readable ONNX model ({e})") from None
    for key, value in updates.items():
        entry = _len_field(1, key.encode()) + _len_field(2, value.encode())
        parts.append(_len_field(_METADATA, entry))
    return b"".join(parts)


def write_metadata(src: str | os.PathLike[str], dst: str | os.PathLike[str], updates: Mapping[str, str]) -> Path:
    """Write a copy of ``src`` to ``dst`` (atomically; may be ``src`` itself) with ``updates`` in its metadata."""
    return write_bytes(dst, with_metadata(src, updates))


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(num: int, payload: bytes) -> bytes:
    return _encode_varint((num << 3) | 2) + _encode_varint(len(payload)) + payload


# -- writing: the few tiny graphs rockedge builds itself (the benchmark's compute ceiling) -------------------------


def _varint_field(num: int, value: int) -> bytes:
    return _encode_varint(num << 3) + _encode_varint(value)


def _str_field(num: int, text: str) -> bytes:
    return _len_field(num, text.encode())


def _value_info_bytes(name: str, elem_type: int, dims: list[int]) -> bytes:
    shape = b"".join(_len_field(1, _varint_field(1, d)) for d in dims)
    tensor = _varint_field(1, elem_type) + _len_field(2, shape)
    return _str_field(1, name) + _len_field(2, _len_field(1, tensor))


def _node(op: str, inputs: list[str], outputs: list[str], attrs: bytes = b"") -> bytes:
    body = b"".join(_str_field(1, i) for i in inputs) + b"".join(_str_field(2, o) for o in outputs)
    return body + _str_field(4, op) + attrs


def _scalar(name: str, elem_type: int, raw: bytes) -> bytes:
    # TensorProto: dims (1, none: a scalar), data_type (2), name (8), raw_data (9)
    return _varint_field(2, elem_type) + _str_field(8, name) + _len_field(9, raw)


def matmul_model(n: int, kind: str = "fp32") -> bytes:
    """An ONNX model computing C = A @ B for n x n float inputs: the arithmetic a convolution network is made of.

    ``kind``: ``fp32``; ``fp16`` (inputs cast to float16); ``int8`` (each input through a symmetric
    QuantizeLinear/DequantizeLinear pair, the TensorRT layout of rockedge's INT8 models); ``int8-cpu`` (uint8 A,
    int8 B and a quantized output, the layout ONNX Runtime's CPU provider fuses into an int8 QLinearMatMul)."""
    import struct

    nodes: list[bytes] = []
    inits: list[bytes] = []
    a, b = "A", "B"
    if kind == "fp16":
        cast = _len_field(5, _str_field(1, "to") + _varint_field(20, 2) + _varint_field(3, 10))  # AttributeProto INT to=FLOAT16
        nodes += [_node("Cast", ["A"], ["A16"], cast), _node("Cast", ["B"], ["B16"], cast)]
        a, b = "A16", "B16"
    elif kind == "int8":
        inits += [_scalar("s", 1, struct.pack("<f", 1 / 127)), _scalar("z", 3, b"\x00")]
        for x in ("A", "B"):
            nodes += [_node("QuantizeLinear", [x, "s", "z"], [x + "q"]), _node("DequantizeLinear", [x + "q", "s", "z"], [x + "d"])]
        a, b = "Ad", "Bd"
    elif kind == "int8-cpu":
        inits += [_scalar("sa", 1, struct.pack("<f", 1 / 32)), _scalar("za", 2, b"\x80"),
                  _scalar("sb", 1, struct.pack("<f", 1 / 32)), _scalar("zb", 3, b"\x00"),
                  _scalar("sc", 1, struct.pack("<f", 1.0)), _scalar("zc", 2, b"\x80")]
        for x, s, z in (("A", "sa", "za"), ("B", "sb", "zb")):
            nodes += [_node("QuantizeLinear", [x, s, z], [x + "q"]), _node("DequantizeLinear", [x + "q", s, z], [x + "d"])]
        nodes += [_node("MatMul", ["Ad", "Bd"], ["Cf"]), _node("QuantizeLinear", ["Cf", "sc", "zc"], ["Cq"]),
                  _node("DequantizeLinear", ["Cq", "sc", "zc"], ["C"])]
    elif kind != "fp32":
        raise ValueError(f"unknown matmul kind {kind!r}")
    if kind != "int8-cpu":
        nodes.append(_node("MatMul", [a, b], ["C"]))
    out_type = 10 if kind == "fp16" else 1
    graph = (b"".join(_len_field(1, nd) for nd in nodes) + _str_field(2, "ceiling")
             + b"".join(_len_field(5, t) for t in inits)
             + _len_field(11, _value_info_bytes("A", 1, [n, n])) + _len_field(11, _value_info_bytes("B", 1, [n, n]))
             + _len_field(12, _value_info_bytes("C", out_type, [n, n])))
    opset = _str_field(1, "") + _varint_field(2, 17)
    return _varint_field(1, 8) + _len_field(8, opset) + _str_field(2, "rockedge") + _len_field(7, graph)
