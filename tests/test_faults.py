"""What a user's machine does to a command: a full disk, kill -9 / SIGTERM / SIGHUP mid-write, two writers of one
output, an output that is a folder or too long, closed or full standard streams, a non-UTF-8 locale, malformed
spec and manifest files. Every case ends in one line, a non-zero exit, no partial file and the previous good output
intact; killed runs leave temporaries a later run removes.

Signals, limits and streams are real: the command runs as a child process (``python -m rockedge``) and is sent
real signals, or runs under a real ``RLIMIT_FSIZE`` or a small tmpfs."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import read_video, write_video
from test_runtime import exported

from rockedge.errors import RockedgeError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals, rlimits and tmpfs are Linux's")


@pytest.fixture
def model(trained_ckpt, tmp_path_factory):
    return exported("float", trained_ckpt, tmp_path_factory)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """1500 small frames of noise: several seconds of `rockedge run`, long enough to signal it half-way, and an
    overlay video of several MB (noise does not compress)."""
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(1500)]
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", frames, fps=30.0)


@pytest.fixture
def short_video(tmp_path) -> Path:
    rng = np.random.default_rng(8)
    return write_video(tmp_path / "short.mp4", [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(6)])


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "rockedge", *map(str, args)]


def run_child(*args: object, preexec=None, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=300, preexec_fn=preexec,
                          env={**os.environ, **(env or {})}, **kw)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("warning:", "note:"))]


def one_line(r: subprocess.CompletedProcess, fragment: str) -> str:
    lines = error_lines(r.stderr)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def hidden(folder: Path) -> list[str]:
    """rockedge's temporaries are hidden names beside the target."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def frame_count(path: Path) -> int:
    return len(read_video(path)[1])


def file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def good_output(model: Path, video: Path, out: Path) -> bytes:
    r = run_child("run", "--engine", model, video, "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


def wait_for_frames(folder: Path, proc: subprocess.Popen, min_bytes: int = 20_000, timeout: float = 120) -> None:
    """Until the run's hidden video temporary holds some frames."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        parts = [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".part.mp4")]
        if parts and parts[0].stat().st_size >= min_bytes:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be signalled: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("the run wrote no frames")


# -- 1, 3: a full disk ---------------------------------------------------------------------------------------------


def test_run_on_a_file_size_limit_keeps_the_previous_video(model, long_video, short_video, tmp_path):
    """VideoWriter reports nothing when its writes fail: the finished file is checked before it replaces one."""
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    before = good_output(model, short_video, out)
    r = run_child("run", "--engine", model, long_video, "--out", out, "-q", preexec=file_size_limit(60_000))
    line = one_line(r, "o.")  # the video (checked when finished) or the frame log (its write fails) names itself
    assert "does not open as a video" in line or "o.jsonl: the file is larger than this system allows" in line, line
    assert out.read_bytes() == before
    assert hidden(out.parent) == []
    assert not out.with_suffix(".summary.json").read_text().count("long.mp4")  # the old summary, not a new one


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_run_on_a_full_disk_stops_in_one_line_and_keeps_the_previous_video(model, long_video, short_video, small_tmpfs):
    out = small_tmpfs / "o.mp4"
    before = good_output(model, short_video, out)
    r = run_child("run", "--engine", model, long_video, "--out", out, "-q")
    one_line(r, "no space left to write")
    assert out.read_bytes() == before
    assert hidden(small_tmpfs) == []


def test_synth_video_on_a_file_size_limit_keeps_the_previous_video(tmp_path):
    out = tmp_path / "v.mp4"
    r = run_child("data", "synth-video", "--out", out, "--frames", "3", "--resolution", "64x48", "-q")
    assert r.returncode == 0, r.stderr
    before = out.read_bytes()
    r = run_child("data", "synth-video", "--out", out, "--frames", "200", "--resolution", "320x240", "-q",
                  preexec=file_size_limit(40_000))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(error_lines(r.stderr)) == 1, r.stderr
    assert out.read_bytes() == before
    assert hidden(tmp_path) == []


def test_a_small_disk_gets_one_line_from_every_writer(model, small_tmpfs):
    """An ONNX export larger than the disk: ENOSPC from Python's own writes is one line naming the cause."""
    r = run_child("export", model, "--half", "--out", small_tmpfs / "h.onnx")
    if r.returncode == 0:  # the FP16 copy of the small fixture fits in 2 MB: fill the disk first
        (small_tmpfs / "h.onnx").unlink()
        with open(small_tmpfs / "filler", "wb") as f:
            with pytest.raises(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        r = run_child("export", model, "--half", "--out", small_tmpfs / "h.onnx")
    one_line(r, "no space left on the device")
    assert not (small_tmpfs / "h.onnx").exists()
    assert hidden(small_tmpfs) == []


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from rockedge.data.synth import write_synth_dataset

    return write_synth_dataset(tmp_path_factory.mktemp("tiny") / "ds", n=6, size_hw=(64, 64), progress=False)


def train_args(data: Path, out: Path) -> list[object]:
    """One epoch of LR-ASPP on six 64 px scenes: a few seconds, and a checkpoint of ~13 MB to write."""
    return ["train", "--data", data, "--arch", "lraspp_mobilenet_v3_large", "--epochs", "1", "--batch", "2",
            "--imgsz", "64", "--workers", "0", "--out", out, "-q"]


def test_train_on_a_file_size_limit_is_one_line_naming_the_checkpoint(tiny_data, tmp_path):
    """torch.save's zip writer turns a failed write into "enforce fail at inline_container.cc": the write's own
    error is said instead, naming the checkpoint and the cause."""
    out = tmp_path / "run"
    r = run_child(*train_args(tiny_data, out), preexec=file_size_limit(500_000))
    one_line(r, ".pt: the file is larger than this system allows")
    assert not list(out.glob("*.pt")) and hidden(out) == []


def test_train_on_a_full_disk_is_one_line_naming_the_checkpoint(tiny_data, small_tmpfs):
    out = small_tmpfs / "run"
    one_line(run_child(*train_args(tiny_data, out)), ".pt: no space left on the device")
    assert not list(out.glob("*.pt")) and hidden(out) == []


@pytest.mark.parametrize("target", ["tensorrt", "cpu"], ids=["trt-layout", "cpu-layout"])  # an id "tensorrt" is a marker
def test_int8_export_on_a_file_size_limit_is_one_line_naming_the_output(model, tiny_data, tmp_path, target):
    """ONNX's and ONNX Runtime's C++ writers fail silently and the short temporary model does not parse (protobuf's
    DecodeError); the line names the INT8 output, never a temporary, and nothing lands beside the model."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    src = shutil.copy(model, work / "m.onnx")
    r = run_child("export", src, "--int8", "--target", target, "--data", tiny_data, "--out", work / "q.onnx", "-q",
                  preexec=file_size_limit(1_000_000), env={"TMPDIR": str(tmpdir)})
    line = one_line(r, f"cannot write {work / 'q.onnx'}: ")
    assert "larger than this system allows (ulimit -f?)" in line, line
    assert sorted(p.name for p in work.iterdir()) == ["m.onnx"]  # no -inferred copy, no temporary, no output
    assert not [p for p in tmpdir.iterdir() if p.name.startswith("rockedge-")]


def test_int8_export_with_a_full_tmpdir_names_the_output_and_the_folder(model, tiny_data, tmp_path, small_tmpfs):
    work = tmp_path / "work"
    work.mkdir()
    src = shutil.copy(model, work / "m.onnx")
    r = run_child("export", src, "--int8", "--data", tiny_data, "--out", work / "q.onnx", "-q",
                  env={"TMPDIR": str(small_tmpfs)})
    line = one_line(r, f"cannot write {work / 'q.onnx'}: no space left on the device")
    assert str(small_tmpfs) in line and "TMPDIR" in line, line
    assert sorted(p.name for p in work.iterdir()) == ["m.onnx"]
    assert not [p for p in small_tmpfs.iterdir() if p.name.startswith("rockedge-")]


def test_temporaries_are_never_what_the_line_names(trained_ckpt, tmp_path):
    """The ONNX export stages a hidden file and `data synth` a hidden folder: a failed write names the output."""
    ckpt = trained_ckpt()
    r = run_child("export", ckpt, "--out", tmp_path / "x.onnx", "-q", preexec=file_size_limit(1_000_000))
    one_line(r, f"error: {tmp_path / 'x.onnx'}: the file is larger than this system allows")
    r = run_child("data", "synth", "--out", tmp_path / "ds", "--n", "3", "--imgsz", "256", "-q",
                  preexec=file_size_limit(10_000))
    one_line(r, f"error: {tmp_path / 'ds'}/train/images/000000.jpg: the file is larger than this system allows")
    assert hidden(tmp_path) == [] and not (tmp_path / "ds").exists()


# -- 5, 7: signals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_mid_run_keeps_a_playable_output_and_no_temporaries(model, long_video, tmp_path, sig):
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen(command("run", "--engine", model, long_video, "--out", out, "-q"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_frames(tmp_path, proc)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["stopped"] == "interrupted"
    assert summary["reason"] == ("Ctrl-C" if sig == "SIGINT" else sig)
    n = frame_count(out)
    assert 0 < n < 1500 and n == summary["frames"]
    assert len(out.with_suffix(".jsonl").read_text().splitlines()) == n
    assert hidden(tmp_path) == []


def test_kill_9_keeps_the_previous_output_and_the_next_run_cleans_up(model, long_video, short_video, tmp_path):
    out = tmp_path / "o.mp4"
    before = good_output(model, short_video, out)
    proc = subprocess.Popen(command("run", "--engine", model, long_video, "--out", out, "-q"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_frames(tmp_path, proc)
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert out.read_bytes() == before
    left = hidden(tmp_path)
    assert left and all(f".{proc.pid}-" in name for name in left)  # named after the dead process
    r = run_child("run", "--engine", model, short_video, "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    assert hidden(tmp_path) == []


def test_synth_overwrite_killed_mid_write_keeps_the_dataset_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "ds"
    r = run_child("data", "synth", "--out", out, "--n", "3", "--imgsz", "32", "-q")
    assert r.returncode == 0, r.stderr
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    proc = subprocess.Popen(command("data", "synth", "--out", out, "--n", "5000", "--imgsz", "64", "--overwrite",
                                    "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while not any(p.name.startswith(".ds.") and any(p.rglob("*.png")) for p in tmp_path.iterdir()):
            assert proc.poll() is None and time.monotonic() - t0 < 120, "synth never started writing"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert hidden(tmp_path)  # the killed writer's half
    r = run_child("data", "synth", "--out", out, "--n", "3", "--imgsz", "32", "--overwrite", "-q")
    assert r.returncode == 0, r.stderr
    assert hidden(tmp_path) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_folder_swap_killed_half_way_is_undone(tmp_path):
    """Killed between moving the old folder aside and moving the new one in (where renameat2 cannot exchange)."""
    from rockedge.atomic import recover_dir, staging_dir

    out = tmp_path / "ds"
    pid = _dead_pid()
    old = tmp_path / f".ds.{pid}-0000abcd.old"
    new = tmp_path / f".ds.{pid}-0000abce.new"
    old.mkdir()
    (old / "kept.txt").write_text("previous")
    new.mkdir()
    (new / "maybe-half.txt").write_text("new")
    recover_dir(out)
    assert (out / "kept.txt").read_text() == "previous"  # never the new half: nothing says it was finished
    assert hidden(tmp_path) == []
    with staging_dir(out, overwrite=True) as tmp:
        (tmp / "fresh.txt").write_text("fresh")
    assert [p.name for p in out.iterdir()] == ["fresh.txt"]
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_a_folder_swap_that_fails_half_way_puts_the_old_folder_back_at_once(tmp_path, monkeypatch, error):
    """Where renameat2 cannot exchange (NFS, other systems), the swap is two renames: an error or Ctrl-C between
    them puts the previous folder back in the same process, not only at the next run."""
    from rockedge import atomic

    out = tmp_path / "ds"
    out.mkdir()
    (out / "kept.txt").write_text("previous")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # the fallback path
    real_replace = os.replace

    def replace(src, dst):
        if Path(src).name.endswith(".new"):  # the second rename: the new folder into place
            raise error
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(type(error)):
        with atomic.staging_dir(out, overwrite=True) as tmp:
            (tmp / "fresh.txt").write_text("fresh")
    assert [p.name for p in out.iterdir()] == ["kept.txt"] and (out / "kept.txt").read_text() == "previous"
    assert hidden(tmp_path) == []


# -- 3: all or nothing ---------------------------------------------------------------------------------------------


def test_commit_all_puts_back_what_it_replaced(tmp_path):
    from rockedge.atomic import commit_all, temp_beside

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    b.mkdir()  # the second output cannot be written
    ta, tb = temp_beside(a), temp_beside(tmp_path / "c.txt")
    ta.write_text("new a")
    with pytest.raises(RockedgeError, match="is a folder"):
        commit_all([(ta, a), (tb, b)])
    assert a.read_text() == "old a"
    assert hidden(tmp_path) == []


def test_run_commits_all_its_outputs_or_none(model, short_video, tmp_path):
    out = tmp_path / "o.mp4"
    before = good_output(model, short_video, out)
    jsonl_before = out.with_suffix(".jsonl").read_bytes()
    summary = out.with_suffix(".summary.json")
    summary.unlink()
    summary.mkdir()  # the last output of the run cannot be written
    r = run_child("run", "--engine", model, short_video, "--out", out, "-q")
    one_line(r, "is a folder")
    assert out.read_bytes() == before and out.with_suffix(".jsonl").read_bytes() == jsonl_before
    assert hidden(tmp_path) == []


# -- 6: concurrent writers -----------------------------------------------------------------------------------------


def test_two_concurrent_half_exports_of_one_output(model, tmp_path):
    import onnx

    out = tmp_path / "h.onnx"
    procs = [subprocess.Popen(command("export", model, "--half", "--out", out), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    for code, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    onnx.checker.check_model(onnx.load(str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.onnx", "h.parity.json"]


# -- 8, 14: OS errors as one line ----------------------------------------------------------------------------------


def test_an_output_that_is_a_folder(model, short_video, tmp_path):
    (tmp_path / "o.mp4").mkdir()
    one_line(run_child("run", "--engine", model, short_video, "--out", tmp_path / "o.mp4", "-q"), "is a folder")
    (tmp_path / "m.onnx").mkdir()
    one_line(run_child("export", model, "--half", "--out", tmp_path / "m.onnx"), "folder")


def test_long_names(model, short_video, tmp_path):
    from rockedge.atomic import NAME_MAX, temp_name

    for kind in ("tmp", "old", "new"):
        name = temp_name(tmp_path / ("x" * 251 + ".mp4"), kind)
        assert len(name.encode()) <= NAME_MAX and name.isascii()
    ok = tmp_path / ("a" * 238 + ".mp4")  # its .summary.json sibling is 255 bytes
    r = run_child("run", "--engine", model, short_video, "--out", ok, "-q")
    assert r.returncode == 0, r.stderr
    assert ok.exists() and ok.with_suffix(".summary.json").exists()
    long = tmp_path / ("b" * 246 + ".mp4")  # a valid name, but its summary's would be 259 bytes
    one_line(run_child("run", "--engine", model, short_video, "--out", long, "-q"), "shorten --out")
    one_line(run_child("run", "--engine", model, short_video, "--out", tmp_path / ("c" * 300 + ".mp4"), "-q"),
             "too long")
    assert not long.exists() and hidden(tmp_path) == []


def test_stdout_to_dev_full(model, short_video, tmp_path):
    with open("/dev/full", "w") as full:
        r = subprocess.run(command("run", "--engine", model, short_video, "--out", tmp_path / "o.mp4"),
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    one_line(r, "cannot write the output (stdout): no space left on the device")


@pytest.mark.parametrize("closed", ["2>&-", ">&-", "<&- >&- 2>&-"])
def test_closed_standard_streams(model, short_video, tmp_path, closed):
    out = tmp_path / "o.mp4"
    cmd = " ".join(f"'{c}'" for c in command("run", "--engine", model, short_video, "--out", out))
    r = subprocess.run(f"exec {cmd} {closed}", shell=True, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert frame_count(out) == 6
    r = subprocess.run(f"exec {cmd.replace(str(short_video), str(tmp_path / 'missing.mp4'))} {closed}", shell=True,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1


def test_boundary_lines_for_memory_and_imports():
    from rockedge.cli.boundary import translate
    from rockedge.deps import load_failure

    assert translate(MemoryError())[0].startswith("error: out of memory")
    assert translate(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                                  "you tried to allocate 123 bytes"))[0].startswith("error: out of memory")
    assert translate(RuntimeError("a bug")) is None  # bugs keep their traceback
    line = translate(ModuleNotFoundError("No module named 'torch'", name="torch"))[0]
    assert "pip install 'rockedge[train]'" in line
    e = ImportError("libtorch_cpu.so: failed to map segment from shared object")
    assert "not enough memory to load it" in load_failure(e, "torch")
    e = ImportError("libnvinfer.so.10: cannot open shared object file: No such file or directory")
    assert "a shared library it needs is missing" in load_failure(e, "tensorrt")


def test_an_import_that_fails_under_a_memory_limit_is_not_called_missing(tmp_path):
    """Under ``ulimit -v`` torch is installed but cannot map its libraries: say that, not "pip install"."""
    ckpt = tmp_path / "none.pt"
    ckpt.write_bytes(b"\0" * 10)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (900 << 20, 900 << 20))

    r = run_child("export", ckpt, "--out", tmp_path / "m.onnx", preexec=limit)
    if r.returncode == 0 or "torch" not in r.stderr:
        pytest.skip(f"torch loads under a 900 MB address space here ({r.returncode})")
    line = one_line(r, "torch")
    assert "pip install" not in line


# -- 9, 15: malformed specs, manifests, caches ---------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("classes", 2, "'classes' must be a list of class names"),
    ("input_size", ["192px"], "'input_size' must be a list of 2 integers"),
    ("palette", "red", "'palette' must be a list of [R, G, B] colours"),
    ("mean", None, "'mean' must be a list of 3 finite numbers"),
    ("mean", [float("nan"), 0.4, 0.4], "'mean' must be a list of 3 finite numbers"),
    ("std", [0.2, 0.2, True], "'std' must be a list of 3 finite numbers"),
    ("arch", 3, "'arch' must be a string"),
])
def test_spec_field_types_name_the_field_and_the_source(field, value, fragment):
    from rockedge.spec import ModelSpec

    d = ModelSpec(arch="lraspp_mobilenet_v3_large").to_dict()
    d[field] = value
    with pytest.raises(RockedgeError) as e:
        ModelSpec.from_dict(d, "m.onnx")
    assert fragment in str(e.value) and "m.onnx" in str(e.value)


def test_an_onnx_with_a_malformed_spec_is_one_line_naming_it(model, short_video, tmp_path):
    import onnx

    from rockedge.spec import METADATA_KEY

    m = onnx.load(str(model))
    entry = next(p for p in m.metadata_props if p.key == METADATA_KEY)
    d = json.loads(entry.value)
    d["mean"] = float("nan")
    entry.value = json.dumps(d)
    bad = tmp_path / "bad.onnx"
    onnx.save(m, str(bad))
    line = one_line(run_child("run", "--engine", bad, short_video, "--out", tmp_path / "o.mp4", "-q"), "'mean'")
    assert "bad.onnx" in line and METADATA_KEY in line


@pytest.fixture
def plan_with_manifest(tmp_path):
    from rockedge.runtime.manifest import EngineManifest, write_manifest
    from rockedge.spec import ModelSpec

    plan = tmp_path / "m.plan"
    plan.write_bytes(os.urandom(4096))
    manifest = EngineManifest(spec=ModelSpec(arch="lraspp_mobilenet_v3_large", input_size=(48, 64)),
                              tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                              input_shapes={"input": {"min": [1, 3, 48, 64], "opt": [1, 3, 48, 64],
                                                      "max": [1, 3, 48, 64]}})
    write_manifest(plan, manifest)
    return plan


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda d: d.update(input_shapes=[1, 3, 48, 64]), "'input_shapes' must be a JSON object"),
    (lambda d: d.update(input_shapes={"input": {"min": ["a"]}}), "'input_shapes' must be"),
    (lambda d: d.update(gpu_name=["Orin"]), "'gpu_name' must be a string"),
    (lambda d: d.update(build="fast"), "'build' must be a JSON object"),
    (lambda d: d["spec"].update(classes="rock"), "'classes' must be a list"),
    (lambda d: d.update(precision=16), "'precision'"),
])
def test_manifest_field_types_are_one_line(plan_with_manifest, short_video, tmp_path, edit, fragment):
    mpath = plan_with_manifest.with_name(plan_with_manifest.name + ".json")
    d = json.loads(mpath.read_text())
    edit(d)
    mpath.write_text(json.dumps(d))
    one_line(run_child("run", "--engine", plan_with_manifest, short_video, "--out", tmp_path / "o.mp4", "-q"),
             fragment)


def test_a_binary_manifest_is_one_line(plan_with_manifest, short_video, tmp_path):
    plan_with_manifest.with_name(plan_with_manifest.name + ".json").write_bytes(os.urandom(512) + b"\xff\xfe")
    one_line(run_child("run", "--engine", plan_with_manifest, short_video, "--out", tmp_path / "o.mp4", "-q"),
             "is not a rockedge engine manifest")


def test_a_plan_that_is_not_its_manifests_fails_before_tensorrt_is_asked(plan_with_manifest, short_video, tmp_path):
    plan_with_manifest.write_bytes(os.urandom(4096))  # replaced after its manifest was written
    line = one_line(run_child("run", "--engine", plan_with_manifest, short_video, "--out", tmp_path / "o.mp4", "-q"),
                    "does not match its manifest (sha256 differs)")
    assert "TensorRT" not in line.split("does not match")[0]


def test_calibration_cache_scales_and_sidecars(tmp_path, capsys):
    from rockedge.calibration.cache import CacheFile, parse_table

    ok = b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n"
    assert parse_table(ok).scales["input"] == pytest.approx(struct.unpack(">f", bytes.fromhex("3c010a14"))[0])
    for bad in (b"3c010a1400", b"zz", b"7fc00000"):  # too long, not hex, nan (+inf is TensorRT's own: accepted)
        with pytest.raises(RockedgeError, match="not a float32 scale"):
            parse_table(b"TRT-8601-EntropyCalibration2\ninput: " + bad + b"\n")
    cache = CacheFile(tmp_path / "c.cache")
    cache.path.write_bytes(ok)
    cache.sidecar.write_bytes(b"\x89\xff\xfe binary")
    assert cache.load({"algorithm": "EntropyCalibration2"}) is None
    assert "not reusing c.cache" in capsys.readouterr().err
    cache.sidecar.write_text("[1, 2]")  # JSON, but not an object
    assert cache.load({"algorithm": "EntropyCalibration2"}) is None


# -- 11: images OpenCV refuses -------------------------------------------------------------------------------------


def _png_header_only(path: Path, w: int, h: int) -> Path:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_an_image_over_the_pixel_limit_is_skipped_in_a_folder_and_one_line_alone(model, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    huge = _png_header_only(folder / "huge.png", 40000, 40000)
    cv2.imwrite(str(folder / "ok.png"), np.full((48, 64, 3), 120, np.uint8))
    r = run_child("run", "--engine", model, folder, "--out", tmp_path / "out", "-q")
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if "huge.png" in ln]
    assert len(warnings) == 1 and "pixel limit" in warnings[0], r.stderr
    assert (tmp_path / "out" / "ok.png").exists()
    one_line(run_child("run", "--engine", model, huge, "--out", tmp_path / "h.png", "-q"), "pixel limit")


# -- 12: a benchmark where nothing could be measured ---------------------------------------------------------------


def test_benchmark_exits_1_when_every_model_failed(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from rockedge.spec import METADATA_KEY, ModelSpec

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 32, 32])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["input"], ["logits"], domain="com.example")], "g", [x],
                              [y])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    entry = m.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, ModelSpec(arch="lraspp_mobilenet_v3_large", input_size=(32, 32)).to_json()
    onnx.save(m, str(tmp_path / "custom.onnx"))
    r = run_child("benchmark", tmp_path / "custom.onnx", "--runs", "1", "--warmup", "0", "--out", tmp_path / "b", "-q")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no model could be measured" in r.stderr
    assert "error: onnxruntime cannot load" in r.stdout  # the table says why


# -- 16: a non-UTF-8 locale ----------------------------------------------------------------------------------------


def test_a_non_ascii_output_under_the_c_locale(model, short_video, tmp_path):
    folder = tmp_path / "dossier_é"
    folder.mkdir()
    src = folder / "vidéo.mp4"
    shutil.copy(short_video, src)
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    r = run_child("run", "--engine", model, src, "--out", folder / "sortie_é.mp4", "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert frame_count(folder / "sortie_é.mp4") == 6
    r = run_child("data", "synth-video", "--out", folder / "synth_é.mp4", "--frames", "2", "--resolution", "64x48",
                  "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert frame_count(folder / "synth_é.mp4") == 2


def test_a_name_that_is_not_utf8_is_one_line_for_opencv(tmp_path):
    from rockedge.media import cv_path

    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.mp4"  # Latin-1: no UTF-8 spelling exists
    with pytest.raises(RockedgeError, match="not UTF-8"):
        cv_path(os.fsdecode(raw))
    assert cv_path(tmp_path / "é.mp4") == str(tmp_path / "é.mp4")


# -- 17: the INT8 graph is sorted ----------------------------------------------------------------------------------


def test_toposort_orders_a_shuffled_graph_stably(model):
    import onnx

    from rockedge.calibration.qdq import check_graph, toposort

    m = onnx.load(str(model))
    order = [n.name for n in m.graph.node]
    toposort(m)
    assert [n.name for n in m.graph.node] == order  # already sorted: unchanged
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes[len(nodes) // 2:] + nodes[: len(nodes) // 2])  # what the quantizer's appends look like
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(m)
    check_graph(m, "the test graph")  # sorted, then onnx.checker passes
    assert sorted(n.name for n in m.graph.node) == sorted(order)
