"""Synthetic rock datasets and videos built on :mod:`rockedge.data.procedural`.

Scene ``i`` of a dataset is rendered from ``np.random.default_rng([seed, i])`` and its split is a
function of ``i`` alone, so ``n=10`` is exactly the first ten scenes of ``n=20``.
"""

from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from rockedge import atomic
from rockedge._version import __version__
from rockedge.console import progress as console_progress
from rockedge.data.labelmap import LabelMap, write_labelmap
from rockedge.data.piles import render_pile
from rockedge.data.procedural import render
from rockedge.errors import RockedgeError
from rockedge.media import check_video, cv_path, opencv_errors_only
from rockedge.sizes import parse_size

MIN_SIDE = 32
JPEG_QUALITY = 95
# Fast PNG compression: index masks compress well even at level 1, and video masks are many.
PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 1]


SCENES = ("scatter", "pile", "mixed")


def render_scene(rng: np.random.Generator, size_hw: tuple[int, int], scene: str = "scatter") -> tuple[np.ndarray, np.ndarray]:
    """One procedural rock scene: BGR uint8 ``HxWx3`` image and uint8 ``HxW`` mask (0 ground, 1 rock)."""
    image, mask, _ = render_scene_instances(rng, size_hw, scene)
    return image, mask


def scene_kind(scene: str, seed: int, i: int) -> str:
    """What scene ``i`` of a dataset is: ``scene`` itself, or for ``mixed`` pile or scatter half and half, drawn from a
    generator of its own (so scene ``i`` of ``mixed`` is scene ``i`` of ``scatter`` or of ``pile``, prefix-stable)."""
    if scene != "mixed":
        return scene
    return "pile" if np.random.default_rng([seed, i, 0x5CE]).uniform() < 0.5 else "scatter"


def render_scene_instances(rng: np.random.Generator, size_hw: tuple[int, int],
                           scene: str = "scatter") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`render_scene` plus the scene's instance map (uint16, 0 = no rock, k = rock k; the same scene).

    ``scene``: ``scatter`` (rocks on ground, :mod:`~rockedge.data.procedural`) or ``pile`` (rock fills the frame,
    :mod:`~rockedge.data.piles`); a dataset's ``mixed`` picks one per scene with :func:`scene_kind`."""
    h, w = _scene_size(size_hw)
    if scene not in ("scatter", "pile"):
        raise RockedgeError(f"scene must be scatter or pile, got {scene!r}")
    instances: list[np.ndarray] = []
    if scene == "pile":
        image, mask, _ = render_pile(rng, (h, w), instances=instances)
    else:
        image, mask, _ = render(rng, (h, w), instances=instances)
    return image, mask, instances[0]


def is_val(i: int, val_fraction: float) -> bool:
    """Scene ``i`` goes to val when the rounded running count of val scenes steps up at ``i``.

    Depends on ``i`` alone (prefix-stable) and puts ``round(n * val_fraction)`` scenes in val.
    """
    return math.floor((i + 1) * val_fraction + 0.5) > math.floor(i * val_fraction + 0.5)


def write_synth_dataset(
    out: str | os.PathLike[str],
    *,
    n: int,
    size_hw: tuple[int, int],
    seed: int = 0,
    val_fraction: float = 0.2,
    progress: bool = True,
    overwrite: bool = False,
    scene: str = "scatter",
) -> Path:
    """Render ``n`` scenes into ``out/{train,val}/{images,masks,instances}/`` plus ``labelmap.txt`` and
    ``synth.json``. ``instances/<name>.png`` is each scene's 16-bit instance mask (0 = no rock, k = rock k, as
    drawn: a rock partly hidden by another keeps its visible part).

    Written into a temporary folder beside ``out`` and renamed at the end, so ``out`` is either the
    complete dataset or absent.
    """
    out = Path(out)
    h, w = _scene_size(size_hw)
    if int(n) < 1:
        raise RockedgeError(f"--n must be at least 1, got {n}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise RockedgeError(f"val fraction must be in [0, 1), got {val_fraction}")
    if scene not in SCENES:
        raise RockedgeError(f"--scene must be one of {', '.join(SCENES)}, got {scene!r}")
    _check_target(out, overwrite)
    counts = {"train": 0, "val": 0}
    with atomic.staging_dir(out, overwrite=overwrite) as tmp:
        for split in counts:
            for sub in ("images", "masks", "instances"):
                (tmp / split / sub).mkdir(parents=True)
        rock = 0.0
        rocks = {"train": 0, "val": 0}
        kinds = {"scatter": 0, "pile": 0}
        for i in console_progress(range(n), desc="synth", unit="scene", enabled=progress):
            kind = scene_kind(scene, seed, i)
            kinds[kind] += 1
            image, mask, inst = render_scene_instances(np.random.default_rng([seed, i]), (h, w), kind)
            split = "val" if is_val(i, val_fraction) else "train"
            counts[split] += 1
            rocks[split] += int(inst.max())
            rock += float(mask.mean())
            _imwrite(tmp / split / "images" / f"{i:06d}.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            _imwrite(tmp / split / "masks" / f"{i:06d}.png", mask, PNG_FLAGS)
            _imwrite(tmp / split / "instances" / f"{i:06d}.png", inst, PNG_FLAGS)
        lm = LabelMap.default()
        write_labelmap(tmp / "labelmap.txt", lm)
        atomic.write_json(
            tmp / "synth.json",
            {
                "generator": "rockedge.data.synth",
                "version": __version__,
                "seed": int(seed),
                "scene": scene,
                "scenes": kinds,
                "n": int(n),
                "size_hw": [h, w],
                "val_fraction": float(val_fraction),
                "counts": counts,
                "rocks": rocks,
                "classes": list(lm.names),
                "palette": [list(c) for c in lm.colors],
                "mean_rock_fraction": rock / n,
            },
        )
    return out


def write_synth_video(
    out_video: str | os.PathLike[str],
    *,
    frames: int,
    size_hw: tuple[int, int],
    fps: float = 30.0,
    seed: int = 0,
    masks_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """A camera panning (with slight zoom and rotation) over one large scene: ``.mp4`` plus per-frame masks.

    The scene is rendered once at about twice the frame size, rock sizes relative to the frame; each
    frame is an affine crop of it (masks nearest-neighbour). Masks go to ``masks_dir`` (default
    ``<video stem>_masks/`` beside the video) as ``000000.png``... index PNGs.
    """
    out_video = Path(out_video)
    h, w = _scene_size(size_hw)
    if int(frames) < 1:
        raise RockedgeError(f"--frames must be at least 1, got {frames}")
    if not (0 < float(fps) <= 1000):
        raise RockedgeError(f"--fps must be in (0, 1000], got {fps}")
    if out_video.suffix.lower() != ".mp4":
        raise RockedgeError(f"video output must end in .mp4 (codec mp4v), got {out_video.name}")
    masks = Path(masks_dir) if masks_dir is not None else out_video.with_name(f"{out_video.stem}_masks")
    rng = np.random.default_rng([seed, 0x51DE0])
    margin = 2.0  # canvas / frame: room to pan, zoom out slightly and rotate without leaving the scene
    bh, bw = int(h * margin), int(w * margin)
    scene, scene_mask, _ = render(rng, (bh, bw), ref=min(h, w), regimes=("mixed", "pile", "gravel"), camera_effects=False)
    path = _camera_path(rng, frames, (h, w), (bh, bw))
    _check_masks_target(masks)
    with atomic.atomic_path(out_video) as tmp_video, atomic.staging_dir(masks, overwrite=True) as tmp_masks:
        writer = cv2.VideoWriter(cv_path(tmp_video), cv2.VideoWriter.fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise RockedgeError(f"OpenCV cannot write an mp4v video to {out_video} (no FFmpeg backend?)")
        # Mask PNGs are encoded on worker threads (OpenCV releases the GIL) while frames are warped
        # and encoded here: at 1080p a mask PNG costs as much as a video frame.
        pool = ThreadPoolExecutor(max_workers=2)
        pending: deque[Future[None]] = deque()
        try:
            for k, m in enumerate(console_progress(path, desc="synth-video", unit="frame", enabled=progress)):
                fmask = cv2.warpAffine(scene_mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
                pending.append(pool.submit(_imwrite, tmp_masks / f"{k:06d}.png", fmask, PNG_FLAGS))
                frame = cv2.warpAffine(scene, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                with opencv_errors_only():
                    writer.write(frame)
                while len(pending) > 8:
                    pending.popleft().result()
            while pending:
                pending.popleft().result()
        finally:
            with opencv_errors_only():
                writer.release()
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)
        check_video(tmp_video, frames, out_video)  # VideoWriter never says the disk filled up: look at the file
        write_labelmap(tmp_masks / "labelmap.txt", LabelMap.default())
    return out_video


def _camera_path(
    rng: np.random.Generator, frames: int, frame_hw: tuple[int, int], canvas_hw: tuple[int, int]
) -> list[np.ndarray]:
    """Affine canvas->frame matrices: a smooth pan plus a gentle zoom and roll, kept inside the canvas."""
    h, w = frame_hw
    bh, bw = canvas_hw
    t = np.linspace(0.0, 1.0, frames)
    phase = rng.uniform(0, 2 * np.pi, 4)
    angle = rng.uniform(3, 8) * np.sin(2 * np.pi * t * rng.uniform(0.5, 1.0) + phase[0])  # degrees
    zoom = 1.0 + rng.uniform(0.05, 0.15) * (0.5 + 0.5 * np.sin(2 * np.pi * t * rng.uniform(0.5, 1.0) + phase[1]))
    direction = rng.uniform(0, 2 * np.pi)
    mats = []
    for k in range(frames):
        a = math.radians(float(angle[k]))
        # Half extent of the canvas region the rotated, zoomed frame covers.
        ex = (w * abs(math.cos(a)) + h * abs(math.sin(a))) / (2 * zoom[k])
        ey = (w * abs(math.sin(a)) + h * abs(math.cos(a))) / (2 * zoom[k])
        rx, ry = max(0.0, bw / 2 - ex - 1), max(0.0, bh / 2 - ey - 1)
        # Pan along a line through the centre plus a little sway across it.
        s = 2 * t[k] - 1
        sway = 0.25 * math.sin(2 * np.pi * t[k] + phase[2])
        ux, uy = math.cos(direction), math.sin(direction)
        cx = bw / 2 + rx * 0.9 * (s * ux - sway * uy)
        cy = bh / 2 + ry * 0.9 * (s * uy + sway * ux)
        m = cv2.getRotationMatrix2D((cx, cy), float(angle[k]), float(zoom[k]))
        m[0, 2] += w / 2 - cx
        m[1, 2] += h / 2 - cy
        mats.append(m)
    return mats


# -- helpers ---------------------------------------------------------------------------------------


def _scene_size(size_hw: tuple[int, int]) -> tuple[int, int]:
    size = parse_size(size_hw, what="scene size", min_side=MIN_SIDE)
    assert size is not None
    return size


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RockedgeError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RockedgeError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")


def _check_masks_target(masks: Path) -> None:
    # The masks folder is replaced wholesale, so only ever replace one that holds nothing but masks.
    if masks.exists() and not masks.is_dir():
        raise RockedgeError(f"masks path {masks} exists and is not a folder")
    if masks.is_dir():
        foreign = [p.name for p in masks.iterdir() if not (p.suffix == ".png" or p.name == "labelmap.txt")]
        if foreign:
            raise RockedgeError(
                f"masks folder {masks} holds other files ({', '.join(sorted(foreign)[:3])}); choose another --masks"
            )


def _imwrite(path: Path, array: np.ndarray, params: list[int]) -> None:
    """Encode with OpenCV, write with Python: a failed write (a full disk, ulimit -f) is then an OSError with its
    cause, said in one line naming the file (``cv2.imwrite`` only returns False)."""
    ok, encoded = cv2.imencode(path.suffix, array, params)
    if not ok:
        raise RockedgeError(f"OpenCV cannot encode {path.name}")
    with atomic.naming(path), open(path, "wb") as f:
        f.write(encoded.tobytes())
