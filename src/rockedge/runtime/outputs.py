"""Which files a run writes, decided once from the source and ``--out`` (numpy + OpenCV only).

Video-like sources (video file, camera, URL, GStreamer, iterable) give an overlay video, an optional
lossless mask video and JSON lines beside it; image sources give one overlay per image, optional
mask PNGs (pixel value = class index) and ``frames.jsonl`` in a directory. Either way the run's
summary lands as JSON beside them when :meth:`RunOutputs.commit` is given it.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rockedge.atomic import (
    check_names,
    commit_all,
    ensure_writable_dir,
    naming,
    temp_beside,
    to_json,
)
from rockedge.console import warn
from rockedge.errors import RockedgeError
from rockedge.measure.curve import draw_curve
from rockedge.measure.rocks import Rocks, SizeHistogram
from rockedge.media import IMAGE_SUFFIXES
from rockedge.probes import writable_fourcc
from rockedge.runtime.sinks import (
    MASK_VIDEO,
    VIDEO_SUFFIXES,
    ImageSink,
    JsonLinesSink,
    PngSink,
    RocksCsvSink,
    Sink,
    TempFileSink,
    VideoSink,
    choose_codec,
)
from rockedge.runtime.sources import Frame, Source

DEFAULT_DIR = Path("rockedge-run")


def _stem(source: Source) -> str:
    if source.kind == "video":
        return Path(source.label).stem
    if source.kind == "camera":
        return "camera" + re.sub(r"\D", "", source.label)
    return source.kind


class RunOutputs:
    """Owns every sink of one run; :meth:`commit` renames them into place, :meth:`abort` removes them."""

    def __init__(self, source: Source, out: str | os.PathLike[str] | None, *, save_mask: bool = False, num_classes: int = 2,
                 rocks_unit: str | None = None) -> None:
        self.save_mask = save_mask
        self.rocks_csv: RocksCsvSink | None = None
        self.rocks_png: PngSink | None = None
        self.mask_scale = 255 // max(1, num_classes - 1)
        self.video_sink: VideoSink | None = None
        self.mask_video: VideoSink | None = None
        self.image_sink: ImageSink | None = None
        self.mask_images: ImageSink | None = None
        out = Path(out) if out is not None else None
        self.video_like = source.kind not in ("image", "images")
        self._created: list[Path] = []
        if self.video_like:
            target = self._video_target(source, out)
            self._mkdir(target.parent)
            target, fourcc = choose_codec(target)
            self.video_sink = VideoSink(target, source.fps or 30.0, fourcc=fourcc)
            if save_mask:
                suffix, fourcc = MASK_VIDEO
                stem = target.stem[: -len("_overlay")] if target.stem.endswith("_overlay") else target.stem
                mask_target = target.with_name(f"{stem}_mask{suffix}")  # site_overlay.mp4 -> site_mask.mkv
                if not writable_fourcc(suffix, fourcc, False):
                    mask_target, fourcc = choose_codec(mask_target.with_suffix(".avi"), announce=False)
                    warn(f"lossless FFV1 is not available; the mask video {mask_target.name} is lossy ({fourcc})")
                self.mask_video = VideoSink(mask_target, source.fps or 30.0, fourcc=fourcc, is_color=False)
            self.jsonl_path = target.with_suffix(".jsonl")
            self.summary_path = target.with_suffix(".summary.json")
        else:
            single = source.kind == "image" and out is not None and out.suffix.lower() in IMAGE_SUFFIXES
            if single:
                assert out is not None
                self._mkdir(out.parent)
                self.image_sink = ImageSink(out.parent, single=out)
                if save_mask:
                    self.mask_images = ImageSink(out.parent, single=out.with_name(f"{out.stem}_mask.png"))
                self.jsonl_path = out.with_suffix(".jsonl")
                self.summary_path = out.with_suffix(".summary.json")
            else:
                directory = out or DEFAULT_DIR
                if out is not None and out.suffix.lower() in VIDEO_SUFFIXES:
                    raise RockedgeError(f"--out {out} is a video name, but the source is images; give a directory")
                src_dir = Path(source.label) if Path(source.label).is_dir() else None
                if src_dir is not None and src_dir.resolve() == directory.resolve():
                    raise RockedgeError(f"--out {directory} is the input folder; overlays would replace the images")
                self._mkdir(directory)
                self.image_sink = ImageSink(directory)
                if save_mask:
                    self._mkdir(directory / "masks")
                    self.mask_images = ImageSink(directory / "masks", suffix=".png")
                self.jsonl_path = directory / "frames.jsonl"
                self.summary_path = directory / "summary.json"
        self.jsonl = JsonLinesSink(self.jsonl_path)
        if rocks_unit is not None:  # --measure: <out>.rocks.csv and <out>.rocks.png beside the JSON lines
            csv = (self.jsonl_path.parent / "rocks.csv" if self.jsonl_path.name == "frames.jsonl"
                   else self.jsonl_path.with_suffix(".rocks.csv"))  # site_overlay.mp4 -> site_overlay.rocks.csv
            self.rocks_csv = RocksCsvSink(csv, rocks_unit)
            self.rocks_png = PngSink(self.rocks_csv.target.with_suffix(".png"))
        try:
            named = [getattr(s, "target", None) or getattr(s, "single", None) for s in self._sinks().values()]
            check_names([self.summary_path, *(p for p in named if p is not None)])
        except RockedgeError:
            self.abort()
            raise

    def _video_target(self, source: Source, out: Path | None) -> Path:
        name = f"{_stem(source)}_overlay.mp4"
        if out is None:
            return DEFAULT_DIR / name
        if out.suffix.lower() in VIDEO_SUFFIXES:
            return out
        if out.suffix:
            raise RockedgeError(f"--out {out}: a video source needs a video file ({', '.join(VIDEO_SUFFIXES)}) "
                                "or a directory")
        return out / name

    def _mkdir(self, d: Path) -> None:
        # Remember which directories this run created, so a failed run can leave no trace.
        missing = [p for p in [d, *d.parents] if not p.exists()]
        ensure_writable_dir(d)
        self._created.extend(missing)

    def write(self, frame: Frame, overlay: np.ndarray | None, mask: np.ndarray) -> None:
        if self.video_sink is not None and overlay is not None:
            self.video_sink.write(overlay)
        if self.mask_video is not None:
            self.mask_video.write(cv2.multiply(mask, self.mask_scale) if self.mask_scale != 1 else mask)
        if self.image_sink is not None and overlay is not None:
            self.image_sink.write(overlay, frame.name, frame.index)
        if self.mask_images is not None:
            self.mask_images.write(mask, frame.name, frame.index)

    def record(self, rec: dict[str, Any]) -> None:
        self.jsonl.write(rec)

    def record_rocks(self, frame: Frame, rocks: Rocks) -> None:
        """One frame's rocks as rows of ``<out>.rocks.csv`` (only with --measure)."""
        if self.rocks_csv is not None:
            self.rocks_csv.write(frame.index, frame.name, [r.to_dict() for r in rocks])

    def rocks_curve(self, sizes: SizeHistogram, title: str = "") -> None:
        """Draw the run's % passing curve into ``<out>.rocks.png`` (written with the other outputs)."""
        if self.rocks_png is not None:
            self.rocks_png.set(draw_curve(sizes.curve(), sizes.distribution(), title))

    def _sinks(self) -> dict[str, Sink]:
        named = (("overlay", self.video_sink), ("mask", self.mask_video), ("overlay", self.image_sink),
                 ("masks", self.mask_images), ("frames", self.jsonl), ("rocks", self.rocks_csv),
                 ("rocks_curve", self.rocks_png))
        return {name: sink for name, sink in named if sink is not None}

    def commit(self, summary: dict[str, Any] | None = None) -> dict[str, str]:
        """Check every finished file, then move them and the ``summary`` JSON into place together: all of them or,
        when one cannot be (a broken video, a full disk), none, with the previous outputs left as they were.
        Returns {what: path}."""
        written: dict[str, str] = {}
        pairs: list[tuple[Path, Path]] = []
        try:
            for name, sink in self._sinks().items():
                if isinstance(sink, ImageSink):  # its images were written one by one, each atomically
                    p = sink.commit()
                    if p is not None:
                        written[name] = str(p)
                    continue
                assert isinstance(sink, TempFileSink)
                done = sink.finish()
                if done is not None:
                    pairs.append(done)
                    written[name] = str(done[1])
            if not written:
                self._remove_created()
                return written
            if summary is not None:
                written["summary"] = str(self.summary_path)
                tmp = temp_beside(self.summary_path)
                pairs.append((tmp, self.summary_path))
                with naming(self.summary_path):
                    tmp.write_text(to_json({**summary, "outputs": written}) + "\n", encoding="utf-8")
            commit_all(pairs)
        except BaseException:
            for tmp, _ in pairs:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            self.abort()
            raise
        return written

    def abort(self) -> None:
        for s in self._sinks().values():
            s.abort()
        self._remove_created()

    def _remove_created(self) -> None:
        for d in sorted(self._created, key=lambda p: len(p.parts), reverse=True):  # deepest first, only if empty
            with contextlib.suppress(OSError):
                d.rmdir()
