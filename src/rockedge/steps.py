"""One artifact step, the same for every producer: stage the file, verify it, keep it or keep it as ``.failed``,
write its report beside where it landed.

ONNX export, FP16 and INT8, TensorRT engines and serving layouts all write an artifact that must pass a check
before it may replace anything at its target path (as ultralytics' ``try_export`` gives every format the same
handling). :func:`stage` gives the producer a hidden staging path beside the target; :meth:`Stage.keep` moves the
checked file to the target when it passed, or to ``<stem>.failed<suffix>`` when it did not, so a failure never
overwrites a good model; :func:`report_path` puts the report beside whichever it became (``m.parity.json`` for
``m.onnx``, ``m.failed.parity.json`` for ``m.failed.onnx``), so a failure never overwrites a good report either.

:func:`run_step` is that sequence, once: every producer (the ONNX export, FP16, INT8, the TensorRT engine) hands
it a ``make`` that writes and checks the artifact at the staging path, and a ``report`` that records where it
landed; the producer then returns a :class:`Step`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Tuple, TypeVar

from rockedge.atomic import naming, temp_beside, write_json

T = TypeVar("T")

REPORT_SUFFIX = ".parity.json"


@dataclass
class Step:
    """One artifact written: what it is, where, whether it met its budget, and what to show and record."""

    kind: str  # onnx | fp16 | int8 | engine | triton | deepstream
    path: Path
    passed: bool
    report_path: Path | None = None
    text: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # said to the user by the CLI


def failed_path(target: str | os.PathLike[str], *, folder: bool = False) -> Path:
    """``m.int8.onnx`` -> ``m.int8.failed.onnx``; a folder ``out/m.deepstream`` -> ``out/m.deepstream.failed``."""
    p = Path(target)
    if folder or not p.suffix:
        return p.with_name(p.name + ".failed")
    return p.with_name(f"{p.stem}.failed{p.suffix}")


def report_path(artifact: str | os.PathLike[str]) -> Path:
    """The report beside an artifact: ``m.onnx`` -> ``m.parity.json``, ``m.failed.plan`` -> ``m.failed.parity.json``."""
    p = Path(artifact)
    return p.with_name(p.stem + REPORT_SUFFIX)


class Stage:
    """A staging file beside ``target``: written and checked by the producer, then kept by :meth:`keep`."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = temp_beside(target)  # hidden, same suffix: writers that pick the format by suffix still can
        self.final: Path | None = None

    def keep(self, passed: bool) -> Path:
        """Move the staged file to the target (passed) or to its ``.failed`` name (not); returns where it landed."""
        self.final = self.target if passed else failed_path(self.target)
        os.replace(self.path, self.final)
        return self.final


@contextlib.contextmanager
def stage(target: str | os.PathLike[str]) -> Iterator[Stage]:
    """A :class:`Stage` for ``target``; whatever happens in the block, no staging file is left behind."""
    st = Stage(Path(target))
    try:
        with naming(st.target):  # an OSError about the staging file names the output the user asked for
            yield st
    finally:
        with contextlib.suppress(OSError):
            st.path.unlink()


@dataclass
class Landed(Generic[T]):
    """What :func:`run_step` did: where the artifact landed, whether it passed, what ``make`` found, the report."""

    path: Path
    passed: bool
    outcome: T
    report_path: Path
    report: dict[str, Any]


def run_step(target: str | os.PathLike[str], make: Callable[[Path], Tuple[bool, T]],
             report: Callable[[Path, T], dict[str, Any]], *,
             report_to: Callable[[Path], Path] = report_path) -> Landed[T]:
    """Stage ``target``; ``make(staged)`` writes the artifact there, checks it and returns ``(passed, outcome)``; keep
    it at ``target`` or as ``.failed``; then ``report(final, outcome)`` records where it landed and returns the report,
    written to ``report_to(final)`` (:func:`report_path`, or the engine's ``<plan>.parity.json``). If ``make`` raises,
    nothing is kept and no staging file is left."""
    with stage(target) as st:
        passed, outcome = make(st.path)
        final = st.keep(passed)
    body = report(final, outcome)
    return Landed(final, passed, outcome, write_json(report_to(final), body), body)
