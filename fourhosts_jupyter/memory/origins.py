"""How a memory's origin is shown: the bundled demo corpus by name, anything else as stored.

The seeded corpus is stored with its real path inside the installed package (a site-packages
path that means nothing to the analyst and differs per machine). Every view shows it as
``demo corpus: speed-management.md`` instead; a user's own files, URLs and run ids are shown
as they are. The path is matched by its package-relative tail, so stores and run logs written
by another installation (another venv) are labelled too.
"""

from __future__ import annotations

import re

DEMO_CORPUS = "demo corpus"
_BUNDLED = re.compile(r"(?:^|[\\/])fourhosts_jupyter[\\/]data[\\/]corpus[\\/]([^\\/]+)$")


def display_origin(origin: str) -> str:
    """``demo corpus: NAME`` for a file of the bundled corpus, else ``origin`` unchanged."""
    if not origin or "://" in origin:
        return origin
    m = _BUNDLED.search(origin)
    return f"{DEMO_CORPUS}: {m.group(1)}" if m else origin


def source_line(n: object, title: object, origin: object, date: object = "") -> str:
    """``[n] title — origin · date`` for a terminal: the origin labelled, all neutralised
    (untrusted); the date only for a web source that has one."""
    from ..redact import neutralise

    when = f" · {neutralise(str(date))}" if date else ""
    return f"[{n}] {neutralise(str(title))} — {neutralise(display_origin(str(origin)))}{when}"
