"""TensorRT's INT8 calibration cache: the file format, and reuse only when it describes the same calibration.

TensorRT writes the cache as text: a header line ``TRT-<version>-<algorithm>`` (for example
``TRT-8601-EntropyCalibration2``) and one ``<tensor>: <hex>`` line per tensor, the hex being the
big-endian bits of the float32 scale (amax / 127), without leading zeros, ``7f800000`` (+inf) where TensorRT
found no bounded range. TensorRT reads it back through the calibrator's
``read_calibration_cache`` and skips calibration when it accepts it.

TensorRT only checks the header; it cannot tell whether the cache came from the same images, the
same preprocessing or even the same network. rockedge keeps a sidecar (``<cache>.json``) with the
calibration set's sha256, the input size, the algorithm, the ONNX's sha256 and the TensorRT version,
and hands TensorRT a cache only when they all match: a model re-exported under the same name, or a
TensorRT upgrade, recalibrates instead of silently reusing old scales. Plain Python: tested on the CPU.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rockedge.atomic import write_bytes, write_json
from rockedge.console import note
from rockedge.errors import RockedgeError
from rockedge.runtime.manifest import parse_version

HEADER_RE = re.compile(r"^TRT-(\d+)-([A-Za-z0-9]+)$")
ENTROPY2 = "EntropyCalibration2"


@dataclass
class CalibrationTable:
    """A parsed cache: TensorRT version code (8601 for 8.6.1), algorithm, per-tensor scales."""

    version_code: str
    algorithm: str
    scales: dict[str, float] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        lines = [f"TRT-{self.version_code}-{self.algorithm}"]
        lines += [f"{name}: {scale_to_hex(s)}" for name, s in self.scales.items()]
        return ("\n".join(lines) + "\n").encode()


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    """TensorRT's big-endian float32 in up to 8 hex digits (no leading zeros: a zero scale is ``0``); ValueError for
    anything else (longer, not hex, NaN). ``7f800000`` (+inf) is accepted: TensorRT itself writes it for a tensor
    whose range it could not bound (real 8.6.1, 10.10 and 10.13 caches, tests/data/tensorrt_api/calibration_caches)."""
    text = text.strip()
    if not 1 <= len(text) <= 8:
        raise ValueError(text)
    value = float(struct.unpack(">f", bytes.fromhex(text.rjust(8, "0")))[0])
    if math.isnan(value):
        raise ValueError(text)
    return value


def parse_table(data: bytes, where: str = "calibration cache") -> CalibrationTable:
    """Parse a cache; one clear line when it is not one."""
    try:
        lines = [ln.strip() for ln in data.decode("ascii").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise RockedgeError(f"{where} is not a TensorRT calibration cache (not text)") from None
    m = HEADER_RE.match(lines[0]) if lines else None
    if m is None:
        raise RockedgeError(f"{where} is not a TensorRT calibration cache: its first line should read like "
                            "TRT-8601-EntropyCalibration2")
    table = CalibrationTable(m.group(1), m.group(2))
    for ln in lines[1:]:
        name, sep, value = ln.rpartition(":")
        if not sep or not name:
            raise RockedgeError(f"{where}: malformed line {ln!r}")
        try:
            table.scales[name.strip()] = hex_to_scale(value)
        except ValueError:
            raise RockedgeError(f"{where}: {value.strip()!r} is not a float32 scale in 8 hex digits") from None
    return table


def version_code(trt_version: str) -> str:
    """The code TensorRT writes into the header for a version: '8.6.1.6' -> '8601', '10.3.0' -> '100300'."""

    v = parse_version(trt_version) + (0, 0, 0)
    major, minor, patch = v[:3]
    return f"{major}{minor:01d}{patch:02d}" if major < 10 else f"{major}{minor:02d}{patch:02d}"


@dataclass
class CacheFile:
    """A calibration cache on disk plus the sidecar that says what it was computed from."""

    path: Path

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def load(self, identity: dict[str, Any]) -> bytes | None:
        """The cache bytes when the file exists, parses, and its sidecar matches ``identity``; else None
        (with a note saying why it is not reused)."""
        if not self.path.is_file():
            return None
        data = self.path.read_bytes()
        try:
            table = parse_table(data, str(self.path))
        except RockedgeError as e:
            note(f"not reusing {self.path.name}: {e}")
            return None
        try:
            saved = json.loads(self.sidecar.read_bytes().decode("utf-8"))
        except (OSError, ValueError):  # missing, not UTF-8 (a binary file), not JSON
            saved = None
        if not isinstance(saved, dict):
            note(f"not reusing {self.path.name}: no readable {self.sidecar.name} says which images it came from")
            return None
        diff = [k for k, v in identity.items() if saved.get(k) != v]
        if diff:
            note(f"not reusing {self.path.name}: its {', '.join(diff)} differ from this calibration; recalibrating")
            return None
        if table.algorithm != identity.get("algorithm", table.algorithm):
            note(f"not reusing {self.path.name}: it holds {table.algorithm} scales, this calibration uses "
                 f"{identity['algorithm']}; recalibrating")
            return None
        return data

    def save(self, data: bytes, identity: dict[str, Any]) -> None:
        """Write the cache TensorRT produced and its sidecar (both atomically)."""
        parse_table(bytes(data), str(self.path))  # never store something TensorRT would refuse
        write_bytes(self.path, bytes(data))
        write_json(self.sidecar, identity)


def cache_identity(calibration: Any, algorithm: str = ENTROPY2, *, onnx_sha256: str,
                   tensorrt_version: str) -> dict[str, Any]:
    """What must match for a cache to be reused: the calibration set's hash and size, the algorithm, the network
    (the ONNX's sha256: its tensor names and ranges) and the TensorRT version that computed the scales."""
    return {"calibration_sha256": calibration.sha256, "n": len(calibration),
            "size_hw": list(calibration.size_hw), "algorithm": algorithm, "onnx_sha256": onnx_sha256,
            "tensorrt_version": tensorrt_version}


def cache_path_for(model: str | os.PathLike[str]) -> Path:
    """Default cache location beside the model: model.onnx -> model.calib.cache."""
    p = Path(model)
    return p.with_name(p.stem + ".calib.cache")
