"""What nvinfer does to a frame and to the scores, in numpy: its preprocessing (``y = net-scale-factor * (x -
offsets[c])``) and its default segmentation parser (per pixel the best class above the threshold, else -1).
:func:`check_deepstream` feeds the DeepStream model as nvinfer would and compares it with the source model fed
as rockedge feeds it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rockedge.runtime.preprocess import fit, normalize
from rockedge.serving.model import DS_INPUT, DS_OUTPUT, Source
from rockedge.verify.compare import frames_with_source


def nvinfer_preprocess(frames_rgb: np.ndarray, scale: float, offsets: tuple[float, ...]) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB at network size -> float32 (N, 3, H, W): ``y = net-scale-factor * (x - offsets[c])``."""
    x = frames_rgb.astype(np.float32).transpose(0, 3, 1, 2)
    return (np.float32(scale) * (x - np.asarray(offsets, np.float32).reshape(1, 3, 1, 1))).astype(np.float32)

def nvinfer_class_map(scores: np.ndarray, threshold: float) -> np.ndarray:
    """DeepStream's default segmentation parser on (N, C, H, W) scores: per pixel the first class with the highest
    score above ``threshold``, else -1."""
    best = scores.argmax(axis=1).astype(np.int32)
    top = np.take_along_axis(scores, best[:, None], axis=1)[:, 0]
    best[~(top > threshold)] = -1
    return best

def check_deepstream(src: Source, model_bytes: bytes, props: dict[str, str], *, n: int, seed: int) -> dict[str, Any]:
    """Argmax agreement of the DeepStream model, fed as nvinfer feeds it, with the source model fed as rockedge does."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"skipped": "onnxruntime is not installed"}

    s = src.spec
    frames, where = frames_with_source(max(1, n), s.input_size, None, seed)
    fitted = np.stack([fit(f, s.input_size, s.resize)[0] for f in frames])  # BGR uint8 at network size
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    ref = ort.InferenceSession(str(src.path), opts, providers=["CPUExecutionProvider"])
    ds = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    offsets = tuple(float(v) for v in props["offsets"].split(";"))
    threshold = float(props["segmentation-threshold"])
    step = len(fitted) if src.batch_dynamic else int(src.input.shape[0] or 1)
    agree = unassigned = total = 0
    max_sum_err = 0.0
    for i in range(0, len(fitted) - step + 1, step):
        chunk = fitted[i : i + step]
        ref_mask = np.asarray(ref.run(None, {src.input.name: normalize(chunk, s)})[0]).argmax(axis=1)
        x = nvinfer_preprocess(chunk[..., ::-1], float(props["net-scale-factor"]), offsets)  # nvinfer: RGB planes
        probs = np.asarray(ds.run([DS_OUTPUT], {DS_INPUT: x})[0])
        ds_mask = nvinfer_class_map(probs, threshold)
        agree += int((ds_mask == ref_mask).sum())
        unassigned += int((ds_mask < 0).sum())
        total += ds_mask.size
        max_sum_err = max(max_sum_err, float(np.abs(probs.sum(axis=1) - 1.0).max()))
    return {"frames": (len(fitted) // step) * step, "frames_source": where, "agreement": agree / total,
            "unassigned": unassigned / total, "probability_sum_max_error": max_sum_err}
