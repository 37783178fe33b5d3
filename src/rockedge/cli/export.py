"""CLI commands: export, verify, lint (registered on the main group by :func:`register`).

Thin by design: parse, call :mod:`rockedge.export.pipeline` / :mod:`rockedge.export.lint`, print. Heavy
imports happen inside the commands so ``rockedge --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from rockedge.errors import RockedgeError

PRECISIONS = ("fp32", "fp16", "int8")


def _budget_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option("--budget", "precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
                         help="Budget preset: fp32 >= 99.99 % mask agreement, fp16 >= 99.5 %, int8 >= 98 %."),
            click.option("--min-agreement", type=float, default=None, help="Override: minimum mask agreement (0-1)."),
            click.option("--min-boundary", type=float, default=None,
                         help="Override: minimum agreement within 2 px of class boundaries (0-1)."),
            click.option("--min-iou", type=float, default=None, help="Override: minimum per-class IoU between masks (0-1)."),
            click.option("--max-abs-diff", type=float, default=None,
                         help="Override: maximum logit difference, in units of max(1, largest |reference logit|) (logits outputs only)."),
            click.option("--tie-margin", type=float, default=None,
                         help="Pixels whose reference top-2 logits are closer than this (same units as --max-abs-diff) are "
                              "ties, not disagreements (default 1e-4).", ),
            click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
                         help="Dataset folder: compare on its val images (default: generated rock scenes)."),
            click.option("--n", "n", type=int, default=8, show_default=True, help="Number of frames to compare."),
        ]
    ):
        f = opt(f)
    return f


def _budget(precision: str, **overrides: float | None) -> Any:
    from rockedge.export.parity import ParityBudget

    return ParityBudget.for_precision(precision, **overrides)


def _human_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _print_lint(findings: list[Any]) -> None:
    if not findings:
        click.echo("TensorRT lint: no findings")
        return
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    click.echo("TensorRT lint: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    for f in findings:
        click.echo(f"  {f}")


def register(group: click.Group) -> None:
    """Add this module's commands to group."""

    @group.command("export")
    @click.argument("checkpoint", type=click.Path(path_type=Path))
    @click.option("--out", type=click.Path(path_type=Path), default=None,
                  help="Output .onnx path (default: the checkpoint's name with .onnx).")
    @click.option("--imgsz", nargs=2, type=int, default=None, metavar="H W",
                  help="Input height and width (default: the checkpoint's spec).")
    @click.option("--batch", type=int, default=1, show_default=True, help="Batch size baked into a static graph.")
    @click.option("--dynamic", is_flag=True, help="Symbolic batch/height/width (TensorRT then needs a profile).")
    @click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17 suits TensorRT 8.5+).")
    @click.option("--simplify/--no-simplify", default=True, show_default=True, help="Run onnxsim.")
    @click.option("--input", "input_format", type=click.Choice(["float", "raw"]), default="float", show_default=True,
                  help="float: normalised NCHW RGB; raw: uint8 NHWC BGR frames, normalised inside the graph.")
    @click.option("--output", "output_format", type=click.Choice(["logits", "mask"]), default="logits",
                  show_default=True, help="logits: float (N,C,H,W); mask: int32 (N,H,W) class indices (ArgMax in graph).")
    @click.option("--trust-pickle", is_flag=True, help="Allow checkpoints that pickle whole modules (runs code!).")
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated parity frames.")
    @_budget_options
    def export_cmd(checkpoint: Path, out: Path | None, imgsz: tuple[int, int] | None, batch: int, dynamic: bool,
                   opset: int, simplify: bool, input_format: str, output_format: str, trust_pickle: bool, seed: int,
                   precision: str, min_agreement: float | None, min_boundary: float | None, min_iou: float | None,
                   max_abs_diff: float | None, tie_margin: float | None, data_dir: Path | None, n: int) -> None:
        """Export a checkpoint to ONNX, lint it for TensorRT, and check parity against PyTorch.

        Accepts rockedge checkpoints and the original project's DeepLabV3 state_dict. Exits 1 when parity is
        over budget: the model is then kept as <stem>.failed.onnx and the report as <stem>.parity.json.
        """
        from rockedge.export.lint import Finding
        from rockedge.export.pipeline import export_and_verify

        budget = _budget(precision, min_agreement=min_agreement, min_boundary_agreement=min_boundary,
                         min_iou=min_iou, max_abs_diff=max_abs_diff, tie_margin=tie_margin)
        out = out or checkpoint.with_suffix(".onnx")
        outcome = export_and_verify(
            checkpoint, out, data_dir=data_dir, n=n, budget=budget, seed=seed, trust_pickle=trust_pickle,
            imgsz=imgsz, batch=batch, dynamic=dynamic, opset=opset, simplify=simplify,
            input_format=input_format, output_format=output_format,
        )
        r = outcome.export.report
        for note in r["notes"]:
            click.echo(f"note: {note}")
        t = r["times"]
        click.echo(
            f"exported {r['arch']} -> {r['model']}\n"
            f"  input  {r['input']['name']} {r['input']['shape']} ({r['input']['format']})\n"
            f"  output {r['output']['name']} {r['output']['shape']} ({r['output']['format']})\n"
            f"  size {_human_size(r['size_bytes'])}, nodes {r['nodes_before_simplify']} -> "
            f"{r['nodes_after_simplify']} after simplify, opset {r['settings']['opset']}\n"
            f"  time {t['total_s']:.1f} s (export {t['export_s']:.1f} s, simplify {t['simplify_s']:.1f} s)"
        )
        _print_lint([Finding(**f) for f in r["lint"]])
        click.echo(outcome.parity.table())
        click.echo(f"report: {outcome.report_path}")
        if not outcome.passed:
            raise RockedgeError(
                f"parity over the {precision} budget ({'; '.join(outcome.parity.failures)}); "
                f"model kept as {r['model']} for inspection, report in {outcome.report_path}"
            )

    @group.command("verify")
    @click.argument("reference", type=click.Path(path_type=Path))
    @click.argument("candidate", type=click.Path(path_type=Path))
    @click.option("--imgsz", nargs=2, type=int, default=None, metavar="H W",
                  help="Compare at this size (default: the fixed size of either model, else the spec's).")
    @click.option("--batch", type=int, default=1, show_default=True, help="Batch size for models that accept any.")
    @click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
                  help="Also write the report as JSON here.")
    @click.option("--trust-pickle", is_flag=True, help="Allow checkpoints that pickle whole modules (runs code!).")
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated frames.")
    @_budget_options
    def verify_cmd(reference: Path, candidate: Path, imgsz: tuple[int, int] | None, batch: int,
                   report_path: Path | None, trust_pickle: bool, seed: int, precision: str,
                   min_agreement: float | None, min_boundary: float | None, min_iou: float | None,
                   max_abs_diff: float | None, tie_margin: float | None, data_dir: Path | None, n: int) -> None:
        """Check that CANDIDATE segments like REFERENCE (checkpoint, .onnx; engines where supported).

        Exit code 0 when within budget, 1 when not (or on error).
        """
        from rockedge.atomic import write_json
        from rockedge.export.pipeline import verify_models

        budget = _budget(precision, min_agreement=min_agreement, min_boundary_agreement=min_boundary,
                         min_iou=min_iou, max_abs_diff=max_abs_diff, tie_margin=tie_margin)
        report = verify_models(reference, candidate, data_dir=data_dir, n=n, imgsz=imgsz, batch=batch,
                               budget=budget, seed=seed, trust_pickle=trust_pickle)
        click.echo(report.table())
        if report_path:
            write_json(report_path, report.to_dict())
            click.echo(f"report: {report_path}")
        if not report.passed:
            raise RockedgeError(f"parity over the {precision} budget: {'; '.join(report.failures)}")

    @group.command("lint")
    @click.argument("model", type=click.Path(path_type=Path))
    @click.option("--strict", is_flag=True, help="Exit 1 on warnings too, not only on errors.")
    @click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
    def lint_cmd(model: Path, strict: bool, as_json: bool) -> None:
        """Check an ONNX model for patterns TensorRT's ONNX parser rejects or treats differently.

        Exit code 1 when there are errors (or warnings with --strict).
        """
        from rockedge.export.lint import lint_file

        findings = lint_file(model)
        if as_json:
            click.echo(json.dumps([f.to_dict() for f in findings], indent=2))
        else:
            _print_lint(findings)
        bad = [f for f in findings if f.severity == "error" or (strict and f.severity == "warning")]
        if bad:
            raise RockedgeError(f"{len(bad)} TensorRT lint finding(s) at {'warning or ' if strict else ''}error level in {model}")
