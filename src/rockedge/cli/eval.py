"""CLI command: ``rockedge eval MODEL --data DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rockedge.cli.options import (
    backend_options,
    backend_opts,
    batch_option,
    data_option,
    emit_report,
    imgsz_option,
    json_option,
    model_argument,
    quiet_option,
    spec_flags,
    spec_options,
    trust_pickle_option,
)


@click.command("eval")
@model_argument()
@data_option("Labelled dataset folder.", required=True)
@click.option("--split", type=click.Choice(["train", "val", "all"]), default="val", show_default=True, help="Which split to score.")
@batch_option("Images per inference call (a fixed-batch model uses its own).", default=4)
@imgsz_option("Inference size for models that accept any (default: the model's own).")
@click.option("--measure", is_flag=True,
              help="Also score rock by rock against the dataset's instance masks: instance F1 at IoU >= 0.5, count, "
                   "P50 and P80 errors (JSON key 'measure').")
@click.option("--sparse", is_flag=True,
              help="The instance masks label only some rocks (e.g. a few painted per photo): report instance recall "
                   "only, ignoring unlabelled pixels. Implies --measure.")
@backend_options
@spec_options
@json_option("Where to write the JSON report ('-': stdout) [default: <model>.eval.json].")
@trust_pickle_option
@quiet_option
def eval_cmd(model: Path, data: Path, split: str, batch: int, imgsz: tuple[int, int] | None, measure: bool,
             sparse: bool, json_path: Path | None, trust_pickle: bool, quiet: bool, **kw: Any) -> None:
    """Evaluate MODEL on a dataset: pixel accuracy, per-class IoU and mIoU, as a table and JSON.

    Any model rockedge can run is scored by the same code, so a checkpoint, its ONNX export and its
    TensorRT engine can be compared directly. A model without class names of its own (a plain
    state_dict) takes the dataset's.

    With --measure, the predicted rocks are split, measured and matched one-to-one with the true rocks of the
    dataset's instance masks (data synth writes them; VOC/CVAT's SegmentationObject is read too).
    """
    from rockedge.verify.evaluation import evaluate_model

    flags = spec_flags(kw, imgsz)
    report, table = evaluate_model(model, data, split=split, batch=batch, imgsz=imgsz,
                                   options=backend_opts(kw, trust_pickle=trust_pickle, flags=flags), progress=not quiet,
                                   measure=measure, sparse=sparse)
    emit_report(table, report, json_path, default_path=model.with_suffix(".eval.json"))


COMMANDS = [eval_cmd]
