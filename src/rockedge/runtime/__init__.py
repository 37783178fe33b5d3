"""The on-device runtime: numpy + OpenCV + one inference backend. Never imports torch or onnx."""
