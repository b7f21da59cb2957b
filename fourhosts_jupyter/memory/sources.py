"""Which files ingestion reads: the supported extensions, and arguments (files, directories,
globs) expanded to sources. Light on purpose: the CLI checks its arguments with it before the
store, numpy or a model is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

TEXT_EXT = {".txt", ".text", ".rst", ".log"}
MARKDOWN_EXT = {".md", ".markdown", ".mdown"}
HTML_EXT = {".html", ".htm", ".xhtml"}
PDF_EXT = {".pdf"}
CSV_EXT = {".csv", ".tsv"}
JSONL_EXT = {".jsonl", ".ndjson"}
SUPPORTED = sorted(TEXT_EXT | MARKDOWN_EXT | HTML_EXT | PDF_EXT | CSV_EXT | JSONL_EXT)


def expand(sources: Any) -> list[Any]:
    """Paths (files, directories, globs) and DataFrames → a flat list of sources."""
    pd = sys.modules.get("pandas")  # a DataFrame implies pandas is already imported
    if pd is not None and isinstance(sources, pd.DataFrame):
        return [sources]
    if isinstance(sources, (str, Path)):
        sources = [sources]
    out: list[Any] = []
    for s in sources:
        if isinstance(s, (str, Path)):
            p = Path(s).expanduser()
            if p.is_dir():
                out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED))
            elif not p.exists() and any(ch in str(s) for ch in "*?["):
                root = p.anchor if p.is_absolute() else "."
                pattern = str(p.relative_to(root)) if p.is_absolute() else str(s)
                out.extend(sorted(Path(root).glob(pattern)))
            else:
                out.append(p)
        else:
            out.append(s)
    return out
