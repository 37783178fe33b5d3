"""What rockedge prints while it works: warnings, progress, and OpenCV's fd-2 chatter kept quiet.

Progress follows the habit of most CLIs: a live bar on a terminal, and off a terminal (a log file,
CI) at most one plain line every :data:`LOG_INTERVAL_S` seconds, so ``rockedge demo > log 2>&1`` leaves
a log a person can read top to bottom.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

from rockedge.redact import redact

T = TypeVar("T")

LOG_INTERVAL_S = float(os.environ.get("ROCKEDGE_LOG_INTERVAL", "10"))


def warn(message: str) -> None:
    """One warning line on stderr (kept out of stdout, which carries tables and summaries)."""
    print(f"warning: {redact(message)}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """One informational line on stderr ("note: ...")."""
    print(f"note: {redact(message)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence what OpenCV/FFmpeg/V4L2 print straight to fd 2 while probing, so a failure stays one line."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            sys.stderr.flush()
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """Progress for logs: ``desc: 40/200 (20 %), 12 s, ETA 48 s`` at most every ``interval`` seconds.

    Answers the part of tqdm's interface rockedge uses (iteration, ``update``, ``set_postfix_str``,
    ``close``, context manager). Prints nothing for jobs shorter than one interval.
    """

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", interval: float = LOG_INTERVAL_S, file: IO[str] | None = None) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.file = file or sys.stderr
        self.n = 0
        self.postfix = ""
        self.t0 = time.monotonic()
        self.last = self.t0
        self.printed_n: int | None = None  # count at the last printed line

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._print(now)

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def _print(self, now: float) -> None:
        elapsed = now - self.t0
        if self.total:
            pct = f" ({100 * self.n / self.total:.0f} %)"
            eta = f", ETA {elapsed / self.n * (self.total - self.n):.0f} s" if self.n else ""
            count = f"{self.n}/{self.total} {self.unit}{pct}"
        else:
            count, eta = f"{self.n} {self.unit}", ""
        tail = f" [{self.postfix}]" if self.postfix else ""
        print(f"{self.desc}: {count}, {elapsed:.0f} s{eta}{tail}", file=self.file, flush=True)
        self.printed_n = self.n

    def close(self) -> None:
        # A job that printed progress also prints where it ended; a short one stays silent.
        if self.printed_n is not None and self.printed_n != self.n:
            self._print(time.monotonic())

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(LineProgress):
    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, file: IO[str] | None = None) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` in a log, nothing when ``enabled`` is False."""
    stream = file or sys.stderr
    if not enabled:
        return _Silent(iterable, total=total, desc=desc, unit=unit, file=stream)
    if _is_tty(stream):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=stream)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, file=stream)
