"""--trust-plan-code reaches the TensorRT backend from every command that opens a plan, and from the Python API
(issue 22, part 1). No TensorRT is needed: a fake version-compatible plan with a valid manifest is refused before
anything is deserialized, and with the flag a spy stops the backend right after the trust check."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from helpers import cli_runner

from rockedge.cli import main
from rockedge.errors import RockedgeError

TRUSTED = "the plan was trusted; stopping before TensorRT"


@pytest.fixture
def plan(tmp_path, monkeypatch):
    """A version-compatible plan from elsewhere: a valid manifest, no record of a build on this machine."""
    from rockedge.runtime.manifest import EngineManifest, write_manifest
    from rockedge.spec import ModelSpec

    monkeypatch.setenv("ROCKEDGE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # importing it would raise: nothing may get that far
    p = tmp_path / "vc.plan"
    p.write_bytes(b"version-compatible plan bytes")
    write_manifest(p, EngineManifest(spec=ModelSpec(arch="lraspp_mobilenet_v3_large", input_size=(64, 64)),
                                     tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                                     version_compatible=True))
    return p


@pytest.fixture
def seen(monkeypatch):
    """What each trust check was told; a trusted plan stops there with :data:`TRUSTED`."""
    from rockedge.runtime.backends import trt

    calls: list[bool] = []
    real = trt.host_code_allowed

    def spy(path, manifest, trusted):
        calls.append(trusted)
        if trusted:
            raise RockedgeError(TRUSTED)
        return real(path, manifest, trusted)

    monkeypatch.setattr(trt, "host_code_allowed", spy)
    return calls


def command(name: str, plan, tmp_path, monkeypatch) -> list[str]:
    if name == "run":
        cv2.imwrite(str(tmp_path / "rocks.png"), np.full((64, 64, 3), 90, np.uint8))
        return ["run", str(plan), str(tmp_path / "rocks.png"), "--out", str(tmp_path / "o"), "-q"]
    if name == "eval":
        (tmp_path / "data").mkdir(exist_ok=True)
        return ["eval", str(plan), "--data", str(tmp_path / "data"), "-q"]
    if name == "verify":
        return ["verify", str(plan), "--reference", str(plan)]
    # benchmark measures in a child process, and only where TensorRT and a GPU are: run the child's code here
    import rockedge.benchmark as bench

    monkeypatch.setattr(bench, "targets_for", lambda m: [bench.Target(str(m), "trt")])
    monkeypatch.setattr(bench, "_child", lambda req, t: bench.measure(req))
    return ["benchmark", str(plan), "--out", str(tmp_path / "b"), "-q"]


@pytest.mark.parametrize("name", ["run", "eval", "verify", "benchmark"])
def test_every_command_passes_trust_plan_code_to_the_backend(name, plan, seen, tmp_path, monkeypatch):
    args = command(name, plan, tmp_path, monkeypatch)
    r = cli_runner().invoke(main, args, catch_exceptions=False)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "--trust-plan-code" in lines[0] and "host code" in lines[0], \
        r.stderr
    assert seen and not any(seen)
    seen.clear()
    r = cli_runner().invoke(main, [*args, "--trust-plan-code"], catch_exceptions=False)
    assert r.exit_code == 1 and TRUSTED in r.stderr, r.stderr
    assert seen and all(seen)


def test_the_python_api_takes_trust_plan_code(plan, seen, tmp_path):
    from rockedge.runtime import Segmenter
    from rockedge.runtime.backends.loader import BackendOptions, open_backend
    from rockedge.runtime.run import run_model

    frames = [np.full((64, 64, 3), 90, np.uint8)]
    with pytest.raises(RockedgeError, match="--trust-plan-code"):
        run_model(plan, frames, out=tmp_path / "o.mp4", progress=False)
    for open_it in (lambda o: run_model(plan, frames, out=tmp_path / "o.mp4", options=o, progress=False),
                    lambda o: Segmenter(plan, o), lambda o: open_backend(plan, o)):
        with pytest.raises(RockedgeError, match=TRUSTED):
            open_it(BackendOptions(trust_plan_code=True))
    assert seen == [False, True, True, True]
    assert not (tmp_path / "o.mp4").exists()
