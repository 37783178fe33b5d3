"""The export format table: an option the chosen format (or the model it starts from) does not use is refused by
name instead of being ignored, and an export with nothing to do says so."""

from __future__ import annotations

import pytest
from helpers import cli_runner

from rockedge.cli import main
from rockedge.errors import RockedgeError
from rockedge.jobs.formats import EXPORT_FORMATS, FORMAT_NAMES, validate_options
from rockedge.runtime.modelfile import ENGINE_SUFFIXES


def test_the_table_is_the_one_place_for_formats_and_suffixes():
    assert FORMAT_NAMES == ("onnx", "engine", "triton", "deepstream")
    engine = next(f for f in EXPORT_FORMATS if f.name == "engine")
    assert engine.suffixes == ENGINE_SUFFIXES == (".plan", ".engine", ".trt")


def test_the_cli_takes_its_format_names_from_the_table(monkeypatch):
    """`rockedge export --format` offers what the table lists: a format added there is a choice, with no second list
    in cli/export.py to forget."""
    import importlib

    import click

    from rockedge.cli import export as cli_export
    from rockedge.jobs import formats

    def choices() -> list[str]:
        opt = next(p for p in cli_export.export_cmd.params if p.name == "fmt")
        assert isinstance(opt.type, click.Choice)
        return list(opt.type.choices)

    assert choices() == list(FORMAT_NAMES)
    monkeypatch.setattr(formats, "FORMAT_NAMES", (*FORMAT_NAMES, "newformat"))
    try:
        importlib.reload(cli_export)
        assert choices() == [*FORMAT_NAMES, "newformat"]
    finally:
        monkeypatch.undo()
        importlib.reload(cli_export)
    assert choices() == list(FORMAT_NAMES)


@pytest.mark.parametrize("fmt, option, where", [
    ("onnx", "workspace", "engine"), ("onnx", "dla_core", "engine"), ("onnx", "timing_cache", "engine"),
    ("onnx", "max_batch", "deepstream / triton"), ("engine", "instances", "triton"), ("triton", "workspace", "engine"),
    ("deepstream", "instances", "triton"), ("engine", "calib_method", "deepstream / onnx / triton"),
])
def test_an_option_the_format_does_not_use_is_refused_by_name(fmt, option, where):
    with pytest.raises(RockedgeError) as e:
        validate_options(fmt, {option}, from_checkpoint=True)
    flag = "--" + option.replace("_", "-")
    assert str(e.value).startswith(f"{flag} is not used by --format {fmt} (only --format {where} uses it)")


def test_export_options_need_a_checkpoint():
    validate_options("onnx", {"opset", "dynamic", "imgsz"}, from_checkpoint=True)
    with pytest.raises(RockedgeError, match="--dynamic, --opset: options of the ONNX export, used only when MODEL is a "
                                            "checkpoint"):
        validate_options("onnx", {"opset", "dynamic", "half"}, from_checkpoint=False)
    validate_options("engine", {"imgsz", "batch", "workspace"}, from_checkpoint=False)  # an engine profile's size


def test_what_every_format_accepts():
    for f in EXPORT_FORMATS:
        validate_options(f.name, {"model_arg", "fmt", "out", "half", "json_path", "quiet", "data", "n", "seed"},
                         from_checkpoint=False)


def test_the_cli_refuses_before_doing_anything(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not read: the options are checked first")
    r = cli_runner().invoke(main, ["export", str(onnx), "--half", "--workspace", "1"])
    assert r.exit_code == 1 and "--workspace is not used by --format onnx (only --format engine uses it)" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_an_onnx_export_of_an_onnx_has_nothing_to_do(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    r = cli_runner().invoke(main, ["export", str(onnx), "--out", str(tmp_path / "copy.onnx")])
    assert r.exit_code == 1 and "is an ONNX model already: nothing to export" in r.stderr
    assert not (tmp_path / "copy.onnx").exists()
