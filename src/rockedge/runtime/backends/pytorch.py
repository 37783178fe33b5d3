"""PyTorch backend: a checkpoint (or a model being trained) behind the same contract as ONNX Runtime and TensorRT.

torch is imported when a model is opened, never when this module is imported, so the runtime's
import-isolation guarantee holds; running a checkpoint needs ``rockedge[train]``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rockedge.deps import require
from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.runtime.backends.base import Backend, BackendInfo
from rockedge.runtime.modelio import NO_FLAGS, SpecFlags, resolve_io
from rockedge.spec import ModelSpec
from rockedge.tensors import TensorInfo


class TorchBackend(Backend):
    """Runs a model in eval mode on float NCHW input; returns float32 logits.

    ``precision=fp16`` runs it under CUDA autocast (the torch-CUDA stand-in for an FP16 engine).
    """

    name = "torch"

    def __init__(
        self,
        checkpoint: Any,
        *,
        device: str | None = None,
        trust_pickle: bool = False,
        spec_flags: SpecFlags = NO_FLAGS,
        precision: Precision = Precision.FP32,
    ) -> None:
        """``checkpoint``: a path or a loaded :class:`rockedge.models.checkpoint.Checkpoint`."""
        self.model: Any = None
        require("torch", "running a checkpoint")
        from rockedge.models.checkpoint import Checkpoint, load_checkpoint

        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, trust_pickle=trust_pickle)
        self.checkpoint = ckpt
        where = str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "checkpoint"
        self.spec_assumed = ckpt.spec_assumed and spec_flags.classes is None
        self._setup(ckpt.build(), ckpt.spec, device, precision, where, spec_flags, assumed=ckpt.spec_assumed)

    @classmethod
    def from_module(cls, model: Any, spec: ModelSpec, *, device: Any = "cpu",
                    precision: Precision = Precision.FP32) -> "TorchBackend":
        """Wrap an in-memory model (e.g. one being trained) without copying it."""
        self = cls.__new__(cls)
        self.checkpoint = None
        self.spec_assumed = False
        self._setup(model, spec, str(device), precision, "<in-memory model>", NO_FLAGS, assumed=False)
        return self

    def _setup(self, model: Any, spec: ModelSpec, device: str | None, precision: Precision, where: str,
               flags: SpecFlags, *, assumed: bool) -> None:
        import torch

        self.where = where
        self.device = torch.device(device or "cpu")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RockedgeError(f"--device {device}: torch sees no CUDA GPU on this machine")
        self.precision = Precision.parse(precision)
        if self.precision is Precision.INT8:
            raise RockedgeError("the PyTorch backend runs fp32 or fp16; INT8 models are ONNX (QDQ) or TensorRT engines")
        if self.precision is Precision.FP16 and self.device.type != "cuda":
            raise RockedgeError("fp16 on the PyTorch backend needs a CUDA device (--device cuda)")
        c = spec.num_classes
        self.spec, self.input, self.output = resolve_io(
            where, [TensorInfo("input", (None, 3, None, None), "float32")],
            [TensorInfo("out", (None, c, None, None), "float32")], spec, flags, assumed=assumed,
        )
        self.model = model.to(self.device).eval()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        from rockedge.models.zoo import main_output

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        half = self.precision is Precision.FP16
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16, enabled=half):
            out = main_output(self.model(x))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out.float().cpu().numpy()

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(self.name, self.where, str(getattr(self, "device", "cpu")), (),
                           getattr(self, "precision", Precision.FP32), {"arch": self.spec.arch})

    def close(self) -> None:
        self.model = None
