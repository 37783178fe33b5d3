"""Progress that a log can hold: bars on a terminal, a sparse line every few seconds elsewhere."""

from __future__ import annotations

import io

from rockedge import console


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_line_progress_prints_at_most_one_line_per_interval(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    out = io.StringIO()
    bar = console.progress(range(100), total=100, desc="epoch 1/3", unit="batch", file=out)
    assert isinstance(bar, console.LineProgress)  # a StringIO is not a terminal
    for _ in bar:
        clock.t += 0.5  # 100 items x 0.5 s = 50 s: five 10 s intervals
    lines = out.getvalue().splitlines()
    assert 4 <= len(lines) <= 6, lines
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("epoch 1/3: 20/100 batch (20 %)") and "ETA 40 s" in lines[0]
    assert lines[-1].startswith("epoch 1/3: 100/100 batch (100 %)")


def test_short_jobs_print_nothing_and_disabled_progress_is_silent(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    out = io.StringIO()
    for _ in console.progress(range(5), desc="quick", file=out):
        clock.t += 0.1
    assert out.getvalue() == ""
    silent = console.progress(total=3, enabled=False, file=out)
    silent.update(3)
    silent.close()
    assert out.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = console.progress(total=2, desc="x", file=Tty())
    assert type(bar).__module__.startswith("tqdm")
    bar.close()
