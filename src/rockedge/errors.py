"""The exception types users see.

Library code raises :class:`RockedgeError` for anything the user can fix (bad path, bad flag,
mismatched model). The CLI prints its message as one line and exits with ``exit_code`` (1 unless a
subclass says otherwise); ``--debug`` shows the traceback. Anything else escaping is a bug and keeps
its traceback.
"""

from __future__ import annotations


class RockedgeError(Exception):
    """A user-facing error: the message is one line that says what is wrong and how to fix it."""

    exit_code = 1


class BackendUnavailable(RockedgeError):
    """An optional backend (onnxruntime, TensorRT, CUDA) is not installed or cannot run here."""


class Interrupted(RockedgeError):
    """The user stopped a job (Ctrl-C, ``q`` in a window); what was written so far is kept."""

    exit_code = 130


class NonFiniteOutput(RockedgeError):
    """A model produced NaN/Inf outputs (diverged weights, a damaged file, an overflowing precision)."""
