"""The memory browser: a search box and host / type / source filters over a DataFrame view,
with forget. ``memory_search_df`` is what ``%research memory search "…"`` returns.

Memory text comes from documents, models and tools: it is untrusted, so the table is rendered
with pandas' escaping (``to_html(escape=True)``), never as raw HTML.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..memory.origins import display_origin
from ..memory.store import Store

ANY = "(any)"
COLUMNS = ["rank", "score", "title", "namespace", "type", "source", "origin", "text", "id", "reasons"]
LIST_COLUMNS = ["title", "namespace", "type", "source", "created_at", "expires_at", "text", "id"]


def memory_search_df(store: Store, query: str, k: int = 10, host: str | None = None,
                     *, embedder: Any = None, namespaces: Sequence[str] | None = None,
                     mode: str = "hybrid") -> Any:
    """The top ``k`` memories for ``query`` as a DataFrame (rank, score, title, …, reasons)."""
    import pandas as pd

    from ..context.select import _reasons, search
    from ..memory.keyword import tokenize

    hits = search(store, query, k=k, host=host, embedder=embedder, namespaces=namespaces, mode=mode)
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
    """Browse, search and forget memories. Displays as a widget; ``frame()`` is the data."""

    def __init__(self, store: Store | None = None, *, embedder: Any = None, limit: int = 50) -> None:
        self.store = store or Store()
        self.embedder = embedder
        self.limit = limit
        self.query = ""
        self.host: str | None = None
        self.memory_type: str | None = None
        self.source: str | None = None
        self._widget: Any = None
        self._df: Any = None

    def __repr__(self) -> str:
        return f"MemoryBrowser({str(self.store.path)!r})"

    # -- data --------------------------------------------------------------------------------

    def frame(
        self,
        query: str | None = None,
        *,
        host: str | None = None,
        memory_type: str | None = None,
        source: str | None = None,
    ) -> Any:
        """Memories matching the filters: ranked by ``query`` if given, else newest first."""
        query = self.query if query is None else query
        host = host or self.host
        memory_type = memory_type or self.memory_type
        source = source or self.source
        if query and query.strip():
            df = memory_search_df(
                self.store, query, k=self.limit if not (memory_type or source) else 4 * self.limit,
                host=host, embedder=self.embedder, namespaces=[host] if host else None,
            )
            if memory_type:
                df = df[df["type"] == memory_type]
            if source:
                df = df[df["source"] == source]
            df = df.head(self.limit).reset_index(drop=True)
        else:
            df = self.store.memories(namespace=host, memory_type=memory_type, source=source,
                                     limit=self.limit)
            df = df.rename(columns={"memory_type": "type", "content": "text"})[LIST_COLUMNS]
        self._df = df
        return df

    def forget(self, ids: Sequence[str]) -> int:
        """Delete memories from the store and the search indexes."""
        return self.store.forget(list(ids))

    def sources(self) -> list[str]:
        with self.store.connect() as con:
            return [r[0] for r in con.execute("SELECT DISTINCT source FROM memories ORDER BY 1").fetchall()]

    # -- display -----------------------------------------------------------------------------

    def _table_html(self, df: Any) -> str:
        shown = df.copy()
        if "text" in shown:
            shown["text"] = shown["text"].map(lambda t: t if len(t) <= 240 else t[:237] + "…")
        # escape=True: memory text is untrusted and must never become markup
        return shown.to_html(escape=True, index=False, border=0, classes="fh-memory")

    def widget(self) -> Any:
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self) -> Any:
        import ipywidgets as w

        from ..paradigms import HOSTS

        self.search_box = w.Text(placeholder="search memory…", description="Search",
                                 continuous_update=False)
        self.host_dd = w.Dropdown(options=[ANY] + [h.value for h in HOSTS] + ["shared"],
                                  description="Host")
        self.type_dd = w.Dropdown(options=[ANY, "procedural", "episodic", "semantic"],
                                  description="Type")
        self.source_dd = w.Dropdown(options=[ANY] + self.sources(), description="Source")
        self.table = w.HTML()
        self.picker = w.SelectMultiple(options=[], rows=6, description="Select")
        self.forget_btn = w.Button(description="Forget selected", button_style="danger",
                                   icon="trash")
        self.status = w.Label()
        self.search_box.on_submit(lambda _: self.refresh())
        for dd in (self.host_dd, self.type_dd, self.source_dd):
            dd.observe(lambda _: self.refresh(), names="value")
        self.forget_btn.on_click(lambda _: self._forget_selected())
        box = w.VBox([
            w.HBox([self.search_box, self.host_dd]),
            w.HBox([self.type_dd, self.source_dd]),
            self.table,
            w.HBox([self.picker, self.forget_btn]),
            self.status,
        ])
        self.refresh()
        return box

    def refresh(self) -> None:
        """Re-run the search with the widget's current values."""
        if self._widget is None and not hasattr(self, "table"):
            return
        self.query = self.search_box.value
        self.host = None if self.host_dd.value == ANY else self.host_dd.value
        self.memory_type = None if self.type_dd.value == ANY else self.type_dd.value
        self.source = None if self.source_dd.value == ANY else self.source_dd.value
        try:
            df = self.frame()
        except Exception as exc:  # noqa: BLE001 - shown to the analyst, the widget stays usable
            self.status.value = f"search failed: {exc}"
            return
        self.table.value = self._table_html(df)
        self.picker.options = [(f"{t[:50]} — {i}", i) for t, i in zip(df["title"], df["id"])]
        self.status.value = f"{len(df)} memories shown"

    def _forget_selected(self) -> None:
        ids = list(self.picker.value)
        if not ids:
            self.status.value = "select memories to forget first"
            return
        n = self.forget(ids)
        self.refresh()
        self.status.value = f"forgot {n} memories"

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
        lines = [f"{self!r}: {len(df)} memories shown"]
        for _, r in df.head(10).iterrows():
            text = " ".join(str(r["text"]).split())
            lines.append(f"  {r['id']}  [{r['namespace']}/{r['type']}] {str(r['title'])[:50]}: {text[:80]}")
        return "\n".join(lines)
