"""Shared fixtures. Models here are small (MobileNetV3 at <= 96 px) and briefly trained so their masks
are not constant: parity on an untrained model that predicts one class everywhere would prove nothing.

``--reverse`` runs the collected tests in the reverse order (last file first, last test of each file first): a test
that passes only after another one ran (a session cache it relies on, state a test leaves behind) fails one of the
two orders. ``python -m pytest --reverse`` and ``python -m pytest`` should both pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SEED_ROCKS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seed-rocks"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reverse", action="store_true", default=False,
                     help="run the collected tests in reverse order (see tests/conftest.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--reverse"):
        items.reverse()
    from rockedge.probes import tensorrt_available, torch_cuda

    has_trt = tensorrt_available()
    cuda = None
    for item in items:
        if "gpu" in item.keywords or "tensorrt" in item.keywords:
            cuda = torch_cuda() if cuda is None else cuda
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none on this machine"))
                continue
        if "tensorrt" in item.keywords and not has_trt:
            item.add_marker(pytest.mark.skip(reason="needs the tensorrt package (JetPack / NVIDIA index); not installed"))
        if "seed" in item.keywords and not SEED_ROCKS.is_dir():
            item.add_marker(pytest.mark.skip(reason=f"seed-rocks fixture not found at {SEED_ROCKS}"))


@pytest.fixture(scope="session")
def seed_rocks() -> Path:
    if not SEED_ROCKS.is_dir():
        pytest.skip(f"seed-rocks fixture not found at {SEED_ROCKS}")
    return SEED_ROCKS


def head_bias(model):
    """The bias of the layer whose output channels are the classes (DeepLabV3 or LR-ASPP)."""
    head = getattr(model.classifier, "high_classifier", None)
    return head.bias if head is not None else model.classifier[4].bias


def blob_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A quick textured scene with bright-ish ellipses as 'rocks' (BGR image, class-index mask)."""
    import cv2

    img = rng.integers(60, 110, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(2, 6)):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        ax = (int(rng.integers(w // 12, w // 4)), int(rng.integers(h // 12, h // 4)))
        ang = float(rng.uniform(0, 180))
        cv2.ellipse(mask, c, ax, ang, 0, 360, 1, -1)
    tone = rng.integers(150, 220, 3)
    img[mask == 1] = np.clip(tone + rng.normal(0, 12, (int((mask == 1).sum()), 3)), 0, 255).astype(np.uint8)
    return img, mask


@pytest.fixture(scope="session")
def trained_ckpt(tmp_path_factory: pytest.TempPathFactory):
    """Factory: ``trained_ckpt(arch=..., size=(h, w), steps=N)`` -> path of a checkpoint trained for a few
    seconds on blob scenes, cached for the session by everything that shapes the model (arch, size, steps).

    The default, LR-ASPP for 60 steps (5 s on one thread), segments blob scenes (rock IoU ~0.75): its masks
    depend on the image, so a test that mixes frames up or compares two models sees it. DeepLabV3-MobileNetV3
    learns nothing in that time (its masks are the same for every image); ask for it only to test that
    architecture itself.

    Training is deterministic whatever the machine: one thread (a reduction split over more threads sums in
    another order), deterministic algorithms, fixed seeds. Two test files asking for different step counts get
    different models, in any order."""
    cache: dict[tuple[str, tuple[int, int], int], Path] = {}

    def make(arch: str = "lraspp_mobilenet_v3_large", size: tuple[int, int] = (64, 64), steps: int = 60) -> Path:
        key = (arch, (int(size[0]), int(size[1])), int(steps))
        if key in cache:
            return cache[key]
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            path = _train(arch, key[1], key[2])
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(False)
        cache[key] = path
        return path

    def _train(arch: str, size: tuple[int, int], steps: int) -> Path:
        import torch

        from rockedge.models.checkpoint import Checkpoint, save_checkpoint
        from rockedge.models.zoo import build_model, main_output
        from rockedge.runtime.preprocess import normalize
        from rockedge.spec import ModelSpec

        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        spec = ModelSpec(arch=arch, input_size=tuple(size))
        model = build_model(arch=arch, num_classes=2)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(steps):
            imgs, masks = zip(*(blob_scene(rng, *size) for _ in range(4)))
            x = torch.from_numpy(normalize(np.stack(imgs), spec))
            y = torch.from_numpy(np.stack(masks)).long()
            loss = torch.nn.functional.cross_entropy(main_output(model(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        # A few seconds of training learns features but rarely flips the argmax yet. Centre the rock
        # logit so ~35 % of pixels are rock: the masks then have real boundaries for parity to test.
        model.eval()
        with torch.no_grad():
            imgs = [blob_scene(rng, *size)[0] for _ in range(4)]
            out = main_output(model(torch.from_numpy(normalize(np.stack(imgs), spec))))
            diff = (out[:, 1] - out[:, 0]).flatten()
            head_bias(model)[1] -= torch.quantile(diff, 0.65)
        path = tmp_path_factory.mktemp("ckpt") / f"{arch}_{size[0]}x{size[1]}_{steps}.pt"
        save_checkpoint(path, Checkpoint(spec=spec, state_dict=model.state_dict()))
        return path

    return make


@pytest.fixture
def scenes():
    """Factory: ``scenes(n, h, w, seed)`` -> list of (BGR image, mask) blob scenes."""

    def make(n: int = 4, h: int = 64, w: int = 64, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng(seed)
        return [blob_scene(rng, h, w) for _ in range(n)]

    return make


os.environ.setdefault("OMP_NUM_THREADS", "2")
