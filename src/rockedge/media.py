"""Media files: the image suffixes rockedge reads (one list for datasets, calibration folders and ``rockedge run``
alike, so a folder of ``.ppm`` frames that runs is also a dataset), and checking a video rockedge wrote.

OpenCV's ``VideoWriter.write`` reports nothing: on a full disk it keeps accepting frames and leaves a file without
its index (an MP4 with no moov atom plays nowhere), so a finished video is opened and its frames counted
(:func:`check_video`) before it may replace anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2

from rockedge.errors import RockedgeError

# What OpenCV's imread decodes in every build rockedge supports (pip's wheels and JetPack's).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".jp2")


def free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path.parent if str(path.parent) else Path(".")).free
    except OSError:
        return 1 << 62  # unknown: let the writes themselves fail


def check_video(path: Path, frames: int, target: Path) -> None:
    """One line unless ``path`` opens as a video holding ``frames`` frames (the container's count, or counted)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise RockedgeError(f"the finished {target.name} does not open as a video (disk full? "
                                f"{free_bytes(path) >> 20} MB free there); nothing replaced {target}")
        reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if reported <= 0:
            reported = 0
            while cap.grab():
                reported += 1
    finally:
        cap.release()
    if abs(reported - frames) > 1:
        raise RockedgeError(f"the finished {target.name} holds {reported} frames of the {frames} written (disk full? "
                            f"{free_bytes(path) >> 20} MB free there); nothing replaced {target}")
