"""The run loop's failure and edge paths, on a backend whose every output is known (no model, no ONNX Runtime):
an exception in the inference thread, NaN logits at run time, a class index beyond the spec, live sources dropping
stale frames, multi-class masks restored through a letterbox, and an interrupt that lands while a frame is written.

:class:`TableBackend` is a real :class:`rockedge.runtime.backends.base.Backend`: the Segmenter and the pipeline
prepare, batch, post-process and write exactly as they do for ONNX Runtime or TensorRT.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from helpers import read_video

from rockedge.errors import RockedgeError
from rockedge.runtime.backends.base import Backend, BackendInfo
from rockedge.spec import ModelSpec
from rockedge.tensors import TensorInfo

CLASSES3 = dict(classes=("background", "rock", "fines"), palette=((0, 0, 0), (250, 50, 83), (0, 0, 255)))


class TableBackend(Backend):
    """A raw-frame model (uint8 NHWC in) whose output is ``fn(batch, call_index)``: logits (N, C, H, W) or a mask."""

    name = "table"

    def __init__(self, fn: Callable[[np.ndarray, int], np.ndarray], *, size: tuple[int, int] = (64, 48),
                 output_format: str = "logits", resize: str = "resize", delay: float = 0.0, **spec_kw) -> None:
        self.fn = fn
        self.calls = 0
        self.delay = delay
        self.spec = ModelSpec(arch="table", input_size=size, input_format="raw", output_format=output_format,
                              resize=resize, **spec_kw)
        h, w = size
        self.input = TensorInfo("frames", (None, h, w, 3), "uint8", "NHWC")
        n = self.spec.num_classes
        self.output = (TensorInfo("logits", (None, n, h, w), "float32", "NCHW") if output_format == "logits"
                       else TensorInfo("mask", (None, h, w), "uint8", "NHW"))

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        out = self.fn(batch, self.calls)
        self.calls += 1
        return out

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("table", "<table>")


def by_colour(batch: np.ndarray, n_cls: int = 2) -> np.ndarray:
    """Logits that make class = the frame's blue channel // 80 (0, 1, 2), capped to the classes there are."""
    cls = np.minimum(batch[..., 0].astype(np.int64) // 80, n_cls - 1)
    out = np.zeros((batch.shape[0], n_cls, *batch.shape[1:3]), np.float32)
    for c in range(n_cls):
        out[:, c][cls == c] = 5.0
    return out


def frame_of(classes: np.ndarray) -> np.ndarray:
    """A BGR frame whose blue channel encodes ``classes`` for :func:`by_colour` (0 -> 20, 1 -> 100, 2 -> 180)."""
    f = np.zeros((*classes.shape, 3), np.uint8)
    f[..., 0] = 20 + 80 * classes.astype(np.uint8)
    f[..., 1] = 60
    return f


def _pipeline(seg, source, out: Path | None, **kw):
    from rockedge.runtime.outputs import RunOutputs
    from rockedge.runtime.pipeline import run_pipeline

    outputs = RunOutputs(source, out, num_classes=seg.spec.num_classes, save_mask=kw.pop("save_mask", False))
    return run_pipeline(seg, source, outputs, progress=False, **kw)


def records(summary) -> list[dict]:
    return [json.loads(line) for line in Path(summary.outputs["frames"]).read_text().splitlines()]


def blank(n: int, h: int = 64, w: int = 48) -> list[np.ndarray]:
    return [frame_of(np.zeros((h, w), np.uint8)) for _ in range(n)]


# -- failures in the inference thread ------------------------------------------------------------------------------


def test_an_exception_in_the_inference_thread_ends_the_run_in_one_line_and_leaves_nothing(tmp_path):
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource

    def fails_at_third(batch, i):
        if i == 2:
            raise ValueError("device lost")
        return by_colour(batch)

    out = tmp_path / "o" / "run.mp4"
    with Segmenter(TableBackend(fails_at_third)) as seg:
        with pytest.raises(RockedgeError, match=r"^inference failed: ValueError: device lost$"):
            _pipeline(seg, IterableSource(blank(8), fps=10.0), out)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_nan_logits_at_run_time_are_counted_and_fail_the_run(tmp_path):
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource

    def nan_on_odd_calls(batch, i):
        out = by_colour(batch)
        if i % 2:
            out[:, 1, :3, :3] = np.nan
        return out

    with Segmenter(TableBackend(nan_on_odd_calls)) as seg:
        summary = _pipeline(seg, IterableSource(blank(7), fps=10.0), tmp_path / "nan.mp4")
    assert summary.frames == 7 and summary.nonfinite_frames == 3  # frames 1, 3, 5
    assert "non-finite  3 frames had NaN/Inf logits" in summary.table()
    with pytest.raises(RockedgeError, match=r"^3 of 7 frames had non-finite logits \(NaN/Inf\): the model is broken"):
        summary.raise_for_status()
    assert json.loads((tmp_path / "nan.summary.json").read_text())["nonfinite_frames"] == 3


def test_finite_logits_count_no_frame():
    from rockedge.runtime import Segmenter

    with Segmenter(TableBackend(lambda b, i: by_colour(b))) as seg:
        seg.predict_batch(blank(3))
        assert seg.nonfinite_frames == 0


@pytest.mark.parametrize("output_format", ["mask", "logits"])
def test_a_class_index_beyond_the_spec_is_one_line(tmp_path, output_format):
    """A mask model that paints class 2 with a two-class spec (or logits with more channels than classes)."""
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource

    if output_format == "mask":
        be = TableBackend(lambda b, i: np.full((b.shape[0], *b.shape[1:3]), 2, np.uint8), output_format="mask")
        message = r"^the model produced class 2 but its spec has 2 classes$"
    else:
        be = TableBackend(lambda b, i: by_colour(b, 3))
        message = r"^the model outputs 3 classes but its spec lists 2 \(background, rock\)"
    with Segmenter(be) as seg:
        with pytest.raises(RockedgeError, match=message):
            seg.predict(blank(1)[0])
    be = TableBackend(lambda b, i: np.full((b.shape[0], *b.shape[1:3]), 2, np.uint8), output_format="mask")
    with Segmenter(be) as seg:
        with pytest.raises(RockedgeError, match="the model produced class 2"):
            _pipeline(seg, IterableSource(blank(3), fps=10.0), tmp_path / "o" / "x.mp4")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# -- multi-class masks through a letterbox, end to end -------------------------------------------------------------


@pytest.mark.parametrize("frame_hw", [(128, 32), (32, 192)])
def test_a_three_class_letterboxed_model_restores_every_class_onto_the_frame(frame_hw):
    """Frames of 2x2 blocks of three classes, letterboxed into a 64x48 model at exactly half (tall) or a quarter
    (wide) size: the mask restored onto the frame is the frame's own class map, pixel for pixel, the grey bars
    count for nothing, and the stats are the frame's."""
    from rockedge.runtime import Segmenter

    rng = np.random.default_rng(3)
    h, w = frame_hw
    f = 2 if h == 128 else 4  # the letterbox scale is exactly 1/2 or 1/4: block-constant content survives it
    truth = np.kron(rng.integers(0, 3, (h // f, w // f)), np.ones((f, f), np.int64)).astype(np.uint8)
    with Segmenter(TableBackend(lambda b, i: by_colour(b, 3), resize="letterbox", **CLASSES3)) as seg:
        r = seg.predict(frame_of(truth))
    assert r.mask.shape == (h, w) and r.mask.dtype == np.uint8
    np.testing.assert_array_equal(r.mask, truth)
    assert r.stats["rock_fraction"] == pytest.approx((truth != 0).mean(), abs=1e-6)  # every class but background
    assert r.stats["class_fractions"] == pytest.approx([(truth == c).mean() for c in range(3)], abs=1e-6)
    overlay = r.overlay.astype(int)
    assert (overlay[truth == 0] == frame_of(truth)[truth == 0]).all()  # background untouched


# -- live sources drop stale frames ---------------------------------------------------------------------------------


def test_a_live_source_drops_stale_frames_and_keeps_the_newest(tmp_path):
    """A camera that delivers faster than the model runs: the oldest waiting frames are dropped, every frame is
    either written or counted as dropped, the order is kept, and the last frame is never the one dropped."""
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource

    n = 60
    with Segmenter(TableBackend(lambda b, i: by_colour(b), delay=0.03)) as seg:
        summary = _pipeline(seg, IterableSource(blank(n), fps=30.0, live=True), tmp_path / "live.mp4")
    written = [r["frame"] for r in records(summary)]
    assert summary.dropped > n // 2 and summary.frames + summary.dropped == n
    assert len(written) == summary.frames and written == sorted(written) and written[-1] == n - 1
    assert f"(dropped {summary.dropped} stale)" in summary.table()
    assert len(read_video(tmp_path / "live.mp4")[1]) == summary.frames


def test_a_file_never_drops_a_frame_however_slow_the_model(tmp_path):
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource

    with Segmenter(TableBackend(lambda b, i: by_colour(b), delay=0.01)) as seg:
        summary = _pipeline(seg, IterableSource(blank(20), fps=30.0), tmp_path / "file.mp4")
    assert summary.dropped == 0 and [r["frame"] for r in records(summary)] == list(range(20))


# -- an interrupt while a frame is written ----------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread(),
                    reason="real signals to this process, handled in the main thread")
def test_a_second_ctrl_c_while_a_frame_is_written_keeps_the_video_and_the_summary_equal(tmp_path, monkeypatch):
    """Ctrl-C twice, the second landing after a frame went into the video but before it was counted: the frame is
    finished (counted, logged) before the run stops, so the summary and the frame log say as many frames as the video
    holds. Both signals are real SIGINTs to this process, sent from inside the overlay write."""
    from rockedge.runtime import Segmenter
    from rockedge.runtime.outputs import RunOutputs
    from rockedge.runtime.sources import IterableSource

    real_write = RunOutputs.write
    written = []

    def write_then_interrupt(self, frame, overlay, mask):
        real_write(self, frame, overlay, mask)
        written.append(frame.index)
        if len(written) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # the first asks the run to stop between frames...
            os.kill(os.getpid(), signal.SIGINT)  # ...the second, arriving now, stops it at once

    monkeypatch.setattr(RunOutputs, "write", write_then_interrupt)
    out = tmp_path / "cam.mp4"
    with Segmenter(TableBackend(lambda b, i: by_colour(b))) as seg:
        summary = _pipeline(seg, IterableSource(blank(50), fps=30.0), out)
    assert summary.stopped == "interrupted"
    assert summary.frames == len(written) == 5
    assert len(read_video(out)[1]) == 5 and len(records(summary)) == 5
    assert json.loads(out.with_suffix(".summary.json").read_text())["frames"] == 5
