"""Rock piles and rock boundaries: pile scenes (deterministic, prefix-stable, exact instances), the boundary target,
training and scoring a boundary model, and recall on sparsely labelled photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from helpers import cli_runner

from rockedge.cli import main
from rockedge.data.boundary import boundary_map, pack, unpack, with_boundary
from rockedge.data.piles import render_pile
from rockedge.spec import BOUNDARY, IGNORE_INDEX, ModelSpec


def test_pile_scenes_are_deterministic_full_of_rock_and_exactly_labelled():
    a = render_pile(np.random.default_rng([4, 2]), (96, 128), instances=(ia := []))
    b = render_pile(np.random.default_rng([4, 2]), (96, 128), instances=(ib := []))
    c = render_pile(np.random.default_rng([4, 3]), (96, 128))
    assert np.array_equal(a[0], b[0]) and np.array_equal(ia[0], ib[0]) and not np.array_equal(a[0], c[0])
    img, mask, info = a
    inst = ia[0]
    assert img.shape == (96, 128, 3) and mask.dtype == np.uint8 and inst.dtype == np.uint16
    assert mask.mean() > 0.6, "a pile is mostly rock"
    assert np.array_equal(inst > 0, mask > 0) and int(inst.max()) >= 20
    sizes = np.bincount(inst.ravel())[1:]
    assert sizes.max() / max(1, np.percentile(sizes, 10)) > 10, "sizes span at least an order of magnitude"
    assert info.ground == "pile"


def test_scene_choice_in_datasets_is_prefix_stable(tmp_path):
    from rockedge.data.synth import scene_kind, write_synth_dataset

    kinds = [scene_kind("mixed", 0, i) for i in range(40)]
    assert 10 < kinds.count("pile") < 30 and kinds == [scene_kind("mixed", 0, i) for i in range(40)]
    small = write_synth_dataset(tmp_path / "s", n=4, size_hw=(64, 64), scene="mixed", progress=False)
    big = write_synth_dataset(tmp_path / "b", n=6, size_hw=(64, 64), scene="mixed", progress=False)
    for p in (small / "train" / "images").iterdir():
        assert p.read_bytes() == (big / "train" / "images" / p.name).read_bytes()
    meta = json.loads((small / "synth.json").read_text())
    assert meta["scene"] == "mixed" and sum(meta["scenes"].values()) == 4
    r = cli_runner().invoke(main, ["data", "synth", "--out", str(tmp_path / "p"), "--n", "3", "--imgsz", "64",
                                   "--scene", "pile", "-q"])
    assert r.exit_code == 0 and json.loads((tmp_path / "p" / "synth.json").read_text())["scenes"]["pile"] == 3


def test_boundary_target_separates_touching_rocks():
    inst = np.zeros((10, 20), np.int32)
    inst[2:8, 2:10] = 1
    inst[2:8, 10:18] = 2  # touching along x = 9 | 10
    edge = boundary_map(inst)
    assert edge[5, 9] and edge[5, 10] and not edge[5, 5] and not edge[5, 14]  # both sides of the contact
    assert edge[2, 5] and not edge[0, 5]  # the outer rim is boundary too; background is not
    mask = (inst > 0).astype(np.uint8)
    mask[0, 0] = IGNORE_INDEX
    out = with_boundary(mask, inst, 2)
    assert out[5, 9] == 2 and out[5, 5] == 1 and out[0, 0] == IGNORE_INDEX
    interiors = cv2.connectedComponents((out == 1).astype(np.uint8), connectivity=4)[0] - 1
    assert interiors == 2
    m2, i2 = unpack(pack(mask, inst))
    assert np.array_equal(m2, mask) and np.array_equal(i2, inst)
    spec = ModelSpec(arch="lraspp_mobilenet_v3_large", classes=("background", "rock", BOUNDARY),
                     palette=((0, 0, 0), (250, 50, 83), (255, 255, 255)))
    assert spec.boundary_index == 2 and spec.rock_classes == ("rock",)


@pytest.fixture(scope="module")
def piles(tmp_path_factory):
    from rockedge.data.synth import write_synth_dataset

    return write_synth_dataset(tmp_path_factory.mktemp("piles") / "d", n=12, size_hw=(64, 64), scene="pile",
                               seed=2, progress=False)


@pytest.fixture(scope="module")
def boundary_model(piles, tmp_path_factory):
    from rockedge.export.onnx import export_onnx
    from rockedge.train.loop import TrainConfig, train

    out = tmp_path_factory.mktemp("bnd")
    best = train(TrainConfig(data=str(piles), out=str(out), arch="lraspp_mobilenet_v3_large", epochs=1, batch=4,
                             imgsz=(64, 64), workers=0, progress=False, boundary=True))
    return best, export_onnx(best, out / "m.onnx", progress=False).path


def test_a_boundary_model_carries_the_class_through_export_and_is_scored_on_derived_targets(boundary_model, piles,
                                                                                             tmp_path):
    from rockedge.models.checkpoint import load_checkpoint
    from rockedge.runtime.modelfile import open_model_file

    best, onnx = boundary_model
    assert load_checkpoint(best).spec.classes == ("background", "rock", BOUNDARY)
    assert open_model_file(onnx).spec.boundary_index == 2
    out = tmp_path / "e.json"
    r = cli_runner().invoke(main, ["eval", str(onnx), "--data", str(piles), "--measure", "--json", str(out), "-q"])
    assert r.exit_code == 0, r.stderr
    rep = json.loads(out.read_text())
    assert set(rep["iou"]) == {"background", "rock", BOUNDARY} and "measure" in rep
    # the same model on masks without instances: rims are scored as rock, over the dataset's own classes
    for p in (piles / "val" / "instances").iterdir():
        p.rename(tmp_path / p.name)
    try:
        r = cli_runner().invoke(main, ["eval", str(onnx), "--data", str(piles), "--json", str(out), "-q"])
        assert r.exit_code == 0, r.stderr
        assert set(json.loads(out.read_text())["iou"]) == {"background", "rock"}
    finally:
        for p in tmp_path.glob("*.png"):
            p.rename(piles / "val" / "instances" / p.name)


def test_the_runtime_shows_rocks_not_rims_unless_asked(boundary_model, scenes):
    from rockedge.runtime import Segmenter

    _, onnx = boundary_model
    img = scenes(1, 64, 64, seed=5)[0][0]
    with Segmenter(onnx) as seg:
        x, g = seg.prepare_frame(img)
        small = seg.infer(seg.collate([x]), 1)[0]
        small[10:20, 10:20] = 2  # rims for sure, whatever the briefly trained model says
        shown = seg.postprocess(img, small, g)
        seg.boundaries = True
        raw = seg.postprocess(img, small, g)
    assert (shown.mask == 2).sum() == 0 and (shown.mask[10:20, 10:20] == 1).all()
    assert (raw.mask[10:20, 10:20] == 2).all()


def test_sparse_labels_report_recall_only(tmp_path):
    """A VOC/CVAT dataset that paints only a few rocks: eval --measure --sparse scores each labelled rock as found
    or not, and ignores everything unlabelled."""
    from rockedge.measure.match import InstanceScore

    truth = np.zeros((40, 60), np.int32)
    truth[5:15, 5:15] = 1
    truth[20:30, 30:40] = 2
    pred = np.zeros_like(truth)
    pred[5:15, 5:18] = 3  # found, running onto unlabelled rock
    pred[20:30, 30:34] = 4  # a sliver of rock 2: not found
    pred[30:40, 0:10] = 5  # an unlabelled rock: not counted against anything
    s = InstanceScore(sparse=True)
    s.add(truth, pred)
    d = s.to_dict()
    assert (d["matched"], d["true_rocks"], d["instance_recall"]) == (1, 2, 0.5)
    assert "instance_f1" not in d and "recall only" in s.table()


@pytest.mark.seed
def test_sparse_recall_on_the_original_projects_photos(seed_rocks, trained_ckpt, tmp_path_factory, tmp_path):
    """The original project's CVAT export paints 11 rocks in 5 colours (SegmentationObject): each painted rock is
    judged found or not. Its labelmap names the class 'rocks': renamed in a copy, as docs/troubleshooting.md says."""
    import shutil

    from test_runtime import exported

    onnx = exported("float", trained_ckpt, tmp_path_factory)
    data = shutil.copytree(seed_rocks, tmp_path / "seed")
    lm = data / "labelmap.txt"
    lm.write_text(lm.read_text().replace("rocks:", "rock:"))
    out = tmp_path / "e.json"
    r = cli_runner().invoke(main, ["eval", str(onnx), "--data", str(data), "--split", "all", "--sparse", "--json",
                                   str(out), "-q"])
    assert r.exit_code == 0, r.stderr
    m = json.loads(out.read_text())["measure"]
    assert m["sparse_labels"] and m["images"] == 4 and m["true_rocks"] + m["too_small"] == 11
    assert 0 <= m["instance_recall"] <= 1 and "instance_f1" not in m
    assert "recall only" in r.stdout
