"""A prebuilt matplotlib font list for sandboxed runs.

Every run starts with an empty private ``/tmp``, so matplotlib would rebuild its font cache on
each import (1.5–3 s here). The first run that mentions matplotlib builds the list once inside
the sandbox (so the font paths are the sandbox's) and keeps it in the state directory; later
runs get a read-only copy. The file is produced by our own fixed script, never by user code.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import sys
import threading
from pathlib import Path

_MENTION = re.compile(r"\b(matplotlib|pandas|seaborn)\b")  # pandas plotting imports it too
_BUILDER = """
import glob, os, shutil
import matplotlib.font_manager  # builds the font list in MPLCONFIGDIR
src = glob.glob(os.path.join(os.environ["MPLCONFIGDIR"], "fontlist-*.json"))[0]
shutil.copy(src, os.path.basename(src))
"""
_lock = threading.Lock()
_failed = False


def wanted(code: str) -> bool:
    return bool(_MENTION.search(code))


def _cache_dir() -> Path | None:
    from ..memory.store import state_dir

    try:
        version = importlib.metadata.version("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        return None
    key = hashlib.sha256(f"{sys.prefix}|{version}".encode()).hexdigest()[:12]
    return state_dir() / "sandbox-cache" / f"matplotlib-{version}-{key}"


def fontlist() -> Path | None:
    """The cached font list file, building it on first use; None if it cannot be had."""
    global _failed
    d = _cache_dir()
    if d is None or _failed:
        return None
    found = sorted(d.glob("fontlist-*.json")) if d.is_dir() else []
    if found:
        return found[-1]
    with _lock:
        found = sorted(d.glob("fontlist-*.json")) if d.is_dir() else []
        if found:
            return found[-1]
        from .runner import run_code

        res = run_code(_BUILDER, keep_scratch=True, _build_cache=False)
        scratch = next((n.split(" at ", 1)[1] for n in res.notes if n.startswith("scratch kept at ")), None)
        try:
            built = sorted(Path(scratch).glob("fontlist-*.json")) if scratch and res.ok else []
            if not built:
                _failed = True  # do not retry on every run; the runs still work, only slower
                return None
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / (built[0].name + ".part")
            shutil.copyfile(built[0], tmp)
            tmp.replace(d / built[0].name)
            return d / built[0].name
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
