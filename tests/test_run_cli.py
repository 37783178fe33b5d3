"""`rockedge run` end to end on real files: images, folders, globs, videos, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import cli_runner, read_video, write_video
from test_runtime import exported

from rockedge.cli import main


@pytest.fixture
def model(trained_ckpt, tmp_path_factory):
    return lambda kind="float": exported(kind, trained_ckpt, tmp_path_factory)


def rockedge(*args: str) -> tuple[int, str, str]:
    r = cli_runner().invoke(main, ["run", *map(str, args), "-q"], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def one_error_line(code: int, err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


def files_under(p: Path) -> list[Path]:
    return [f for f in p.rglob("*") if f.is_file()] if p.exists() else []


@pytest.fixture
def video(scenes, tmp_path) -> Path:
    frames = [cv2.resize(s[0], (64, 48)) for s in scenes(10, 64, 64, seed=4)]
    return write_video(tmp_path / "in.mp4", frames, fps=29.97)


def test_video_keeps_frame_count_and_exact_fps(model, video, tmp_path):
    out = tmp_path / "out" / "ov.mp4"
    code, stdout, err = rockedge("--engine", model("float"), video, "--out", out, "--save-mask", "--contours")
    assert code == 0, err
    fps, frames = read_video(out)
    assert len(frames) == 10 and fps == pytest.approx(29.97, abs=1e-3)
    assert frames[0].shape == (48, 64, 3)
    mfps, masks = read_video(out.with_name("ov_mask.mkv"))
    assert len(masks) == 10 and mfps == pytest.approx(29.97, abs=1e-3)
    assert "mp4v" in err  # the H.264 fallback is announced
    recs = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(10))
    assert recs[3]["timestamp"] == pytest.approx(3 / 29.97, abs=1e-5)
    for r in recs:
        assert 0 <= r["rock_fraction"] <= 1 and isinstance(r["rock_count"], int)
        assert set(r["latency_ms"]) == {"decode", "preprocess", "infer", "postprocess", "encode"}
    # mask PNG semantics: rock fraction in the JSON line is the mask video's non-zero share
    assert recs[0]["rock_fraction"] == pytest.approx((masks[0][..., 0] > 127).mean(), abs=0.02)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["frames"] == 10 and summary["stopped"] == "end" and summary["fps"] > 0
    assert set(summary["stage_ms"]) == {"decode", "preprocess", "infer", "postprocess", "encode"}
    assert "throughput" in stdout and "infer" in stdout  # the table
    assert not [f for f in files_under(tmp_path / "out") if f.name.startswith(".")]


def test_batched_run_matches_unbatched(model, video, tmp_path):
    a, b = tmp_path / "a.avi", tmp_path / "b_overlay.avi"
    assert rockedge("--engine", model("dynamic"), video, "--out", a, "--batch", "4", "--save-mask")[0] == 0
    assert rockedge("--engine", model("float"), video, "--out", b, "--save-mask")[0] == 0
    _, ma = read_video(tmp_path / "a_mask.mkv")
    _, mb = read_video(tmp_path / "b_mask.mkv")  # run.md: a trailing _overlay is dropped from the mask's name
    assert not (tmp_path / "b_overlay_mask.mkv").exists()
    assert len(ma) == len(mb) == 10
    # Frame i of the batched run is frame i: it agrees with unbatched frame i (up to the near-tie pixels a batched
    # kernel may flip) far better than with the frames beside it.
    agree = np.array([[(x == y).mean() for y in mb] for x in ma])
    assert agree[~np.eye(10, dtype=bool)].min() < 0.99  # the frames (and their masks) differ
    assert (np.diag(agree) > 0.995).all(), np.diag(agree)
    off = agree[~np.eye(10, dtype=bool)]
    assert np.diag(agree).min() > off.max(), (np.diag(agree), off.max())


def test_folder_skips_non_images_and_writes_overlays_and_masks(model, scenes, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for i, (img, _) in enumerate(scenes(3, 64, 64, seed=9)):
        cv2.imwrite(str(src / f"r{i}.png"), img)
    (src / "notes.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"not really a png")
    out = tmp_path / "out"
    code, _, err = rockedge("--engine", model("float"), src, "--out", out, "--save-mask")
    assert code == 0, err
    assert "skipping notes.txt" in err and "skipping broken.png" in err
    assert sorted(p.name for p in out.glob("*.png")) == ["r0.png", "r1.png", "r2.png"]
    mask = cv2.imread(str(out / "masks" / "r1.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1}
    recs = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert [r["name"] for r in recs] == ["r0.png", "r1.png", "r2.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["skipped"] == 2


def test_glob_and_single_image(model, scenes, tmp_path):
    for i, (img, _) in enumerate(scenes(2, 64, 64, seed=9)):
        cv2.imwrite(str(tmp_path / f"g{i}.jpg"), img)
    code, _, err = rockedge("--engine", model("float"), str(tmp_path / "g*.jpg"), "--out", tmp_path / "go")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "go").glob("*.jpg")) == ["g0.jpg", "g1.jpg"]
    code, _, err = rockedge("--engine", model("raw"), tmp_path / "g0.jpg", "--out", tmp_path / "one.png", "--save-mask")
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "one.png")).shape == (64, 64, 3)
    assert cv2.imread(str(tmp_path / "one_mask.png"), cv2.IMREAD_UNCHANGED).shape == (64, 64)


def test_truncated_video_keeps_playable_partial_output(model, scenes, tmp_path):
    frames = [s[0] for s in scenes(4, 64, 64, seed=4)] * 10
    src = write_video(tmp_path / "long.avi", frames, fps=29.97, fourcc="MJPG")
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])  # cut mid-stream: header says 40 frames, ~20 remain
    out = tmp_path / "o" / "t.mp4"
    code, stdout, err = rockedge("--engine", model("float"), src, "--out", out)
    assert code == 1 and "truncated" in err and "partial output kept" in err
    assert "Traceback" not in err
    fps, written = read_video(out)
    assert 5 < len(written) < 40 and fps == pytest.approx(29.97, abs=1e-3)
    assert json.loads(out.with_suffix(".summary.json").read_text())["stopped"] == "broken"
    assert "frames" in stdout  # summary printed


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("missing", "source not found"),
        ("missing_model", "model not found"),
        ("not_video", "cannot open video"),
        ("no_images", "no images in"),
        ("imgsz", "--imgsz 32x32 disagrees"),
        ("batch", "--batch 4 disagrees"),
        ("classes", "predicts background, rock, not background, rock, sand"),
        ("gstreamer", "GStreamer: NO"),
        ("camera", "cannot open camera"),
        ("out_is_image", "a video source needs a video file"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(model, video, tmp_path, case, fragment):
    m = model("float")
    out = tmp_path / "out" / "x.mp4"
    args: list = ["--engine", m, video, "--out", out]
    if case == "missing":
        args[2] = tmp_path / "nope.mp4"
    elif case == "missing_model":
        args[1] = tmp_path / "nope.onnx"
    elif case == "not_video":
        (tmp_path / "bad.mp4").write_bytes(b"\x00garbage" * 100)
        args[2] = tmp_path / "bad.mp4"
    elif case == "no_images":
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "a.txt").write_text("x")
        args[2], args[4] = tmp_path / "d", tmp_path / "out"
    elif case == "imgsz":
        args += ["--imgsz", "32x32"]
    elif case == "batch":
        args += ["--batch", "4"]
    elif case == "classes":
        args += ["--classes", "background,rock,sand"]
    elif case == "gstreamer":
        args[2] = "v4l2src device=/dev/video0 ! videoconvert ! appsink"
    elif case == "camera":
        args[2] = "/dev/video97"
    elif case == "out_is_image":
        args[4] = tmp_path / "out" / "x.png"
    code, _, err = rockedge(*args)
    one_error_line(code, err, fragment)
    assert files_under(tmp_path / "out") == []


def test_backend_trt_without_tensorrt_is_one_line(model, video, tmp_path):
    code, _, err = rockedge("--engine", model("float"), video, "--backend", "trt", "--out", tmp_path / "o.mp4")
    one_error_line(code, err, "tensorrt")
    assert "JetPack" in err


def test_max_frames_stops_early_and_keeps_a_playable_file(model, video, tmp_path):
    out = tmp_path / "mf.mp4"
    code, stdout, err = rockedge("--engine", model("float"), video, "--out", out, "--max-frames", "3")
    assert code == 0, err
    _, frames = read_video(out)
    assert len(frames) == 3
    assert json.loads(out.with_suffix(".summary.json").read_text())["frames"] == 3


def test_providers_are_parsed_and_checked(model, video, tmp_path):
    code, _, err = rockedge("--engine", model("float"), video, "--providers", " cpu , ", "--out", tmp_path / "p.mp4",
                            "--max-frames", "2")
    assert code == 0, err
    summary = json.loads((tmp_path / "p.summary.json").read_text())
    assert summary["model"]["providers"] == ["CPUExecutionProvider"]
    code, _, err = rockedge("--engine", model("float"), video, "--providers", "cuda", "--out", tmp_path / "q.mp4")
    one_error_line(code, err, "execution provider 'cuda' is not available in this onnxruntime build")
    assert not (tmp_path / "q.mp4").exists()


def test_parse_providers():
    from rockedge.runtime.backends.loader import parse_providers

    assert parse_providers("trt, cuda,,cpu ") == ("trt", "cuda", "cpu")
    assert parse_providers("") is None and parse_providers(None) is None
    assert parse_providers(["cpu"]) == ("cpu",)


def test_show_on_a_headless_opencv_is_one_line(model, video, tmp_path):
    from rockedge.probes import has_gui

    if has_gui():
        pytest.skip("this OpenCV can open windows")
    code, _, err = rockedge("--engine", model("float"), video, "--show", "--out", tmp_path / "s.mp4")
    one_error_line(code, err, "--show needs an OpenCV build with a GUI")
    assert not (tmp_path / "s.mp4").exists()


def test_json_dash_prints_the_summary_and_the_table_goes_to_stderr(model, video, tmp_path):
    code, stdout, err = rockedge("--engine", model("float"), video, "--out", tmp_path / "j.mp4", "--json", "-",
                                 "--max-frames", "2")
    assert code == 0, err
    assert json.loads(stdout)["frames"] == 2 and "throughput" in err
