"""Loss for rare foreground: class-weighted cross-entropy plus soft Dice on the non-background classes.

Cross-entropy alone lets a model predict "background" everywhere when rocks are < 1 % of pixels (the
seed-rocks photos); frequency weights and a Dice term (which scores overlap, not pixel count) prevent it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rockedge.spec import IGNORE_INDEX


def class_weights(pixel_counts: np.ndarray, cap: float = 10.0) -> torch.Tensor:
    """Inverse square-root frequency weights, normalised to mean 1 and capped to keep training stable."""
    freq = pixel_counts.astype(np.float64) / max(1, pixel_counts.sum())
    w = 1.0 / np.sqrt(np.maximum(freq, 1e-6))
    w = w / w.mean()
    return torch.tensor(np.minimum(w, cap), dtype=torch.float32)


class SegLoss(nn.Module):
    def __init__(self, weights: torch.Tensor | None = None, dice_weight: float = 0.5, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.register_buffer("weights", weights if weights is not None else torch.empty(0))
        self.dice_weight = dice_weight
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = self.weights if self.weights.numel() else None
        ce = F.cross_entropy(logits.float(), target, weight=w, ignore_index=self.ignore_index)
        if self.dice_weight <= 0:
            return ce
        valid = (target != self.ignore_index).unsqueeze(1)
        probs = logits.float().softmax(1) * valid
        onehot = F.one_hot(target.clamp(0, logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        denom = probs.sum(dims) + onehot.sum(dims)
        dice = 1 - (2 * inter + 1) / (denom + 1)
        return ce + self.dice_weight * dice[1:].mean()  # background's Dice is ~0 and says nothing
