#!/usr/bin/env python3
"""Record the names cuda-python's CUDA runtime module defines, per release, as JSON data for the tests.

    python scripts/extract_cuda_python_api.py VERSION DIR MODULE OUT.json            # import it (this machine)
    python scripts/extract_cuda_python_api.py VERSION FILE.pyx MODULE OUT.json       # read a wheel's .pyx
    python scripts/extract_cuda_python_api.py --check DIR MODULE FILE.pyx            # both agree on one release?

DIR is a folder that ``pip install --no-deps --target DIR cuda-python==X`` (or cuda-bindings for 12.8+) filled;
the module is imported in a fresh ``python -I -S`` child that adds DIR with ``site.addsitedir`` (no driver needed:
importing the bindings does not load libcuda). A wheel built for another platform or Python (JetPack 5's
cuda-python 11.8.2 is an aarch64 cp38 wheel) cannot be imported here, but its wheels ship the generated
``cuda/cudart.pyx`` and ``cudart.pxd``: then the names are read from those files with regular expressions.
``--check`` compares the two methods on a release that has both, so the parser is known to see what the import
sees (it does on 12.1.0 and 12.6.0: no difference).

OUT.json is updated in place: ``versions[VERSION]`` is replaced, other versions are kept. What is recorded:
  module      the module path rockedge imports for that release (rockedge.cuda_rt.CUDART_MODULES: cuda.cudart up to
              12.6.0, cuda.bindings.runtime from 12.6.2 on and in 13)
  names       module-level names starting with "cuda" (functions, classes, enums, constants)
  enums       members of the enums rockedge compares against (ENUMS below)
  attributes  attributes of the classes whose instances rockedge reads (ATTRIBUTE_CLASSES below)
tests/test_trt_api.py reads the JSON; nothing runs this script at test time. The 11.8.2 wheel was fetched with
``pip download cuda-python==11.8.2 --no-deps --only-binary=:all: --python-version 38 --platform
manylinux2014_aarch64`` and unzipped; the others with ``pip install --no-deps --target DIR`` (cuda-bindings and
cuda-pathfinder for 12.9 and 13, whose cuda-python wheels are metapackages).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ENUMS = ("cudaError_t", "cudaMemcpyKind")
ATTRIBUTE_CLASSES = ("cudaDeviceProp",)

_CHILD = r"""
import json, site, sys
site.addsitedir(sys.argv[1])
import importlib
rt = importlib.import_module(sys.argv[2])
enums = {e: sorted(m.name for m in getattr(rt, e)) for e in json.loads(sys.argv[3])}
attrs = {c: sorted(a for a in dir(getattr(rt, c)) if not a.startswith("_")) for c in json.loads(sys.argv[4])}
names = sorted(n for n in dir(rt) if n.startswith("cuda") and n != "cuda")  # "cuda": the package, not an API name
print(json.dumps({"names": names, "enums": enums, "attributes": attrs}))
"""


def from_import(folder: str, module: str) -> dict:
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD, folder, module, json.dumps(ENUMS),
                           json.dumps(ATTRIBUTE_CLASSES)], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout)


def _block(text: str, header: str) -> str:
    """The indented body that follows a top-level ``header`` line."""
    m = re.search(rf"^{re.escape(header)}\n((?:(?:    .*|\s*)\n)*)", text, re.M)
    if not m:
        raise SystemExit(f"{header!r} not found")
    return m.group(1)


def from_pyx(path: str) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    names = set(re.findall(r"^def (cuda\w*)\(", text, re.M))
    names |= set(re.findall(r"^(?:cdef )?class (cuda\w*)\b", text, re.M))
    names |= set(re.findall(r"^(cuda\w*)\s*=", text, re.M))
    pxd = Path(path).with_suffix(".pxd")  # the handle classes (cudaStream_t...) are declared there
    if pxd.is_file():
        names |= set(re.findall(r"^cdef class (cuda\w*)\b", pxd.read_text(encoding="utf-8"), re.M))
    enums = {}
    for e in ENUMS:
        body = _block(text, f"class {e}(IntEnum):")
        enums[e] = sorted(set(re.findall(r"^    (\w+) = ", body, re.M)))
    attrs = {}
    for c in ATTRIBUTE_CLASSES:
        body = _block(text, f"cdef class {c}:")
        found = set(re.findall(r"^    @property\n    def (\w+)\(self\)", body, re.M))
        found |= {n for n in re.findall(r"^    def (\w+)\(", body, re.M) if not n.startswith("_")}
        attrs[c] = sorted(found)
    return {"names": sorted(names), "enums": enums, "attributes": attrs}


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--check":
        folder, module, pyx = argv[1:4]
        a, b = from_import(folder, module), from_pyx(pyx)
        diff = {k: (sorted(set(map(str, a[k])) ^ set(map(str, b[k]))) if k == "names" else
                    {n: sorted(set(a[k][n]) ^ set(b[k][n])) for n in a[k]}) for k in a}
        print(json.dumps(diff, indent=1))
        same = not diff["names"] and not any(v for k in ("enums", "attributes") for v in diff[k].values())
        return 0 if same else 1
    version, source, module, out = argv
    pyx = source.endswith(".pyx")
    rec = from_pyx(source) if pyx else from_import(source, module)
    root = Path(source).parent.parent if pyx else Path(source)  # the wheel's unpacked root / the --target folder
    dists = sorted(d.name[: -len(".dist-info")] for d in root.glob("*.dist-info")
                   if d.name.startswith(("cuda_python", "cuda_bindings")))
    tags = sorted({ln.split(":", 1)[1].strip() for d in root.glob("*.dist-info") if (d / "WHEEL").is_file()
                   for ln in (d / "WHEEL").read_text().splitlines() if ln.startswith("Tag:")})
    how = (f"parsed cuda/cudart.pyx + cudart.pxd of the {' '.join(dists)} wheel ({', '.join(tags)})" if pyx else
           f"dir() of {module} imported in python -I -S {sys.version_info.major}.{sys.version_info.minor} "
           "from a pip install --no-deps --target folder")
    data = json.loads(Path(out).read_text()) if Path(out).exists() else {"versions": {}}
    data.setdefault("about", "names cuda-python's CUDA runtime module defines, per release; made by "
                             "scripts/extract_cuda_python_api.py (see its docstring and cuda_python.md)")
    data["versions"][version] = {"module": module, "distributions": dists, "method": how, **rec}
    data["versions"] = dict(sorted(data["versions"].items(), key=lambda kv: [int(n) for n in kv[0].split(".")]))
    Path(out).write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
