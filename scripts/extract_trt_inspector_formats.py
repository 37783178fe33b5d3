#!/usr/bin/env python3
"""Collect the engine-inspector "Format/Datatype" strings that ship in NVIDIA/TensorRT as example data.

    python scripts/extract_trt_inspector_formats.py MIRROR OUT.json [--ref v10.16]

MIRROR is a git directory of github.com/NVIDIA/TensorRT. The script reads (with ``git show``) the
example ``*.graph.json`` files of tools/experimental/trt-engine-explorer (these are the output of
IEngineInspector.get_engine_information(LayerInformationFormat.JSON), saved by trex), lists each
distinct "Format/Datatype" string with the files it occurs in, copies three small layer objects as
fixture data, and records the string keys that trex and Polygraphy use to turn such a string into a
precision. Only strings and JSON values are copied (data, with the source cited); no code.
tests/data/tensorrt_api/inspector_formats.json was made with this script; tests never run it.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

TREX = "tools/experimental/trt-engine-explorer"
POLY_UTIL = "tools/Polygraphy/polygraphy/backend/trt/util.py"
FIXTURES = [  # (file under TREX, predicate description, predicate)
    ("examples/pytorch/resnet/A100/fp16/resnet.onnx.engine.graph.json", "first CaskConvolution (FP16 in/out)",
     lambda L: L["LayerType"] == "CaskConvolution"),
    ("tests/inputs/mobilenet.qat.onnx.engine.graph.json", "first CaskConvolution with Int8 input and output",
     lambda L: L["LayerType"] == "CaskConvolution"
     and all("Int8" in t["Format/Datatype"] for t in L["Inputs"] + L["Outputs"])),
    ("examples/pytorch/resnet/A100/fp16/resnet.onnx.engine.graph.json", "first Reformat (FP32 -> FP16 input reformat)",
     lambda L: L["LayerType"] == "Reformat"),
]


def git(mirror: str, *args: str) -> str:
    return subprocess.run(["git", "-C", mirror, *args], capture_output=True, text=True, check=True).stdout


def dict_literal_after(text: str, anchor: str) -> tuple[dict, int]:
    """Evaluate the {...} literal that follows `anchor` (string keys -> simple values) as data."""
    i = text.index(anchor)
    j = text.index("{", i)
    depth, k = 0, j
    while True:
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                break
        k += 1
    body = text[j : k + 1]
    line = text.count("\n", 0, j) + 1
    # values may be names such as DataType.FLOAT32: keep them as strings
    body = re.sub(r":\s*([A-Za-z_][\w.]*)\s*,", lambda m: f": {json.dumps(m.group(1))},", body)
    return ast.literal_eval(body), line


def polygraphy_keys(mirror: str, ref: str) -> dict | None:
    try:
        text = git(mirror, "show", f"{ref}:{POLY_UTIL}")
    except subprocess.CalledProcessError:
        return None
    if "def dtype_from_fmt_dtype" not in text:
        return {"ref": ref, "file": POLY_UTIL, "present": False}
    start = text.index("def dtype_from_fmt_dtype")
    mapping, line = dict_literal_after(text[start:], "mapping")
    line += text.count("\n", 0, start)
    return {
        "ref": ref,
        "commit": git(mirror, "rev-parse", f"{ref}^{{commit}}").strip(),
        "file": POLY_UTIL,
        "function_line": text.count("\n", 0, start) + 1,
        "mapping_line": line,
        "present": True,
        "match_rule": "contents.upper(); first key (in this order) that is a substring wins; no match -> "
        "G_LOGGER.internal_error(...) and None",
        "substrings_in_order": list(mapping.items()),
    }


def grep_lines(mirror: str, ref: str, path: str, needle: str) -> list[int]:
    try:
        text = git(mirror, "show", f"{ref}:{path}")
    except subprocess.CalledProcessError:
        return []
    return [i + 1 for i, ln in enumerate(text.splitlines()) if needle in ln]


def variants(m: str) -> list[dict]:
    """Other spellings of the same strings inside NVIDIA/TensorRT (docs/examples), with file:line."""
    probes = [
        ("Row major linear FP32 format", "python/docstrings/infer/pyCoreDoc.h", ["v8.6.1", "v10.3.0", "v11.0"],
         "docstring example of ICudaEngine.get_tensor_format_desc (kCHW + FP32); note the trailing 'format', "
         "which the trex example files do not have ('Row major linear FP32')"),
        ("Two wide channel vectorized row major FP16 format", "python/docstrings/infer/pyCoreDoc.h",
         ["v8.6.1", "v10.3.0", "v11.0"], "docstring example (kCHW2 + FP16)"),
        ("Channel major FP16 format where C % 8 == 0 and H Stride % 32 == 0", "python/docstrings/infer/pyCoreDoc.h",
         ["v8.6.1", "v10.3.0", "v11.0"], "docstring example (kHWC8 + FP16 + line stride 32)"),
        ("Two-wide channel vectorized row-major FP16 format", "include/NvInferRuntime.h", ["v10.3.0", "v10.16"],
         "C++ header comment for getTensorFormatDesc: hyphenated spelling"),
        ("Format: Float", "tools/Polygraphy/examples/cli/inspect/02_inspecting_a_tensorrt_engine/README.md",
         ["v10.16"], "Polygraphy example output for a TensorRT 10 engine: Format/Datatype is the bare dtype 'Float' "
         "(Myelin/kgen layers), not a layout sentence"),
        ('"N/A": None', POLY_UTIL, ["v10.3.0", "v10.16"],
         "Polygraphy treats a Format/Datatype containing 'N/A' as unknown dtype (and omits the Format docstring)"),
        ("# kgen formats", f"{TREX}/trex/activations.py", ["v10.16"],
         "trex's list of bare dtype strings used by TensorRT 9/10 kgen layers: BFloat16, Bool, Double, Float, FP8, "
         "Half, Int16, Int32, Int64, Int8, None, UInt8, Int4, FP4, FP4E2M1, ..."),
        (".replace('.', '')", f"{TREX}/trex/activations.py", ["v10.16"],
         "trex strips '.' before the lookup, which suggests some TensorRT versions end the sentence with a "
         "period (such a string, 'Thirty-two wide channel vectorized row major Int8 format.', was seen in a "
         "third-party file whose repository could not be identified; treat as unconfirmed)"),
    ]
    out = []
    for needle, path, refs, note in probes:
        where = {r: grep_lines(m, r, path, needle) for r in refs}
        out.append({"string": needle, "file": path, "lines": where, "note": note})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mirror")
    ap.add_argument("out")
    ap.add_argument("--ref", default="v10.16")
    ap.add_argument("--compare-refs", nargs="*", default=["v8.6.1", "v10.3.0"])
    ap.add_argument("--polygraphy-refs", nargs="*", default=["v8.6.1", "v10.3.0", "v10.16"])
    a = ap.parse_args(argv)
    m, ref = a.mirror, a.ref
    commit = git(m, "rev-parse", f"{ref}^{{commit}}").strip()
    tree = git(m, "ls-tree", "-r", ref, TREX).splitlines()
    graphs = sorted((ln.split()[3], ln.split()[2]) for ln in tree if ln.endswith(".graph.json"))
    same = {}
    for r in a.compare_refs:
        other = sorted((ln.split()[3], ln.split()[2]) for ln in git(m, "ls-tree", "-r", r, TREX).splitlines()
                       if ln.endswith(".graph.json"))
        same[r] = other == graphs

    formats: dict[str, dict] = {}
    tensor_keys: dict[str, int] = {}
    weight_types: dict[str, list[str]] = {}
    layer_types: dict[str, int] = {}
    for path, _blob in graphs:
        d = json.loads(git(m, "show", f"{ref}:{path}"))
        rel = path[len(TREX) + 1 :]
        for L in d["Layers"]:
            layer_types[L["LayerType"]] = layer_types.get(L["LayerType"], 0) + 1
            for side in ("Inputs", "Outputs"):
                for t in L.get(side, []):
                    for k in t:
                        tensor_keys[k] = tensor_keys.get(k, 0) + 1
                    s = t["Format/Datatype"]
                    e = formats.setdefault(s, {"format": s, "count": 0, "files": []})
                    e["count"] += 1
                    if rel not in e["files"]:
                        e["files"].append(rel)
            for wk in ("Weights", "Bias"):
                if isinstance(L.get(wk), dict) and "Type" in L[wk]:
                    weight_types.setdefault(L[wk]["Type"], [])
                    if rel not in weight_types[L[wk]["Type"]]:
                        weight_types[L[wk]["Type"]].append(rel)

    fixtures = []
    for rel, desc, pred in FIXTURES:
        d = json.loads(git(m, "show", f"{ref}:{TREX}/{rel}"))
        idx, layer = next((i, L) for i, L in enumerate(d["Layers"]) if pred(L))
        fixtures.append({"file": f"{TREX}/{rel}", "layer_index": idx, "selected_as": desc, "layer": layer})

    act = git(m, "show", f"{ref}:{TREX}/trex/activations.py")
    region, region_line = dict_literal_after(act, "_regionFormatDict")
    meta = {}
    for rel in ("examples/pytorch/resnet/A100/fp16/resnet.onnx.engine.build.metadata.json",
                "examples/pytorch/resnet/A100/fp16/resnet.onnx.engine.metadata.json",
                "tests/inputs/mobilenet.qat.onnx.engine.profile.metadata.json"):
        j = json.loads(git(m, "show", f"{ref}:{TREX}/{rel}"))
        if isinstance(j, list):
            j = {k: j[0].get(k) for k in ("Name", "ComputeCapability", "CUDA_VERSION")}
        elif "device_information" in j:
            j = {"device_information": j["device_information"]}
        meta[rel] = j
    history = git(m, "log", "--format=%h %ad %s", "--date=short", ref, "--",
                  *[p for p, _ in graphs]).strip().splitlines()

    out = {
        "source": {
            "repo": "NVIDIA/TensorRT",
            "ref": ref,
            "commit": commit,
            "dir": TREX,
            "graph_json_files": [p[len(TREX) + 1 :] for p, _ in graphs],
            "identical_graph_json_blobs_at": same,
            "commits_touching_graph_json": history,
            "tensorrt_version": "not stated in the JSON files. The pytorch/A100 and tests/ files came with trex "
            "v0.1.0/v0.1.1 (2022-04-13 / 2022-06-08), when trex's README said 'trex supports TensortRT 8.2 and 8.4'; "
            "the tensorflow/RTX-3090 files came with commit a912a045 (2022-09-21), when it said '8.2 or newer' "
            "(tools/experimental/trt-engine-explorer/README.md, section 'Supported TensorRT Versions'). "
            "So: TensorRT 8.2-8.5 era engines. Device metadata: A100 (CUDA 11.6), RTX 3090, TITAN RTX.",
            "metadata_excerpt": meta,
        },
        "tensor_entry_keys": tensor_keys,
        "per_tensor_precision_field": "Format/Datatype",
        "other_precision_fields": {
            "layer.Weights.Type / layer.Bias.Type": weight_types,
            "note": "No other per-output precision key occurs in these examples; an Inputs/Outputs entry has "
            "Name, Dimensions, Format/Datatype and (mostly) Location.",
        },
        "layer_types": layer_types,
        "formats": list(formats.values()),
        "fixture_layers": fixtures,
        "trex_region_format_dict": {
            "file": f"{TREX}/trex/activations.py",
            "ref": ref,
            "line": region_line,
            "preprocessing": "raw_dict['Format/Datatype'].replace('.', '') before lookup (activations.py:136)",
            "precision_rule": "compressed value's first word (split on ' ') -> precision: FP8, FP16/Half->FP16, "
            "FP32/Float->FP32, Int8->INT8, INT32/Int32->INT32, Int64, UInt8, BFloat16, Int4, FP4; unknown -> size 0",
            "entries": region,
        },
        "polygraphy_dtype_from_fmt_dtype": [p for r in a.polygraphy_refs if (p := polygraphy_keys(m, r))],
        "format_string_variants_elsewhere_in_tensorrt": variants(m),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"{a.out}: {len(formats)} formats from {len(graphs)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
