"""Precision reduction: FP16 conversion and INT8 calibration (QDQ ONNX, TensorRT calibrator caches).

Planned: calibration data readers are any iterable of ``{input_name: ndarray}`` built from
:mod:`rockedge.data` datasets, so ONNX Runtime quantization and TensorRT calibrators share one source.
"""
