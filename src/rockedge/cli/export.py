"""CLI command: ``rockedge export MODEL`` (checkpoint -> ONNX, with lint and a parity check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rockedge.cli.options import (
    NamesType,
    batch_option,
    budget_args,
    budget_options,
    data_option,
    emit_report,
    imgsz_option,
    json_option,
    model_argument,
    out_option,
    quiet_option,
    seed_option,
    trust_pickle_option,
)
from rockedge.errors import RockedgeError
from rockedge.spec import INPUT_FORMATS, OUTPUT_FORMATS


def _summary(r: dict[str, Any]) -> str:
    t = r["times"]
    return (
        f"exported {r['arch']} -> {r['model']}\n"
        f"  input  {r['input']['name']} {r['input']['shape']} ({r['input']['format']})\n"
        f"  output {r['output']['name']} {r['output']['shape']} ({r['output']['format']})\n"
        f"  size {r['size_bytes'] / 1e6:.1f} MB, nodes {r['nodes_before_simplify']} -> "
        f"{r['nodes_after_simplify']} after simplify, opset {r['settings']['opset']}\n"
        f"  time {t['total_s']:.1f} s (export {t['export_s']:.1f} s, simplify {t['simplify_s']:.1f} s)"
    )


@click.command("export")
@model_argument(help="The checkpoint to export (.pt, rockedge's or the original project's state_dict).")
@out_option("Output .onnx path [default: MODEL with .onnx].")
@imgsz_option("Input size baked into the graph [default: the checkpoint's].")
@batch_option("Batch size baked into a static graph.")
@click.option("--dynamic", is_flag=True, help="Symbolic batch/height/width (TensorRT then needs a profile).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17 suits TensorRT 8.5+).")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="Run onnxsim.")
@click.option("--input-format", type=click.Choice(INPUT_FORMATS), default="float", show_default=True,
              help="float: normalised NCHW RGB; raw: uint8 NHWC BGR frames, normalised inside the graph.")
@click.option("--output-format", type=click.Choice(OUTPUT_FORMATS), default="logits", show_default=True,
              help="logits: float (N,C,H,W); mask: int32 (N,H,W) class indices (ArgMax in the graph).")
@click.option("--classes", type=NamesType(), default=None,
              help="Class names for a plain state_dict, which has none [default: from --data, else background,rock].")
@data_option("Labelled dataset: parity on its val images, class names for a plain state_dict [default: generated scenes].")
@budget_options
@seed_option("Seed for generated parity frames.")
@json_option("Also write the export and parity report as JSON to PATH ('-': stdout); it is always written as "
             "<out stem>.parity.json.")
@trust_pickle_option
@quiet_option
def export_cmd(model: Path, out: Path | None, imgsz: tuple[int, int] | None, batch: int, dynamic: bool, opset: int,
               simplify: bool, input_format: str, output_format: str, classes: tuple[str, ...] | None, data: Path | None, n: int,
               seed: int, json_path: Path | None, trust_pickle: bool, quiet: bool, **kw: Any) -> None:
    """Export a checkpoint to ONNX, lint it for TensorRT, and check parity against PyTorch.

    Accepts rockedge checkpoints and the original project's DeepLabV3 state_dict (class names then come
    from --data). Exits 1 when parity is over budget: the model is then kept as <stem>.failed.onnx and the
    report as <stem>.parity.json.
    """
    from rockedge.export.lint import Finding, format_findings
    from rockedge.export.parity import ParityBudget
    from rockedge.export.pipeline import export_and_verify

    preset, overrides = budget_args(kw)
    budget = ParityBudget.for_precision(preset or "fp32", **overrides)
    out = out or model.with_suffix(".onnx")
    outcome = export_and_verify(
        model, out, data_dir=data, n=n, budget=budget, seed=seed, trust_pickle=trust_pickle, progress=not quiet,
        classes=classes, imgsz=imgsz, batch=batch, dynamic=dynamic, opset=opset, simplify=simplify,
        input_format=input_format, output_format=output_format,
    )
    r = outcome.export.report
    for note in r["notes"]:
        click.echo(f"note: {note}")
    click.echo(_summary(r))
    click.echo(format_findings([Finding(**f) for f in r["lint"]]))
    emit_report(outcome.parity.table(), {"export": r, "parity": outcome.parity.to_dict()}, json_path)
    click.echo(f"parity report: {outcome.report_path}")
    if not outcome.passed:
        raise RockedgeError(
            f"parity over the {budget.precision} budget ({'; '.join(outcome.parity.failures)}); "
            f"model kept as {r['model']} for inspection, report in {outcome.report_path}"
        )


COMMANDS = [export_cmd]
