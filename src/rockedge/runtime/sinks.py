"""Where results go: overlay/mask videos, overlay/mask images, JSON lines (numpy + OpenCV only).

Every sink answers one protocol: ``write(...)``, ``finish() -> (temporary, target) | None`` (close and check
the file; None when nothing was written), ``commit() -> Path | None`` (finish and move into place) and ``abort()``
(remove what is unfinished). File sinks write under a temporary name beside their target (same suffix, since
OpenCV picks the container from it); :class:`rockedge.runtime.outputs.RunOutputs` moves all of a run's files into
place together (:func:`rockedge.atomic.commit_all`). A run that stops early (Ctrl-C, SIGTERM, a broken stream)
still commits what it wrote, because a video writer that is released properly is a playable file; a run that fails
aborts, so nothing half-written is left.

OpenCV's ``VideoWriter.write`` reports nothing: on a full disk it keeps accepting frames and leaves a file without
its index (an MP4 with no moov atom plays nowhere). So the free space is watched while writing, and a finished
video is opened and its frames counted before it may replace anything.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any, Protocol

import cv2
import numpy as np

from rockedge.atomic import naming, temp_beside
from rockedge.console import warn
from rockedge.errors import RockedgeError
from rockedge.media import check_video, cv_path, free_bytes, opencv_errors_only
from rockedge.probes import writable_fourcc

# Preferred codecs per container, best first. pip's OpenCV has no H.264 encoder, JetPack's usually does.
CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("avc1", "mp4v"),
    ".m4v": ("avc1", "mp4v"),
    ".mov": ("avc1", "mp4v"),
    ".mkv": ("avc1", "mp4v", "MJPG"),
    ".avi": ("MJPG", "XVID"),
}
VIDEO_SUFFIXES = tuple(CODECS)
FALLBACK = (".mp4", "mp4v")
# Masks must survive the codec exactly: FFV1 is lossless and OpenCV's FFmpeg writes it.
MASK_VIDEO = (".mkv", "FFV1")
# Every FREE_CHECK_EVERY frames a video checks the space left where it is written and stops while its index still
# fits: it keeps room for twice the next FREE_CHECK_EVERY frames at the size frames have had so far, plus
# MIN_FREE_BYTES for the index (the moov atom: a few bytes per frame), the frame log and the summary.
MIN_FREE_BYTES = 1 << 20
FREE_CHECK_EVERY = 30


def reserve_bytes(written: int, frames: int, frame_nbytes: int) -> int:
    """What a video must keep free: see :data:`FREE_CHECK_EVERY`. Before the first frame, a frame is guessed at a
    tenth of its raw size (mp4v compresses camera footage ten to fifty times)."""
    per_frame = written / frames if frames else frame_nbytes / 10
    return int(2 * FREE_CHECK_EVERY * per_frame + 64 * frames + MIN_FREE_BYTES)


class Sink(Protocol):
    def commit(self) -> Path | None: ...

    def abort(self) -> None: ...


def choose_codec(path: Path, *, announce: bool = True) -> tuple[Path, str]:
    """The fourcc for ``path``'s suffix; falls back (and says so) when this OpenCV cannot write it."""
    suffix = path.suffix.lower()
    if suffix not in CODECS:
        raise RockedgeError(f"cannot write video {path.name}: use one of {', '.join(VIDEO_SUFFIXES)}")
    for i, cc in enumerate(CODECS[suffix]):
        if writable_fourcc(suffix, cc):
            if i > 0 and announce:
                warn(f"{CODECS[suffix][0]} is not available in this OpenCV build; writing {path.name} with {cc}")
            return path, cc
    if writable_fourcc(*FALLBACK):
        new = path.with_suffix(FALLBACK[0])
        if announce:
            warn(f"this OpenCV build cannot write {suffix} files; writing {new.name} with {FALLBACK[1]} instead")
        return new, FALLBACK[1]
    raise RockedgeError("this OpenCV build cannot write any video format (no FFmpeg?); write images instead")


class TempFileSink:
    """One output file written under a temporary name and renamed onto ``target`` by :meth:`commit`."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = temp_beside(target, f".part{target.suffix}")
        self.count = 0  # items written

    def _close(self) -> None:
        """Flush and close the underlying writer (subclasses)."""

    def _check(self) -> None:
        """Raise one line when the finished temporary file is not what was written (subclasses)."""

    def finish(self) -> tuple[Path, Path] | None:
        """Close and check the file: ``(temporary, target)`` to move into place, None when nothing was written."""
        self._close()
        if self.count == 0:
            self.abort()
            return None
        try:
            self._check()
        except BaseException:
            self.abort()
            raise
        return self.tmp, self.target

    def commit(self) -> Path | None:
        done = self.finish()
        if done is None:
            return None
        os.replace(*done)
        return self.target

    def abort(self) -> None:
        self._close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


class VideoSink(TempFileSink):
    """An OpenCV video writer at the source's exact frame rate, opened on the first frame."""

    def __init__(self, target: Path, fps: float, *, fourcc: str | None = None, is_color: bool = True) -> None:
        if fourcc is None:
            target, fourcc = choose_codec(target)
        super().__init__(target)
        self.fourcc = fourcc
        self.fps = float(fps)
        self.is_color = is_color
        self.size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(cv_path(self.tmp), cv2.VideoWriter.fourcc(*self.fourcc), self.fps, (w, h),
                                           self.is_color)
            if not self._writer.isOpened():
                raise RockedgeError(f"OpenCV cannot open a {self.fourcc} writer for {self.target}")
            self.size = (h, w)
        if image.shape[:2] != self.size:  # a camera that changes resolution mid-stream
            assert self.size is not None
            image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST)
        if self.count % FREE_CHECK_EVERY == 0:
            self._check_space(image.nbytes)
        with opencv_errors_only():
            self._writer.write(image)
        self.count += 1

    def _close(self) -> None:
        if self._writer is not None:
            with opencv_errors_only():
                self._writer.release()
            self._writer = None

    def _check_space(self, frame_nbytes: int) -> None:
        try:
            written = self.tmp.stat().st_size
        except OSError:
            written = 0
        free, need = free_bytes(self.tmp), reserve_bytes(written, self.count, frame_nbytes)
        if free < need:
            raise RockedgeError(f"no space left to write {self.target} ({free / 2**20:.1f} MB free on its disk, "
                                f"{need / 2**20:.1f} MB needed to go on and finish the video); stopped after "
                                f"{self.count} frames, before the video became unreadable")

    def _check(self) -> None:
        check_video(self.tmp, self.count, self.target)


class TextSink(TempFileSink):
    """A text file written as it goes (one item per :meth:`_write`), renamed into place at the end; a failed write
    names the target, not the temporary."""

    def __init__(self, target: Path, header: str = "") -> None:
        super().__init__(target)
        self._fh: IO[str] | None = open(self.tmp, "w", encoding="utf-8", newline="")
        if header:
            with naming(self.target):
                self._fh.write(header)

    def _write(self, text: str) -> None:
        assert self._fh is not None
        with naming(self.target):
            self._fh.write(text)
        self.count += 1

    def _close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            with naming(self.target):
                fh.close()


class JsonLinesSink(TextSink):
    """One JSON object per frame, flushed as it goes, renamed into place at the end."""

    def write(self, record: dict[str, Any]) -> None:
        self._write(json.dumps(record, separators=(",", ":"), allow_nan=False, default=str) + "\n")


class ImageSink:
    """One image per frame into a directory (or one file), each written atomically as it comes."""

    def __init__(self, directory: Path, *, suffix: str | None = None, single: Path | None = None) -> None:
        self.directory = directory
        self.suffix = suffix
        self.single = single
        self.written: list[Path] = []

    def path_for(self, name: str | None, index: int) -> Path:
        if self.single is not None:
            return self.single
        stem, ext = (Path(name).stem, Path(name).suffix) if name else (f"frame_{index:06d}", ".png")
        return self.directory / f"{stem}{self.suffix or ext}"

    def write(self, image: np.ndarray, name: str | None, index: int) -> None:
        target = self.path_for(name, index)
        tmp = temp_beside(target, f".part{target.suffix}")
        try:
            if not cv2.imwrite(cv_path(tmp), image):
                raise RockedgeError(f"OpenCV cannot write {target}")
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.written.append(target)

    def commit(self) -> Path | None:
        return (self.single or self.directory) if self.written else None

    def abort(self) -> None:
        """Images already written are complete files; they stay."""


class RocksCsvSink(TextSink):
    """``<out>.rocks.csv``: one row per rock of every frame (``rockedge run --measure``), sizes in the run's unit
    (mm with --scale, else px), centroids in frame pixels; flushed as it goes, renamed into place at the end."""

    def __init__(self, target: Path, unit: str) -> None:
        u = unit
        super().__init__(target, f"frame,name,rock,area_{u}2,diameter_{u},short_{u},long_{u},cx_px,cy_px\n")

    def write(self, frame: int, name: str | None, rows: list[dict[str, Any]]) -> None:
        label = _csv_field(name or "")
        self._write("".join(
            f"{frame},{label},{r['id']},{r['area']:.6g},{r['diameter']:.6g},{r['short']:.6g},{r['long']:.6g},"
            f"{r['cx']:.2f},{r['cy']:.2f}\n" for r in rows))


def _csv_field(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n\r') else text


class PngSink(TempFileSink):
    """One PNG made at the end of the run (the rock size curve): :meth:`set` the image, the file is written when
    the run's outputs are committed."""

    def __init__(self, target: Path) -> None:
        super().__init__(target)
        self.image: np.ndarray | None = None

    def set(self, image: np.ndarray) -> None:
        self.image = image
        self.count = 1

    def _close(self) -> None:
        if self.image is not None:
            image, self.image = self.image, None
            if not cv2.imwrite(cv_path(self.tmp), image):
                raise RockedgeError(f"OpenCV cannot write {self.target}")
