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
from rockedge.cli import boundary
from rockedge.errors import Interrupted

COMMAND_MODULES = ("data", "train", "eval", "export", "verify", "lint", "spec", "run", "benchmark", "doctor", "demo")


class RockedgeGroup(click.Group):
    """Turns library errors and what the machine does into one line and an exit status (:mod:`.boundary`);
    ``--debug`` keeps the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.UsageError as e:
            # Bad flags are user input too: one line (click's default is usage + hint + error), exit 2.
            where = e.ctx.command_path if e.ctx is not None else "rockedge"
            boundary.say(f"error: {e.format_message()} (see '{where} --help')")
            ctx.exit(e.exit_code)
        except click.ClickException:
            raise
        except BaseException as e:  # noqa: BLE001 - the boundary: known kinds become one line, bugs re-raise
            known = boundary.translate(e)
            if known is None or isinstance(e, SystemExit):
                raise
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            boundary.say(known[0])
            ctx.exit(known[1])

    def main(self, *args: Any, **kwargs: Any) -> Any:
        boundary.guard_std_streams()
        boundary.install_signal_handlers()
        kwargs.setdefault("standalone_mode", True)
        try:
            rv = super().main(*args, **{**kwargs, "standalone_mode": False})
            code = rv if isinstance(rv, int) else 0  # click returns ctx.exit's status in this mode
        except click.exceptions.Exit as e:
            code = e.exit_code
        except click.ClickException as e:  # errors click raises before a command runs (unknown command, ...)
            boundary.say(f"error: {e.format_message()}")
            code = e.exit_code
        except click.exceptions.Abort:
            boundary.say("interrupted")
            code = Interrupted.exit_code
        except BaseException as e:  # noqa: BLE001 - e.g. a signal before the group ran
            known = boundary.translate(e)
            if known is None or isinstance(e, SystemExit):
                raise
            boundary.say(known[0])
            code = known[1]
        problem = boundary.flush_stdout()
        if problem:
            boundary.say(problem)
            code = code or 1
        sys.exit(code)


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
