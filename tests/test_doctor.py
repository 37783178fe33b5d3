"""`rockedge doctor`: the real checks on this machine (no GPU, no TensorRT), Jetson cases on fixture trees."""

from __future__ import annotations

import json
import sys

from click.testing import CliRunner

from rockedge import doctor
from rockedge.cli import main
from helpers import cli_runner
from rockedge.doctor import (
    _guard,
    jetson_check,
    memory_check,
    run_checks,
    tensorrt_check,
)

NAMES = ["Python", "numpy", "OpenCV", "ONNX Runtime", "TensorRT", "CUDA GPU", "Jetson", "memory", "output folder"]


def test_doctor_on_this_machine_warns_about_gpu_and_exits_zero(tmp_path):
    r = CliRunner().invoke(main, ["doctor", "--out", str(tmp_path), "--json", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "d.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == NAMES and report["failed"] == []
    assert checks["OpenCV"]["status"] == "ok" and ".mp4/mp4v" in checks["OpenCV"]["value"]["codecs"]
    assert "CPUExecutionProvider" in checks["ONNX Runtime"]["value"]["providers"]
    # No GPU and no TensorRT here: warnings that say what is lost, with a hint, never a failure.
    assert checks["CUDA GPU"]["status"] == "warn" and "cudaError" in checks["CUDA GPU"]["detail"]
    assert "no NVIDIA driver" in checks["CUDA GPU"]["detail"] and checks["CUDA GPU"]["value"]["runtime"]
    assert checks["TensorRT"]["status"] == "warn" and checks["TensorRT"]["hint"]
    assert checks["Jetson"]["detail"].startswith("not a Jetson")
    for line in ("WARN  TensorRT", "OK    output folder", "9 checks:"):
        assert line in r.output
    assert "-> " in r.output  # hints under the warnings


def test_doctor_json_to_stdout_and_unwritable_out_fails_in_one_line(tmp_path):
    r = cli_runner().invoke(main, ["doctor", "--json", "-"])
    assert r.exit_code == 0 and json.loads(r.stdout)["checks"][0]["name"] == "Python"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = CliRunner().invoke(main, ["doctor", "--out", str(blocker / "runs"), "-q"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == "error: doctor: 1 check(s) failed: output folder"
    assert "FAIL  output folder" in r.output and "is a file, not a folder" in r.output
    assert "OK    numpy" not in r.output  # -q keeps only what needs attention


def _jetson_root(tmp_path, meminfo_kb=(7_600_000, 5_000_000, 3_800_000, 3_800_000), py="python3.10"):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, "
                                                "EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n")
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Orin Nano Engineering Reference Developer Kit\x00")
    total, avail, swap_total, swap_free = meminfo_kb
    (root / "proc/meminfo").write_text(f"MemTotal: {total} kB\nMemFree: 100 kB\nMemAvailable: {avail} kB\n"
                                       f"SwapTotal: {swap_total} kB\nSwapFree: {swap_free} kB\n")
    (root / f"usr/lib/{py}/dist-packages/tensorrt").mkdir(parents=True)
    return root


def test_jetson_in_a_venv_without_jetpack_bindings_fails_with_the_fix(tmp_path):
    checks = {c.name: c for c in run_checks(tmp_path, root=_jetson_root(tmp_path))}
    assert checks["Jetson"].status == "ok"
    assert checks["Jetson"].value["jetpack"] == "6.2" and "Orin Nano" in checks["Jetson"].detail
    trt = checks["TensorRT"]
    assert trt.status == "fail" and "--system-site-packages" in trt.hint
    mine = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert ("built for python3.10" in trt.hint) == (mine != "python3.10")
    assert checks["CUDA GPU"].status == "fail"  # on a Jetson, no GPU is a failure, not a warning
    assert checks["memory"].status == "ok"
    # pip's onnxruntime (CPU provider only) on a Jetson: works, but says what is missing.
    ort = checks["ONNX Runtime"]
    assert ort.status == "warn" and "CPU only on a Jetson" in ort.detail and "onnxruntime-gpu" in ort.hint


def test_l4t_from_dpkg_when_nv_tegra_release_is_missing_and_jetpack_family(tmp_path):
    root = _jetson_root(tmp_path)
    (root / "etc/nv_tegra_release").unlink()
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: libc6\nStatus: install ok installed\nVersion: 2.35-0ubuntu3.8\n\n"
        "Package: nvidia-l4t-core\nStatus: install ok installed\nArchitecture: arm64\n"
        "Version: 35.6.9-20250101000000\nDescription: NVIDIA Core Package\n continued line\n")
    c = jetson_check(root)
    assert c.status == "ok" and c.value["l4t"] == "35.6.9" and c.value["jetpack"] == "5.1.x", c
    (root / "var/lib/dpkg/status").write_text("Package: nvidia-l4t-core\nVersion: 32.7.4-20230608212426\n")
    c = jetson_check(root)
    assert c.status == "warn" and c.value["jetpack"] == "4.x" and "JetPack 5.1" in c.hint


def test_cuda_python_newer_than_the_driver_gets_the_pin(monkeypatch):
    # JetPack 6's driver is CUDA 12.6; `pip install cuda-python` brings 13.x. The GPU probe itself runs for real.
    monkeypatch.setattr(doctor, "cuda_versions", lambda: (12060, 13000))
    c = doctor.cuda_check(on_jetson=True)
    assert c.status == "fail" and "driver CUDA 12.6, cuda-python runtime 13.0" in c.detail
    assert "pip install 'cuda-python>=12,<13'" in c.hint


def test_a_tensorrt_package_that_does_not_import_is_reported_with_its_error(tmp_path, monkeypatch):
    import importlib

    pkg = tmp_path / "site" / "tensorrt"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('libnvinfer.so.10: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    # whatever another test imported as tensorrt (a fake) must not answer for this package
    for name in [m for m in sys.modules if m == "tensorrt" or m.startswith("tensorrt.")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    try:
        c = tensorrt_check(on_jetson=False)
        assert c.status == "warn" and c.detail == ("installed but not usable: ImportError: libnvinfer.so.10: cannot "
                                                   "open shared object file") and "nvinfer" in c.hint
        (pkg / "__init__.py").write_text("__version__ = '10.3.0'\n")  # a stub-only package
        sys.modules.pop("tensorrt", None)
        c = tensorrt_check(on_jetson=True)
        assert c.status == "fail" and "stub-only" in c.detail
    finally:
        sys.modules.pop("tensorrt", None)


def test_low_memory_warns_with_the_swap_recipe(tmp_path):
    c = memory_check(_jetson_root(tmp_path, meminfo_kb=(3_900_000, 900_000, 0, 0)))
    assert c.status == "warn" and "mkswap" in c.hint and "--workspace" in c.hint


def test_a_probe_that_raises_is_a_fail_line_not_a_traceback():
    def broken():
        raise RuntimeError("libnvinfer.so.10: cannot open shared object file\nmore")

    c = _guard("TensorRT", broken)
    assert c.status == "fail" and c.detail == "probe failed: RuntimeError: libnvinfer.so.10: cannot open shared object file"


def test_python_38_is_ok_and_older_fails(monkeypatch):
    # JetPack 5 ships Python 3.8: doctor must pass it (rockedge.layers.OLDEST_PYTHON), and fail 3.7.
    from types import SimpleNamespace

    from rockedge.layers import OLDEST_PYTHON

    assert OLDEST_PYTHON == (3, 8)
    for version, status in (((3, 8, 10, "final", 0), "ok"), ((3, 7, 17, "final", 0), "fail")):
        fake = SimpleNamespace(version_info=version, prefix=sys.prefix, base_prefix=sys.base_prefix)
        monkeypatch.setattr(doctor, "sys", fake)
        c = doctor.python_check()
        assert c.status == status, (version, c)
        if status == "fail":
            assert c.hint == "rockedge needs Python >= 3.8"
