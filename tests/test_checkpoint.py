"""Checkpoints: rockedge format round trip, the original project's state_dict, pickles, bad files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rockedge.errors import RockedgeError
from rockedge.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rockedge.models.zoo import build_model
from rockedge.spec import ModelSpec

MOBILE = "deeplabv3_mobilenet_v3_large"


@pytest.fixture(scope="module")
def legacy_resnet(tmp_path_factory) -> tuple:
    """The original project's format: torchvision deeplabv3_resnet50 with a 21-class aux head and a 2-class classifier[4]."""
    from torchvision.models.segmentation import deeplabv3_resnet50

    m = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    m.classifier[4] = nn.Conv2d(256, 2, 1)
    d = tmp_path_factory.mktemp("legacy")
    torch.save(m.state_dict(), d / "legacy.pt")
    torch.save(m, d / "whole.pt")
    return d, m


def test_roundtrip_keeps_spec_weights_and_metrics(tmp_path):
    model = build_model(arch=MOBILE, num_classes=3)
    spec = ModelSpec(arch=MOBILE, classes=("background", "rock", "sky"),
                     palette=((0, 0, 0), (250, 50, 83), (0, 0, 255)), input_size=(96, 128))
    path = save_checkpoint(tmp_path / "c.pt", Checkpoint(spec=spec, state_dict=model.state_dict(), metrics={"miou": 0.5}, epoch=3))
    ck = load_checkpoint(path)
    assert ck.spec == spec and ck.epoch == 3 and ck.metrics == {"miou": 0.5}
    assert len(ck.sha256) == 64
    rebuilt = ck.build()
    for k, v in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v), k
    assert not list(tmp_path.glob(".c.*")), "temporary file left behind"


def test_legacy_state_dict_drops_and_reports_aux_keys(legacy_resnet):
    d, m = legacy_resnet
    ck = load_checkpoint(d / "legacy.pt")
    assert ck.spec.arch == "deeplabv3_resnet50" and ck.spec.num_classes == 2
    assert ck.source_format == "state_dict"
    assert ck.notes and "aux_classifier" in ck.notes[0]
    assert not any(k.startswith("aux_classifier") for k in ck.state_dict)
    model = ck.build()
    x = torch.randn(1, 3, 64, 64)
    m.eval()
    with torch.no_grad():
        assert torch.allclose(model(x)["out"], m(x)["out"], atol=1e-5)


def test_legacy_with_wrong_key_fails_naming_it(legacy_resnet, tmp_path):
    d, m = legacy_resnet
    sd = dict(m.state_dict())
    sd["classifier.4.weight"] = torch.zeros(2, 128, 1, 1)  # mis-shaped
    del sd["backbone.conv1.weight"]  # missing
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(RockedgeError) as e:
        load_checkpoint(tmp_path / "bad.pt")
    msg = str(e.value)
    assert "backbone.conv1.weight" in msg and "classifier.4.weight" in msg and "\n" not in msg


def test_pickled_model_needs_trust(legacy_resnet):
    d, _ = legacy_resnet
    with pytest.raises(RockedgeError, match="--trust-pickle"):
        load_checkpoint(d / "whole.pt")
    ck = load_checkpoint(d / "whole.pt", trust_pickle=True)
    assert ck.source_format == "pickled-module" and ck.spec.arch == "deeplabv3_resnet50"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_corrupt_files_are_one_line_errors(tmp_path, content):
    p = tmp_path / "x.pt"
    p.write_bytes(content)
    with pytest.raises(RockedgeError) as e:
        load_checkpoint(p)
    assert "x.pt" in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_foreign_state_dict(tmp_path):
    with pytest.raises(RockedgeError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(RockedgeError, match="architecture"):
        load_checkpoint(tmp_path / "other.pt")


def test_unknown_arch_and_spec_validation():
    with pytest.raises(RockedgeError, match="unknown architecture"):
        build_model(arch="unet", num_classes=2)
    with pytest.raises(RockedgeError, match="palette"):
        ModelSpec(arch=MOBILE, classes=("a", "b", "c"))
    with pytest.raises(RockedgeError, match="input_format"):
        ModelSpec(arch=MOBILE, input_format="fp16")


def test_spec_json_roundtrip_ignores_unknown_keys():
    spec = ModelSpec(arch=MOBILE, input_size=(64, 96), input_format="raw", output_format="mask")
    d = spec.to_dict() | {"added_in_a_future_version": 1}
    assert ModelSpec.from_dict(d) == spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec.to_dict()["input_layout"] == "NHWC"


def test_backbone_weights_from_local_file(tmp_path):
    from torchvision.models import mobilenet_v3_large

    torch.manual_seed(1)
    imagenet = mobilenet_v3_large(weights=None)
    torch.save(imagenet.state_dict(), tmp_path / "mnv3.pth")
    model = build_model(arch=MOBILE, num_classes=2, backbone_weights=tmp_path / "mnv3.pth")
    assert torch.equal(model.backbone["0"][0].weight, imagenet.features[0][0].weight)
    torch.save({"features.0.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(RockedgeError, match="does not fit"):
        build_model(arch=MOBILE, num_classes=2, backbone_weights=tmp_path / "bad.pth")


def test_pretrained_offline_says_how_to_pass_a_local_file(monkeypatch):
    import torchvision.models._api as api

    def offline(*a, **k):
        raise OSError("network unreachable")

    # The machine and CI are offline anyway; patching keeps the test fast and independent of DNS timeouts.
    monkeypatch.setattr(api.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RockedgeError, match="--backbone-weights"):
        build_model(arch=MOBILE, num_classes=2, pretrained=True)


# -- class names: a plain state_dict has none, so the data names them ------------------------------------------


def _eval(*args):
    from click.testing import CliRunner

    from rockedge.cli import main

    return CliRunner().invoke(main, ["eval", *map(str, args), "-q"])


def _renamed_dataset(root, names=("ground", "stone")):
    from rockedge.data.labelmap import LabelMap, write_labelmap
    from rockedge.data.synth import write_synth_dataset

    write_synth_dataset(root, n=5, size_hw=(48, 48), progress=False)
    write_labelmap(root / "labelmap.txt", LabelMap(names, ((0, 0, 0), (250, 50, 83))))
    return root


@pytest.mark.seed
def test_original_checkpoint_on_original_data_takes_its_class_names(legacy_resnet, seed_rocks, tmp_path):
    """Issue: `rockedge eval --model <original>.pth --data seed-rocks` stopped on 'rocks' vs 'rock'."""
    d, _ = legacy_resnet
    r = _eval(d / "legacy.pt", "--data", seed_rocks, "--imgsz", 64, "--json", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    assert "carries no class names; using the dataset's: background, rocks" in r.output
    import json

    assert set(json.loads((tmp_path / "e.json").read_text())["iou"]) == {"background", "rocks"}


def test_plain_state_dict_adopts_dataset_names_and_classes_flag(legacy_resnet, tmp_path):
    d, _ = legacy_resnet
    data = _renamed_dataset(tmp_path / "ds")
    r = _eval(d / "legacy.pt", "--data", data, "--imgsz", 48, "--json", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    assert r.output.count("carries no class names") == 1  # one note, not one per image
    r = _eval(d / "legacy.pt", "--data", data, "--imgsz", 48, "--classes", "ground,stone", "--json", tmp_path / "f.json")
    assert r.exit_code == 0 and "carries no class names" not in r.output


def test_two_named_artifacts_that_differ_say_how_to_proceed(tmp_path):
    spec = ModelSpec(arch=MOBILE, input_size=(48, 48))
    save_checkpoint(tmp_path / "named.pt", Checkpoint(spec=spec, state_dict=build_model(arch=MOBILE, num_classes=2).state_dict()))
    data = _renamed_dataset(tmp_path / "ds")
    r = _eval(tmp_path / "named.pt", "--data", data)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "differ from the model's ['background', 'rock']" in r.output
    assert "rename them in the dataset's labelmap.txt" in r.output and "rockedge spec write" in r.output
