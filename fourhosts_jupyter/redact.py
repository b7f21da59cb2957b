"""Secrets out of anything shown or stored: key values, key-shaped strings, and the credentials
a URL can carry (``user:password@`` and query parameters such as ``api-key`` or ``sig``).

    safe_url("http://alice:secret@host/v1?api-key=k&x=1")  ->  "http://host/v1?api-key=***&x=1"
    redact("failed at http://alice:secret@host/v1")         ->  "failed at http://host/v1"

One function, :func:`redact`, is applied wherever text leaves the process (stderr notices and
errors, the run log, ``fourhosts show`` / ``runs``, the cell); :func:`safe_url` is its URL part.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .config import KEY_VARIABLES

MASK = "***"

# Query parameter names that carry credentials (compared lower-case, "-" and "_" ignored).
_CREDENTIAL_PARAMS = {
    "key", "apikey", "token", "accesstoken", "authtoken", "idtoken", "refreshtoken", "sig",
    "signature", "password", "passwd", "pwd", "secret", "clientsecret", "auth", "authorization",
    "credential", "credentials", "session", "sessionid", "code", "xamzsignature",
    "xamzcredential", "xamzsecuritytoken", "subscriptionkey",
}
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6,}|[A-Fa-f0-9]{32})\b")
# A URL inside free text: stops at whitespace, quotes, brackets and backslashes (JSON, repr).
_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>\\`]+""")


def _credential_name(name: str) -> bool:
    flat = name.lower().replace("-", "").replace("_", "")
    return flat in _CREDENTIAL_PARAMS or flat.endswith(("key", "token", "secret", "password"))


def safe_url(url: str | None) -> str:
    """``url`` fit to show: no user-info, credential-like query values masked.
    Anything that does not parse as a URL is returned with its key-shaped parts masked."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # e.g. a port that is not a number: show nothing that could be a secret
        return _KEYLIKE.sub(MASK, re.sub(r"//[^/@]*@", "//", url))
    netloc = parts.netloc
    if "@" in netloc:
        host = f"[{host}]" if ":" in host else host  # IPv6
        netloc = host + (f":{port}" if port else "")  # user-info dropped, not just masked
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_credential_name(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _credential_name(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with key values from the environment, key-shaped strings and URL credentials
    masked."""
    if not text:
        return text
    for name in KEY_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            text = text.replace(value, MASK)
    if "://" in text:
        text = _URL.sub(lambda m: safe_url(m.group(0)), text)
    return _KEYLIKE.sub(MASK, text)


def redact_run(run: dict[str, Any]) -> dict[str, Any]:
    """A stored run (``Store.get_run`` / a ``runs`` row) with its error and event log redacted
    in place, for display: stores written before redaction kept URL credentials there."""
    if isinstance(run.get("error"), str):
        run["error"] = redact(run["error"])
    for ev in run.get("events") or []:
        if ev.get("payload") is not None:
            ev["payload"] = json.loads(redact(json.dumps(ev["payload"])))
    return run


# DEL, C1 controls and the bidirectional overrides that make text display in another order
# than it reads (json.dumps leaves these raw); with C0 (ESC starts terminal escape sequences)
# they are what a terminal must never be handed.
_UNSAFE_ABOVE_C0 = "\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f{_UNSAFE_ABOVE_C0}]")


def neutralise(text: str, *, limit: int | None = None, keep_lines: bool = False) -> str:
    """``text`` safe to print on a terminal: control characters shown as ``\\xNN`` escapes (so
    an ANSI sequence is visible, never obeyed), newlines and tabs kept only with ``keep_lines``,
    and cut to ``limit`` characters with "…" when longer."""

    def visible(m: re.Match[str]) -> str:
        ch = m.group(0)
        if keep_lines and ch in "\n\t":
            return ch
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _CONTROL.sub(visible, text)
    if limit is not None and len(text) > limit:  # escapes made it longer again
        text = text[: limit - 1] + "…"
    return text


_JSON_RAW = re.compile(f"[{_UNSAFE_ABOVE_C0}]")


def terminal_json(value: Any, **options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, …)`` with the controls it would leave raw written
    as ``\\uXXXX`` escapes (they can only occur inside strings, so the JSON stays the same)."""
    text = json.dumps(value, ensure_ascii=False, **options)
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
