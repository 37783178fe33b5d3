"""Helpers shared by test modules (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner


def cli_runner() -> CliRunner:
    """A CliRunner whose results keep stdout and stderr apart (``.stdout``, ``.stderr``): the default from click 8.2,
    ``mix_stderr=False`` on click 8.1 (the last release for Python 3.8, which the oldest-dependency run uses)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def write_video(path: Path, frames: list[np.ndarray], fps: float = 29.97, fourcc: str = "mp4v") -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def read_video(path: Path) -> tuple[float, list[np.ndarray]]:
    """(fps, every frame) of a video file; fails the test when it does not open."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not playable"
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return fps, frames
