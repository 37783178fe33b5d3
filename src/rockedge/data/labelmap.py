"""CVAT / Pascal VOC ``labelmap.txt``: class names and their RGB mask colours.

The format is one ``label:color_rgb:parts:actions`` line per class, in class-index order, with
``#`` comments. CVAT's "Segmentation mask 1.1" export writes it beside ``SegmentationClass/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rockedge import atomic
from rockedge.errors import RockedgeError
from rockedge.spec import DEFAULT_CLASSES, DEFAULT_PALETTE

HEADER = "# label:color_rgb:parts:actions"


@dataclass(frozen=True)
class LabelMap:
    """Class names and one RGB colour per class; the position in the tuples is the class index."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]  # RGB

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "colors", tuple(tuple(int(v) for v in c) for c in self.colors))
        if len(self.names) != len(self.colors):
            raise RockedgeError(f"labelmap has {len(self.names)} names but {len(self.colors)} colours")
        if not self.names:
            raise RockedgeError("labelmap has no classes")
        if len(set(self.names)) != len(self.names):
            raise RockedgeError(f"labelmap class names must be unique, got {list(self.names)}")
        for name, c in zip(self.names, self.colors):
            if len(c) != 3 or not all(0 <= v <= 255 for v in c):
                raise RockedgeError(f"labelmap colour of {name!r} is not an RGB triple of 0-255 values: {c}")
        if len(set(self.colors)) != len(self.colors):
            # Two classes with one colour cannot be told apart in a colour mask.
            raise RockedgeError(f"labelmap colours must be unique, got {list(self.colors)}")

    @classmethod
    def default(cls) -> "LabelMap":
        """background 0,0,0 and rock 250,50,83, as in :mod:`rockedge.spec`."""
        return cls(DEFAULT_CLASSES, DEFAULT_PALETTE)

    def __len__(self) -> int:
        return len(self.names)


def read_labelmap(path: str | os.PathLike[str]) -> LabelMap:
    """Parse a CVAT ``labelmap.txt`` (``label:color_rgb:parts:actions`` per line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RockedgeError(f"cannot read labelmap {path}: {e.strerror or e}") from None
    names: list[str] = []
    colors: list[tuple[int, int, int]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 2:
            raise RockedgeError(f"{path}:{lineno}: expected 'label:R,G,B:parts:actions', got {line!r}")
        try:
            rgb = tuple(int(v) for v in parts[1].split(","))
        except ValueError:
            rgb = ()
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise RockedgeError(f"{path}:{lineno}: colour {parts[1]!r} of {parts[0]!r} is not R,G,B with 0-255 values")
        names.append(parts[0].strip())
        colors.append(rgb)  # type: ignore[arg-type]
    if not names:
        raise RockedgeError(f"labelmap {path} lists no classes")
    try:
        return LabelMap(tuple(names), tuple(colors))
    except RockedgeError as e:
        raise RockedgeError(f"{path}: {e}") from None


def write_labelmap(path: str | os.PathLike[str], labelmap: LabelMap) -> None:
    """Write ``labelmap`` in the CVAT format (atomically)."""
    lines = [HEADER] + [f"{n}:{r},{g},{b}::" for n, (r, g, b) in zip(labelmap.names, labelmap.colors)]
    atomic.write_text(path, "\n".join(lines) + "\n")


def colors_to_index(rgb: np.ndarray, colors: tuple[tuple[int, int, int], ...], source: str) -> np.ndarray:
    """Map an ``HxWx3`` RGB colour mask to class indices; a colour not in ``colors`` is an error naming ``source``."""
    keys = _keys(rgb.reshape(-1, 3))
    table = _keys(np.asarray(colors, dtype=np.uint8).reshape(-1, 3))
    order = np.argsort(table, kind="stable")  # duplicate palette entries: the first index wins
    sorted_table = table[order]
    # searchsorted over a handful of colours beats np.unique on millions of pixels.
    pos = np.clip(np.searchsorted(sorted_table, keys), 0, len(sorted_table) - 1)
    hit = sorted_table[pos] == keys
    if not hit.all():
        bad = int(keys[np.argmin(hit)])
        count = int((~hit).sum())
        known = "; ".join(",".join(map(str, c)) for c in colors)
        raise RockedgeError(
            f"{source}: colour RGB {bad >> 16},{(bad >> 8) & 255},{bad & 255} ({count} pixels) is not in the "
            f"labelmap ({known})"
        )
    return order[pos].astype(np.uint8).reshape(rgb.shape[:2])


def _keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
