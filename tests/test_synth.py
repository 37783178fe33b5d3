"""Synthetic scenes and videos: determinism, layout, difficulty, video read-back, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import read_video

from rockedge.cli import main
from rockedge.data.datasets import open_dataset
from rockedge.data.labelmap import LabelMap, read_labelmap
from rockedge.data.synth import (
    is_val,
    render_scene,
    write_synth_dataset,
    write_synth_video,
)
from rockedge.errors import RockedgeError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_scene_is_deterministic_and_exact() -> None:
    a_img, a_mask = render_scene(np.random.default_rng([3, 1]), (64, 96))
    b_img, b_mask = render_scene(np.random.default_rng([3, 1]), (64, 96))
    c_img, _ = render_scene(np.random.default_rng([3, 2]), (64, 96))
    assert a_img.shape == (64, 96, 3) and a_img.dtype == np.uint8
    assert a_mask.shape == (64, 96) and a_mask.dtype == np.uint8
    assert set(np.unique(a_mask)) <= {0, 1}
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)


def test_dataset_layout_prefix_property_and_identical_bytes(tmp_path: Path) -> None:
    small = write_synth_dataset(tmp_path / "s", n=6, size_hw=(64, 64), seed=7, progress=False)
    big = write_synth_dataset(tmp_path / "b", n=11, size_hw=(64, 64), seed=7, progress=False)
    fs, fb = _files(small), _files(big)
    images = [k for k in fs if k.endswith((".jpg", ".png"))]
    assert len(images) == 18  # 6 images + 6 masks + 6 instance masks (prefix-stable too)
    for k in images:
        assert fs[k] == fb[k], f"{k} differs between --n 6 and --n 11 with the same seed"
    other = _files(write_synth_dataset(tmp_path / "o", n=6, size_hw=(64, 64), seed=8, progress=False))
    assert all(other[k] != fs[k] for k in images if k.endswith(".jpg"))
    assert read_labelmap(small / "labelmap.txt") == LabelMap.default()
    meta = json.loads((small / "synth.json").read_text())
    assert meta["seed"] == 7 and meta["n"] == 6 and meta["size_hw"] == [64, 64]
    assert meta["counts"] == {"train": 5, "val": 1}
    train, val = open_dataset(small, "train"), open_dataset(small, "val")
    assert (len(train), len(val)) == (5, 1)
    image, mask = val[0]
    assert image.shape == (64, 64, 3) and mask.max() == 1
    assert not list(tmp_path.glob(".*")), "staging folders left behind"


def test_val_split_is_prefix_stable_and_sized() -> None:
    for n, f in ((10, 0.2), (20, 0.2), (7, 0.3), (100, 0.15)):
        assert sum(is_val(i, f) for i in range(n)) == int(n * f + 0.5)
    assert not any(is_val(i, 0.0) for i in range(50))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0, "size_hw": (64, 64)}, "--n must be at least 1"),
        ({"n": 2, "size_hw": (16, 64)}, "scene size 16x64 \\(HxW\\) is out of range: each side must be 32..8192"),
        ({"n": 2, "size_hw": (64, 64), "val_fraction": 1.0}, r"val fraction must be in \[0, 1\)"),
    ],
)
def test_dataset_argument_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(RockedgeError, match=message):
        write_synth_dataset(tmp_path / "d", progress=False, **kwargs)
    assert not (tmp_path / "d").exists()


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(RockedgeError, match="not empty; choose another --out or pass --overwrite"):
        write_synth_dataset(out, n=1, size_hw=(32, 32), progress=False)
    write_synth_dataset(out, n=1, size_hw=(32, 32), progress=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "synth.json").is_file()


# -- difficulty ------------------------------------------------------------------------------------


def _best_colour_rule_iou(images: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Rock IoU of the best cheap per-pixel colour rules, fitted on the very pixels they are scored on.

    Thresholds on gray/H/S/V (either direction) and the optimal 16x16x16 RGB lookup table: bins
    taken in order of rock purity, keeping the prefix with the highest IoU. In-sample, so optimistic.
    """
    bgr = images.reshape(-1, 1, 3)
    y = masks.reshape(-1).astype(bool)
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV_FULL).reshape(-1, 3)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).reshape(-1)
    out: dict[str, float] = {}
    for name, v in (("gray", gray), ("hue", hsv[:, 0]), ("sat", hsv[:, 1]), ("val", hsv[:, 2])):
        rock = np.bincount(v[y], minlength=256).astype(np.float64)
        bg = np.bincount(v[~y], minlength=256).astype(np.float64)
        best = 0.0
        for r, b in ((rock, bg), (rock[::-1], bg[::-1])):  # "v >= t" and "v <= t"
            tp, fp = np.cumsum(r[::-1])[::-1], np.cumsum(b[::-1])[::-1]
            best = max(best, float(np.max(tp / (y.sum() + fp))))  # tp + fp + fn = |rock| + fp
        out[name] = best
    q = (bgr.reshape(-1, 3) // 16).astype(np.int64)
    key = q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2]
    rock = np.bincount(key[y], minlength=4096).astype(np.float64)
    bg = np.bincount(key[~y], minlength=4096).astype(np.float64)
    order = np.argsort(-(rock / np.maximum(rock + bg, 1)))
    out["rgb_lut"] = float(np.max(np.cumsum(rock[order]) / (y.sum() + np.cumsum(bg[order]))))
    return out


def test_scenes_are_not_separable_by_colour(scenes) -> None:
    """Rocks and ground share colours: no per-pixel colour rule reaches what a trained model does.

    The same rules separate conftest's easy blob scenes almost perfectly, so the measure has teeth.
    """
    pairs = [render_scene(np.random.default_rng([0, i]), (96, 96)) for i in range(32)]  # 295k pixels
    images, masks = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    fractions = masks.reshape(len(pairs), -1).mean(1)
    assert 0.10 <= fractions.mean() <= 0.60, f"mean rock cover {fractions.mean():.2%}"
    assert (fractions > 0).all()
    synth = _best_colour_rule_iou(images, masks)
    easy_pairs = scenes(n=8, h=96, w=96, seed=0)
    easy = _best_colour_rule_iou(np.stack([p[0] for p in easy_pairs]), np.stack([p[1] for p in easy_pairs]))
    assert max(easy.values()) > 0.9, f"the colour rules should solve blob scenes: {easy}"
    assert max(synth.values()) < 0.6, f"a colour rule separates synthetic rocks too well: {synth}"


# -- video -----------------------------------------------------------------------------------------


def test_synth_video_frames_fps_and_masks(tmp_path: Path) -> None:
    out = write_synth_video(tmp_path / "clip.mp4", frames=6, size_hw=(64, 96), fps=29.97, seed=1, progress=False)
    fps, frames = read_video(out)
    assert fps == pytest.approx(29.97, abs=1e-3)
    assert len(frames) == 6 and frames[0].shape == (64, 96, 3)
    masks = sorted((tmp_path / "clip_masks").glob("*.png"))
    assert [m.name for m in masks] == [f"{k:06d}.png" for k in range(6)]
    m0 = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    m5 = cv2.imread(str(masks[5]), cv2.IMREAD_UNCHANGED)
    assert m0 is not None and m5 is not None
    assert m0.shape == (64, 96) and set(np.unique(m0)) <= {0, 1}
    assert not np.array_equal(m0, m5), "the camera should move"
    assert not np.array_equal(frames[0], frames[5])
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


def test_synth_video_custom_masks_dir_and_errors(tmp_path: Path) -> None:
    write_synth_video(tmp_path / "v.mp4", frames=2, size_hw=(32, 32), masks_dir=tmp_path / "m", progress=False)
    assert len(list((tmp_path / "m").glob("*.png"))) == 2
    # Re-running replaces a masks folder of ours, but never a folder holding anything else.
    write_synth_video(tmp_path / "v.mp4", frames=1, size_hw=(32, 32), masks_dir=tmp_path / "m", progress=False)
    assert len(list((tmp_path / "m").glob("*.png"))) == 1
    (tmp_path / "m" / "notes.txt").write_text("mine")
    with pytest.raises(RockedgeError, match="holds other files \\(notes.txt\\)"):
        write_synth_video(tmp_path / "v.mp4", frames=1, size_hw=(32, 32), masks_dir=tmp_path / "m", progress=False)
    assert (tmp_path / "m" / "notes.txt").exists()
    with pytest.raises(RockedgeError, match="must end in .mp4"):
        write_synth_video(tmp_path / "v.avi", frames=2, size_hw=(32, 32), progress=False)
    with pytest.raises(RockedgeError, match="--frames must be at least 1"):
        write_synth_video(tmp_path / "w.mp4", frames=0, size_hw=(32, 32), progress=False)
    assert not (tmp_path / "w.mp4").exists()


# -- CLI -------------------------------------------------------------------------------------------


def _cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_synth_info_and_video(tmp_path: Path) -> None:
    r = _cli("data", "synth", "--out", tmp_path / "d", "--n", 5, "--imgsz", "32x48", "--seed", 2, "--val-frac", 0.4, "-q")
    assert r.exit_code == 0, r.output
    assert "wrote 5 scenes (3 train, 2 val) of 32x48 (HxW)" in r.output
    r = _cli("data", "info", tmp_path / "d")
    assert r.exit_code == 0, r.output
    assert "classes: background, rock" in r.output
    assert "train      3 images" in r.output and "val        2 images" in r.output
    r = _cli("data", "info", tmp_path / "d", "--json", "-")
    rock = json.loads(r.stdout)["splits"][0]["class_fractions"]["rock"]
    assert 0 < rock < 1
    assert "classes: background, rock" in r.stderr  # the table moves to stderr when stdout carries JSON
    r = _cli("data", "synth-video", "--out", tmp_path / "v.mp4", "--frames", 3, "--resolution", "64x48", "--fps", 25, "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "v.mp4").is_file() and len(list((tmp_path / "v_masks").glob("*.png"))) == 3
    _, frames = read_video(tmp_path / "v.mp4")
    assert frames[0].shape == (48, 64, 3)  # --resolution is WxH, as ffmpeg writes it


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["--n", "3", "--imgsz", "64x"], "give one integer or two joined by 'x'", 2),
        (["--n", "3", "--imgsz", "16x64"], "scene size 16x64 (HxW) is out of range: each side must be 32..8192", 1),
        (["--n", "0"], "--n must be at least 1", 1),
    ],
)
def test_cli_synth_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str, code: int) -> None:
    r = _cli("data", "synth", "--out", tmp_path / "d", *args)
    assert r.exit_code == code
    assert message in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_cli_info_on_non_dataset_is_one_line(tmp_path: Path) -> None:
    r = _cli("data", "info", tmp_path)
    assert r.exit_code == 1 and "is not a dataset" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_help_texts() -> None:
    for cmd in ("synth", "synth-video", "info"):
        r = _cli("data", cmd, "--help")
        assert r.exit_code == 0, r.output
        if cmd != "info":  # the writers show an example command
            assert "Example" in r.output, r.output
        assert len(r.output.splitlines()) > 5
