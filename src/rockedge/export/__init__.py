"""Export side (needs torch + onnx): ONNX export, simplification, TensorRT lint and parity checks."""
