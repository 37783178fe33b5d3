"""Work in a child process of its own: ``python -m MODULE REQUEST.json``, answered in ``REQUEST.result.json``.

The engine build runs in a child so a build the kernel kills for memory (SIGKILL: no Python exception) is
noticed and explained; each benchmark row runs in a child so its peak memory and its imports are its own. Both
speak this one protocol: the parent writes a JSON request into a temporary folder and runs the child; the child
(:func:`child_main`) answers ``{"ok": true, ...}``, or ``{"ok": false, "error": "one line"}`` for a failure it can
explain (``"unavailable": true`` when a library or device is missing), or ``{"ok": false, "error": ...,
"traceback": ...}`` for one it cannot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rockedge.errors import BackendUnavailable, RockedgeError


def result_path(request: Path) -> Path:
    return request.with_name(request.stem + ".result.json")


@dataclass
class ChildResult:
    """How a child ended: its exit status (negative: the signal that killed it), its answer, what it printed."""

    returncode: int
    result: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.result.get("ok"))

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None

    def error(self, what: str) -> str:
        """The child's own error line, else the last line it printed, else how it exited."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        return str(self.result.get("error") or (lines[-1] if lines else f"{what} exited with status {self.returncode}"))


def run_child(module: str, request: dict[str, Any], *, what: str, command: list[str] | None = None,
              timeout: float | None = None) -> ChildResult:
    """Run ``python -m module`` (or ``command``) on ``request``; one line when it outlives ``timeout`` seconds."""
    with tempfile.TemporaryDirectory(prefix="rockedge-child-") as tmp:
        req = Path(tmp) / "request.json"
        req.write_text(json.dumps(request))
        cmd = (command or [sys.executable, "-m", module]) + [str(req)]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RockedgeError(f"{what} did not finish in {timeout:.0f} s and was stopped") from None
        out = result_path(req)
        result = json.loads(out.read_text()) if out.is_file() else {}
    return ChildResult(proc.returncode, result if isinstance(result, dict) else {}, proc.stderr or "")


def child_main(argv: list[str], handler: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """The child side: read the request named by ``argv[1]``, answer it with ``handler``, write the result."""
    request_file = Path(argv[1])
    request = json.loads(request_file.read_text())
    try:
        result, code = {"ok": True, **handler(request)}, 0
    except BackendUnavailable as e:
        result, code = {"ok": False, "error": str(e), "unavailable": True}, 1
    except RockedgeError as e:
        result, code = {"ok": False, "error": str(e)}, 1
    except Exception as e:  # a library failure with no rockedge message: keep its last line and the trace
        result, code = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}, 1
    result_path(request_file).write_text(json.dumps(result, default=str))
    return code
