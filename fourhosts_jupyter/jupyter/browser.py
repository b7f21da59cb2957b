"""The memory browser: search and host / type / source filters over pages of memories, one
line each (click to read the whole passage), with a checkbox per row and forget-with-confirm.
``memory_search_df`` is what ``%research memory search "…"`` returns.

Rows are rendered by ``memory_rows`` (every value escaped: memory text is untrusted). Listing
pages through the store in SQL (LIMIT/OFFSET), so a store of any size opens at once; a search
ranks the top ``search_limit`` hits and pages through those.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..memory.origins import display_origin
from ..memory.store import Store
from .memory_rows import CSS, HEADER_HTML, format_date, preview, row_html

ANY = "(any)"
COLUMNS = ["rank", "score", "title", "namespace", "type", "source", "origin", "text", "id",
           "reasons"]
LIST_COLUMNS = ["title", "namespace", "type", "source", "created_at", "expires_at", "text", "id"]
PAGE_SIZES = (10, 25, 50, 100)


def memory_search_df(store: Store, query: str, k: int = 10, host: str | None = None,
                     *, embedder: Any = None, namespaces: Sequence[str] | None = None,
                     mode: str = "hybrid", weights: tuple[float, float] | None = None) -> Any:
    """The top ``k`` memories for ``query`` as a DataFrame (rank, score, title, …, reasons);
    ``weights`` = (dense, keyword) for the hybrid mode (default: select's)."""
    import pandas as pd

    from ..context.select import _reasons, search
    from ..memory.keyword import tokenize

    extra = {"weights": weights} if weights is not None else {}
    hits = search(store, query, k=k, host=host, embedder=embedder, namespaces=namespaces, mode=mode,
                  **extra)
    terms = set(tokenize(query))
    rows = [
        {
            "rank": i,
            "score": round(h.score, 4),
            "title": h.title,
            "namespace": h.namespace,
            "type": h.memory_type,
            "source": h.source,
            "origin": display_origin(h.origin),
            "text": h.text,
            "id": h.id,
            "reasons": "; ".join(_reasons(h, terms)),
        }
        for i, h in enumerate(hits, 1)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


class MemoryBrowser:
    """Browse, search and forget memories. Displays as a widget; ``frame()`` is the page's data."""

    def __init__(self, store: Store | None = None, *, embedder: Any = None, page_size: int = 25,
                 search_limit: int = 200) -> None:
        self.store = store or Store()
        self.embedder = embedder
        self.page_size = page_size
        self.search_limit = search_limit
        self.query = ""
        self.host: str | None = None
        self.memory_type: str | None = None
        self.source: str | None = None
        self.page = 0  # 0-based
        self.total = 0  # memories matching the filters, over all pages
        self.selected: set[str] = set()  # kept across pages; cleared when the filters change
        self._hits: tuple[tuple[Any, ...], Any] | None = None  # (filters, ranked frame)
        self._widget: Any = None
        self._df: Any = None
        self._syncing = False

    def __repr__(self) -> str:
        return f"MemoryBrowser({str(self.store.path)!r})"

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))

    # -- data --------------------------------------------------------------------------------

    def frame(
        self,
        query: str | None = None,
        *,
        host: str | None = None,
        memory_type: str | None = None,
        source: str | None = None,
        page: int | None = None,
    ) -> Any:
        """One page of the memories matching the filters: ranked by ``query`` if given, else
        newest first. Sets ``total`` to the number over all pages."""
        query = self.query if query is None else query
        host = host or self.host
        memory_type = memory_type or self.memory_type
        source = source or self.source
        page = self.page if page is None else page
        if query and query.strip():
            ranked = self._ranked(query, host, memory_type, source)
            self.total = len(ranked)
            page = min(max(page, 0), self.pages - 1)
            df = ranked.iloc[page * self.page_size:(page + 1) * self.page_size]
        else:
            filters = {"namespace": host, "memory_type": memory_type, "source": source}
            with self.store.hold():  # one connection for both: opening the file is the slow part
                self.total = self.store.count_live_memories(**filters)
                page = min(max(page, 0), self.pages - 1)
                df = self.store.memories(**filters, limit=self.page_size,
                                         offset=page * self.page_size)
            df = df.rename(columns={"memory_type": "type", "content": "text"})[LIST_COLUMNS]
        self.page = page
        self._df = df.reset_index(drop=True)
        return self._df

    def _ranked(self, query: str, host: str | None, memory_type: str | None,
                source: str | None) -> Any:
        """The top ``search_limit`` hits with their dates (cached: paging does not search again)."""
        key = (query, host, memory_type, source, self.search_limit)
        if self._hits is not None and self._hits[0] == key:
            return self._hits[1]
        df = memory_search_df(self.store, query, k=self.search_limit, host=host,
                              embedder=self.embedder, namespaces=[host] if host else None)
        if memory_type:
            df = df[df["type"] == memory_type]
        if source:
            df = df[df["source"] == source]
        dates = self._dates(df["id"].tolist())
        df = df.assign(created_at=df["id"].map(lambda i: dates.get(i, (None, None))[0]),
                       expires_at=df["id"].map(lambda i: dates.get(i, (None, None))[1]))
        df = df[LIST_COLUMNS + ["score"]].reset_index(drop=True)
        self._hits = (key, df)
        return df

    def _dates(self, ids: list[str]) -> dict[str, tuple[Any, Any]]:
        if not ids:
            return {}
        with self.store.connect() as con:
            rows = con.execute("SELECT id, created_at, expires_at FROM memories "
                               "WHERE id IN (SELECT unnest(?))", [ids]).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def forget(self, ids: Sequence[str]) -> int:
        """Delete memories from the store and the search indexes."""
        n = self.store.forget(list(ids))
        self.selected.difference_update(ids)
        self._hits = None
        return n

    def sources(self) -> list[str]:
        with self.store.connect() as con:
            rows = con.execute("SELECT DISTINCT source FROM memories ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    # -- widget ------------------------------------------------------------------------------

    def widget(self) -> Any:
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self) -> Any:
        import ipywidgets as w

        from ..paradigms import HOSTS

        narrow, label = w.Layout(width="180px"), {"description_width": "initial"}
        self.search_box = w.Text(placeholder="search memory… (Enter)", description="Search",
                                 continuous_update=False, layout=w.Layout(width="300px"),
                                 style=label)
        self.host_dd = w.Dropdown(options=[ANY] + [h.value for h in HOSTS] + ["shared"],
                                  description="Host", layout=narrow, style=label)
        self.type_dd = w.Dropdown(options=[ANY, "procedural", "episodic", "semantic"],
                                  description="Type", layout=narrow, style=label)
        self.source_dd = w.Dropdown(options=[ANY] + self.sources(), description="Source",
                                    layout=narrow, style=label)
        self.select_page = w.Checkbox(value=False, indent=False,
                                      layout=w.Layout(width="24px", flex="none"),
                                      tooltip="select every row on this page")
        self.select_page.add_class("fh-mb-select-page")
        self.rows_box = w.VBox(layout=w.Layout(width="100%"))
        self.prev_btn = w.Button(description="◀ Prev", layout=w.Layout(width="90px"))
        self.next_btn = w.Button(description="Next ▶", layout=w.Layout(width="90px"))
        self.page_label = w.Label(layout=w.Layout(width="auto", flex="none"))
        self.page_label.add_class("fh-mb-page")
        self.size_dd = w.Dropdown(options=sorted({*PAGE_SIZES, self.page_size}),
                                  value=self.page_size, description="Rows per page",
                                  layout=w.Layout(width="180px"), style=label)
        self.forget_btn = w.Button(description="Forget selected (0)", button_style="danger",
                                   icon="trash", disabled=True, layout=w.Layout(width="auto"))
        self.forget_btn.add_class("fh-mb-forget")
        self.confirm_label = w.Label()
        self.confirm_btn = w.Button(button_style="danger", layout=w.Layout(width="auto"))
        self.confirm_btn.add_class("fh-mb-confirm")
        self.cancel_btn = w.Button(description="Cancel", layout=w.Layout(width="auto"))
        self.confirm_box = w.HBox([self.confirm_label, self.confirm_btn, self.cancel_btn],
                                  layout=w.Layout(display="none"))
        self.reload_btn = w.Button(description="Reload", icon="refresh",
                                   tooltip="read the store again (new runs, ingests)",
                                   layout=w.Layout(width="auto"))
        self.status = w.Label()
        self.status.add_class("fh-mb-status")
        self._checks: list[Any] = []
        self._cells: list[Any] = []
        self._rows: list[Any] = []
        self._row_ids: list[str | None] = []  # the memory each pooled row shows now

        self.search_box.observe(lambda _: self._filters_changed(), names="value")
        for dd in (self.host_dd, self.type_dd, self.source_dd):
            dd.observe(lambda _: self._filters_changed(), names="value")
        self.size_dd.observe(self._size_changed, names="value")
        self.select_page.observe(self._page_toggled, names="value")
        self.prev_btn.on_click(lambda _: self.goto(self.page - 1))
        self.next_btn.on_click(lambda _: self.goto(self.page + 1))
        self.forget_btn.on_click(lambda _: self._ask_forget())
        self.confirm_btn.on_click(lambda _: self._forget_selected())
        self.cancel_btn.on_click(lambda _: self._hide_confirm())
        self.reload_btn.on_click(lambda _: self.reload())

        head = w.HTML(HEADER_HTML, layout=w.Layout(flex="1 1 0%", min_width="0"))
        head.add_class("fh-mb-fit")
        box = w.VBox([
            w.HTML(CSS),
            w.HBox([self.search_box, self.host_dd, self.type_dd, self.source_dd],
                   layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.select_page, head], layout=w.Layout(width="100%", overflow="hidden")),
            self.rows_box,
            w.HBox([self.prev_btn, self.page_label, self.next_btn, self.size_dd, self.reload_btn],
                   layout=w.Layout(align_items="center", flex_flow="row wrap")),
            w.HBox([self.forget_btn, self.confirm_box]),
            self.status,
        ], layout=w.Layout(width="100%"))
        box.add_class("fh-memory-browser")
        self.refresh()
        return box

    def _row_widgets(self, n: int) -> None:
        """Grow the pool of row widgets to ``n``; rows are reused from page to page."""
        import ipywidgets as w

        while len(self._rows) < n:
            check = w.Checkbox(value=False, indent=False,
                               layout=w.Layout(width="24px", flex="none"))
            check.add_class("fh-mb-check")
            check.observe(self._row_toggled, names="value")
            cell = w.HTML(layout=w.Layout(flex="1 1 0%", min_width="0"))
            cell.add_class("fh-mb-fit")
            row = w.HBox([check, cell], layout=w.Layout(width="100%", overflow="hidden"))
            row.add_class("fh-mb-row")
            self._checks.append(check)
            self._cells.append(cell)
            self._rows.append(row)
            self._row_ids.append(None)
        if len(self.rows_box.children) != len(self._rows):
            self.rows_box.children = tuple(self._rows)

    def refresh(self) -> None:
        """Show the current page with the widget's current filters."""
        if self._widget is None and not hasattr(self, "rows_box"):
            return
        self.query = self.search_box.value
        self.host = None if self.host_dd.value == ANY else self.host_dd.value
        self.memory_type = None if self.type_dd.value == ANY else self.type_dd.value
        self.source = None if self.source_dd.value == ANY else self.source_dd.value
        searching = bool(self.query.strip())
        # sent to the page at once: the first search may load the embedding model for seconds
        self.status.value = "searching…" if searching else ""
        try:
            df = self.frame()
        except Exception as exc:  # noqa: BLE001 - shown to the analyst, the widget stays usable
            self.status.value = f"search failed: {exc}"
            return
        if searching:
            self.status.value = f"the {self.total} best matches, best first"
        records = df.to_dict("records")
        self._row_widgets(len(records))
        self._syncing = True  # setting checkboxes here is not the analyst selecting
        try:
            for i, row in enumerate(self._rows):
                if i < len(records):
                    rec = records[i]
                    self._cells[i].value = row_html(rec)
                    self._checks[i].value = rec["id"] in self.selected
                    self._row_ids[i] = rec["id"]
                    row.layout.display = None
                else:
                    self._checks[i].value = False
                    self._row_ids[i] = None
                    row.layout.display = "none"
            self.select_page.value = bool(records) and all(r["id"] in self.selected
                                                           for r in records)
        finally:
            self._syncing = False
        first = self.page * self.page_size + 1 if self.total else 0
        last = self.page * self.page_size + len(records)
        self.page_label.value = (f"Page {self.page + 1} of {self.pages} · "
                                 f"{first}–{last} of {self.total} memories")
        self.prev_btn.disabled = self.page == 0
        self.next_btn.disabled = self.page >= self.pages - 1
        self._selection_changed()

    def reload(self) -> None:
        """Read the store again: memories written since (by a run, an ingest) appear."""
        self._hits = None
        sources = [ANY] + self.sources()
        if list(self.source_dd.options) != sources and self.source_dd.value in sources:
            value = self.source_dd.value
            self._syncing = True  # not a filter change: keep the page and the selection
            try:
                self.source_dd.options = sources
                self.source_dd.value = value
            finally:
                self._syncing = False
        self.refresh()

    def goto(self, page: int) -> None:
        """Show page ``page`` (0-based, clamped)."""
        self.page = min(max(page, 0), self.pages - 1)
        self._hide_confirm()
        self.refresh()

    def _filters_changed(self) -> None:
        if self._syncing:
            return
        self.page = 0
        self.selected.clear()
        self._hide_confirm()
        self.refresh()

    def _size_changed(self, change: dict[str, Any]) -> None:
        first = self.page * self.page_size  # keep the first visible memory on screen
        self.page_size = int(change["new"])
        self.page = first // self.page_size
        self.refresh()

    def _row_toggled(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        mid = self._row_ids[self._checks.index(change["owner"])]
        if mid is None:
            return
        (self.selected.add if change["new"] else self.selected.discard)(mid)
        self._selection_changed()

    def _page_toggled(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        for check, mid in zip(self._checks, self._row_ids):
            if mid is not None:
                check.value = bool(change["new"])  # each box's observer updates the selection

    def _selection_changed(self) -> None:
        n = len(self.selected)
        self.forget_btn.description = f"Forget selected ({n})"
        self.forget_btn.disabled = n == 0
        if self.confirm_box.layout.display != "none":
            self._ask_forget()  # keep the count in the question true

    def _ask_forget(self) -> None:
        n = len(self.selected)
        if not n:
            self._hide_confirm()
            return
        noun = "memory" if n == 1 else "memories"
        self.confirm_label.value = f"Forget {n} {noun}? This cannot be undone."
        self.confirm_btn.description = f"Forget {n}"
        self.confirm_box.layout.display = None

    def _hide_confirm(self) -> None:
        if hasattr(self, "confirm_box"):
            self.confirm_box.layout.display = "none"

    def _forget_selected(self) -> None:
        ids = sorted(self.selected)
        self._hide_confirm()
        if not ids:
            return
        n = self.forget(ids)
        self.selected.clear()
        self.refresh()
        self.status.value = f"forgot {n} {'memory' if n == 1 else 'memories'}"

    # -- display -----------------------------------------------------------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        try:
            bundle.update(self.widget()._repr_mimebundle_(include=include, exclude=exclude) or {})
        except ImportError:  # no ipywidgets: the text view below still works
            pass
        bundle["text/plain"] = self._text()
        return bundle

    def _text(self) -> str:
        df = self._df if self._df is not None else self.frame()
        lines = [f"{self!r}: page {self.page + 1} of {self.pages}, "
                 f"{len(df)} of {self.total} memories"]
        for _, r in df.head(10).iterrows():
            lines.append(f"  {r['id']}  [{r['namespace']}/{r['type']}] {str(r['title'])[:50]}  "
                         f"expires {format_date(r['expires_at'])}: {preview(r['text'])[:80]}")
        return "\n".join(lines)
