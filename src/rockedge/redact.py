"""Camera credentials kept out of everything rockedge writes, and read from the environment when asked.

IP cameras are addressed with the user and password in the URL (``rtsp://admin:s3cret@cam/stream``), and GStreamer
pipelines carry them as ``location=`` URLs or ``user-id=`` / ``user-pw=`` properties. :func:`redact` turns any text
into what may be shown: ``rtsp://admin:***@cam/stream``, ``user-pw=***``. Sources keep the real string for OpenCV
and a redacted one as their name; the CLI's error boundary, warnings and every JSON report pass through
:func:`redact` too, as a last line of defence.

The password may come from the environment instead of the command line (and so stay out of shell history and
``ps``): a URL password that is exactly ``$NAME`` or ``${NAME}`` is replaced by that variable's value
(percent-encoded, so any character works) when the source is opened (:func:`expand_password`).

Plain Python (device-side, 3.8): nothing heavy is imported here.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

from rockedge.errors import RockedgeError

MASK = "***"
DEFAULT_PASSWORD_VAR = "ROCKEDGE_RTSP_PASSWORD"  # the name the docs suggest; any variable name works

# scheme:// and the authority after it: up to the first '/', whitespace or quote. Its userinfo is what comes before
# the authority's last '@' (as FFmpeg and urllib read it), so '?', '#' and '@' inside a password stay hidden too.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<authority>[^/\s'\"]*)")
# GStreamer credential properties (rtspsrc, souphttpsrc, ...): quoted or bare values.
_GST_PROP = re.compile(r"(?P<key>(?<![\w-])(?:user-id|user-pw|proxy-id|proxy-pw)\s*=\s*)"
                       r"(?P<value>\"(?:[^\"\\]|\\.)*\"?|'[^']*'?|[^\s!]+)")
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def _split_authority(authority: str) -> tuple[str, str | None, str] | None:
    """(user, password or None, host) of an authority with userinfo; None without one."""
    at = authority.rfind("@")
    if at < 0:
        return None
    userinfo, host = authority[:at], authority[at + 1:]
    user, sep, password = userinfo.partition(":")
    return user, (password if sep else None), host


def _redact_url(m: re.Match[str]) -> str:
    parts = _split_authority(m.group("authority"))
    if parts is None:
        return m.group(0)
    user, password, host = parts
    # A password is hidden and the user kept; a userinfo with no password is hidden whole (it may be a token).
    userinfo = MASK if password is None else f"{user}:{MASK}"
    return f"{m.group('scheme')}{userinfo}@{host}"


def redact(text: str) -> str:
    """``text`` with every URL's password (``user:***@``) and every GStreamer ``user-id``/``user-pw``/``proxy-id``/
    ``proxy-pw`` value (``***``) hidden. Text without credentials comes back unchanged."""
    if not isinstance(text, str) or ("@" not in text and "-id" not in text and "-pw" not in text):
        return text
    text = _URL.sub(_redact_url, text)
    return _GST_PROP.sub(lambda m: m.group("key") + MASK, text)


def _expand_url(m: re.Match[str]) -> str:
    parts = _split_authority(m.group("authority"))
    if parts is None:
        return m.group(0)
    user, password, host = parts
    var = _VAR.fullmatch(password) if password is not None else None
    if var is None:
        return m.group(0)
    name = var.group("braced") or var.group("bare")
    value = os.environ.get(name)
    if value is None:
        raise RockedgeError(f"the source's password is ${name}, but {name} is not set in the environment; "
                            f"export {name}=... before the run, or give the password in the URL")
    return f"{m.group('scheme')}{user}:{quote(value, safe='')}@{host}"


def expand_password(text: str) -> str:
    """``text`` (a URL, or a GStreamer pipeline with ``location=`` URLs) with each URL password that is exactly
    ``$NAME`` or ``${NAME}`` replaced by the environment variable NAME, percent-encoded. A password with a ``$``
    anywhere else is taken as it is. One line naming the variable, never a secret, when it is not set."""
    if "$" not in text:
        return text
    return _URL.sub(_expand_url, text)
