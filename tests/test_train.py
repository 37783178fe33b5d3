"""Training: a tiny real run end to end, resume, augmentation invariants, loss weighting, DDP on gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import cli_runner

from rockedge.cli import main
from rockedge.errors import RockedgeError
from rockedge.models.checkpoint import load_checkpoint
from rockedge.train.loop import TrainConfig, train
from rockedge.train.loss import SegLoss, class_weights
from rockedge.train.transforms import AugmentConfig, train_transform

TINY = dict(arch="deeplabv3_mobilenet_v3_large", batch=4, imgsz=(64, 64), workers=0, progress=False)


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory) -> Path:
    from rockedge.data.synth import write_synth_dataset

    return write_synth_dataset(tmp_path_factory.mktemp("d") / "synth", n=10, size_hw=(80, 96), seed=3, progress=False)


@pytest.fixture(scope="module")
def tiny_run(synth_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(data=str(synth_data), out=str(out), epochs=2, **TINY))
    return out


def test_run_folder_has_checkpoints_metrics_and_plot(tiny_run, synth_data):
    for name in ("best.pt", "last.pt", "metrics.csv", "metrics.json", "results.png", "config.json", "spec.json"):
        assert (tiny_run / name).is_file(), name
    history = json.loads((tiny_run / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) for h in history)
    assert all(h["val_miou"] == pytest.approx((h["val_iou_background"] + h["val_iou_rock"]) / 2) for h in history)
    assert (tiny_run / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_checkpoint(tiny_run / "best.pt")
    assert best.spec.classes == ("background", "rock") and best.spec.input_size == (64, 64)
    assert best.metrics["miou"] == max(h["val_miou"] for h in history)
    assert best.train_config["data"] == str(synth_data)
    assert "optimizer" not in best.extra  # best.pt is for deployment; last.pt carries resume state
    assert "optimizer" in load_checkpoint(tiny_run / "last.pt").extra


def _loss_on(state_dict, data: Path, split: str) -> float:
    """Plain cross-entropy of a model on a split's images as evaluation prepares them (no augmentation)."""
    import cv2

    from rockedge.data.datasets import open_dataset
    from rockedge.models.zoo import build_model, main_output
    from rockedge.runtime.preprocess import prepare
    from rockedge.spec import ModelSpec

    spec = ModelSpec(arch=TINY["arch"], input_size=TINY["imgsz"])
    model = build_model(arch=spec.arch, num_classes=2)
    model.load_state_dict(state_dict)
    model.eval()
    losses = []
    with torch.no_grad():
        for img, mask in open_dataset(data, split):
            x, _ = prepare([img], spec)
            y = cv2.resize(mask, spec.input_size[::-1], interpolation=cv2.INTER_NEAREST)[None].astype(np.int64)
            out = main_output(model(torch.from_numpy(x)))
            losses.append(float(torch.nn.functional.cross_entropy(out, torch.from_numpy(y), ignore_index=255)))
    return float(np.mean(losses))


def test_the_run_learns(tiny_run, synth_data):
    """Its four optimizer steps lower the loss on the images it trained on, from the initial weights the same seed
    gives: a loop that computes losses but never steps (or steps the wrong way) writes the same folder and fails."""
    from rockedge.models.zoo import build_model

    torch.manual_seed(0)  # what train() seeds before it builds the model
    initial = build_model(arch=TINY["arch"], num_classes=2).state_dict()
    trained = load_checkpoint(tiny_run / "last.pt").state_dict
    before, after = _loss_on(initial, synth_data, "train"), _loss_on(trained, synth_data, "train")
    assert after < 0.995 * before, (before, after)


def test_resume_continues_from_last_epoch(tiny_run, synth_data, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    before = load_checkpoint(run / "last.pt")
    train(TrainConfig(data=str(synth_data), out=str(run), epochs=3, resume=True, **TINY))
    after = load_checkpoint(run / "last.pt")
    assert after.epoch == 3
    assert [h["epoch"] for h in json.loads((run / "metrics.json").read_text())] == [1, 2, 3]
    changed = [k for k, v in before.state_dict.items() if v.is_floating_point() and not torch.equal(v, after.state_dict[k])]
    assert changed, "resumed training did not update weights"
    with pytest.raises(RockedgeError, match="already finished"):
        train(TrainConfig(data=str(synth_data), out=str(run), epochs=3, resume=True, **TINY))


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_run, synth_data, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    before = (run / "last.pt").read_bytes()
    # An absurd learning rate: the first step of epoch 3 throws the weights to ~1e30, the next loss is not finite.
    with pytest.raises(RockedgeError, match=r"at epoch 3: training stopped; the last good checkpoint is .*last.pt \(epoch 2\)"):
        train(TrainConfig(data=str(synth_data), out=str(run), epochs=3, resume=True, **{**TINY, "lr": 1e30}))
    assert (run / "last.pt").read_bytes() == before, "a diverged epoch must not overwrite the last good checkpoint"
    assert [h["epoch"] for h in json.loads((run / "metrics.json").read_text())] == [1, 2]


@pytest.fixture
def one_thread():
    """Training on one thread: a reduction split over several threads may sum in another order from run to run
    (oneDNN picks kernels by the thread count and the load), and the same seed would then give other weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_same_seed_same_weights(synth_data, tmp_path, one_thread):
    cfg = dict(data=str(synth_data), epochs=1, **TINY)
    a = train(TrainConfig(out=str(tmp_path / "a"), **cfg))
    b = train(TrainConfig(out=str(tmp_path / "b"), **cfg))
    sa, sb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_augmentation_keeps_image_and_mask_paired():
    # The image encodes its own mask (rock = white, background = black): after any augmentation,
    # bright pixels must still be where the mask says rock (colour jitter changes levels, not places).
    rng = np.random.default_rng(0)
    mask = np.zeros((90, 120), np.uint8)
    mask[20:60, 30:100] = 1
    img = np.where(mask[..., None] == 1, 255, 0).astype(np.uint8).repeat(3, 2)
    cfg = AugmentConfig(blur=0.0)
    for _ in range(20):
        im, m = train_transform(img, mask, (64, 64), cfg, rng)
        assert im.shape == (64, 64, 3) and m.shape == (64, 64)
        assert set(np.unique(m)) <= {0, 1, 255}  # nearest-neighbour only: no blended label values
        gray = im.mean(2)
        if (m == 1).any() and (m == 0).any():
            assert gray[m == 1].mean() > gray[m == 0].mean() + 40


def test_loss_weights_rare_class():
    w = class_weights(np.array([990_000, 10_000]))
    assert w[1] > 3 * w[0]
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    target[0, :3, :3] = 1  # ~1 % rock
    all_bg = torch.zeros(1, 2, 32, 32)
    all_bg[:, 0] = 5.0
    plain = torch.nn.functional.cross_entropy(all_bg, target)
    assert SegLoss(w)(all_bg, target) > 5 * plain  # predicting "no rock" must not be nearly free
    ignored = target.clone()
    ignored[:] = 255
    ignored[0, 0, 0] = 0
    assert torch.isfinite(SegLoss(w)(all_bg, ignored))


def test_train_cli_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output.startswith("error:") and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path), "--imgsz", "8"])
    assert r.exit_code == 2 and "each side must be 16..8192" in r.output and len(r.output.strip().splitlines()) == 1


def test_eval_cli_table_and_json(tiny_run, synth_data, tmp_path):
    out = tmp_path / "e.json"
    r = CliRunner().invoke(main, ["eval", str(tiny_run / "best.pt"), "--data", str(synth_data), "--json", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "IoU rock" in r.output and "mIoU" in r.output
    rep = json.loads(out.read_text())
    assert rep["split"] == "val" and rep["backend"] == "torch" and set(rep["iou"]) == {"background", "rock"}
    # eval on a checkpoint must reproduce the number training recorded for it (same code path)
    assert rep["miou"] == pytest.approx(load_checkpoint(tiny_run / "best.pt").metrics["miou"], abs=1e-9)


@pytest.mark.slow
def test_ddp_two_process_gloo(synth_data, tmp_path):
    """torchrun with 2 CPU processes (gloo): the same code path multi-GPU training takes with NCCL.

    --standalone: the c10d rendezvous on localhost:0, whose store binds a free port itself and is shared with the
    workers, so there is no window between picking a free port and binding it for another process to take (a static
    rendezvous needs --master_port chosen in advance: freed here, bound later, sometimes taken in between)."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "--local-addr", "127.0.0.1",
           "-m", "rockedge", "train", "--data", str(synth_data), "--out", str(out), "--epochs", "1",
           "--batch", "2", "--imgsz", "64", "--workers", "0", "--quiet"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = load_checkpoint(out / "best.pt")
    history = json.loads((out / "metrics.json").read_text())
    assert len(history) == 1 and ck.epoch == 1
    # the confusion matrix was all-reduced: the validation pixel count covers the whole split, not one shard
    from rockedge.data.datasets import open_dataset

    val = open_dataset(synth_data, "val")
    assert ck.metrics["pixels"] == sum(int((m != 255).sum()) for _, m in val)


def test_train_cli_augment_preset_reaches_the_run(synth_data, tmp_path):
    out = tmp_path / "light"
    r = CliRunner().invoke(main, ["train", "--data", str(synth_data), "--arch", "lraspp_mobilenet_v3_large",
                                  "--imgsz", "64", "--crop", "48", "--augment", "light", "--epochs", "1", "--batch", "4",
                                  "--workers", "0", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["augment"]["scale"] == [0.75, 1.25] and cfg["crop"] == [48, 48]
    r = CliRunner().invoke(main, ["train", "--data", str(synth_data), "--augment", "heavy", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "heavy" in r.output


@pytest.mark.parametrize("lr", [1e5, 1e9])
def test_divergence_seen_at_validation_reads_as_a_training_stop(synth_data, tmp_path, lr):
    # Huge steps can leave the loss finite through an epoch while the weights overflow the logits: the
    # validation pass sees it first, and the user must still get the training message, not an eval error.
    with pytest.raises(RockedgeError, match=r"at epoch 1: training stopped; no checkpoint was written; lower --lr"):
        train(TrainConfig(data=str(synth_data), out=str(tmp_path / "r"), epochs=1, **{**TINY, "lr": lr}))


def test_fine_tuning_starts_from_a_checkpoint_and_remakes_the_head_for_other_classes(trained_ckpt, tmp_path):
    import torch

    from rockedge.models.checkpoint import init_from
    from rockedge.models.zoo import build_model
    from rockedge.spec import ModelSpec

    ck = load_checkpoint(trained_ckpt())
    arch = ck.spec.arch
    same = build_model(arch=arch, num_classes=2)
    said = init_from(same, ck, ck.spec, "best.pt")
    assert "every layer" in said
    assert all(torch.equal(v, ck.state_dict[k]) for k, v in same.state_dict().items())
    three = ModelSpec(arch=arch, classes=("background", "rock", "fines"), palette=((0, 0, 0), (250, 50, 83), (0, 0, 255)))
    model = build_model(arch=arch, num_classes=3)
    said = init_from(model, ck, three, "best.pt")
    assert "class head is re-made" in said and "background, rock" in said
    sd = model.state_dict()
    assert sd["classifier.high_classifier.weight"].shape[0] == 3
    kept = [k for k in sd if not k.startswith(("classifier.low_classifier.", "classifier.high_classifier."))]
    assert kept and all(torch.equal(sd[k], ck.state_dict[k]) for k in kept)
    with pytest.raises(RockedgeError, match="drop --arch"):
        init_from(build_model(arch="deeplabv3_mobilenet_v3_large", num_classes=2), ck, ck.spec.replace(
            arch="deeplabv3_mobilenet_v3_large"), "best.pt")


def test_train_model_cli_follows_the_checkpoints_arch(trained_ckpt, synth_data, tmp_path):
    out = tmp_path / "ft"
    r = cli_runner().invoke(main, ["train", "--data", str(synth_data), "--model", str(trained_ckpt()), "--epochs", "1",
                                   "--imgsz", "64", "--batch", "4", "--workers", "0", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "note: starting from" in r.stdout and "every layer" in r.stdout
    best = load_checkpoint(out / "best.pt")
    assert best.spec.arch == "lraspp_mobilenet_v3_large" and best.train_config["weights"] == str(trained_ckpt())
    r = cli_runner().invoke(main, ["train", "--data", str(synth_data), "-m", str(trained_ckpt()), "--resume",
                                   "--out", str(tmp_path / "x"), "-q"])
    assert r.exit_code == 1 and "--model starts from a checkpoint: drop --pretrained" in r.stderr
