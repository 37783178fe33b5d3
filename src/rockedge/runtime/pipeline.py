"""The threaded run loop: decode -> preprocess+infer -> postprocess/overlay -> encode.

One thread per stage, bounded queues between them, so decoding and encoding overlap inference
(OpenCV and the inference backends release the GIL). Every stage is a single FIFO worker, which
keeps output in input order without reordering buffers. Files give every frame; live sources
drop the oldest waiting frame instead of letting latency grow. Ctrl-C, a broken stream or a
source that raises ends the loop cleanly: what was written is committed, the summary is built.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rockedge.console import progress as console_progress
from rockedge.console import warn
from rockedge.errors import Interrupted, RockedgeError
from rockedge.measure.rocks import SizeHistogram
from rockedge.probes import has_gui
from rockedge.redact import redact
from rockedge.runtime.outputs import RunOutputs
from rockedge.runtime.preprocess import Geometry
from rockedge.runtime.segmenter import Segmenter
from rockedge.runtime.sources import Frame, Source

STAGES = ("decode", "preprocess", "infer", "postprocess", "encode")
_END = object()
_POLL_S = 0.05


@dataclass
class Summary:
    """What a run did; ``stopped`` is "end", "interrupted" or "broken" (source failed mid-stream)."""

    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    stage_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    dropped: int = 0
    skipped: int = 0
    stopped: str = "end"
    reason: str | None = None
    nonfinite_frames: int = 0  # frames whose model output held NaN/Inf
    rocks: dict[str, Any] | None = None  # with --measure: the whole run's rock size distribution
    outputs: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def raise_for_status(self) -> None:
        """Turn a run that did not end cleanly into its error (outputs stay: they are complete files)."""
        if self.stopped == "interrupted":
            raise Interrupted(f"{self.reason or 'stopped'}; the output written so far is complete and playable")
        if self.stopped == "broken":
            raise RockedgeError(f"{self.reason}; partial output kept")
        if self.nonfinite_frames:
            raise RockedgeError(f"{self.nonfinite_frames} of {self.frames} frames had non-finite logits (NaN/Inf): "
                                "the model is broken; re-export it from a good checkpoint")

    def table(self) -> str:
        lines = [
            f"frames      {self.frames}" + (f"  (dropped {self.dropped} stale)" if self.dropped else "")
            + (f"  (skipped {self.skipped} files)" if self.skipped else ""),
            f"wall time   {self.seconds:.2f} s",
            f"throughput  {self.fps:.2f} frames/s",
            f"stopped     {self.stopped}" + (f": {self.reason}" if self.reason else ""),
        ]
        if self.nonfinite_frames:
            lines.append(f"non-finite  {self.nonfinite_frames} frames had NaN/Inf logits (their masks are meaningless)")
        if self.rocks is not None:
            r, u = self.rocks, self.rocks["unit"]
            sizes = "  ".join(f"P{q} {r[f'p{q}']:.3g} {u}" for q in (20, 50, 80) if r.get(f"p{q}") is not None)
            lines.append(f"rocks       {r['count']} measured" + (f"; by area: {sizes}" if sizes else "")
                         + (f"; largest {r['max']:.3g} {u}" if r.get("max") is not None else ""))
        lines += [
            "",
            f"{'stage':<12}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}",
        ]
        for name in STAGES:
            s = self.stage_ms.get(name)
            if s:
                lines.append(f"{name:<12}{s['mean']:>10.2f}{s['p50']:>10.2f}{s['p95']:>10.2f}")
        for what, path in self.outputs.items():
            lines.append(f"{what + ':':<12}{path}")
        return "\n".join(lines)


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _force_end(q: queue.Queue[Any]) -> None:
    """Put the end marker even into a full queue (the run is stopping; the item it displaces is moot)."""
    while True:
        try:
            q.put_nowait(_END)
            return
        except queue.Full:
            try:
                q.get_nowait()
            except queue.Empty:
                pass


def _get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            if stop.is_set():
                return _END


@dataclass
class _Prepared:
    """A decoded frame with its model input already made (by the decode thread)."""

    frame: Frame
    x: np.ndarray
    geom: Geometry
    pre_s: float


class _Run:
    interrupted: str | None = None  # the signal that asked the run to stop
    writing = False  # the main thread is writing a frame: a second signal waits until it is written and counted
    stop_now: str | None = None  # a second signal that came while a frame was written

    def __init__(self, seg: Segmenter, source: Source) -> None:
        self.seg = seg
        self.source = source
        self.batch = batch = seg.batch
        depth = 2 * batch + 2
        self.q_frames: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.q_masks: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.q_results: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.broken: str | None = None
        self.dropped = 0
        self.workers = [threading.Thread(target=fn, name=f"rockedge-{fn.__name__}", daemon=True)
                        for fn in (self.decode, self.infer, self.post)]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def shutdown(self) -> None:
        """Stop every worker and wait for it (each forwards its end marker, so none blocks for long)."""
        self.stop.set()
        for w in self.workers:
            if w.is_alive():
                w.join(timeout=10)

    # Each worker forwards _END exactly once, whatever happens, so the consumer never waits forever.
    def decode(self) -> None:
        # Decoding and preprocessing share this thread, so the inference thread does nothing but infer:
        # on a 2-core device every millisecond taken off its critical path is throughput.
        try:
            for frame in self.source:
                if self.stop.is_set():
                    break
                t0 = time.perf_counter()
                x, geom = self.seg.prepare_frame(frame.image)
                frame = _Prepared(frame, x, geom, time.perf_counter() - t0)
                if self.source.live:
                    while True:
                        try:
                            self.q_frames.put_nowait(frame)
                            break
                        except queue.Full:
                            try:
                                self.q_frames.get_nowait()  # the oldest waiting frame is stale: drop it
                                self.dropped += 1
                            except queue.Empty:
                                pass
                elif not _put(self.q_frames, frame, self.stop):
                    break
            self.broken = self.source.broken
        except RockedgeError as e:
            self.error = e
        except Exception as e:  # a stream that dies mid-way (network, driver, user iterator)
            self.broken = redact(f"source failed after some frames: {type(e).__name__}: {e}")
        finally:
            if not _put(self.q_frames, _END, self.stop):
                _force_end(self.q_frames)

    def infer(self) -> None:
        try:
            done = False
            while not done:
                first = _get(self.q_frames, self.stop)
                if first is _END:
                    break
                frames: list[_Prepared] = [first]
                while len(frames) < self.batch:
                    # Files wait for a full batch; live sources take what is there (latency over throughput).
                    if self.source.live:
                        try:
                            nxt = self.q_frames.get_nowait()
                        except queue.Empty:
                            nxt = None
                    else:
                        nxt = _get(self.q_frames, self.stop)
                    if nxt is None:
                        break
                    if nxt is _END:
                        done = True
                        break
                    frames.append(nxt)
                batch = self.seg.collate([p.x for p in frames])
                t1 = time.perf_counter()
                masks = self.seg.infer(batch, len(frames))
                n = len(frames)
                if not _put(self.q_masks, (frames, masks, (time.perf_counter() - t1) / n), self.stop):
                    break
        except BaseException as e:
            self.error = e
            self.stop.set()
        finally:
            if not _put(self.q_masks, _END, self.stop):
                _force_end(self.q_masks)

    def post(self) -> None:
        try:
            while True:
                item = _get(self.q_masks, self.stop)
                if item is _END:
                    break
                prepared, masks, inf_s = item
                for p, m in zip(prepared, masks):
                    f = p.frame
                    t0 = time.perf_counter()
                    r = self.seg.postprocess(f.image, m, p.geom)
                    times = {"decode": f.decode_s * 1e3, "preprocess": p.pre_s * 1e3, "infer": inf_s * 1e3,
                             "postprocess": (time.perf_counter() - t0) * 1e3}
                    if not _put(self.q_results, (f, r, times), self.stop):
                        return
        except BaseException as e:
            self.error = e
            self.stop.set()
        finally:
            if not _put(self.q_results, _END, self.stop):
                _force_end(self.q_results)


def run_pipeline(
    seg: Segmenter,
    source: Source,
    outputs: RunOutputs | None,
    *,
    progress: bool = True,
    show: bool = False,
    max_frames: int | None = None,
) -> Summary:
    """Run ``seg`` over ``source`` into ``outputs`` and commit them with the summary beside them.

    Raises :class:`RockedgeError` (after removing partial outputs) when the model or the output
    fails; a broken stream or Ctrl-C returns a summary with ``stopped`` set and outputs committed.
    The caller owns ``source`` and closes it.
    """
    if show and not has_gui():
        raise RockedgeError(
            "--show needs an OpenCV build with a GUI and a display (this one is headless, e.g. "
            "opencv-python-headless); install opencv-python or JetPack's OpenCV, or drop --show"
        )
    run = _Run(seg, source)
    summary = Summary(source=source.describe(), model=seg.describe())
    sizes = SizeHistogram("mm" if seg.mm_per_px is not None else "px") if seg.measure else None
    t_start = time.perf_counter()
    try:
        with _stop_on_signals(run):
            frames, times = _consume(run, summary, outputs, progress=progress, show=show, max_frames=max_frames,
                                     sizes=sizes)
    except BaseException:
        run.shutdown()
        if outputs is not None:
            outputs.abort()
        raise
    run.shutdown()
    _raise_worker_error(run, outputs, frames, summary)
    summary.frames = frames
    summary.seconds = time.perf_counter() - t_start
    summary.fps = frames / summary.seconds if summary.seconds > 0 else 0.0
    summary.dropped = run.dropped
    summary.skipped = source.skipped
    summary.nonfinite_frames = seg.nonfinite_frames
    summary.stage_ms = {k: _stats(v) for k, v in times.items() if v}
    if run.broken and summary.stopped == "end":
        summary.stopped, summary.reason = "broken", run.broken
        warn(f"{run.broken}; keeping the {frames} frames processed")
    if sizes is not None:
        summary.rocks = sizes.distribution()
        if outputs is not None:
            outputs.rocks_curve(sizes, f"{source.label}: {frames} frames")
    if outputs is not None:
        summary.outputs = outputs.commit(summary.to_dict())
    if show:
        import cv2

        cv2.destroyAllWindows()
    return summary


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@contextlib.contextmanager
def _stop_on_signals(run: _Run) -> Iterator[None]:
    """Ctrl-C, SIGTERM (``timeout``, ``docker stop``, systemd) and SIGHUP end the run between two frames: the
    handler only notes the signal, so a frame is never half written (the overlay video one frame ahead of the
    mask video or of the summary). A second signal stops at once, or, while a frame is being written, as soon as
    that frame is written and counted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if run.interrupted:
            if run.writing:
                run.stop_now = signal.Signals(signum).name
                return
            raise KeyboardInterrupt(signal.Signals(signum).name)
        run.interrupted = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        run.stop.set()

    old = {}
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            with contextlib.suppress(ValueError, OSError):
                old[name] = signal.signal(getattr(signal, name), handler)
    try:
        yield
    finally:
        for name, h in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(getattr(signal, name), h)


def _consume(run: _Run, summary: Summary, outputs: RunOutputs | None, *, progress: bool, show: bool,
             max_frames: int | None, sizes: SizeHistogram | None = None) -> tuple[int, dict[str, list[float]]]:
    """The main thread: start the workers, write each result in order, stop on the end marker, q/Esc,
    --max-frames or Ctrl-C. Returns the frame count and per-stage times."""
    source = run.source
    bar = console_progress(total=source.frame_count, desc=source.kind, unit="frame", enabled=progress and not source.live)
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    frames = 0
    try:
        run.start()
        while True:
            if run.interrupted:
                summary.stopped, summary.reason = "interrupted", run.interrupted
                break
            item = _get(run.q_results, run.stop)
            if item is _END:
                if run.interrupted:
                    summary.stopped, summary.reason = "interrupted", run.interrupted
                break
            f, r, st = item
            run.writing = True  # from the video write to the count: one frame, all of it or none (see the handler)
            t0 = time.perf_counter()
            if outputs is not None:
                outputs.write(f, r.overlay, r.mask)
            st["encode"] = (time.perf_counter() - t0) * 1e3
            for k, v in st.items():
                times[k].append(v)
            if outputs is not None:
                outputs.record(_frame_record(f, r.stats, st))
                if r.rocks is not None:
                    outputs.record_rocks(f, r.rocks)
            if sizes is not None and r.rocks is not None:
                sizes.add(r.rocks)
            frames += 1
            run.writing = False
            if run.stop_now:
                raise KeyboardInterrupt(run.stop_now)
            bar.update(1)
            if show and r.overlay is not None and _show(r.overlay):
                summary.stopped, summary.reason = "interrupted", "closed by the user"
                break
            if max_frames is not None and frames >= max_frames:
                break
    except KeyboardInterrupt:
        summary.stopped, summary.reason = "interrupted", "Ctrl-C"
    finally:
        run.stop.set()
        bar.close()
    return frames, times


def _frame_record(f: Frame, stats: dict[str, Any], stage_ms: dict[str, float]) -> dict[str, Any]:
    rec: dict[str, Any] = {"frame": f.index, "timestamp": round(f.timestamp, 6)}
    if f.name:
        rec["name"] = f.name
    rec.update(stats)
    rec["latency_ms"] = {k: round(v, 3) for k, v in stage_ms.items()}
    return rec


def _raise_worker_error(run: _Run, outputs: RunOutputs | None, frames: int, summary: Summary) -> None:
    """A failed worker, or a run that produced nothing, leaves no output behind."""
    if run.error is None and frames > 0:
        return
    if outputs is not None:
        outputs.abort()
    if isinstance(run.error, (KeyboardInterrupt, RockedgeError)):
        raise run.error
    if run.error is not None:
        raise RockedgeError(f"inference failed: {type(run.error).__name__}: {run.error}") from run.error
    if summary.stopped == "interrupted":
        raise KeyboardInterrupt
    source = run.source
    raise RockedgeError(f"{source.label} produced no frames" + (f" ({run.broken})" if run.broken else ""))


def _stats(v: list[float]) -> dict[str, float]:
    a = np.asarray(v)
    return {"mean": round(float(a.mean()), 3), "p50": round(float(np.percentile(a, 50)), 3),
            "p95": round(float(np.percentile(a, 95)), 3)}


def _show(image: np.ndarray) -> bool:
    """Display one frame; True when the user pressed q or Esc."""
    import cv2

    cv2.imshow("rockedge", image)
    return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)
