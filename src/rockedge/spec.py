"""ModelSpec: everything a deployed model needs to be used correctly, travelling with every artifact.

A checkpoint stores it beside the weights, an ONNX file stores it in ``metadata_props`` under
:data:`METADATA_KEY`, a TensorRT engine stores it in the manifest beside the ``.plan``. Nothing
here imports torch or onnx.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rockedge._version import __version__
from rockedge.errors import RockedgeError

METADATA_KEY = "rockedge.spec"
# ONNX metadata key of the artifact's precision (fp32 | fp16 | int8); absent means fp32.
PRECISION_KEY = "rockedge.precision"
# ONNX metadata key of an INT8 model's layout: "tensorrt" (symmetric int8 Q/DQ on Conv/Add inputs, what TensorRT
# fuses) or "cpu" (ONNX Runtime's own QDQ: uint8 activations around every quantizable op, int8 weights stored as
# int8, what its CPU provider runs as int8 kernels). Absent on an INT8 model: "tensorrt" (older exports).
INT8_TARGET_KEY = "rockedge.int8_target"
INT8_TARGETS = ("tensorrt", "cpu")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CLASSES = ("background", "rock")
# Colours of the seed-rocks labelmap (background 0,0,0; rocks 250,50,83), RGB.
DEFAULT_PALETTE = ((0, 0, 0), (250, 50, 83))
# Mask value meaning "not labelled": skipped by the loss and by every metric.
IGNORE_INDEX = 255
# A class of this name marks rock rims (a model trained with ``train --boundary``): the runtime shows it as rock and
# splits touching rocks at it (rockedge.data.boundary).
BOUNDARY = "boundary"

# ResNet-50 is the reference model, MobileNetV3 the edge option, LR-ASPP the real-time head for Jetsons.
ARCHITECTURES = ("deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")

# "float": float32 NCHW RGB, already scaled to [0, 1] and normalised with mean/std.
# "raw": uint8 NHWC BGR frames exactly as OpenCV delivers them; the graph normalises.
INPUT_FORMATS = ("float", "raw")
# "logits": float (N, C, H, W). "mask": integer (N, H, W) class indices (ArgMax inside the graph).
OUTPUT_FORMATS = ("logits", "mask")
RESIZE_MODES = ("resize", "letterbox")
# The tensors a rockedge export has: one input, one output named by its format. A "mask" output is ArgMax in the
# graph cast to int32: ArgMax yields int64, which TensorRT before 10 cannot output and which doubles the copy off
# the GPU; int32 is TensorRT's own index type (its TopK, which implements ArgMax, returns int32), so the Cast is free
# there; uint8 would be smaller still but TensorRT < 9 allows uint8 only as a network *input*.
INPUT_NAME = "images"
OUTPUT_NAMES = {"logits": "logits", "mask": "mask"}
MASK_DTYPE = "int32"


def _seq(name: str, value: Any, convert: Any, kind: str) -> tuple[Any, ...]:
    """``value`` as a tuple of ``convert``-ed items, or one line naming the field and what it should be."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise RockedgeError(f"spec field {name!r} must be a list of {kind}, got {value!r}")
    try:
        out = tuple(convert(v) for v in value)
    except (TypeError, ValueError):
        raise RockedgeError(f"spec field {name!r} must be a list of {kind}, got {value!r}") from None
    return out


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(v)
    f = float(v)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(v)
    return f


def _integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) != int(v):
        raise TypeError(v)
    return int(v)


def _name(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(v)
    return v


def _rgb(c: Any) -> tuple[int, int, int]:
    t = _seq("palette", c, _integer, "0-255 integers per colour") if not isinstance(c, tuple) else tuple(c)
    if len(t) != 3 or not all(0 <= v <= 255 for v in t):
        raise RockedgeError(f"palette colour {c!r} is not an RGB triple of 0-255 values")
    return t  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and how to feed it. Frozen: derive variants with :meth:`replace`."""

    arch: str
    classes: tuple[str, ...] = DEFAULT_CLASSES
    palette: tuple[tuple[int, int, int], ...] = DEFAULT_PALETTE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: tuple[int, int] = (512, 512)  # (height, width)
    input_format: str = "float"
    output_format: str = "logits"
    resize: str = "resize"
    ignore_index: int = IGNORE_INDEX
    rockedge_version: str = __version__

    def __post_init__(self) -> None:
        # Normalise containers (JSON gives lists) and validate once, here, so every consumer can trust it.
        object.__setattr__(self, "classes", _seq("classes", self.classes, _name, "class names"))
        object.__setattr__(self, "palette", tuple(_rgb(c) for c in _seq("palette", self.palette, lambda c: c,
                                                                          "[R, G, B] colours")))
        object.__setattr__(self, "mean", _seq("mean", self.mean, _number, "3 finite numbers"))
        object.__setattr__(self, "std", _seq("std", self.std, _number, "3 finite numbers"))
        object.__setattr__(self, "input_size", _seq("input_size", self.input_size, _integer, "2 integers"))
        for name in ("arch", "input_format", "output_format", "resize"):
            if not isinstance(getattr(self, name), str):
                raise RockedgeError(f"spec field {name!r} must be a string, got {getattr(self, name)!r}")
        if len(self.classes) < 2:
            raise RockedgeError(f"a model needs at least 2 classes, got {list(self.classes)}")
        if len(set(self.classes)) != len(self.classes):
            raise RockedgeError(f"class names must be unique, got {list(self.classes)}")
        if len(self.palette) != len(self.classes):
            raise RockedgeError(
                f"{len(self.classes)} classes but {len(self.palette)} palette colours; give one colour per class"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise RockedgeError("mean and std need 3 values each, std > 0")
        if len(self.input_size) != 2 or any(v < 16 for v in self.input_size):
            raise RockedgeError(f"input size must be (height, width), each >= 16, got {self.input_size}")
        for name, value, allowed in (
            ("input_format", self.input_format, INPUT_FORMATS),
            ("output_format", self.output_format, OUTPUT_FORMATS),
            ("resize", self.resize, RESIZE_MODES),
        ):
            if value not in allowed:
                raise RockedgeError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")

    # -- derived -------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def boundary_index(self) -> int | None:
        """Index of the rock-boundary class (see :data:`BOUNDARY`), None for a model without one."""
        return self.classes.index(BOUNDARY) if BOUNDARY in self.classes else None

    @property
    def rock_classes(self) -> tuple[str, ...]:
        """The classes a frame's rocks are of: all but the background (index 0) and the boundary."""
        return tuple(c for i, c in enumerate(self.classes) if i and c != BOUNDARY)

    @property
    def input_layout(self) -> str:
        return "NHWC" if self.input_format == "raw" else "NCHW"

    @property
    def height(self) -> int:
        return self.input_size[0]

    @property
    def width(self) -> int:
        return self.input_size[1]

    def replace(self, **changes: Any) -> "ModelSpec":
        return replace(self, **changes)

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_layout"] = self.input_layout  # informative for readers that are not rockedge
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "") -> "ModelSpec":
        """A spec from JSON data; ``where`` names its source in the one-line error of a malformed one."""
        if not isinstance(d, dict) or "arch" not in d:
            raise RockedgeError(f"the model spec{' of ' + where if where else ''} is missing or has no 'arch'")
        known = {f.name for f in fields(cls)}
        # Unknown keys come from newer rockedge versions; derived keys are recomputed.
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except RockedgeError as e:
            if not where:
                raise
            raise RockedgeError(f"the model spec of {where} is invalid: {e}; re-export the model or rewrite its spec "
                                "(rockedge spec write)") from None

    @classmethod
    def from_json(cls, text: str, where: str = "") -> "ModelSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise RockedgeError(f"the model spec{' of ' + where if where else ''} is not valid JSON: {e}") from None
        return cls.from_dict(d, where)


def default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """Colours for ``n`` classes: background black and rock (250, 50, 83) first, then well-spread hues."""
    extra = [(int(37 * i) % 256, int(97 * i + 80) % 256, int(173 * i + 40) % 256) for i in range(2, n)]
    return tuple((list(DEFAULT_PALETTE) + extra)[:n])
