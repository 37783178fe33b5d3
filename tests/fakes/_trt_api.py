"""What the fakes know about TensorRT and cuda-python: the per-version name lists in tests/data/tensorrt_api (taken
from NVIDIA's own bindings, see its README) and the scenario a test asks for. Shared by the fake ``tensorrt`` and
the fake ``cuda`` packages beside this file.

Environment (set by the ``fake_trt`` fixture, inherited by the engine build's child process):

* ``ROCKEDGE_FAKE_TRT``: the version whose names the fake defines (``8.5.2``, ``8.6.1``, ``10.3.0``, ``11.0.0``);
* ``ROCKEDGE_FAKE_TRT_SCENARIO``: a JSON file of behaviour switches (see :data:`DEFAULTS`);
* ``ROCKEDGE_FAKE_TRT_LOG``: a JSON-lines file the fakes append what happened to (for the tests to read).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "tensorrt_api"

DEFAULTS: dict[str, Any] = {
    "gpus": [{"name": "Orin", "major": 8, "minor": 7}],
    "total_memory": 8 << 30,
    "free_memory": 6 << 30,
    "dla_cores": 0,
    "driver": "ok",  # ok | insufficient (cudaErrorInsufficientDriver) | dlopen (cuda-python <= 12.6 without a driver)
    "driver_cuda": 12060,  # cudaDriverGetVersion (0: no NVIDIA driver)
    "runtime_cuda": 12060,  # cudaRuntimeGetVersion (cuda-python's own CUDA runtime)
    "mem_info_error": None,  # a cudaError_t name cudaMemGetInfo returns instead of success
    "properties_error": None,  # a cudaError_t name cudaGetDeviceProperties returns instead of success
    "build_returns_none": False,
    "timing_cache": "ok",  # ok | create_none | set_false | get_none | serialize_not_buffer
    "ignore_precision_flags": False,  # a build that silently runs FP32 whatever was asked
    "oom_warning": False,  # TensorRT logs that tactics were skipped for lack of memory
    "get_batch_raises_at": None,  # batch index whose get_batch raises (TensorRT catches it and stops)
    "parser_errors": [],
}


def version() -> str:
    return os.environ.get("ROCKEDGE_FAKE_TRT", "10.3.0")


def names() -> dict[str, Any]:
    return json.loads((DATA / f"{version()}.json").read_text())


def scenario() -> dict[str, Any]:
    path = os.environ.get("ROCKEDGE_FAKE_TRT_SCENARIO")
    extra = json.loads(Path(path).read_text()) if path and Path(path).is_file() else {}
    return {**DEFAULTS, **extra}


def log(event: str, **fields: Any) -> None:
    path = os.environ.get("ROCKEDGE_FAKE_TRT_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, "pid": os.getpid(), **fields}, default=str) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
