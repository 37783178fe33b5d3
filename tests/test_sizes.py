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
