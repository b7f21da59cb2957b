"""The date a web source carries: when it was published if the page or paper says, else the
day it was fetched (both written by the web write-back, tools/web_store.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..events import Source
    from .store import Store

_DAY = re.compile(r"^\d{4}(?:-\d{2}(?:-\d{2})?)?")


def source_date(published: object, fetched_at: object) -> str:
    """``2025-02-14`` (published) or the fetched day; '' when neither is a date."""
    for value in (published, fetched_at):
        m = _DAY.match(str(value or ""))
        if m:
            return m.group(0)
    return ""


def with_dates(store: Store, sources: Sequence[Source]) -> list[Source]:
    """``sources`` with ``date`` filled in for those whose origin is a URL (one query; none
    at all when no source came from the web)."""
    ids = [s.id for s in sources if "://" in s.origin and not s.date]
    if not ids:
        return list(sources)
    with store.connect() as con:
        rows = con.execute(
            "SELECT id, json_extract_string(metadata, '$.published'), "
            "coalesce(json_extract_string(metadata, '$.fetched_at'), strftime(created_at, '%Y-%m-%d')) "
            "FROM memories WHERE list_contains(?, id)",
            [ids],
        ).fetchall()
    dates = {mid: source_date(published, fetched) for mid, published, fetched in rows}
    return [replace(s, date=dates[s.id]) if dates.get(s.id) else s for s in sources]
