"""Parity between two backends, in segmentation terms.

Two models agree when they paint the same pixels the same class, so the report leads with mask agreement,
agreement near class boundaries (where precision loss shows first) and per-class IoU between the two masks;
max/mean absolute logit difference is reported when both sides output logits. Each backend prepares the same
BGR frames according to its own spec, so a ``raw``-input ONNX is compared with a float-input checkpoint
exactly as each would be fed in production.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.errors import RockedgeError
from rockedge.metrics import MaskAgreement
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.preprocess import to_masks

# Defaults per precision. FP32 should be bit-for-bit in argmax except ties; FP16 and INT8 engines (later
# issues) move logits enough to flip pixels along boundaries, hence the looser boundary budgets.
PRESETS: dict[str, dict[str, float | None]] = {
    "fp32": {"min_agreement": 0.9999, "min_boundary_agreement": 0.999, "max_abs_diff": 1e-3, "min_iou": 0.999,
             "tie_margin": 1e-4},
    "fp16": {"min_agreement": 0.995, "min_boundary_agreement": 0.97, "max_abs_diff": None, "min_iou": 0.98,
             "tie_margin": 1e-4},
    "int8": {"min_agreement": 0.98, "min_boundary_agreement": 0.90, "max_abs_diff": None, "min_iou": 0.95,
             "tie_margin": 1e-4},
}


@dataclass(frozen=True)
class ParityBudget:
    """Pass thresholds. ``None`` disables a check. Build with :meth:`for_precision` to get the defaults."""

    precision: str = "fp32"
    min_agreement: float | None = 0.9999
    min_boundary_agreement: float | None = 0.999
    # Both logit tolerances scale with the reference's largest |logit| (never tighter than absolute):
    # FP32 error is relative, and a model trained with a weighted loss can have logits in the thousands,
    # where 1e-6 relative noise alone is several 1e-3 absolute.
    max_abs_diff: float | None = 1e-3  # only checked when both sides output logits
    min_iou: float | None = 0.999  # per class, between the two masks
    # A pixel whose reference top-2 logits are closer than this has no defined class at float precision:
    # if the candidate picks the other class there, that is a tie, not a disagreement (counted as ``tie_flips``).
    # Without it, a model with flat logits fails FP32 parity on a handful of pixels that differ by 1e-7.
    tie_margin: float | None = 1e-4

    @classmethod
    def for_precision(cls, precision: str = "fp32", **overrides: float | None) -> "ParityBudget":
        """Defaults for ``fp32``/``fp16``/``int8``; keyword overrides that are None keep the default."""
        key = precision.lower()
        if key not in PRESETS:
            raise RockedgeError(f"unknown budget {precision!r}; choose one of {', '.join(PRESETS)}")
        budget = cls(precision=key, **PRESETS[key])  # type: ignore[arg-type]
        given = {k: v for k, v in overrides.items() if v is not None}
        for k, v in given.items():
            if k not in PRESETS[key]:
                raise RockedgeError(f"unknown budget field {k!r}")
            if k not in ("max_abs_diff", "tie_margin") and not 0.0 <= float(v) <= 1.0:
                raise RockedgeError(f"{k.replace('_', '-')} is a fraction between 0 and 1, got {v}")
        return replace(budget, **given)


@dataclass
class ParityReport:
    """The result of :func:`compare`; ``passed`` is False when any budget is exceeded (see ``failures``)."""

    reference: dict[str, Any]
    candidate: dict[str, Any]
    frames: int
    size_hw: tuple[int, int]
    batch: int
    classes: tuple[str, ...]
    max_abs_diff: float | None
    mean_abs_diff: float | None
    agreement: float
    boundary_agreement: float
    iou: dict[str, float]
    budget: ParityBudget
    passed: bool = True
    failures: list[str] = field(default_factory=list)
    frame_source: str = ""
    warnings: list[str] = field(default_factory=list)  # why a pass may prove little
    raw_agreement: float = float("nan")  # agreement counting tie flips as disagreements
    tie_pixels: int = 0  # reference pixels within tie_margin of a class change
    tie_flips: int = 0  # of those, pixels where the candidate picked the other class
    # Share of each class in the reference masks: a one-class reference makes any agreement meaningless.
    reference_class_share: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    logit_scale: float = 1.0  # max(1, largest |reference logit|): the unit the logit tolerances are in

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size_hw"] = list(self.size_hw)
        d["classes"] = list(self.classes)
        return d

    def table(self) -> str:
        """A one-screen table for the terminal."""
        b = self.budget
        ref = self.reference.get("model") or self.reference.get("backend")
        cand = self.candidate.get("model") or self.candidate.get("backend")
        h, w = self.size_hw
        rows: list[tuple[str, str, str, str]] = []

        def row(name: str, value: float | None, fmt: str, limit: float | None, op: str, pct: bool = False) -> None:
            if value is None:
                rows.append((name, "n/a (mask output)", "", ""))
                return
            shown = f"{value * 100:.4f} %" if pct else format(value, fmt)
            if limit is None:
                rows.append((name, shown, "", ""))
                return
            lim = f"{limit * 100:g} %" if pct else format(limit, "g")
            ok = value <= limit if op == "<=" else value >= limit
            rows.append((name, shown, f"{op} {lim}", "ok" if ok else "FAIL"))

        row("max |logit diff|", self.max_abs_diff, ".3e",
            None if b.max_abs_diff is None else b.max_abs_diff * self.logit_scale, "<=")
        row("mean |logit diff|", self.mean_abs_diff, ".3e", None, "<=")
        row("mask agreement", self.agreement, "", b.min_agreement, ">=", pct=True)
        row("boundary agreement", self.boundary_agreement, "", b.min_boundary_agreement, ">=", pct=True)
        for name, v in self.iou.items():
            row(f"IoU {name}", v, ".5f", b.min_iou, ">=")
        width = max(len(r[0]) for r in rows)
        lines = [
            f"parity ({b.precision} budget): {ref} [{self.reference.get('backend')}] vs {cand} "
            f"[{self.candidate.get('backend')}]",
            f"  {self.frames} frames ({self.frame_source or 'given'}) at {h}x{w}, batch {self.batch}; reference masks: "
            + ", ".join(f"{k} {v * 100:.1f} %" for k, v in self.reference_class_share.items()),
        ]
        lines += [f"  {n:<{width}}  {v:<18} {lim:<12} {st}".rstrip() for n, v, lim, st in rows]
        if self.tie_flips:
            lines.append(f"  ({self.tie_flips} of {self.tie_pixels} near-tie pixels, reference margin <= "
                         f"{b.tie_margin:g}, flipped; counted as agreeing. Raw agreement {self.raw_agreement * 100:.4f} %)")
        lines += [f"  warning: {w}" for w in self.warnings]
        lines.append(f"  result: {'PASS' if self.passed else 'FAIL'}")
        lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)


def _size_for(reference: Backend, candidate: Backend, size_hw: tuple[int, int] | None) -> tuple[int, int]:
    fixed = {b.name + f"#{i}": b.fixed_size for i, b in enumerate((reference, candidate)) if b.fixed_size}
    sizes = set(fixed.values())
    if len(sizes) > 1:
        raise RockedgeError(
            f"the two models were built for different input sizes ({', '.join(f'{h}x{w}' for h, w in sizes)}); "
            "re-export one of them with --imgsz, or with --dynamic"
        )
    if size_hw is not None:
        size_hw = (int(size_hw[0]), int(size_hw[1]))
        if sizes and size_hw not in sizes:
            (h, w), = sizes
            raise RockedgeError(f"--imgsz {size_hw[0]} {size_hw[1]} does not fit a model built for {h}x{w}")
        return size_hw
    if sizes:
        return next(iter(sizes))
    return candidate.spec.input_size


def _run(backend: Backend, frames: list[np.ndarray], size: tuple[int, int], batch: int) -> tuple[list[np.ndarray], float]:
    """Outputs per frame, in batches of ``batch`` (or the model's fixed batch size)."""
    step = backend.fixed_batch or batch
    outs: list[np.ndarray] = []
    t = time.perf_counter()
    for i in range(0, len(frames), step):
        outs.extend(backend.infer_frames(frames[i : i + step], size)[0])
    return outs, time.perf_counter() - t


def compare(
    reference: Backend,
    candidate: Backend,
    frames: list[np.ndarray],
    *,
    budget: ParityBudget | None = None,
    batch: int = 1,
    size_hw: tuple[int, int] | None = None,
    frame_source: str = "",
) -> ParityReport:
    """Run both backends on the same BGR ``frames`` and measure how far their outputs and masks agree."""
    budget = budget or ParityBudget.for_precision("fp32")
    if not frames:
        raise RockedgeError("parity needs at least one frame")
    if batch < 1:
        raise RockedgeError(f"--batch must be >= 1, got {batch}")
    if reference.spec.num_classes != candidate.spec.num_classes:
        raise RockedgeError(
            f"the models predict different classes: {list(reference.spec.classes)} vs {list(candidate.spec.classes)}"
        )
    size = _size_for(reference, candidate, size_hw)
    ref_out, ref_s = _run(reference, frames, size, batch)
    cand_out, cand_s = _run(candidate, frames, size, batch)

    logits = reference.spec.output_format == "logits" and candidate.spec.output_format == "logits"
    agree = MaskAgreement(reference.spec.num_classes)
    raw = MaskAgreement(reference.spec.num_classes)
    tie_pixels = tie_flips = 0
    max_diff, diff_sum, diff_n = 0.0, 0.0, 0
    scale = 1.0
    if reference.spec.output_format == "logits":
        scale = max([1.0] + [float(np.abs(r).max()) for r in ref_out])
    tie_margin = None if budget.tie_margin is None else budget.tie_margin * scale
    counts = np.zeros(reference.spec.num_classes, np.int64)
    for r, c in zip(ref_out, cand_out):
        if logits:
            if r.shape != c.shape:
                raise RockedgeError(f"output shapes differ: {r.shape} vs {c.shape}")
            d = np.abs(r.astype(np.float64) - c.astype(np.float64))
            max_diff = max(max_diff, float(d.max()))
            diff_sum += float(d.sum())
            diff_n += d.size
        ma = to_masks(r[None], reference.spec)[0]
        mb = to_masks(c[None], candidate.spec)[0]
        if ma.shape != mb.shape:
            raise RockedgeError(f"mask shapes differ: {ma.shape} vs {mb.shape}")
        raw.update(ma, mb)
        if tie_margin is not None and reference.spec.output_format == "logits" and r.shape[0] > 1:
            top2 = np.partition(r, r.shape[0] - 2, axis=0)[-2:]
            tie = (top2[1] - top2[0]) <= tie_margin
            flips = tie & (ma != mb)
            tie_pixels += int(tie.sum())
            tie_flips += int(flips.sum())
            mb = np.where(flips, ma, mb)
        agree.update(ma, mb)
        counts += np.bincount(ma.ravel(), minlength=len(counts))[: len(counts)]

    iou = {name: float(v) for name, v in zip(reference.spec.classes, agree.iou())}
    report = ParityReport(
        reference=reference.describe(),
        candidate=candidate.describe(),
        frames=len(frames),
        size_hw=size,
        batch=batch,
        classes=reference.spec.classes,
        max_abs_diff=max_diff if logits else None,
        mean_abs_diff=diff_sum / diff_n if logits and diff_n else None,
        agreement=float(agree.agreement),
        boundary_agreement=float(agree.boundary_agreement),
        iou=iou,
        budget=budget,
        frame_source=frame_source,
        raw_agreement=float(raw.agreement),
        tie_pixels=tie_pixels,
        tie_flips=tie_flips,
        reference_class_share={n: float(c / max(1, counts.sum())) for n, c in zip(reference.spec.classes, counts)},
        seconds={"reference": round(ref_s, 3), "candidate": round(cand_s, 3)},
        logit_scale=scale,
    )
    pixels = max(1, raw.pixels)
    if tie_pixels > 0.5 * pixels:
        report.warnings.append(f"{tie_pixels / pixels * 100:.0f} % of pixels are near-ties: the reference's logits are "
                               "flat (untrained model?), so agreement proves little")
    if max(report.reference_class_share.values()) > 0.99:
        report.warnings.append("the reference paints > 99 % of pixels one class: use real images (--data) or a trained model")
    report.failures = _check(report, budget)
    report.passed = not report.failures
    return report


def _check(r: ParityReport, b: ParityBudget) -> list[str]:
    out = []
    if b.max_abs_diff is not None and r.max_abs_diff is not None and r.max_abs_diff > b.max_abs_diff * r.logit_scale:
        out.append(f"max |logit diff| {r.max_abs_diff:.3e} > {b.max_abs_diff:g} x logit scale {r.logit_scale:.4g}")
    if b.min_agreement is not None and r.agreement < b.min_agreement:
        out.append(f"mask agreement {r.agreement * 100:.4f} % < {b.min_agreement * 100:g} %")
    if b.min_boundary_agreement is not None and r.boundary_agreement < b.min_boundary_agreement:
        out.append(f"boundary agreement {r.boundary_agreement * 100:.4f} % < {b.min_boundary_agreement * 100:g} %")
    if b.min_iou is not None:
        for name, v in r.iou.items():
            if v < b.min_iou:
                out.append(f"IoU of class {name!r} between the masks {v:.5f} < {b.min_iou:g}")
    return out


def default_frames(
    n: int, size_hw: tuple[int, int], data_dir: str | Path | None = None, seed: int = 0
) -> list[np.ndarray]:
    """``n`` BGR frames: real images from the dataset's val split when ``data_dir`` is given, else generated
    rock scenes. Never random noise, which an untrained model maps to one class and so "agrees" perfectly."""
    frames, _ = frames_with_source(n, size_hw, data_dir, seed)
    return frames


def frames_with_source(
    n: int, size_hw: tuple[int, int], data_dir: str | Path | None = None, seed: int = 0
) -> tuple[list[np.ndarray], str]:
    """Like :func:`default_frames`, also saying where the frames came from (for the report)."""
    if n < 1:
        raise RockedgeError(f"--n must be >= 1, got {n}")
    if data_dir is not None:
        from rockedge.data.datasets import open_dataset

        ds = open_dataset(Path(data_dir), "val")
        if len(ds) == 0:
            raise RockedgeError(f"{data_dir} has no validation images to compare on")
        # Spread the picks over the split rather than taking the first n near-duplicates of one sequence.
        idx = np.unique(np.linspace(0, len(ds) - 1, num=min(n, len(ds))).round().astype(int))
        return [np.ascontiguousarray(ds[int(i)][0]) for i in idx], f"{data_dir} (val, {len(idx)} of {len(ds)})"
    rng = np.random.default_rng(seed)
    try:
        from rockedge.data.synth import render_scene
    except ImportError:
        render_scene = _blob_scene  # until rockedge.data.synth exists in this install
        source = "generated blob scenes"
    else:
        source = "generated rock scenes"
    return [render_scene(rng, tuple(size_hw))[0] for _ in range(n)], source


def _blob_scene(rng: np.random.Generator, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Textured ground with bright elliptical 'rocks': structure with real class boundaries."""
    import cv2

    h, w = size_hw
    img = rng.integers(60, 110, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        ax = (int(rng.integers(max(1, w // 12), max(2, w // 4))), int(rng.integers(max(1, h // 12), max(2, h // 4))))
        cv2.ellipse(mask, c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    tone = rng.integers(150, 220, 3)
    rock = mask == 1
    img[rock] = np.clip(tone + rng.normal(0, 12, (int(rock.sum()), 3)), 0, 255).astype(np.uint8)
    return img, mask
