"""The training loop: paired augmentation, weighted CE + Dice, AMP on CUDA, per-epoch evaluation,
best/last checkpoints, resume, CSV/JSON metrics and a PNG plot.

Multi-GPU training goes through ``torchrun`` (DistributedDataParallel): when ``WORLD_SIZE`` > 1 the
loop initialises the process group (NCCL on CUDA, gloo on CPU), shards data with DistributedSampler,
reduces the confusion matrix across ranks, and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from rockedge.atomic import atomic_path, ensure_writable_dir, write_json
from rockedge.errors import RockedgeError
from rockedge.evaluation import evaluate, format_report
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.preprocess import normalize
from rockedge.spec import ModelSpec
from rockedge.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rockedge.train.loss import SegLoss, class_weights
from rockedge.train.models import build_model, check_arch
from rockedge.train.transforms import AugmentConfig, train_transform


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/exp"
    arch: str = "deeplabv3_mobilenet_v3_large"
    epochs: int = 10
    batch: int = 8
    imgsz: tuple[int, int] = (256, 256)  # (height, width) of training crops and of the exported model
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
    resume: bool = False
    max_minutes: float | None = None  # stop after the epoch that crosses this wall-clock budget
    eval_batch: int = 4
    progress: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["imgsz"] = list(self.imgsz)
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
        img, mask = train_transform(img, mask, self.cfg.imgsz, self.cfg.augment, rng)
        x = normalize(img[None], self.spec)[0]
        return torch.from_numpy(x), torch.from_numpy(mask.astype(np.int64))


class LiveModel(Backend):
    """A model being trained, behind the Backend interface so evaluation is the same code as ``rockedge eval``."""

    name = "torch-live"

    def __init__(self, model: nn.Module, spec: ModelSpec, device: torch.device) -> None:
        super().__init__(spec)
        self.model, self.device = model, device

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        with torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            out = self.model(torch.from_numpy(batch).to(self.device))["out"]
        return out.float().cpu().numpy()


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


def _plot(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o")
    a.set(title="training loss", xlabel="epoch")
    b.plot(epochs, [h["val_miou"] for h in history], marker="o", label="mIoU")
    b.plot(epochs, [h["val_iou_" + h["fg_class"]] for h in history], marker="s", label=f"IoU {history[0]['fg_class']}")
    b.set(title="validation", xlabel="epoch", ylim=(0, 1))
    b.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def train(cfg: TrainConfig) -> Path:
    """Train a model and return the path of its best checkpoint (``<out>/best.pt``)."""
    from rockedge.data.datasets import open_dataset

    check_arch(cfg.arch)
    if cfg.epochs < 1 or cfg.batch < 1:
        raise RockedgeError("--epochs and --batch must be >= 1")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _pick_device(cfg.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    main_proc = rank == 0
    out = Path(cfg.out)
    if main_proc:
        ensure_writable_dir(out)

    train_ds = open_dataset(cfg.data, "train")
    val_ds = open_dataset(cfg.data, "val")
    if len(train_ds) == 0:
        raise RockedgeError(f"no training images found in {cfg.data}")
    spec = ModelSpec(arch=cfg.arch, classes=train_ds.classes, palette=train_ds.palette, input_size=tuple(cfg.imgsz))
    torch.manual_seed(cfg.seed)

    model = build_model(
        arch=cfg.arch, num_classes=spec.num_classes, pretrained=cfg.pretrained, backbone_weights=cfg.backbone_weights
    ).to(device)
    # NHWC activations: ~20 % faster convolutions with oneDNN on the CPU at 256 px, and the layout
    # tensor cores want under CUDA AMP. Weights stay interchangeable (state_dict is layout-free).
    model = model.to(memory_format=torch.channels_last)
    weights = class_weights(_pixel_counts(train_ds, spec.num_classes)).to(device)
    criterion = SegLoss(weights, dice_weight=cfg.dice_weight, ignore_index=spec.ignore_index).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, best, history = 0, -1.0, []
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.resume:
        if not last_path.is_file():
            raise RockedgeError(f"--resume: no {last_path} to resume from")
        ck = load_checkpoint(last_path)
        if ck.spec.arch != cfg.arch or ck.spec.classes != spec.classes:
            raise RockedgeError(f"--resume: {last_path} is a {ck.spec.arch} with classes {list(ck.spec.classes)}")
        model.load_state_dict(ck.state_dict)
        opt.load_state_dict(ck.extra["optimizer"])
        scaler.load_state_dict(ck.extra.get("scaler", {}))
        start_epoch, best = ck.epoch, float(ck.extra.get("best", -1.0))
        history = list(ck.extra.get("history", []))
        if start_epoch >= cfg.epochs:
            raise RockedgeError(f"--resume: {last_path} already finished {start_epoch} of {cfg.epochs} epochs")

    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    tset = _TrainSet(train_ds, spec, cfg)
    sampler = DistributedSampler(tset, num_replicas=world, rank=rank, seed=cfg.seed, shuffle=True) if world > 1 else None
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        tset,
        batch_size=cfg.batch,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=len(tset) >= cfg.batch * world * 2,
        generator=gen,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    steps_per_epoch = max(1, len(loader))
    total_steps = steps_per_epoch * cfg.epochs
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    fg = spec.classes[1]
    t_start = time.monotonic()

    planned = cfg.epochs  # may shrink to fit --max-minutes, so the LR schedule still ends at its floor
    epoch = start_epoch
    while epoch < planned:
        tset.epoch = epoch
        if sampler is not None:
            sampler.set_epoch(epoch)
        torch.manual_seed(cfg.seed + epoch)
        ddp_model.train()
        t0 = time.monotonic()
        losses: list[float] = []
        it: Any = loader
        if cfg.progress and main_proc:
            from tqdm import tqdm

            it = tqdm(loader, desc=f"epoch {epoch + 1}/{planned}", unit="batch", leave=False)
        for step, (x, y) in enumerate(it):
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(epoch * steps_per_epoch + step, total_steps, warmup)
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=use_amp):
                loss = criterion(ddp_model(x)["out"], y)
            if not torch.isfinite(loss):
                raise RockedgeError(f"loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())
            if hasattr(it, "set_postfix"):
                it.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        train_time = time.monotonic() - t0

        # Evaluation: each rank scores its shard, confusion matrices are summed.
        model.eval()
        shard = [val_ds[i] for i in range(rank, len(val_ds), world)] if world > 1 else val_ds
        cm = evaluate(LiveModel(model, spec, device), shard, batch=cfg.eval_batch, progress=cfg.progress and main_proc)
        if world > 1:
            t = torch.from_numpy(cm.mat).to(device)
            dist.all_reduce(t)
            cm.mat = t.cpu().numpy()
            loss_t = torch.tensor([float(np.mean(losses)) if losses else 0.0], device=device)
            dist.all_reduce(loss_t)
            mean_loss = loss_t.item() / world
        else:
            mean_loss = float(np.mean(losses)) if losses else float("nan")
        report = cm.report(spec.classes)
        row = {
            "epoch": epoch + 1,
            "train_loss": mean_loss,
            "val_pixel_accuracy": report["pixel_accuracy"],
            "val_miou": report["miou"],
            **{f"val_iou_{k}": v for k, v in report["iou"].items()},
            "lr": opt.param_groups[0]["lr"],
            "epoch_seconds": train_time,
            "fg_class": fg,
        }
        history.append(row)
        improved = report["miou"] > best
        best = max(best, report["miou"])
        if main_proc:
            extra = {"optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "best": best, "history": history}
            ck = Checkpoint(spec=spec, state_dict=model.state_dict(), train_config=cfg.to_dict(),
                            metrics=report, epoch=epoch + 1, extra=extra)
            save_checkpoint(last_path, ck)
            if improved:
                save_checkpoint(best_path, Checkpoint(spec=spec, state_dict=model.state_dict(),
                                                      train_config=cfg.to_dict(), metrics=report, epoch=epoch + 1))
            _write_history(out, history)
            if cfg.progress:
                iou_fg = report["iou"].get(fg)
                print(
                    f"epoch {epoch + 1}/{planned}  loss {mean_loss:.4f}  mIoU {report['miou']:.4f}  "
                    f"IoU[{fg}] {iou_fg if iou_fg is None else round(iou_fg, 4)}  ({train_time:.0f}s)"
                    + ("  *best" if improved else ""),
                    flush=True,
                )
        epoch += 1
        if cfg.max_minutes is not None:
            elapsed = time.monotonic() - t_start
            per_epoch = elapsed / (epoch - start_epoch)
            fit = max(epoch, int(cfg.max_minutes * 60 / per_epoch))
            if fit < planned:
                if world > 1:  # every rank must agree on the number of epochs
                    t = torch.tensor([fit], device=device)
                    dist.all_reduce(t, op=dist.ReduceOp.MIN)
                    fit = int(t.item())
                planned = fit
                total_steps = steps_per_epoch * planned
                if main_proc and cfg.progress:
                    print(f"--max-minutes {cfg.max_minutes:g}: {per_epoch:.0f}s per epoch, schedule fitted to "
                          f"{planned} epochs", flush=True)

    if main_proc:
        write_json(out / "config.json", cfg.to_dict())
        write_json(out / "spec.json", spec.to_dict())
        _plot(history, out / "results.png")
        if cfg.progress:
            best_row = max(history, key=lambda h: h["val_miou"])
            print(format_report({"pixel_accuracy": best_row["val_pixel_accuracy"], "miou": best_row["val_miou"],
                                 "iou": {c: best_row[f"val_iou_{c}"] for c in spec.classes}},
                                f"best epoch {best_row['epoch']} on {len(val_ds)} validation images:"))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return best_path


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    keys = list(history[0].keys())
    with atomic_path(out / "metrics.csv") as tmp:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
    write_json(out / "metrics.json", history)

