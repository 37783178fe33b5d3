"""Frame sources: one image, a folder or glob of images, a video file, a camera, a URL or a
GStreamer pipeline, all answering the same iteration protocol (numpy + OpenCV only).

Files are *finite* sources: every frame is processed. Cameras, URLs and GStreamer pipelines are
*live*: the pipeline drops stale frames rather than falling behind the world.
"""

from __future__ import annotations

import abc
import glob as globmod
import math
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rockedge.console import quiet_stderr, warn
from rockedge.errors import RockedgeError
from rockedge.media import IMAGE_SUFFIXES, cv_path, imread
from rockedge.probes import opencv_has
from rockedge.redact import expand_password, redact

# What cv2.imread reads in every build we ship with; anything else in a folder is skipped with a warning.
URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
DEV_VIDEO_RE = re.compile(r"^/dev/video(\d+)$")


@dataclass
class Frame:
    """One decoded frame: BGR uint8 ``HxWx3``; ``timestamp`` in seconds from the start of the source."""

    index: int
    image: np.ndarray
    timestamp: float
    name: str | None = None  # file name for image sources (outputs keep it)
    decode_s: float = 0.0


class Source(abc.ABC):
    """An iterable of :class:`Frame`. ``fps``/``frame_count`` are None when unknown."""

    kind: str = "source"
    live: bool = False
    fps: float | None = None
    frame_count: int | None = None
    broken: str | None = None  # set when the stream ended abnormally (truncated file, lost camera)
    skipped: int = 0

    def __init__(self, label: str) -> None:
        self.label = redact(label)  # what messages and reports show: a URL's password is never in it

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:
        """Release the device or file."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {"source": self.label, "kind": self.kind, "live": self.live, "fps": self.fps,
                "frame_count": self.frame_count}


class ImageSource(Source):
    """Still images in a fixed order; unreadable files are skipped with a warning."""

    kind = "images"

    def __init__(self, paths: list[Path], label: str, *, single: bool = False) -> None:
        super().__init__(label)
        self.paths = paths
        self.single = single
        self.kind = "image" if single else "images"
        self.frame_count = len(paths)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for p in self.paths:
            t0 = time.perf_counter()
            img, why = imread(p)
            dt = time.perf_counter() - t0
            if img is None:
                if self.single:
                    raise RockedgeError(f"cannot read image {p}: {why}")
                warn(f"skipping {p.name}: {why}")
                self.skipped += 1
                continue
            yield Frame(index, img, 0.0, name=p.name, decode_s=dt)
            index += 1


class CaptureSource(Source):
    """cv2.VideoCapture over a file (finite) or a camera/URL/GStreamer pipeline (live)."""

    def __init__(self, target: str | int, label: str, *, kind: str, live: bool, api: int = cv2.CAP_ANY) -> None:
        super().__init__(label)
        label = self.label  # the target may hold a password; messages name the redacted label only
        self.kind = kind
        self.live = live
        with quiet_stderr():
            self.cap = cv2.VideoCapture(cv_path(target) if isinstance(target, str) else target, api)
        if not self.cap.isOpened():
            self.cap.release()
            raise RockedgeError(_open_error(kind, label))
        # Read the first frame now: a file OpenCV opens but cannot decode fails before any output exists.
        t0 = time.perf_counter()
        ok, first = self.cap.read()
        self._first_s = time.perf_counter() - t0
        if not ok or first is None:
            self.cap.release()
            raise RockedgeError(
                f"cannot decode any frame from {label}: the file is unreadable or truncated"
                if kind == "video" else f"{label} opened but delivered no frame"
            )
        self._first: np.ndarray | None = first
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            if kind == "video":
                warn(f"{label} does not state a frame rate; assuming 30 fps")
            fps = 30.0
        self.fps = fps
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if (kind == "video" and n > 0) else None

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        t_start = time.monotonic()
        first, self._first = self._first, None
        if first is not None:
            yield Frame(0, _bgr(first), 0.0, decode_s=self._first_s)
            index = 1
        while True:
            t0 = time.perf_counter()
            ok, img = self.cap.read()
            dt = time.perf_counter() - t0
            if not ok or img is None:
                break
            # Files: exact media time; live: wall time since start (the device's clock is not reliable).
            ts = index / self.fps if (not self.live and self.fps) else time.monotonic() - t_start
            yield Frame(index, _bgr(img), ts, decode_s=dt)
            index += 1
        if self.live:
            self.broken = f"{self.label} stopped delivering frames after {index}"
        elif self.frame_count and index < self.frame_count - 1:
            # Container frame counts are estimates; one frame short is rounding, more is damage.
            self.broken = f"{self.label} ended after {index} of {self.frame_count} frames (truncated or damaged)"

    def close(self) -> None:
        self.cap.release()


class IterableSource(Source):
    """Frames from any Python iterable of BGR arrays (or :class:`Frame`), for embedding and tests."""

    kind = "iterable"

    def __init__(self, frames: Iterable[Any], *, fps: float | None = None, live: bool = False,
                 frame_count: int | None = None, label: str = "<iterable>") -> None:
        super().__init__(label)
        self.frames = frames
        self.fps = fps
        self.live = live
        self.frame_count = frame_count

    def __iter__(self) -> Iterator[Frame]:
        t_start = time.monotonic()
        for i, f in enumerate(self.frames):
            if isinstance(f, Frame):
                yield f
                continue
            ts = i / self.fps if self.fps else time.monotonic() - t_start
            yield Frame(i, _bgr(np.asarray(f)), ts)


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def _open_error(kind: str, label: str) -> str:
    if kind == "camera":
        return (f"cannot open camera {label}: no such device, it is busy, or this user may not use it "
                "(check `v4l2-ctl --list-devices` and the video group)")
    if kind == "url":
        return f"cannot open stream {label}: unreachable, wrong URL, or this OpenCV build lacks the protocol"
    if kind == "gstreamer":
        return f"cannot open GStreamer pipeline {label!r}: check it with gst-launch-1.0 first"
    return f"cannot open video {label}: not a video OpenCV can read, or the file is damaged"


def is_gstreamer(text: str) -> bool:
    return "!" in text and not os.path.exists(text)


def open_source(source: str | os.PathLike[str] | int | Iterable[Any]) -> Source:
    """Turn a command-line SOURCE into a :class:`Source`; one clear error when it cannot be opened."""
    if isinstance(source, Source):
        return source
    if isinstance(source, int):
        return CaptureSource(source, f"camera {source}", kind="camera", live=True)
    if not isinstance(source, (str, os.PathLike)):
        return IterableSource(source)
    text = os.fspath(source)
    if text.lower().startswith("file://"):
        text = _file_url_path(text)
    if is_gstreamer(text):
        if not opencv_has("GStreamer"):
            raise RockedgeError(
                "SOURCE looks like a GStreamer pipeline, but this OpenCV build has no GStreamer support "
                "(cv2.getBuildInformation() says GStreamer: NO); use JetPack's OpenCV on a Jetson, "
                "or pass a file, camera index or URL"
            )
        return CaptureSource(expand_password(text), text, kind="gstreamer", live=True, api=cv2.CAP_GSTREAMER)
    if URL_RE.match(text):
        return CaptureSource(expand_password(text), text, kind="url", live=True)
    m = DEV_VIDEO_RE.match(text)
    if text.isdigit() or m:
        index = int(m.group(1)) if m else int(text)
        if m and not os.path.exists(text):
            raise RockedgeError(f"cannot open camera {text}: no such device")
        return CaptureSource(index, text, kind="camera", live=True)
    path = Path(text)
    if path.is_dir():
        return _image_set(sorted(p for p in path.iterdir() if p.is_file()), text)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageSource([path], text, single=True)
        return CaptureSource(str(path), text, kind="video", live=False, api=cv2.CAP_FFMPEG)
    if globmod.has_magic(text):
        matches = sorted(Path(p) for p in globmod.glob(text, recursive=True) if Path(p).is_file())
        if not matches:
            raise RockedgeError(f"no files match {text}")
        return _image_set(matches, text)
    raise RockedgeError(f"source not found: {text} (expected an image, folder, glob, video, camera index, "
                        "/dev/videoN, URL or GStreamer pipeline)")


def _file_url_path(url: str) -> str:
    """The local path a ``file://`` URL names; a userinfo (meaningless for a file, and FFmpeg cannot open a file URL
    that has one) is dropped."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if host not in ("", "localhost"):
        raise RockedgeError(f"{redact(url)}: a file:// URL names a file on this machine (file:///path), not on {host}")
    return unquote(parts.path)


def _image_set(files: list[Path], label: str) -> ImageSource:
    images = []
    skipped = 0
    for p in files:
        if p.name.startswith("."):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            images.append(p)
        else:
            warn(f"skipping {p.name}: not an image file")
            skipped += 1
    if not images:
        raise RockedgeError(f"no images in {label} (looked for {', '.join(IMAGE_SUFFIXES)})")
    src = ImageSource(images, label)
    src.skipped = skipped
    return src
