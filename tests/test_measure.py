"""Rocks one by one: the instance split on drawn shapes of known size, sizes and the distribution, eval's matching,
the generator's instance masks, and `run --measure` / `eval --measure` end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import cli_runner, write_video
from test_runtime import exported

from rockedge.cli import main
from rockedge.measure import measure, measure_mask, passing, split_rocks
from rockedge.measure.match import InstanceScore, match
from rockedge.measure.rocks import Rocks, SizeHistogram


def discs(shape, circles) -> np.ndarray:
    """A uint8 rock mask of filled circles [(x, y, r)]."""
    m = np.zeros(shape, np.uint8)
    for x, y, r in circles:
        cv2.circle(m, (x, y), r, 1, -1)
    return m


# -- the split -----------------------------------------------------------------------------------------------------


def test_two_touching_discs_are_two_rocks_of_their_own_size():
    m = discs((80, 120), [(35, 40, 20), (73, 40, 20)])  # centres 38 px apart, radii 20: they overlap by 2 px
    assert cv2.connectedComponents(m)[0] - 1 == 1  # one blob to connected components
    labels = split_rocks(m)
    assert labels.max() == 2
    # the line between them is the neck: each rock is its own disc (area within 4 % of pi r^2)
    for k in (1, 2):
        assert abs((labels == k).sum() / (math.pi * 20**2) - 1) < 0.04
    left = labels[40, 20]
    assert labels[40, 50] == left and labels[40, 60] != left  # the cut is near x = 54, the contact


def test_discs_of_different_sizes_split_at_their_contact():
    m = discs((100, 140), [(40, 50, 30), (87, 50, 18)])  # touching: 47 px apart, radii 30 + 18
    labels = split_rocks(m)
    assert labels.max() == 2
    big = labels[50, 40]
    areas = sorted((labels == k).sum() for k in (1, 2))
    # a split half-way between the markers would hand the small disc a slice of the big one
    assert abs(areas[0] / (math.pi * 18**2) - 1) < 0.1 and abs(areas[1] / (math.pi * 30**2) - 1) < 0.05
    assert labels[50, 68] == big and labels[50, 72] != big


def test_a_bumpy_rock_stays_one_rock_and_separate_rocks_stay_apart():
    rng = np.random.default_rng(0)
    theta = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    r = 35 * (1 + 0.08 * rng.uniform(-1, 1, 40))
    pts = np.stack([60 + r * np.cos(theta), 60 + r * np.sin(theta)], 1).astype(np.int32)
    m = np.zeros((120, 200), np.uint8)
    cv2.fillPoly(m, [pts], 1)
    cv2.circle(m, (170, 60), 12, 1, -1)  # a separate rock
    labels = split_rocks(m)
    assert labels.max() == 2
    assert split_rocks(np.zeros((10, 10), np.uint8)).max() == 0
    # numbered in raster order of their first pixel, whatever the order they were found in
    assert labels[60, 60] == 1 or labels[60, 170] == 1


def test_interiors_seed_the_split_when_a_model_paints_them():
    # two squares that touch along a whole side: no neck, the distance map cannot split them; interiors can
    m = np.zeros((40, 80), np.uint8)
    m[5:35, 5:35] = 1
    m[5:35, 35:65] = 1
    assert split_rocks(m).max() == 1
    interior = np.zeros_like(m)
    interior[8:32, 8:32] = 1
    interior[8:32, 38:62] = 1
    labels = split_rocks(m, interior=interior)
    assert labels.max() == 2 and (labels == 1).sum() == (labels == 2).sum() == 30 * 30


# -- sizes ---------------------------------------------------------------------------------------------------------


def test_sizes_of_a_disc_and_a_rectangle_and_the_scale():
    m = discs((100, 200), [(50, 50, 25)])
    m[30:50, 120:180] = 1  # a 60 x 20 rectangle
    labels = split_rocks(m)
    rocks = measure(labels)
    disc, rect = sorted(rocks, key=lambda r: r.cx)
    assert disc.diameter == pytest.approx(50, rel=0.02)
    assert disc.cx == pytest.approx(50.5, abs=0.1) and disc.cy == pytest.approx(50.5, abs=0.1)
    assert (rect.short, rect.long) == (pytest.approx(20, abs=0.5), pytest.approx(60, abs=0.5))
    assert rect.area == 1200
    mm = measure(labels, mm_per_px=2.0)  # 2 mm per pixel doubles every length, quadruples areas
    assert mm.unit == "mm" and rocks.unit == "px"
    for a, b in zip(sorted(rocks, key=lambda r: r.cx), sorted(mm, key=lambda r: r.cx)):
        assert b.diameter == pytest.approx(2 * a.diameter) and b.short == pytest.approx(2 * a.short)
        assert b.area == pytest.approx(4 * a.area) and b.cx == a.cx  # centroids stay in frame pixels
    # a mask at half the frame's resolution measures the same rocks in frame pixels
    small = cv2.resize(m, (100, 50), interpolation=cv2.INTER_NEAREST)
    _, scaled = measure_mask(small, scale=(2.0, 2.0))
    d = sorted(r.diameter for r in scaled)
    assert d[1] == pytest.approx(50, rel=0.04)
    with pytest.raises(ValueError, match="positive"):
        measure(labels, mm_per_px=float("nan"))


def test_percent_passing_by_area():
    # rocks of diameter 1, 2, 3 with areas 1, 1, 2: half the area passes at 2, 80 % between 2 and 3
    sizes, areas = np.array([3.0, 1.0, 2.0]), np.array([2.0, 1.0, 1.0])
    assert passing(sizes, areas, 50) == pytest.approx(2.0)
    assert passing(sizes, areas, 25) == pytest.approx(1.0)
    assert passing(sizes, areas, 75) == pytest.approx(2.5)
    assert passing(np.array([]), np.array([]), 50) is None


def test_the_run_histogram_agrees_with_the_exact_distribution():
    rng = np.random.default_rng(1)
    rocks = Rocks()
    hist = SizeHistogram()
    for _ in range(5):
        m = np.zeros((200, 200), np.uint8)
        for _ in range(30):
            cv2.circle(m, tuple(int(v) for v in rng.integers(0, 200, 2)), int(rng.integers(2, 15)), 1, -1)
        r = measure_mask(m)[1]
        rocks.extend(r)
        hist.add(r)
    exact, approx = rocks.distribution(), hist.distribution()
    assert approx["count"] == exact["count"] and approx["max"] == exact["max"]
    for k in ("p20", "p50", "p80", "p50_count"):
        assert approx[k] == pytest.approx(exact[k], rel=0.02), k


# -- matching ------------------------------------------------------------------------------------------------------


def test_matching_is_one_to_one_at_iou_half():
    truth = np.zeros((20, 40), np.int32)
    truth[2:12, 2:12] = 1  # found
    truth[2:12, 20:30] = 2  # found in three pieces: a miss
    truth[14:18, 2:6] = 3  # missed
    pred = np.zeros_like(truth)
    pred[3:12, 2:12] = 7  # IoU 0.9
    pred[2:12, 20:23] = 8
    pred[2:12, 23:27] = 9
    pred[2:12, 27:30] = 10
    pred[14:18, 30:34] = 5  # nothing there
    m = match(truth, pred)
    assert (m.tp, m.fp, m.fn) == (1, 4, 2) and m.pairs == [(1, 7, 0.9)]
    half = np.zeros_like(truth)
    half[2:12, 20:25] = 1  # IoU exactly 0.5 matches: the threshold is inclusive
    assert match(truth, half).pairs == [(2, 1, 0.5)]
    score = InstanceScore()
    score.add(truth, pred)
    d = score.to_dict()
    assert d["instance_f1"] == pytest.approx(2 * 1 / (2 * 1 + 4 + 2), abs=1e-4)
    assert d["count_error"] == pytest.approx((5 - 3) / 3, abs=1e-4)
    # sparse labels: only the labelled rocks are judged; a rock found whole whose prediction runs onto unlabelled
    # ground still counts
    sparse = np.zeros_like(truth)
    sparse[2:12, 2:12] = 1
    wide = np.zeros_like(truth)
    wide[2:12, 2:26] = 4  # IoU 100/240 against the full map, 1 on the labelled pixels
    assert match(sparse, wide).tp == 0 and match(sparse, wide, sparse=True).tp == 1
    s = InstanceScore(sparse=True)
    s.add(sparse, wide)
    assert s.to_dict()["instance_recall"] == 1.0 and "instance_f1" not in s.to_dict()


# -- data ----------------------------------------------------------------------------------------------------------


def test_synth_writes_instance_masks_that_agree_with_the_class_masks(tmp_path):
    from rockedge.data.datasets import open_dataset
    from rockedge.data.synth import render_scene, render_scene_instances, write_synth_dataset

    rng = lambda: np.random.default_rng([5, 2])  # noqa: E731
    img, mask = render_scene(rng(), (96, 96))
    img2, mask2, inst = render_scene_instances(rng(), (96, 96))
    assert np.array_equal(img, img2) and np.array_equal(mask, mask2)  # asking for instances changes no scene
    assert inst.dtype == np.uint16 and np.array_equal(inst > 0, mask > 0)
    assert set(np.unique(inst)) == set(range(int(inst.max()) + 1))  # 0..n, every rock visible
    write_synth_dataset(tmp_path / "d", n=6, size_hw=(64, 64), progress=False)
    ds = open_dataset(tmp_path / "d", "val")
    assert ds.has_instances
    png = cv2.imread(str(ds.instance_path(0)), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16
    assert np.array_equal(ds.instances(0) > 0, ds[0][1] > 0)
    meta = json.loads((tmp_path / "d" / "synth.json").read_text())
    assert meta["rocks"]["val"] == sum(int(ds.instances(i).max()) for i in range(len(ds)))
    r = cli_runner().invoke(main, ["data", "info", str(tmp_path / "d"), "--json", "-"])
    assert r.exit_code == 0, r.output
    val = next(x for x in json.loads(r.stdout)["splits"] if x["split"] == "val")
    assert val["rocks"] == meta["rocks"]["val"]


def test_cvat_instance_colours_read_as_rocks(tmp_path):
    from rockedge.data.datasets import read_instances, split_components

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[2:8, 2:8] = (128, 0, 0)  # VOC's colour 1
    rgb[2:8, 20:28] = (128, 0, 0)  # the same colour on a second, separate rock (CVAT colours object groups)
    rgb[12:18, 5:15] = (0, 128, 0)
    rgb[8, 2:8] = (224, 224, 192)  # VOC's void rim
    cv2.imwrite(str(tmp_path / "o.png"), rgb[..., ::-1])
    inst = read_instances(tmp_path / "o.png")
    assert inst.max() == 2 and inst[8, 3] == 0
    assert split_components(inst).max() == 3


# -- end to end ----------------------------------------------------------------------------------------------------


@pytest.fixture
def model(trained_ckpt, tmp_path_factory):
    return exported("float", trained_ckpt, tmp_path_factory)


def test_run_measure_writes_rocks_per_frame_csv_summary_and_curve(model, scenes, tmp_path):
    frames = [s[0] for s in scenes(6, 64, 64, seed=8)]
    video = write_video(tmp_path / "in.mp4", [cv2.resize(f, (128, 96)) for f in frames], fps=25.0)
    out = tmp_path / "o" / "belt.mp4"
    r = cli_runner().invoke(main, ["run", str(model), str(video), "--out", str(out), "--measure", "--scale", "2",
                                   "--contours", "-q"])
    assert r.exit_code == 0, r.stderr
    lines = [json.loads(x) for x in out.with_suffix(".jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(set(x["rocks"]) == {"count", "unit", "p20", "p50", "p80", "max"} for x in lines)
    assert sum(x["rocks"]["count"] for x in lines) > 0 and {x["rocks"]["unit"] for x in lines} == {"mm"}
    rows = list(csv.DictReader(out.with_suffix(".rocks.csv").open()))
    assert list(rows[0]) == ["frame", "name", "rock", "area_mm2", "diameter_mm", "short_mm", "long_mm", "cx_px",
                             "cy_px"]
    assert len(rows) == sum(x["rocks"]["count"] for x in lines)
    for row in rows:  # every size follows from its area, and the rectangle holds the rock
        area, d = float(row["area_mm2"]), float(row["diameter_mm"])
        assert d == pytest.approx(math.sqrt(4 * area / math.pi), rel=1e-4)
        assert float(row["short_mm"]) * float(row["long_mm"]) >= area * 0.999
        assert 0 <= float(row["cx_px"]) <= 128 and 0 <= float(row["cy_px"]) <= 96
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["rocks"]["count"] == len(rows) and summary["rocks"]["unit"] == "mm"
    curve = cv2.imread(str(out.with_suffix(".rocks.png")))
    assert curve is not None and curve.shape[1] > 400
    assert summary["outputs"]["rocks"].endswith("belt.rocks.csv")
    assert "rocks " in r.stdout and "P50" in r.stdout
    # the same clip at 1 mm/px: lengths halve
    out1 = tmp_path / "o" / "belt1.mp4"
    r = cli_runner().invoke(main, ["run", str(model), str(video), "--out", str(out1), "--measure", "--scale", "1",
                                   "-q"])
    assert r.exit_code == 0, r.stderr
    lines1 = [json.loads(x) for x in out1.with_suffix(".jsonl").read_text().splitlines()]
    for a, b in zip(lines, lines1):  # each frame's distribution is exact
        for k in ("p20", "p50", "p80", "max"):
            assert (a["rocks"][k] is None and b["rocks"][k] is None) or b["rocks"][k] == pytest.approx(
                a["rocks"][k] / 2, abs=2e-3)
    s1 = json.loads(out1.with_suffix(".summary.json").read_text())["rocks"]  # the run's: binned, within 4 %
    assert s1["p50"] == pytest.approx(summary["rocks"]["p50"] / 2, rel=0.04)


def test_scale_without_measure_and_a_bad_scale_are_one_line(model, scenes, tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), scenes(1, 64, 64, seed=2)[0][0])
    for args, words in ((["--scale", "2"], "add --measure"), (["--measure", "--scale", "-1"], "positive number")):
        r = cli_runner().invoke(main, ["run", str(model), str(img), "--out", str(tmp_path / "x"), *args, "-q"])
        assert r.exit_code == 1 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x").exists()


def test_eval_measure_scores_rocks_against_the_instance_masks(model, tmp_path):
    from rockedge.data.synth import write_synth_dataset

    write_synth_dataset(tmp_path / "d", n=10, size_hw=(64, 64), seed=3, progress=False)
    out = tmp_path / "e.json"
    r = cli_runner().invoke(main, ["eval", str(model), "--data", str(tmp_path / "d"), "--measure", "--json", str(out),
                                   "-q"])
    assert r.exit_code == 0, r.stderr
    m = json.loads(out.read_text())["measure"]
    for key in ("instance_f1", "count_error", "p50_error", "p80_error", "instance_recall"):
        assert key in m and (m[key] is None or math.isfinite(m[key]))
    assert m["images"] == 2 and m["true_rocks"] > 0 and 0 <= m["instance_f1"] <= 1
    assert len(m["per_image"]) == 2 and "instance F1" in r.stdout
    # a dataset without instance masks says what --measure needs
    for p in (tmp_path / "d" / "val" / "instances").iterdir():
        p.unlink()
    r = cli_runner().invoke(main, ["eval", str(model), "--data", str(tmp_path / "d"), "--measure", "-q"])
    assert r.exit_code == 1 and "needs an instance mask per image" in r.stderr


def test_the_measure_api_runs_without_torch_or_onnx():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
            "import numpy as np, cv2\nfrom rockedge.measure import measure_mask\n"
            "m = np.zeros((50, 90), np.uint8); cv2.circle(m, (25, 25), 15, 1, -1); cv2.circle(m, (52, 25), 13, 1, -1)\n"
            "labels, rocks = measure_mask(m, mm_per_px=2.0)\nprint(len(rocks), rocks.distribution()['unit'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2", "mm"]
