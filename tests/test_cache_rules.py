"""TensorRT's calibration cache, line by line: the hex scales it holds, the caches it refuses (each with a clear
error naming the file), and why a cache on disk is not handed back to TensorRT (a note on stderr, then None).

The format's facts are tests/data/tensorrt_api/calibration_caches.md (real caches TensorRT wrote)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from rockedge.calibration.cache import (
    CacheFile,
    CalibrationTable,
    cache_path_for,
    hex_to_scale,
    parse_table,
    version_code,
)
from rockedge.errors import RockedgeError

HEADER = b"TRT-8601-EntropyCalibration2\n"


# -- the hex scales ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, scale", [
    ("3c010a14", struct.unpack(">f", bytes.fromhex("3c010a14"))[0]),  # ~1/127, the usual scale
    ("3c000000", 2.0**-7),
    ("0", 0.0),  # TensorRT writes a zero scale without leading zeros (8.4.1 - 10.13.3 caches)
    ("1", 2.0**-149),  # the smallest float32: any 1-7 digit value is a float32 with leading zero bytes
    ("3c", struct.unpack(">f", bytes.fromhex("0000003c"))[0]),
    ("7f800000", float("inf")),  # TensorRT's "no bounded range"
    (" 3c000000 ", 2.0**-7),
])
def test_cache_format_hex_scales_are_big_endian_float32_without_leading_zeros(text, scale):
    assert hex_to_scale(text) == scale


@pytest.mark.parametrize("text", [
    "",  # no value at all
    "3c0000000", "3c00000000",  # more than a float32's 8 digits
    "3c00 0000",  # not one hex number
    "3g000000", "-3c", "0x3c",  # not hex
    "7fc00000", "ffc00000", "7f800001",  # NaN: no scale
])
def test_cache_format_refuses_what_is_not_a_float32_scale(text):
    with pytest.raises(ValueError):
        hex_to_scale(text)


@pytest.mark.parametrize("value", ["", "3c00000000", "7fc00000", "zz"])
def test_malformed_caches_name_the_file_and_the_bad_scale(value):
    data = HEADER + f"conv1_out: {value}\n".encode()
    with pytest.raises(RockedgeError, match=rf"^m\.calib\.cache: '{value}' is not a float32 scale in 8 hex digits$"):
        parse_table(data, "m.calib.cache")


@pytest.mark.parametrize("line", ["conv1_out 3c000000", ": 3c000000", " : 3c000000"])
def test_malformed_caches_refuse_a_line_without_a_tensor_name(line):
    data = HEADER + b"images: 3c000000\n" + line.encode() + b"\n"
    with pytest.raises(RockedgeError, match=r"^m\.calib\.cache: malformed line"):
        parse_table(data, "m.calib.cache")


def test_cache_format_every_line_after_the_header_is_a_scale():
    table = parse_table(HEADER + b"images: 3c000000\n\nconv1_out: 0\nlogits: 7f800000\n")
    assert table.version_code == "8601" and table.algorithm == "EntropyCalibration2"
    assert table.scales == {"images": 2.0**-7, "conv1_out": 0.0, "logits": float("inf")}


@pytest.mark.parametrize("version, code", [
    ("8.6", "8600"), ("8", "8000"), ("10", "100000"), ("10.3", "100300"), ("10.13.3.9", "101303"),
])
def test_cache_format_version_code_of_short_versions(version, code):
    """The header's number for a version given without its patch (or minor): the missing parts are 0."""
    assert version_code(version) == code


# -- reuse: a note says why a cache is not handed to TensorRT -----------------------------------------------------

IDENTITY = {"calibration_sha256": "12" * 32, "n": 8, "size_hw": [48, 64], "algorithm": "EntropyCalibration2",
            "onnx_sha256": "ab" * 32, "tensorrt_version": "8.6.2.3"}
DATA = CalibrationTable("8601", "EntropyCalibration2", {"images": 0.01}).to_bytes()


@pytest.fixture
def cache(tmp_path) -> CacheFile:
    c = CacheFile(tmp_path / "m.calib.cache")
    c.save(DATA, IDENTITY)
    return c


def test_cache_is_reused_when_everything_matches_and_says_nothing(cache, capsys):
    assert cache.load(dict(IDENTITY)) == DATA
    assert capsys.readouterr().err == ""


def test_cache_rules_a_missing_cache_is_not_reused_silently(tmp_path, capsys):
    assert CacheFile(tmp_path / "none.calib.cache").load(IDENTITY) is None
    assert capsys.readouterr().err == ""  # nothing to reuse: nothing to explain


def test_cache_rules_a_corrupted_cache_is_not_reused_even_with_its_sidecar(cache, capsys):
    cache.path.write_bytes(HEADER + b"images: 7fc00000\n")  # its sidecar still matches
    assert cache.load(IDENTITY) is None
    err = capsys.readouterr().err
    assert err.startswith("note: not reusing m.calib.cache: ") and "'7fc00000' is not a float32 scale" in err


@pytest.mark.parametrize("sidecar", [None, b"\x89PNG\x00\xff", b"{not json", b"[1, 2]"])
def test_cache_rules_a_cache_without_a_readable_sidecar_is_not_reused(cache, capsys, sidecar):
    """Missing, binary, not JSON or not an object: nothing says which images the scales came from."""
    if sidecar is None:
        cache.sidecar.unlink()
    else:
        cache.sidecar.write_bytes(sidecar)
    assert cache.load(IDENTITY) is None
    assert capsys.readouterr().err == ("note: not reusing m.calib.cache: no readable m.calib.cache.json says which "
                                       "images it came from\n")


@pytest.mark.parametrize("change, named", [
    ({"tensorrt_version": "10.3.0.30"}, "tensorrt_version"),
    ({"onnx_sha256": "cd" * 32, "n": 16}, "n, onnx_sha256"),
])
def test_cache_rules_a_cache_from_another_calibration_says_what_differs(cache, capsys, change, named):
    assert cache.load({**IDENTITY, **change}) is None
    assert capsys.readouterr().err == (f"note: not reusing m.calib.cache: its {named} differ from this "
                                       "calibration; recalibrating\n")


def test_cache_rules_a_cache_of_another_algorithm_is_not_reused(tmp_path, capsys):
    """The sidecar says MinMax, and so does this calibration, but the file holds entropy scales (replaced by hand):
    TensorRT would take its header at its word, so rockedge recalibrates."""
    minmax = {**IDENTITY, "algorithm": "MinMaxCalibration"}
    cache = CacheFile(tmp_path / "m.calib.cache")
    cache.save(DATA, minmax)
    assert cache.load(minmax) is None
    assert "not reusing m.calib.cache: it holds EntropyCalibration2 scales" in capsys.readouterr().err
    ok = CalibrationTable("8601", "MinMaxCalibration", {"images": 0.01}).to_bytes()
    cache.save(ok, minmax)
    assert cache.load(minmax) == ok


@pytest.mark.parametrize("model", ["runs/best.onnx", Path("runs/best.onnx")])
def test_cache_rules_default_cache_sits_beside_the_model(model):
    assert cache_path_for(model) == Path("runs/best.calib.cache")
    assert cache_path_for("best.v2.onnx") == Path("best.v2.calib.cache")


def test_cache_rules_sidecar_records_the_identity(cache):
    assert json.loads(cache.sidecar.read_text()) == IDENTITY
    assert cache.sidecar.name == "m.calib.cache.json"
