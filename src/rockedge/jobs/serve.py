"""``rockedge export MODEL --format triton|deepstream``: write the serving layout for a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rockedge.errors import RockedgeError
from rockedge.serving.deepstream import DS_CHECK_FRAMES, write_deepstream
from rockedge.serving.model import SERVING_FORMATS, model_name, read_source
from rockedge.serving.triton import write_triton


def write_serving(fmt: str, model: str | Path, out: str | Path | None, *, max_batch: int = 8, instances: int = 1,
                  n: int = DS_CHECK_FRAMES, seed: int = 0) -> Any:
    """Write the ``fmt`` (triton | deepstream) layout for ``model`` (a rockedge ONNX, or for Triton a plan with its
    manifest) under ``out``; returns a :class:`rockedge.jobs.export.Step`."""
    model = Path(model)
    if fmt not in SERVING_FORMATS:
        raise RockedgeError(f"serving format must be one of {', '.join(SERVING_FORMATS)}, got {fmt!r}")
    if max_batch < 0 or instances < 1:
        raise RockedgeError(f"--max-batch must be >= 0 and --instances >= 1, got {max_batch} and {instances}")
    src = read_source(model)
    if fmt == "triton":
        return write_triton(src, Path(out) if out else model.with_name(f"{model_name(model)}.triton"),
                            max_batch=max_batch, instances=instances)
    return write_deepstream(src, Path(out) if out else model.with_name(f"{model_name(model)}.deepstream"),
                            max_batch=max_batch, n=n, seed=seed)
