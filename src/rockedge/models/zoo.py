"""Model builders: torchvision DeepLabV3 (ResNet-50, MobileNetV3) and LR-ASPP (MobileNetV3), keyword-only.

Shared by training, export and the PyTorch backend, so it belongs to none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rockedge.errors import RockedgeError
from rockedge.spec import ARCHITECTURES


def _tv_builders() -> dict[str, Callable[..., nn.Module]]:
    from torchvision.models import segmentation as seg

    return {
        "deeplabv3_resnet50": seg.deeplabv3_resnet50,
        "deeplabv3_mobilenet_v3_large": seg.deeplabv3_mobilenet_v3_large,
        "lraspp_mobilenet_v3_large": seg.lraspp_mobilenet_v3_large,
    }


def _imagenet_weights(arch: str) -> Any:
    from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights

    return {
        "deeplabv3_resnet50": ResNet50_Weights.IMAGENET1K_V1,
        "deeplabv3_mobilenet_v3_large": MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        "lraspp_mobilenet_v3_large": MobileNet_V3_Large_Weights.IMAGENET1K_V1,
    }[arch]


def check_arch(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise RockedgeError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    return arch


def build_model(
    *,
    arch: str,
    num_classes: int,
    aux_loss: bool = False,
    pretrained: bool = False,
    backbone_weights: str | Path | None = None,
) -> nn.Module:
    """Build a DeepLabV3 model. ``pretrained`` downloads ImageNet backbone weights (needs the network);
    ``backbone_weights`` loads them from a local torchvision ImageNet classifier state_dict instead."""
    check_arch(arch)
    if pretrained and backbone_weights:
        raise RockedgeError("use either --pretrained or --backbone-weights, not both")
    weights_backbone = None
    if pretrained:
        weights_backbone = _imagenet_weights(arch)
        try:
            weights_backbone.get_state_dict(progress=False)  # download now, so failure is one clear line
        except Exception as e:  # urllib raises many types; all mean "could not fetch"
            raise RockedgeError(
                f"could not download ImageNet weights for {arch} ({type(e).__name__}); this machine looks offline. "
                f"Download {weights_backbone.url} elsewhere and pass it with --backbone-weights PATH"
            ) from None
    kwargs: dict[str, Any] = {} if arch.startswith("lraspp") else {"aux_loss": aux_loss}  # LR-ASPP has no aux head
    model = _tv_builders()[arch](weights=None, weights_backbone=weights_backbone, num_classes=num_classes, **kwargs)
    if backbone_weights:
        load_backbone_weights(model, arch, Path(backbone_weights))
    set_bn_momentum(model, 0.1)
    return model


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """torchvision's MobileNetV3 uses BatchNorm momentum 0.01, tuned for 600-epoch ImageNet runs. On the short
    runs rockedge does (hundreds of steps), running statistics then stay near their initial values and the
    model predicts one class in eval mode although it learned in train mode; 0.1 converges in ~50 steps."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def load_backbone_weights(model: nn.Module, arch: str, path: Path) -> None:
    """Load a torchvision ImageNet classifier state_dict (resnet50 / mobilenet_v3_large) into the backbone."""
    if not path.is_file():
        raise RockedgeError(f"backbone weights file not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RockedgeError(f"cannot read backbone weights {path}: {e}") from None
    if not isinstance(sd, dict):
        raise RockedgeError(f"{path} is not a state_dict")
    if arch.endswith("mobilenet_v3_large"):
        sd = {k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")}
    else:
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    backbone = model.backbone  # type: ignore[attr-defined]
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(sd))
    extra = sorted(k for k in sd if k not in expected)
    bad = sorted(k for k in expected if k in sd and sd[k].shape != expected[k].shape)
    if missing or bad:
        raise RockedgeError(
            f"{path} does not fit the {arch} backbone: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(bad)} shape mismatches (e.g. {bad[:3]})"
        )
    # Extra keys in an ImageNet checkpoint are layers the segmentation backbone does not use.
    backbone.load_state_dict({k: v for k, v in sd.items() if k not in extra})


# The layer whose output channels are the classes, per architecture.
HEAD_KEYS = {
    "deeplabv3_resnet50": "classifier.4.weight",
    "deeplabv3_mobilenet_v3_large": "classifier.4.weight",
    "lraspp_mobilenet_v3_large": "classifier.high_classifier.weight",
}


# Every layer whose output channels are the classes (weight and bias), per architecture: what fine-tuning on other
# classes re-makes.
CLASS_LAYERS = {
    "deeplabv3_resnet50": ("classifier.4.",),
    "deeplabv3_mobilenet_v3_large": ("classifier.4.",),
    "lraspp_mobilenet_v3_large": ("classifier.low_classifier.", "classifier.high_classifier."),
}


def infer_arch(state_dict: dict[str, torch.Tensor]) -> str:
    """Guess the architecture of a torchvision DeepLabV3 / LR-ASPP state_dict from its key names."""
    keys = state_dict.keys()
    if any(k.startswith("backbone.layer4.") for k in keys):
        return "deeplabv3_resnet50"
    if any(k.startswith("backbone.16.") for k in keys):
        if "classifier.high_classifier.weight" in keys:
            return "lraspp_mobilenet_v3_large"
        return "deeplabv3_mobilenet_v3_large"
    raise RockedgeError("cannot tell the architecture of this state_dict (not a torchvision DeepLabV3 or LR-ASPP)")


def num_classes_of(state_dict: dict[str, torch.Tensor], arch: str) -> int:
    """How many classes a state_dict's head predicts."""
    head = state_dict.get(HEAD_KEYS[arch])
    if head is None:
        raise RockedgeError(f"state_dict has no {HEAD_KEYS[arch]}: not a torchvision {arch} head")
    return int(head.shape[0])


def main_output(out: Any) -> torch.Tensor:
    """torchvision segmentation models return ``{"out": logits, ["aux": ...]}``; the logits are what rockedge uses."""
    return out["out"] if isinstance(out, dict) else out
