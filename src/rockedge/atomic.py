"""Atomic writes: outputs appear complete at their final path or not at all.

Every output rockedge writes goes through one of three helpers: :func:`temp_beside` (a temporary
name next to the target, same suffix, for writers that open the file themselves), :func:`atomic_path`
(the same as a context manager that renames on success and removes on failure), and
:func:`staging_dir` (a whole folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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


def _parent(target: Path) -> Path:
    return target.parent if str(target.parent) else Path(".")


def temp_beside(target: str | os.PathLike[str], suffix: str | None = None) -> Path:
    """Create an empty temporary file next to ``target`` (hidden, same suffix: writers such as OpenCV
    pick the format from it) with the mode a plain ``open()`` would give it."""
    target = Path(target)
    ensure_writable_dir(_parent(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix if suffix is not None else target.suffix,
                               dir=_parent(target))
    os.close(fd)
    apply_default_mode(Path(tmp))
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    tmp_path = temp_beside(target, suffix)
    try:
        yield tmp_path
        if tmp_path.exists():
            apply_default_mode(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed onto it when the block succeeds (an existing ``out`` is
    replaced only with ``overwrite``)."""
    out = Path(out)
    ensure_writable_dir(_parent(out))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=_parent(out)))
    try:
        yield tmp
        old = None
        if out.exists():
            if any(out.iterdir()) and not overwrite:
                raise RockedgeError(f"{out} appeared while writing; not replacing it")
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, old)
        for p in [tmp, *tmp.rglob("*")]:
            apply_default_mode(p)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_json(target: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(target, to_json(obj) + "\n")


def to_json(obj: Any) -> str:
    """Reports as JSON: numpy scalars/arrays, paths and dataclass-like objects become plain values."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default)


def _json_default(o: Any) -> Any:
    # numpy scalars and paths appear in reports; keep the JSON plain.
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "value") and isinstance(o.value, (str, int)):  # enums such as Precision
        return o.value
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
