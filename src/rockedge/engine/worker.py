"""The engine build, in a process of its own: ``python -m rockedge.engine.worker REQUEST.json``.

A build that exhausts a Jetson's memory is killed by the kernel with SIGKILL: no Python exception, no
message. Running it in a child lets the parent (:mod:`rockedge.engine.build`) notice the kill and say what
to do. The child reads a JSON request, builds, writes the plan to the staging path it was given and a
JSON result beside the request; a failure it can explain becomes ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from rockedge.errors import RockedgeError


def result_path(request: Path) -> Path:
    return request.with_name(request.stem + ".result.json")


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Build as the request says; returns the result dict (raises RockedgeError on a failure it can explain)."""
    from rockedge.calibration.cache import CacheFile
    from rockedge.calibration.reader import load_calibration_set
    from rockedge.calibration.trt_calibrator import make_calibrator
    from rockedge.engine.builder import build_serialized
    from rockedge.engine.plan import BuildPlan
    from rockedge.spec import ModelSpec

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
        calibrator = make_calibrator(calibration, batch=opt[0], cache=cache)
    try:
        data, result = build_serialized(Path(request["onnx"]), plan, request["input_name"],
                                        timing_cache=Path(request["timing_cache"]) if request.get("timing_cache") else None,
                                        calibrator=calibrator)
        if calibrator is not None and not calibrator.cache_hit and calibrator.feeder.fed == 0:
            # TensorRT swallows exceptions raised in get_batch and ends calibration: never ship what that built.
            raise RockedgeError("INT8 calibration received no batch (an error in the calibration data?); "
                                "the engine is not calibrated")
    finally:
        if calibrator is not None:
            calibrator.close()
    Path(request["staging"]).write_bytes(data)
    out = {"ok": True, **result.to_dict()}
    if calibration is not None:
        out["calibration"] = calibration.to_dict()
    return out


def main(argv: list[str]) -> int:
    request_file = Path(argv[1])
    request = json.loads(request_file.read_text())
    try:
        result = run(request)
        code = 0
    except RockedgeError as e:
        result, code = {"ok": False, "error": str(e)}, 1
    except Exception as e:  # a TensorRT or CUDA failure with no rockedge message: keep its last line and trace
        result, code = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}, 1
    result_path(request_file).write_text(json.dumps(result))
    return code


if __name__ == "__main__":  # pragma: no cover - run by rockedge.engine.build in a child process
    sys.exit(main(sys.argv))
