"""Where benchmark scripts write their dated results: benchmarks/results/<date>-<machine>-<name>.json.

The results are committed: every number the README and docs quote comes from one of these files, and the
file name says when and on what it was measured."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_tag() -> str:
    """A short name for this machine: architecture and core count, plus the GPU or Jetson model if any."""
    tag = f"{platform.machine()}-{os.cpu_count()}core"
    try:
        model = Path("/proc/device-tree/model").read_text(errors="replace").replace("\x00", "").strip()
        if model:
            tag = model
    except OSError:
        pass
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tag).strip("-").lower()


def results_path(name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{_dt.date.today().isoformat()}-{machine_tag()}-{name}.json"
