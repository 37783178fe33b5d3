"""Atomic writes: complete or absent, never half-written, and with the modes a plain open() gives."""

from __future__ import annotations

import os
import stat

import pytest

from rockedge.atomic import atomic_path, staging_dir, write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


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
