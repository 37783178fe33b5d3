"""Dataset readers: VOC/CVAT and plain folders, colour and index masks, every user error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rockedge.data.datasets import open_dataset, read_mask, resize_mask, summarize
from rockedge.data.labelmap import LabelMap, read_labelmap, write_labelmap
from rockedge.errors import RockedgeError

ROCK_RGB = (250, 50, 83)
ROCK_BGR = ROCK_RGB[::-1]


def _mask(h: int = 24, w: int = 32, k: int = 0) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[4 + k : 12 + k, 6:20] = 1
    return m


def _image(h: int = 24, w: int = 32, k: int = 0) -> np.ndarray:
    return np.full((h, w, 3), 40 + 10 * k, np.uint8)


def _colour(mask: np.ndarray) -> np.ndarray:
    """Index mask -> BGR colour mask in the seed-rocks palette."""
    out = np.zeros(mask.shape + (3,), np.uint8)
    out[mask == 1] = ROCK_BGR
    return out


def _voc(root: Path, ids: list[str], sets: dict[str, list[str]] | None = None) -> Path:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    write_labelmap(root / "labelmap.txt", LabelMap.default())
    for k, i in enumerate(ids):
        cv2.imwrite(str(root / "JPEGImages" / f"{i}.jpg"), _image(k=k))
        cv2.imwrite(str(root / "SegmentationClass" / f"{i}.png"), _colour(_mask(k=k)))
    for name, listed in (sets or {"default": ids}).items():
        (root / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("\n".join(listed) + "\n")
    return root


# -- labelmap --------------------------------------------------------------------------------------


def test_labelmap_round_trip_and_cvat_format(tmp_path: Path) -> None:
    lm = LabelMap(("background", "rock", "sky"), ((0, 0, 0), ROCK_RGB, (10, 20, 250)))
    write_labelmap(tmp_path / "labelmap.txt", lm)
    text = (tmp_path / "labelmap.txt").read_text()
    assert text.splitlines()[0] == "# label:color_rgb:parts:actions"
    assert "rock:250,50,83::" in text
    assert read_labelmap(tmp_path / "labelmap.txt") == lm


@pytest.mark.parametrize(
    "body, message",
    [
        ("rock:250,50\n", "is not R,G,B"),
        ("rock:250,50,300::\n", "is not R,G,B"),
        ("rock\n", "expected 'label:R,G,B"),
        ("# only a comment\n", "lists no classes"),
        ("a:0,0,0::\nb:0,0,0::\n", "colours must be unique"),
    ],
)
def test_labelmap_errors(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "labelmap.txt").write_text(body)
    with pytest.raises(RockedgeError, match=message):
        read_labelmap(tmp_path / "labelmap.txt")


# -- VOC / CVAT ------------------------------------------------------------------------------------


@pytest.mark.seed
def test_seed_rocks_voc_splits(seed_rocks: Path) -> None:
    train, val, full = (open_dataset(seed_rocks, s) for s in ("train", "val", "all"))
    assert [p.stem for p, _ in train.samples] == ["1", "2", "3"]
    assert [p.stem for p, _ in val.samples] == ["4"]
    assert len(full) == 4
    assert train.classes == ("background", "rocks") and train.palette == ((0, 0, 0), ROCK_RGB)
    image, mask = val[0]
    assert image.dtype == np.uint8 and image.shape == (1066, 1600, 3)
    assert mask.dtype == np.uint8 and mask.shape == (1066, 1600)
    assert set(np.unique(mask)) == {0, 1}


def test_voc_default_txt_holdout_uses_natural_order(tmp_path: Path) -> None:
    ids = [str(i) for i in (10, 2, 1, 3, 4, 5, 6, 7, 8, 9)]
    root = _voc(tmp_path / "voc", ids)
    val = open_dataset(root, "val")
    # round(0.2 * 10) = 2 held out; "10" sorts after "9", not after "1".
    assert [p.stem for p, _ in val.samples] == ["9", "10"]
    assert len(open_dataset(root, "train")) == 8
    image, mask = val[1]
    np.testing.assert_array_equal(mask, _mask(k=0))


def test_voc_explicit_train_val_lists(tmp_path: Path) -> None:
    root = _voc(tmp_path / "voc", ["a", "b", "c"], {"train": ["c", "a"], "val": ["b"]})
    assert [p.stem for p, _ in open_dataset(root, "train").samples] == ["c", "a"]
    assert [p.stem for p, _ in open_dataset(root, "val").samples] == ["b"]
    assert len(open_dataset(root, "all")) == 3


def test_voc_unknown_colour_names_file_and_colour(tmp_path: Path) -> None:
    root = _voc(tmp_path / "voc", ["1", "2"])
    bad = _colour(_mask())
    bad[0, 0] = (7, 8, 9)  # BGR -> RGB 9,8,7
    cv2.imwrite(str(root / "SegmentationClass" / "2.png"), bad)
    ds = open_dataset(root, "all")
    with pytest.raises(RockedgeError, match=r"2\.png: colour RGB 9,8,7 \(1 pixels\) is not in the labelmap"):
        ds[1]


def test_voc_missing_image_for_listed_id(tmp_path: Path) -> None:
    root = _voc(tmp_path / "voc", ["1", "2"], {"default": ["1", "2", "3"]})
    with pytest.raises(RockedgeError, match=r"no image for id '3' \(listed in .*default\.txt\)"):
        open_dataset(root, "all")


# -- plain folders ---------------------------------------------------------------------------------


def test_folders_index_masks_mixed_case_extensions(tmp_path: Path) -> None:
    for split, names in (("train", ["a.JPG", "b.PnG", "c.jpeg"]), ("val", ["d.Tiff"])):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir(parents=True)
        for k, name in enumerate(names):
            cv2.imwrite(str(tmp_path / split / "images" / name), _image(k=k))
            mask_name = Path(name).stem + (".PNG" if k % 2 else ".png")
            cv2.imwrite(str(tmp_path / split / "masks" / mask_name), _mask(k=k))
    train = open_dataset(tmp_path, "train")
    assert [p.name for p, _ in train.samples] == ["a.JPG", "b.PnG", "c.jpeg"]
    assert train.classes == ("background", "rock")  # no labelmap: rockedge.spec defaults
    for k in range(3):
        np.testing.assert_array_equal(train[k][1], _mask(k=k))
    assert len(open_dataset(tmp_path, "val")) == 1 and len(open_dataset(tmp_path, "all")) == 4


def test_folders_single_split_holdout_and_rgb_palette_masks(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(5):
        cv2.imwrite(str(tmp_path / "images" / f"f{k}.png"), _image(k=k))
        cv2.imwrite(str(tmp_path / "masks" / f"f{k}.png"), _colour(_mask(k=k)))
    assert [p.stem for p, _ in open_dataset(tmp_path, "val").samples] == ["f4"]
    train = open_dataset(tmp_path, "train")
    assert len(train) == 4
    np.testing.assert_array_equal(train[2][1], _mask(k=2))  # default palette without labelmap.txt


def test_palette_mode_png_is_read_as_indices(tmp_path: Path) -> None:
    from PIL import Image

    m = _mask()
    m[0, :4] = 255  # ignore
    img = Image.fromarray(m, mode="P")
    pal = [0] * 768
    pal[3:6] = [128, 0, 0]  # VOC-style palette: index 1 is dark red, not the labelmap's rock colour
    pal[765:768] = [224, 224, 192]
    img.putpalette(pal)
    img.save(tmp_path / "m.png")
    out = read_mask(tmp_path / "m.png", LabelMap.default().colors)
    np.testing.assert_array_equal(out, m)


def test_labelmap_at_root_makes_colour_masks_strict(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    lm = LabelMap(("background", "rock", "sand"), ((0, 0, 0), ROCK_RGB, (200, 180, 120)))
    write_labelmap(tmp_path / "labelmap.txt", lm)
    m = _mask()
    m[20:, :] = 2
    colour = np.zeros(m.shape + (3,), np.uint8)
    for k, rgb in enumerate(lm.colors):
        colour[m == k] = rgb[::-1]
    cv2.imwrite(str(tmp_path / "images" / "x.png"), _image())
    cv2.imwrite(str(tmp_path / "masks" / "x.png"), colour)
    ds = open_dataset(tmp_path, "all")
    assert ds.classes == lm.names
    np.testing.assert_array_equal(ds[0][1], m)


def test_missing_mask_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), _image())
    with pytest.raises(RockedgeError, match=r"image .*images/a\.png has no mask .*masks/a\.\*") as e:
        open_dataset(tmp_path, "all")
    assert "\n" not in str(e.value)


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), _image())
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), _mask(20, 32))
    ds = open_dataset(tmp_path, "all")
    with pytest.raises(RockedgeError, match=r"mask .*masks/a\.png is 20x32 \(HxW\) but image .*images/a\.png is 24x32"):
        ds[0]


def test_index_out_of_range_names_file(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    m = _mask()
    m[0, 0] = 7
    m[0, 1] = 255  # ignore is allowed
    cv2.imwrite(str(tmp_path / "images" / "a.png"), _image())
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), m)
    with pytest.raises(RockedgeError, match=r"mask .*a\.png has class index 7 but the dataset has 2 classes"):
        open_dataset(tmp_path, "all")[0]


def test_not_a_dataset_and_bad_split(tmp_path: Path) -> None:
    with pytest.raises(RockedgeError, match="is not a dataset"):
        open_dataset(tmp_path)
    with pytest.raises(RockedgeError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(RockedgeError, match="split must be one of train, val, all"):
        open_dataset(tmp_path, "test")


def test_resize_mask_is_nearest_and_summary_counts(tmp_path: Path) -> None:
    m = np.array([[0, 1], [1, 255]], np.uint8)
    big = resize_mask(m, (5, 7))
    assert set(np.unique(big)) == {0, 1, 255}
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), _image())
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), _mask())
    s = summarize(open_dataset(tmp_path, "all"))
    assert s.images == 1
    assert s.class_fractions["rock"] == pytest.approx(_mask().mean())


# -- the original project's bug --------------------------------------------------------------------


@pytest.mark.seed
def test_seed_rocks_regression_grayscale_bug(seed_rocks: Path) -> None:
    """The original loader: PIL convert("L"), ToTensor (/255), .long() -> rock 250,50,83 became class 0."""
    from PIL import Image

    ds = open_dataset(seed_rocks, "all")
    assert len(ds) == 4
    for _, mask_path in ds.samples:
        gray = np.asarray(Image.open(mask_path).convert("L"))
        assert gray.max() == 114  # the rock colour's luma
        buggy = (gray.astype(np.float32) / 255.0).astype(np.int64)  # ToTensor() then .long() truncates
        assert (buggy == 1).sum() == 0, f"the original conversion was expected to lose every rock pixel in {mask_path}"
    for i in range(len(ds)):
        _, mask = ds[i]
        frac = float((mask == 1).mean())
        assert (mask == 1).sum() > 0
        # The README's "0.3-0.9 %" is rounded to one decimal (mask 2 has 0.91 %).
        assert 0.0025 <= frac < 0.0095, f"{ds.samples[i][1]}: rock fraction {frac:.4%} outside the README's 0.3-0.9 %"
