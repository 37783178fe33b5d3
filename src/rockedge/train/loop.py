"""The training loop: paired augmentation, weighted CE + Dice, AMP on CUDA, per-epoch evaluation,
best/last checkpoints, resume, CSV/JSON metrics and a PNG plot.

It reads as torchvision's reference script does: :func:`train` sets up (:func:`_setup`), then per epoch
calls :func:`train_one_epoch` and :func:`evaluate_epoch`, records (:func:`_record`) and refits the schedule
to ``--max-minutes``. A non-finite loss or weight stops the run with one line and leaves the last good
checkpoint in place.

Multi-GPU training goes through ``torchrun`` (DistributedDataParallel): when ``WORLD_SIZE`` > 1 the
loop initialises the process group (NCCL on CUDA, gloo on CPU), shards data with DistributedSampler,
reduces the confusion matrix across ranks, and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from rockedge.atomic import atomic_path, ensure_writable_dir, write_json
from rockedge.console import progress as console_progress
from rockedge.data.boundary import BoundaryTargets, boundary_classes, pack, unpack, with_boundary
from rockedge.data.datasets import open_dataset
from rockedge.errors import NonFiniteOutput, RockedgeError
from rockedge.models.checkpoint import (
    Checkpoint,
    init_from,
    load_checkpoint,
    nonfinite_tensors,
    save_checkpoint,
)
from rockedge.models.zoo import build_model, check_arch, main_output
from rockedge.runtime.backends.pytorch import TorchBackend
from rockedge.runtime.preprocess import normalize
from rockedge.spec import ModelSpec
from rockedge.train.loss import SegLoss, class_weights
from rockedge.train.transforms import AugmentConfig, train_transform
from rockedge.verify.evaluation import evaluate, format_report


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/exp"
    arch: str = "deeplabv3_mobilenet_v3_large"
    epochs: int = 10
    batch: int = 8
    imgsz: tuple[int, int] = (256, 256)  # (height, width) the model runs at (its spec's input size)
    crop: tuple[int, int] | None = None  # training crop, <= imgsz; None: imgsz
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    dice_weight: float = 0.5
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # CUDA only
    pretrained: bool = False
    backbone_weights: str | None = None
    weights: str | None = None  # fine-tune: start from this checkpoint (the class head re-made for other classes)
    boundary: bool = False  # add the rock-boundary class, derived from the dataset's instance masks
    trust_pickle: bool = False
    resume: bool = False
    max_minutes: float | None = None  # wall-clock budget: the epochs that fit (>= 1), schedule refitted
    eval_batch: int = 4
    progress: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Where the per-epoch lines and the final report go (the CLI passes click.echo); None: nowhere.
    log: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("log", None)
        d["imgsz"] = list(self.imgsz)
        d["crop"] = list(self.crop) if self.crop else None
        return d


class _TrainSet(Dataset):
    """Wraps a rockedge SegDataset with paired augmentation and per-(epoch, index) randomness."""

    def __init__(self, ds: Any, spec: ModelSpec, cfg: TrainConfig) -> None:
        self.ds, self.spec, self.cfg = ds, spec, cfg
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.cfg.seed, self.epoch, i))
        img, mask = self.ds[i]
        b = self.spec.boundary_index
        if b is None:
            img, mask = train_transform(img, mask, self.cfg.imgsz, self.cfg.augment, rng, self.cfg.crop)
        else:  # the rims are drawn after the augmentation scaled the rocks: one pixel wide at the model's size
            img, packed = train_transform(img, pack(mask, self.ds.instances(i)), self.cfg.imgsz, self.cfg.augment,
                                          rng, self.cfg.crop)
            mask, inst = unpack(packed)
            mask = with_boundary(mask, inst, b)
        x = normalize(img[None], self.spec)[0]
        return torch.from_numpy(x), torch.from_numpy(mask.astype(np.int64))


@dataclass
class _Run:
    """Everything one training run holds: config, process layout, data, model, optimiser, history."""

    cfg: TrainConfig
    out: Path
    world: int
    rank: int
    device: torch.device
    spec: ModelSpec
    train_ds: Any
    val_ds: Any
    model: nn.Module
    ddp_model: nn.Module
    criterion: SegLoss
    opt: torch.optim.Optimizer
    scaler: Any
    use_amp: bool
    start_epoch: int = 0
    best: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def main_proc(self) -> bool:
        return self.rank == 0

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"

    def say(self, text: str) -> None:
        if self.main_proc and self.cfg.progress and self.cfg.log is not None:
            self.cfg.log(text)


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RockedgeError(f"--device {name} asked for, but torch sees no CUDA GPU on this machine")
    return torch.device(name)


def _pixel_counts(ds: Any, num_classes: int, limit: int = 200) -> np.ndarray:
    counts = np.zeros(num_classes, np.int64)
    step = max(1, len(ds) // limit)
    for i in range(0, len(ds), step):
        m = ds[i][1]
        counts += np.bincount(m[m < num_classes].ravel(), minlength=num_classes)[:num_classes]
    return counts


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _setup(cfg: TrainConfig) -> _Run:
    """Process group, datasets, spec, model, loss, optimiser, and the resume state."""

    check_arch(cfg.arch)
    if cfg.epochs < 1 or cfg.batch < 1:
        raise RockedgeError("--epochs and --batch must be >= 1")
    if cfg.crop is not None and (cfg.crop[0] > cfg.imgsz[0] or cfg.crop[1] > cfg.imgsz[1]):
        raise RockedgeError(f"--crop {cfg.crop[0]}x{cfg.crop[1]} is larger than --imgsz {cfg.imgsz[0]}x{cfg.imgsz[1]}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = _pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    out = Path(cfg.out)
    if rank == 0:
        ensure_writable_dir(out)

    train_ds = open_dataset(cfg.data, "train")
    val_ds: Any = open_dataset(cfg.data, "val")
    classes, palette = train_ds.classes, train_ds.palette
    if cfg.boundary:
        for ds in (train_ds, val_ds):
            if not ds.has_instances:
                raise RockedgeError(f"--boundary derives rock rims from instance masks, and the {ds.split} split of "
                                    f"{cfg.data} has none (instances/<name>.png beside masks/, or VOC's "
                                    "SegmentationObject/; rockedge data synth writes them)")
        classes, palette = boundary_classes(classes, palette)
    spec = ModelSpec(arch=cfg.arch, classes=classes, palette=palette, input_size=tuple(cfg.imgsz))
    if spec.boundary_index is not None:
        val_ds = BoundaryTargets(val_ds, spec.boundary_index)
    torch.manual_seed(cfg.seed)
    if cfg.weights and (cfg.pretrained or cfg.backbone_weights or cfg.resume):
        raise RockedgeError("--model starts from a checkpoint: drop --pretrained, --backbone-weights and --resume")
    model = build_model(
        arch=cfg.arch, num_classes=spec.num_classes, pretrained=cfg.pretrained, backbone_weights=cfg.backbone_weights
    )
    if cfg.weights:
        said = init_from(model, load_checkpoint(cfg.weights, trust_pickle=cfg.trust_pickle), spec, cfg.weights)
        if rank == 0 and cfg.log is not None:
            cfg.log(f"note: {said}")
    model = model.to(device)
    # NHWC activations: ~20 % faster convolutions with oneDNN on the CPU at 256 px, and the layout
    # tensor cores want under CUDA AMP. Weights stay interchangeable (state_dict is layout-free).
    model = model.to(memory_format=torch.channels_last)
    counted = BoundaryTargets(train_ds, spec.boundary_index) if spec.boundary_index is not None else train_ds
    weights = class_weights(_pixel_counts(counted, spec.num_classes)).to(device)
    criterion = SegLoss(weights, dice_weight=cfg.dice_weight, ignore_index=spec.ignore_index).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    run = _Run(cfg, out, world, rank, device, spec, train_ds, val_ds, model, ddp_model, criterion, opt, scaler, use_amp)
    if cfg.resume:
        _resume(run)
    return run


def _resume(run: _Run) -> None:
    cfg = run.cfg
    if not run.last_path.is_file():
        raise RockedgeError(f"--resume: no {run.last_path} to resume from")
    ck = load_checkpoint(run.last_path)
    if ck.spec.arch != cfg.arch or ck.spec.classes != run.spec.classes:
        raise RockedgeError(f"--resume: {run.last_path} is a {ck.spec.arch} with classes {list(ck.spec.classes)}")
    run.model.load_state_dict(ck.state_dict)
    run.opt.load_state_dict(ck.extra["optimizer"])
    run.scaler.load_state_dict(ck.extra.get("scaler", {}))
    run.start_epoch, run.best = ck.epoch, float(ck.extra.get("best", -1.0))
    run.history = list(ck.extra.get("history", []))
    if run.start_epoch >= cfg.epochs:
        raise RockedgeError(f"--resume: {run.last_path} already finished {run.start_epoch} of {cfg.epochs} epochs")


def _make_loader(run: _Run) -> tuple[_TrainSet, DataLoader, DistributedSampler | None]:
    cfg = run.cfg
    tset = _TrainSet(run.train_ds, run.spec, cfg)
    sampler = (DistributedSampler(tset, num_replicas=run.world, rank=run.rank, seed=cfg.seed, shuffle=True)
               if run.world > 1 else None)
    loader = DataLoader(
        tset,
        batch_size=cfg.batch,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=len(tset) >= cfg.batch * run.world * 2,
        generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=False,
        pin_memory=run.device.type == "cuda",
    )
    return tset, loader, sampler


def _diverged(run: _Run, what: str, epoch: int) -> RockedgeError:
    kept = (f"the last good checkpoint is {run.last_path} (epoch {run.history[-1]['epoch']}), best {run.best_path}"
            if run.history else "no checkpoint was written")
    return RockedgeError(f"{what} at epoch {epoch + 1}: training stopped; {kept}; lower --lr or check the data")


def train_one_epoch(run: _Run, loader: DataLoader, epoch: int, planned: int, total_steps: int, warmup: int) -> float:
    """One pass over the training data; returns the mean loss (stops on a non-finite loss)."""
    cfg, model = run.cfg, run.ddp_model
    model.train()
    steps_per_epoch = max(1, len(loader))
    losses: list[float] = []
    bar = console_progress(loader, desc=f"epoch {epoch + 1}/{planned}", unit="batch",
                           enabled=cfg.progress and run.main_proc)
    for step, (x, y) in enumerate(bar):
        for g in run.opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(epoch * steps_per_epoch + step, total_steps, warmup)
        x = x.to(run.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(run.device, non_blocking=True)
        with torch.autocast(run.device.type, enabled=run.use_amp):
            loss = run.criterion(main_output(model(x)), y)
        if not torch.isfinite(loss):
            raise _diverged(run, f"the loss became {loss.item()} (step {step + 1})", epoch)
        run.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
        losses.append(loss.item())
        bar.set_postfix_str(f"loss {np.mean(losses[-20:]):.3f}")
    bar.close()
    if run.world > 1:
        t = torch.tensor([float(np.mean(losses)) if losses else 0.0], device=run.device)
        dist.all_reduce(t)
        return t.item() / run.world
    return float(np.mean(losses)) if losses else float("nan")


def evaluate_epoch(run: _Run) -> dict[str, Any]:
    """Score the validation split through the same code as ``rockedge eval``; ranks sum their confusion matrices."""
    run.model.eval()
    shard = [run.val_ds[i] for i in range(run.rank, len(run.val_ds), run.world)] if run.world > 1 else run.val_ds
    backend = TorchBackend.from_module(run.model, run.spec, device=run.device)
    cm = evaluate(backend, shard, batch=run.cfg.eval_batch, progress=run.cfg.progress and run.main_proc, desc="val")
    if run.world > 1:
        t = torch.from_numpy(cm.mat).to(run.device)
        dist.all_reduce(t)
        cm.mat = t.cpu().numpy()
    return cm.report(run.spec.classes)


def _check_weights(run: _Run, epoch: int) -> None:
    """Stop before scoring or saving weights that went non-finite (the last good checkpoint stays)."""
    bad = nonfinite_tensors(run.model.state_dict())
    if bad:
        raise _diverged(run, f"{sum(n for _, n in bad)} weights became NaN/Inf ({bad[0][0]}, ...)", epoch)


def _record(run: _Run, epoch: int, planned: int, mean_loss: float, report: dict[str, Any], seconds: float) -> None:
    """History row, last.pt (and best.pt when mIoU improved), metrics files and the epoch line."""
    fg = run.spec.classes[1]
    run.history.append({
        "epoch": epoch + 1,
        "train_loss": mean_loss,
        "val_pixel_accuracy": report["pixel_accuracy"],
        "val_miou": report["miou"],
        **{f"val_iou_{k}": v for k, v in report["iou"].items()},
        "lr": run.opt.param_groups[0]["lr"],
        "epoch_seconds": seconds,
        "fg_class": fg,
    })
    improved = report["miou"] > run.best
    run.best = max(run.best, report["miou"])
    if not run.main_proc:
        return
    cfg = run.cfg
    extra = {"optimizer": run.opt.state_dict(), "scaler": run.scaler.state_dict(), "best": run.best,
             "history": run.history}
    state = run.model.state_dict()
    save_checkpoint(run.last_path, Checkpoint(spec=run.spec, state_dict=state, train_config=cfg.to_dict(),
                                              metrics=report, epoch=epoch + 1, extra=extra))
    if improved:
        save_checkpoint(run.best_path, Checkpoint(spec=run.spec, state_dict=state, train_config=cfg.to_dict(),
                                                  metrics=report, epoch=epoch + 1))
    _write_history(run.out, run.history)
    iou_fg = report["iou"].get(fg)
    run.say(f"epoch {epoch + 1}/{planned}  loss {mean_loss:.4f}  mIoU {report['miou']:.4f}  "
            f"IoU[{fg}] {iou_fg if iou_fg is None else round(iou_fg, 4)}  ({seconds:.0f}s)" + ("  *best" if improved else ""))


def _fit_to_budget(run: _Run, epoch: int, planned: int, t_start: float) -> int:
    """With --max-minutes, shrink the planned epochs to what fits, so the LR schedule still anneals."""
    if run.cfg.max_minutes is None:
        return planned
    per_epoch = (time.monotonic() - t_start) / (epoch - run.start_epoch)
    fit = max(epoch, int(run.cfg.max_minutes * 60 / per_epoch))
    if fit >= planned:
        return planned
    if run.world > 1:  # every rank must agree on the number of epochs
        t = torch.tensor([fit], device=run.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        fit = int(t.item())
    run.say(f"--max-minutes {run.cfg.max_minutes:g}: {per_epoch:.0f}s per epoch, schedule fitted to {fit} epochs")
    return fit


def train(cfg: TrainConfig) -> Path:
    """Train a model and return the path of its best checkpoint (``<out>/best.pt``)."""
    run = _setup(cfg)
    tset, loader, sampler = _make_loader(run)
    steps_per_epoch = max(1, len(loader))
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    planned = cfg.epochs  # may shrink to fit --max-minutes
    t_start = time.monotonic()
    epoch = run.start_epoch
    while epoch < planned:
        tset.epoch = epoch
        if sampler is not None:
            sampler.set_epoch(epoch)
        torch.manual_seed(cfg.seed + epoch)
        t0 = time.monotonic()
        mean_loss = train_one_epoch(run, loader, epoch, planned, steps_per_epoch * planned, warmup)
        seconds = time.monotonic() - t0
        _check_weights(run, epoch)
        try:
            report = evaluate_epoch(run)
        except NonFiniteOutput:
            raise _diverged(run, "the model's outputs became NaN/Inf on the validation images", epoch) from None
        _record(run, epoch, planned, mean_loss, report, seconds)
        epoch += 1
        planned = _fit_to_budget(run, epoch, planned, t_start)
    _finish(run)
    return run.best_path


def _finish(run: _Run) -> None:
    if run.main_proc:
        write_json(run.out / "config.json", run.cfg.to_dict())
        write_json(run.out / "spec.json", run.spec.to_dict())
        _plot(run.history, run.out / "results.png")
        best_row = max(run.history, key=lambda h: h["val_miou"])
        run.say(format_report({"pixel_accuracy": best_row["val_pixel_accuracy"], "miou": best_row["val_miou"],
                               "iou": {c: best_row[f"val_iou_{c}"] for c in run.spec.classes}},
                              f"best epoch {best_row['epoch']} on {len(run.val_ds)} validation images:"))
    if run.world > 1:
        dist.barrier()
        dist.destroy_process_group()


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    keys = list(history[0].keys())
    with atomic_path(out / "metrics.csv") as tmp:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
    write_json(out / "metrics.json", history)


def _plot(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fg = history[0]["fg_class"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o")
    a.set(title="training loss", xlabel="epoch")
    b.plot(epochs, [h["val_miou"] for h in history], marker="o", label="mIoU")
    b.plot(epochs, [h["val_iou_" + fg] for h in history], marker="s", label=f"IoU {fg}")
    b.set(title="validation", xlabel="epoch", ylim=(0, 1))
    b.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
