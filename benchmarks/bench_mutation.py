#!/usr/bin/env python3
"""Mutation testing of the core modules: how many small deliberate bugs their own tests catch. A benchmark, not a
CI gate.

    .venv/bin/python benchmarks/bench_mutation.py --modules sizes            # one module (about 2 min here)
    .venv/bin/python benchmarks/bench_mutation.py                            # every module (see --estimate)
    .venv/bin/python benchmarks/bench_mutation.py --estimate                 # mutants per module and a time estimate
    .venv/bin/python benchmarks/bench_mutation.py --modules parity --max-minutes 20 --max-mutants 100

For each module (:data:`MODULES`: the parity scorer and the metrics it counts in, the INT8 budget loop, the
calibration cache, the engine manifest's rules, atomic writes, the letterbox geometry, sizes) every mutant is one small change to one place in
the module's source; the module's own test files then run against it (``pytest -x``), and the mutant is *killed*
when they fail (or time out, or no longer import) and *survives* when they pass. Score = killed / total.

The mutator is this file's, over Python's AST, with four operators:

* comparison flips: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``in`` <-> ``not in``, ``is`` <-> ``is not``;
* constants +-1: every int and float literal n becomes n + 1 and n - 1; True <-> False (strings are left alone);
* and/or swaps: ``a and b`` <-> ``a or b``;
* dropped statements: a statement in a function body becomes ``pass`` (docstrings, ``return``-less helpers and
  ``raise`` included; imports and nested definitions are left alone).

Why not mutmut or cosmic-ray from PyPI: both rewrite the source files of the work tree in place while the tests run
(cosmic-ray, and mutmut up to 2.x), which other processes working in the same tree (and the ``python -m rockedge``
children the tests start) would import; mutmut 3 copies the tree but runs in-process trampolines that a test's
child process does not see, and needs its own configuration in pyproject.toml. Here the whole ``src`` tree is
copied into a temporary folder once, a mutant replaces one file of the copy, and the tests run with the copy first
on ``PYTHONPATH`` (bytecode caching off), so the work tree is never touched and child processes see the mutant too.

A mutant's tests are stopped after 3x the unmutated run's time plus 10 s (counted as killed: an infinite loop is a
caught bug). ``--max-minutes`` caps each module's time; a module cut short is recorded with ``"capped": true`` and
counts only the mutants that ran. Results go to benchmarks/results/<date>-<machine>-mutation.json (results.py),
merged with the modules already there for the same date and machine, with ``rockedge.benchmark.machine_info()``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


@dataclass(frozen=True)
class Module:
    """One module under mutation: its file (under src/rockedge), the functions mutated (None: the whole module;
    ``"<module>"`` names module-level statements such as constant tables), and the tests that judge it."""

    path: str
    tests: tuple[str, ...]
    scope: tuple[str, ...] | None = None
    select: str | None = None  # pytest -k
    note: str = ""


MODULES: dict[str, Module] = {
    "parity": Module(
        "verify/parity.py", ("tests/test_parity.py", "tests/test_budget_edges.py"),
        ("<module>", "tie_margin_for", "tie_basis", "ParityBudget.for_precision", "ParityBudget.tie_basis", "score",
         "_warnings", "_check"),
        note="the scorer, its budgets and presets; the terminal table and to_dict (presentation) are left out"),
    "metrics": Module(
        "verify/metrics.py", ("tests/test_metrics.py", "tests/test_parity.py", "tests/test_budget_edges.py"),
        note="what parity and accuracy are counted in: the confusion matrix, IoU, the boundary band, mask agreement"),
    "budget": Module(
        "calibration/budget.py", ("tests/test_budget_edges.py",), ("fit_budget", "BudgetResult.kept"),
        select="int8_drop or half_the_layers or max_fp32 or first_step or no_step or int8_budget",
        note="the budget loop (drop, the half cap, --max-fp32, the chosen step); sensitivity() and the report "
             "table run only in test_precision.py's real INT8 exports, too slow per mutant"),
    "cache": Module(
        "calibration/cache.py", ("tests/test_calibration.py", "tests/test_trt_api.py", "tests/test_cache_rules.py"),
        select="cache_format or malformed_caches or cache_is_reused or cache_from_another or colons or "
               "real_calibration_caches or cache_rules"),
    "manifest": Module(
        "runtime/manifest.py", ("tests/test_trt.py", "tests/test_manifest_rules.py"),
        ("parse_version", "manifest_path", "find_manifest", "write_manifest", "read_manifest", "check_plan_file",
         "check_manifest"),
        note="the rules and the file's reading and writing; field type checks (from_dict) are test_faults.py's"),
    "atomic": Module(
        "atomic.py", ("tests/test_atomic.py", "tests/test_faults.py"),
        ("temp_name", "_owned", "_alive", "clean_stale", "temp_beside", "atomic_path", "commit_all", "recover_dir",
         "staging_dir", "apply_default_mode", "write_text", "write_bytes", "write_json"),
        select="test_atomic or folder_swap or commit_all",
        note="the write paths; error naming and JSON encoding are left out"),
    "preprocess": Module(
        "runtime/preprocess.py", ("tests/test_preprocess.py",), ("fit", "content", "restore_mask"),
        note="the letterbox geometry and the mask restore"),
    "sizes": Module("sizes.py", ("tests/test_sizes.py",)),
}

OPERATORS = ("comparison flip", "constant +-1", "and/or swap", "dropped statement")
_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
           ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


@dataclass
class Site:
    """One mutant: the n-th eligible node of its kind (in a fixed walk order) and what it becomes."""

    kind: str
    index: int  # among the nodes the walk visits, counting every node
    variant: int  # which replacement of that node
    line: int
    what: str


# -- the mutator ---------------------------------------------------------------------------------------------------


def _docstring(node: ast.AST) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


class _Walk(ast.NodeVisitor):
    """Numbers every node in one fixed order and notes which may be mutated, and how (:meth:`sites`)."""

    def __init__(self, scope: tuple[str, ...] | None) -> None:
        self.scope = scope
        self.stack: list[str] = []
        self.count = 0
        self.found: list[Site] = []
        self.skip: set[int] = set()  # ids of nodes never mutated (annotations, docstrings)

    def in_scope(self) -> bool:
        """Module-level statements when the scope names "<module>"; inside a class or function when the scope names
        it (``Class.method``, ``function``, or the class for all of it)."""
        if self.scope is None:
            return True
        if not self.stack:
            return "<module>" in self.scope
        qual = ".".join(s[len("class:"):] if s.startswith("class:") else s for s in self.stack)
        return any(qual == s or qual.startswith(s + ".") for s in self.scope)

    def in_function(self) -> bool:
        return any(not s.startswith("class:") for s in self.stack)

    def generic_visit(self, node: ast.AST) -> None:
        index = self.count
        self.count += 1
        if id(node) not in self.skip and self.in_scope():
            self.note(node, index)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for a in _annotations(node):
                self.skip.update(id(n) for n in ast.walk(a))
            for d in getattr(node, "decorator_list", []):
                self.skip.update(id(n) for n in ast.walk(d))
            self.stack.append(("class:" if isinstance(node, ast.ClassDef) else "") + node.name)
            super().generic_visit(node)
            self.stack.pop()
            return
        if isinstance(node, ast.AnnAssign):
            self.skip.update(id(n) for n in ast.walk(node.annotation))
        if _docstring(node):
            self.skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.If) and _type_checking(node.test):
            self.skip.update(id(n) for n in ast.walk(node))
        super().generic_visit(node)

    def note(self, node: ast.AST, index: int) -> None:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _FLIP:
                    self.found.append(Site("comparison flip", index, i, line,
                                           f"{_SYMBOL[type(op)]} -> {_SYMBOL[_FLIP[type(op)]]}"))
        elif isinstance(node, ast.Constant) and not isinstance(node.value, str):
            v = node.value
            if isinstance(v, bool):
                self.found.append(Site("constant +-1", index, 0, line, f"{v} -> {not v}"))
            elif isinstance(v, (int, float)):
                for i, d in enumerate((1, -1)):
                    self.found.append(Site("constant +-1", index, i, line, f"{v!r} -> {v + d!r}"))
        elif isinstance(node, ast.BoolOp):
            self.found.append(Site("and/or swap", index, 0, line,
                                   "and -> or" if isinstance(node.op, ast.And) else "or -> and"))
        elif (isinstance(node, ast.stmt) and self.in_function() and not _docstring(node)
              and not isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                                        ast.ClassDef, ast.Pass, ast.Global, ast.Nonlocal))):
            self.found.append(Site("dropped statement", index, 0, line,
                                   f"dropped: {ast.unparse(node).splitlines()[0][:70]}"))


def _annotations(node: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = node.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
            if arg is not None and arg.annotation is not None:
                out.append(arg.annotation)
        if node.returns is not None:
            out.append(node.returns)
    return out


def _type_checking(test: ast.AST) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def sites(source: str, scope: tuple[str, ...] | None) -> list[Site]:
    walk = _Walk(scope)
    walk.visit(ast.parse(source))
    return walk.found


class _Apply(ast.NodeTransformer):
    """Re-walks in :class:`_Walk`'s order and applies one site."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.count = 0

    def generic_visit(self, node: ast.AST) -> ast.AST:  # type: ignore[override]
        index = self.count
        self.count += 1
        if index == self.site.index:
            node = self.mutate(node)
        return super().generic_visit(node)

    def mutate(self, node: ast.AST) -> ast.AST:
        s = self.site
        if s.kind == "comparison flip" and isinstance(node, ast.Compare):
            node.ops[s.variant] = _FLIP[type(node.ops[s.variant])]()
        elif s.kind == "constant +-1" and isinstance(node, ast.Constant):
            node.value = (not node.value) if isinstance(node.value, bool) else node.value + (1, -1)[s.variant]
        elif s.kind == "and/or swap" and isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif s.kind == "dropped statement":
            return ast.copy_location(ast.Pass(), node)
        else:
            raise AssertionError(f"site {s} does not match {ast.dump(node)[:80]}")
        return node


def mutant(source: str, site: Site) -> str:
    tree = _Apply(site).visit(copy.deepcopy(ast.parse(source)))
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


# -- running the tests ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    killed: int = 0
    total: int = 0
    timeouts: int = 0
    survived: list[str] = field(default_factory=list)
    seconds: float = 0.0
    baseline_s: float = 0.0
    capped: bool = False
    planned: int = 0


def run_tests(mod: Module, env: dict[str, str], timeout: float) -> tuple[str, float]:
    """("pass" | "fail" | "timeout", seconds) of the module's tests against the copy ``env`` points at."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *mod.tests]
    if mod.select:
        cmd += ["-k", mod.select]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0
    if proc.returncode == 5:
        raise SystemExit(f"error: the tests of {mod.path} select nothing: {' '.join(cmd)}")
    return ("pass" if proc.returncode == 0 else "fail"), time.perf_counter() - t0


def copy_tree(dest: Path) -> dict[str, str]:
    """Copy src/ into ``dest`` and return the environment whose Python imports rockedge from there."""
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dest / "src"), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    where = subprocess.run([sys.executable, "-c", "import rockedge; print(rockedge.__file__)"], env=env,
                           capture_output=True, text=True, cwd=ROOT).stdout.strip()
    if not where.startswith(str(dest)):
        raise SystemExit(f"error: the copy is not what Python imports (rockedge from {where})")
    return env


def mutate_module(name: str, mod: Module, env: dict[str, str], copy_root: Path, *, max_minutes: float,
                  max_mutants: int | None, log) -> Result:  # noqa: ANN001
    target = copy_root / "src" / "rockedge" / mod.path
    original = (ROOT / "src" / "rockedge" / mod.path).read_text()
    found = sites(original, mod.scope)
    if max_mutants is not None and len(found) > max_mutants:  # an even sample, always the same one
        step = len(found) / max_mutants
        found = [found[int(i * step)] for i in range(max_mutants)]
    res = Result(planned=len(found))
    target.write_text(ast.unparse(ast.parse(original)) + "\n")  # the unmutated module, as the mutants are written
    status, base = run_tests(mod, env, timeout=1800)
    if status != "pass":
        raise SystemExit(f"error: the tests of {name} fail without any mutation; fix them first")
    res.baseline_s = base
    limit = 3 * base + 10
    log(f"{name}: {len(found)} mutants of {mod.path}, tests {base:.1f} s each unmutated (stopped after {limit:.0f} s)")
    t0 = time.perf_counter()
    try:
        for i, site in enumerate(found):
            if time.perf_counter() - t0 > max_minutes * 60:
                res.capped = True
                log(f"{name}: stopped after {max_minutes:g} min, {res.total} of {len(found)} mutants run")
                break
            target.write_text(mutant(original, site))
            status, _ = run_tests(mod, env, timeout=limit)
            res.total += 1
            if status == "pass":
                res.survived.append(f"line {site.line}: {site.kind}: {site.what}")
            else:
                res.killed += 1
                res.timeouts += status == "timeout"
            if (i + 1) % 10 == 0:
                log(f"  {i + 1}/{len(found)}: {res.killed} killed")
    finally:
        target.write_text(original)
    res.seconds = time.perf_counter() - t0
    return res


# -- results -------------------------------------------------------------------------------------------------------


def write_results(results: dict[str, Result], estimate_s: float | None) -> Path:
    from results import results_path

    from rockedge.benchmark import machine_info

    path = results_path("mutation")
    old: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    modules = dict(old.get("modules") or {})
    for name, r in results.items():
        mod = MODULES[name]
        score = round(r.killed / r.total, 4) if r.total else None
        modules[name] = {"killed": r.killed, "total": r.total, "score": score,
                         "timeouts": r.timeouts, "capped": r.capped, "mutants_planned": r.planned,
                         "seconds": round(r.seconds, 1), "tests_seconds_unmutated": round(r.baseline_s, 2),
                         "file": f"src/rockedge/{mod.path}", "scope": list(mod.scope) if mod.scope else "whole module",
                         "tests": list(mod.tests), "select": mod.select, "note": mod.note, "survived": r.survived}
    killed = sum(m["killed"] for m in modules.values())
    total = sum(m["total"] for m in modules.values())
    out = {"modules": modules, "score": round(killed / total, 4) if total else None,
           "modules_missing": sorted(set(MODULES) - set(modules)),
           "tool": "benchmarks/bench_mutation.py (AST mutator of its own)", "operators": list(OPERATORS),
           "machine": machine_info()}
    if estimate_s is not None:
        out["estimated_full_run_s"] = round(estimate_s)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return path


def estimate(names: list[str], env: dict[str, str], copy_root: Path, log) -> float:  # noqa: ANN001
    """Mutants per module times one unmutated run of its tests (a killed mutant usually stops sooner, with -x)."""
    total = 0.0
    for name in names:
        mod = MODULES[name]
        original = (ROOT / "src" / "rockedge" / mod.path).read_text()
        n = len(sites(original, mod.scope))
        status, base = run_tests(mod, env, timeout=1800)
        total += n * base
        log(f"{name:<11}{n:>5} mutants x {base:5.1f} s = {n * base / 60:6.1f} min  (unmutated tests: {status})")
    log(f"{'all':<11}{'':>5}             {total / 60:6.1f} min at most")
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", default=",".join(MODULES), help=f"comma-separated, of: {', '.join(MODULES)}")
    ap.add_argument("--max-minutes", type=float, default=30.0, help="time cap per module (default 30)")
    ap.add_argument("--max-mutants", type=int, default=None, help="an even sample of at most this many per module")
    ap.add_argument("--estimate", action="store_true", help="count mutants, time each module's tests once, and stop")
    ap.add_argument("--list", action="store_true", help="print the mutants of the chosen modules and stop")
    args = ap.parse_args()
    names = [n.strip() for n in args.modules.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        ap.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")

    def log(text: str) -> None:
        print(text, flush=True)

    if args.list:
        for name in names:
            mod = MODULES[name]
            for s in sites((ROOT / "src" / "rockedge" / mod.path).read_text(), mod.scope):
                log(f"{name}: line {s.line}: {s.kind}: {s.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="rockedge-mutation-") as tmp:
        env = copy_tree(Path(tmp))
        if args.estimate:
            estimate(names, env, Path(tmp), log)
            return 0
        results = {}
        for name in names:
            results[name] = mutate_module(name, MODULES[name], env, Path(tmp), max_minutes=args.max_minutes,
                                          max_mutants=args.max_mutants, log=log)
            r = results[name]
            log(f"{name}: {r.killed}/{r.total} killed ({r.killed / max(1, r.total):.0%}) in {r.seconds / 60:.1f} min"
                + (" (capped)" if r.capped else ""))
            for s in r.survived:
                log(f"  survived: {s}")
    path = write_results(results, None)
    log(f"-> {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
