"""CLI commands: ``rockedge train`` and ``rockedge eval``."""

from __future__ import annotations

from pathlib import Path

import click

from rockedge.spec import ARCHITECTURES


def _size(value: tuple[int, int] | None) -> tuple[int, int] | None:
    from rockedge.errors import RockedgeError

    if value is None:
        return None
    h, w = value
    if h < 32 or w < 32 or h % 8 or w % 8:
        raise RockedgeError(f"--imgsz {h} {w}: height and width must be multiples of 8 and >= 32")
    return (h, w)


@click.command("train")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Dataset folder (VOC/CVAT or images/+masks/ layout).")
@click.option("--arch", type=click.Choice(ARCHITECTURES), default="deeplabv3_mobilenet_v3_large", show_default=True,
              help="Model architecture: ResNet-50 is the reference model, MobileNetV3 the edge option.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch", type=int, default=8, show_default=True, help="Batch size per process.")
@click.option("--imgsz", type=(int, int), default=(256, 256), show_default=True, metavar="H W",
              help="Training crop size, also the model's input size in its spec.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate (AdamW, warm-up then cosine).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/exp"), show_default=True,
              help="Run folder: best.pt, last.pt, metrics.csv/json, results.png.")
@click.option("--workers", type=int, default=2, show_default=True, help="Data-loader worker processes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision on CUDA (ignored on CPU).")
@click.option("--pretrained", is_flag=True, help="Start from torchvision's ImageNet backbone weights (needs the network).")
@click.option("--backbone-weights", type=click.Path(path_type=Path), help="Local ImageNet backbone state_dict (offline --pretrained).")
@click.option("--resume", is_flag=True, help="Continue from <out>/last.pt (weights, optimizer, epoch, history).")
@click.option("--max-minutes", type=float, help="Stop after the epoch that crosses this wall-clock budget.")
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
def train_cmd(data: Path, arch: str, epochs: int, batch: int, imgsz: tuple[int, int], lr: float, out: Path, workers: int,
              seed: int, device: str, amp: bool, pretrained: bool, backbone_weights: Path | None, resume: bool,
              max_minutes: float | None, quiet: bool) -> None:
    """Train a DeepLabV3 rock-segmentation model.

    Evaluates on the validation split after every epoch and keeps best.pt (highest mIoU) and last.pt.
    For several GPUs launch through torchrun, e.g.
    `torchrun --nproc_per_node 2 -m rockedge train --data DIR ...`.
    """
    from rockedge.train.engine import TrainConfig, train

    cfg = TrainConfig(
        data=str(data), out=str(out), arch=arch, epochs=epochs, batch=batch, imgsz=_size(imgsz) or (256, 256), lr=lr,
        workers=workers, seed=seed, device=device, amp=amp, pretrained=pretrained,
        backbone_weights=str(backbone_weights) if backbone_weights else None, resume=resume, max_minutes=max_minutes,
        progress=not quiet,
    )
    best = train(cfg)
    if not quiet:
        click.echo(f"best checkpoint: {best}")


@click.command("eval")
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="A checkpoint (.pt), ONNX model or TensorRT engine.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Dataset folder.")
@click.option("--split", type=click.Choice(["train", "val", "all"]), default="val", show_default=True, help="Which split to score.")
@click.option("--batch", type=int, default=4, show_default=True, help="Ignored for static-batch models.")
@click.option("--imgsz", type=(int, int), default=None, metavar="H W", help="Inference size (checkpoints only; default: the spec's).")
@click.option("--backend", type=click.Choice(["auto", "ort", "trt", "torch"]), default="auto", show_default=True,
              help="Inference backend; auto picks by file type (.pt torch, .onnx ONNX Runtime, .plan TensorRT).")
@click.option("--providers", help="ONNX Runtime providers in order, comma-separated (cpu, cuda, trt).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Report path (default: <model>.eval.json).")
@click.option("--trust-pickle", is_flag=True, help="Allow loading a pickled whole model (runs code from the file).")
def eval_cmd(model_path: Path, data: Path, split: str, batch: int, imgsz: tuple[int, int] | None, backend: str,
             providers: str | None, json_path: Path | None, trust_pickle: bool) -> None:
    """Evaluate a model on a dataset: pixel accuracy, per-class IoU and mIoU, as a table and JSON.

    Any model rockedge can run is scored by the same code, so a checkpoint, its ONNX export and its
    TensorRT engine can be compared directly.
    """
    from rockedge.atomic import write_json
    from rockedge.data.datasets import open_dataset
    from rockedge.errors import RockedgeError
    from rockedge.evaluation import evaluate, format_report
    from rockedge.runtime.backends.loader import open_backend

    ds = open_dataset(data, split)
    if len(ds) == 0:
        raise RockedgeError(f"no images in split {split!r} of {data}")
    with open_backend(model_path, backend=backend, trust_pickle=trust_pickle,
                      providers=providers.split(",") if providers else None) as be:
        if tuple(ds.classes) != tuple(be.spec.classes):
            raise RockedgeError(f"dataset classes {list(ds.classes)} differ from the model's {list(be.spec.classes)}")
        size = _size(imgsz)
        if size and be.fixed_size and size != be.fixed_size:
            raise RockedgeError(f"--imgsz {size[0]} {size[1]}: {model_path.name} was built for {be.fixed_size[0]} {be.fixed_size[1]}")
        cm = evaluate(be, ds, batch=batch, size_hw=size, progress=True)
        report = {"model": str(model_path), "data": str(data), "split": split, "images": len(ds),
                  **be.describe(), "input_size": list(size or be.fixed_size or be.spec.input_size),
                  **cm.report(be.spec.classes)}
    click.echo(format_report(report, f"{model_path.name} on {data} [{split}, {len(ds)} images]"))
    out = json_path or model_path.with_suffix(".eval.json")
    write_json(out, report)
    click.echo(f"report: {out}")


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(train_cmd)
    group.add_command(eval_cmd)
