"""`rockedge benchmark`: every model on every backend that runs here, the machine's ceiling in the same run, and
FLOPs counted at export that agree with PyTorch's own count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from rockedge.cli import main

MNV3 = "deeplabv3_mobilenet_v3_large"


@pytest.fixture(scope="module")
def models(trained_ckpt, tmp_path_factory) -> dict[str, Path]:
    from rockedge.export.onnx import export_onnx

    ckpt = trained_ckpt()
    onnx_path = export_onnx(ckpt, tmp_path_factory.mktemp("bench") / "m.onnx", progress=False).path
    return {"ckpt": ckpt, "onnx": onnx_path}


def test_flops_stamped_at_export_match_torch(models):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from rockedge.models.checkpoint import load_checkpoint
    from rockedge.models.zoo import main_output
    from rockedge.onnx_proto import read_metadata

    stamped = int(read_metadata(models["onnx"])["rockedge.flops"])
    model = load_checkpoint(models["ckpt"]).build()
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        main_output(model(torch.zeros(1, 3, 64, 64)))
    assert stamped == pytest.approx(fc.get_total_flops(), rel=0.01) and stamped > 1e7


def test_benchmark_table_json_and_chart(models, scenes, tmp_path):
    from rockedge.data.synth import write_synth_dataset

    data = write_synth_dataset(tmp_path / "d", n=5, size_hw=(64, 64), progress=False)
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["benchmark", str(models["onnx"]), str(models["ckpt"]), "--data", str(data),
                                  "--runs", "3", "--warmup", "1", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "p50 ms" in r.output and "ceiling = a 1024x1024 matrix product" in r.output
    report = json.loads((out / "benchmark.json").read_text())
    rows = {row["target"]["label"]: row for row in report["rows"]}
    from rockedge.verify.evaluation import evaluate_model

    evaluated, _ = evaluate_model(models["onnx"], data, progress=False)
    assert evaluated["iou"]["rock"] > 0.05  # a model that finds some rock: an IoU of 0 would match anything broken
    assert set(rows) == {"onnxruntime cpu", "torch cpu"}
    for row in rows.values():
        assert row["error"] is None
        lat = row["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] and row["images_per_s"] > 0
        assert row["peak_rss_mb"] > 50 and row["size_mb"] > 1
        # The accuracy columns are `rockedge eval`'s numbers on the same split, for either backend of the same model.
        assert row["iou"] == pytest.approx(evaluated["iou"]["rock"], abs=2e-3)
        assert row["miou"] == pytest.approx(evaluated["miou"], abs=2e-3)
        assert row["ceiling_gflops"] > 0 and 0 < row["ceiling_fraction"] < 2  # measured, in the same run
        assert row["achieved_gflops"] == pytest.approx(row["gflops_per_image"] / (lat["p50"] / 1e3), rel=1e-6)
    # Each target's memory is its own child's, not the parent's (which holds torch here): ONNX Runtime's is smaller.
    assert rows["onnxruntime cpu"]["peak_rss_mb"] < 0.8 * rows["torch cpu"]["peak_rss_mb"]
    assert rows["onnxruntime cpu"]["gflops_per_image"] == pytest.approx(rows["torch cpu"]["gflops_per_image"], rel=0.01)
    assert report["machine"]["cores"] and report["machine"]["date"]
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_bad_input_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["benchmark", str(tmp_path / "nope.onnx")])
    assert r.exit_code == 1 and "model not found" in r.output and len(r.output.strip().splitlines()) == 1
    bad = tmp_path / "x.plan"
    bad.write_bytes(b"plan")
    r = CliRunner().invoke(main, ["benchmark", str(bad)])
    assert r.exit_code == 1 and "no backend can run x.plan on this machine" in r.output


@pytest.mark.parametrize("kind", ["fp32", "fp16", "int8"])
def test_ceiling_models_are_valid_onnx_and_compute_a_matmul(kind):
    import onnxruntime as ort

    from rockedge.onnx_proto import matmul_model

    data = matmul_model(32, kind)
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    a = np.random.default_rng(0).uniform(-1, 1, (32, 32)).astype(np.float32)
    c = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"A": a, "B": a})[0]
    tol = {"fp32": 1e-4, "fp16": 0.1, "int8": 0.5}[kind]
    np.testing.assert_allclose(c.astype(np.float32), a @ a, atol=tol)
    with pytest.raises(ValueError):
        matmul_model(4, "fp8")


def test_cpu_features_are_read_for_both_architectures():
    from rockedge.probes import cpu_info

    x86 = cpu_info("model name\t: Some Xeon\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_int8\n", "x86_64")
    assert x86["model"] == "Some Xeon" and x86["isa"] == ["AVX2", "FMA", "AVX-512", "AVX-512 VNNI", "AMX-INT8"]
    assert x86["int8_dot_product"]
    old = cpu_info("flags : fpu sse avx2 fma\n", "x86_64")
    assert old["isa"] == ["AVX2", "FMA"] and not old["int8_dot_product"]
    orin = cpu_info("processor : 0\nFeatures : fp asimd evtstrm aes asimdhp cpuid asimdrdm asimddp\n", "aarch64")
    assert orin["isa"] == ["NEON", "dot product", "FP16 arithmetic"] and orin["int8_dot_product"]


def test_every_benchmark_names_the_isa(models, tmp_path):
    import sys as _sys
    from pathlib import Path as _Path

    from rockedge.benchmark import machine_info

    info = machine_info()
    assert isinstance(info["isa"], list) and "int8_dot_product" in info
    assert all(name in info["summary"] for name in info["isa"])
    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1] / "benchmarks"))
    from results import ISA_TAGS, machine_tag

    tag = machine_tag()
    assert any(tag.endswith(t) for _, t in ISA_TAGS) or tag.endswith("noisa")


def test_models_are_benchmarked_at_one_size(models):
    from rockedge.benchmark import common_size

    # the checkpoint runs at any size; the exported model decides
    assert common_size([models["ckpt"], models["onnx"]]) == (64, 64)
