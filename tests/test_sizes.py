"""One size parser for every command: --imgsz N or HxW, --resolution WxH, one message for bad input."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from rockedge.cli import main
from rockedge.errors import RockedgeError
from rockedge.sizes import format_hw, parse_size


@pytest.mark.parametrize("value, hw", [("512", (512, 512)), (512, (512, 512)), ("384x640", (384, 640)),
                                       ("64X96", (64, 96)), (" 32 x 48 ", (32, 48)), ((40, 56), (40, 56)),
                                       ("384,640", (384, 640))])
def test_imgsz_is_one_integer_or_height_by_width(value, hw):
    assert parse_size(value) == hw


def test_resolution_is_width_by_height():
    assert parse_size("1920x1080", order="wh") == (1080, 1920)


@pytest.mark.parametrize("value", ["", "x", "256x", "axb", "64x-1", "1.5", "64x64x3"])
def test_malformed_sizes_name_both_forms(value):
    with pytest.raises(RockedgeError, match="give one integer or two joined by 'x'"):
        parse_size(value)


@pytest.mark.parametrize("value", ["8", "16x9000", "0x64"])
def test_out_of_range_sizes_say_the_range(value):
    with pytest.raises(RockedgeError, match="out of range: each side must be 16..8192"):
        parse_size(value)


def test_format_round_trips():
    for hw in [(512, 512), (384, 640)]:
        assert parse_size(format_hw(hw)) == hw


IMGSZ_COMMANDS = [("train",), ("eval",), ("export",), ("verify",), ("run",), ("demo",), ("data", "synth")]


@pytest.mark.parametrize("path", IMGSZ_COMMANDS, ids=" ".join)
def test_every_command_parses_imgsz_the_same_way(path):
    """The issue that started this: `train --imgsz 256 --out x` failed with "'--out' is not a valid integer"."""
    cmd: click.Command = main
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    opt = next(p for p in cmd.params if p.name == "imgsz")
    ctx = click.Context(cmd)
    assert opt.type_cast_value(ctx, "256") == (256, 256)
    assert opt.type_cast_value(ctx, "192x320") == (192, 320)
    assert opt.nargs == 1


def test_bad_imgsz_on_the_command_line_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path), "--imgsz", "256x", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid value for '--imgsz'"), r.output
    assert "Traceback" not in r.output


def test_the_range_is_inclusive_at_both_ends():
    assert parse_size("16") == (16, 16) and parse_size("8192x16") == (8192, 16)
    assert parse_size("16x8192") == (16, 8192) and parse_size([8192, 8192]) == (8192, 8192)
    for value in ("15x64", "64x15", "8193x64", "64x8193"):
        with pytest.raises(RockedgeError, match="out of range"):
            parse_size(value)
    assert parse_size("8", min_side=8) == (8, 8)


def test_no_size_stays_none_and_other_values_are_one_line():
    assert parse_size(None) is None and parse_size(None, order="wh") is None
    for value in ((1, 2, 3), ("a", "b"), 3.5):
        with pytest.raises(RockedgeError, match=r"give one integer or two joined by 'x', e\.g\. 512 or 384x640 \(HxW\)"):
            parse_size(value)  # type: ignore[arg-type]


def test_resolution_messages_speak_width_by_height():
    with pytest.raises(RockedgeError, match=r"^--resolution '1920x': give one integer or two joined by 'x', e\.g\. "
                                            r"1920x1080 \(WxH\)$"):
        parse_size("1920x", order="wh", what="--resolution")
    with pytest.raises(RockedgeError, match=r"^--resolution 9000x1080 \(WxH\) is out of range"):
        parse_size("9000x1080", order="wh", what="--resolution")
    with pytest.raises(RockedgeError, match=r"^--imgsz 1080x9000 \(HxW\) is out of range"):
        parse_size("1080x9000")
