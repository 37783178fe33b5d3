"""TensorRT engine builds, on the device: planning (plain Python), the thin TensorRT layer, the build job.

Device-side like :mod:`rockedge.runtime`: nothing here imports torch or onnx.
"""
