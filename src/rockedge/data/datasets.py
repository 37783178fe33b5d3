"""Segmentation datasets on disk: Pascal VOC / CVAT "Segmentation mask 1.1" and plain folders.

Every sample is ``(image, mask)``: the image BGR uint8 ``HxWx3`` as OpenCV reads it, the mask uint8
``HxW`` class indices with 255 = ignore. Colour masks are mapped through the labelmap, never through
grayscale: the project rockedge grew out of turned its rock colour into class 0 that way.

Layouts (see docs/data.md):

* VOC: ``labelmap.txt``, ``JPEGImages/``, ``SegmentationClass/``, ``ImageSets/Segmentation/*.txt``.
* Folders: ``root/{train,val}/{images,masks}/`` or ``root/{images,masks}/``, optional ``root/labelmap.txt``.

A layout without explicit splits gets a deterministic holdout: the last ``max(1, round(0.2 * n))``
ids in natural sort order are ``val``.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rockedge.data.labelmap import LabelMap, colors_to_index, read_labelmap
from rockedge.errors import RockedgeError
from rockedge.media import IMAGE_SUFFIXES, imread
from rockedge.spec import IGNORE_INDEX

SPLITS = ("train", "val", "all")
HOLDOUT_FRACTION = 0.2


@dataclass(eq=False)
class SegDataset(Sequence):
    """A list of ``(image path, mask path)`` pairs that decodes to ``(BGR image, index mask)`` on access."""

    root: Path
    split: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]  # RGB
    samples: list[tuple[Path, Path]] = field(default_factory=list)
    ignore_index: int = IGNORE_INDEX
    # True when a labelmap defines the colours: then every 3-channel mask must use exactly them.
    # Without one, a gray 3-channel mask (R == G == B) is read as indices, anything else via the default palette.
    strict_colors: bool = False
    layout: str = "folders"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        if isinstance(i, slice):
            raise TypeError("SegDataset does not support slicing; index one sample at a time")
        image_path, mask_path = self.samples[i]
        image = read_image(image_path)
        mask = read_mask(mask_path, self.palette, strict_colors=self.strict_colors)
        if image.shape[:2] != mask.shape:
            raise RockedgeError(
                f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} (HxW) but image {image_path} is "
                f"{image.shape[0]}x{image.shape[1]}; they must match"
            )
        bad = (mask >= len(self.classes)) & (mask != self.ignore_index)
        if bad.any():
            raise RockedgeError(
                f"mask {mask_path} has class index {int(mask[bad].max())} but the dataset has "
                f"{len(self.classes)} classes ({', '.join(self.classes)}); use 0-{len(self.classes) - 1} or 255 = ignore"
            )
        return image, mask

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def instance_path(self, i: int) -> Path | None:
        """Sample ``i``'s instance mask, where the layout keeps one: ``<split>/instances/<name>.png`` beside
        ``masks/`` (what ``data synth`` writes), or VOC/CVAT's ``SegmentationObject/<id>.png``; else None."""
        _, mask_path = self.samples[i]
        folder = (self.root / "SegmentationObject") if self.layout == "voc" else mask_path.parent.parent / "instances"
        for suffix in (".png", mask_path.suffix):
            p = folder / f"{mask_path.stem}{suffix}"
            if p.is_file():
                return p
        return None

    @property
    def has_instances(self) -> bool:
        """Every sample has an instance mask."""
        return len(self) > 0 and all(self.instance_path(i) is not None for i in range(len(self)))

    def instances(self, i: int) -> np.ndarray:
        """Sample ``i``'s rocks as an int32 instance map (0 = none, 1..n = rocks); see :func:`read_instances`."""
        p = self.instance_path(i)
        if p is None:
            raise RockedgeError(f"{self.samples[i][1].name} has no instance mask (instances/<name>.png or "
                                "SegmentationObject/<id>.png): rock-by-rock scores need one per image")
        inst = read_instances(p)
        return split_components(inst) if self.layout == "voc" else inst

    def __repr__(self) -> str:
        return f"SegDataset({str(self.root)!r}, split={self.split!r}, {len(self)} samples, classes={self.classes})"


def open_dataset(root: str | os.PathLike[str], split: str = "train") -> SegDataset:
    """Open a VOC/CVAT or plain-folder dataset; ``split`` is ``train``, ``val`` or ``all``."""
    root = Path(root)
    if split not in SPLITS:
        raise RockedgeError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not root.is_dir():
        raise RockedgeError(f"dataset folder {root} does not exist")
    labelmap_path = root / "labelmap.txt"
    labelmap = read_labelmap(labelmap_path) if labelmap_path.is_file() else None
    lm = labelmap or LabelMap.default()
    if (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        samples, layout = _voc_samples(root, split), "voc"
    elif (root / "train" / "images").is_dir() or (root / "val" / "images").is_dir():
        samples, layout = _split_folder_samples(root, split), "folders"
    elif (root / "images").is_dir():
        samples, layout = _holdout(_pair_folder(root / "images", root / "masks"), split), "folders"
    else:
        raise RockedgeError(
            f"{root} is not a dataset: expected JPEGImages/ + SegmentationClass/ (VOC/CVAT), "
            "train/images + train/masks, or images/ + masks/"
        )
    if not samples:
        raise RockedgeError(f"split {split!r} of {root} has no samples")
    return SegDataset(
        root=root,
        split=split,
        classes=lm.names,
        palette=lm.colors,
        samples=samples,
        strict_colors=labelmap is not None,
        layout=layout,
    )


# -- layouts ---------------------------------------------------------------------------------------


def natural_key(s: str) -> list[object]:
    """Sort "2" before "10": ids are often frame numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _holdout(samples: list[tuple[Path, Path]], split: str) -> list[tuple[Path, Path]]:
    samples = sorted(samples, key=lambda s: natural_key(s[0].stem))
    if split == "all":
        return samples
    n_val = max(1, round(HOLDOUT_FRACTION * len(samples))) if samples else 0
    return samples[len(samples) - n_val :] if split == "val" else samples[: len(samples) - n_val]


def _voc_samples(root: Path, split: str) -> list[tuple[Path, Path]]:
    sets = root / "ImageSets" / "Segmentation"
    images = _index_by_stem(root / "JPEGImages", IMAGE_SUFFIXES)
    masks = _index_by_stem(root / "SegmentationClass", IMAGE_SUFFIXES)

    def pair(ids: list[str], listed_in: Path | None) -> list[tuple[Path, Path]]:
        out = []
        for i in ids:
            img = images.get(i)
            if img is None:
                where = f" (listed in {listed_in})" if listed_in else ""
                raise RockedgeError(f"no image for id {i!r}{where} in {root / 'JPEGImages'}")
            msk = masks.get(i)
            if msk is None:
                raise RockedgeError(f"image {img} has no mask {root / 'SegmentationClass' / (i + '.png')}")
            out.append((img, msk))
        return out

    if (sets / "train.txt").is_file() and (sets / "val.txt").is_file():
        if split == "all":
            ids = _read_ids(sets / "train.txt") + _read_ids(sets / "val.txt")
            return pair(list(dict.fromkeys(ids)), None)
        return pair(_read_ids(sets / f"{split}.txt"), sets / f"{split}.txt")
    listed = sets / "default.txt"
    ids = _read_ids(listed) if listed.is_file() else sorted(images, key=natural_key)
    return _holdout(pair(ids, listed if listed.is_file() else None), split)


def _split_folder_samples(root: Path, split: str) -> list[tuple[Path, Path]]:
    names = ("train", "val") if split == "all" else (split,)
    out: list[tuple[Path, Path]] = []
    for name in names:
        d = root / name
        if not (d / "images").is_dir():
            if split == "all":
                continue
            raise RockedgeError(f"{root} has no {name}/images folder")
        out += sorted(_pair_folder(d / "images", d / "masks"), key=lambda s: natural_key(s[0].stem))
    return out


def _pair_folder(images_dir: Path, masks_dir: Path) -> list[tuple[Path, Path]]:
    if not masks_dir.is_dir():
        raise RockedgeError(f"{images_dir} has no sibling masks folder {masks_dir}")
    images = _index_by_stem(images_dir, IMAGE_SUFFIXES)
    masks = _index_by_stem(masks_dir, IMAGE_SUFFIXES)
    out = []
    for stem, img in images.items():
        msk = masks.get(stem)
        if msk is None:
            raise RockedgeError(f"image {img} has no mask {masks_dir / stem}.* (masks are matched by file stem)")
        out.append((img, msk))
    return out


def _index_by_stem(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise RockedgeError(f"folder {folder} does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith("."):
            if p.stem in out:
                raise RockedgeError(f"two files with stem {p.stem!r} in {folder}: {out[p.stem].name} and {p.name}")
            out[p.stem] = p
    return out


def _read_ids(path: Path) -> list[str]:
    # VOC id files may carry a second column (e.g. "-1"/"1" in classification sets); the id comes first.
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


# -- decoding --------------------------------------------------------------------------------------


def read_image(path: Path) -> np.ndarray:
    """Read an image as BGR uint8 ``HxWx3`` (grayscale and 16-bit files converted)."""
    img, why = imread(path)
    if img is None:
        raise RockedgeError(f"cannot read image {path}: {why}")
    return img


def read_mask(path: Path, palette: tuple[tuple[int, int, int], ...], *, strict_colors: bool = True) -> np.ndarray:
    """Read a mask as uint8 class indices.

    Palette-mode PNGs and single-channel images are already indices; 3-channel masks are colours
    mapped through ``palette`` (RGB). OpenCV expands palette PNGs to colours, so their indices are
    recovered through the file's own PLTE chunk.
    """
    png_palette = _png_palette(path)
    raw, why = imread(path, cv2.IMREAD_COLOR if png_palette is not None else cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise RockedgeError(f"cannot read mask {path}: {why}")
    if png_palette is not None:
        return colors_to_index(raw[..., ::-1], png_palette, f"palette mask {path}")
    if raw.ndim == 3 and raw.shape[2] == 4:
        raw = raw[..., :3]  # alpha carries no class information
    if raw.ndim == 2 or raw.shape[2] == 1:
        mask = raw.reshape(raw.shape[:2])
        if mask.dtype != np.uint8:
            if mask.max(initial=0) > 255:
                raise RockedgeError(f"mask {path} has index {int(mask.max())} > 255")
            mask = mask.astype(np.uint8)
        return mask
    if raw.dtype != np.uint8:
        raise RockedgeError(f"colour mask {path} must be 8-bit, got {raw.dtype}")
    rgb = raw[..., ::-1]
    if not strict_colors and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return np.ascontiguousarray(rgb[..., 0])  # an index mask saved as RGB
    return colors_to_index(rgb, palette, f"mask {path}")


# VOC marks the uncertain rim of every object with this colour (index 255 in palette PNGs): not a rock.
VOC_VOID_RGB = (224, 224, 192)


def read_instances(path: Path) -> np.ndarray:
    """An instance mask as int32 ids (0 = no rock), whatever form it is in: 16- or 8-bit single-channel ids (what
    ``data synth`` writes), a palette PNG (VOC: the index is the instance, 255 the void rim), or colours (CVAT's
    ``SegmentationObject``: one colour per instance; black and VOC's void colour are no rock), numbered in raster
    order of each colour's first pixel."""
    png_palette = _png_palette(path)
    raw, why = imread(path, cv2.IMREAD_COLOR if png_palette is not None else cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise RockedgeError(f"cannot read instance mask {path}: {why}")
    if png_palette is not None:
        idx = colors_to_index(raw[..., ::-1], png_palette, f"palette instance mask {path}").astype(np.int32)
        idx[idx == 255] = 0
        return idx
    if raw.ndim == 2 or (raw.ndim == 3 and raw.shape[2] == 1):
        return raw.reshape(raw.shape[:2]).astype(np.int32)
    rgb = np.ascontiguousarray(raw[..., 2::-1]).astype(np.int32)
    key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    void = (VOC_VOID_RGB[0] << 16) | (VOC_VOID_RGB[1] << 8) | VOC_VOID_RGB[2]
    flat = key.ravel()
    colours, first = np.unique(flat, return_index=True)
    keep = (colours != 0) & (colours != void)
    ordered = colours[keep][np.argsort(first[keep])]
    lut = {int(c): k + 1 for k, c in enumerate(ordered)}
    out = np.zeros(flat.shape, np.int32)
    for c, k in lut.items():
        out[flat == c] = k
    return out.reshape(key.shape)


def split_components(instances: np.ndarray) -> np.ndarray:
    """Each 8-connected piece of an instance becomes an instance of its own. CVAT's ``SegmentationObject`` gives
    one colour to an object group: the original project's photos paint 11 separate rocks in 5 colours."""
    out = np.zeros(instances.shape, np.int32)
    n = 0
    for k in np.unique(instances[instances > 0]):
        m, comp = cv2.connectedComponents((instances == k).view(np.uint8) if instances.dtype == np.bool_
                                          else (instances == k).astype(np.uint8), connectivity=8)
        sel = comp > 0
        out[sel] = comp[sel] + n
        n += m - 1
    return out


def _png_palette(path: Path) -> tuple[tuple[int, int, int], ...] | None:
    """The PLTE colours of a palette-mode (colour type 3) PNG, else None."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind == b"IHDR":
                    ihdr = f.read(length)
                    if ihdr[9] != 3:  # colour type
                        return None
                    f.seek(4, os.SEEK_CUR)
                elif kind == b"PLTE":
                    data = f.read(length)
                    return tuple(tuple(data[i : i + 3]) for i in range(0, len(data) - 2, 3))  # type: ignore[misc]
                elif kind in (b"IDAT", b"IEND"):
                    return None
                else:
                    f.seek(length + 4, os.SEEK_CUR)
    except OSError as e:
        raise RockedgeError(f"cannot read mask {path}: {e.strerror or e}") from None


def resize_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a class-index mask: always nearest-neighbour, so no in-between (invented) classes appear."""
    h, w = size_hw
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


# -- summaries -------------------------------------------------------------------------------------


@dataclass
class SplitSummary:
    """Per-split counts for ``rockedge data info``."""

    split: str
    images: int
    classes: tuple[str, ...]
    class_fractions: dict[str, float]  # fraction of labelled (non-ignore) pixels per class
    ignored_fraction: float
    sizes: list[tuple[int, int]]  # distinct (height, width)
    rocks: int | None = None  # rocks in the instance masks (None: the split has none)

    def to_dict(self) -> dict:
        return {
            "rocks": self.rocks,
            "split": self.split,
            "images": self.images,
            "classes": list(self.classes),
            "class_fractions": self.class_fractions,
            "ignored_fraction": self.ignored_fraction,
            "sizes": [list(s) for s in self.sizes],
        }


def summarize(ds: SegDataset) -> SplitSummary:
    """Decode every mask once (images only for their size check) and count pixels per class."""
    counts = np.zeros(256, np.int64)
    sizes: set[tuple[int, int]] = set()
    rocks: int | None = 0 if ds.has_instances else None
    for i in range(len(ds)):
        _, mask = ds[i]
        counts += np.bincount(mask.reshape(-1), minlength=256)
        sizes.add(mask.shape)  # type: ignore[arg-type]
        if rocks is not None:
            inst = ds.instances(i)
            rocks += int(np.count_nonzero(np.bincount(inst.ravel())[1:]))
    total = int(counts.sum())
    labelled = total - int(counts[ds.ignore_index])
    fr = {name: (float(counts[k]) / labelled if labelled else 0.0) for k, name in enumerate(ds.classes)}
    return SplitSummary(
        split=ds.split,
        images=len(ds),
        classes=ds.classes,
        class_fractions=fr,
        ignored_fraction=float(counts[ds.ignore_index]) / total if total else 0.0,
        sizes=sorted(sizes),
        rocks=rocks,
    )
