"""Docs that stay true: the Python snippets in docs/ run, and every message docs/troubleshooting.md quotes is one
the code can print.

Snippets: every ```python block of a page runs, in page order and one namespace per page, in a folder that holds
what the pages name (``model.onnx``, ``best.pt``, ``clip.mp4``, ``frame.jpg``, a ``data/rocks`` dataset) and with
``frame_bgr``, ``frames`` and ``my_frames`` defined. A block that cannot run here says why on the line before it:
``<!-- snippet: needs a Triton server -->``; the test skips it with that reason (and only for a reason of that form).

Messages: each quoted message (a bold code span, ``**`error: ...`**``) is matched against the string literals and
f-strings of src/rockedge: read left to right, every stretch of it must be the fixed text of some literal (an
f-string's ``{...}`` matches any value; click's own literals count for the usage errors it words), or a stretch of
at least 16 characters of one literal's fixed text; what no literal explains may only be values (paths, numbers, names
with dots, slashes or digits, CAPITAL placeholders such as PATH or N). A message edited in the code but not in the
docs fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import write_video
from test_runtime import exported

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
SKIP_RE = re.compile(r"<!--\s*snippet:\s*(needs [^>]+?)\s*-->")


# -- snippets ------------------------------------------------------------------------------------------------------


def snippets(page: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, skip reason) of each ```python block."""
    lines = page.read_text().splitlines()
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
            m = SKIP_RE.search(before)
            out.append((start + 1, "\n".join(body), m.group(1) if m else None))
        i += 1
    return out


PAGES = [p for p in DOCS if snippets(p)]


@pytest.fixture
def snippet_folder(tmp_path, trained_ckpt, tmp_path_factory, monkeypatch, scenes):
    import shutil

    from rockedge.data.synth import write_synth_dataset

    shutil.copy(exported("float", trained_ckpt, tmp_path_factory), tmp_path / "model.onnx")
    shutil.copy(trained_ckpt(), tmp_path / "best.pt")
    imgs = [s[0] for s in scenes(6, 64, 64, seed=11)]
    write_video(tmp_path / "clip.mp4", imgs, fps=30.0)
    cv2.imwrite(str(tmp_path / "frame.jpg"), imgs[0])
    write_synth_dataset(tmp_path / "data" / "rocks", n=10, size_hw=(64, 64), progress=False)
    monkeypatch.chdir(tmp_path)
    return {"frame_bgr": imgs[0], "frames": imgs[:3], "my_frames": imgs}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_snippets_run(page, snippet_folder):
    namespace = dict(snippet_folder)
    ran = 0
    for line, code, skip in snippets(page):
        if skip:
            continue
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - any failure is the page's
            pytest.fail(f"{page.name}:{line}: the snippet fails: {type(e).__name__}: {e}")
        ran += 1
    if not ran:
        pytest.skip(", ".join(sorted({s for _, _, s in snippets(page) if s})))


def test_skip_markers_say_why():
    for page in DOCS:
        for m in re.finditer(r"<!--\s*snippet:(.*?)-->", page.read_text()):
            assert SKIP_RE.fullmatch(m.group(0)), f"{page.name}: a snippet marker must read 'needs ...': {m.group(0)}"


# -- quoted messages -----------------------------------------------------------------------------------------------

PREFIXES = ("error: ", "warning: ", "note: ", "interrupted: ")
MIN_FIXED = 8  # a literal explains text only when it holds this many letters of its own (not "{a}: {b}")
MIN_STRETCH = 16  # a part of a literal explains a stretch of a message this long, so a common word alone does not
FORMAT_FIELD = re.compile(r"\{[^{}]*\}")  # str.format templates ("No such option: {name}") have placeholders too


def _sources() -> list[Path]:
    """rockedge's code, and click's, which words the usage errors (exit 2) rockedge passes on."""
    import click

    return sorted((ROOT / "src" / "rockedge").rglob("*.py")) + sorted(Path(click.__file__).parent.glob("*.py"))


def _parts(node: ast.AST) -> list[str | None] | None:
    """A literal as fixed text and placeholders (None), or None when ``node`` is not a string literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        out: list[str | None] = []
        last = 0
        for m in FORMAT_FIELD.finditer(node.value):
            out += [node.value[last:m.start()], None]
            last = m.end()
        return [p for p in [*out, node.value[last:]] if p != ""]
    if isinstance(node, ast.JoinedStr):
        return [v.value if isinstance(v, ast.Constant) else None for v in node.values]
    return None


class Literal:
    def __init__(self, parts: list[str | None]) -> None:
        self.parts = parts
        self.fixed = [p for p in parts if p]
        self.key = next((p.strip() for p in self.fixed if p.strip()), "")
        self._prefixes: list[re.Pattern[str]] | None = None

    def regex(self, parts: list[str | None]) -> str:
        return "".join("(.*)" if p is None else re.escape(p) for p in parts)

    def match(self, text: str, i: int, start: bool = False) -> int:
        """How much of ``text`` from ``i`` this literal explains: all of it, or a leading part of it that ends in
        its own fixed text (the quote may stop there or leave the rest out with "...")."""
        if self._prefixes is None:
            n = len(self.parts)
            self._prefixes = [re.compile(self.regex(self.parts), re.S)] + [
                re.compile(self.regex(self.parts[:k]), re.S) for k in range(n - 1, 0, -1)
                if self.parts[k - 1] is not None  # a cut-off literal ends in its own text, not a placeholder
                and sum(c.isalpha() for p in self.parts[:k] if p for c in p) >= MIN_FIXED]
        for rx in self._prefixes:
            m = rx.match(text, i)
            # A leading placeholder takes only values (a message's first words may be a name: "synth already
            # exists"); elsewhere it must not swallow words the docs made up.
            if m and (start or self.parts[0] is not None or all(_value_like(w) for w in m.group(1).split())):
                return m.end() - i
        return 0


class Code:
    """Every string literal and f-string of the code: whole patterns, and their fixed text for stretches."""

    def __init__(self) -> None:
        self.literals: list[Literal] = []
        seen: set[tuple[str | None, ...]] = set()
        for path in _sources():
            tree = ast.parse(path.read_text())
            inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
            for node in ast.walk(tree):
                parts = None if id(node) in inner else _parts(node)
                if not parts or tuple(parts) in seen:
                    continue
                seen.add(tuple(parts))
                if sum(c.isalpha() for p in parts if p for c in p) < MIN_FIXED:
                    continue
                head = next((x for x in PREFIXES if isinstance(parts[0], str) and parts[0].startswith(x)), "")
                if head:  # "error: {...} (see ...)": the prefix was read already, the rest is this literal's
                    parts = [parts[0][len(head):], *parts[1:]] if parts[0] != head else parts[1:]
                if parts:
                    self.literals.append(Literal(parts))
        self.text = "\x00".join(f for lit in self.literals for f in lit.fixed)

    def longest_stretch(self, text: str, i: int) -> int:
        """Length of the longest stretch of ``text`` from ``i`` that is fixed text of one literal."""
        if len(text) - i < MIN_STRETCH or text[i:i + MIN_STRETCH] not in self.text:
            return 0
        lo, hi = MIN_STRETCH, len(text) - i
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if text[i:i + mid] in self.text:
                lo = mid
            else:
                hi = mid - 1
        return lo


def _value_like(word: str) -> bool:
    w = word.strip(".,;:()[]'\"`")
    return (not w or any(c.isdigit() for c in w) or any(c in w for c in "/._-=*<>|\\")
            or (w.isupper() and len(w) <= 6) or not any(c.isalpha() for c in w))


def unexplained(message: str, code: Code) -> list[str]:
    """The words of ``message`` that no literal of the code explains and that do not look like values."""
    text = re.sub(r"\s+", " ", message).strip()
    candidates = [lit for lit in code.literals if lit.key and lit.key in text]
    left: list[str] = []
    first = i = len(next((p for p in PREFIXES if text.startswith(p)), ""))  # the boundary's "error: " comes first
    while i < len(text):
        best = code.longest_stretch(text, i)
        # a literal may begin with the space a skipped value left behind (" at epoch ")
        at = [i - 1, i] if i and text[i - 1] == " " else [i]
        for lit in candidates:
            for j in at:
                best = max(best, lit.match(text, j, start=j <= first) - (i - j))
        if best > 0:
            i += best
        else:
            end = text.find(" ", i + 1)
            end = len(text) if end < 0 else end
            word = text[i:end]
            if not _value_like(word):
                left.append(word)
            i = end
        while i < len(text) and text[i] == " ":
            i += 1
    return left


def quoted_messages() -> list[str]:
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    return [m.group(1) for m in re.finditer(r"\*\*`([^`]+)`\*\*", text)]


@pytest.fixture(scope="module")
def code():
    return Code()


@pytest.mark.parametrize("message", quoted_messages(), ids=lambda m: m[:60])
def test_every_quoted_message_exists_in_the_code(message, code):
    left = unexplained(message, code)
    assert not left, f"no message in src/rockedge prints {message!r}: unexplained {left}"


ARTIFACT = re.compile(r"[\w./-]+\.(?:onnx|plan|engine|trt)\b")
SIDECAR = re.compile(r"[\w./-]+\.json\b")


def wrong_sidecars(message: str) -> list[str]:
    """The JSON files a message names beside a model it also names (``m.failed.onnx ... m.parity.json``) that are
    not what the code calls that model's report or manifest. The text check above lets any file name through a
    placeholder ("report in {path}"); the names themselves come from these functions."""
    from rockedge.engine.build import engine_report_path
    from rockedge.runtime.manifest import manifest_path
    from rockedge.steps import report_path

    models = [Path(m) for m in ARTIFACT.findall(message)]
    wrong = []
    for side in SIDECAR.findall(message):
        kin = [m for m in models if m.name.split(".")[0] == Path(side).name.split(".")[0]]
        names = {str(f(m)) for m in kin
                 for f in ((report_path,) if m.suffix == ".onnx" else (engine_report_path, manifest_path))}
        if kin and side not in names:
            wrong.append(side)
    return wrong


@pytest.mark.parametrize("message", quoted_messages(), ids=lambda m: m[:60])
def test_every_quoted_file_name_is_the_one_the_code_writes(message):
    assert not wrong_sidecars(message), f"{message!r} names {wrong_sidecars(message)}, which the code never writes there"


def test_the_message_check_can_fail(code):
    assert wrong_sidecars("kept as best.failed.onnx for inspection, report in best.parity.json") == ["best.parity.json"]
    assert wrong_sidecars("kept as best.failed.onnx for inspection, report in best.failed.parity.json") == []
    assert wrong_sidecars("built m.int8.plan (m.int8.plan.json, m.int8.parity.json)") == ["m.int8.parity.json"]

    assert unexplained("the loss became nan (step 3) at epoch 2: training stopped; no checkpoint was written; lower "
                       "--lr or check the data", code) == []
    left = unexplained("the loss turned nan (step 3) at epoch 2: training halted", code)
    assert "turned" in " ".join(left) and "halted" in " ".join(left)
    assert unexplained("rockedge could not frobnicate the widget", code)


# -- what the README promises a runtime-only install ---------------------------------------------------------------


@pytest.mark.parametrize("args, extra", [
    (["train", "--data", "d", "--out", "r"], "train"),
    (["export", "best.pt", "--out", "m.onnx"], "train"),
    (["export", "m.onnx", "--half"], "export"),
    (["export", "m.onnx", "--int8", "--data", "d"], "export"),
])
def test_a_runtime_only_install_gets_one_line_naming_the_extra(tmp_path, args, extra):
    """README and troubleshooting.md: without torch/onnx (a Jetson's runtime install), the workstation commands
    say in one line which extra to install."""
    import subprocess
    import sys

    from rockedge.layers import WORKSTATION_ONLY

    (tmp_path / "best.pt").write_bytes(b"\0")
    (tmp_path / "m.onnx").write_bytes(b"\0")
    (tmp_path / "d").mkdir()
    code = ("import sys\n" + "".join(f"sys.modules[{n!r}] = None\n" for n in WORKSTATION_ONLY)
            + "from rockedge.cli import main\nsys.argv = ['rockedge'] + sys.argv[1:]\nmain()\n")
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and f"pip install 'rockedge[{extra}]'" in lines[0], r.stderr
