"""rockedge checkpoints: weights + ModelSpec + training config + metrics, saved atomically.

Loading always uses ``torch.load(weights_only=True)``. Three inputs are understood:

* a rockedge checkpoint (a dict with ``format == "rockedge.checkpoint"``);
* the original project's format: a plain ``state_dict`` of torchvision's ``deeplabv3_resnet50`` whose
  ``classifier[4]`` was replaced by an N-class 1x1 conv, with the 21-class aux head still inside. The aux
  keys are dropped and reported; any other missing, unexpected or mis-shaped key is an error;
* a whole pickled ``nn.Module``, only with ``trust_pickle=True`` (unpickling runs arbitrary code).

A plain state_dict carries no class names, palette or input size: its spec is *assumed*
(``Checkpoint.spec_assumed``) and commands that know better (``--data``, ``--classes``) replace it.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rockedge.atomic import atomic_path
from rockedge.digest import sha256_file
from rockedge.errors import RockedgeError
from rockedge.models.zoo import CLASS_LAYERS, build_model, infer_arch, num_classes_of
from rockedge.spec import DEFAULT_CLASSES, ModelSpec, default_palette

FORMAT = "rockedge.checkpoint"
FORMAT_VERSION = 1
LEGACY_INPUT_SIZE = (520, 520)  # torchvision's DeepLabV3 training crop; override with --imgsz


@dataclass
class Checkpoint:
    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # optimizer / scheduler / scaler state for resume
    source_format: str = FORMAT
    notes: list[str] = field(default_factory=list)  # e.g. dropped aux keys, shown to the user
    sha256: str = ""
    spec_assumed: bool = False  # True for a plain state_dict: class names, palette and size were guessed

    def build(self) -> nn.Module:
        """A model in eval mode with these weights (keys checked strictly)."""
        model = build_model(arch=self.spec.arch, num_classes=self.spec.num_classes)
        load_state_dict_strict(model, self.state_dict)
        return model.eval()


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": ckpt.spec.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.state_dict.items()},
        "train_config": ckpt.train_config,
        "metrics": ckpt.metrics,
        "epoch": ckpt.epoch,
        **{f"extra.{k}": v for k, v in ckpt.extra.items()},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        sink = _WriteErrors(f)
        try:
            torch.save(payload, sink)
        except RuntimeError:
            # torch's zip writer turns a failed write (a full disk, ulimit -f) into "enforce fail at
            # inline_container.cc ... unexpected pos": raise the write's own OSError, which the error boundary
            # says in one line naming the checkpoint (atomic_path names it) and the cause.
            if sink.error is None:
                raise
            raise sink.error from None
    return Path(path)


class _WriteErrors:
    """A file for ``torch.save`` that remembers the first OSError of its writes (torch hides it)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.f.flush()


def load_checkpoint(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Checkpoint:
    """Load any checkpoint format rockedge understands (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise RockedgeError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust_pickle:
            raise RockedgeError(
                f"{path} contains pickled Python objects (e.g. a whole model), which can run arbitrary code when "
                "loaded; re-run with --trust-pickle only if you trust its source"
            ) from None
        obj = _load_pickle(path, e)
    except Exception as e:  # zip/EOF/runtime errors all mean an unreadable file
        raise RockedgeError(f"cannot read checkpoint {path}: not a PyTorch file or truncated ({type(e).__name__})") from None
    ckpt = _from_object(obj, path)
    ckpt.sha256 = sha256_file(path)
    return ckpt


def _load_pickle(path: Path, first_error: Exception) -> Any:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise RockedgeError(f"cannot unpickle {path}: {type(e).__name__}: {e}") from None
    if isinstance(obj, nn.Module):
        return {"__module__": obj.state_dict()}
    return obj


def _from_object(obj: Any, path: Path) -> Checkpoint:
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if obj.get("format_version", 0) > FORMAT_VERSION:
            raise RockedgeError(f"{path} was written by a newer rockedge (format {obj['format_version']}); upgrade")
        spec = ModelSpec.from_dict(obj["spec"], str(path))
        extra = {k.removeprefix("extra."): v for k, v in obj.items() if k.startswith("extra.")}
        return Checkpoint(
            spec=spec,
            state_dict=obj["state_dict"],
            train_config=obj.get("train_config", {}),
            metrics=obj.get("metrics", {}),
            epoch=int(obj.get("epoch", 0)),
            extra=extra,
        )
    source = "pickled-module" if isinstance(obj, dict) and "__module__" in obj else "state_dict"
    if source == "pickled-module":
        obj = obj["__module__"]
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # torchvision reference-script checkpoints
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RockedgeError(f"{path} is neither a rockedge checkpoint nor a DeepLabV3 state_dict")
    return _from_state_dict(dict(obj), source)


def _from_state_dict(sd: dict[str, torch.Tensor], source: str) -> Checkpoint:
    sd = {k.removeprefix("module."): v for k, v in sd.items()}  # DataParallel / DDP prefixes
    arch = infer_arch(sd)
    n = num_classes_of(sd, arch)
    notes: list[str] = []
    aux = sorted(k for k in sd if k.startswith("aux_classifier."))
    if aux:
        notes.append(f"dropped {len(aux)} aux_classifier keys (training-only auxiliary head): {', '.join(aux)}")
        sd = {k: v for k, v in sd.items() if not k.startswith("aux_classifier.")}
    classes = DEFAULT_CLASSES if n == 2 else ("background",) + tuple(f"class_{i}" for i in range(1, n))
    spec = ModelSpec(arch=arch, classes=classes, palette=default_palette(n), input_size=LEGACY_INPUT_SIZE)
    # Fail now, not at export time, on anything but the aux head.
    load_state_dict_strict(build_model(arch=arch, num_classes=n), sd)
    return Checkpoint(spec=spec, state_dict=sd, source_format=source, notes=notes, spec_assumed=True)


def nonfinite_tensors(state_dict: dict[str, torch.Tensor]) -> list[tuple[str, int]]:
    """(name, count) of every floating-point tensor holding NaN or Inf, in state_dict order."""
    bad = []
    for name, t in state_dict.items():
        if torch.is_tensor(t) and t.is_floating_point():
            n = int((~torch.isfinite(t)).sum())
            if n:
                bad.append((name, n))
    return bad


def require_finite(state_dict: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights that hold NaN/Inf (a diverged run, a bad merge): such a model cannot be verified."""
    bad = nonfinite_tensors(state_dict)
    if bad:
        total = sum(n for _, n in bad)
        names = ", ".join(f"{k} ({n})" for k, n in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise RockedgeError(
            f"{where} has {total} non-finite weight values (NaN/Inf) in {len(bad)} tensors: {names}; "
            "the model diverged or the file is damaged: use an earlier checkpoint"
        )


def load_state_dict_strict(model: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """Load with every key accounted for; the error names the keys (unlike ``strict=False``)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in sd and sd[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{len(items)} {label} keys: {', '.join(items[:3])}{more}")
        raise RockedgeError("weights do not fit the model: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def init_from(model: nn.Module, ckpt: Checkpoint, spec: ModelSpec, where: str) -> str:
    """Start ``model`` (built for ``spec``) from ``ckpt``'s weights, for fine-tuning; returns the one line that says
    what was kept. Every layer is taken from the checkpoint, except the class head when the classes differ (other
    names or another count): it is re-made, as ``yolo train model=best.pt`` does for a new dataset
    (``rockedge train --model CKPT``)."""
    if ckpt.spec.arch != spec.arch:
        raise RockedgeError(f"{where} is a {ckpt.spec.arch}, not a {spec.arch}: drop --arch, or give a {spec.arch} "
                            "checkpoint")
    require_finite(ckpt.state_dict, where)
    same = ckpt.spec.classes == spec.classes or (ckpt.spec_assumed and ckpt.spec.num_classes == spec.num_classes)
    if same:
        load_state_dict_strict(model, ckpt.state_dict)
        return f"starting from {where} (every layer; classes {', '.join(spec.classes)})"
    head = CLASS_LAYERS[spec.arch]
    sd = {k: v for k, v in ckpt.state_dict.items() if not k.startswith(head)}
    own = model.state_dict()
    load_state_dict_strict(model, {**sd, **{k: v for k, v in own.items() if k.startswith(head)}})
    theirs = "unnamed classes" if ckpt.spec_assumed else ", ".join(ckpt.spec.classes)
    return (f"starting from {where}: its {ckpt.spec.num_classes} classes ({theirs}) are not the data's "
            f"{spec.num_classes} ({', '.join(spec.classes)}), so the class head is re-made; every other layer "
            "comes from the checkpoint")
