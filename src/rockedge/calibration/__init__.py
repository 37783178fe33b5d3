"""Precision reduction: FP16 and Q/DQ INT8 ONNX models held to a budget, and TensorRT's INT8 calibration.

Workstation side (onnx, ONNX Runtime's quantizer): :mod:`.fp16`, :mod:`.int8` with its accuracy-budget loop
(:mod:`.budget`) and Q/DQ graph (:mod:`.qdq`), and what both start from (:mod:`.inputs`). Device side (no torch,
no onnx): the one calibration-frame reader (:mod:`.reader`, which feeds ONNX Runtime and TensorRT alike),
TensorRT's calibrator (:mod:`.trt_calibrator`) and its cache (:mod:`.cache`).
"""
