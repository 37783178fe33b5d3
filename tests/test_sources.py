"""Source detection and decoding on real files, no model needed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rockedge.errors import RockedgeError
from rockedge.probes import opencv_has
from rockedge.runtime.sinks import choose_codec
from rockedge.runtime.sources import (
    CaptureSource,
    ImageSource,
    IterableSource,
    open_source,
)


def _video(path, n=10, fps=29.97, size=(64, 48)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), i * 20, np.uint8))
    w.release()
    return path


def test_video_source_exact_fps_and_every_frame(tmp_path):
    src = open_source(str(_video(tmp_path / "a.mp4")))
    assert isinstance(src, CaptureSource) and src.kind == "video" and not src.live
    assert src.fps == pytest.approx(29.97, abs=1e-6)
    frames = list(src)
    src.close()
    assert [f.index for f in frames] == list(range(10)) and src.broken is None
    assert frames[5].timestamp == pytest.approx(5 / 29.97) and frames[0].image.shape == (48, 64, 3)


def test_image_folder_glob_and_order(tmp_path):
    for name in ("b.png", "a.png", "c.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / ".hidden.png").write_bytes(b"")
    folder = open_source(str(tmp_path))
    assert isinstance(folder, ImageSource) and [p.name for p in folder.paths] == ["a.png", "b.png", "c.jpg"]
    assert [p.name for p in open_source(str(tmp_path / "*.png")).paths] == ["a.png", "b.png"]
    single = open_source(str(tmp_path / "c.jpg"))
    assert single.kind == "image" and len(list(single)) == 1


def test_unreadable_single_image_fails_but_folder_skips(tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"nope")
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(RockedgeError, match="cannot read image"):
        list(open_source(str(tmp_path / "bad.png")))
    src = open_source(str(tmp_path))
    assert [f.name for f in src] == ["ok.png"] and src.skipped == 1
    assert "skipping bad.png" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, message",
    [
        ("missing.mp4", "source not found"),
        ("nothing-*.png", "no files match"),
        ("/dev/video99", "no such device"),
    ],
)
def test_unopenable_sources(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RockedgeError, match=message):
        open_source(text)


def test_gstreamer_string_is_recognised(tmp_path):
    pipeline = "videotestsrc num-buffers=3 ! videoconvert ! appsink"
    if opencv_has("GStreamer"):
        src = open_source(pipeline)
        assert src.kind == "gstreamer" and src.live
    else:
        with pytest.raises(RockedgeError, match="no GStreamer support"):
            open_source(pipeline)


def test_iterable_source_and_gray_frames():
    src = open_source([np.zeros((4, 6), np.uint8), np.zeros((4, 6, 4), np.uint8)])
    assert isinstance(src, IterableSource)
    assert [f.image.shape for f in src] == [(4, 6, 3), (4, 6, 3)]


def test_codec_fallback_is_a_writable_codec(tmp_path):
    path, fourcc = choose_codec(tmp_path / "x.mp4", announce=False)
    assert path.suffix == ".mp4" and fourcc in ("avc1", "mp4v")
    with pytest.raises(RockedgeError, match="cannot write video"):
        choose_codec(tmp_path / "x.gif")
