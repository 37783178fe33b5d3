"""Explicit INT8 as a Q/DQ ONNX made with ONNX Runtime's static quantization (a workstation step), in one of two
layouts (``--target``): TensorRT's (below) or ONNX Runtime's CPU provider's (:data:`CPU_OPTIONS`).

The settings are the ones TensorRT's parser and fusions want (NVIDIA's explicit-quantization guide,
ModelOpt's ``trt_guided_options``, ONNX Runtime's ``qdq_quantizer`` notes): int8 activations with zero point
0 (TensorRT accepts symmetric quantization only), per-channel symmetric int8 weights on the output-channel
axis, a dedicated Q/DQ pair per consumer (TensorRT cannot share one), no quantized Conv outputs and no
quantized bias (TensorRT 8.x refuses a DequantizeLinear fed by an int32 initializer), and Q/DQ on the inputs
of Add so a residual Conv + Add can run int8 in and out. Only Conv and Add are quantized: Q/DQ in MobileNetV3's
squeeze-excitation ops (Mul, HardSigmoid) cost accuracy, and Resize/Concat stay float. The opset stays the
FP32 model's (17), which TensorRT 8.5/8.6 on JetPack 5/6.0 parse; ModelOpt's quantizer forces >= 19.

Calibration runs once (:func:`calibrate`, in chunks so histogram methods stay within memory), the full Q/DQ
model is made once (:func:`quantize`), and :class:`QdqGraph` switches individual layers back to FP32 by
re-wiring their inputs to the float tensors: the accuracy budget tries many variants without re-quantizing.
The model also runs on ONNX Runtime's CPU provider, which is how its accuracy is measured here (its speed
there says nothing about TensorRT: ORT cannot fuse these Q/DQ graphs into int8 kernels on the CPU).

The ``cpu`` target is what ONNX Runtime's CPU provider turns into int8 kernels (QLinearConv, QLinearAdd, ...):
the graph first goes through ORT's quantization pre-processing (shape inference and its graph fusions, so
HardSwish/Conv+Add patterns quantize as ORT fuses them), then QDQ around every op ORT can quantize, inputs and
outputs, uint8 activations with a zero point, per-channel int8 weights stored as int8 and a quantized int32 bias:
``quantize_static``'s defaults. TensorRT cannot parse it (asymmetric activations), so it is for the CPU only.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rockedge.calibration.reader import CalibrationSet
from rockedge.deps import require
from rockedge.errors import RockedgeError

OP_TYPES = ("Conv", "Add")
TRT_OPTIONS: dict[str, Any] = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QuantizeBias": False,
    "AddQDQPairToWeight": True,
    "DedicatedQDQPair": True,
    "OpTypesToExcludeOutputQuantization": ["Conv", "Add"],
    "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
    "ForceQuantizeNoInputCheck": True,
}
TARGETS = ("tensorrt", "cpu")
# ONNX Runtime's own CPU layout: its quantize_static defaults plus per-channel weights.
CPU_OPTIONS: dict[str, Any] = {"ActivationSymmetric": False, "WeightSymmetric": True}
# minmax: fast, little memory, measured as good as the others here. percentile: clips outliers (99.99 %).
# entropy: TensorRT's method with 2048 bins; its search is pure Python and takes minutes.
METHODS = ("minmax", "percentile", "entropy")
QUANT_SUFFIX = "_quantized"  # ONNX Runtime's name for a weight stored as int8 (quant_utils.TENSOR_NAME_QUANT_SUFFIX)
CHUNK = 4  # frames per collect_data call: histogram calibrators hold every activation of a call in memory


@dataclass
class Calibration:
    """Tensor ranges from one pass over the calibration set."""

    model: Path  # the FP32 ONNX the ranges belong to
    ranges: Any  # onnxruntime.quantization TensorsData
    method: str
    calibration: CalibrationSet
    input_name: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seconds": round(self.seconds, 2), **self.calibration.to_dict()}


def _quant() -> Any:
    return require("onnxruntime.quantization", "INT8 quantization")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer logs every node through the root logger and prints its calibration progress;
    keep the user's log readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def calibrate(model: Path, calibration: CalibrationSet, *, input_name: str, fixed_batch: int | None = None,
              method: str = "minmax") -> Calibration:
    """Run ``model`` over the calibration set once and keep every float tensor's range."""
    q = _quant()
    if method not in METHODS:
        raise RockedgeError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    method_enum, options = {
        "minmax": (q.CalibrationMethod.MinMax, {}),
        "percentile": (q.CalibrationMethod.Percentile, {"percentile": 99.99, "num_bins": 2048}),
        "entropy": (q.CalibrationMethod.Entropy, {"num_bins": 2048, "num_quantized_bins": 128}),
    }[method]

    def reader(feeds: list[dict[str, Any]]) -> Any:
        class Reader(q.CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self.it = iter(feeds)

            def get_next(self) -> dict[str, Any] | None:
                return next(self.it, None)

            def __len__(self) -> int:
                return len(feeds)

        return Reader()

    t0 = time.perf_counter()
    feeds = calibration.feeds(input_name, fixed_batch or 1, fixed_batch=fixed_batch)
    with tempfile.TemporaryDirectory(prefix="rockedge-calib-") as tmp, _quiet():
        # Ranges stay raw here (ActivationSymmetric symmetrizes them when quantizing); never set
        # max_intermediate_outputs: onnxruntime drops what it collected when the buffer fills. Several small
        # collect_data calls merge exactly and bound memory instead.
        cal = q.create_calibrator(str(_linked(model, Path(tmp))), None,
                                  augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                  calibrate_method=method_enum, extra_options=options)
        for chunk in _chunks(feeds, CHUNK):
            cal.collect_data(reader(chunk))
        ranges = cal.compute_data()
        del cal
    return Calibration(model, ranges, method, calibration, input_name, time.perf_counter() - t0)


def _linked(model: Path, folder: Path) -> Path:
    """``model`` as seen from ``folder`` (a link, else a copy): ONNX Runtime's quantization tools write
    ``<model>-inferred.onnx`` beside the model they read, which must not be the user's folder."""
    link = folder / model.name
    try:
        os.symlink(model.resolve(), link)
    except OSError:  # no symlinks here (Windows without the privilege)
        shutil.copyfile(model, link)
    return link


@contextlib.contextmanager
def temporary_writes(target: Path, model: Path) -> Iterator[None]:
    """Say a failed write of a temporary model as one line naming ``target``, the output it was for.

    Quantizing ``model`` writes temporary models into TMPDIR (ONNX Runtime's pre-processing, the calibrator's
    augmented graph, shape inference, the budget's variants). Python's writes fail with an OSError that names no
    file; ONNX's and ONNX Runtime's C++ writes fail silently, and the short model fails later to parse
    (protobuf's DecodeError). Either becomes ``cannot write TARGET: CAUSE``: the file-size limit (ulimit -f) when
    one is set, else the temporary folder's free space."""
    folder = Path(tempfile.gettempdir())
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise RockedgeError(_short_write(target, folder, e.errno)) from e
    except Exception as e:  # noqa: BLE001 - only a model that does not parse, with a cause found, is translated
        if not _unparsable(e):
            raise
        try:
            need = 2 * model.stat().st_size
        except OSError:
            need = 0
        cause = _write_limit(folder, need)
        if cause is None:
            raise
        raise RockedgeError(_short_write(target, folder, cause)) from e


def _unparsable(e: BaseException) -> bool:
    """A model file that does not parse: protobuf's DecodeError (onnx.load), ONNX Runtime's InvalidProtobuf."""
    return type(e).__name__ in ("DecodeError", "InvalidProtobuf") or "Protobuf parsing failed" in str(e)


def _write_limit(folder: Path, need: int) -> int | None:
    """What most likely cut a temporary file short: EFBIG under a file-size limit, ENOSPC when ``folder`` has less
    than ``need`` bytes free; None when neither."""
    try:
        import resource

        if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
            return errno.EFBIG
    except (ImportError, OSError, ValueError):  # no rlimits (Windows)
        pass
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    return errno.ENOSPC if free < need else None


def _short_write(target: Path, folder: Path, err: int) -> str:
    if err == errno.EFBIG:
        return (f"cannot write {target}: a temporary model is larger than this system allows "
                "(ulimit -f?)")
    try:
        free = f"{shutil.disk_usage(folder).free >> 20} MB free"
    except OSError:
        free = "free space unknown"
    cause = "no space left on the device" if err == errno.ENOSPC else os.strerror(err).lower()
    return (f"cannot write {target}: {cause} for the temporary models in {folder} ({free}; TMPDIR picks another "
            "folder)")


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prepare(model: Path, target: str, folder: Path) -> Path:
    """The FP32 graph to calibrate and quantize for ``target``: the model itself for TensorRT, ORT's pre-processed
    graph (shape inference and its optimizer's fusions) for the CPU."""
    if target not in TARGETS:
        raise RockedgeError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    if target == "tensorrt":
        return model
    require("onnxruntime.quantization", "INT8 quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = folder / f"{model.stem}.preprocessed.onnx"
    with _quiet():
        quant_pre_process(str(model), str(out))
    onnx = require("onnx", "INT8 quantization")
    pre, src = onnx.load(str(out)), onnx.load(str(model), load_external_data=False)
    del pre.metadata_props[:]
    pre.metadata_props.extend(src.metadata_props)  # the spec travels: the budget scores this graph as FP32
    onnx.save(pre, str(out))
    return out


def cpu_op_types() -> list[str]:
    """Every op type ONNX Runtime can quantize in QDQ form (``quantize_static``'s default list)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def quantize(calibration: Calibration, target: str = "tensorrt") -> Any:
    """The full Q/DQ ``ModelProto`` of ``calibration.model`` in ``target``'s layout (see the module docstring)."""
    q = _quant()
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    with _quiet(), tempfile.TemporaryDirectory(prefix="rockedge-quant-") as tmp:
        base = load_model_with_shape_infer(_linked(calibration.model, Path(tmp)))
        # The quantizer edits both the model and the ranges in place: give it copies.
        if target == "cpu":
            quantizer = QDQQuantizer(base, True, False, q.QuantType.QInt8, q.QuantType.QUInt8,
                                     copy.deepcopy(calibration.ranges), [], [], cpu_op_types(), dict(CPU_OPTIONS))
        else:
            quantizer = QDQQuantizer(base, True, False, q.QuantType.QInt8, q.QuantType.QInt8,
                                     copy.deepcopy(calibration.ranges), [], [], list(OP_TYPES), dict(TRT_OPTIONS))
        model = quantizer.quantize_model()
    # ONNX Runtime adds metadata of its own (onnx.infer); rockedge stamps its own later.
    kept = [p for p in model.metadata_props if not p.key.startswith("onnx.")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    return model


class QdqGraph:
    """A full Q/DQ model whose layers can be switched back to FP32 one by one.

    Switching a node to FP32 re-wires its dequantized inputs to the float tensors they came from: the activation
    a QuantizeLinear quantized, or the FP32 weight (kept beside its Q/DQ pair in the TensorRT layout; taken from
    ``float_model`` in the CPU layout, where weights are stored as int8). Re-wiring is also what makes an exclusion
    real: ONNX Runtime's ``nodes_to_exclude`` still leaves an excluded node reading a dequantized input when
    another consumer of that tensor is quantized. In the CPU layout a switched node's output stays quantized for
    its consumers: the node itself computes in float.
    """

    def __init__(self, model: Any, float_model: Any = None) -> None:
        self.model = model
        g = model.graph
        _unique_names(g)  # layers are addressed by name; ORT's optimizer leaves some nodes unnamed
        producer = {o: n for n in g.node for o in n.output}
        initializers = {i.name for i in g.initializer}
        floats = {i.name: i for i in float_model.graph.initializer} if float_model is not None else {}
        self.float_weights: dict[str, Any] = {}  # FP32 weights a switched node needs from the float model
        self.inputs: dict[str, list[tuple[int, str]]] = {}  # node -> [(input index, float source)]
        for n in g.node:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                continue
            for i, name in enumerate(n.input):
                dq = producer.get(name)
                if dq is None or dq.op_type != "DequantizeLinear":
                    continue
                src = producer.get(dq.input[0])
                float_source = src.input[0] if src is not None and src.op_type == "QuantizeLinear" else None
                if float_source is None and dq.input[0] in initializers and dq.input[0].endswith(QUANT_SUFFIX):
                    weight = dq.input[0][: -len(QUANT_SUFFIX)]
                    if weight in floats:
                        float_source = weight
                        self.float_weights[weight] = floats[weight]
                if float_source is not None:
                    self.inputs.setdefault(n.name, []).append((i, float_source))

    @property
    def quantized_nodes(self) -> list[str]:
        return list(self.inputs)

    def with_fp32(self, nodes: Iterable[str]) -> Any:
        """A copy where ``nodes`` read float inputs (their Q/DQ pairs become dead and are removed)."""
        import onnx

        keep = set(nodes)
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        present = {i.name for i in m.graph.initializer}
        outputs = {o for n in m.graph.node for o in n.output}
        for n in m.graph.node:
            for i, src in self.inputs.get(n.name, []) if n.name in keep else []:
                if src in self.float_weights:
                    # ORT may name a weight's DequantizeLinear output after the weight itself: the FP32 copy then
                    # needs a name of its own.
                    name = src if src not in outputs else f"{src}_fp32"
                    if name not in present:
                        w = onnx.TensorProto()
                        w.CopyFrom(self.float_weights[src])
                        w.name = name
                        m.graph.initializer.append(w)
                        present.add(name)
                    src = name
                n.input[i] = src
        _prune(m)
        return m

    def only(self, node: str) -> Any:
        """A copy where ``node`` alone is quantized (for isolated sensitivity)."""
        return self.with_fp32(n for n in self.inputs if n != node)


def _unique_names(graph: Any) -> None:
    """Give every node of ``graph`` a name of its own (unnamed or repeated names get the op type and index)."""
    seen: set[str] = set()
    for i, n in enumerate(graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_{i}"
        seen.add(n.name)


def _prune(model: Any) -> None:
    """Drop nodes whose outputs nothing reads (the switched-off Q/DQ pairs), and initializers left unused."""
    g = model.graph
    producer = {o: i for i, n in enumerate(g.node) for o in n.output}
    needed = {o.name for o in g.output}
    live: set[int] = set()
    stack = [producer[o] for o in needed if o in producer]
    while stack:  # the quantizer appends its nodes, so the list is not in topological order: walk the edges
        i = stack.pop()
        if i in live:
            continue
        live.add(i)
        for name in g.node[i].input:
            if name:
                needed.add(name)
                if name in producer:
                    stack.append(producer[name])
    kept = [n for i, n in enumerate(g.node) if i in live]
    del g.node[:]
    g.node.extend(kept)
    unused = [i for i in g.initializer if i.name not in needed]
    for i in unused:
        g.initializer.remove(i)


def toposort(model: Any) -> None:
    """Put ``model``'s nodes in topological order, in place, keeping the original order where it already holds.

    ONNX requires it (``onnx.checker``: "Nodes in a graph must be topologically sorted") and Netron, onnxsim and
    older onnx-tensorrt parsers assume it; ONNX Runtime's quantizer appends its Q/DQ nodes at the end instead.
    """
    import heapq

    g = model.graph
    nodes = list(g.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    waiting = [0] * len(nodes)
    consumers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        deps = {producer[name] for name in n.input if name in producer and producer[name] != i}
        waiting[i] = len(deps)
        for d in deps:
            consumers.setdefault(d, []).append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)  # the smallest original index first: a stable sort
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for c in consumers.get(i, []):
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != len(nodes):
        raise RockedgeError("the quantized graph has a cycle; it cannot be sorted (a rockedge bug: please report it)")
    del g.node[:]
    g.node.extend(nodes[i] for i in order)


def check_graph(model: Any, what: str) -> None:
    """Sort ``model`` and run ``onnx.checker`` on it; one line naming ``what`` when it is not a valid ONNX graph."""
    onnx = require("onnx", "INT8 quantization")
    toposort(model)
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - onnx raises several types; all mean "not a valid graph"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RockedgeError(f"{what} fails onnx.checker: {first}") from None

