"""``rockedge benchmark``: speed, memory and accuracy of every model on every backend that can run it here, in one
table, next to the machine's own ceiling measured in the same run.

Each (model, backend) pair is measured in a child process (:func:`measure`, run as ``python -m
rockedge.benchmark REQUEST``), so its peak memory is its own and one crash does not end the run. Latency is
the backend's inference call on a prepared batch (pre- and post-processing are ``rockedge run``'s business;
its summary times them). The ceiling is a large matrix product through the same runtime, providers and
precision; a model's achieved compute rate (FLOPs stamped at export / latency) as a fraction of it says how
close to the hardware the model runs. Nothing here imports torch or onnx at module level.
"""

from __future__ import annotations

import datetime as _dt
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.atomic import atomic_path
from rockedge.child import child_main, run_child
from rockedge.console import progress as console_progress
from rockedge.data.datasets import open_dataset
from rockedge.errors import RockedgeError
from rockedge.flops import FLOPS_KEY
from rockedge.onnx_proto import matmul_model
from rockedge.precision import Precision
from rockedge.probes import (
    cpu_info,
    cuda_gpu,
    jetson,
    module_version,
    tensorrt_available,
    torch_cuda,
)
from rockedge.runtime.backends.loader import BackendOptions, open_backend
from rockedge.runtime.batching import collate
from rockedge.runtime.modelfile import file_kind, open_model_file
from rockedge.runtime.preprocess import prepare
from rockedge.verify.accuracy import budget_class
from rockedge.verify.compare import frames_with_source
from rockedge.verify.evaluation import boundary_view, evaluate, report_classes

CEILING_N = {"fp32": 1024, "fp16": 1024, "int8": 1024, "int8-cpu": 1024}


@dataclass(frozen=True)
class Target:
    """One model on one backend configuration."""

    model: str
    backend: str  # torch | ort | trt
    providers: tuple[str, ...] = ()
    device: str | None = None
    precision: str = "fp32"  # torch: fp16 runs under CUDA autocast

    @property
    def label(self) -> str:
        if self.backend == "ort":
            return "onnxruntime " + "+".join(p.replace("ExecutionProvider", "").lower() for p in self.providers)
        if self.backend == "torch":
            return f"torch {self.device or 'cpu'}"
        return "tensorrt"


@dataclass
class Row:
    target: Target
    precision: str = ""
    int8_target: str | None = None  # an INT8 ONNX's layout: tensorrt | cpu
    batch: int = 1
    size_hw: tuple[int, int] = (0, 0)
    size_mb: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50/p95/p99/mean per batch
    images_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    gpu_mem_mb: float | None = None
    gflops_per_image: float | None = None
    achieved_gflops: float | None = None
    ceiling_gflops: float | None = None
    iou: float | None = None  # of the rock (second) class
    miou: float | None = None
    error: str | None = None

    @property
    def prec(self) -> str:
        """``fp32``, ``int8/cpu``, ``int8/trt``: the precision with an INT8 model's layout."""
        if self.int8_target:
            return f"{self.precision}/{'trt' if self.int8_target == 'tensorrt' else self.int8_target}"
        return self.precision

    @property
    def ceiling_fraction(self) -> float | None:
        if self.achieved_gflops is None or not self.ceiling_gflops:
            return None
        return self.achieved_gflops / self.ceiling_gflops

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = {**asdict(self.target), "label": self.target.label}
        d["ceiling_fraction"] = self.ceiling_fraction
        return d


def targets_for(model: Path) -> list[Target]:
    """Every backend configuration that can run ``model`` on this machine."""

    kind = file_kind(model).name
    out: list[Target] = []
    if kind == "onnx" and module_version("onnxruntime"):
        import onnxruntime as ort

        available = ort.get_available_providers()
        for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
            if p in available:
                out.append(Target(str(model), "ort", (p,)))
    elif kind == "engine" and tensorrt_available() and cuda_gpu().ok:
        out.append(Target(str(model), "trt"))
    elif kind == "checkpoint" and module_version("torch"):
        out.append(Target(str(model), "torch", device="cpu"))
        if torch_cuda():
            out += [Target(str(model), "torch", device="cuda"), Target(str(model), "torch", device="cuda", precision="fp16")]
    return out


# -- in the child process -------------------------------------------------------------------------------------------


def _open(t: Target, trust_plan_code: bool = False) -> Any:
    return open_backend(t.model, BackendOptions(backend=t.backend, providers=t.providers or None, device=t.device,
                                                precision=Precision.parse(t.precision), trust_plan_code=trust_plan_code))


def _flops(t: Target, backend: Any, size: tuple[int, int]) -> float | None:
    """FLOPs per image at ``size``: the export's count scaled by pixels, or counted on the checkpoint."""

    model = Path(t.model)
    count, at = None, backend.spec.input_size
    if t.backend == "ort":
        count = float(open_model_file(model).metadata.get(FLOPS_KEY, 0)) or None
    elif t.backend == "trt":
        count = float((getattr(backend, "manifest", None).build or {}).get("flops") or 0) or None  # type: ignore[union-attr]
    elif t.backend == "torch":
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from rockedge.models.zoo import main_output

        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            main_output(backend.model(torch.zeros(1, 3, *size, device=backend.device)))
        count, at = float(fc.get_total_flops()), size
    if count is None:
        return None
    return count * (size[0] * size[1]) / (at[0] * at[1])


def _ceiling(t: Target, precision: str) -> float | None:
    """GFLOP/s of an n x n matrix product through the same runtime, providers and precision."""
    n = CEILING_N.get(precision, 1024)
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    if t.backend == "ort":
        import onnxruntime as ort

        sess = ort.InferenceSession(matmul_model(n, precision), providers=list(t.providers))
        def run() -> None:
            sess.run(None, {"A": a, "B": a})
    elif t.backend == "torch":
        import torch

        dtype = torch.float16 if (t.precision == "fp16" and t.device and t.device.startswith("cuda")) else torch.float32
        x = torch.from_numpy(a).to(t.device or "cpu", dtype)

        def run() -> None:
            torch.matmul(x, x)
            if x.is_cuda:
                torch.cuda.synchronize()
    else:
        return None  # TensorRT: measured with trtexec on the device (docs/benchmarks.md)
    run()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times)) / 1e9


def measure(req: dict[str, Any]) -> dict[str, Any]:
    """Measure one target (see the module docstring); returns the row as a dict."""

    t = Target(**{**req["target"], "providers": tuple(req["target"]["providers"])})
    row = Row(t, size_mb=Path(t.model).stat().st_size / 1e6)
    with _open(t, bool(req.get("trust_plan_code"))) as be:
        size = be.fixed_size or tuple(req.get("imgsz") or be.spec.input_size)
        batch = be.fixed_batch or int(req.get("batch", 1))
        row.precision, row.batch, row.size_hw = be.info.precision.value, batch, size
        row.int8_target = be.info.details.get("int8_target")
        frames = _frames(req.get("data"), size, batch)
        x, _ = prepare(frames, be.spec, size)
        x = collate([x], be.fixed_batch)
        for _ in range(int(req.get("warmup", 3))):
            be.infer(x)
        times = []
        for _ in range(int(req.get("runs", 20))):
            be.infer(x)
            times.append(be.last_infer_s)
        ms = np.asarray(times) * 1e3
        row.latency_ms = {k: round(float(v), 3) for k, v in (("p50", np.percentile(ms, 50)), ("p95", np.percentile(ms, 95)),
                                                           ("p99", np.percentile(ms, 99)), ("mean", ms.mean()))}
        row.images_per_s = batch / (float(ms.mean()) / 1e3)
        flops = _flops(t, be, size)
        if flops:
            row.gflops_per_image = flops / 1e9
            row.achieved_gflops = flops * batch / (row.latency_ms["p50"] / 1e3) / 1e9
        if req.get("data"):
            ds = boundary_view(be.spec, open_dataset(req["data"], "val"))
            cm = evaluate(be, ds, batch=batch, size_hw=size)
            rep = cm.report(report_classes(be.spec, cm))
            cls = budget_class(be.spec)
            row.miou, row.iou = rep["miou"], rep["iou"].get(cls) if cls != "mIoU" else rep["miou"]
        if t.backend == "torch" and t.device and t.device.startswith("cuda"):
            import torch

            row.gpu_mem_mb = torch.cuda.max_memory_allocated() / 2**20
    row.ceiling_gflops = _ceiling(t, "int8-cpu" if row.int8_target == "cpu" else row.precision)
    row.peak_rss_mb = peak_rss_mb()
    return row.to_dict()


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space exec created; getrusage's
    ru_maxrss survives exec on Linux and would report the parent's peak (a demo process holding torch)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _frames(data: str | None, size: tuple[int, int], n: int) -> list[np.ndarray]:
    """``n`` real frames (the dataset's val images, repeated if it has fewer) or generated rock scenes."""

    frames = frames_with_source(n, size, data, seed=0)[0]
    return (frames * n)[:n]


# -- the parent ---------------------------------------------------------------------------------------------------


@dataclass
class Report:
    rows: list[Row]
    machine: dict[str, Any]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "settings": self.settings, "rows": [r.to_dict() for r in self.rows]}

    def table(self) -> str:
        head = (f"{'model':<24}{'backend':<22}{'prec':<9}{'batch':>5}{'size':>10}{'p50 ms':>9}{'p95':>8}{'p99':>8}"
                f"{'img/s':>8}{'GFLOP/s':>9}{'ceiling':>9}{'RSS MB':>8}{'MB':>7}{'IoU':>7}{'mIoU':>7}")
        lines = [head]
        for r in self.rows:
            name = Path(r.target.model).name[:23]
            if r.error:
                lines.append(f"{name:<24}{r.target.label:<22}error: {r.error}")
                continue
            lat = r.latency_ms
            frac = f"{100 * r.ceiling_fraction:.0f} %" if r.ceiling_fraction is not None else "-"
            gf = f"{r.achieved_gflops:.1f}" if r.achieved_gflops is not None else "-"
            iou = f"{100 * r.iou:.1f}" if r.iou is not None else "-"
            miou = f"{100 * r.miou:.1f}" if r.miou is not None else "-"
            lines.append(f"{name:<24}{r.target.label:<22}{r.prec:<9}{r.batch:>5}{r.size_hw[0]:>5}x{r.size_hw[1]:<4}"
                         f"{lat['p50']:>9.1f}{lat['p95']:>8.1f}{lat['p99']:>8.1f}{r.images_per_s:>8.1f}{gf:>9}{frac:>9}"
                         f"{r.peak_rss_mb:>8.0f}{r.size_mb:>7.1f}{iou:>7}{miou:>7}")
        ceilings = sorted({(r.target.label, r.prec, round(r.ceiling_gflops, 1)) for r in self.rows if r.ceiling_gflops})
        if ceilings:
            lines.append("ceiling = a 1024x1024 matrix product through the same runtime and precision: "
                         + "; ".join(f"{lab} {p} {g} GFLOP/s" for lab, p, g in ceilings))
        lines.append(f"machine: {self.machine['summary']}")
        return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """The machine a benchmark ran on: CPU model, cores and instruction-set extensions, GPU, Jetson, Python."""
    cpu = cpu_info()
    gpu = cuda_gpu()
    j = jetson()
    isa = ", ".join(cpu["isa"]) or "no SIMD extensions listed"
    summary = f"{cpu['model']}, {cpu['cores']} cores ({isa})" + (f"; {gpu.detail}" if gpu.ok else "; no GPU")
    if j.ok:
        summary = j.detail + "; " + summary
    return {"date": _dt.date.today().isoformat(), "host": platform.node(), "cpu": cpu["model"], "cores": cpu["cores"],
            "arch": cpu["arch"], "isa": cpu["isa"], "int8_dot_product": cpu["int8_dot_product"],
            "gpu": gpu.detail if gpu.ok else None, "jetson": j.value, "python": platform.python_version(),
            "summary": summary}


def common_size(models: list[Path]) -> tuple[int, int] | None:
    """The one input size every model can run at: the fixed size of the exported models (a checkpoint runs at any
    size), so the table compares models at one size; None when they disagree or none is fixed."""
    sizes = set()
    for m in models:
        mf = open_model_file(m)
        if mf.kind == "checkpoint" or mf.spec is None or not mf.inputs:
            continue
        shape = mf.inputs[0].shape
        if len(shape) != 4:
            continue
        h, w = (shape[1], shape[2]) if mf.spec.input_format == "raw" else (shape[2], shape[3])
        if h is not None and w is not None:
            sizes.add((int(h), int(w)))
    return next(iter(sizes)) if len(sizes) == 1 else None


def run_benchmark(models: list[Path], *, data: str | None = None, imgsz: tuple[int, int] | None = None,
                  batch: int = 1, runs: int = 20, warmup: int = 3, progress: bool = True,
                  trust_plan_code: bool = False) -> Report:
    """Measure every model on every backend that can run it here (one child process per pair)."""
    if runs < 1 or warmup < 0:
        raise RockedgeError("--runs must be >= 1 and --warmup >= 0")
    targets: list[Target] = []
    for m in models:
        if not m.exists():
            raise RockedgeError(f"model not found: {m}")
    imgsz = imgsz or common_size(models)
    for m in models:
        found = targets_for(m)
        if not found:
            raise RockedgeError(f"no backend can run {m.name} on this machine (see rockedge doctor)")
        targets += found
    rows = []
    bar = console_progress(total=len(targets), desc="benchmark", unit="model", enabled=progress)
    for t in targets:
        bar.set_postfix_str(f"{Path(t.model).name} on {t.label}")
        req = {"target": asdict(t), "data": str(data) if data else None, "imgsz": imgsz, "batch": batch,
               "runs": runs, "warmup": warmup, "trust_plan_code": trust_plan_code}
        rows.append(_child(req, t))
        bar.update(1)
    bar.close()
    return Report(rows, machine_info(), {"data": str(data) if data else None, "imgsz": imgsz, "batch": batch,
                                         "runs": runs, "warmup": warmup})


def _child(req: dict[str, Any], t: Target) -> Row:
    child = run_child("rockedge.benchmark", req, what=f"benchmarking {Path(t.model).name}")
    if not child.ok:
        return Row(t, error=child.error("the benchmark process")[:200])
    d = dict(child.result["row"])
    d.pop("ceiling_fraction", None)
    d["target"] = t
    d["size_hw"] = tuple(d["size_hw"])
    return Row(**d)


def plot(report: Report, path: Path) -> Path | None:
    """Latency per model and backend, and accuracy against throughput, as a PNG (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None

    rows = [r for r in report.rows if not r.error]
    labels = [f"{Path(r.target.model).name}\n{r.target.label} {r.prec}" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(13, max(3.5, 0.55 * len(rows) + 1.5)))
    ax = axes[0]
    ax.barh(labels, [r.latency_ms["p50"] for r in rows], xerr=[[0] * len(rows),
            [r.latency_ms["p95"] - r.latency_ms["p50"] for r in rows]], color="#3b7dd8")
    ax.set(xlabel="latency per batch, ms (bar p50, whisker p95)", title="speed")
    ax.invert_yaxis()
    ax = axes[1]
    acc = [r for r in rows if r.iou is not None]
    if acc:
        ax.scatter([r.images_per_s for r in acc], [100 * (r.iou or 0) for r in acc], s=60, color="#d8543b")
        for r in acc:
            ax.annotate(f"{Path(r.target.model).stem} {r.prec}", (r.images_per_s, 100 * (r.iou or 0)), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
        ax.set(xlabel="images/s", ylabel="rock IoU, %", title="accuracy vs throughput")
    else:
        ax.text(0.5, 0.5, "no --data: accuracy not measured", ha="center", va="center")
        ax.set_axis_off()
    sizes = sorted({f"{r.size_hw[0]}x{r.size_hw[1]}" for r in rows})
    fig.suptitle(f"input {' / '.join(sizes)}, batch {report.settings.get('batch')}; {report.machine['summary']}",
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    return child_main(argv, lambda request: {"row": measure(request)})


if __name__ == "__main__":  # run by run_benchmark in a child process
    sys.exit(main(sys.argv))
