"""Which parts of rockedge run where: the one list the import-isolation test and the Python 3.8 gate share.

The device side (a Jetson: JetPack 5's Python 3.8 up to 3.13, numpy + OpenCV + one inference backend) is
every module these entry points import, with torch and onnx absent: the runtime, TensorRT engine builds and
their calibrator, verification, doctor, and the CLI (every command module is imported by ``rockedge``'s
group, so all of them must import on a device; what a command needs beyond that it imports when it runs).
Everything else (training, ONNX export, quantization) is the workstation side.
"""

from __future__ import annotations

# Packages: every submodule is device-side. Modules: the module itself (and what it imports).
# rockedge.jobs is what `export --format engine` (and triton) loads, serving/ with it; the workstation steps it
# chains (export/, calibration's FP16/INT8 ONNX and budget, qdq) are imported only by the step that runs them.
DEVICE_PACKAGES = ("rockedge.runtime", "rockedge.engine", "rockedge.verify", "rockedge.jobs", "rockedge.serving")
DEVICE_MODULES = (
    "rockedge.calibration.reader", "rockedge.calibration.cache", "rockedge.calibration.trt_calibrator",
    "rockedge.onnx_proto", "rockedge.probes", "rockedge.console", "rockedge.cuda_rt", "rockedge.plan_trust",
    "rockedge.doctor", "rockedge.benchmark", "rockedge.cli",
)
# Never loaded on a device (they may need torch, onnx or a newer Python); the gate checks none is pulled in.
WORKSTATION_MODULES = (
    "rockedge.export.pipeline", "rockedge.export.onnx", "rockedge.export.lint", "rockedge.calibration.fp16",
    "rockedge.calibration.int8", "rockedge.calibration.budget", "rockedge.calibration.qdq", "rockedge.train",
    "rockedge.models",
)
# What the device must never import.
WORKSTATION_ONLY = ("torch", "torchvision", "onnx", "onnxsim", "onnxconverter_common")
OLDEST_PYTHON = (3, 8)
