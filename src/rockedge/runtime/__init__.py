"""The on-device runtime: numpy + OpenCV + one inference backend. Never imports torch or onnx.

    from rockedge.runtime import Segmenter
    seg = Segmenter("model.onnx")
    result = seg.predict(frame_bgr)   # .mask, .overlay, .stats
"""

from rockedge.runtime.segmenter import Result, Segmenter

__all__ = ["Result", "Segmenter"]
