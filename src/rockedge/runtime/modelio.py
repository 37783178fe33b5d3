"""How a model file's tensors map to a :class:`ModelSpec`: read from the file, or given on the command line.

rockedge's own artifacts carry their spec (ONNX metadata, the manifest beside a plan, the checkpoint).
A model from elsewhere (plain ``torch.onnx.export``, another tool, a plan built by ``trtexec``) has
none; like jetson-inference's ``--labels``/``--colors``, the user then describes it with
:class:`SpecFlags` (``--classes`` is required, the rest defaults to what torchvision models expect).
Input and output tensors are found by shape; ``--input-name``/``--output-name`` settle ambiguity.
A guess that contradicts the model (class count vs output channels, layout vs input shape) is an error,
never a silent pass. Plain Python: tested on the CPU with the same values the backends read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from rockedge.errors import RockedgeError
from rockedge.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_FORMATS,
    ModelSpec,
    default_palette,
)
from rockedge.tensors import TensorInfo

FOREIGN_ARCH = "external"
DEFAULT_FOREIGN_SIZE = (512, 512)  # for a model with dynamic height/width and no --imgsz
INT_DTYPES = ("int32", "int64", "uint8", "int8")
FLOAT_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class SpecFlags:
    """What the command line says about a model (``--classes``, ``--palette``, ``--mean``, ...).

    For a model without a spec these *are* the spec; for a model with one, ``classes`` must agree
    with it and ``palette`` may recolour it (display only).
    """

    classes: tuple[str, ...] | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_format: str | None = None
    input_name: str | None = None
    output_name: str | None = None
    imgsz: tuple[int, int] | None = None

    def given(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


NO_FLAGS = SpecFlags()


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


def _fmt_shape(shape: Sequence[int | None]) -> str:
    return "x".join("?" if v is None else str(v) for v in shape)


def _listing(ts: Sequence[TensorInfo]) -> str:
    return ", ".join(f"{t.name} {_fmt_shape(t.shape)} {t.dtype}" for t in ts)


def resolve_io(
    where: str,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    embedded: ModelSpec | None,
    flags: SpecFlags = NO_FLAGS,
    *,
    assumed: bool = False,
) -> tuple[ModelSpec, TensorInfo, TensorInfo]:
    """The spec a model runs with and the input/output tensors rockedge uses.

    ``embedded`` is the spec the file carries (None when it has none); ``assumed`` marks an embedded
    spec that was guessed (a plain state_dict), which ``flags.classes`` may then replace.
    """
    inp = _pick_input(where, inputs, flags)
    if embedded is None:
        spec = _spec_from_flags(where, inp, flags)
    else:
        spec = _apply_flags(where, embedded, flags, assumed)
        _check_input(where, inp, spec.input_format)
    out = _pick_output(where, outputs, spec, flags)
    spec = _check_output(where, out, spec, embedded is None)
    in_layout = "NHWC" if spec.input_format == "raw" else "NCHW"
    out_layout = "NCHW" if spec.output_format == "logits" else "NHW"
    return (spec, TensorInfo(inp.name, tuple(inp.shape), inp.dtype, in_layout),
            TensorInfo(out.name, tuple(out.shape), out.dtype, out_layout))


def _named(where: str, kind: str, tensors: Sequence[TensorInfo], name: str | None) -> TensorInfo | None:
    """The tensor called ``name`` (--input-name/--output-name), None when no name was given."""
    if not tensors:
        raise RockedgeError(f"{where} has no {kind}s")
    if name is None:
        return None
    for t in tensors:
        if t.name == name:
            return t
    raise RockedgeError(f"{where} has no {kind} named {name!r}; its {kind}s: {_listing(tensors)}")


def _pick_input(where: str, inputs: Sequence[TensorInfo], flags: SpecFlags) -> TensorInfo:
    named = _named(where, "input", inputs, flags.input_name)
    if named is not None:
        return named
    if len(inputs) == 1:
        return inputs[0]
    images = [t for t in inputs if len(t.shape) == 4 and 3 in (t.shape[1], t.shape[3])]
    if len(images) == 1:
        return images[0]
    raise RockedgeError(f"{where} has several inputs ({_listing(inputs)}); choose one with --input-name")


def _spec_from_flags(where: str, inp: TensorInfo, flags: SpecFlags) -> ModelSpec:
    if not flags.classes:
        raise RockedgeError(
            f"{where} carries no rockedge model spec: describe it with --classes (e.g. --classes background,rock; "
            "optional --palette, --mean, --std, --input-format), or write one once with `rockedge spec write`"
        )
    classes = tuple(flags.classes)
    fmt = flags.input_format or ("raw" if inp.dtype == "uint8" else "float")
    if fmt not in INPUT_FORMATS:
        raise RockedgeError(f"--input-format must be one of {', '.join(INPUT_FORMATS)}, got {fmt!r}")
    _check_input(where, inp, fmt)
    hw_axes = (1, 2) if fmt == "raw" else (2, 3)
    static = len(inp.shape) == 4 and all(inp.shape[a] is not None for a in hw_axes)
    size = tuple(inp.shape[a] for a in hw_axes) if static else (flags.imgsz or DEFAULT_FOREIGN_SIZE)
    return ModelSpec(
        arch=FOREIGN_ARCH,
        classes=classes,
        palette=flags.palette or default_palette(len(classes)),
        mean=flags.mean or IMAGENET_MEAN,
        std=flags.std or IMAGENET_STD,
        input_size=size,  # type: ignore[arg-type]
        input_format=fmt,
        output_format="logits",  # settled from the output tensor by _check_output
    )


def _apply_flags(where: str, spec: ModelSpec, flags: SpecFlags, assumed: bool) -> ModelSpec:
    preprocessing = [n for n in ("mean", "std", "input_format") if getattr(flags, n) is not None]
    if preprocessing:
        raise RockedgeError(
            f"{where} has its own model spec ({spec.input_format} input, mean {list(spec.mean)}, std {list(spec.std)}); "
            f"{', '.join(_opt(n) for n in preprocessing)} describe models without one: drop them"
        )
    if flags.classes is not None and tuple(flags.classes) != spec.classes:
        if assumed:
            if len(flags.classes) != spec.num_classes:
                raise RockedgeError(
                    f"{where} predicts {spec.num_classes} classes; --classes names {len(flags.classes)} "
                    f"({', '.join(flags.classes)})"
                )
            spec = spec.replace(classes=tuple(flags.classes))
        else:
            raise RockedgeError(
                f"{where} predicts {', '.join(spec.classes)}, not {', '.join(flags.classes)}; drop --classes, or if "
                f"these are the same classes under other names, rewrite its spec: rockedge spec write MODEL --classes "
                f"{','.join(flags.classes)}"
            )
    if flags.palette is not None:
        spec = spec.replace(palette=tuple(flags.palette))
    return spec


def _check_input(where: str, inp: TensorInfo, input_format: str) -> None:
    if len(inp.shape) != 4:
        raise RockedgeError(f"{where}: input {inp.name} has shape {_fmt_shape(inp.shape)}; rockedge feeds 4-D images")
    if input_format == "raw":
        if inp.shape[3] not in (3, None) or inp.dtype != "uint8":
            raise RockedgeError(
                f"{where}: input {inp.name} is {_fmt_shape(inp.shape)} {inp.dtype}, but raw input means uint8 NHWC BGR "
                "frames (..x3); use --input-format float for a float NCHW model"
            )
    else:
        if inp.shape[1] not in (3, None) or inp.dtype not in FLOAT_DTYPES:
            raise RockedgeError(
                f"{where}: input {inp.name} is {_fmt_shape(inp.shape)} {inp.dtype}, but float input means float NCHW RGB "
                "(Nx3xHxW); use --input-format raw for a model that takes uint8 NHWC frames"
            )


def _output_kind(t: TensorInfo) -> str | None:
    """"logits" for a float N,C,H,W tensor, "mask" for integer class indices, None otherwise."""
    if t.dtype in FLOAT_DTYPES and len(t.shape) == 4:
        return "logits"
    if t.dtype in INT_DTYPES and (len(t.shape) == 3 or (len(t.shape) == 4 and t.shape[1] == 1)):
        return "mask"
    return None


def _pick_output(where: str, outputs: Sequence[TensorInfo], spec: ModelSpec, flags: SpecFlags) -> TensorInfo:
    named = _named(where, "output", outputs, flags.output_name)
    if named is not None:
        return named
    usable = [t for t in outputs if _output_kind(t) is not None]
    # torchvision models exported with their dict intact name the main head "out" (and the aux head "aux").
    named = [t for t in usable if t.name == "out"]
    if named:
        return named[0]
    fitting = [t for t in usable if _output_kind(t) == "mask" or t.shape[1] in (spec.num_classes, None)]
    if fitting:
        return fitting[0]
    if usable:
        return usable[0]  # _check_output explains why it does not fit
    raise RockedgeError(f"{where} has no segmentation output (float NxCxHxW logits or integer NxHxW classes) among "
                        f"{_listing(outputs)}; choose one with --output-name")


def _check_output(where: str, out: TensorInfo, spec: ModelSpec, derived: bool) -> ModelSpec:
    kind = _output_kind(out)
    if kind is None:
        raise RockedgeError(f"{where}: output {out.name} is {_fmt_shape(out.shape)} {out.dtype}, neither float NxCxHxW "
                            "logits nor integer NxHxW class indices")
    if derived:
        spec = spec.replace(output_format=kind)
    elif kind != spec.output_format:
        raise RockedgeError(f"{where}: output {out.name} looks like {kind}, but the model's spec says {spec.output_format}")
    if kind == "logits" and out.shape[1] is not None and out.shape[1] != spec.num_classes:
        raise RockedgeError(
            f"{where}: output {out.name} has {out.shape[1]} channels, but the spec names {spec.num_classes} classes "
            f"({', '.join(spec.classes)}); give one name per output channel"
        )
    return spec
