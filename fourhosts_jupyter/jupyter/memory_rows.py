"""The memory browser's rows as HTML: a one-line preview that expands to the full passage.

Memory text comes from documents, models and tools: it is untrusted, so every value goes
through ``html.escape`` and nothing from a memory ever becomes markup. The preview is one line
by construction (whitespace collapsed, CSS ellipsis); the full text keeps its paragraphs
(``white-space: pre-wrap``) instead of pandas' literal ``\\n``.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

PREVIEW_CHARS = 300  # the line is cut by CSS; this only keeps the page light

# Column widths shared by the header and every row, so they line up without a <table>.
CSS = """
<style>
.fh-mb-line { display: flex; align-items: center; gap: 10px; white-space: nowrap;
  overflow: hidden; font-size: var(--jp-ui-font-size1, 13px); line-height: 20px; min-width: 0; }
.fh-mb-line > span { overflow: hidden; text-overflow: ellipsis; flex: none; }
.fh-mb-line .fh-mb-title { flex: 0 1 200px; min-width: 90px; font-weight: 600; }
.fh-mb-line .fh-mb-kind { width: 135px; color: var(--jp-ui-font-color2, #555); }
.fh-mb-line .fh-mb-date { width: 120px; font-variant-numeric: tabular-nums; }
.fh-mb-line .fh-mb-text { flex: 1 1 0; min-width: 160px; color: var(--jp-ui-font-color1, #222); }
.fh-mb-head { font-weight: 600; color: var(--jp-ui-font-color2, #555);
  border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.fh-mb-box { width: 100%; min-width: 0; container-type: inline-size; }
/* a narrow cell drops the columns an analyst needs least, so the passage keeps its room */
@container (max-width: 820px) { .fh-mb-kind, .fh-mb-created { display: none; } }
@container (max-width: 480px) { .fh-mb-expires { display: none; } }
/* ipywidgets' HTML box grows to its content's width; pin it to the row so the preview is cut */
.fh-mb-fit .widget-html-content { min-width: 0; width: 100%; }
.fh-mb-cell details > summary { list-style: none; cursor: pointer; }
.fh-mb-cell details > summary::-webkit-details-marker { display: none; }
.fh-mb-line .fh-mb-mark { width: 10px; color: var(--jp-ui-font-color2, #777); }
.fh-mb-cell details[open] .fh-mb-mark { transform: rotate(90deg); }
.fh-mb-full { white-space: pre-wrap; line-height: 1.45; margin: 4px 0 8px 20px; padding: 6px 8px;
  border-left: 3px solid var(--jp-brand-color1, #1976d2);
  background: var(--jp-layout-color2, #f5f5f5);
  max-height: 320px; overflow: auto; }
.fh-mb-meta { color: var(--jp-ui-font-color2, #777); font-size: 11px; margin-left: 20px; }
.fh-mb-row { border-bottom: 1px solid var(--jp-border-color3, #eee); align-items: flex-start; }
</style>
"""

HEADER_HTML = (
    '<div class="fh-mb-box"><div class="fh-mb-line fh-mb-head"><span class="fh-mb-mark"></span>'
    '<span class="fh-mb-title">title</span>'
    '<span class="fh-mb-kind">host / type</span>'
    '<span class="fh-mb-date fh-mb-created">created (UTC)</span>'
    '<span class="fh-mb-date fh-mb-expires">expires</span><span class="fh-mb-text">passage</span>'
    "</div></div>"
)


def format_date(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` (UTC); no timestamp (NULL, NaT) means ``never``."""
    if value is None:
        return "never"
    try:
        import pandas as pd

        if pd.isna(value):
            return "never"
    except (TypeError, ValueError):
        pass
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def preview(text: str) -> str:
    """The passage on one line: every run of whitespace (newlines too) becomes one space."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def row_html(row: dict[str, Any]) -> str:
    """One memory: a one-line summary; clicking it shows the whole passage and its id."""
    e = html.escape
    title = str(row.get("title") or "(untitled)")
    kind = f"{row.get('namespace', '')} / {row.get('type', '')}"
    created, expires = format_date(row.get("created_at")), format_date(row.get("expires_at"))
    meta = f"id {row.get('id', '')} · source {row.get('source', '')}"
    if row.get("score") is not None:
        meta += f" · score {float(row['score']):.4f}"
    return (
        f'<div class="fh-mb-cell fh-mb-box" data-id="{e(str(row.get("id", "")))}"><details><summary>'
        f'<span class="fh-mb-line"><span class="fh-mb-mark">▸</span>'
        f'<span class="fh-mb-title" title="{e(title)}">{e(title)}</span>'
        f'<span class="fh-mb-kind">{e(kind)}</span>'
        f'<span class="fh-mb-date fh-mb-created">{e(created)}</span>'
        f'<span class="fh-mb-date fh-mb-expires">{e(expires)}</span>'
        f'<span class="fh-mb-text">{e(preview(row.get("text", "")))}</span></span></summary>'
        f'<div class="fh-mb-full">{e(str(row.get("text", "")).strip())}</div>'
        f'<div class="fh-mb-meta">{e(meta)}</div></details></div>'
    )
