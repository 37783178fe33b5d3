#!/usr/bin/env python3
"""Extract the names the TensorRT Python bindings define, from TensorRT's OSS sources, as JSON data.

    python scripts/extract_trt_api.py MIRROR REF OUT.json [--version 8.6.1]

MIRROR is a git directory of github.com/NVIDIA/TensorRT (a bare mirror is enough: files are read
with ``git show REF:path``); REF is a tag, branch or commit. The pybind11 binding sources under
python/src/ are scanned with regular expressions and a small bracket matcher (no compiler, nothing
is built), and the result is written to OUT.json. The JSON files under tests/data/tensorrt_api/
were made with this script; tests read those files and never run it.

What is recorded (names only, plus file:line of where each name is bound):
  classes      Python class name -> member names, in source order, overloads merged. Members come
               from .def("x"), .def_static, .def_property*, .def_readwrite/.def_readonly;
               .def(py::init...) is recorded as "__init__". A class bound inside another binding
               object (py::class_<X>(parent, "Name")) is keyed "Parent.Name".
  properties   class -> the members that are properties (def_property*, def_readwrite/readonly).
  enums        Python enum name -> member names from .value("NAME", ...). Nested enums are keyed
               "Parent.Name" (e.g. "ILogger.Severity"); export_values() is recorded in enum_info.
  nested       Parent -> names of classes/enums bound in its scope.
  members      class -> member -> {kind, file, line, kwargs (one list per overload), doc, cpp,
               deprecated_for, conditions}; conditions are the enclosing #if lines.
  module_attributes  module-level names: m.def / m.attr(...) = / m.add_object / py::bind_vector,
               plus top-level names the Python package's __init__.py defines (__version__, ...).
  python_package     what the package __init__.py adds to binding classes (e.g. Logger.Severity).
  returns_none evidence that a method can return None: the binding's docstring ":returns:"
               sentence when it mentions None, else the C++ header's "\\return" text and the C++
               return type (a null pointer from a pybind11-bound function becomes None).
"""

from __future__ import annotations

import argparse
import ast
import bisect
import json
import re
import subprocess
import sys
from pathlib import Path

BINDING_FILES = [
    "python/src/pyTensorRT.cpp",
    "python/src/infer/pyCore.cpp",
    "python/src/infer/pyInt8.cpp",
    "python/src/infer/pyFoundationalTypes.cpp",
    "python/src/infer/pyGraph.cpp",
    "python/src/infer/pyAlgorithmSelector.cpp",
    "python/src/infer/pyPlugin.cpp",
    "python/src/parsers/pyOnnx.cpp",
    "python/src/parsers/pyUff.cpp",
    "python/src/parsers/pyCaffe.cpp",
]
DOC_DIRS = ["python/docstrings"]
HEADERS = [
    "include/NvInfer.h",
    "include/NvInferRuntime.h",
    "include/NvInferRuntimeBase.h",
    "include/NvInferRuntimeCommon.h",
    "parsers/onnx/NvOnnxParser.h",
    "include/NvOnnxParser.h",
]
PACKAGE_INITS = [
    "python/packaging/bindings_wheel/tensorrt/__init__.py",
    "python/packaging/tensorrt/__init__.py",
]

# Methods whose "can it return None" evidence the project asks for, whatever the docstring says.
RETURNS_NONE_TARGETS = [
    "Builder.build_serialized_network",
    "Runtime.deserialize_cuda_engine",
    "IBuilderConfig.get_timing_cache",
    "IBuilderConfig.create_timing_cache",
    "ICudaEngine.create_execution_context",
    "ICudaEngine.create_engine_inspector",
    "ICudaEngine.serialize",
    "Builder.create_builder_config",
    "Builder.create_network",
    "OnnxParser.get_error",
]

MEMBER_KINDS = {
    "def": "method",
    "def_static": "staticmethod",
    "def_property": "property",
    "def_property_readonly": "property_readonly",
    "def_property_static": "property_static",
    "def_property_readonly_static": "property_readonly_static",
    "def_readwrite": "readwrite",
    "def_readonly": "readonly",
    "def_readwrite_static": "readwrite_static",
    "def_readonly_static": "readonly_static",
}
PROPERTY_KINDS = {k for k, v in MEMBER_KINDS.items() if v != "method" and v != "staticmethod"}


# --------------------------------------------------------------------------------------------- git


def git_show(mirror: str, ref: str, path: str) -> str | None:
    r = subprocess.run(["git", "-C", mirror, "show", f"{ref}:{path}"], capture_output=True)
    if r.returncode != 0:
        return None
    return r.stdout.decode("utf-8", errors="replace")


def git_ls(mirror: str, ref: str, path: str) -> list[str]:
    r = subprocess.run(["git", "-C", mirror, "ls-tree", "-r", "--name-only", ref, path], capture_output=True, text=True)
    return r.stdout.split() if r.returncode == 0 else []


def git_commit(mirror: str, ref: str) -> str:
    return subprocess.run(
        ["git", "-C", mirror, "rev-parse", f"{ref}^{{commit}}"], capture_output=True, text=True, check=True
    ).stdout.strip()


# ---------------------------------------------------------------------------------------- lexing

_RAW_OPEN = re.compile(r'R"([^()\\\s]{0,16})\(')


def strip_comments(text: str) -> str:
    """Blank out // and /* */ comments (newlines kept, so offsets and line numbers are unchanged)."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and i + 1 < n and text[i + 1] == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif c == "/" and i + 1 < n and text[i + 1] == "*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c in "\"'":
            i = skip_string(text, i)
        else:
            i += 1
    return "".join(out)


def skip_string(text: str, i: int) -> int:
    """text[i] opens a string/char literal (or a raw string's R); return the index after it."""
    if text[i] == "R":
        m = _RAW_OPEN.match(text, i)
        if m:
            end = text.find(")" + m.group(1) + '"', m.end())
            return len(text) if end < 0 else end + len(m.group(1)) + 2
    q = text[i]
    if q == '"' and i > 0 and text[i - 1] == "R":
        m = _RAW_OPEN.match(text, i - 1)
        if m:
            end = text.find(")" + m.group(1) + '"', m.end())
            return len(text) if end < 0 else end + len(m.group(1)) + 2
    if q == "'" and i > 0 and (text[i - 1].isalnum()):  # digit separator 1'000
        return i + 1
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == q:
            return j + 1
        if text[j] == "\n" and q == "'":
            return j
        j += 1
    return j


_OPEN = {"(": ")", "[": "]", "{": "}"}


def match_bracket(text: str, i: int) -> int:
    """text[i] is ( [ or {; return the index of its matching closer (strings skipped)."""
    stack = [_OPEN[text[i]]]
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == '"' or (c == "'" and not text[j - 1].isalnum()):
            j = skip_string(text, j)
            continue
        if c in _OPEN:
            stack.append(_OPEN[c])
        elif c in ")]}":
            if stack and stack[-1] == c:
                stack.pop()
                if not stack:
                    return j
        j += 1
    raise ValueError(f"unbalanced bracket at offset {i}")


def match_angle(text: str, i: int) -> int:
    """text[i] is '<' of a template argument list; return the index of its '>'."""
    depth = 0
    j = i
    while j < len(text):
        c = text[j]
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
            if depth == 0:
                return j
        elif c in "(":
            j = match_bracket(text, j)
        j += 1
    raise ValueError(f"unbalanced template at offset {i}")


def split_args(s: str) -> list[str]:
    """Split a call's argument text at top-level commas."""
    args, depth, cur, j = [], 0, [], 0
    angle = 0
    while j < len(s):
        c = s[j]
        if c == '"' or (c == "'" and (j == 0 or not s[j - 1].isalnum())):
            k = skip_string(s, j)
            cur.append(s[j:k])
            j = k
            continue
        if c == "R" and s.startswith('R"', j):
            k = skip_string(s, j)
            cur.append(s[j:k])
            j = k
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "<" and re.search(r"[\w:]$", "".join(cur).rstrip()) and not s.startswith("<<", j):
            angle += 1
        elif c == ">" and angle > 0 and not s.startswith(">=", j):
            angle -= 1
        if c == "," and depth == 0 and angle == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        j += 1
    if "".join(cur).strip():
        args.append("".join(cur).strip())
    return args


_STR = re.compile(r'^"((?:[^"\\]|\\.)*)"$')


def str_lit(arg: str) -> str | None:
    m = _STR.match(arg.strip())
    return m.group(1) if m else None


class Source:
    """One file: raw text, comment-stripped text, line lookup and #if nesting per line."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.code = strip_comments(text)
        self.nl = [i for i, c in enumerate(text) if c == "\n"]
        self.conds = self._conditions()

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.nl, offset - 1) + 1 if offset > 0 else 1

    def _conditions(self) -> list[tuple[str, ...]]:
        stack: list[str] = []
        per_line: list[tuple[str, ...]] = [()]
        for raw in self.code.split("\n"):
            s = raw.strip()
            m = re.match(r"#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)", s)
            if m:
                kw, rest = m.group(1), m.group(2).strip()
                if kw in ("if", "ifdef", "ifndef"):
                    stack.append({"if": rest, "ifdef": f"defined({rest})", "ifndef": f"!defined({rest})"}[kw])
                elif kw == "elif" and stack:
                    stack[-1] = f"!({stack[-1]}) && ({rest})"
                elif kw == "else" and stack:
                    stack[-1] = f"!({stack[-1]})"
                elif kw == "endif" and stack:
                    stack.pop()
            per_line.append(tuple(stack))
        return per_line

    def cond_at(self, offset: int) -> list[str]:
        ln = self.line(offset)
        return list(self.conds[ln]) if ln < len(self.conds) else []


# ------------------------------------------------------------------------------------ docstrings


def parse_docstrings(sources: list[Source]) -> dict[str, dict]:
    """'XDoc::name' -> {text, file, line} from R"trtdoc(...)trtdoc" constants in the doc headers."""
    docs: dict[str, dict] = {}
    const = re.compile(r"constexpr\s+(?:char\s+const|const\s+char)\s*\*\s*(\w+)\s*=\s*R\"(\w*)\(")
    for src in sources:
        code = src.code
        spans = []
        for m in re.finditer(r"\bnamespace\s+(\w+)\s*\{", code):
            try:
                end = match_bracket(code, m.end() - 1)
            except ValueError:
                continue
            spans.append((m.start(), end, m.group(1)))
        for m in const.finditer(code):
            endtok = ")" + m.group(2) + '"'
            end = src.text.find(endtok, m.end())
            body = src.text[m.end() : end]
            inner = [s for s in spans if s[0] < m.start() < s[1]]
            inner.sort(key=lambda s: s[0])
            ns = inner[-1][2] if inner else ""
            docs[f"{ns}::{m.group(1)}"] = {"text": body, "file": src.path, "line": src.line(m.start())}
    return docs


def returns_line(d: dict) -> int | None:
    """Absolute line of the ':returns:' text inside a docstring record."""
    i = d["text"].find(":returns")
    return d["line"] + d["text"].count("\n", 0, i) if i >= 0 else None


def returns_sentence(doc: str) -> str | None:
    """The ':returns:' paragraph of a docstring, whitespace collapsed."""
    m = re.search(r":returns?:(.*?)(?:\n\s*\n|\n\s*:\w|$)", doc, re.S)
    return " ".join(m.group(1).split()) if m else None


# -------------------------------------------------------------------------------------- bindings


class Extract:
    def __init__(self):
        self.classes: dict[str, list[str]] = {}
        self.properties: dict[str, list[str]] = {}
        self.enums: dict[str, list[str]] = {}
        self.enum_info: dict[str, dict] = {}
        self.enum_methods: dict[str, list[str]] = {}
        self.class_info: dict[str, dict] = {}
        self.nested: dict[str, list[str]] = {}
        self.members: dict[str, dict[str, dict]] = {}
        self.module_attributes: dict[str, dict] = {}
        self.module_init: list[dict] = []
        self.lambdas: dict[str, str] = {}  # lambda name -> body text, for C++ call resolution
        self.string_consts: dict[str, str] = {}  # `char const* const X = "..."` in binding code


_BIND = re.compile(r"\bpy::(class_|enum_|bind_vector|bind_map)\s*<")


def _cpp_target(args: list[str]) -> str | None:
    for a in args[1:]:
        m = re.search(r"&\s*([\w:]+::\w+)", a)
        if m and "Doc::" not in a:
            return m.group(1)
        m = re.match(r"(?:utils::\w+\()?\s*(lambdas::\w+|\w+_\w+)\b", a)
        if m and not a.startswith('"') and "Doc::" not in a and "py::" not in a:
            return m.group(1)
    return None


def _deprecation(args: list[str]) -> dict | None:
    for a in args:
        m = re.match(r"utils::(deprecate\w*)\s*\(", a)
        if m:
            inner = split_args(a[a.index("(") + 1 : a.rindex(")")])
            msg = str_lit(inner[-1]) if inner else None
            return {"helper": m.group(1), "message": msg if msg is not None else (inner[-1] if inner else None)}
    return None


def parse_chain(src: Source, start: int, owner: str, ex: Extract, is_enum: bool) -> None:
    """Parse `.def(...).value(...)...` starting at offset `start` in src.code, until it ends."""
    code = src.code
    i = start
    while True:
        # skip whitespace and preprocessor lines between chained calls
        while True:
            m = re.compile(r"\s+").match(code, i)
            if m:
                i = m.end()
            if code.startswith("#", i):
                j = code.find("\n", i)
                i = len(code) if j < 0 else j
                continue
            break
        m = re.compile(r"\.\s*(\w+)\s*(\()").match(code, i)
        if not m:
            return
        method, op = m.group(1), m.start(2)
        close = match_bracket(code, op)
        args = split_args(code[op + 1 : close])
        i = close + 1
        off = m.start()
        if method == "value" and args:
            name = str_lit(args[0])
            if name is not None:
                ex.enums.setdefault(owner, [])
                if name not in ex.enums[owner]:
                    ex.enums[owner].append(name)
                ex.members.setdefault(owner, {}).setdefault(
                    name, {"kind": "enum_value", "file": src.path, "line": src.line(off), "cpp": args[1] if len(args) > 1 else None}
                )
                c = src.cond_at(off)
                if c != ex.enum_info[owner]["conditions"]:
                    ex.members[owner][name]["conditions"] = c
            continue
        if method == "export_values":
            if owner in ex.enum_info:
                ex.enum_info[owner]["export_values"] = True
            continue
        if method not in MEMBER_KINDS:
            continue
        if not args:
            continue
        name = str_lit(args[0])
        if name is None:
            a0 = args[0]
            if a0.startswith("py::init"):
                name = "__init__"
            elif a0.startswith("py::pickle"):
                name = "__getstate__/__setstate__"
            elif a0.startswith("py::self") or re.match(r"\w*\s*py::self", a0):
                name = "operator:" + " ".join(a0.split())
            else:
                name = "<expr:" + " ".join(a0.split())[:60] + ">"
        table = (ex.enum_methods if is_enum else ex.classes).setdefault(owner, [])
        if name not in table:
            table.append(name)
        if method in PROPERTY_KINDS:
            props = ex.properties.setdefault(owner, [])
            if name not in props:
                props.append(name)
        kwnames, defaults = [], {}
        for a in args:
            k = re.match(r'^(?:"(\w+)"_a|py::arg\(\s*"(\w+)"\s*\))\s*(?:=\s*(.+))?$', a, re.S)
            if k:
                kname = k.group(1) or k.group(2)
                kwnames.append(kname)
                if k.group(3) is not None:
                    defaults[kname] = " ".join(k.group(3).split())
        docs = [d.group(1) for d in (re.search(r"\b(\w+Doc::\w+)\b", a) for a in args) if d]
        rec = ex.members.setdefault(owner, {}).get(name)
        if rec is None:
            rec = {"kind": MEMBER_KINDS[method], "file": src.path, "line": src.line(off), "kwargs": []}
            ex.members[owner][name] = rec
        else:
            rec.setdefault("overload_lines", []).append(src.line(off))
        if method in ("def", "def_static"):
            rec["kwargs"].append(kwnames)
            if defaults:
                rec.setdefault("kwarg_defaults", {}).update(defaults)
        else:
            rec.pop("kwargs", None) if not rec.get("kwargs") else None
        if docs and "doc" not in rec:
            rec["doc"] = docs[-1]
        cpp = _cpp_target(args)
        if cpp and "cpp" not in rec:
            rec["cpp"] = cpp
        dep = _deprecation(args[1:])
        if dep:
            if dep["message"] in ex.string_consts:
                dep["message_var"] = dep["message"]
                dep["message"] = ex.string_consts[dep["message"]]
            if dep["helper"].endswith("InTrtRtxOnly"):
                dep["effective_in_tensorrt"] = False
                dep["note"] = ("utils::%s forwards the function unchanged (python/include/utils.h): no warning in "
                               "TensorRT itself, only in TensorRT-RTX builds" % dep["helper"])
            rec.setdefault("deprecated", dep)
        if method == "def_property" and len(args) > 1 and args[1].strip() == "nullptr":
            rec["write_only"] = True
        c = src.cond_at(off)
        base = (ex.class_info.get(owner) or ex.enum_info.get(owner) or {}).get("conditions", [])
        if c != base:
            rec["conditions"] = c


def scan_bindings(src: Source, ex: Extract) -> None:
    code = src.code
    varmap: dict[str, str] = {}
    # lambdas (for resolving lambdas::x to the C++ method it calls)
    for m in re.finditer(r"\b(?:static\s+)?(?:const\s+auto|auto\s+const|auto)\s+(\w+)\s*=\s*\[", code):
        try:
            cap_end = match_bracket(code, m.end() - 1)
            p = code.index("(", cap_end)
            pe = match_bracket(code, p)
            b = code.index("{", pe)
            be = match_bracket(code, b)
        except ValueError:
            continue
        ex.lambdas.setdefault(m.group(1), code[b : be + 1])

    for m in re.finditer(r'\b(?:char\s+const|const\s+char)\s*\*\s*(?:const\s+)?(\w+)\s*=\s*((?:"(?:[^"\\]|\\.)*"\s*)+);', code):
        ex.string_consts.setdefault(m.group(1), "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))))

    for m in _BIND.finditer(code):
        kind = m.group(1)
        lt = m.end() - 1
        gt = match_angle(code, lt)
        tmpl = " ".join(code[lt + 1 : gt].split())
        rest = re.compile(r"\s*(\w+)?\s*([({])").match(code, gt + 1)
        if not rest:
            continue
        var, op = rest.group(1), rest.start(2)
        close = match_bracket(code, op)
        args = split_args(code[op + 1 : close])
        if len(args) < 2:
            continue
        scope, name = args[0].strip(), str_lit(args[1])
        if name is None:
            continue
        parent = None if scope == "m" else varmap.get(scope, scope)
        qual = f"{parent}.{name}" if parent else name
        if parent:
            ex.nested.setdefault(parent, [])
            if name not in ex.nested[parent]:
                ex.nested[parent].append(name)
        info = {
            "file": src.path,
            "line": src.line(m.start()),
            "cpp_type": tmpl.split(",")[0].strip(),
            "conditions": src.cond_at(m.start()),
        }
        if kind == "class_":
            if len(tmpl.split(",")) > 1:
                info["template"] = tmpl
            if "py::buffer_protocol" in code[op:close]:
                info["buffer_protocol"] = True
            ex.class_info.setdefault(qual, info)
            ex.classes.setdefault(qual, [])
        elif kind == "enum_":
            info["arithmetic"] = "py::arithmetic" in code[op:close]
            info["export_values"] = False
            ex.enum_info.setdefault(qual, info)
            ex.enums.setdefault(qual, [])
        else:  # bind_vector / bind_map: an opaque STL container class
            info["kind"] = kind
            ex.class_info.setdefault(qual, info)
            ex.classes.setdefault(qual, [])
            continue
        if var:
            varmap[var] = qual
        parse_chain(src, close + 1, qual, ex, kind == "enum_")
        if var:
            # later statements `var.def(...)...;`
            for vm in re.finditer(r"\b" + re.escape(var) + r"(?=\s*\.\s*\w+\s*\()", code[close:]):
                parse_chain(src, close + vm.end(), qual, ex, kind == "enum_")

    for m in re.finditer(r"\bm\s*\.\s*(def|attr|add_object)\s*\(", code):
        op = m.end() - 1
        close = match_bracket(code, op)
        args = split_args(code[op + 1 : close])
        name = str_lit(args[0]) if args else None
        if name is None:
            continue
        if m.group(1) == "attr" and not re.match(r"\s*=(?!=)", code[close + 1 :]):
            continue
        kind = {"def": "function", "attr": "attribute", "add_object": "object"}[m.group(1)]
        rec = ex.module_attributes.setdefault(
            name, {"kind": kind, "file": src.path, "line": src.line(m.start()), "conditions": src.cond_at(m.start())}
        )
        if kind == "attribute":
            rhs = code[close + 1 : code.find(";", close)].strip().lstrip("=").strip()
            rec.setdefault("value", rhs)
        if kind == "function":
            rec.setdefault("kwargs", [k.group(1) for k in (re.match(r'^"(\w+)"_a\b', a) for a in args) if k])
    if src.path.endswith("pyTensorRT.cpp"):
        for m in re.finditer(r"\b(bind\w+)\s*\(\s*m\s*\)\s*;", code):
            ex.module_init.append({"call": m.group(1), "line": src.line(m.start()), "conditions": src.cond_at(m.start())})


# ------------------------------------------------------------------------------- python package


def scan_package_init(path: str, text: str) -> dict:
    code = re.sub(r"##(\w+)##", r"__\1__", text)
    tree = ast.parse(code)
    funcs, assigns, class_attrs, notes = [], [], {}, []

    def visit(body, cond=None):
        for node in body:
            if isinstance(node, ast.FunctionDef):
                funcs.append({"name": node.name, "line": node.lineno, **({"condition": cond} if cond else {})})
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        assigns.append({"name": t.id, "line": node.lineno, "value": ast.get_source_segment(code, node.value),
                                    **({"condition": cond} if cond else {})})
                    elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name):
                        class_attrs.setdefault(t.value.id, []).append(
                            {"attr": t.attr, "line": node.lineno, "value": ast.get_source_segment(code, node.value),
                             **({"condition": cond} if cond else {})}
                        )
            elif isinstance(node, ast.For):
                seg = ast.get_source_segment(code, node)
                if "setattr" in seg:
                    notes.append({"line": node.lineno, "code_summary": " ".join(seg.split())[:200]})
            elif isinstance(node, ast.If):
                visit(node.body, ast.get_source_segment(code, node.test))
            elif isinstance(node, ast.Try):
                visit(node.body, cond)

    visit(tree.body)
    return {"file": path, "functions": funcs, "assignments": assigns, "class_attribute_assignments": class_attrs,
            "setattr_loops": notes}


# -------------------------------------------------------------------------------------- headers


def header_evidence(headers: list[Source], cpp_class: str, method: str) -> dict | None:
    for h in headers:
        code = h.code
        for cm in re.finditer(r"\bclass\s+(?:TENSORRTAPI\s+|TRT_DEPRECATED\s+)*" + re.escape(cpp_class) + r"\b[^;{]*\{", code):
            try:
                end = match_bracket(code, cm.end() - 1)
            except ValueError:
                continue
            body = code[cm.end() : end]
            found = []
            for dm in re.finditer(r"^[ \t]*((?:[\w:<>]+[ \t\*&]+)+?)" + re.escape(method) + r"\s*\(", body, re.M):
                ret = " ".join(dm.group(1).split())
                if ret.startswith("return") or "virtual" in ret and "apiv" in body[: dm.start()][-200:]:
                    continue
                off = cm.end() + dm.start()
                ln = h.line(off)
                lines = h.text.split("\n")
                k = ln - 2
                comment = []
                while k >= 0 and lines[k].strip().startswith("//!"):
                    comment.insert(0, lines[k].strip()[3:].strip())
                    k -= 1
                txt = "\n".join(comment)
                rm = re.search(r"\\return\s+(.*?)(?:\n\s*\n|\n\\|$)", txt + "\n", re.S)
                found.append({
                    "file": h.path,
                    "line": ln,
                    "cpp_class": cpp_class,
                    "cpp_method": method,
                    "cpp_return_type": re.sub(r"\b(virtual|TRT_DEPRECATED|noexcept)\b", "", ret).strip(),
                    "deprecated": "TRT_DEPRECATED" in ret or "\\deprecated" in txt,
                    "return_doc": " ".join(rm.group(1).split()) if rm else None,
                    "mentions_nullptr": "nullptr" in txt or "null" in txt.lower(),
                })
            if found:
                # prefer the non-deprecated overload (e.g. IRuntime::deserializeCudaEngine(blob, size))
                return next((f for f in found if not f["deprecated"]), found[0])
    return None


def cpp_method_of(ex: Extract, cls: str, member: str) -> tuple[str, str] | None:
    rec = ex.members.get(cls, {}).get(member)
    if not rec or not rec.get("cpp"):
        return None
    cpp = rec["cpp"]
    cpp_class = ex.class_info.get(cls, {}).get("cpp_type", "").split("::")[-1]
    if "::" in cpp and not cpp.startswith("lambdas::"):
        c, meth = cpp.rsplit("::", 1)
        return c.split("::")[-1], meth
    lname = cpp.split("::")[-1]
    body = ex.lambdas.get(lname, "")
    m = re.search(r"\bself\s*(?:\.|->)\s*(\w+)\s*\(", body)
    if m:
        return cpp_class, m.group(1)
    return None


# ------------------------------------------------------------------------------------------ main


def extract(mirror: str, ref: str, version: str) -> dict:
    commit = git_commit(mirror, ref)
    ex = Extract()
    used, absent = [], []
    for p in BINDING_FILES:
        t = git_show(mirror, commit, p)
        if t is None:
            absent.append(p)
            continue
        used.append(p)
        scan_bindings(Source(p, t), ex)

    doc_sources = []
    for d in DOC_DIRS:
        for p in git_ls(mirror, commit, d):
            if p.endswith(".h"):
                doc_sources.append(Source(p, git_show(mirror, commit, p) or ""))
    docs = parse_docstrings(doc_sources)
    headers = [Source(p, t) for p in HEADERS if (t := git_show(mirror, commit, p)) is not None]

    pkg = None
    for p in PACKAGE_INITS:
        t = git_show(mirror, commit, p)
        if t is not None:
            pkg = scan_package_init(p, t)
            break

    # returns_none: every member whose docstring's :returns: mentions None, plus the targets.
    returns_none: dict[str, dict] = {}
    for cls, mems in ex.members.items():
        for name, rec in mems.items():
            d = docs.get(rec.get("doc", ""))
            if not d:
                continue
            rs = returns_sentence(d["text"])
            if rs and re.search(r"\bNone\b", rs):
                returns_none[f"{cls}.{name}"] = {
                    "evidence": "docstring",
                    "doc_returns": rs,
                    "doc": rec["doc"],
                    "doc_file": d["file"],
                    "doc_line": returns_line(d),
                    "binding_file": rec["file"],
                    "binding_line": rec["line"],
                }
    for target in RETURNS_NONE_TARGETS:
        cls, name = target.split(".", 1)
        rec = ex.members.get(cls, {}).get(name)
        if rec is None:
            returns_none.setdefault(target, {"evidence": "not bound at this ref"})
            continue
        ent = returns_none.setdefault(target, {"binding_file": rec["file"], "binding_line": rec["line"]})
        d = docs.get(rec.get("doc", ""))
        if d and "doc_returns" not in ent:
            ent["doc_returns"] = returns_sentence(d["text"])
            ent["doc"] = rec["doc"]
            ent["doc_file"], ent["doc_line"] = d["file"], returns_line(d) or d["line"]
            ent["doc_mentions_none"] = bool(ent["doc_returns"] and re.search(r"\bNone\b", ent["doc_returns"]))
        cm = cpp_method_of(ex, cls, name)
        if cm:
            hv = header_evidence(headers, *cm)
            if hv:
                ent["cpp_header"] = hv
        ent["binding_cpp"] = rec.get("cpp")
        if "evidence" not in ent:
            ent["evidence"] = "docstring" if ent.get("doc_mentions_none") else (
                "cpp pointer return (pybind11 returns None for nullptr)"
                if "*" in ent.get("cpp_header", {}).get("cpp_return_type", "")
                else "none found"
            )

    # attach docstring :returns: text to members that have one (compact)
    for cls, mems in ex.members.items():
        for name, rec in mems.items():
            d = docs.get(rec.get("doc", ""))
            if d:
                rs = returns_sentence(d["text"])
                if rs:
                    rec["doc_returns"] = rs
                    rec["doc_returns_at"] = f'{d["file"]}:{returns_line(d)}'

    module_attrs = dict(ex.module_attributes)
    if pkg:
        for f in pkg["functions"]:
            module_attrs.setdefault(f["name"], {"kind": "python_function", "file": pkg["file"], "line": f["line"],
                                                **({"condition": f["condition"]} if "condition" in f else {})})
        for a in pkg["assignments"]:
            module_attrs.setdefault(a["name"], {"kind": "python_assignment", "file": pkg["file"], "line": a["line"],
                                                "value": a["value"], **({"condition": a["condition"]} if "condition" in a else {})})

    return {
        "version": version,
        "source": {
            "repo": "NVIDIA/TensorRT",
            "ref": ref,
            "commit": commit,
            "files": used,
            "absent_files": absent,
            "docstring_files": [s.path for s in doc_sources],
            "header_files": [h.path for h in headers],
            "package_init": pkg["file"] if pkg else None,
        },
        "conventions": {
            "classes": "Python class name (string in py::class_<X>(scope, \"Name\")) -> member names in source order, "
            "overloads merged; .def(py::init...) recorded as __init__; properties included (also listed in 'properties').",
            "nested": "A class/enum bound in another binding's scope is keyed 'Parent.Name' in classes/enums and "
            "listed under nested[Parent]. Enum export_values() (values also reachable as Parent.VALUE) is in enum_info.",
            "conditions": "Preprocessor #if lines enclosing a binding. EXPORT_ALL_BINDINGS is 1 only for the full "
            "'tensorrt' module (0 for tensorrt_lean / tensorrt_dispatch).",
            "python_package": "Attributes the package __init__.py adds at import time (e.g. Logger.Severity = ILogger.Severity).",
        },
        "classes": ex.classes,
        "properties": ex.properties,
        "enums": ex.enums,
        "enum_methods": ex.enum_methods,
        "nested": ex.nested,
        "cpp_names": {info["cpp_type"]: name for name, info in {**ex.class_info, **ex.enum_info}.items()},
        "class_info": ex.class_info,
        "enum_info": ex.enum_info,
        "module_attributes": sorted(module_attrs),
        "module_attribute_info": module_attrs,
        "module_init": ex.module_init,
        "python_package": pkg,
        "returns_none": dict(sorted(returns_none.items())),
        "members": ex.members,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mirror", help="git directory of NVIDIA/TensorRT")
    ap.add_argument("ref", help="tag / branch / commit")
    ap.add_argument("out", help="output JSON path")
    ap.add_argument("--version", help="version string to record (default: ref without leading v)")
    a = ap.parse_args(argv)
    data = extract(a.mirror, a.ref, a.version or a.ref.lstrip("v"))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{a.out}: {len(data['classes'])} classes, {len(data['enums'])} enums, "
          f"{sum(map(len, data['classes'].values()))} class members", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
