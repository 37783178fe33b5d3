"""Atomic writes: complete or absent, never half-written, and with the modes a plain open() gives."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from rockedge.atomic import (
    atomic_path,
    clean_stale,
    commit_all,
    recover_dir,
    staging_dir,
    temp_beside,
    write_bytes,
    write_json,
    write_text,
)
from rockedge.errors import RockedgeError


def _umask(mask: int):
    """A fixture that runs its test under ``mask`` and restores the process's own."""

    @pytest.fixture
    def fixture():
        old = os.umask(mask)
        yield
        os.umask(old)

    return fixture


umask_022 = _umask(0o022)
umask_002 = _umask(0o002)


def test_written_files_get_umask_modes_not_mkstemps_0600(tmp_path, umask_022):
    p = write_json(tmp_path / "r.json", {"a": 1})
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_synth_outputs_get_umask_modes(tmp_path, umask_022):
    from rockedge.data.synth import write_synth_dataset, write_synth_video

    root = write_synth_dataset(tmp_path / "d", n=3, size_hw=(32, 32), progress=False)
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert all(stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644) for p in root.rglob("*"))
    video = write_synth_video(tmp_path / "v.mp4", frames=3, size_hw=(32, 48), progress=False)
    assert stat.S_IMODE(video.stat().st_mode) == 0o644


def test_failure_leaves_nothing_at_the_target(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_staged_folder_that_fails_leaves_nothing_behind(tmp_path):
    """A block that fails half-way: no output folder and no hidden staging folder beside it."""
    out = tmp_path / "dataset"
    with pytest.raises(RuntimeError):
        with staging_dir(out) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".")
            (tmp / "train").mkdir()
            (tmp / "train" / "0.png").write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_staged_folder_that_fails_keeps_the_previous_one(tmp_path):
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "old.txt").write_text("previous")
    with pytest.raises(KeyboardInterrupt):
        with staging_dir(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("half")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]
    assert [p.name for p in out.iterdir()] == ["old.txt"] and (out / "old.txt").read_text() == "previous"
    with staging_dir(out, overwrite=True) as tmp:  # and a block that succeeds replaces it, leaving nothing else
        (tmp / "new.txt").write_text("done")
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"] and [p.name for p in out.iterdir()] == ["new.txt"]


# -- what a killed run leaves, and what the next run does with it --------------------------------------------------

# A writer that gets its temporary beside the target, writes half of it and is killed (SIGKILL: no cleanup runs).
_KILLED_WRITER = """
import os, signal, sys
from rockedge.atomic import temp_beside
tmp = temp_beside(sys.argv[1], *sys.argv[2:])
tmp.write_bytes(b"half")
os.kill(os.getpid(), signal.SIGKILL)
"""

# A writer that is still running: it prints its temporary's path and waits until its stdin closes.
_LIVE_WRITER = """
import sys
from rockedge.atomic import temp_beside
print(temp_beside(sys.argv[1]), flush=True)
sys.stdin.read()
"""


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def killed_writer(target: Path, *suffix: str) -> None:
    r = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target), *suffix], timeout=60)
    assert r.returncode == -signal.SIGKILL


def dead_pid() -> int:
    """The pid of a process that has exited (and been waited for): what a killed run's temporaries carry."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize(("name", "suffix"), [
    ("out.txt", ()),
    ("out.mp4", (".part.mp4",)),  # the video sinks' temporaries
    ("a" * 251 + ".txt", ()),  # a 255-byte name: the temporary's name is shortened
    ("é" * 100 + ".txt", ()),  # a non-ASCII name: the temporary's is ASCII
])
def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path, name, suffix):
    target = tmp_path / name
    killed_writer(target, *suffix)
    assert len(hidden(tmp_path)) == 1 and not target.exists()
    write_text(target, "done")
    assert [p.name for p in tmp_path.iterdir()] == [name] and target.read_text() == "done"


def test_a_live_writers_temporary_is_kept_and_the_writer_left_alone(tmp_path):
    target = tmp_path / "out.txt"
    child = subprocess.Popen([sys.executable, "-c", _LIVE_WRITER, str(target)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        theirs = Path(child.stdout.readline().strip())
        assert theirs.parent == tmp_path and theirs.exists()
        write_text(target, "mine")
        assert theirs.exists() and target.read_text() == "mine"
    finally:
        child.stdin.close()
        rc = child.wait(timeout=60)
    assert rc == 0  # finished normally: looking whether it was alive did not signal it


def test_a_temporary_of_this_process_is_kept(tmp_path):
    """Two writers of one output in one process (threads): the second does not remove the first's temporary."""
    target = tmp_path / "out.txt"
    first = temp_beside(target)
    write_text(target, "second")
    assert first.exists() and target.read_text() == "second"


def test_a_temporary_of_another_users_live_process_is_kept(tmp_path, monkeypatch):
    """Signal 0 to another user's process fails with EPERM: it is alive, its temporary is not ours to remove."""
    pid = dead_pid()
    theirs = tmp_path / f".out.{pid}-0123abcd.tmp.txt"
    theirs.write_text("theirs")
    real_kill = os.kill

    def kill(p, sig):
        if p == pid:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_kill(p, sig)

    monkeypatch.setattr(os, "kill", kill)
    write_text(tmp_path / "out.txt", "mine")
    assert theirs.read_text() == "theirs"


def test_a_killed_writers_half_file_never_appears_at_the_target(tmp_path):
    target = tmp_path / "out.txt"
    half = tmp_path / f".out.{dead_pid()}-0123abcd.tmp.txt"
    half.write_text("half")
    assert clean_stale(target) == [half]
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_folder_is_removed_but_never_through_a_link(tmp_path):
    """A writer may turn its temporary into a folder; a temporary that is a link to a folder loses only the link."""
    pid = dead_pid()
    folder = tmp_path / f".out.{pid}-0123abcd.tmp.txt"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f").write_text("half")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    link = tmp_path / f".out.{pid}-0123abce.tmp.txt"
    link.symlink_to(elsewhere, target_is_directory=True)
    write_text(tmp_path / "out.txt", "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "out.txt"]
    assert (elsewhere / "keep.txt").read_text() == "keep"


def test_a_killed_commit_all_gets_the_previous_file_back(tmp_path):
    """Killed after moving the previous file aside and before moving the new one in: the next run puts it back,
    even when that run fails too."""
    target = tmp_path / "out.txt"
    aside = tmp_path / f".out.{dead_pid()}-0123abcd.old.txt"
    aside.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"] and target.read_text() == "previous"


def test_a_killed_commit_all_after_its_move_in_drops_the_previous_file(tmp_path):
    """Killed after the new file was in place: the moved-aside previous one is removed, the new one stays."""
    target = tmp_path / "out.txt"
    target.write_text("new")
    aside = tmp_path / f".out.{dead_pid()}-0123abcd.old.txt"
    aside.write_text("previous")
    assert clean_stale(target) == [aside]
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"] and target.read_text() == "new"


def test_moved_aside_files_go_back_to_their_own_outputs(tmp_path):
    """``out.rocks.csv`` and ``out.rocks.png`` are committed together and share a stem; another output ``b.csv``
    has its own. A killed commit left all three moved aside: each goes back to its own name, never another's."""
    pid = dead_pid()
    csv, png, other = tmp_path / "out.rocks.csv", tmp_path / "out.rocks.png", tmp_path / "b.csv"
    csv.write_text("new csv")  # moved in before the kill; the png and b.csv were not
    (tmp_path / f".out.rocks.{pid}-0123abcd.old.csv").write_text("old csv")
    (tmp_path / f".out.rocks.{pid}-0123abce.old.png").write_text("old png")
    (tmp_path / f".b.{pid}-0123abcf.old.csv").write_text("old b")
    write_text(csv, "newer csv")
    for target in (png, other):  # the next runs fail before writing these: the previous files are back
        with pytest.raises(RuntimeError):
            with atomic_path(target):
                raise RuntimeError("interrupted")
    assert csv.read_text() == "newer csv" and png.read_text() == "old png" and other.read_text() == "old b"
    assert hidden(tmp_path) == []


def test_a_previous_file_moved_aside_goes_back_to_its_own_name_when_both_are_missing(tmp_path):
    pid = dead_pid()
    csv, png = tmp_path / "out.rocks.csv", tmp_path / "out.rocks.png"
    (tmp_path / f".out.rocks.{pid}-0123abcd.old.csv").write_text("old csv")
    (tmp_path / f".out.rocks.{pid}-0123abce.old.png").write_text("old png")
    assert [p.name for p in clean_stale(csv)] == [f".out.rocks.{pid}-0123abcd.old.csv"]
    assert csv.read_text() == "old csv" and not png.exists()
    clean_stale(png)
    assert png.read_text() == "old png" and hidden(tmp_path) == []


def test_nothing_to_clean_where_the_folder_does_not_exist(tmp_path):
    assert clean_stale(tmp_path / "missing" / "out.txt") == []
    assert recover_dir(tmp_path / "missing" / "ds") == []


# -- files ---------------------------------------------------------------------------------------------------------


def test_str_paths_work_as_well_as_paths(tmp_path):
    assert write_text(str(tmp_path / "a.txt"), "é") == tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "é"
    assert write_bytes(str(tmp_path / "b.bin"), b"\x00\xff") == tmp_path / "b.bin"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    with atomic_path(str(tmp_path / "c.txt")) as tmp:
        tmp.write_text("c")
    assert (tmp_path / "c.txt").read_text() == "c"
    with staging_dir(str(tmp_path / "ds")) as tmp:
        (tmp / "f.txt").write_text("f")
    assert (tmp_path / "ds" / "f.txt").read_text() == "f"
    assert hidden(tmp_path) == []


def test_missing_folders_are_created(tmp_path):
    assert write_json(tmp_path / "a" / "b" / "r.json", {"a": 1}).read_text() == '{\n  "a": 1\n}\n'
    with staging_dir(tmp_path / "x" / "y" / "ds") as tmp:
        (tmp / "f.txt").write_text("f")
    assert (tmp_path / "x" / "y" / "ds" / "f.txt").read_text() == "f"


def test_an_output_inside_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("keep")
    with pytest.raises(RockedgeError, match="it is a file, not a folder"):
        write_text(tmp_path / "file" / "out.txt", "x")
    assert (tmp_path / "file").read_text() == "keep"


def test_an_output_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "out.txt").mkdir()
    (tmp_path / "out.txt" / "keep").write_text("keep")
    with pytest.raises(RockedgeError, match="it is a folder"):
        write_text(tmp_path / "out.txt", "x")
    assert (tmp_path / "out.txt" / "keep").read_text() == "keep" and hidden(tmp_path) == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_writes_leave_no_open_file_descriptors(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    for i in range(20):
        write_text(tmp_path / f"{i}.txt", "x")
        temp_beside(tmp_path / f"{i}.bin").unlink()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_temporary_has_a_plain_opens_mode(tmp_path, umask_002):
    """Writers that open temp_beside's file themselves (OpenCV) keep its mode: the one open() would give."""
    tmp = temp_beside(tmp_path / "out.mp4")
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o664


def test_a_writer_that_replaces_its_temporary_still_gives_a_plain_mode(tmp_path, umask_002):
    """A writer that itself writes to a mkstemp file (0600) and renames it onto the temporary path."""
    target = tmp_path / "out.bin"
    with atomic_path(target) as tmp:
        fd, own = tempfile.mkstemp(dir=tmp_path)
        os.write(fd, b"data")
        os.close(fd)
        os.replace(own, tmp)
    assert target.read_bytes() == b"data" and stat.S_IMODE(target.stat().st_mode) == 0o664


def test_staged_files_made_by_mkstemp_get_plain_modes(tmp_path, umask_002):
    out = tmp_path / "ds"
    with staging_dir(out) as tmp:
        sub = Path(tempfile.mkdtemp(dir=tmp))
        fd, name = tempfile.mkstemp(dir=sub)
        os.close(fd)
    assert stat.S_IMODE(out.stat().st_mode) == 0o775
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    assert modes == {sub.name: 0o775, Path(name).name: 0o664}


# -- commit_all ----------------------------------------------------------------------------------------------------


def test_commit_all_moves_every_file_in(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    ta, tb = temp_beside(a), temp_beside(b)
    ta.write_text("new a")
    tb.write_text("new b")
    commit_all([(ta, a), (tb, b)])
    assert a.read_text() == "new a" and b.read_text() == "new b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_commit_all_that_fails_removes_the_outputs_it_created(tmp_path):
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    b.write_text("old b")
    (tmp_path / "d").mkdir()
    ta, tb, tc = temp_beside(a), temp_beside(b), temp_beside(c)
    for t in (ta, tb, tc):
        t.write_text("new")
    with pytest.raises(RockedgeError, match="is a folder"):
        commit_all([(ta, a), (tb, b), (tc, tmp_path / "d")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt", "d"] and b.read_text() == "old b"


# -- folders -------------------------------------------------------------------------------------------------------


def test_a_staged_folder_does_not_replace_a_folder_with_content_without_overwrite(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    with pytest.raises(RockedgeError, match="not replacing it"):
        with staging_dir(out) as tmp:
            (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and hidden(tmp_path) == []


def test_a_staged_folder_replaces_an_empty_folder(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    with staging_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and hidden(tmp_path) == []


def test_a_staged_folder_does_not_replace_a_file(tmp_path):
    out = tmp_path / "ds"
    out.write_text("a file")
    with pytest.raises(RockedgeError, match="it is a file, not a folder"):
        with staging_dir(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert out.read_text() == "a file" and hidden(tmp_path) == []


def test_a_staged_folder_replaces_the_old_one_where_folders_cannot_be_exchanged(tmp_path, monkeypatch):
    """NFS and other systems have no renameat2 exchange: two renames, and the previous folder is removed."""
    from rockedge import atomic

    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staging_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and hidden(tmp_path) == []


def test_a_staged_folder_cleans_what_killed_runs_left_beside_it(tmp_path):
    pid = dead_pid()
    out = tmp_path / "ds"
    for half in (f".ds.{pid}-0123abcd.new", f".ds.{pid}-0123abce.old"):
        (tmp_path / half).mkdir()
        (tmp_path / half / "f.txt").write_text("half")
    (tmp_path / f".ds.{pid}-0123abcf.tmp").write_text("half")
    with staging_dir(out, overwrite=True) as tmp:  # the previous folder is back at ``out`` first
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and hidden(tmp_path) == []


def test_recover_dir_puts_one_previous_folder_back_and_removes_the_rest(tmp_path):
    """Two killed swaps left two previous folders and a new half: one previous folder is back, nothing else."""
    pid = dead_pid()
    out = tmp_path / "ds"
    halves = [tmp_path / f".ds.{pid}-0123abc{i}.{kind}" for i, kind in enumerate(("old", "old", "new"))]
    for h in halves:
        h.mkdir()
        (h / "f.txt").write_text(h.name)
    assert sorted(recover_dir(out)) == sorted(halves)
    assert (out / "f.txt").read_text() in (halves[0].name, halves[1].name)
    assert hidden(tmp_path) == []


# A folder swap killed between its two renames (the path taken where renameat2 cannot exchange).
_KILLED_SWAP = """
import os, signal, sys
from pathlib import Path
from rockedge import atomic
atomic._exchange = lambda a, b: False
real_replace = os.replace
def replace(src, dst):
    real_replace(src, dst)
    if Path(dst).name.endswith(".old"):  # the previous folder is aside, the new one not yet in
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
with atomic.staging_dir(sys.argv[1], overwrite=True) as tmp:
    (tmp / "f.txt").write_text("new")
"""


def killed_swap(out: Path) -> None:
    r = subprocess.run([sys.executable, "-c", _KILLED_SWAP, str(out)], timeout=60)
    assert r.returncode == -signal.SIGKILL
    assert not out.exists()


@pytest.mark.parametrize("name", ["ds", "ds.v1", "model.plan"])
def test_a_folder_swap_killed_half_way_is_undone_by_the_next_run_even_if_that_fails(tmp_path, name):
    out = tmp_path / name
    out.mkdir()
    (out / "f.txt").write_text("previous")
    killed_swap(out)
    with pytest.raises(RuntimeError):
        with staging_dir(out, overwrite=True) as tmp:
            (tmp / "f.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == [name] and (out / "f.txt").read_text() == "previous"


def test_a_killed_folder_swap_is_only_undone_at_its_own_folder(tmp_path):
    """``ds.v1``'s swap was killed; writing ``ds.v2`` next does not take ``ds.v1``'s previous folder."""
    v1, v2 = tmp_path / "ds.v1", tmp_path / "ds.v2"
    v1.mkdir()
    (v1 / "f.txt").write_text("v1")
    killed_swap(v1)
    with staging_dir(v2) as tmp:
        (tmp / "f.txt").write_text("v2")
    assert (v2 / "f.txt").read_text() == "v2"
    recover_dir(v1)
    assert (v1 / "f.txt").read_text() == "v1"
    assert hidden(tmp_path) == []


def _renames_watched(monkeypatch, out: Path) -> list[tuple[str, str]]:
    """Every os.replace after which ``out`` was not a folder."""
    gaps: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if not out.is_dir():
            gaps.append((str(src), str(dst)))

    monkeypatch.setattr(os, "replace", replace)
    return gaps


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_a_folder_is_replaced_with_no_moment_without_one_where_linux_can_exchange(tmp_path, monkeypatch):
    from rockedge import atomic

    probe_a, probe_b = tmp_path / "probe_a", tmp_path / "probe_b"
    probe_a.mkdir()
    probe_b.mkdir()
    if not atomic._exchange(probe_a, probe_b):
        pytest.skip("this file system cannot exchange two folders")
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("old")
    gaps = _renames_watched(monkeypatch, out)
    with staging_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert gaps == [] and [p.name for p in out.iterdir()] == ["new.txt"]
    assert hidden(tmp_path) == []


def test_ctrl_c_right_after_the_new_folder_is_in_stays_a_ctrl_c(tmp_path, monkeypatch):
    """Where folders cannot be exchanged: an interrupt just after the second rename keeps the complete new folder
    and reaches the caller as the interrupt (exit 130), not as another error."""
    from rockedge import atomic

    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if Path(src).name.endswith(".new"):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with staging_dir(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
