"""The ``rockedge`` command line: a thin client of the Python API.

One module per command family, each listing its commands in ``COMMANDS``; shared options come from
:mod:`rockedge.cli.options`. Modules import only click at the top; heavy libraries (torch, onnx,
onnxruntime) load inside the command that needs them, so ``rockedge --help`` is instant and a
runtime-only install can run ``rockedge run``. Every failure leaves through :class:`RockedgeGroup`:
one line on stderr and the error's exit code.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from rockedge._version import __version__
from rockedge.errors import Interrupted, RockedgeError

COMMAND_MODULES = ("data", "train", "eval", "export", "verify", "lint", "spec", "run", "benchmark", "doctor", "demo")


class RockedgeGroup(click.Group):
    """Turns library errors into one line and their exit code; ``--debug`` keeps the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RockedgeError as e:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            prefix = "interrupted" if isinstance(e, Interrupted) else "error"
            click.secho(f"{prefix}: {e}", fg="yellow" if isinstance(e, Interrupted) else "red", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(Interrupted.exit_code)
        except click.UsageError as e:
            # Bad flags are user input too: one line (click's default is usage + hint + error), exit 2.
            where = e.ctx.command_path if e.ctx is not None else "rockedge"
            click.secho(f"error: {e.format_message()} (see '{where} --help')", fg="red", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=RockedgeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="rockedge")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """rockedge: train a rock-segmentation model, export it, verify it and run it on the edge.

    \b
    Typical flow:
      rockedge data synth --out data/synth --n 200
      rockedge train --data data/synth --arch lraspp_mobilenet_v3_large --out runs/m
      rockedge eval runs/m/best.pt --data data/synth
      rockedge export runs/m/best.pt --out model.onnx
      rockedge run --engine model.onnx video.mp4 --out overlay.mp4

    Every command that acts on a model takes it as MODEL (or --model/--engine).
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for _name in COMMAND_MODULES:
    for _cmd in importlib.import_module(f"rockedge.cli.{_name}").COMMANDS:
        main.add_command(_cmd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
