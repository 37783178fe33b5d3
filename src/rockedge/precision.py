"""The one precision vocabulary: parity budgets, engine manifests, the CLI and reports all use it."""

from __future__ import annotations

import enum

from rockedge.errors import RockedgeError


class Precision(str, enum.Enum):
    """Numeric precision of a model artifact (what its weights and math run in)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: "str | Precision | None") -> "Precision":
        """"fp16", "FP16", "half" -> Precision.FP16; one line for anything else."""
        if isinstance(value, Precision):
            return value
        text = str(value or "fp32").strip().lower()
        text = {"float32": "fp32", "float": "fp32", "half": "fp16", "float16": "fp16"}.get(text, text)
        try:
            return cls(text)
        except ValueError:
            raise RockedgeError(f"unknown precision {value!r}; choose one of {', '.join(NAMES)}") from None


NAMES = tuple(p.value for p in Precision)
