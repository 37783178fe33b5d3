"""The CLI's error boundary: what the machine does to a command becomes one line and an exit status.

A user's mistakes are :class:`RockedgeError` (one line, their exit code). What the machine does is turned into the
same kind of line here, once, for every command: a full disk, a path that is a folder or too long, a read-only
file system, a killed pipe, no memory, a missing extra, SIGTERM or SIGHUP (treated like Ctrl-C, so a run keeps a
playable output), a closed stdout or stderr. Anything else is a bug in rockedge and keeps its traceback;
``rockedge --debug`` shows the traceback of everything.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Any

from rockedge.deps import EXTRAS, HINTS, load_failure
from rockedge.errors import Interrupted, RockedgeError
from rockedge.redact import redact

# errno -> what it means, in the words of the message
CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EISDIR: "it is a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "it exists already",
    errno.EFBIG: "the file is larger than this system allows (ulimit -f?)",
    errno.EMFILE: "too many open files",
    errno.ENOMEM: "out of memory",
    errno.EIO: "input/output error (a failing disk or a removed drive?)",
    errno.EXDEV: "cannot move across file systems",
}


def os_error_line(e: OSError) -> str:
    """``cannot write PATH: no space left on the device``, naming the path and the cause."""
    cause = CAUSES.get(e.errno or 0) or (e.strerror or str(e)).lower()
    path = e.filename if e.filename is not None else None
    if e.filename2 is not None:
        path = f"{e.filename} -> {e.filename2}"
    if path is None:
        return cause
    return f"{path}: {cause}"


def import_error_line(e: ImportError) -> str:
    name = (e.name or "").split(".")[0]
    if not isinstance(e, ModuleNotFoundError):  # installed, but it does not load: pip install is not the fix
        top = _importing(e) or name or "a module"
        return load_failure(e, top)
    if name in EXTRAS:
        hint = f" ({HINTS[name]})" if name in HINTS else ""
        return (f"this command needs {name}, which is not installed: pip install 'rockedge[{EXTRAS[name]}]'{hint} "
                "(a runtime-only install runs run/eval/verify/benchmark/doctor/spec)")
    return f"cannot import {e.name or 'a module'}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"


def _importing(e: BaseException) -> str | None:
    """The top-level package whose import raised ``e`` (torch for torch/_C's failure), from the traceback."""
    tb, found = e.__traceback__, None
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        top = name.split(".")[0]
        if top and top not in ("rockedge", "importlib", "__main__", "click") and not top.startswith("_"):
            found = found or top
        tb = tb.tb_next
    return found


def memory_line(e: BaseException) -> str:
    return ("out of memory" + (f" ({str(e).splitlines()[0][:120]})" if str(e) else "")
            + ": lower --batch or --imgsz, close other programs, or add swap")


def is_out_of_memory(e: BaseException) -> bool:
    """torch's and ONNX Runtime's allocation failures arrive as RuntimeError with these words."""
    text = str(e).lower()
    return isinstance(e, RuntimeError) and any(w in text for w in ("can't allocate memory", "out of memory",
                                                                  "bad_alloc", "failed to allocate memory"))


def translate(e: BaseException) -> tuple[str, int] | None:
    """(one line, exit status) for what the boundary knows, None for a bug (keep the traceback)."""
    if isinstance(e, RockedgeError):
        return (f"interrupted: {e}" if isinstance(e, Interrupted) else f"error: {e}"), e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", Interrupted.exit_code
    if isinstance(e, BrokenPipeError):
        return "", 141  # the reader went away (| head): nothing to say, the shell's SIGPIPE status
    if isinstance(e, MemoryError) or is_out_of_memory(e):
        return f"error: {memory_line(e)}", 1
    if isinstance(e, OSError):
        if e.filename is None and _writing_stdout(e):  # > /dev/full: name the output, not a path
            flush_stdout()
            return f"error: cannot write the output (stdout): {os_error_line(e)}", 1
        return f"error: {os_error_line(e)}", 1
    if isinstance(e, ImportError):
        return f"error: {import_error_line(e)}", 1
    return None


def _writing_stdout(e: BaseException) -> bool:
    """Whether the failing call was a write to stdout (click.echo's ``file``, a stream's ``self``)."""
    out = sys.stdout
    tb = e.__traceback__
    while tb is not None and out is not None:
        loc = tb.tb_frame.f_locals
        if loc.get("file") is out or loc.get("self") is out:
            return True
        tb = tb.tb_next
    return False


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def guard_std_streams() -> None:
    """Give closed standard streams (``2>&-``, a daemon) a /dev/null, before anything opens a file.

    A closed fd 0-2 is handed to the next file opened, a video or a model, and whatever then writes to "stderr"
    (OpenCV, FFmpeg, a warning) would write into that file. Python also leaves ``sys.stderr`` None then, and every
    ``print(file=sys.stderr)`` would land on stdout instead.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
            except OSError:
                continue
        if getattr(sys, name) is None:
            try:
                setattr(sys, name, open(fd, mode, closefd=False))
            except OSError:
                pass


def install_signal_handlers() -> None:
    """SIGTERM (``timeout``, ``docker stop``, systemd) and SIGHUP (a closed terminal) stop a command like Ctrl-C."""
    for sig in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, sig):
            try:
                signal.signal(getattr(signal, sig), _raise_interrupt)
            except (ValueError, OSError):  # not the main thread, or not allowed here
                pass


def say(line: str) -> None:
    """Write the one line to stderr; with stderr closed there is nowhere to say it (the exit status still tells).
    A camera URL's password is hidden here whatever raised the line (the last line of defence)."""
    if not line:
        return
    line = redact(line)
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def flush_stdout() -> str | None:
    """Flush stdout now, so a full or closed one (``> /dev/full``) is an error line instead of Python's shutdown
    chatter; then make further writes harmless."""
    out = sys.stdout
    if out is None:
        return None
    try:
        out.flush()
        return None
    except (OSError, ValueError) as e:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError):
            pass
        if isinstance(e, BrokenPipeError):
            return ""
        return f"error: cannot write the output: {os_error_line(e) if isinstance(e, OSError) else e}"
