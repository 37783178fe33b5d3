"""The CLI's vocabulary: one spelling, one type, one meaning per concept, on every command.

Commands declare shared concepts only through the decorators here (sqlite-utils does the same), and
:func:`vocabulary_problems` checks a command against :data:`VOCABULARY` and :data:`FORBIDDEN`; the test
suite runs it over every command, so a new command cannot drift.

The rules:

* **The model** a command acts on is its first positional argument ``MODEL``; ``--model``, ``-m`` and
  ``--engine`` (the form of ``rockedge run --engine model.plan video.mp4``) are the same argument given
  as an option. ``verify`` compares ``MODEL`` against ``--reference``.
* **Sizes**: ``--imgsz`` is one integer (square) or ``HxW``; a video's frame size is ``--resolution WxH``.
* **Reports**: ``--json PATH`` writes the command's report as JSON to PATH; ``-`` prints it to stdout
  (the table then goes to stderr).
* **Progress**: ``--quiet/-q`` turns off bars and per-step lines; off a terminal they are sparse anyway.
* **Backends**: ``--backend``, ``--providers``, ``--device``; a model without a rockedge spec is described
  with ``--classes`` (+ ``--palette``, ``--mean``, ``--std``, ``--input-format``, ``--input-name``,
  ``--output-name``), as jetson-inference's ``--labels``/``--colors``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click

from rockedge.errors import RockedgeError
from rockedge.precision import NAMES as PRECISIONS

F = Callable[..., Any]  # typing.Callable: collections.abc's is not subscriptable on Python 3.8


# -- parameter types --------------------------------------------------------------------------------


class SizeType(click.ParamType):
    """``512`` or ``384x640``: parsed by :func:`rockedge.sizes.parse_size` (``order`` hw for --imgsz, wh for --resolution)."""

    def __init__(self, order: str = "hw") -> None:
        self.order = order
        self.name = "HxW" if order == "hw" else "WxH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from rockedge.sizes import parse_size

        if value is None or isinstance(value, tuple):
            return value
        try:
            return parse_size(value, order=self.order, what=param.opts[0] if param else "size")
        except RockedgeError as e:
            self.fail(str(e).split(": ", 1)[-1], param, ctx)


class NamesType(click.ParamType):
    """Class names: ``background,rock``, or a labels file with one name per line (jetson-inference's --labels)."""

    name = "NAMES"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, tuple):
            return value
        text = str(value)
        p = Path(text)
        lines = p.read_text().splitlines() if ("," not in text and p.is_file()) else text.split(",")
        names = tuple(n.strip() for n in lines if n.strip() and not n.strip().startswith("#"))
        if len(names) < 2:
            self.fail(f"need at least two class names (comma-separated or a file), got {text!r}", param, ctx)
        return names


class PaletteType(click.ParamType):
    """Colours: ``0,0,0;250,50,83``, ``#000000,#fa3253``, or a file with one ``R G B`` per line (--colors)."""

    name = "COLORS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, tuple):
            return value
        text = str(value).strip()
        p = Path(text)
        if p.is_file():
            items = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
        elif "#" in text:
            items = [t for t in text.replace(";", ",").split(",") if t.strip()]
        else:
            items = [t for t in text.split(";") if t.strip()]
        colours = []
        for item in items:
            item = item.strip()
            try:
                if item.startswith("#") and len(item) == 7:
                    rgb = tuple(int(item[i : i + 2], 16) for i in (1, 3, 5))
                else:
                    rgb = tuple(int(v) for v in item.replace(",", " ").split())
            except ValueError:
                rgb = ()
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                self.fail(f"{item!r} is not an RGB colour (R,G,B with 0-255 values, or #rrggbb)", param, ctx)
            colours.append(rgb)
        return tuple(colours)


class TripleType(click.ParamType):
    """Three floats: ``0.485,0.456,0.406`` (RGB order, as torchvision's mean/std)."""

    name = "R,G,B"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, tuple):
            return value
        try:
            vals = tuple(float(v) for v in str(value).split(","))
        except ValueError:
            vals = ()
        if len(vals) != 3:
            self.fail(f"need three comma-separated numbers (R,G,B), got {value!r}", param, ctx)
        return vals


IMGSZ = SizeType("hw")
RESOLUTION = SizeType("wh")


# -- the vocabulary ---------------------------------------------------------------------------------

# name -> (option strings, type name, is_flag). Every command that has the concept declares it like this.
VOCABULARY: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "model_opt": (("--model", "-m", "--engine"), "text", False),
    "imgsz": (("--imgsz",), "HxW", False),
    "resolution": (("--resolution",), "WxH", False),
    "batch": (("--batch",), "integer range", False),
    "json_path": (("--json",), "path", False),
    "quiet": (("--quiet", "-q"), "boolean", True),
    "backend": (("--backend",), "choice", False),
    "providers": (("--providers",), "text", False),
    "device": (("--device",), "text", False),
    "trust_pickle": (("--trust-pickle",), "boolean", True),
    "trust_plan_code": (("--trust-plan-code",), "boolean", True),
    "data": (("--data",), "path", False),
    "out": (("--out",), "path", False),
    "seed": (("--seed",), "integer", False),
    "classes": (("--classes",), "NAMES", False),
    "palette": (("--palette",), "COLORS", False),
    "mean": (("--mean",), "R,G,B", False),
    "std": (("--std",), "R,G,B", False),
    "input_format": (("--input-format",), "choice", False),
    "output_format": (("--output-format",), "choice", False),
    "input_name": (("--input-name",), "text", False),
    "output_name": (("--output-name",), "text", False),
    "budget": (("--budget",), "choice", False),
    "reference": (("--reference",), "path", False),
}
# Spellings that mean one of the concepts above; a command using them has drifted.
FORBIDDEN: dict[str, str] = {
    "--no-progress": "--quiet", "--silent": "--quiet", "--report": "--json", "--size": "--imgsz or --resolution",
    "--weights": "MODEL", "--input": "--input-format", "--output": "--output-format", "--labels": "--classes",
    "--colors": "--palette", "--precision-budget": "--budget", "--img-size": "--imgsz", "--imgsize": "--imgsz",
    "--provider": "--providers", "--out-dir": "--out", "--output-dir": "--out",
}


def _type_name(t: click.ParamType) -> str:
    name = getattr(t, "name", type(t).__name__)
    return "path" if isinstance(t, click.Path) else str(name)


def vocabulary_problems(cmd: click.Command, path: str = "") -> list[str]:
    """How ``cmd`` departs from the vocabulary (empty when it follows it)."""
    where = path or cmd.name or "?"
    problems = []
    for p in cmd.params:
        if not isinstance(p, click.Option):
            continue
        for opt in (*p.opts, *p.secondary_opts):
            if opt in FORBIDDEN:
                problems.append(f"{where}: {opt} means {FORBIDDEN[opt]}; use that")
        canon = VOCABULARY.get(p.name or "")
        if canon is not None:
            opts, tname, flag = canon
            if tuple(p.opts) != opts or _type_name(p.type) != tname or bool(p.is_flag) != flag:
                problems.append(f"{where}: {p.name} is declared as {tuple(p.opts)} {_type_name(p.type)} "
                                f"(flag={p.is_flag}); the vocabulary says {opts} {tname} (flag={flag})")
        for name, (opts, _, _) in VOCABULARY.items():
            if name != p.name and set(opts) & set(p.opts):
                problems.append(f"{where}: {p.opts} reuses {opts[0]}, which names {name!r} everywhere else")
        if p.nargs != 1 and not p.multiple:
            problems.append(f"{where}: {p.opts} takes {p.nargs} values; options take one (e.g. --imgsz 384x640)")
    return problems


# -- decorators -------------------------------------------------------------------------------------


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def model_argument(*, shift: str | None = None, help: str = "The model: a .pt checkpoint, .onnx, or TensorRT .plan/.engine.") -> Callable[[F], F]:
    """Positional MODEL, also accepted as --model/-m/--engine. ``shift`` names the positional argument that
    follows MODEL (``run``'s SOURCE): with --engine given, the one positional is that argument."""

    def deco(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, model_arg: str | None = None, model_opt: str | None = None, **kw: Any) -> Any:
            if model_opt is not None:
                if model_arg is not None:
                    if shift is None or kw.get(shift) is not None:
                        raise click.UsageError(f"the model is given twice: {model_arg} and {model_opt}")
                    kw[shift] = model_arg
                model_arg = model_opt
            if model_arg is None:
                raise click.UsageError("missing MODEL (a positional argument, or --model/--engine)")
            if shift is not None and kw.get(shift) is None:
                raise click.UsageError(f"missing {shift.upper()}")
            return f(*args, model=Path(model_arg), **kw)

        wrapper = click.option("--model", "-m", "--engine", "model_opt", metavar="MODEL",
                               help="The model, as an option (same as the MODEL argument).")(wrapper)
        wrapper = click.argument("model_arg", metavar="MODEL", required=False)(wrapper)
        return wrapper

    return deco


def imgsz_option(help: str, default: Any = None) -> Callable[[F], F]:
    return click.option("--imgsz", type=IMGSZ, default=default, show_default=default is not None,
                        help=help + " One integer for a square (512) or HxW (384x640).")


def batch_option(help: str = "Frames per inference call (a fixed-batch model uses its own).", default: int | None = 1) -> Callable[[F], F]:
    return click.option("--batch", type=click.IntRange(min=1), default=default, show_default=default is not None,
                        help=help)


def json_option(help: str = "Also write the report as JSON to PATH ('-': print it to stdout).") -> Callable[[F], F]:
    return click.option("--json", "json_path", type=click.Path(allow_dash=True, path_type=Path), default=None,
                        metavar="PATH", help=help)


def quiet_option(f: F) -> F:
    return click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-step lines.")(f)


def trust_pickle_option(f: F) -> F:
    return click.option("--trust-pickle", is_flag=True,
                        help="Allow checkpoints that pickle whole models (unpickling runs code from the file).")(f)


def seed_option(help: str = "Random seed.") -> Callable[[F], F]:
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


def data_option(help: str, required: bool = False) -> Callable[[F], F]:
    return click.option("--data", type=click.Path(path_type=Path), required=required, default=None, help=help)


def out_option(help: str, default: Any = None, required: bool = False) -> Callable[[F], F]:
    return click.option("--out", type=click.Path(path_type=Path), default=default, show_default=default is not None,
                        required=required, help=help)


def backend_options(f: F) -> F:
    """--backend, --providers, --device: how to open a model."""
    from rockedge.runtime.backends.loader import BACKENDS

    return _stack(
        click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                     help="Inference backend; auto picks by file type (.pt torch, .onnx ONNX Runtime, .plan TensorRT)."),
        click.option("--providers", default=None,
                     help="ONNX Runtime execution providers in order, comma-separated (cpu, cuda, trt or full names)."),
        click.option("--device", default=None,
                     help="PyTorch device for checkpoints: cpu, cuda or cuda:N [default: cpu]; the GPU of a TensorRT "
                          "plan: N or cuda:N [default: 0]."),
        trust_plan_code_option,
    )(f)


def trust_plan_code_option(f: F) -> F:
    return click.option("--trust-plan-code", is_flag=True,
                        help="Allow a version-compatible TensorRT plan built elsewhere to run the TensorRT runtime it "
                             "embeds (host code from the file; plans built on this machine need no flag).")(f)


def spec_options(f: F) -> F:
    """--classes, --palette, --mean, --std, --input-format, --input-name, --output-name."""
    from rockedge.spec import INPUT_FORMATS

    return _stack(
        click.option("--classes", type=NamesType(), default=None,
                     help="Class names, comma-separated or a labels file (one per line). Required for a model without "
                          "a rockedge spec; otherwise must match the model's."),
        click.option("--palette", type=PaletteType(), default=None,
                     help="Class colours: '0,0,0;250,50,83', '#000000,#fa3253' or a file of 'R G B' lines."),
        click.option("--mean", type=TripleType(), default=None,
                     help="Normalisation mean, RGB in 0-1, for a model without a spec [default: ImageNet's]."),
        click.option("--std", type=TripleType(), default=None,
                     help="Normalisation std, RGB, for a model without a spec [default: ImageNet's]."),
        click.option("--input-format", type=click.Choice(INPUT_FORMATS), default=None,
                     help="For a model without a spec: float (NCHW RGB, normalised) or raw (uint8 NHWC BGR) "
                          "[default: float]."),
        click.option("--input-name", default=None, help="The input tensor, when a model has several."),
        click.option("--output-name", default=None, help="The output tensor, when more than one could be the logits."),
    )(f)


def budget_options(f: F) -> F:
    """--budget preset and its overrides, with the frames to compare on."""
    return _stack(
        click.option("--budget", type=click.Choice(PRECISIONS), default=None,
                     help="Parity preset: fp32 >= 99.99 % mask agreement, fp16 >= 99.9 %, int8 >= 98 % "
                          "[default: the model's precision]."),
        click.option("--min-agreement", type=float, default=None, help="Override: minimum mask agreement (0-1)."),
        click.option("--min-boundary", type=float, default=None,
                     help="Override: minimum agreement within 2 px of class boundaries (0-1)."),
        click.option("--min-iou", type=float, default=None, help="Override: minimum per-class IoU between masks (0-1)."),
        click.option("--max-abs-diff", type=float, default=None,
                     help="Override: maximum logit difference, in units of max(1, largest |reference logit|)."),
        click.option("--tie-margin", type=float, default=None,
                     help="Pixels whose reference top-2 logits are closer than this (same units as --max-abs-diff) "
                          "are ties, not disagreements [default: per precision: fp32 1e-4; fp16 and int8 two steps of "
                          "the format's resolution, 1.95e-3 and 1.57e-2]."),
        click.option("--n", "n", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Number of frames to compare."),
    )(f)


# -- building library objects from options ----------------------------------------------------------


def spec_flags(kw: dict[str, Any], imgsz: tuple[int, int] | None = None) -> Any:
    """Pop the spec options out of a command's kwargs into :class:`SpecFlags`."""
    from rockedge.runtime.modelio import SpecFlags

    return SpecFlags(classes=kw.pop("classes", None), palette=kw.pop("palette", None), mean=kw.pop("mean", None),
                     std=kw.pop("std", None), input_format=kw.pop("input_format", None),
                     input_name=kw.pop("input_name", None), output_name=kw.pop("output_name", None), imgsz=imgsz)


def backend_opts(kw: dict[str, Any], *, trust_pickle: bool = False, flags: Any = None) -> Any:
    """Pop --backend/--providers/--device into :class:`BackendOptions`."""
    from rockedge.runtime.backends.loader import BackendOptions, parse_providers
    from rockedge.runtime.modelio import NO_FLAGS

    return BackendOptions(backend=kw.pop("backend", "auto"), providers=parse_providers(kw.pop("providers", None)),
                          device=kw.pop("device", None), trust_pickle=trust_pickle, spec_flags=flags or NO_FLAGS,
                          trust_plan_code=bool(kw.pop("trust_plan_code", False)))


def budget_args(kw: dict[str, Any]) -> tuple[str | None, dict[str, float | None]]:
    """Pop the budget options: (the --budget preset or None, the overrides for ParityBudget.for_precision)."""
    overrides = {"min_agreement": kw.pop("min_agreement", None), "min_boundary_agreement": kw.pop("min_boundary", None),
                 "min_iou": kw.pop("min_iou", None), "max_abs_diff": kw.pop("max_abs_diff", None),
                 "tie_margin": kw.pop("tie_margin", None)}
    return kw.pop("budget", None), overrides


def emit_report(table: str, report: Any, json_path: Path | None, *, default_path: Path | None = None) -> None:
    """Print ``table``; write ``report`` as JSON to ``json_path`` (or ``default_path``); ``-`` prints the JSON
    to stdout and moves the table to stderr."""
    from rockedge.atomic import to_json, write_json

    if stdout_is_json(json_path):
        click.echo(table, err=True)
        click.echo(to_json(report))
        return
    click.echo(table)
    target = json_path or default_path
    if target is not None:
        write_json(target, report)
        click.echo(f"report: {target}")


def stdout_is_json(json_path: Path | None) -> bool:
    """``--json -``: stdout carries the JSON report and nothing else; everything said goes to stderr."""
    return json_path is not None and str(json_path) == "-"


def given_options() -> frozenset[str]:
    """The names of the options the user set on the command line running now (not defaults)."""
    ctx = click.get_current_context()
    return frozenset(name for name in ctx.params
                     if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT))
