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


# The instruction-set extension that decides int8 and float speed most, best first (names from rockedge.probes).
ISA_TAGS = (("AMX-INT8", "amx"), ("AVX-512 VNNI", "avx512vnni"), ("AVX-VNNI", "avxvnni"), ("AVX-512", "avx512"),
            ("AVX2", "avx2"), ("int8 matmul", "i8mm"), ("dot product", "dotprod"), ("NEON", "neon"))


def isa_tag() -> str:
    from rockedge.probes import cpu_info

    isa = cpu_info()["isa"]
    return next((tag for name, tag in ISA_TAGS if name in isa), "noisa")


def machine_tag() -> str:
    """A short name for this machine: architecture, core count and its best ISA extension (a VNNI machine and
    an AVX2-only one give different numbers), or the Jetson model."""
    tag = f"{platform.machine()}-{os.cpu_count()}core-{isa_tag()}"
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


def median_ms(fn, runs: int) -> float:  # noqa: ANN001
    """Median wall milliseconds of ``runs`` calls of ``fn`` after one warm-up call."""
    import time

    import numpy as np

    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * float(np.median(times)), 3)
