"""Judging artifacts: run two backends on the same frames, then score them in segmentation terms (parity),
evaluate a model on labelled data (pixel accuracy, per-class IoU), and measure an accuracy drop against a reference.

Every producer (ONNX export, FP16/INT8, TensorRT engines, serving formats) and the device itself use it, so it
sits above the runtime and below every producer, and imports neither torch nor onnx: like Polygraphy's
``Comparator.run`` then ``compare_accuracy``, :func:`rockedge.verify.compare.compare` runs, then scores.
"""
