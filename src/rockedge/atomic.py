"""Atomic writes: outputs appear complete at their final path or not at all, whatever the machine does.

Every output rockedge writes goes through one of these helpers: :func:`temp_beside` (a temporary name next to the
target, same suffix, for writers that open the file themselves), :func:`atomic_path` (the same as a context
manager that renames on success and removes on failure), :func:`staging_dir` (a whole folder) and
:func:`commit_all` (several files that must land together or not at all).

What a killed process leaves: temporary names are ``.<stem>.<pid>-<random>.tmp<suffix>`` (short and ASCII: a
255-byte file name still gets a temporary one, and OpenCV never sees a non-ASCII name of ours) beside the target.
The next rockedge run that writes the same target removes those of processes that are no longer alive
(:func:`clean_stale`), and a folder swap interrupted between its two halves is undone (:func:`recover_dir`). A folder replaces another in one step where Linux allows it (``renameat2`` with
``RENAME_EXCHANGE``), so there is no moment without a folder at the target.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rockedge.errors import RockedgeError
from rockedge.redact import redact

NAME_MAX = 255
_TEMP_RE = re.compile(r"^\.(?P<stem>.*)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>tmp|old|new)(?P<suffix>.*)$")


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` (a directory) or fail with one line if that is impossible."""
    if path.exists() and not path.is_dir():
        raise RockedgeError(f"cannot write into {path}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RockedgeError(f"cannot create output directory {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise RockedgeError(f"output directory {path} is not writable")


def check_names(paths: "list[Path]") -> None:
    """One line, before any work, when a name an output would get is longer than the file system allows (the
    summary and frame-log names add to ``--out``'s)."""
    for p in paths:
        size = len(os.fsencode(p.name))
        if size > NAME_MAX:
            raise RockedgeError(f"the output name {p.name[:40]}... would be {size} bytes, more than the {NAME_MAX} a "
                                "file name may have; shorten --out")


def _parent(target: Path) -> Path:
    return target.parent if str(target.parent) else Path(".")


def _tag(stem: str, budget: int) -> str:
    """``stem`` as a short ASCII tag: itself when short and ASCII, else a readable head plus a hash."""
    if len(stem) <= budget and stem.isascii():
        return stem
    head = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[: max(0, budget - 9)]
    return f"{head}-{hashlib.sha1(os.fsencode(stem)).hexdigest()[:8]}"


def _base(target: Path, kind: str, suffix: str) -> str:
    """What a temporary name is made from: a file's stem (its suffix ends the name), a folder's whole name (the
    ``.new``/``.old`` halves of a swap have no suffix: ``ds.v1``'s must not be ``ds.v2``'s)."""
    return target.name if kind in ("new", "old") and not suffix else target.stem


def temp_name(target: Path, kind: str = "tmp", suffix: str | None = None) -> str:
    """``.<stem>.<pid>-<random>.<kind><suffix>`` for ``target``, at most :data:`NAME_MAX` bytes."""
    suffix = target.suffix if suffix is None else suffix
    fixed = f"..{os.getpid()}-00000000.{kind}{suffix}"
    tag = _tag(_base(target, kind, suffix), NAME_MAX - len(os.fsencode(fixed)) - 1)
    return f".{tag}.{os.getpid()}-{secrets.token_hex(4)}.{kind}{suffix}"


def _owned(name: str, target: Path) -> tuple[str, int] | None:
    """(kind, pid) when ``name`` is a temporary name rockedge made for ``target``, else None."""
    m = _TEMP_RE.match(name)
    if not m:
        return None
    kind = m.group("kind")
    budget = NAME_MAX - len(f"..{m.group('pid')}-00000000.{kind}{m.group('suffix')}".encode()) - 1
    if m.group("stem") != _tag(_base(target, kind, m.group("suffix")), budget):
        return None
    if kind == "tmp" and not m.group("suffix").endswith(target.suffix):
        return None
    if kind != "tmp" and m.group("suffix") not in ("", target.suffix):
        return None  # a file moved aside keeps its suffix (folder halves have none): out.rocks.png's is not .csv's
    return kind, int(m.group("pid"))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(target: Path) -> list[Path]:
    """Remove the temporary files that killed rockedge processes left for ``target`` (a previous file that an
    interrupted :func:`commit_all` had moved aside is put back when the target is missing); returns them. Halves
    of an interrupted folder swap are :func:`recover_dir`'s."""
    removed: list[Path] = []
    try:
        entries = list(_parent(target).iterdir())
    except OSError:
        return removed
    for p in entries:
        owned = _owned(p.name, target)
        if owned is None or _alive(owned[1]) or (owned[0] != "tmp" and p.is_dir()):
            continue
        if owned[0] == "old" and not target.exists():
            with contextlib.suppress(OSError):
                os.replace(p, target)  # commit_all was killed after moving the good file aside: put it back
                removed.append(p)
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def temp_beside(target: str | os.PathLike[str], suffix: str | None = None) -> Path:
    """Create an empty temporary file next to ``target`` (hidden, same suffix: writers such as OpenCV
    pick the format from it) with the mode a plain ``open()`` would give it."""
    target = Path(target)
    ensure_writable_dir(_parent(target))
    if target.is_dir():
        raise RockedgeError(f"cannot write {target}: it is a folder")
    clean_stale(target)
    tmp = _parent(target) / temp_name(target, "tmp", suffix)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    apply_default_mode(tmp)
    return tmp


@contextlib.contextmanager
def naming(target: str | os.PathLike[str]) -> Iterator[None]:
    """Give an OSError the name of the output ``target``, so the one-line error says which output a full disk or a
    file-size limit stopped: an error of a write to an open file (which carries no file name), or one that names
    rockedge's hidden temporary for ``target`` (``.m.123-ab12cd34.tmp.onnx``, or a file inside a staging folder
    ``.ds.123-ab12cd34.new/train/...``), which the user never asked for."""
    target = Path(target)
    try:
        yield
    except OSError as e:
        if e.errno is None:
            raise
        name = public_name(e.filename, target)
        if name is None:
            raise
        raise OSError(e.errno, e.strerror, name) from e


def public_name(filename: Any, target: Path) -> str | None:
    """What the user calls ``filename``: ``target`` for no name or for one of ``target``'s temporaries, the same
    file under ``target`` for one inside a staging folder of it; None when it is another file (say it as it is)."""
    if filename is None:
        return str(target)
    if not isinstance(filename, (str, bytes, os.PathLike)):
        return None
    parts = Path(os.fsdecode(filename)).parts
    for i, part in enumerate(parts):
        if _owned(part, target) is not None:
            return str(Path(target, *parts[i + 1:]))
    return None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    tmp_path = temp_beside(target, suffix)
    try:
        with naming(target):
            yield tmp_path
        if tmp_path.exists():
            apply_default_mode(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def commit_all(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Move every ``(temporary, target)`` into place, or none: a failure half-way puts back the targets already
    replaced and removes the temporaries."""
    backups: list[tuple[Path, Path | None]] = []  # (target, its previous file moved aside, or None)
    try:
        for tmp, target in pairs:
            if target.is_dir():
                raise RockedgeError(f"cannot write {target}: it is a folder")
            old = None
            if target.exists():
                old = _parent(target) / temp_name(target, "old")
                os.replace(target, old)
            backups.append((target, old))
            os.replace(tmp, target)
    except BaseException:
        for target, old in reversed(backups):
            with contextlib.suppress(OSError):
                if old is not None:
                    os.replace(old, target)
                elif target.exists():
                    target.unlink()
        for tmp, _ in pairs:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    for _, old in backups:
        if old is not None:
            with contextlib.suppress(OSError):
                old.unlink()


# -- folders -------------------------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    res = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def recover_dir(out: Path) -> list[Path]:
    """Undo what a killed folder swap left: with no folder at ``out``, the previous folder a dead process had
    moved aside goes back to ``out``; every other half is removed. A new half is never promoted: nothing says its
    writer finished it. Returns what was touched."""
    halves: list[tuple[str, Path]] = []
    try:
        entries = list(_parent(out).iterdir())
    except OSError:
        return []
    for p in entries:
        owned = _owned(p.name, out)
        if owned is not None and owned[0] in ("new", "old") and not _alive(owned[1]) and p.is_dir():
            halves.append((owned[0], p))
    touched = [p for _, p in halves]
    if not out.exists():
        found = [p for k, p in halves if k == "old"]
        if found:
            os.replace(found[0], out)
            halves = [(k, p) for k, p in halves if p != found[0]]
    for _, p in halves:
        shutil.rmtree(p, ignore_errors=True)
    return touched


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out``, put at ``out`` when the block succeeds (an existing ``out`` is
    replaced only with ``overwrite``). The replacement is one exchange of the two folders where Linux can, else a
    move aside and a rename; a process killed in between is undone by the next run (:func:`recover_dir`)."""
    out = Path(out)
    ensure_writable_dir(_parent(out))
    recover_dir(out)
    clean_stale(out)
    tmp = _parent(out) / temp_name(out, "new", "")
    tmp.mkdir()
    old: Path | None = None
    try:
        with naming(out):  # a write that fails inside the staging folder is said as the output's file
            yield tmp
        for p in [tmp, *tmp.rglob("*")]:
            apply_default_mode(p)
        if out.exists():
            if not out.is_dir():
                raise RockedgeError(f"cannot replace {out}: it is a file, not a folder")
            if any(out.iterdir()) and not overwrite:
                raise RockedgeError(f"{out} appeared while writing; not replacing it")
            if _exchange(tmp, out):
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
                return
            old = _parent(out) / temp_name(out, "old", "")
            os.replace(out, old)
            os.replace(tmp, out)
            done, old = old, None
            shutil.rmtree(done, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            with contextlib.suppress(OSError):
                os.replace(old, out)  # failed between the two renames: the previous folder goes back now
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def apply_default_mode(path: Path) -> None:
    """Give a file or directory made by mkstemp/mkdtemp (0600/0700) the mode a plain open()/mkdir() would have."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_json(target: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(target, to_json(obj) + "\n")


def to_json(obj: Any) -> str:
    """Reports as JSON: numpy scalars/arrays, paths and dataclass-like objects become plain values. NaN/Inf are
    written as null (JSON has no such numbers, and a report must stay readable by every JSON parser). A camera URL's
    password is hidden in every string (:func:`rockedge.redact.redact`): no report or manifest carries one."""
    return json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)


def _finite(o: Any) -> Any:
    if isinstance(o, float) and (o != o or o in (float("inf"), float("-inf"))):
        return None
    if isinstance(o, str):
        return redact(o)
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o: Any) -> Any:
    # numpy scalars and paths appear in reports; keep the JSON plain.
    if hasattr(o, "item"):
        return _finite(o.item())
    if hasattr(o, "tolist"):
        return _finite(o.tolist())
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "value") and isinstance(o.value, (str, int)):  # enums such as Precision
        return o.value
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
