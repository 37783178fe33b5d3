"""Which TensorRT plans may run the host code they carry.

A version-compatible plan embeds TensorRT's lean runtime: host code that TensorRT runs only when the
application sets ``runtime.engine_host_code_allowed``, which NVIDIA says to do only for plans one trusts.
Anyone who hands a user a plan can hand them the JSON manifest beside it too, so the manifest's word is
not enough. rockedge lets such a plan run when

* the user says so (``--trust-plan-code``, or ``trust_plan_code=True`` in the Python API), or
* this machine built it: the engine build appends the plan's sha256 to a record in the user's own state
  folder (``$ROCKEDGE_STATE_DIR``, else ``$XDG_STATE_HOME/rockedge``, else ``~/.local/state/rockedge``),
  ``built-plans.txt``. The record lives outside the model folder, so copying a plan and its manifest onto
  another machine (or editing the manifest) cannot claim it; a plan whose bytes changed has another sha256.

Everything else is refused in one line before TensorRT sees the file. Plain Python, no TensorRT.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rockedge.atomic import write_text
from rockedge.digest import sha256_file
from rockedge.errors import RockedgeError

RECORD = "built-plans.txt"


def state_dir() -> Path:
    """The user's rockedge state folder (created on first write)."""
    explicit = os.environ.get("ROCKEDGE_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "rockedge"


def _record() -> Path:
    return state_dir() / RECORD


def built_here(sha256: str) -> bool:
    """Whether rockedge built the plan with this sha256 on this machine (for this user)."""
    try:
        lines = _record().read_text(encoding="ascii", errors="replace").split()
    except OSError:
        return False
    return sha256 in lines


def record_built(sha256: str) -> None:
    """Remember a plan this machine's engine build just produced. A failure to write it is not an error: the plan
    then needs --trust-plan-code like any other."""
    try:
        old = _record().read_text(encoding="ascii", errors="replace") if _record().is_file() else ""
        if sha256 not in old.split():
            write_text(_record(), old + ("" if not old or old.endswith("\n") else "\n") + sha256 + "\n")
    except (OSError, RockedgeError):
        pass


def host_code_allowed(plan: Path, manifest: Any, trusted: bool) -> bool:
    """Whether ``plan`` may run embedded host code; raises the one-line refusal for a version-compatible plan that
    neither the user nor this machine vouches for. Plans without host code need nothing."""
    if manifest is None or not getattr(manifest, "version_compatible", False):
        return False
    if trusted:
        return True
    if built_here(sha256_file(plan)):
        return True
    raise RockedgeError(
        f"{plan.name} is a version-compatible TensorRT plan: it carries TensorRT's lean runtime, host code that runs "
        "in this process, and it was not built on this machine; run it only if you trust where it came from, with "
        "--trust-plan-code (Python: trust_plan_code=True), or rebuild it here from its ONNX"
    )
