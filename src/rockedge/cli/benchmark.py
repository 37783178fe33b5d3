"""CLI command: ``rockedge benchmark MODEL...``."""

from __future__ import annotations

from pathlib import Path

import click

from rockedge.cli.options import (
    batch_option,
    data_option,
    emit_report,
    imgsz_option,
    json_option,
    out_option,
    quiet_option,
    stdout_is_json,
    trust_plan_code_option,
)
from rockedge.errors import RockedgeError


@click.command("benchmark")
@click.argument("models", nargs=-1, required=False, metavar="MODEL...", type=click.Path(path_type=Path))
@click.option("--model", "-m", "--engine", "model_opt", multiple=True, metavar="MODEL",
              help="A model, as an option (same as a MODEL argument; repeat it for several).")
@data_option("Labelled dataset: accuracy (rock IoU, mIoU) on its val split, and real frames to time on.")
@imgsz_option("Input size for models that accept any [default: the model's own].")
@batch_option("Images per inference call (a fixed-batch model uses its own).")
@click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True, help="Timed inference calls per model.")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True, help="Untimed calls first.")
@out_option("Folder for benchmark.json and benchmark.png.", default=Path("rockedge-benchmark"))
@trust_plan_code_option
@json_option("Also write the report as JSON to PATH ('-': print it to stdout).")
@quiet_option
def benchmark_cmd(models: tuple[Path, ...], model_opt: tuple[str, ...], data: Path | None, imgsz: tuple[int, int] | None, batch: int, runs: int,
                  warmup: int, out: Path, trust_plan_code: bool, json_path: Path | None, quiet: bool) -> None:
    """Measure each MODEL (checkpoint, FP32/FP16/INT8 ONNX, TensorRT plan) on every backend that can run it here:
    latency p50/p95/p99, throughput, peak memory, size on disk, and accuracy with --data, in one table.

    The same run measures this machine's ceiling (a 1024x1024 matrix product through the same runtime and
    precision) and shows each model's achieved compute rate as a fraction of it.

    \b
    Example:
      rockedge benchmark best.pt best.onnx best.int8.onnx --data data/rocks --imgsz 512
    """
    from rockedge.atomic import write_json
    from rockedge.benchmark import plot, run_benchmark

    models = (*models, *(Path(m) for m in model_opt))
    if not models:
        raise click.UsageError("missing MODEL (one or more, as arguments or --model/-m/--engine)")

    report = run_benchmark(list(models), data=str(data) if data else None, imgsz=imgsz, batch=batch, runs=runs,
                           warmup=warmup, progress=not quiet, trust_plan_code=trust_plan_code)
    write_json(out / "benchmark.json", report.to_dict())
    png = plot(report, out / "benchmark.png")
    emit_report(report.table(), report.to_dict(), json_path)
    click.echo(f"written {out / 'benchmark.json'}" + (f" and {png}" if png else " (no matplotlib: no chart)"),
               err=stdout_is_json(json_path))
    failed = [r for r in report.rows if r.error]
    if report.rows and len(failed) == len(report.rows):
        raise RockedgeError(f"no model could be measured ({len(failed)} of {len(failed)} failed; the table says why)")


COMMANDS = [benchmark_cmd]
