#!/usr/bin/env python3
"""The TensorRT type gate: pyright over every module that touches tensorrt or cuda-python,
checked against the TensorRT 10 stubs, so a call TensorRT 10 removed (execute_async_v2,
get_binding_shape, max_workspace_size, build_engine, ...) fails CI on a machine with no GPU.

    python scripts/check_trt_types.py            # every such module under src/
    python scripts/check_trt_types.py FILE...    # just these files

The stubs come from the tensorrt-stubs package (pip install --no-deps tensorrt-stubs; installed
into .typings/.pkgs when absent). Its 'tensorrt' and 'tensorrt_bindings' stub folders are copied
to .typings/ (git-ignored), which pyrightconfig.json names as stubPath: pyright prefers stubPath
to site-packages, so a real TensorRT 8.x install on a dev box cannot weaken the check.
Exit status: 0 clean, 1 type errors, 2 the gate itself could not run.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TYPINGS = ROOT / ".typings"
STUB_DIRS = ("tensorrt", "tensorrt_bindings")
TOUCHES = re.compile(
    r"^\s*(import\s+tensorrt|from\s+tensorrt|import\s+cuda|from\s+cuda\b|.*[\"']cuda\.(bindings|cudart)"
    r"|.*\bimport_tensorrt\(\))", re.M
)


def modules_touching_trt(root: Path = ROOT / "src") -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if TOUCHES.search(p.read_text(encoding="utf-8", errors="replace")))


def _stub_root() -> tuple[Path, str]:
    """(directory holding tensorrt/__init__.pyi, stubs version), installing the stubs if needed."""
    try:
        dist = md.distribution("tensorrt-stubs")
        for f in dist.files or []:
            if str(f).replace("\\", "/") == "tensorrt/__init__.pyi":
                return Path(str(dist.locate_file(f))).parents[1], dist.version
    except md.PackageNotFoundError:
        pass
    target = TYPINGS / ".pkgs"
    have = [d.version for d in md.distributions(path=[str(target)]) if d.metadata["Name"] == "tensorrt-stubs"]
    if have and (target / "tensorrt" / "__init__.pyi").is_file():
        return target, have[0]
    print(f"tensorrt-stubs not installed; installing into {target}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    "tensorrt-stubs>=10,<11"], check=True)
    dists = list(md.distributions(path=[str(target)]))
    version = next((d.version for d in dists if d.metadata["Name"] == "tensorrt-stubs"), "?")
    return target, version


def prepare_stubs() -> str:
    src, version = _stub_root()
    if not version.startswith("10."):
        raise SystemExit(f"error: tensorrt-stubs {version} found; the gate checks against TensorRT 10 stubs "
                         "(pip install --no-deps 'tensorrt-stubs>=10,<11')")
    TYPINGS.mkdir(exist_ok=True)
    for name in STUB_DIRS:
        if not (src / name).is_dir():
            raise SystemExit(f"error: tensorrt-stubs {version} has no {name}/ folder at {src}")
        shutil.rmtree(TYPINGS / name, ignore_errors=True)
        shutil.copytree(src / name, TYPINGS / name)
    return version


def pyright_cmd() -> list[str]:
    exe = shutil.which("pyright", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "pyright"]


def main(argv: list[str]) -> int:
    files = [Path(a).resolve() for a in argv] or modules_touching_trt()
    if not files:
        print("no module touches tensorrt or cuda-python; nothing to check")
        return 0
    try:
        version = prepare_stubs()
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"error: cannot prepare the TensorRT stubs: {e}", file=sys.stderr)
        return 2
    print(f"pyright with tensorrt-stubs {version} over: " + ", ".join(_rel(f) for f in files))
    try:
        proc = subprocess.run([*pyright_cmd(), "-p", str(ROOT / "pyrightconfig.json"), *map(str, files)],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"error: pyright could not run: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode not in (0, 1) or ("error" not in proc.stdout and proc.returncode != 0):
        return 2
    return 1 if proc.returncode else 0


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
