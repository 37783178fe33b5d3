"""One parser and one validator for every image size rockedge takes.

``--imgsz`` (model and scene sizes) follows Ultralytics: one integer for a square (``512``) or
``HxW`` for a rectangle (``384x640``), height first as in every tensor shape. ``--resolution`` (a
video's frame size) follows ffmpeg and v4l2: ``WxH`` (``1920x1080``). Both go through
:func:`parse_size`, so they accept the same spellings and fail with the same message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rockedge.errors import RockedgeError

MIN_SIDE = 16
MAX_SIDE = 8192
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:[x,X*]\s*(\d+)\s*)?$")


def parse_size(value: str | int | Sequence[int] | None, *, order: str = "hw", what: str = "--imgsz",
               min_side: int = MIN_SIDE) -> tuple[int, int] | None:
    """``512`` / ``"512"`` -> (512, 512); ``"384x640"`` -> (height, width) in ``order`` ("hw" or "wh");
    a 2-sequence is taken as (height, width). None stays None."""
    if value is None:
        return None
    example = "512 or 384x640 (HxW)" if order == "hw" else "1920x1080 (WxH)"
    if isinstance(value, int):
        a = b = value
    elif isinstance(value, str):
        m = _SIZE_RE.match(value)
        if not m:
            raise RockedgeError(f"{what} {value!r}: give one integer or two joined by 'x', e.g. {example}")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if order == "wh":
            a, b = b, a
    else:
        try:
            a, b = (int(v) for v in value)
        except (TypeError, ValueError):
            raise RockedgeError(f"{what} {value!r}: give one integer or two joined by 'x', e.g. {example}") from None
    h, w = a, b
    if not (min_side <= h <= MAX_SIDE and min_side <= w <= MAX_SIDE):
        shown = f"{h}x{w} (HxW)" if order == "hw" else f"{w}x{h} (WxH)"
        raise RockedgeError(f"{what} {shown} is out of range: each side must be {min_side}..{MAX_SIDE} pixels")
    return (h, w)


def format_hw(size_hw: Sequence[int]) -> str:
    """(384, 640) -> "384x640", the spelling --imgsz takes back."""
    h, w = size_hw
    return f"{h}x{w}"
