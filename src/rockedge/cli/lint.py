"""CLI command: ``rockedge lint MODEL`` (TensorRT ONNX-parser lint)."""

from __future__ import annotations

from pathlib import Path

import click

from rockedge.cli.options import emit_report, json_option, model_argument
from rockedge.errors import RockedgeError


@click.command("lint")
@model_argument(help="The .onnx model to lint.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too, not only on errors.")
@json_option("Also write the findings as JSON to PATH ('-': print them to stdout).")
def lint_cmd(model: Path, strict: bool, json_path: Path | None) -> None:
    """Check an ONNX model for patterns TensorRT's ONNX parser rejects or treats differently.

    Exit code 1 when there are errors (or warnings with --strict).
    """
    from rockedge.export.lint import format_findings, lint_file

    findings = lint_file(model)
    emit_report(format_findings(findings), [f.to_dict() for f in findings], json_path)
    bad = [f for f in findings if f.severity == "error" or (strict and f.severity == "warning")]
    if bad:
        raise RockedgeError(f"{len(bad)} TensorRT lint finding(s) at {'warning or ' if strict else ''}error level in {model}")


COMMANDS = [lint_cmd]
