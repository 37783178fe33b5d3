"""CLI command: ``rockedge doctor``: what this machine can do, each check ok / warn / fail with a hint."""

from __future__ import annotations

from pathlib import Path

import click

from rockedge.cli.options import emit_report, json_option, out_option, quiet_option
from rockedge.errors import RockedgeError


@click.command("doctor")
@out_option("Output folder whose write access is checked.", default=Path("."))
@json_option("Also write every check as JSON to PATH ('-': print it to stdout).")
@quiet_option
def doctor_cmd(out: Path, json_path: Path | None, quiet: bool) -> None:
    """Check this machine for rockedge: Python, numpy, OpenCV (FFmpeg, GStreamer, the video codecs it can
    write), ONNX Runtime and its providers, TensorRT (and JetPack's bindings outside a venv), the CUDA driver and
    GPU, the Jetson model, L4T/JetPack release and power mode, memory and swap for engine builds, and write
    access to --out.

    Each line is OK, WARN or FAIL, with a hint under anything not OK. Exits 1 when a check FAILed.
    Without a GPU, TensorRT and CUDA are WARN: ONNX Runtime on the CPU still runs every model.

    \b
    Example:
      rockedge doctor --out /data/runs --json doctor.json
    """
    from rockedge.doctor import run_checks, table, to_dict

    checks = run_checks(out)
    text = table(checks)
    if quiet:
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("OK"))
    emit_report(text, to_dict(checks), json_path)
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        raise RockedgeError(f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}")


COMMANDS = [doctor_cmd]
