"""The CLI vocabulary: one spelling, type and meaning per concept on every command; one way out for errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rockedge.cli import main
from rockedge.cli.options import (
    VOCABULARY,
    imgsz_option,
    model_argument,
    quiet_option,
    vocabulary_problems,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import gen_cli_docs  # noqa: E402

LEAVES = [(p, c) for p, c in gen_cli_docs.iter_commands(main) if not isinstance(c, click.Group)]


@pytest.mark.parametrize("path,cmd", LEAVES, ids=[" ".join(p[1:]) for p, _ in LEAVES])
def test_every_command_speaks_the_vocabulary(path, cmd):
    assert vocabulary_problems(cmd, " ".join(path)) == []


def test_the_check_catches_an_inconsistent_option():
    @click.command("odd")
    @click.option("--imgsz", nargs=2, type=int, help="H W, the old way.")
    @click.option("--no-progress", is_flag=True, help="Old spelling of --quiet.")
    @click.option("--report", type=click.Path(), help="Old spelling of --json.")
    @click.option("--batch-size", "batch", type=int, help="A second name for --batch.")
    def odd(imgsz, no_progress, report, batch):
        """A command that drifted."""

    problems = "\n".join(vocabulary_problems(odd))
    assert "imgsz is declared as ('--imgsz',) integer" in problems
    assert "takes 2 values" in problems
    assert "--no-progress means --quiet" in problems and "--report means --json" in problems
    assert "batch is declared as ('--batch-size',)" in problems


def test_the_shared_decorators_pass_the_check():
    @click.command("good")
    @model_argument()
    @imgsz_option("Size.")
    @quiet_option
    def good(model, imgsz, quiet):
        """A command built from the shared options."""

    assert vocabulary_problems(good) == []


def test_concepts_that_appear_on_several_commands_are_declared_identically():
    seen: dict[str, set[tuple]] = {}
    for _, cmd in LEAVES:
        for p in cmd.params:
            if isinstance(p, click.Option) and p.name in VOCABULARY:
                seen.setdefault(p.name, set()).add((tuple(p.opts), type(p.type).__name__, p.is_flag))
    shared = {k: v for k, v in seen.items() if len(v) > 1}
    assert not shared, shared
    # the concepts the issue named really are shared
    for name in ("imgsz", "quiet", "json_path", "model_opt", "backend", "providers", "classes"):
        assert name in seen


def _invoke(*args) -> click.testing.Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_model_is_positional_or_an_option_everywhere(tmp_path):
    import cv2
    import numpy as np

    missing = tmp_path / "nope.onnx"
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    for args in (["eval", missing, "--data", tmp_path], ["eval", "--model", missing, "--data", tmp_path],
                 ["eval", "-m", missing, "--data", tmp_path], ["lint", "--engine", missing],
                 ["run", missing, image], ["run", "--engine", missing, image], ["spec", "show", "-m", missing],
                 ["benchmark", missing], ["benchmark", "-m", missing], ["benchmark", "--model", missing]):
        r = _invoke(*args)
        assert r.exit_code == 1 and "not found" in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1


def test_model_given_twice_or_not_at_all_is_one_line(tmp_path):
    r = _invoke("eval", "a.onnx", "--model", "b.onnx", "--data", tmp_path)
    assert r.exit_code == 2 and "the model is given twice" in r.output and len(r.output.strip().splitlines()) == 1
    r = _invoke("export")
    assert r.exit_code == 2 and "missing MODEL" in r.output
    r = _invoke("run", "--engine", "m.onnx")
    assert r.exit_code == 2 and "missing SOURCE" in r.output


def test_usage_errors_are_one_line():
    for args in (["train", "--no-such-flag"], ["run", "--backend", "tpu", "m.onnx", "x.mp4"], ["data", "synth", "--n", "x"]):
        r = _invoke(*args)
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, r.output)
        assert "--help" in lines[0]


def test_json_dash_prints_the_report_to_stdout(tmp_path):
    from rockedge.data.synth import write_synth_dataset

    write_synth_dataset(tmp_path / "d", n=3, size_hw=(32, 32), progress=False)
    r = CliRunner().invoke(main, ["data", "info", str(tmp_path / "d"), "--json", "-"])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["splits"][0]["images"] >= 1
    r = CliRunner().invoke(main, ["data", "info", str(tmp_path / "d"), "--json", str(tmp_path / "i.json")])
    assert "report:" in r.stdout and json.loads((tmp_path / "i.json").read_text())["root"] == str(tmp_path / "d")
