"""The runtime's Python API on real exported ONNX models (ONNX Runtime, CPU): Segmenter, the
threaded pipeline, overlays, stats, ordering, interruption and import isolation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import read_video

from rockedge.errors import RockedgeError
from rockedge.runtime.modelio import SpecFlags

_MODELS: dict[str, Path] = {}
EXPORTS = {
    "float": dict(),  # float NCHW in, logits out, batch 1, 64x64
    "raw": dict(imgsz=(64, 96), input_format="raw", output_format="mask"),
    "dynamic": dict(dynamic=True),
}


def exported(kind: str, trained_ckpt, tmp_path_factory) -> Path:
    """One ONNX export per kind for the whole session (shared with test_run_cli.py)."""
    if kind not in _MODELS:
        from rockedge.export.onnx import export_onnx

        out = tmp_path_factory.mktemp("onnx") / f"{kind}.onnx"
        _MODELS[kind] = Path(export_onnx(trained_ckpt(), out, **EXPORTS[kind]).path)
    return _MODELS[kind]


@pytest.fixture
def model(trained_ckpt, tmp_path_factory):
    return lambda kind="float": exported(kind, trained_ckpt, tmp_path_factory)


def test_predict_overlay_paints_rock_and_only_rock(model, scenes):
    from rockedge.runtime import Segmenter

    img, _ = scenes(1, 64, 64, seed=3)[0]
    with Segmenter(model("float"), alpha=0.6) as seg:
        r = seg.predict(img)
    assert r.mask.shape == img.shape[:2] and r.mask.dtype == np.uint8
    rock = r.mask != 0
    assert 0 < rock.mean() < 1, "the fixture model should find some rock and some background"
    diff = np.abs(r.overlay.astype(int) - img.astype(int)).sum(axis=2)
    assert (diff[rock] > 0).mean() > 0.95  # painted where rock
    assert (diff[~rock] == 0).all()  # background untouched
    assert r.stats["rock_fraction"] == pytest.approx(rock.mean(), abs=1e-5)
    assert r.stats["rock_count"] == cv2.connectedComponents(rock.astype(np.uint8), connectivity=8)[0] - 1


def test_a_closed_segmenter_says_so_in_one_line(model, scenes):
    """run.md's snippet once used a Segmenter after its `with` block: that is one line, not an AttributeError."""
    from rockedge.runtime import Segmenter

    img, _ = scenes(1, 64, 64, seed=3)[0]
    with Segmenter(model("float")) as seg:
        seg.predict(img)
    for call in (lambda: seg.predict(img), lambda: seg.predict_batch([img, img])):
        with pytest.raises(RockedgeError, match=r"^this Segmenter was closed \(its `with` block ended\): open a new "
                                                r"one, or use it inside the block$"):
            call()


def test_predict_maps_mask_back_to_any_frame_size(model, scenes):
    from rockedge.runtime import Segmenter

    img, _ = scenes(1, 64, 64, seed=3)[0]
    big = cv2.resize(img, (160, 120), interpolation=cv2.INTER_NEAREST)
    # Twice the model size, each pixel a 2x2 block: the model sees exactly ``img`` again (a bilinear halving averages
    # each block), so the frame's mask must be the model's mask with each pixel a 2x2 block, to the pixel.
    double = np.kron(img, np.ones((2, 2, 1), np.uint8))
    with Segmenter(model("float")) as seg:
        small, large, twice = seg.predict(img), seg.predict(big), seg.predict(double)
    assert large.mask.shape == (120, 160)
    # Nearest-neighbour back to the frame: only class indices, never blended values.
    assert set(np.unique(large.mask)) <= {0, 1}
    np.testing.assert_array_equal(twice.mask, np.kron(small.mask, np.ones((2, 2), np.uint8)))
    assert twice.stats["rock_fraction"] == small.stats["rock_fraction"]
    assert twice.stats["rock_count"] == small.stats["rock_count"]


def test_raw_mask_model_letterbox_free_and_matches_float_model(model, scenes):
    from rockedge.runtime import Segmenter

    frames = [s[0] for s in scenes(3, 64, 96, seed=5)]
    with Segmenter(model("raw")) as raw, Segmenter(model("dynamic"), imgsz=(64, 96)) as flt:
        assert raw.spec.input_format == "raw" and raw.spec.output_format == "mask"
        a = raw.predict_batch(frames)
        b = flt.predict_batch(frames)
        logits = flt.backend.infer(flt.preprocess(frames)[0])
    # Same weights, graph-side normalisation and argmax: the masks differ only where the float model's two logits
    # are within float noise of each other (a tie either way), never on a decided pixel.
    gap = np.abs(logits[:, 1] - logits[:, 0])
    for x, y, g in zip(a, b, gap):
        assert x.mask.shape == y.mask.shape == (64, 96)
        assert (g[x.mask != y.mask] < 1e-3).all()
        assert (x.mask == y.mask).mean() > 0.999


def test_predict_batch_keeps_order_with_padding(model, scenes):
    from rockedge.runtime import Segmenter

    frames = [s[0] for s in scenes(5, 64, 64, seed=7)]
    with Segmenter(model("float")) as one, Segmenter(model("dynamic"), batch=3) as three:
        singles = [one.predict(f).mask for f in frames]
        batched = [r.mask for r in three.predict_batch(frames)]
    assert len(batched) == 5
    for s, b in zip(singles, batched):
        assert (s == b).mean() > 0.999


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(imgsz=(32, 32)), "disagrees with the model, which takes 64x64"),
        (dict(batch=4), "exported for batch 1"),
        (dict(spec_flags=SpecFlags(classes=("background", "rock", "sand"))), "predicts background, rock, not"),
        (dict(spec_flags=SpecFlags(mean=(0.5, 0.5, 0.5))), "has its own model spec"),
        (dict(alpha=1.5), "--alpha"),
    ],
)
def test_flags_that_disagree_with_the_model_fail_clearly(model, kwargs, message):
    from rockedge.runtime import Segmenter

    with pytest.raises(RockedgeError, match=message):
        Segmenter(model("float"), **kwargs)


def _run(seg, source, out: Path, **kw):
    from rockedge.runtime.outputs import RunOutputs
    from rockedge.runtime.pipeline import run_pipeline

    outputs = RunOutputs(source, out, num_classes=seg.spec.num_classes, save_mask=kw.pop("save_mask", False))
    return run_pipeline(seg, source, outputs, progress=False, **kw), outputs


def test_pipeline_batched_output_is_in_input_order(model, scenes, tmp_path):
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource

    # Each frame is a different scene; masks from the batched pipeline must line up with per-frame predict.
    frames = [s[0] for s in scenes(7, 64, 64, seed=11)]
    with Segmenter(model("dynamic"), batch=3) as seg:
        expected = [seg.predict(f).mask for f in frames]
        summary, outputs = _run(seg, IterableSource(frames, fps=29.97), tmp_path / "o.avi", save_mask=True)
    assert summary.frames == 7 and summary.stopped == "end"
    fps, masks = read_video(Path(summary.outputs["mask"]))
    assert len(masks) == 7
    for m, e in zip(masks, expected):
        assert ((m[..., 0] // 255) == e).mean() > 0.999  # lossless mask video, class * 255
    recs = [json.loads(line) for line in Path(summary.outputs["frames"]).read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(7))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a real SIGINT to a child process")
def test_ctrl_c_mid_stream_keeps_a_playable_video_and_a_summary(model, scenes, tmp_path):
    """A real SIGINT, as a terminal sends it, to `rockedge run` in a child process half-way through a video: exit 130,
    and a playable video at the source's frame rate holding exactly the frames the summary and the frame log count."""
    from helpers import write_video
    from test_faults import command, frame_count, hidden, wait_for_frames

    scene = [s[0].astype(int) for s in scenes(4, 48, 64, seed=2)]
    rng = np.random.default_rng(2)  # noise on the scenes: frames that do not compress, a video that takes seconds
    frames = [np.clip(scene[i % 4] + rng.integers(-40, 40, scene[0].shape), 0, 255).astype(np.uint8)
              for i in range(900)]
    (tmp_path / "in").mkdir()
    video = write_video(tmp_path / "in" / "cam.mp4", frames, fps=29.97)
    out = tmp_path / "cam.mp4"
    proc = subprocess.Popen(command("run", "--engine", model("float"), video, "--out", out, "-q"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_frames(tmp_path, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: Ctrl-C; the output written so far is complete and playable" in err
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["stopped"] == "interrupted" and summary["reason"] == "Ctrl-C"
    n = frame_count(out)
    assert 0 < n < 900 and n == summary["frames"]
    assert len(out.with_suffix(".jsonl").read_text().splitlines()) == n
    fps, _ = read_video(out)
    assert fps == pytest.approx(29.97, abs=1e-3)
    assert hidden(tmp_path) == [], "temporary files left behind"


def test_source_that_raises_mid_stream_ends_cleanly(model, scenes, tmp_path):
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource

    frames = [s[0] for s in scenes(4, 64, 64, seed=2)]

    def flaky():
        yield from frames
        raise ConnectionError("stream lost")

    with Segmenter(model("float")) as seg:
        summary, _ = _run(seg, IterableSource(flaky(), fps=25.0), tmp_path / "x.mp4")
    assert summary.stopped == "broken" and "stream lost" in summary.reason
    fps, written = read_video(tmp_path / "x.mp4")
    assert len(written) == 4 and fps == pytest.approx(25.0)
    assert summary.to_dict()["stage_ms"]["infer"]["mean"] > 0


def test_model_error_mid_run_removes_outputs(model, scenes, tmp_path):
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource

    good = scenes(2, 64, 64)[0][0]
    bad = np.zeros((64, 64), np.float32)  # not a BGR uint8 frame: preprocess refuses it
    with Segmenter(model("float")) as seg:
        with pytest.raises(RockedgeError, match="BGR uint8"):
            _run(seg, IterableSource([good, good, bad.astype(np.float32)[..., None].repeat(3, 2)]), tmp_path / "o" / "y.mp4")
    assert not (tmp_path / "o").exists()


ISOLATION = textwrap.dedent(
    """
    import sys, importlib, pkgutil
    from rockedge.layers import WORKSTATION_ONLY as BLOCKED
    for name in BLOCKED:
        sys.modules[name] = None  # any import of these now raises ImportError
    import numpy as np
    from rockedge import layers
    # Everything that runs on the device, as rockedge.layers lists it (the Python 3.8 gate reads the same list).
    mods = list(layers.DEVICE_MODULES)
    for pkg in layers.DEVICE_PACKAGES:
        root = importlib.import_module(pkg)
        mods += [m.name for m in pkgutil.walk_packages(root.__path__, pkg + ".")]
    for name in mods:
        importlib.import_module(name)
    from rockedge.doctor import run_checks
    assert {c.name for c in run_checks()} >= {"OpenCV", "ONNX Runtime", "TensorRT", "CUDA GPU", "memory"}
    from rockedge.engine.build import onnx_facts
    from rockedge.calibration.reader import load_calibration_set
    facts, spec = onnx_facts(sys.argv[1])
    assert len(load_calibration_set("synth", spec, n=2)) == 2
    from rockedge.runtime import Segmenter
    from rockedge.runtime.sources import IterableSource
    from rockedge.runtime.outputs import RunOutputs
    from rockedge.runtime.pipeline import run_pipeline
    seg = Segmenter(sys.argv[1], backend="ort")
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    r = seg.predict(frame)
    assert r.mask.shape == (48, 64) and r.overlay.shape == frame.shape
    src = IterableSource([frame] * 3, fps=10.0)
    s = run_pipeline(seg, src, RunOutputs(src, sys.argv[2], num_classes=2), progress=False)
    assert s.frames == 3, s
    heavy = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED and sys.modules[n] is not None)
    assert not heavy, heavy
    print("isolated", len(mods))
    """
)


def test_runtime_imports_and_runs_without_torch_or_onnx(model, tmp_path):
    proc = subprocess.run([sys.executable, "-c", ISOLATION, str(model("float")), str(tmp_path / "iso.mp4")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "isolated" in proc.stdout
    assert int(proc.stdout.split()[-1]) >= 25  # every runtime and engine submodule, TensorRT ones included
    assert (tmp_path / "iso.mp4").is_file()
