"""The calibration reader (every source, runtime preprocessing, class balance), TensorRT's cache format and
reuse rules, and the calibrator's batching core, all on the CPU."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from helpers import write_video

from rockedge.calibration.cache import (
    CacheFile,
    CalibrationTable,
    cache_identity,
    hex_to_scale,
    parse_table,
    scale_to_hex,
    version_code,
)
from rockedge.calibration.reader import class_balanced, load_calibration_set
from rockedge.calibration.trt_calibrator import BatchFeeder, calibrator_base
from rockedge.errors import RockedgeError
from rockedge.runtime.preprocess import prepare
from rockedge.spec import ModelSpec

SPEC = ModelSpec(arch="deeplabv3_mobilenet_v3_large", input_size=(48, 64))


def test_synth_source_is_deterministic_and_prepared_like_the_runtime():
    a = load_calibration_set("synth", SPEC, n=3, seed=1)
    b = load_calibration_set(None, SPEC, n=3, seed=1)
    assert len(a) == 3 and a.sha256 == b.sha256 and a.size_hw == (48, 64)
    assert load_calibration_set("synth", SPEC, n=3, seed=2).sha256 != a.sha256
    batch = next(a.batches(2))
    expected, _ = prepare(a.frames[:2], SPEC)
    assert batch.shape == (2, 3, 48, 64) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, expected)  # the runtime's own preprocessing, not a copy
    raw = load_calibration_set("synth", SPEC.replace(input_format="raw"), n=3, seed=1)
    assert next(raw.batches(1)).dtype == np.uint8 and next(raw.batches(1)).shape == (1, 48, 64, 3)
    assert raw.sha256 != a.sha256  # same pixels, other preprocessing: another calibration


def test_fixed_batch_padding_and_feeds():
    cal = load_calibration_set("synth", SPEC, n=5)
    shapes = [x.shape[0] for x in cal.batches(2, fixed_batch=2)]
    assert shapes == [2, 2, 2]  # the last batch of one frame is padded
    feeds = list(cal.feeds("images", 4))
    assert [list(f) for f in feeds] == [["images"], ["images"]] and feeds[1]["images"].shape[0] == 1


def test_image_folder_video_and_dataset_sources(tmp_path, scenes):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (img, _) in enumerate(scenes(6, 40, 50, seed=2)):
        cv2.imwrite(str(folder / f"{i}.png"), img)
    cal = load_calibration_set(folder, SPEC, n=3)
    assert len(cal) == 3 and "3 of 6 images" in cal.source and cal.frames[0].shape == (48, 64, 3)
    video = write_video(tmp_path / "v.avi", [s[0] for s in scenes(12, 48, 64, seed=5)], fourcc="MJPG")
    cal = load_calibration_set(video, SPEC, n=4)
    assert len(cal) == 4 and "4 frames, one in every 3" in cal.source
    from rockedge.data.synth import write_synth_dataset

    data = write_synth_dataset(tmp_path / "d", n=10, size_hw=(48, 64), progress=False)
    cal = load_calibration_set(data, SPEC, n=4)
    assert len(cal) == 4 and "train" in cal.source and "class-balanced" in cal.source


def test_class_balance_prefers_what_the_selection_lacks():
    class DS:
        num_classes = 2

        def __init__(self, fg):
            self.masks = [np.pad(np.ones((1, k), np.uint8), ((0, 0), (0, 10 - k))) for k in fg]

        def __len__(self):
            return len(self.masks)

        def __getitem__(self, i):
            return None, self.masks[i]

    ds = DS([0, 0, 0, 1, 9, 0, 0, 5])  # rock share per image: 0, 0, 0, .1, .9, 0, 0, .5
    picks = class_balanced(ds, 3)
    assert 4 in picks and 7 in picks  # the rock-rich images are not left out
    assert class_balanced(ds, 20) == list(range(8))


@pytest.mark.parametrize("source, message", [
    ("/nonexistent/folder", "source not found"),
    ("empty_dir", "no images in"),
])
def test_bad_sources_are_one_line(tmp_path, source, message):
    if source == "empty_dir":
        (tmp_path / "e").mkdir()
        source = tmp_path / "e"
    with pytest.raises(RockedgeError, match=message):
        load_calibration_set(source, SPEC, n=2)
    with pytest.raises(RockedgeError, match="--calib-n must be >= 1"):
        load_calibration_set("synth", SPEC, n=0)


def test_unreadable_video_is_one_line(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(RockedgeError, match="cannot open video"):
        load_calibration_set(bad, SPEC, n=2)


# -- TensorRT's calibration cache --------------------------------------------------------------------------------


def test_cache_format_round_trip():
    table = CalibrationTable("8601", "EntropyCalibration2", {"images": 0.0078125, "conv1_out": 0.125})
    data = table.to_bytes()
    assert data.splitlines()[0] == b"TRT-8601-EntropyCalibration2"
    assert data.splitlines()[1] == b"images: 3c000000"  # big-endian bits of the float32 scale 2**-7
    back = parse_table(data)
    assert back.scales == table.scales and back.version_code == "8601"
    assert hex_to_scale(scale_to_hex(0.3)) == pytest.approx(0.3)
    assert version_code("8.6.1.6") == "8601" and version_code("8.5.2.2") == "8502" and version_code("10.3.0.30") == "100300"


def test_tensor_names_with_colons_keep_every_colon_but_the_last():
    """ONNX exporters name tensors "onnx::Conv_12"; TensorFlow-style names end in ":0". The scale is what follows the
    last colon, the name everything before it."""
    data = (b"TRT-8601-EntropyCalibration2\nonnx::Conv_12: 3c000000\ninput:0: 3c800000\n"
            b"/model/conv/Conv_output_0: 3d000000\n")
    table = parse_table(data)
    assert table.scales == {"onnx::Conv_12": 2.0**-7, "input:0": 2.0**-6, "/model/conv/Conv_output_0": 2.0**-5}
    assert parse_table(table.to_bytes()).scales == table.scales


@pytest.mark.parametrize("data", [b"", b"not a cache\n", b"TRT-8601-EntropyCalibration2\nx 3c\n", b"\xff\xfe"])
def test_malformed_caches_are_refused(data):
    with pytest.raises(RockedgeError):
        parse_table(data)


ID = {"onnx_sha256": "ab" * 32, "tensorrt_version": "8.6.2.3"}


def test_cache_is_reused_only_for_the_same_calibration(tmp_path):
    cal = load_calibration_set("synth", SPEC, n=2)
    other = load_calibration_set("synth", SPEC, n=2, seed=9)
    cache = CacheFile(tmp_path / "m.calib.cache")
    assert cache.load(cache_identity(cal, **ID)) is None  # nothing yet
    data = CalibrationTable("8601", "EntropyCalibration2", {"images": 0.01}).to_bytes()
    cache.save(data, cache_identity(cal, **ID))
    assert cache.load(cache_identity(cal, **ID)) == data
    assert json.loads(cache.sidecar.read_text())["calibration_sha256"] == cal.sha256
    assert cache.load(cache_identity(other, **ID)) is None  # other images: recalibrate, never a stale cache
    cache.sidecar.unlink()
    assert cache.load(cache_identity(cal, **ID)) is None
    with pytest.raises(RockedgeError):
        cache.save(b"garbage", cache_identity(cal, **ID))


@pytest.mark.parametrize("change", [{"onnx_sha256": "cd" * 32}, {"tensorrt_version": "10.3.0.30"}])
def test_a_cache_from_another_network_or_tensorrt_is_not_reused(tmp_path, change):
    # The same images and size, but a model re-exported under the same name (other tensor ranges) or a TensorRT
    # upgrade: the old scales must not be used silently.
    cal = load_calibration_set("synth", SPEC, n=2)
    cache = CacheFile(tmp_path / "m.calib.cache")
    data = CalibrationTable("8601", "EntropyCalibration2", {"images": 0.01}).to_bytes()
    cache.save(data, cache_identity(cal, **ID))
    assert cache.load(cache_identity(cal, **ID)) == data
    assert cache.load(cache_identity(cal, **{**ID, **change})) is None


# -- the calibrator's batching core, with numpy standing in for device memory -------------------------------------


def test_batch_feeder_walks_the_set_into_one_buffer():
    cal = load_calibration_set("synth", SPEC, n=5)
    device: dict[int, np.ndarray] = {}
    copies = []

    def alloc(nbytes):
        device[1] = np.zeros(nbytes, np.uint8)
        return 1

    def to_device(ptr, host):
        device[ptr][: host.nbytes] = host.view(np.uint8).ravel()
        copies.append(host.shape)

    feeder = BatchFeeder(cal, 2, alloc=alloc, to_device=to_device, free=lambda p: device.pop(p))
    assert feeder.nbytes == 2 * 3 * 48 * 64 * 4
    seen = []
    while (ptr := feeder.next_pointer()) is not None:
        seen.append(device[ptr][: feeder.nbytes].view(np.float32).reshape(2, 3, 48, 64).copy())
    assert copies == [(2, 3, 48, 64)] * 3 and feeder.fed == 3
    expected, _ = prepare(cal.frames[:2], SPEC)
    np.testing.assert_array_equal(seen[0], expected)
    np.testing.assert_array_equal(seen[2][1], seen[2][0])  # the last batch padded with its last frame
    feeder.close()
    assert not device


def test_tensorrt_11_has_no_calibrator():
    class Trt11:
        __version__ = "11.0.0"

    with pytest.raises(RockedgeError, match=r"no INT8 calibrators \(removed in 11\).*rockedge export MODEL --int8"):
        calibrator_base(Trt11())
