"""Docs stay in step with behaviour: the CLI reference is generated from --help and must be fresh,
every command and option has help text, every command is described in a docs page, and the README's
test command is the one CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from rockedge.cli import main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import gen_cli_docs  # noqa: E402

COMMANDS = list(gen_cli_docs.iter_commands(main))


def test_cli_reference_is_fresh():
    assert (ROOT / "docs" / "cli.md").read_text() == gen_cli_docs.render(), (
        "docs/cli.md is stale: run `python scripts/gen_cli_docs.py`"
    )


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_has_help(path, cmd):
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
    for p in cmd.params:
        if isinstance(p, click.Option) and p.name not in ("help", "version"):
            assert (p.help or "").strip() or p.name in ("seed", "epochs", "batch", "lr"), f"{' '.join(path)} {p.opts} has no help"


@pytest.mark.parametrize("path", [p for p, c in COMMANDS if len(p) > 1 and not isinstance(c, click.Group)],
                         ids=[" ".join(p) for p, c in COMMANDS if len(p) > 1 and not isinstance(c, click.Group)])
def test_every_command_has_a_docs_page(path):
    text = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md")
    assert " ".join(path) in text, f"`{' '.join(path)}` is not described in docs/ (besides the generated reference)"


def test_readme_test_command_is_what_ci_runs():
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.strip().startswith(("#", "set ", "cd "))]
    readme = (ROOT / "README.md").read_text()
    assert ci and ci[-1] in readme
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme.split("## ", 2)[1], re.S)
    assert len(blocks) == 2, "the README's set-up section has exactly two commands: the demo and the tests"


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "rockedge", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "rockedge, version" in r.stdout
