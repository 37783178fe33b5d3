"""CLI command: ``rockedge train``."""

from __future__ import annotations

from pathlib import Path

import click

from rockedge.cli.options import (
    IMGSZ,
    batch_option,
    data_option,
    imgsz_option,
    out_option,
    quiet_option,
    seed_option,
    trust_pickle_option,
)
from rockedge.spec import ARCHITECTURES


@click.command("train")
@data_option("Dataset folder (VOC/CVAT or images/+masks/ layout).", required=True)
@click.option("--arch", type=click.Choice(ARCHITECTURES), default=None,
              help="Model architecture: ResNet-50 is the reference model, MobileNetV3 the edge option, LR-ASPP the "
                   "real-time head [default: the --model checkpoint's, else deeplabv3_mobilenet_v3_large].")
@click.option("--model", "-m", "--engine", "model_opt", default=None, metavar="MODEL",
              help="Fine-tune: start from this checkpoint (a rockedge best.pt or the original project's state_dict), "
                   "as `yolo train model=best.pt` does. The spec follows the data; if its classes differ from the "
                   "checkpoint's, the class head is re-made (said in one line).")
@click.option("--boundary", is_flag=True,
              help="Also learn rock rims as a class of their own (derived from the dataset's instance masks): "
                   "touching rocks are then told apart by `run --measure` and `eval --measure`.")
@click.option("--epochs", type=int, default=10, show_default=True, help="Epochs (an upper bound with --max-minutes).")
@batch_option("Batch size per process.", default=8)
@imgsz_option("The model's input size (its spec): images are fitted to it, as inference does.", default="256")
@click.option("--crop", type=IMGSZ, default=None,
              help="Training crop, at most --imgsz (one integer or HxW): objects keep their inference scale, "
                   "each step costs less [default: --imgsz].")
@click.option("--augment", type=click.Choice(["default", "light"]), default="default", show_default=True,
              help="Augmentation strength: light (smaller rescale and colour jitter) suits many varied scenes.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate (AdamW, warm-up then cosine).")
@out_option("Run folder: best.pt, last.pt, metrics.csv/json, results.png.", default=Path("runs/exp"))
@click.option("--workers", type=int, default=2, show_default=True, help="Data-loader worker processes.")
@seed_option()
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision on CUDA (ignored on CPU).")
@click.option("--pretrained", is_flag=True, help="Start from torchvision's ImageNet backbone weights (needs the network).")
@click.option("--backbone-weights", type=click.Path(path_type=Path), help="Local ImageNet backbone state_dict (offline --pretrained).")
@click.option("--resume", is_flag=True, help="Continue from <out>/last.pt (weights, optimizer, epoch, history).")
@trust_pickle_option
@click.option("--max-minutes", type=float, help="Wall-clock budget: train the epochs that fit in it (at least one), with the LR schedule fitted to them.")
@quiet_option
def train_cmd(data: Path, arch: str | None, model_opt: str | None, boundary: bool, epochs: int, batch: int, imgsz: tuple[int, int], crop: tuple[int, int] | None,
              augment: str, lr: float, out: Path, workers: int,
              seed: int, device: str, amp: bool, pretrained: bool, backbone_weights: Path | None, resume: bool,
              trust_pickle: bool, max_minutes: float | None, quiet: bool) -> None:
    """Train a segmentation model on a labelled dataset.

    Evaluates on the validation split after every epoch and keeps best.pt (highest mIoU) and last.pt.
    A non-finite loss stops the run and keeps the last good checkpoint. For several GPUs launch through
    torchrun, e.g. `torchrun --nproc_per_node 2 -m rockedge train --data DIR ...`.
    """
    from rockedge.train.loop import TrainConfig, train
    from rockedge.train.transforms import AUGMENT_PRESETS

    weights = Path(model_opt) if model_opt else None
    if arch is None:
        arch = "deeplabv3_mobilenet_v3_large"
        if weights is not None:
            from rockedge.models.checkpoint import load_checkpoint

            arch = load_checkpoint(weights, trust_pickle=trust_pickle).spec.arch
    cfg = TrainConfig(
        data=str(data), out=str(out), arch=arch, weights=str(weights) if weights else None, trust_pickle=trust_pickle, boundary=boundary, epochs=epochs, batch=batch, imgsz=imgsz, crop=crop, lr=lr,
        augment=AUGMENT_PRESETS[augment], log=click.echo,
        workers=workers, seed=seed, device=device, amp=amp, pretrained=pretrained,
        backbone_weights=str(backbone_weights) if backbone_weights else None, resume=resume, max_minutes=max_minutes,
        progress=not quiet,
    )
    best = train(cfg)
    click.echo(f"best checkpoint: {best}")


COMMANDS = [train_cmd]
