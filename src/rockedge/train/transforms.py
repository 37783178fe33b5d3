"""Paired (image, mask) augmentations in numpy/OpenCV. Masks are only ever resized with nearest-neighbour.

Each sample's randomness comes from its own ``np.random.Generator`` seeded by (seed, epoch, index), so
a run is reproducible whatever the number of data-loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rockedge.spec import IGNORE_INDEX


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple[float, float] = (0.5, 1.5)  # random rescale before the crop
    hflip: float = 0.5
    vflip: float = 0.2  # rock piles are often seen from above: up/down is a fair flip
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    hue: float = 6.0  # degrees on OpenCV's 0-180 hue scale
    blur: float = 0.15  # probability of a light Gaussian blur (motion/defocus on a moving vehicle)


# Named strengths for `rockedge train --augment`. "light" suits many varied scenes and short budgets: on the demo
# (LR-ASPP, 192 px, 5 min) it measured +2 points of held-out rock IoU over "default" (benchmarks/results).
AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "default": AugmentConfig(),
    "light": AugmentConfig(scale=(0.75, 1.25), brightness=0.15, contrast=0.15, saturation=0.15, hue=3.0, blur=0.1),
}


def resize_pair(img: np.ndarray, mask: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = size_hw
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR if h * w >= img.shape[0] * img.shape[1] else cv2.INTER_AREA)
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    return img, mask


def random_scale_crop(
    img: np.ndarray, mask: np.ndarray, size_hw: tuple[int, int], scale: tuple[float, float], rng: np.random.Generator,
    crop_hw: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the image to the model size ``size_hw`` (as inference resizes frames), rescale it randomly, then pad
    (mask: ignore) and take a ``crop_hw`` crop (default: the model size). A crop smaller than the model size
    keeps objects at their inference scale while each step costs less."""
    fh, fw = size_hw
    th, tw = crop_hw or size_hw
    h, w = img.shape[:2]
    s = min(fh / h, fw / w) * float(rng.uniform(*scale))
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    img, mask = resize_pair(img, mask, (nh, nw))
    ph, pw = max(0, th - nh), max(0, tw - nw)
    if ph or pw:
        img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)
        mask = cv2.copyMakeBorder(mask, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    y = int(rng.integers(0, img.shape[0] - th + 1))
    x = int(rng.integers(0, img.shape[1] - tw + 1))
    return img[y : y + th, x : x + tw], mask[y : y + th, x : x + tw]


def color_jitter(img: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float32)
    out *= 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    mean = out.mean()
    out = (out - mean) * (1.0 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue, cfg.hue)) % 180
    hsv[..., 1] *= 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)


def train_transform(
    img: np.ndarray, mask: np.ndarray, size_hw: tuple[int, int], cfg: AugmentConfig, rng: np.random.Generator,
    crop_hw: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    img, mask = random_scale_crop(img, mask, size_hw, cfg.scale, rng, crop_hw)
    if rng.random() < cfg.hflip:
        img, mask = img[:, ::-1], mask[:, ::-1]
    if rng.random() < cfg.vflip:
        img, mask = img[::-1], mask[::-1]
    img = color_jitter(np.ascontiguousarray(img), cfg, rng)
    if rng.random() < cfg.blur:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.5)))
    return np.ascontiguousarray(img), np.ascontiguousarray(mask)
