#!/usr/bin/env python3
"""Write docs/cli.md from the commands' own --help text, so the reference cannot drift.

    python scripts/gen_cli_docs.py          # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check  # exit 1 if docs/cli.md is stale (tests/test_docs.py does this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"


def iter_commands(cmd: click.Command, path: tuple[str, ...] = ("rockedge",)):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(click.Context(cmd)):
            yield from iter_commands(cmd.commands[name], (*path, name))


def help_text(cmd: click.Command, path: tuple[str, ...]) -> str:
    # Build the same context chain a real invocation has: the root group's context_settings (-h/--help,
    # width) are inherited by every subcommand. Click caches each command's help option on first use,
    # so contexts built any other way would make the output depend on what ran before.
    from rockedge.cli import main

    ctx = click.Context(main, info_name="rockedge", **main.context_settings)
    group: click.Command = main
    for name in path[1:]:
        assert isinstance(group, click.Group)
        group = group.commands[name]
        ctx = click.Context(group, info_name=name, parent=ctx)
    return cmd.get_help(ctx)


def render() -> str:
    from rockedge.cli import main

    parts = [
        "# CLI reference\n",
        "Generated from `--help` by `scripts/gen_cli_docs.py`; `tests/test_docs.py` fails when it is stale.\n",
    ]
    for path, cmd in iter_commands(main):
        parts.append(f"\n## `{' '.join(path)}`\n\n```text\n{help_text(cmd, path).rstrip()}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if TARGET.is_file() and TARGET.read_text() == text else 1)
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
