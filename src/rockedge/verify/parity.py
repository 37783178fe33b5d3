"""Parity between two backends, in segmentation terms.

Two models agree when they paint the same pixels the same class, so the report leads with mask agreement,
agreement near class boundaries (where precision loss shows first) and per-class IoU between the two masks;
max/mean absolute logit difference is reported when both sides output logits. Each backend prepares the same
BGR frames according to its own spec, so a ``raw``-input ONNX is compared with a float-input checkpoint
exactly as each would be fed in production. Any backend can be either side: a checkpoint, an ONNX model in
any precision, a TensorRT engine. A non-finite output on either side always fails.

:func:`compare` is :func:`run_backend` on both sides, then :func:`score`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.runtime.batching import count_nonfinite
from rockedge.runtime.preprocess import to_masks
from rockedge.spec import ModelSpec
from rockedge.verify.metrics import MaskAgreement

# How finely each format resolves a logit, relative to the logit scale: machine epsilon for the float formats,
# one quantization step (1/127 of a symmetric range) for int8.
RESOLUTION: dict[Precision, float] = {
    Precision.FP32: float(np.finfo(np.float32).eps),
    Precision.FP16: float(np.finfo(np.float16).eps),
    Precision.INT8: 1.0 / 127,
}
# A pixel is a tie when its reference top-2 gap is within what the candidate's format can move both logits:
# one resolution step each. FP32 has a floor: PyTorch and ONNX Runtime sum in different orders, and logits that
# differ by 1e-7 relative flip either way.
TIE_STEPS = 2
FP32_TIE_FLOOR = 1e-4


def tie_margin_for(precision: str | Precision) -> float:
    """The default tie margin of a precision, in units of the logit scale (see :data:`RESOLUTION`)."""
    return max(FP32_TIE_FLOOR, TIE_STEPS * RESOLUTION[Precision.parse(precision)])


def tie_basis(precision: str | Precision) -> str:
    p = Precision.parse(precision)
    step = TIE_STEPS * RESOLUTION[p]
    if step < FP32_TIE_FLOOR:
        return f"floor {FP32_TIE_FLOOR:g} (fp32 kernels differ in summation order)"
    unit = "quantization step (1/127)" if p is Precision.INT8 else f"{p.value} epsilon ({RESOLUTION[p]:.3g})"
    return f"{TIE_STEPS} x {unit}"


# Defaults per precision. FP32 should be bit-for-bit in argmax except ties; FP16 and INT8 move logits enough to
# flip pixels along boundaries, hence the looser boundary budgets. INT8 is also held to an accuracy budget on
# labelled data (rock-IoU drop), which says more than agreement with the FP32 model.
PRESETS: dict[Precision, dict[str, float | None]] = {
    Precision.FP32: {"min_agreement": 0.9999, "min_boundary_agreement": 0.999, "max_abs_diff": 1e-3,
                     "min_iou": 0.999, "tie_margin": tie_margin_for(Precision.FP32)},
    Precision.FP16: {"min_agreement": 0.999, "min_boundary_agreement": 0.97, "max_abs_diff": None, "min_iou": 0.98,
                     "tie_margin": tie_margin_for(Precision.FP16)},
    Precision.INT8: {"min_agreement": 0.98, "min_boundary_agreement": 0.90, "max_abs_diff": None, "min_iou": 0.95,
                     "tie_margin": tie_margin_for(Precision.INT8)},
}


@dataclass(frozen=True)
class ParityBudget:
    """Pass thresholds. ``None`` disables a check. Build with :meth:`for_precision` to get the defaults."""

    precision: Precision = Precision.FP32
    min_agreement: float | None = 0.9999
    min_boundary_agreement: float | None = 0.999
    # Both logit tolerances scale with the reference's largest |logit| (never tighter than absolute):
    # FP32 error is relative, and a model trained with a weighted loss can have logits in the thousands,
    # where 1e-6 relative noise alone is several 1e-3 absolute.
    max_abs_diff: float | None = 1e-3  # only checked when both sides output logits
    min_iou: float | None = 0.999  # per class, between the two masks
    # A pixel whose reference top-2 logits are closer than this (x logit scale) has no defined class at the
    # candidate's precision: if the candidate picks the other class there, that is a tie, not a disagreement
    # (counted as ``tie_flips``). The default follows the precision (:func:`tie_margin_for`).
    tie_margin: float | None = FP32_TIE_FLOOR

    @classmethod
    def for_precision(cls, precision: str | Precision = Precision.FP32, **overrides: float | None) -> "ParityBudget":
        """Defaults for ``fp32``/``fp16``/``int8``; keyword overrides that are None keep the default."""
        key = Precision.parse(precision)
        budget = cls(precision=key, **PRESETS[key])  # type: ignore[arg-type]
        given = {k: v for k, v in overrides.items() if v is not None}
        for k, v in given.items():
            if k not in PRESETS[key]:
                raise RockedgeError(f"unknown budget field {k!r}")
            if k not in ("max_abs_diff", "tie_margin") and not 0.0 <= float(v) <= 1.0:
                raise RockedgeError(f"{k.replace('_', '-')} is a fraction between 0 and 1, got {v}")
        return replace(budget, **given)

    @property
    def tie_basis(self) -> str:
        """Where the tie margin comes from, for reports."""
        if self.tie_margin is None:
            return "ties not counted"
        if self.tie_margin == tie_margin_for(self.precision):
            return tie_basis(self.precision)
        return "given (--tie-margin)"


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
    nonfinite: dict[str, int] = field(default_factory=dict)  # NaN/Inf output values per side

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size_hw"] = list(self.size_hw)
        d["classes"] = list(self.classes)
        d["budget"]["precision"] = self.budget.precision.value
        d["budget"]["tie_basis"] = self.budget.tie_basis
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
                         f"{b.tie_margin:.3g} x logit scale {self.logit_scale:.3g} ({b.tie_basis}), flipped; counted "
                         f"as agreeing. Raw agreement {self.raw_agreement * 100:.4f} %)")
        for side, n in self.nonfinite.items():
            if n:
                lines.append(f"  {side} output: {n} non-finite values (NaN/Inf)")
        lines += [f"  warning: {w}" for w in self.warnings]
        lines.append(f"  result: {'PASS' if self.passed else 'FAIL'}")
        lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)


@dataclass
class BackendRun:
    """One side of a comparison: per-frame outputs, how long they took, how many values were not finite."""

    describe: dict[str, Any]
    spec: ModelSpec
    outputs: list[np.ndarray]
    seconds: float
    nonfinite: int


@dataclass
class _Tally:
    """Running sums over frames for :func:`score`."""

    agree: MaskAgreement
    raw: MaskAgreement
    counts: np.ndarray
    tie_pixels: int = 0
    tie_flips: int = 0
    max_diff: float = 0.0
    diff_sum: float = 0.0
    diff_n: int = 0


def score(ref: BackendRun, cand: BackendRun, *, budget: ParityBudget, size: tuple[int, int], batch: int,
          frame_source: str = "") -> ParityReport:
    """Compare two sets of outputs frame by frame and hold them to ``budget``."""
    rspec, cspec = ref.spec, cand.spec
    if not ref.outputs or len(ref.outputs) != len(cand.outputs):
        raise RockedgeError(f"nothing to compare: {len(ref.outputs)} reference and {len(cand.outputs)} candidate "
                            "outputs (each side needs one per frame)")
    logits = rspec.output_format == "logits" and cspec.output_format == "logits"
    n_cls = rspec.num_classes
    t = _Tally(MaskAgreement(n_cls), MaskAgreement(n_cls), np.zeros(n_cls, np.int64))
    finite = [o for o in ref.outputs if count_nonfinite(o) == 0]
    scale = max([1.0] + [float(np.abs(r).max()) for r in finite]) if rspec.output_format == "logits" else 1.0
    tie_margin = None if budget.tie_margin is None else budget.tie_margin * scale
    for r, c in zip(ref.outputs, cand.outputs):
        _check_channels("reference", r, rspec)
        _check_channels("candidate", c, cspec)
        if logits:
            if r.shape != c.shape:
                raise RockedgeError(f"output shapes differ: {r.shape} vs {c.shape}")
            d = np.abs(r.astype(np.float64) - c.astype(np.float64))
            ok = np.isfinite(d)  # non-finite values are counted (and fail) separately
            if ok.any():
                t.max_diff = max(t.max_diff, float(d[ok].max()))
            t.diff_sum += float(d[ok].sum())
            t.diff_n += int(ok.sum())
        ma = to_masks(r[None], rspec)[0]
        mb = to_masks(c[None], cspec)[0]
        if ma.shape != mb.shape:
            raise RockedgeError(f"mask shapes differ: {ma.shape} vs {mb.shape}")
        t.raw.update(ma, mb)
        if tie_margin is not None and rspec.output_format == "logits":  # a spec has >= 2 classes
            # A tie is between the two highest reference logits; only a switch to the other of those two is one.
            two = np.argpartition(r, r.shape[0] - 2, axis=0)[-2:]
            top2 = np.take_along_axis(r, two, axis=0)
            tie = (top2[1] - top2[0]) <= tie_margin
            flips = tie & (ma != mb) & ((mb == two[0]) | (mb == two[1]))
            t.tie_pixels += int(tie.sum())
            t.tie_flips += int(flips.sum())
            mb = np.where(flips, ma, mb)
        t.agree.update(ma, mb)
        t.counts += np.bincount(ma.ravel(), minlength=n_cls)[:n_cls]

    report = ParityReport(
        reference=ref.describe,
        candidate=cand.describe,
        frames=len(ref.outputs),
        size_hw=size,
        batch=batch,
        classes=rspec.classes,
        max_abs_diff=t.max_diff if logits else None,
        mean_abs_diff=t.diff_sum / t.diff_n if logits and t.diff_n else None,
        agreement=float(t.agree.agreement),
        boundary_agreement=float(t.agree.boundary_agreement),
        iou={name: float(v) for name, v in zip(rspec.classes, t.agree.iou())},
        budget=budget,
        frame_source=frame_source,
        raw_agreement=float(t.raw.agreement),
        tie_pixels=t.tie_pixels,
        tie_flips=t.tie_flips,
        reference_class_share={n: float(c / t.counts.sum()) for n, c in zip(rspec.classes, t.counts)},
        seconds={"reference": round(ref.seconds, 3), "candidate": round(cand.seconds, 3)},
        logit_scale=scale,
        nonfinite={"reference": ref.nonfinite, "candidate": cand.nonfinite},
    )
    report.warnings = _warnings(report, t)
    report.failures = _check(report, budget)
    report.passed = not report.failures
    return report


def _check_channels(side: str, out: np.ndarray, spec: ModelSpec) -> None:
    if spec.output_format == "logits" and out.shape[0] != spec.num_classes:
        raise RockedgeError(f"the {side} output has {out.shape[0]} channels but its spec names {spec.num_classes} "
                            f"classes ({', '.join(spec.classes)})")


def _warnings(r: ParityReport, t: _Tally) -> list[str]:
    out = []
    pixels = t.raw.pixels  # > 0: score() refuses an empty comparison
    if t.tie_pixels > 0.5 * pixels:
        out.append(f"{t.tie_pixels / pixels * 100:.0f} % of pixels are near-ties: the reference's logits are "
                   "flat (untrained model?), so agreement proves little")
    if max(r.reference_class_share.values()) > 0.99:
        if r.frame_source.startswith("generated"):
            out.append("the reference paints > 99 % of pixels one class: use real images (--data) or a trained model")
        else:
            out.append(f"the reference paints > 99 % of pixels one class on {r.frame_source or 'these frames'}: "
                       "the check proves little; use images with more rock in them, or check the model (rockedge "
                       "eval)")
    return out


def _check(r: ParityReport, b: ParityBudget) -> list[str]:
    out = [f"{side} output has {n} non-finite values (NaN/Inf): a model that emits them never passes"
           for side, n in r.nonfinite.items() if n]
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
