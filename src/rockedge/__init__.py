"""rockedge: rock segmentation from PyTorch training to verified deployment on Jetson-class GPUs.

The top-level package imports nothing heavy: ``rockedge.runtime`` must work on a device that has
numpy, OpenCV and one inference backend, and no torch or onnx.
"""

from rockedge._version import __version__
from rockedge.errors import RockedgeError
from rockedge.spec import ModelSpec

__all__ = ["ModelSpec", "RockedgeError", "__version__"]
