"""The engine build, in a process of its own: ``python -m rockedge.engine.worker REQUEST.json``.

A build that exhausts a Jetson's memory is killed by the kernel with SIGKILL: no Python exception, no
message. Running it in a child lets the parent (:mod:`rockedge.engine.build`) notice the kill and say what
to do. Everything that touches TensorRT or CUDA happens in a child, so the parent never holds a CUDA context
or a Builder while the build needs the memory (an 8 GB Jetson shares it between CPU and GPU):

* ``{"probe": true}``: the TensorRT version, the GPU, its memory and DLA cores, for planning;
* otherwise a build: read the JSON request, build, write the plan to the staging path it was given.

It answers through :mod:`rockedge.child`'s protocol: a failure it can explain is ``{"ok": false, "error": ...}``
(``"unavailable": true`` when TensorRT, cuda-python or a GPU is missing).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from rockedge.calibration.cache import CacheFile
from rockedge.calibration.reader import load_calibration_set
from rockedge.calibration.trt_calibrator import make_calibrator
from rockedge.child import child_main
from rockedge.cuda_rt import memory_info, require_gpu
from rockedge.engine.builder import build_serialized
from rockedge.engine.plan import BuildPlan
from rockedge.errors import RockedgeError
from rockedge.runtime.backends.trt import import_tensorrt
from rockedge.spec import ModelSpec


def probe() -> dict[str, Any]:
    """What the build is planned from: TensorRT's version, the GPU, its memory, the DLA cores."""

    trt = import_tensorrt()
    name, cc = require_gpu()
    free, total = memory_info()
    dla = int(trt.Builder(trt.Logger(trt.Logger.WARNING)).num_DLA_cores)
    return {"tensorrt_version": str(trt.__version__), "gpu_name": name, "compute_capability": cc,
            "total_memory": total, "free_memory": free, "dla_cores": dla}


def expected_batches(n_frames: int, batch: int) -> int:
    return math.ceil(n_frames / batch) if n_frames else 0


def build(request: dict[str, Any]) -> dict[str, Any]:
    """Build as the request says; returns the result dict (raises RockedgeError on a failure it can explain)."""

    plan = BuildPlan.from_dict(request["plan"])
    calibrator = None
    calibration = None
    if plan.implicit_int8:
        spec = ModelSpec.from_dict(request["spec"])
        opt = plan.shapes.opt
        hw = (opt[1], opt[2]) if spec.input_format == "raw" else (opt[2], opt[3])
        calibration = load_calibration_set(request.get("calib_source"), spec, n=int(request["calib_n"]), size_hw=hw,
                                           seed=int(request.get("seed", 0)))
        cache = CacheFile(Path(request["calib_cache"])) if request.get("calib_cache") else None
        calibrator = make_calibrator(calibration, batch=opt[0], cache=cache, onnx_sha256=str(request["onnx_sha256"]))
    try:
        data, result = build_serialized(Path(request["onnx"]), plan, request["input_name"],
                                        timing_cache=Path(request["timing_cache"]) if request.get("timing_cache") else None,
                                        calibrator=calibrator)
        if calibrator is not None and calibration is not None and not calibrator.cache_hit:
            # TensorRT catches an exception raised in get_batch, prints it and ends calibration as if the data had
            # run out: an engine calibrated on fewer batches than the set holds is never shipped.
            want = expected_batches(len(calibration), calibrator.feeder.batch)
            if calibrator.feeder.fed < want:
                raise RockedgeError(f"INT8 calibration stopped after {calibrator.feeder.fed} of {want} batches (an "
                                    "error in the calibration data, printed above?); the engine is not calibrated")
    finally:
        if calibrator is not None:
            calibrator.close()
    Path(request["staging"]).write_bytes(data)
    out = result.to_dict()
    if calibration is not None:
        out["calibration"] = calibration.to_dict()
    return out


def main(argv: list[str]) -> int:
    return child_main(argv, lambda request: probe() if request.get("probe") else build(request))


if __name__ == "__main__":  # pragma: no cover - run by rockedge.engine.build in a child process
    sys.exit(main(sys.argv))
