"""What a sandboxed run returns, and the gating rule for large outputs (brief §3.4).

A result is shown to the analyst through ``_repr_mimebundle_`` (text escaped, images inline)
and to the model through ``to_dict()``, where any output over 10,000 characters is replaced by
a digest ``{type, meta{sha, length, contentType}}`` plus a 200-character preview.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass, field
from typing import Any

GATE_CHARS = 10_000
PREVIEW_CHARS = 200

STATUSES = (
    "ok",  # exit code 0
    "error",  # the code raised or exited non-zero
    "timeout",  # wall-clock limit: the process tree was killed
    "cpu_limit",  # RLIMIT_CPU (SIGXCPU)
    "memory_limit",  # RLIMIT_DATA / RLIMIT_AS: MemoryError, or killed while allocating
    "output_limit",  # too much stdout/stderr: killed
    "file_size_limit",  # RLIMIT_FSIZE (SIGXFSZ / EFBIG)
    "killed",  # another signal
)


def gate(value: str, content_type: str = "text/plain", *, limit: int = GATE_CHARS) -> Any:
    """``value`` unchanged if ≤ ``limit`` characters, else a digest stub with a preview."""
    if len(value) <= limit:
        return value
    return {
        "type": "digest",
        "meta": {
            "sha": hashlib.sha256(value.encode("utf-8", "replace")).hexdigest(),
            "length": len(value),
            "contentType": content_type,
        },
        "preview": value[:PREVIEW_CHARS],
    }


@dataclass(frozen=True)
class SandboxFile:
    """A file the code left in its scratch directory. ``data`` is kept for images only."""

    name: str  # relative to the scratch directory
    size: int
    mime: str
    data: bytes | None = None
    note: str = ""  # e.g. "symlink: not followed"

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/") and self.data is not None

    def display_data(self) -> str:
        """The image as a Jupyter display value: base64 for binary formats, text for SVG."""
        if self.mime == "image/svg+xml":
            return (self.data or b"").decode("utf-8", "replace")
        return base64.b64encode(self.data or b"").decode("ascii")

    def to_dict(self, *, include_data: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "size": self.size, "mime": self.mime}
        if self.note:
            d["note"] = self.note
        if include_data and self.data is not None:
            d["base64"] = base64.b64encode(self.data).decode("ascii")
        return d


@dataclass(frozen=True)
class SandboxResult:
    status: str
    stdout: str
    stderr: str
    exit_code: int | None
    duration: float  # seconds, start to result
    isolation_level: str  # "bubblewrap" or the flagged weaker tier
    files: tuple[SandboxFile, ...] = ()
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    signal: str | None = None  # e.g. "SIGXCPU" when a signal ended the run
    network: bool = False  # whether the code could reach the network
    limits: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # What the code could reach outside its scratch directory (empty: nothing, bubblewrap).
    could_reach: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def weaker(self) -> bool:
        return self.isolation_level != "bubblewrap"

    @property
    def images(self) -> tuple[SandboxFile, ...]:
        return tuple(f for f in self.files if f.is_image)

    def to_dict(self, *, include_data: bool = False, gated: bool = True) -> dict[str, Any]:
        """Plain JSON-able data; outputs over 10,000 characters become digests when ``gated``."""
        out = gate(self.stdout) if gated else self.stdout
        err = gate(self.stderr) if gated else self.stderr
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "stdout": out,
            "stderr": err,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "duration_s": round(self.duration, 4),
            "isolation_level": self.isolation_level,
            "network": self.network,
            "signal": self.signal,
            "files": [f.to_dict(include_data=include_data) for f in self.files],
            "limits": dict(self.limits),
            "notes": list(self.notes),
            "could_reach": list(self.could_reach),
        }

    # -- display -----------------------------------------------------------------------
    def _summary(self) -> str:
        flag = "" if not self.weaker else " ⚠"
        return (
            f"sandbox {self.status} (exit {self.exit_code}) in {self.duration:.2f} s · "
            f"{self.isolation_level}{flag}"
        )

    def __str__(self) -> str:
        parts = [self._summary()]
        if self.stdout:
            parts.append(self.stdout.rstrip())
        if self.stderr:
            parts.append("[stderr]\n" + self.stderr.rstrip())
        return "\n".join(parts)

    def _repr_mimebundle_(self, include=None, exclude=None):  # noqa: ANN001, ANN202
        esc = html.escape
        cap = 20_000  # the analyst sees a lot, not everything: the rest is in .stdout
        body = [f"<div><b>{esc(self._summary())}</b></div>"]
        if self.stdout:
            body.append(f"<pre>{esc(self.stdout[:cap])}</pre>")
        if self.stderr:
            body.append(f"<pre style='color:#b91c1c'>{esc(self.stderr[:cap])}</pre>")
        for f in self.images:
            if f.mime != "image/svg+xml":  # never inline untrusted SVG markup into HTML
                b64 = base64.b64encode(f.data or b"").decode("ascii")
                body.append(f"<img alt='{esc(f.name)}' src='data:{f.mime};base64,{b64}'/>")
        others = [f for f in self.files if not f.is_image]
        if others:
            items = "".join(f"<li>{esc(f.name)} ({f.size:,} bytes)</li>" for f in others)
            body.append(f"<ul>{items}</ul>")
        return {"text/plain": str(self), "text/html": "\n".join(body)}

    def _ipython_display_(self) -> None:
        """In a notebook: the text part, then each image as its own output (front ends show
        ``image/png`` outputs directly; a data-URL inside HTML may be sanitized away)."""
        from IPython.display import display

        text_only = SandboxResult(**{**self.__dict__, "files": tuple(f for f in self.files if not f.is_image)})
        display(text_only._repr_mimebundle_(), raw=True)
        for f in self.images:
            display({f.mime: f.display_data(), "text/plain": f"<image {f.name}>"}, raw=True)
