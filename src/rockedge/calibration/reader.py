"""The one calibration reader: frames from a folder, a labelled dataset, a video or generated scenes,
prepared exactly as the runtime prepares them, fed to whichever calibrator asks.

Device-safe (numpy + OpenCV): it runs on the workstation for ONNX Runtime's static quantization
(through a thin adapter to its ``CalibrationDataReader`` contract) and on the Jetson for TensorRT's
entropy calibrator. Frames are decoded with the runtime's own sources and fitted to the model size
with :func:`rockedge.runtime.preprocess.fit`, then normalised by :func:`prepare` per batch: the same
code as ``rockedge run``, not a copy, so calibration sees what inference sees.

Sources (``--calib-data``):

* ``synth``: generated rock scenes (deterministic per seed), the default when nothing else is given;
* a labelled dataset folder: its train split, chosen class-balanced (so rare classes are represented);
* a folder or glob of images: ``n`` spread evenly over the sorted list;
* a video file: every k-th frame, k chosen to spread ``n`` frames over the video.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.data.datasets import open_dataset
from rockedge.data.synth import render_scene
from rockedge.errors import RockedgeError
from rockedge.media import IMAGE_SUFFIXES
from rockedge.runtime.batching import collate
from rockedge.runtime.preprocess import fit, prepare
from rockedge.runtime.sources import ImageSource, open_source
from rockedge.spec import ModelSpec

SYNTH = "synth"
DEFAULT_N = 64


@dataclass
class CalibrationSet:
    """``n`` frames fitted to the model size (BGR uint8), where they came from, and a hash that names them."""

    spec: ModelSpec
    size_hw: tuple[int, int]
    frames: list[np.ndarray]
    source: str
    details: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def sha256(self) -> str:
        """Identity of what was calibrated on: the fitted pixels, the size and the preprocessing."""
        h = hashlib.sha256()
        s = self.spec
        h.update(repr((self.size_hw, s.input_format, s.mean, s.std, s.resize)).encode())
        for f in self.frames:
            h.update(np.ascontiguousarray(f).tobytes())
        return h.hexdigest()

    def batches(self, batch: int = 1, *, fixed_batch: int | None = None) -> Iterator[np.ndarray]:
        """Model inputs of ``batch`` frames (the last one padded to ``fixed_batch`` when the model has one)."""
        if batch < 1:
            raise RockedgeError(f"calibration batch must be >= 1, got {batch}")
        for start in range(0, len(self.frames), batch):
            x, _ = prepare(self.frames[start : start + batch], self.spec, self.size_hw)
            yield collate([x], fixed_batch)

    def feeds(self, input_name: str, batch: int = 1, *, fixed_batch: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """``{input_name: batch}`` dicts: the data-loader shape Polygraphy and ONNX Runtime calibrators take."""
        for x in self.batches(batch, fixed_batch=fixed_batch):
            yield {input_name: x}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "n": len(self), "size_hw": list(self.size_hw), "sha256": self.sha256,
                **self.details}


def load_calibration_set(source: str | os.PathLike[str] | None, spec: ModelSpec, *, n: int = DEFAULT_N,
                         size_hw: tuple[int, int] | None = None, seed: int = 0) -> CalibrationSet:
    """Read ``n`` calibration frames from ``source`` (see the module docstring); one clear line when it has none."""
    if n < 1:
        raise RockedgeError(f"--calib-n must be >= 1, got {n}")
    size = tuple(size_hw or spec.input_size)
    text = SYNTH if source is None else os.fspath(source)
    if text == SYNTH:
        frames, desc, details = _synth(n, size, seed)  # type: ignore[arg-type]
    else:
        path = Path(text)
        if path.is_dir() and _is_dataset(path):
            frames, desc, details = _dataset(path, n)
        elif path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            frames, desc, details = _video(text, n)
        else:
            frames, desc, details = _images(text, n)
    if not frames:
        raise RockedgeError(f"calibration source {text} gave no frames")
    fitted = [fit(f, size, spec.resize)[0] for f in frames]  # type: ignore[arg-type]
    return CalibrationSet(spec, size, fitted, desc, details)  # type: ignore[arg-type]


def _synth(n: int, size: tuple[int, int], seed: int) -> tuple[list[np.ndarray], str, dict[str, Any]]:
    frames = [render_scene(np.random.default_rng([seed, 0xCA1, i]), size)[0] for i in range(n)]
    return frames, f"{SYNTH} ({n} generated rock scenes, seed {seed})", {"kind": "synth", "seed": seed}


def _is_dataset(path: Path) -> bool:
    return (path / "JPEGImages").is_dir() or (path / "images").is_dir() or (path / "train" / "images").is_dir()


def _dataset(path: Path, n: int) -> tuple[list[np.ndarray], str, dict[str, Any]]:
    try:
        ds = open_dataset(path, "train")
    except RockedgeError:
        ds = open_dataset(path, "all")
    picks = class_balanced(ds, n)
    frames = [ds[i][0] for i in picks]
    return frames, f"{path} ({ds.split}, {len(picks)} of {len(ds)}, class-balanced)", {
        "kind": "dataset", "split": ds.split, "indices": picks}


def class_balanced(ds: Any, n: int) -> list[int]:
    """Pick ``n`` samples greedily so every class keeps its share of the selection's pixels as even as it can:
    each pick is the image with the most of the class the selection has least of. Deterministic."""
    if n >= len(ds):
        return list(range(len(ds)))
    c = ds.num_classes
    hist = np.zeros((len(ds), c), np.float64)
    for i in range(len(ds)):
        m = ds[i][1]
        valid = m[m < c]
        hist[i] = np.bincount(valid.ravel(), minlength=c)[:c] / max(1, valid.size)
    chosen: list[int] = []
    total = np.zeros(c)
    free = np.ones(len(ds), bool)
    for _ in range(n):
        need = int(np.argmin(total))
        scores = np.where(free, hist[:, need], -1.0)
        i = int(np.argmax(scores))
        chosen.append(i)
        free[i] = False
        total += hist[i]
    return sorted(chosen)


def _images(text: str, n: int) -> tuple[list[np.ndarray], str, dict[str, Any]]:
    src = open_source(text)
    if not isinstance(src, ImageSource):
        raise RockedgeError(f"calibration source {text}: expected images, a dataset, a video or 'synth'")
    paths = src.paths
    idx = np.unique(np.linspace(0, len(paths) - 1, num=min(n, len(paths))).round().astype(int))
    src.paths = [paths[int(i)] for i in idx]
    with src:
        frames = [f.image for f in src]
    return frames, f"{text} ({len(frames)} of {len(paths)} images)", {"kind": "images"}


def _video(text: str, n: int) -> tuple[list[np.ndarray], str, dict[str, Any]]:
    with open_source(text) as src:
        total = src.frame_count or n
        step = max(1, total // n)
        frames = []
        for f in src:
            if f.index % step == 0:
                frames.append(f.image)
                if len(frames) == n:
                    break
    return frames, f"{text} ({len(frames)} frames, one in every {step})", {"kind": "video", "stride": step}
