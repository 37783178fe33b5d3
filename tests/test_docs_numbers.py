"""docs/benchmarks.md says only what its results files hold.

The page's convention (stated at its top):
- every ``## `` section that quotes measurements names its results file in its heading, in backticks
  (```2026-12-02-x86_64-2core-amx-demo.json```, a file under benchmarks/results/); a section whose heading names
  none quotes no numbers at all;
- every number in a section's prose and tables equals some numeric value in that file after the rounding shown
  (0.648 matches 0.6480575, 63.9 and 63.9 % match 0.639, 39.7 matches 39.71, 5.5 min matches 328.7 seconds);
- not checked: text in backticks or code blocks (commands, file names, flags), dates, names with digits
  (AVX-512, INT8, ResNet-50, 1080p), and the phrases a section lists in an HTML comment
  ``<!-- unchecked: 960x540 video | lr 5e-3 -->`` (settings and targets, not measurements), each of which must
  occur in the section;
- a section names the script that reproduces it (a ``benchmarks/bench_*.py`` or ``scripts/*.sh`` that exists)
  and the machine its file records (the CPU, and each ISA extension where the file lists them).

The pages that quote results in passing (README.md, docs/quickstart.md, docs/export.md) follow the same rule per
part (the text between two headings): from the paragraph that names a results file in backticks to the end of the
part, every number is read from that file; before it, a number with a unit of time, speed, share or size (ms, x,
s, min, %, MB) is a measurement that names no file, and fails unless the part's ``<!-- unchecked: ... -->`` comment
lists it (settings and targets: "trains for 5 minutes", "within 1 point").
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results"

RESULTS_NAME = re.compile(r"`(\d{4}-\d{2}-\d{2}-[A-Za-z0-9._-]+\.json)`")
UNCHECKED = re.compile(r"<!--\s*unchecked:(.*?)-->", re.S)
# A number: not part of a word or a name (AVX2, fp32, V3, AVX-512, ResNet-50), optionally negative when the minus
# stands alone, with dotted parts (a version) or an exponent; what follows decides whether it is a unit.
NUMBER = re.compile(r"(?<![A-Za-z0-9_.])(?:(?<![^\s(|>])-)?\d+(?:\.\d+)*(?:e-?\d+)?")
UNITS = ("x", "%", "ms", "s", "MB", "GB", "GiB", "GFLOP")


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) per ``## `` section, code fences kept in the body; the intro's heading is ''."""
    out, heading, body, fence = [], "", [], None
    for line in text.splitlines():
        m = re.match(r"^(```|~~~)", line)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
        if fence is None and line.startswith("## "):
            out.append((heading, "\n".join(body)))
            heading, body = line[3:].strip(), []
        else:
            body.append(line)
    out.append((heading, "\n".join(body)))
    return out


def checked_text(heading: str, body: str) -> tuple[str, list[str]]:
    """The section's text as the check reads it, and the phrases its comment leaves unchecked."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", " ", f"{heading}\n{body}", flags=re.S | re.M)  # code blocks
    text = re.sub(r"`[^`]*`", " ", text)  # commands, file names, flags (a code span may wrap a line)
    phrases = [p.strip() for m in UNCHECKED.finditer(text) for p in m.group(1).split("|") if p.strip()]
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images keep their text only
    for p in phrases:
        text = text.replace(p, " ")
    text = re.sub(r"\d{4}-\d{2}-\d{2}", " ", text)  # dates
    text = re.sub(r"(?<=\d)x(?=\d)", " x ", text)  # 192x352: two sizes
    text = text.replace("\\|", " ")  # an escaped pipe in a table cell
    return text, phrases


def numbers_in(text: str) -> list[tuple[str, str]]:
    """(number as written, what follows it) for every number the check reads in ``text``."""
    found = []
    for m in NUMBER.finditer(text):
        tok, start = m.group(0), m.start()
        if start and text[start - 1] == "-" and (start < 2 or not text[start - 2].isdigit()):
            continue  # AVX-512, ResNet-50, a-1: a name (after a digit the hyphen is a range: 0.3-0.9)
        after = re.match(r"[A-Za-z%]*", text[m.end():]).group(0)
        if after and after not in UNITS:
            continue  # 1080p, 3rd, 8bit: a name, not a measurement
        if text[m.end():m.end() + 1] == "." and text[m.end() + 1:m.end() + 2].isdigit():
            continue
        unit = after or re.match(r"\s*(%|min\b|minutes\b|s\b|seconds\b|ms\b)?", text[m.end():]).group(1) or ""
        found.append((tok, unit))
    return found


def values_in(doc) -> tuple[list[float], set[str]]:
    """Every number a results file holds: its numeric values, and numbers written inside its strings
    ("1920x1080 @ 29.97", "3.11.7"), the dotted ones also as text."""
    nums: list[float] = []
    dotted: set[str] = set()

    def walk(o) -> None:
        if isinstance(o, bool) or o is None:
            return
        if isinstance(o, (int, float)):
            nums.append(float(o))
        elif isinstance(o, str):
            text = re.sub(r"(?<=\d)x(?=\d)", " x ", o)
            for tok, _ in numbers_in(text):
                if tok.count(".") > 1:
                    dotted.add(tok)
                else:
                    nums.append(float(tok))
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(doc)
    return nums, dotted


def matches(tok: str, unit: str, nums: list[float], dotted: set[str]) -> bool:
    """Whether ``tok`` is one of ``nums`` after the rounding shown (as a fraction shown in percent too)."""
    if tok.count(".") > 1:
        return tok in dotted
    shown = float(tok)
    if "e" in tok:  # 6.6e-6: the same significant digits
        digits = len(tok.split("e")[0].replace("-", "").replace(".", "")) - 1
        return any(v != 0 and f"{v:.{digits}e}" == f"{shown:.{digits}e}" for v in nums)
    decimals = len(tok.split(".")[1]) if "." in tok else 0
    half = 0.5 * 10 ** -decimals + 1e-9
    scales = [1.0, 100.0] + ([1 / 60] if unit in ("min", "minutes") else [])
    return any(math.isfinite(v) and abs(v * s - shown) <= half for v in nums for s in scales)


def machine_of(doc) -> dict | str | None:
    """The first ``machine`` entry of a results file, breadth first (top level, then e.g. benchmark.machine)."""
    queue = [doc]
    while queue:
        o = queue.pop(0)
        if isinstance(o, dict):
            if "machine" in o:
                return o["machine"]
            queue += list(o.values())
    return None


PAGE_SECTIONS = sections(PAGE.read_text())


def test_the_page_has_results_sections():
    named = [h for h, _ in PAGE_SECTIONS if RESULTS_NAME.search(h)]
    assert named, "no section of docs/benchmarks.md names its results file in its heading"


@pytest.mark.parametrize("heading,body", PAGE_SECTIONS, ids=[h or "(intro)" for h, _ in PAGE_SECTIONS])
def test_every_number_is_in_the_sections_results_file(heading, body):
    names = RESULTS_NAME.findall(heading)
    text, phrases = checked_text(heading, body)
    stale = [p for p in phrases if p not in f"{heading}\n{UNCHECKED.sub(' ', body)}"]
    assert not stale, f"section {heading!r}: unchecked phrases that do not occur in it: {stale}"
    found = numbers_in(text)
    if not names:
        assert not found, (f"section {heading or '(intro)'!r} names no results file in its heading but quotes "
                           f"{[t for t, _ in found]}")
        return
    assert len(names) == 1, f"section {heading!r} names {len(names)} results files; one per section"
    path = RESULTS / names[0]
    assert path.is_file(), f"section {heading!r} names {names[0]}, which is not under benchmarks/results/"
    nums, dotted = values_in(json.loads(path.read_text()))
    wrong = [f"{t}{' ' + u if u else ''}" for t, u in found if not matches(t, u, nums, dotted)]
    assert not wrong, f"section {heading!r}: numbers that {names[0]} does not hold: {wrong}"


@pytest.mark.parametrize("heading,body", [(h, b) for h, b in PAGE_SECTIONS if RESULTS_NAME.search(h)],
                         ids=[h for h, _ in PAGE_SECTIONS if RESULTS_NAME.search(h)])
def test_every_results_section_names_its_script_and_machine(heading, body):
    scripts = re.findall(r"(?:benchmarks/bench_\w+\.py|scripts/\w+\.sh)", body)
    assert scripts, f"section {heading!r} names no script that reproduces it"
    for s in scripts:
        assert (ROOT / s).is_file(), f"section {heading!r} names {s}, which does not exist"
    doc = json.loads((RESULTS / RESULTS_NAME.search(heading).group(1)).read_text())
    machine = machine_of(doc)
    assert machine, f"{RESULTS_NAME.search(heading).group(1)} records no machine"
    if isinstance(machine, str):
        assert machine in body, f"section {heading!r} does not state its file's machine {machine!r}"
        return
    assert machine["cpu"] in body, f"section {heading!r} does not state its file's CPU {machine['cpu']!r}"
    missing = [isa for isa in machine.get("isa") or [] if isa not in body]
    assert not missing, f"section {heading!r} does not list its file's ISA extensions {missing}"


def test_the_rounding_rule():
    nums, dotted = values_in({"a": 0.6480575, "b": 0.639, "c": 39.71, "w": 328.7, "v": "3.11.7",
                              "video": "1920x1080 @ 29.97"})
    for tok, unit in (("0.648", ""), ("63.9", "%"), ("64", ""), ("39.7", ""), ("5.5", "min"), ("3.11.7", ""),
                      ("29.97", ""), ("1920", "")):
        assert matches(tok, unit, nums, dotted), tok
    for tok, unit in (("0.649", ""), ("63.8", "%"), ("39.8", ""), ("5.5", ""), ("3.11.8", ""), ("0.6482", "")):
        assert not matches(tok, unit, nums, dotted), tok
    text, _ = checked_text("", "AVX-512 VNNI, ResNet-50, INT8, 1080p, `--runs 40`, 2026-12-02; 0.36x, -0.22 "
                               "(99.995-99.999 %), 192x352, 6.6e-6")
    assert [t for t, _ in numbers_in(text)] == ["0.36", "-0.22", "99.995", "99.999", "192", "352", "6.6e-6"]


# -- pages that quote results in passing -----------------------------------------------------------------------------

QUOTING = [ROOT / "README.md", ROOT / "docs" / "quickstart.md", ROOT / "docs" / "export.md"]
MEASURED = ("ms", "x", "s", "seconds", "min", "minutes", "%", "MB", "GB", "GiB")


def parts(text: str) -> list[tuple[str, list[str]]]:
    """(heading, paragraphs) for the text between two headings of any level; code fences stay in their paragraph."""
    out: list[tuple[str, list[str]]] = []
    heading, paras, cur, fence = "", [], [], None
    for line in text.splitlines():
        m = re.match(r"^(```|~~~)", line)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
        if fence is None and (line.startswith("#") or not line.strip()):
            if cur:
                paras.append("\n".join(cur))
                cur = []
            if line.startswith("#"):
                out.append((heading, paras))
                heading, paras = line.lstrip("#").strip(), []
            continue
        cur.append(line)
    if cur:
        paras.append("\n".join(cur))
    out.append((heading, paras))
    return out


def quoting_problems(text: str) -> list[str]:
    """What breaks the rule above in one page's ``text``: numbers no results file holds, or measurements that name
    none."""
    problems = []
    for heading, paras in parts(text):
        whole = "\n\n".join(paras)
        phrases = [p.strip() for m in UNCHECKED.finditer(whole) for p in m.group(1).split("|") if p.strip()]
        stale = [p for p in phrases if p not in UNCHECKED.sub(" ", whole)]
        problems += [f"{heading or '(top)'}: unchecked phrase {p!r} does not occur" for p in stale]
        source = None
        for para in paras:
            names = RESULTS_NAME.findall(para)
            if len(set(names)) > 1:
                problems.append(f"{heading or '(top)'}: a paragraph names {len(set(names))} results files; one")
            if names:
                source = RESULTS / names[0]
                if not source.is_file():
                    problems.append(f"{heading or '(top)'}: {names[0]} is not under benchmarks/results/")
                    source = None
                    continue
            body = UNCHECKED.sub(" ", para)
            for p in phrases:
                body = body.replace(p, " ")
            found = numbers_in(checked_text("", body)[0])
            if source is not None:
                nums, dotted = values_in(json.loads(source.read_text()))
                problems += [f"{heading or '(top)'}: {t}{' ' + u if u else ''} is not in {source.name}"
                             for t, u in found if not matches(t, u, nums, dotted)]
            else:
                problems += [f"{heading or '(top)'}: {t} {u} is a measurement that names no results file"
                             for t, u in found if u in MEASURED]
    return problems


@pytest.mark.parametrize("page", QUOTING, ids=[p.name for p in QUOTING])
def test_pages_quote_only_what_results_files_hold(page):
    problems = quoting_problems(page.read_text())
    assert not problems, f"{page.name}: " + "; ".join(problems)


def test_the_quoting_rule_can_fail():
    demo = "`2026-12-02-x86_64-2core-amx-demo.json`"
    assert quoting_problems("INT8 took 9.6 ms against 12.5 ms for FP32.") == [
        "(top): 9.6 ms is a measurement that names no results file",
        "(top): 12.5 ms is a measurement that names no results file"]
    assert quoting_problems("<!-- unchecked: 5 minutes -->\nIt trains for 5 minutes.") == []
    assert quoting_problems(f"The demo ({demo}) took 384.5 s.\n\n| p50 | 13.0 ms |") == []
    assert quoting_problems(f"The demo ({demo}) took 384.5 s.\n\n| p50 | 9.6 ms |") == [
        "(top): 9.6 ms is not in 2026-12-02-x86_64-2core-amx-demo.json"]
    assert quoting_problems(f"The demo ({demo}) took 384.5 s.\n\n## Next\n\nThat is 9.6 ms.") == [
        "Next: 9.6 ms is a measurement that names no results file"]
