"""PyTorch backend: a checkpoint behind the same interface as ONNX Runtime and TensorRT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rockedge.runtime.backends.base import Backend
from rockedge.train.checkpoint import Checkpoint, load_checkpoint
from rockedge.train.models import LogitsOnly


class TorchBackend(Backend):
    """Runs a checkpoint in eval mode on float NCHW input; returns float32 logits."""

    name = "torch"

    def __init__(
        self,
        checkpoint: Checkpoint | str | Path,
        *,
        device: str = "cpu",
        trust_pickle: bool = False,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, trust_pickle=trust_pickle)
        spec = ckpt.spec if input_size is None else ckpt.spec.replace(input_size=tuple(input_size))
        super().__init__(spec)
        self.checkpoint = ckpt
        self.device = torch.device(device)
        self.model = LogitsOnly(ckpt.build()).to(self.device).eval()

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        return None  # fully convolutional: any size works

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        return self.model(x).float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "device": str(self.device), "arch": self.spec.arch}
