"""The ``rockedge`` command line: a thin client of the Python API.

Each command family lives in its own module and registers itself on :data:`main`. Modules import
only click at the top; heavy libraries (torch, onnx, onnxruntime) load inside the command that needs
them, so ``rockedge --help`` is instant and a runtime-only install can run ``rockedge run``.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from rockedge import __version__
from rockedge.errors import RockedgeError

COMMAND_MODULES = ("data", "train", "export", "run", "demo")


class RockedgeGroup(click.Group):
    """Turns library errors into one line and exit 1; ``--debug`` keeps the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RockedgeError as e:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            click.secho(f"error: {e}", fg="red", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=RockedgeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="rockedge")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """rockedge: train a rock-segmentation model, export it, verify it and run it on the edge.

    \b
    Typical flow:
      rockedge data synth --out data/synth --n 200
      rockedge train --data data/synth --arch deeplabv3_mobilenet_v3_large --out runs/m
      rockedge eval --model runs/m/best.pt --data data/synth
      rockedge export runs/m/best.pt --out model.onnx
      rockedge run --engine model.onnx video.mp4 --out overlay.mp4
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for _name in COMMAND_MODULES:
    importlib.import_module(f"rockedge.cli.{_name}").register(main)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
