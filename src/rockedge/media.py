"""Media files: the image suffixes rockedge reads (one list for datasets, calibration folders and ``rockedge run``
alike, so a folder of ``.ppm`` frames that runs is also a dataset), and checking a video rockedge wrote.

OpenCV's ``VideoWriter.write`` reports nothing: on a full disk it keeps accepting frames and leaves a file without
its index (an MP4 with no moov atom plays nowhere), so a finished video is opened and its frames counted
(:func:`check_video`) before it may replace anything."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from rockedge.console import quiet_stderr
from rockedge.errors import RockedgeError

# What OpenCV's imread decodes in every build rockedge supports (pip's wheels and JetPack's).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".jp2")


def cv_path(path: "str | os.PathLike[str]") -> str:
    """``path`` as OpenCV must get it: a str whose UTF-8 encoding is the file's bytes.

    OpenCV encodes every path as UTF-8. Under a non-UTF-8 locale (``LC_ALL=C`` with ``PYTHONUTF8=0``) Python holds
    a non-ASCII name as surrogate escapes, which OpenCV cannot encode (``cv2.VideoWriter`` crashes on it); the real
    bytes decoded as UTF-8 are the same name. Bytes that are not UTF-8 get one line instead of a crash.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    raw = os.fsencode(text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RockedgeError(f"{raw.decode('utf-8', 'replace')}: OpenCV cannot open a path whose name is not UTF-8; "
                            "rename it, or run under a UTF-8 locale (LC_ALL=C.UTF-8)") from None


def imread(path: Path, flags: int = cv2.IMREAD_COLOR) -> "tuple[np.ndarray | None, str]":
    """``(image, "")``, or ``(None, why)`` where OpenCV cannot or will not decode ``path``.

    OpenCV answers None for most bad files but raises ``cv2.error`` (a multi-line assertion) for some: an image
    over its pixel limit (``CV_IO_MAX_IMAGE_PIXELS``, 2**30 by default) or a header with absurd sizes.
    """
    try:
        img = cv2.imread(cv_path(path), flags)
    except cv2.error as e:
        text = str(e)
        if "CV_IO_MAX_IMAGE_PIXELS" in text or "validateInputImageSize" in text:
            return None, ("larger than OpenCV decodes (over its pixel limit; raise OPENCV_IO_MAX_IMAGE_PIXELS to "
                          "allow it)")
        first = next((ln for ln in text.splitlines() if "error:" in ln), text.strip().splitlines()[0] if text else "")
        return None, f"OpenCV refuses it ({first.split('error:', 1)[-1].strip()[:160]})"
    if img is None:
        return None, "not an image OpenCV can decode (missing, empty or another format)"
    return img, ""


def free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path.parent if str(path.parent) else Path(".")).free
    except OSError:
        return 1 << 62  # unknown: let the writes themselves fail


@contextlib.contextmanager
def opencv_errors_only() -> Iterator[None]:
    """Keep OpenCV's own WARN lines (``FFmpeg: Failed to write frame`` once per frame on a full disk) off stderr
    while writing: rockedge checks the finished file and says what went wrong in one line."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None or not hasattr(logging, "getLogLevel"):  # older OpenCV builds
        yield
        return
    before = logging.getLogLevel()
    logging.setLogLevel(min(before, logging.LOG_LEVEL_ERROR))
    try:
        yield
    finally:
        logging.setLogLevel(before)


def check_video(path: Path, frames: int, target: Path) -> None:
    """One line unless ``path`` opens as a video holding ``frames`` frames (the container's count, or counted)."""
    with quiet_stderr():  # FFmpeg prints "moov atom not found" for a video a full disk cut short
        cap = cv2.VideoCapture(cv_path(path))
    try:
        if not cap.isOpened():
            raise RockedgeError(f"the finished {target.name} does not open as a video (a full disk or a file-size "
                                f"limit cut it short? {free_bytes(path) >> 20} MB free there); nothing replaced "
                                f"{target}")
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
