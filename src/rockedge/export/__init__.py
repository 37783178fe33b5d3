"""ONNX export (needs torch and onnx): a checkpoint to a checked, simplified ONNX with its spec inside
(:mod:`.onnx`), the TensorRT-parser lint (:mod:`.lint`), and export-then-verify against PyTorch (:mod:`.pipeline`).
Judging the result is :mod:`rockedge.verify`; the job chain that continues to FP16/INT8, engines and serving
formats is :mod:`rockedge.jobs`."""
