"""Optional dependencies: import one, or say in one line which extra brings it.

rockedge's core install is the on-device runtime (numpy, OpenCV, click, tqdm); everything else is an
extra. Every "this needs X" message comes from here, so they all name the same extras.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rockedge.errors import BackendUnavailable

# module -> (pip extra, what to tell a user who cannot pip install it, e.g. on a Jetson)
EXTRAS: dict[str, str] = {
    "torch": "train",
    "torchvision": "train",
    "matplotlib": "train",
    "onnx": "export",
    "onnxsim": "export",
    "onnxruntime": "ort",
    "onnxconverter_common": "export",
}
HINTS: dict[str, str] = {
    "onnxruntime": "on a Jetson, NVIDIA's onnxruntime-gpu wheel",
    "torch": "on a Jetson, JetPack's PyTorch wheel",
}


def require(module: str, purpose: str) -> ModuleType:
    """``import module`` or raise :class:`BackendUnavailable` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        how = f"pip install 'rockedge[{extra}]'" if extra else f"pip install {top}"
        hint = f" ({HINTS[top]})" if top in HINTS else ""
        missing = e.name or top
        raise BackendUnavailable(f"{purpose} needs {missing}, which is not installed: {how}{hint}") from None
