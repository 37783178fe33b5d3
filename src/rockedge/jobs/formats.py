"""The export formats as one table: what each writes, where it runs, what it needs, and the options it uses.

As ultralytics' ``export_formats()`` + ``validate_args``: ``rockedge export`` refuses an option the chosen format
(and the model it starts from) does not use, naming it, instead of silently ignoring it. Every suffix comes from
:data:`rockedge.runtime.modelfile.FILE_KINDS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rockedge.errors import RockedgeError
from rockedge.runtime.modelfile import ENGINE_SUFFIXES

# Options of the ONNX export itself: they apply whenever MODEL is a checkpoint (every format starts with it).
FROM_CHECKPOINT = frozenset({"imgsz", "batch", "dynamic", "opset", "simplify", "input_format", "output_format",
                             "classes", "trust_pickle"})
# The accuracy and parity budget of any step, and where its frames come from.
CHECKED = frozenset({"data", "n", "seed", "budget", "min_agreement", "min_boundary", "min_iou", "max_abs_diff",
                     "tie_margin"})
INT8_ONNX = frozenset({"calib_data", "calib_n", "calib_method", "max_drop", "max_fp32", "target"})
ENGINE = frozenset({"workspace", "timing_cache", "calib_cache", "dla_core", "version_compatible",
                    "hardware_compatible", "min_shape", "opt_shape", "max_shape", "strongly_typed",
                    "optimization_level", "calib_data", "calib_n", "max_drop", "imgsz", "batch"})
# Always accepted: what to export, where, how much to say.
ALWAYS = frozenset({"model_arg", "model_opt", "fmt", "out", "half", "int8", "json_path", "quiet"})


@dataclass(frozen=True)
class ExportFormat:
    name: str
    artifact: str  # what it writes
    suffixes: tuple[str, ...]  # of --out; () for a folder
    where: str  # workstation | device | either
    needs: tuple[str, ...]  # what must be installed
    options: frozenset[str]  # beyond ALWAYS and FROM_CHECKPOINT

    def accepts(self, option: str, *, from_checkpoint: bool) -> bool:
        return option in ALWAYS or option in self.options or (from_checkpoint and option in FROM_CHECKPOINT)


EXPORT_FORMATS = (
    ExportFormat("onnx", "an ONNX model (FP32, or FP16/INT8 with --half/--int8) and its parity report", (".onnx",),
                 "workstation", ("onnx", "onnxsim", "onnxruntime", "torch for a checkpoint"), CHECKED | INT8_ONNX),
    ExportFormat("engine", "a TensorRT plan, its manifest and its parity report", ENGINE_SUFFIXES, "device",
                 ("tensorrt", "cuda-python", "an NVIDIA GPU"), CHECKED | ENGINE),
    ExportFormat("triton", "a Triton model repository folder", (), "either", ("onnxruntime for the checks",),
                 CHECKED | INT8_ONNX | {"max_batch", "instances"}),
    ExportFormat("deepstream", "an nvinfer config, labels and the model reshaped for nvinfer", (), "workstation",
                 ("onnx", "onnxruntime"), CHECKED | (INT8_ONNX - {"target"}) | {"max_batch"}),
)
FORMAT_NAMES = tuple(f.name for f in EXPORT_FORMATS)


def export_format(name: str) -> ExportFormat:
    for f in EXPORT_FORMATS:
        if f.name == name:
            return f
    raise RockedgeError(f"--format must be one of {', '.join(FORMAT_NAMES)}, got {name!r}")


def option_flag(name: str) -> str:
    return {"fmt": "--format", "json_path": "--json", "n": "--n", "min_boundary": "--min-boundary"}.get(
        name, "--" + name.replace("_", "-"))


def validate_options(fmt: str, given: Iterable[str], *, from_checkpoint: bool) -> None:
    """Refuse options ``fmt`` does not use (``given``: the names of options the user set), naming them."""
    f = export_format(fmt)
    unused = sorted(o for o in given if not f.accepts(o, from_checkpoint=from_checkpoint))
    if not unused:
        return
    export_only = [o for o in unused if o in FROM_CHECKPOINT and o not in f.options]
    if export_only and len(export_only) == len(unused):
        flags = ", ".join(option_flag(o) for o in export_only)
        raise RockedgeError(f"{flags}: options of the ONNX export, used only when MODEL is a checkpoint (.pt); MODEL "
                            "is already exported: drop them, or export again from the checkpoint")
    other = [o for o in unused if o not in export_only]
    flags = ", ".join(option_flag(o) for o in other)
    users = sorted({g.name for g in EXPORT_FORMATS for o in other if g.accepts(o, from_checkpoint=True)})
    where = f" (only --format {' / '.join(users)} uses {'it' if len(other) == 1 else 'them'})" if users else ""
    raise RockedgeError(f"{flags} {'is' if len(other) == 1 else 'are'} not used by --format {fmt}{where}: drop "
                        f"{'it' if len(other) == 1 else 'them'}")
