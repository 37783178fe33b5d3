"""CLI commands: ``rockedge spec show | write`` — the ModelSpec that travels with a model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rockedge.cli.options import (
    emit_report,
    imgsz_option,
    json_option,
    model_argument,
    out_option,
    spec_flags,
    spec_options,
    trust_pickle_option,
    trust_plan_code_option,
)
from rockedge.precision import NAMES as PRECISIONS


@click.group("spec")
def spec_group() -> None:
    """Show the ModelSpec a model file carries, or write one for a model from elsewhere."""


@spec_group.command("show")
@model_argument()
@json_option()
@trust_pickle_option
def show_cmd(model: Path, json_path: Path | None, trust_pickle: bool) -> None:
    """Print the spec MODEL carries (classes, palette, mean/std, input format and size) and where it is kept.

    Needs neither torch nor onnx for .onnx and .plan files.
    """
    from rockedge.runtime.modelfile import open_model_file

    rec = open_model_file(model, trust_pickle=trust_pickle)
    lines = [f"{model}: spec from {rec.spec_source}, precision {rec.precision.value}"]
    if rec.spec is None:
        lines.append("  no rockedge spec: describe it with --classes on each command, or once with "
                     f"`rockedge spec write {model.name} --classes ...`")
    else:
        s = rec.spec
        lines += [f"  arch          {s.arch}", f"  classes       {', '.join(s.classes)}",
                  f"  palette       {'; '.join(','.join(map(str, c)) for c in s.palette)}",
                  f"  input         {s.input_format} {s.input_layout} {s.input_size[0]}x{s.input_size[1]}",
                  f"  output        {s.output_format}", f"  mean / std    {list(s.mean)} / {list(s.std)}"]
    details = rec.details()
    for k, v in details.items():
        lines.append(f"  {k:<13} {v}")
    emit_report("\n".join(lines), {"model": str(model), "source": rec.spec_source, "precision": rec.precision.value,
                                   "spec": rec.spec.to_dict() if rec.spec else None, **details}, json_path)


@spec_group.command("write")
@model_argument(help="An .onnx file, or a TensorRT .plan/.engine built elsewhere (trtexec, DeepStream).")
@click.option("--from", "source_onnx", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="For a plan: the ONNX it was built from (its spec, tensors and hash go into the manifest).")
@spec_options
@imgsz_option("Input size to record for a model with dynamic height/width.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="The artifact's precision [default: the ONNX's, else fp32].")
@out_option("For an ONNX: where to write the copy that carries the spec [default: <stem>.spec.onnx; MODEL itself "
            "rewrites it in place].")
@trust_plan_code_option
def write_cmd(model: Path, source_onnx: Path | None, imgsz: tuple[int, int] | None, precision: str | None,
              out: Path | None, trust_plan_code: bool, **kw: Any) -> None:
    """Write a spec for MODEL once, so run/eval/verify need no --classes flags for it again.

    \b
    ONNX: a copy with the spec in its metadata (no onnx package needed).
    Plan: the manifest beside it (model.plan.json), from --from MODEL.onnx or from the flags; where TensorRT
    and a GPU are (the device that built it), with the engine's TensorRT version, GPU and input profile.
    The spec is checked against the model's tensors (e.g. class count vs output channels).

    \b
    Examples:
      rockedge spec write torchvision_export.onnx --classes background,rock
      rockedge spec write model.plan --from model.onnx
    """
    from rockedge.errors import RockedgeError
    from rockedge.precision import Precision
    from rockedge.runtime.modelfile import file_kind
    from rockedge.runtime.spec_files import write_onnx_spec, write_plan_manifest

    if not model.is_file():
        raise RockedgeError(f"model not found: {model}")
    flags = spec_flags(kw, imgsz)
    prec = Precision.parse(precision) if precision else None
    kind = file_kind(model).name
    if kind == "onnx":
        if source_onnx is not None:
            raise RockedgeError("--from is for plans; an ONNX file is its own source")
        written, spec = write_onnx_spec(model, out or model.with_name(f"{model.stem}.spec.onnx"), flags, precision=prec)
    elif kind == "engine":
        if out is not None:
            raise RockedgeError("a plan's manifest is always written beside it (MODEL.json); drop --out")
        written, spec = write_plan_manifest(model, flags, source_onnx=source_onnx, precision=prec,
                                            trust_plan_code=trust_plan_code)
    else:
        raise RockedgeError("checkpoints carry their spec already; spec write is for .onnx and .plan files")
    click.echo(f"wrote {written}: {spec.num_classes} classes ({', '.join(spec.classes)}), {spec.input_format} input "
               f"{spec.input_size[0]}x{spec.input_size[1]}, {spec.output_format} output")


COMMANDS = [spec_group]
