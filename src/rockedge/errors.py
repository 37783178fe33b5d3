"""The one exception type users see.

Library code raises :class:`RockedgeError` for anything the user can fix (bad path, bad flag,
mismatched model). The CLI prints its message as one line and exits 1; ``--debug`` shows the
traceback. Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class RockedgeError(Exception):
    """A user-facing error: the message is one line that says what is wrong and how to fix it."""


class BackendUnavailable(RockedgeError):
    """An optional backend (onnxruntime, TensorRT, CUDA) is not installed or cannot run here."""
