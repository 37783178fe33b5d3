"""The manifest that travels beside a TensorRT plan (``model.plan.json``).

A serialized engine only runs on the TensorRT version and GPU that built it, and carries no
rockedge metadata; gluing a header onto it would break trtexec and DeepStream. So the ``.plan``
stays plain and this JSON beside it records what built it and how to feed it. Reading and checking
it needs neither TensorRT nor a GPU, so every rule here is tested on a CPU machine.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform as _platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rockedge._version import __version__
from rockedge.atomic import write_json
from rockedge.digest import sha256_file
from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.spec import ModelSpec

ALT_NAME = "{stem}.manifest.json"  # model.plan -> model.manifest.json (also accepted)
FORMAT = 1


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0, 26); non-numeric tails ('8.6.1.post1') are cut."""
    parts: list[int] = []
    for piece in str(text).strip().split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise RockedgeError(f"cannot read a version number from {text!r}")
    return tuple(parts)


@dataclass
class EngineManifest:
    """What built a plan and how to feed it. ``input_shapes``: name -> {"min", "opt", "max"} shapes."""

    spec: ModelSpec
    tensorrt_version: str  # "" when unknown (a manifest written for a plan built elsewhere, without TensorRT here)
    gpu_name: str
    compute_capability: str  # "8.7"
    precision: Precision = Precision.FP32
    input_shapes: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    onnx_sha256: str | None = None
    onnx_path: str | None = None
    built_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    rockedge_version: str = __version__
    # TensorRT >= 8.6 can build engines that later TensorRT versions / other GPUs accept.
    version_compatible: bool = False
    hardware_compatibility: str = "none"  # "none" | "ampere_plus"
    plan_sha256: str | None = None
    # How it was built: flag *names* (TensorRT 11 renumbered BuilderFlag), workspace, profile, DLA core...
    build: dict[str, Any] = field(default_factory=dict)
    calibration_sha256: str | None = None  # the calibration set of an implicitly calibrated INT8 engine
    platform: dict[str, Any] = field(default_factory=dict)  # Jetson model, L4T, JetPack, CUDA
    verification: dict[str, Any] = field(default_factory=dict)  # the parity check run after the build
    # The CPU architecture of the machine that built the plan (platform.machine(): aarch64, x86_64). A plan does not
    # move between CPU architectures, hardware-compatible or not. "" when unknown (older manifests).
    cpu_arch: str = field(default_factory=_platform.machine)

    def __post_init__(self) -> None:
        self.precision = Precision.parse(self.precision)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rockedge_version": self.rockedge_version,
            "spec": self.spec.to_dict(),
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "precision": self.precision.value,
            "input_shapes": self.input_shapes,
            "onnx_sha256": self.onnx_sha256,
            "onnx_path": self.onnx_path,
            "built_at": self.built_at,
            "version_compatible": self.version_compatible,
            "hardware_compatibility": self.hardware_compatibility,
            "plan_sha256": self.plan_sha256,
            "build": self.build,
            "calibration_sha256": self.calibration_sha256,
            "platform": self.platform,
            "verification": self.verification,
            "cpu_arch": self.cpu_arch,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest") -> "EngineManifest":
        if not isinstance(d, dict):
            raise RockedgeError(f"{where} is not a rockedge engine manifest (a JSON object)")
        missing = [k for k in ("spec", "tensorrt_version", "gpu_name", "compute_capability") if k not in d]
        if missing:
            raise RockedgeError(f"{where} lacks {', '.join(missing)}; rebuild the engine with rockedge")

        def bad(name: str, kind: str) -> RockedgeError:
            return RockedgeError(f"{where}: field {name!r} must be {kind}, got {d.get(name)!r}; rebuild the engine "
                                 "with rockedge or rewrite the manifest (rockedge spec write)")

        def text(name: str, default: Any = "", optional: bool = False) -> Any:
            v = d.get(name, default)
            if v is None and optional:
                return None
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise bad(name, "a string")
            return str(v)

        def obj(name: str) -> dict[str, Any]:
            v = d.get(name) or {}
            if not isinstance(v, dict):
                raise bad(name, "a JSON object")
            return dict(v)

        shapes = obj("input_shapes")
        try:
            input_shapes = {str(k): {str(kk): [_dim(x) for x in vv] for kk, vv in v.items()}
                            for k, v in shapes.items()}
        except (AttributeError, TypeError, ValueError):
            raise bad("input_shapes", '{"input": {"min": [dims], "opt": [dims], "max": [dims]}}') from None
        prec = d.get("precision", "fp32")
        if not isinstance(prec, str):
            raise bad("precision", "fp32, fp16 or int8")
        return cls(
            spec=ModelSpec.from_dict(d["spec"], where),
            tensorrt_version=text("tensorrt_version"),
            gpu_name=text("gpu_name"),
            compute_capability=text("compute_capability"),
            precision=Precision.parse(prec),
            input_shapes=input_shapes,
            onnx_sha256=text("onnx_sha256", None, optional=True),
            onnx_path=text("onnx_path", None, optional=True),
            built_at=text("built_at"),
            rockedge_version=text("rockedge_version"),
            version_compatible=bool(d.get("version_compatible", False)),
            hardware_compatibility=text("hardware_compatibility", "none"),
            plan_sha256=text("plan_sha256", None, optional=True),
            build=obj("build"),
            calibration_sha256=text("calibration_sha256", None, optional=True),
            platform=obj("platform"),
            verification=obj("verification"),
            cpu_arch=text("cpu_arch", "", optional=True) or "",
        )


def _dim(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or float(x) != int(x):
        raise TypeError(x)
    return int(x)


def manifest_path(plan: str | os.PathLike[str]) -> Path:
    """Where the manifest of ``plan`` is written: ``model.plan`` -> ``model.plan.json``."""
    plan = Path(plan)
    return plan.with_name(plan.name + ".json")


def find_manifest(plan: str | os.PathLike[str]) -> Path | None:
    plan = Path(plan)
    for p in (manifest_path(plan), plan.with_name(ALT_NAME.format(stem=plan.stem))):
        if p.is_file():
            return p
    return None


def write_manifest(plan: str | os.PathLike[str], manifest: EngineManifest) -> Path:
    """Write ``manifest`` beside ``plan`` (atomically), filling in the plan's sha256."""
    plan = Path(plan)
    if plan.is_file() and manifest.plan_sha256 is None:
        manifest.plan_sha256 = sha256_file(plan)
    return write_json(manifest_path(plan), manifest.to_dict())


def read_manifest(plan: str | os.PathLike[str]) -> EngineManifest:
    plan = Path(plan)
    path = find_manifest(plan)
    if path is None:
        raise RockedgeError(
            f"{plan.name} has no manifest beside it ({manifest_path(plan).name}); rockedge needs it for the "
            f"classes and preprocessing: copy it along with the plan, describe the model with --classes (and "
            f"--palette, --mean, --std, --input-format), or write one once: rockedge spec write {plan.name} "
            "--from MODEL.onnx (or --classes ...)"
        )
    try:
        d = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise RockedgeError(f"{path} is not a rockedge engine manifest (not UTF-8 JSON text; a binary file?)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise RockedgeError(f"cannot read {path}: {e}") from None
    return EngineManifest.from_dict(d, where=str(path))  # refuses JSON that is not an object, naming the file


def rebuild_hint(plan: Path, m: EngineManifest) -> str:
    onnx = Path(m.onnx_path).name if m.onnx_path else plan.with_suffix(".onnx").name
    return f"rebuild it on this device from the ONNX: rockedge export {onnx} --format engine"


def check_plan_file(m: EngineManifest, plan: str | os.PathLike[str], *, cpu_arch: str | None = None) -> None:
    """What can be refused without TensorRT or a GPU: a plan that is not the one its manifest describes (sha256),
    or one built on another CPU architecture. Checked first, so such a plan fails the same way on every machine."""
    plan = Path(plan)
    hint = rebuild_hint(plan, m)
    if m.plan_sha256 and plan.is_file() and sha256_file(plan) != m.plan_sha256:
        raise RockedgeError(f"{plan.name} does not match its manifest (sha256 differs): the plan was replaced "
                            f"or the manifest belongs to another engine; {hint}")
    arch = cpu_arch or _platform.machine()
    if m.cpu_arch and arch and m.cpu_arch != arch:
        raise RockedgeError(f"{plan.name} was built on a {m.cpu_arch} machine, this is {arch}: TensorRT plans do not "
                            f"move between CPU architectures; {hint}")


def check_manifest(
    m: EngineManifest,
    plan: str | os.PathLike[str],
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    cpu_arch: str | None = None,
    plan_checked: bool = False,
) -> list[str]:
    """Refuse a plan that this TensorRT or GPU cannot run; return warnings for what merely may be slower.

    Rules: a plan runs only on the CPU architecture that built it, and only under the TensorRT version that
    built it (major.minor.patch), unless it was built version-compatible (TensorRT >= 8.6): NVIDIA documents
    that such a plan runs on later TensorRT releases, later majors included (8.6 -> 9/10, 10 -> 11), so any
    later version is let through and TensorRT itself refuses what it cannot run. It runs only on the compute
    capability it was built for, unless built with the ``ampere_plus`` hardware compatibility level (then any
    GPU of capability >= 8.0). The same capability under another GPU name loads, possibly slower: a warning.

    A manifest written where TensorRT was not (``rockedge spec write`` for a plan built elsewhere) records no
    TensorRT version or GPU: each rule whose field is missing is not checked here, and a warning says which (TensorRT
    itself refuses a plan from another version or GPU when it loads it); every recorded field is still checked.
    """
    plan = Path(plan)
    hint = rebuild_hint(plan, m)
    if not plan_checked:
        check_plan_file(m, plan, cpu_arch=cpu_arch)
    warnings = []
    unknown = [what for what, v in (("TensorRT version", m.tensorrt_version), ("GPU", m.compute_capability)) if not v]
    if unknown:
        warnings.append(f"{plan.name}'s manifest does not record the {' or '.join(unknown)} that built it, so "
                        "that is not checked here (TensorRT refuses a plan it cannot run when it loads it)")
    built = parse_version(m.tensorrt_version) if m.tensorrt_version else None
    here = parse_version(tensorrt_version)
    if built is None:
        ok = True
    elif m.version_compatible:
        ok = built[:2] >= (8, 6) and here[:3] >= built[:3]
    else:
        ok = built[:3] == here[:3]
    if not ok:
        raise RockedgeError(
            f"{plan.name} was built with TensorRT {m.tensorrt_version}, this is TensorRT {tensorrt_version}; "
            f"engines do not move between TensorRT versions"
            + (" (a version-compatible plan runs on the same or a later TensorRT only)" if m.version_compatible else "")
            + f": {hint}"
        )
    cc_here = parse_version(compute_capability)
    if m.hardware_compatibility == "ampere_plus":
        ok = cc_here[:2] >= (8, 0)
    else:
        ok = not m.compute_capability or parse_version(m.compute_capability)[:2] == cc_here[:2]
    if not ok:
        raise RockedgeError(
            f"{plan.name} was built for {m.gpu_name or 'another GPU'} (compute capability "
            f"{m.compute_capability or 'not recorded'}); this GPU is {gpu_name} ({compute_capability}): {hint}"
        )
    same_cc_elsewhere = bool(m.compute_capability and m.gpu_name and gpu_name and m.gpu_name != gpu_name)
    if same_cc_elsewhere and m.hardware_compatibility == "none":
        warnings.append(f"{plan.name} was built on {m.gpu_name}, running on {gpu_name} (same compute capability; "
                        "it loads, but tactics were tuned for the other GPU)")
    return warnings
