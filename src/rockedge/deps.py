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


def not_installed(e: ImportError, top: str) -> bool:
    """Whether ``e`` means ``top`` is absent, as opposed to installed but failing to load (a missing shared
    library, a memory limit, an ABI mismatch): those need another fix than pip install."""
    return isinstance(e, ModuleNotFoundError) and (e.name or top).split(".")[0] == top


def load_failure(e: ImportError, top: str) -> str:
    """``torch is installed but cannot be loaded: ...``, with the likely cause when the loader names one."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    low = text.lower()
    if any(w in low for w in ("failed to map segment", "cannot allocate memory", "out of memory", "bad_alloc")):
        cause = "not enough memory to load it (a ulimit -v or container memory limit?)"
    elif "cannot open shared object file" in low:
        cause = "a shared library it needs is missing (its CUDA/TensorRT libraries?)"
    elif "undefined symbol" in low or "version `" in low:
        cause = "it was built against other library versions than the ones installed"
    else:
        cause = "its import fails"
    return f"{top} is installed but cannot be loaded: {cause} ({text[:200]})"


def require(module: str, purpose: str) -> ModuleType:
    """``import module`` or raise :class:`BackendUnavailable` naming the extra that installs it (or, for one that
    is installed but does not load, why)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        if not not_installed(e, top):
            raise BackendUnavailable(f"{purpose}: {load_failure(e, top)}") from None
        extra = EXTRAS.get(top)
        how = f"pip install 'rockedge[{extra}]'" if extra else f"pip install {top}"
        hint = f" ({HINTS[top]})" if top in HINTS else ""
        missing = e.name or top
        raise BackendUnavailable(f"{purpose} needs {missing}, which is not installed: {how}{hint}") from None
