"""Atomic writes: outputs appear complete at their final path or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rockedge.errors import RockedgeError


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` (a directory) or fail with one line if that is impossible."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RockedgeError(f"cannot create output directory {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise RockedgeError(f"output directory {path} is not writable")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    The temporary name keeps the target's suffix (writers such as OpenCV pick the format from it).
    """
    target = Path(target)
    ensure_writable_dir(target.parent if str(target.parent) else Path("."))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=suffix if suffix is not None else target.suffix, dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            apply_default_mode(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def apply_default_mode(path: Path) -> None:
    """Give a file or directory made by mkstemp/mkdtemp (0600/0700) the mode a plain open()/mkdir() would have."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json(target: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    # numpy scalars and paths appear in reports; keep the JSON plain.
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
