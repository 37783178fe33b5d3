"""CLI command: ``rockedge verify MODEL --reference REF``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rockedge.cli.options import (
    backend_options,
    backend_opts,
    batch_option,
    budget_args,
    budget_options,
    data_option,
    emit_report,
    imgsz_option,
    json_option,
    model_argument,
    seed_option,
    spec_flags,
    spec_options,
    trust_pickle_option,
)
from rockedge.errors import RockedgeError


@click.command("verify")
@model_argument(help="The model to check (.onnx, .plan, .pt).")
@click.option("--reference", type=click.Path(path_type=Path), required=True,
              help="What MODEL must segment like: usually the checkpoint or the FP32 ONNX it came from.")
@imgsz_option("Compare at this size [default: the fixed size of either model, else the spec's].")
@batch_option("Batch size for models that accept any.")
@data_option("Dataset folder: compare on its val images [default: generated rock scenes].")
@budget_options
@backend_options
@spec_options
@seed_option("Seed for generated frames.")
@json_option()
@trust_pickle_option
def verify_cmd(model: Path, reference: Path, imgsz: tuple[int, int] | None, batch: int, data: Path | None, n: int,
               seed: int, json_path: Path | None, trust_pickle: bool, **kw: Any) -> None:
    """Check that MODEL segments like --reference (checkpoints, ONNX in any precision, TensorRT engines).

    The budget preset follows MODEL's precision unless --budget says otherwise. --backend, --providers and
    --device apply to MODEL; the spec options describe either model when it has no spec of its own.
    Exit code 0 when within budget, 1 when not (or on error).
    """
    from rockedge.runtime.backends.loader import BackendOptions
    from rockedge.verify.compare import verify_models

    flags = spec_flags(kw, imgsz)
    options = backend_opts(kw, trust_pickle=trust_pickle, flags=flags)
    ref_options = BackendOptions(trust_pickle=trust_pickle, spec_flags=flags, trust_plan_code=options.trust_plan_code)
    preset, overrides = budget_args(kw)
    report = verify_models(model, reference, options=options, reference_options=ref_options, preset=preset,
                           overrides=overrides, data_dir=data, n=n, imgsz=imgsz, batch=batch, seed=seed)
    emit_report(report.table(), report.to_dict(), json_path)
    if not report.passed:
        raise RockedgeError(f"parity over the {report.budget.precision} budget: {'; '.join(report.failures)}")


COMMANDS = [verify_cmd]
