"""``rockedge export MODEL --format deepstream --out DIR`` writes ``DIR/``::

    <name>.onnx                     the model reshaped for nvinfer (below)
    config_infer_primary_<name>.txt the nvinfer config (network-type=2: semantic segmentation)
    labels.txt, rockedge_spec.json

DeepStream's default segmentation parser reads the *first* output as float C x H x W and marks a pixel -1 unless
some class score exceeds ``segmentation-threshold`` (>= 0); its preprocessing is ``y = net-scale-factor * (x -
offsets[c])`` with a single scalar scale, which cannot express per-channel std. So the DeepStream model is the
rockedge ONNX with normalisation moved into the graph (input: float NCHW RGB in 0..255, ``net-scale-factor=1``,
no offsets, ``model-color-format=0``: one 1x1 Conv, exact) and a Softmax appended (output ``probs``: probabilities
in (0, 1], so a threshold of 0 keeps every pixel's argmax). This is done here, with the ``onnx`` package, on any
rockedge ONNX with float input and logits output (FP32, FP16 or Q/DQ INT8), and checked in ONNX Runtime against
the source model on generated frames preprocessed the way nvinfer does (argmax agreement >= 99.9 %).
"""

from __future__ import annotations

from pathlib import Path

from rockedge.atomic import staging_dir
from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.runtime.modelfile import cpu_layout_refusal
from rockedge.serving.graph import _onnx, deepstream_model
from rockedge.serving.model import (
    DS_INPUT,
    DS_OUTPUT,
    LABELS_FILE,
    Source,
    _check_replaceable,
    _write_client_files,
    model_name,
)
from rockedge.serving.nvinfer_sim import check_deepstream
from rockedge.steps import Step, failed_path

DS_NETWORK_MODE = {Precision.FP32: 0, Precision.INT8: 1, Precision.FP16: 2}  # nvinfer network-mode

DS_MIN_AGREEMENT = 0.999

DS_CHECK_FRAMES = 4

def nvinfer_config(src: Source, name: str, onnx_file: str, *, batch: int) -> dict[str, str]:
    """The ``[property]`` keys of the nvinfer config, in order (values as nvinfer reads them)."""
    s = src.spec
    mode = DS_NETWORK_MODE[src.precision]
    return {
        "gpu-id": "0",
        "gie-unique-id": "1",
        "process-mode": "1",  # primary: the whole frame
        "interval": "0",
        # Normalisation lives in the graph: nvinfer hands over RGB planes in 0..255 unchanged.
        "net-scale-factor": "1.0",
        "offsets": "0.0;0.0;0.0",
        "model-color-format": "0",  # RGB
        "onnx-file": onnx_file,
        # The name nvinfer gives the engine it builds from onnx-file (and reuses from then on).
        "model-engine-file": f"{onnx_file}_b{batch}_gpu0_{('fp32', 'int8', 'fp16')[mode]}.engine",
        "labelfile-path": LABELS_FILE,
        "infer-dims": f"3;{s.height};{s.width}",
        "batch-size": str(batch),
        "network-mode": str(mode),  # 0 FP32, 1 INT8, 2 FP16
        "network-type": "2",  # semantic segmentation
        "num-detected-classes": str(s.num_classes),
        "output-blob-names": DS_OUTPUT,
        "segmentation-threshold": "0.0",
        "segmentation-output-order": "0",  # NCHW
        "maintain-aspect-ratio": "1" if s.resize == "letterbox" else "0",
        "symmetric-padding": "1" if s.resize == "letterbox" else "0",
        "scaling-filter": "1",  # bilinear, as rockedge resizes
        "output-tensor-meta": "0",
    }

def write_deepstream(src: Source, out: Path, *, max_batch: int, n: int = DS_CHECK_FRAMES, seed: int = 0) -> Step:
    if src.kind == "plan":
        raise RockedgeError(
            f"DeepStream needs the model reshaped for nvinfer (normalisation in the graph, probabilities out), which "
            f"{src.path.name}, a rockedge engine, is not; export the ONNX it was built from with --format deepstream "
            f"(nvinfer builds and caches its own engine from it)")
    if src.int8_target == "cpu":
        raise RockedgeError(cpu_layout_refusal(src.path.name, "DeepStream's TensorRT"))
    s = src.spec
    if s.input_format != "float" or s.output_format != "logits":
        raise RockedgeError(
            f"{src.path.name} takes {s.input_format} input and gives {s.output_format} output; DeepStream's "
            f"segmentation parser needs float scores, and nvinfer feeds float RGB planes: export it with "
            f"--input-format float --output-format logits (the defaults)")
    if src.outputs[0].dtype != "float32" or src.input.dtype != "float32":
        raise RockedgeError(f"{src.path.name}'s input/output are {src.input.dtype}/{src.outputs[0].dtype}; nvinfer "
                            "needs float32 at both ends")
    name = model_name(src.path)
    notes: list[str] = []
    if src.batch_dynamic:
        batch = max(1, max_batch)
    else:
        batch = int(src.input.shape[0] or 1)
        if max_batch > batch:
            notes.append(f"note: {src.path.name} has a fixed batch of {batch}, so nvinfer's batch-size is {batch}; "
                         f"re-export with --dynamic to infer {max_batch} cameras per batch")
    if src.precision is Precision.INT8:
        notes.append("note: nvinfer builds network-mode=1 only with an int8-calib-file and otherwise falls back to "
                     "FP16; for this Q/DQ model build the engine yourself (command in the config) at "
                     "model-engine-file")
    if s.resize == "letterbox":
        notes.append("note: nvinfer pads letterboxed frames with black, rockedge with grey (114): border pixels may "
                     "differ")
    onnx_file = f"{name}.onnx"
    props = nvinfer_config(src, name, onnx_file, batch=batch)
    config = _ini(src, props)
    model = deepstream_model(src)
    check = check_deepstream(src, model.SerializeToString(), props, n=n, seed=seed)
    passed = check.get("agreement", 1.0) >= DS_MIN_AGREEMENT
    target = out if passed else failed_path(out, folder=True)
    _check_replaceable(target)
    served = {"format": "deepstream", "model_name": name, "onnx": onnx_file, "config": f"config_infer_primary_{name}.txt",
              "batch_size": batch, "precision": src.precision.value, "source": str(src.path),
              "input": {"name": DS_INPUT, "dtype": "float32", "shape": [-1 if src.batch_dynamic else batch, 3, s.height,
                                                                          s.width], "range": "0..255 RGB"},
              "outputs": [{"name": DS_OUTPUT, "dtype": "float32", "shape": [-1 if src.batch_dynamic else batch,
                                                                          s.num_classes, s.height, s.width],
                           "meaning": "softmax probabilities"}],
              "check": check}
    onnx = _onnx()
    with staging_dir(target, overwrite=True) as tmp:
        onnx.save(model, str(tmp / onnx_file))
        (tmp / served["config"]).write_text(config)
        _write_client_files(tmp, s, served)
    if "agreement" in check:
        line = (f"  checked in ONNX Runtime on {check['frames']} {check['frames_source']}, preprocessed as nvinfer does: "
                f"argmax agreement {check['agreement']:.4%} with {src.path.name} (budget >= {DS_MIN_AGREEMENT:.1%}), "
                f"{check['unassigned']:.2%} pixels class -1")
    else:
        line = f"  not checked: {check['skipped']}"
    text = "\n".join([*notes, f"deepstream -> {target}",
                      f"  {onnx_file} (float RGB 0..255 in, probabilities out), {served['config']}, {LABELS_FILE}",
                      line, f"  run: ... ! nvinfer config-file-path={target / served['config']} ! ... (docs/serving.md)"])
    return Step("deepstream", target, passed, None, text, {**served, "nvinfer": props, "notes": notes})

def _ini(src: Source, props: dict[str, str]) -> str:
    s = src.spec
    engine = props["model-engine-file"]
    b = props["batch-size"]
    header = [
        (f"# nvinfer config written by rockedge for {src.path.name}: {s.arch}, {s.num_classes} classes "
         f"({', '.join(s.classes)}), {src.precision.value}."),
        f"# {props['onnx-file']} takes float32 NCHW RGB in 0..255 (normalisation with mean {list(s.mean)} and std",
        (f"# {list(s.std)} is inside the graph) and outputs '{DS_OUTPUT}': softmax probabilities, float32 (N, "
         f"{s.num_classes}, {s.height}, {s.width})."),
        "# segmentation-threshold: a pixel whose best probability is not above it gets class -1 (0 keeps all).",
        "# nvinfer builds the engine on first start and saves it as model-engine-file; to build it beforehand:",
        f"#   trtexec --onnx={props['onnx-file']} --saveEngine={engine}"
        + (f" --minShapes={DS_INPUT}:1x3x{s.height}x{s.width} --optShapes={DS_INPUT}:{b}x3x{s.height}x{s.width} "
           f"--maxShapes={DS_INPUT}:{b}x3x{s.height}x{s.width}" if src.batch_dynamic else "")
        + {"0": "", "1": " --int8 --fp16", "2": " --fp16"}[props["network-mode"]],
        "[property]",
    ]
    return "\n".join(header + [f"{k}={v}" for k, v in props.items()]) + "\n"
