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


# -- links between the pages -----------------------------------------------------------------------------------

DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """``text`` without fenced code blocks (a '# comment' in a shell block is not a heading, a link there is not one)."""
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[`*_~]|<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = _slug(m.group(1))
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text()))


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_slug_is_githubs():
    assert _slug("INT8 and the accuracy budget") == "int8-and-the-accuracy-budget"
    assert _slug("`rockedge train`") == "rockedge-train"
    assert _slug("Models from elsewhere: `--classes`, and `rockedge spec write`") == \
        "models-from-elsewhere---classes-and-rockedge-spec-write"


def test_index_links_every_page():
    linked = {Path(t.split("#")[0]).name for t in _links(DOCS / "index.md")}
    missing = [p.name for p in _pages() if p.name != "index.md" and p.name not in linked]
    assert not missing, f"docs/index.md does not link {', '.join(missing)}: add one line for each"


def test_readme_links_every_page():
    linked = {Path(t.split("#")[0]).as_posix() for t in _links(ROOT / "README.md")}
    missing = [f"docs/{p.name}" for p in _pages() if f"docs/{p.name}" not in linked]
    assert not missing, f"README.md does not link {', '.join(missing)}"


@pytest.mark.parametrize("page", [ROOT / "README.md", *_pages()], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {dest.name})")
    assert not broken, f"{page.name}: broken links: " + "; ".join(broken)
