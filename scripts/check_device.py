#!/usr/bin/env python3
"""The device gate: the code that runs on a Jetson keeps to Python 3.8 and to the TensorRT API.

    python scripts/check_device.py            # every device-side module (rockedge.layers)
    python scripts/check_device.py FILE...    # just these files

Three checks over the device-side modules (every module the entry points in :mod:`rockedge.layers` import
with torch and onnx blocked, found by importing them in a child process; importing them must not load any of
``rockedge.layers.WORKSTATION_MODULES``, which is an error of its own):

1. vermin ``-t=3.8-``: no syntax, module or member newer than Python 3.8 (JetPack 5).
2. pyright with ``--pythonversion 3.8`` and the TensorRT 10 stubs (``tensorrt-stubs``, installed with
   ``--no-deps`` into .venv/trt-stubs by scripts/setup_env.sh; pyrightconfig.json names it as stubPath): type
   errors, typeshed's version gates (``dict | dict``,
   ``list[int]`` outside annotations), and every TensorRT call against the stubs, so a call TensorRT 10
   removed (execute_async_v2, get_binding_shape, max_workspace_size, build_engine) fails on a machine with
   no GPU. TensorRT 8.5/8.6 and 11 have no stubs; tests/data/tensorrt_api holds their name lists and
   tests/test_trt_api.py runs the code against each.
3. What neither tool sees: ``collections.abc`` generics subscripted outside annotations (``Callable[..., Any]``
   as a value raises TypeError on 3.8); methods that only exist from 3.9/3.10 on values whose type vermin cannot
   infer (``s.removeprefix``, ``p.is_relative_to``, ``n.bit_count``...; typeshed no longer keeps 3.8's version
   gates, so pyright does not flag them either); ``|`` with a dict display on either side.

Not caught: ``a | b`` between two dict variables (no type inference here). Keep that spelling out of device code.

Exit status: 0 clean, 1 violations, 2 the gate itself could not run (a tool missing).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = "3.8"

LIST_DEVICE_MODULES = """
import importlib, json, pkgutil, sys
from rockedge import layers
for name in layers.WORKSTATION_ONLY:
    sys.modules[name] = None
names = list(layers.DEVICE_MODULES)
for pkg in layers.DEVICE_PACKAGES:
    mod = importlib.import_module(pkg)
    names += [pkg] + [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")]
for name in names:
    importlib.import_module(name)
files = sorted({m.__file__ for n, m in list(sys.modules.items())
                if n.split(".")[0] == "rockedge" and getattr(m, "__file__", None)})
workstation = sorted(n for n in sys.modules if any(n == w or n.startswith(w + ".") for w in layers.WORKSTATION_MODULES))
print(json.dumps({"files": files, "workstation": workstation}))
"""


def device_modules() -> tuple[list[Path], list[str]]:
    """The source files of every device-side module (see the module docstring), and the workstation modules
    (``rockedge.layers.WORKSTATION_MODULES``) that importing them loaded: none, on a correct tree."""
    proc = subprocess.run([sys.executable, "-c", LIST_DEVICE_MODULES], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"error: the device modules do not import with torch/onnx blocked:\n{proc.stderr[-2000:]}")
    found = json.loads(proc.stdout)
    return [Path(f) for f in found["files"]], list(found["workstation"])


def device_files() -> list[Path]:
    files, workstation = device_modules()
    if workstation:
        raise SystemExit(f"error: the device side imports workstation modules: {', '.join(workstation)} (import them "
                         "in the function that runs the workstation step; see rockedge.layers)")
    return files


def _tool(name: str) -> list[str] | None:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    return [exe] if exe else None


def run_vermin(files: list[Path]) -> tuple[bool, str]:
    cmd = _tool("vermin")
    if cmd is None:
        raise FileNotFoundError("vermin is not installed (pip install vermin; it is in rockedge's dev extra)")
    proc = subprocess.run([*cmd, "--no-tips", "--violations", f"-t={TARGET}-", *map(str, files)],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode == 0, proc.stdout + proc.stderr


STUBS = ROOT / ".venv" / "trt-stubs"


def run_pyright(files: list[Path]) -> tuple[bool, str]:
    if not (STUBS / "tensorrt" / "__init__.pyi").is_file():
        raise FileNotFoundError(f"the TensorRT stubs are not in {STUBS} (bash scripts/setup_env.sh dev installs them)")
    cmd = _tool("pyright") or [sys.executable, "-m", "pyright"]
    proc = subprocess.run([*cmd, "--pythonversion", TARGET, "-p", str(ROOT / "pyrightconfig.json"), *map(str, files)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    if proc.returncode not in (0, 1) or ("error" not in proc.stdout and proc.returncode != 0):
        raise RuntimeError(f"pyright could not run: {(proc.stderr or proc.stdout)[-500:]}")
    return proc.returncode == 0, proc.stdout


class _RuntimeGenerics(ast.NodeVisitor):
    """``collections.abc`` names subscripted where Python evaluates them (not in annotations)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.found: list[tuple[int, str]] = []

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_arg(self, node: ast.arg) -> None:
        return None

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Subscript(self, node: ast.Subscript) -> None:
        target = node.value
        name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else ""
        if name in self.names:
            self.found.append((node.lineno, name))
        self.generic_visit(node)


# Methods (and their version) that Python 3.8 lacks, looked up by name on any value.
NEWER_METHODS = {"removeprefix": "3.9", "removesuffix": "3.9", "is_relative_to": "3.9", "with_stem": "3.9",
                 "readlink": "3.9", "hardlink_to": "3.10", "bit_count": "3.10", "randbytes": "3.9",
                 "to_thread": "3.9"}


# Keyword arguments added after 3.8 to functions device code calls (ThreadPoolExecutor.shutdown, zip, dataclass).
NEWER_KEYWORDS = {"cancel_futures": "3.9", "kw_only": "3.10", "slots": "3.10", "usedforsecurity": "3.9"}


def newer_methods(tree: ast.AST, path: Path) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in NEWER_KEYWORDS:
                    out.append(f"{path}:{node.lineno}: the keyword {kw.arg}= needs Python {NEWER_KEYWORDS[kw.arg]}")
            if isinstance(node.func, ast.Name) and node.func.id == "zip" and any(k.arg == "strict" for k in node.keywords):
                out.append(f"{path}:{node.lineno}: zip(strict=) needs Python 3.10")
        if isinstance(node, ast.Attribute) and node.attr in NEWER_METHODS and isinstance(node.ctx, ast.Load):
            out.append(f"{path}:{node.lineno}: .{node.attr} needs Python {NEWER_METHODS[node.attr]}")
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
                and (isinstance(node.left, ast.Dict) or isinstance(node.right, ast.Dict))):
            out.append(f"{path}:{node.lineno}: dict union (|) needs Python 3.9; use {{**a, **b}}")
    return out


def runtime_generics(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = newer_methods(tree, path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "collections.abc":
            names |= {a.asname or a.name for a in node.names}
    if not names:
        return found
    visitor = _RuntimeGenerics(names)
    visitor.visit(tree)
    return found + [f"{path}:{line}: collections.abc.{name}[...] is evaluated at run time: a TypeError on Python "
                    "3.8 (use typing's alias or quote it)" for line, name in visitor.found]


def main(argv: list[str]) -> int:
    files = [Path(a).resolve() for a in argv] or device_files()
    print(f"device gate (Python {TARGET}, TensorRT 10 stubs) over {len(files)} files: "
          + ", ".join(_rel(f) for f in files))
    try:
        v_ok, v_out = run_vermin(files)
        p_ok, p_out = run_pyright(files)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    generics = [line for f in files for line in runtime_generics(f)]
    if not v_ok:
        print("vermin:\n" + v_out)
    print("pyright:\n" + p_out)
    for line in generics:
        print(line)
    return 0 if v_ok and p_ok and not generics else 1


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
