"""What the web tools keep: a cache of search results and pages, and pages/papers in memory.

CONTRACT (used by tools/web.py and tools/papers.py):

    cache = WebCache(store)                       # TTLs from Settings.from_env()
    cache = WebCache(store, ttls=WebTTLs(search=3600, page=86400))
    key = cache_key(query="…", k=10, site=None)   # sha256 of the normalised request
    cache.get("search", key) -> Any | None        # None when absent or expired
    cache.put("search", key, value, request={...})  # TTL by kind (search → ttls.search;
                                                    # page, paper, papers → ttls.page; else search)
    cache.fetch("search", request, compute)       # get, or compute() and put; → (value, hit)
    cache.purge_expired() -> int

    remember_page(store, WebDocument(...), namespace="bernard") -> list[str]
    remember_paper(store, url=..., title=..., text=abstract, namespace=..., published=...,
                   authors=[...], metadata={...}) -> list[str]

Write-back goes through the write layer (``context.write.write_memories``: the passages as
ingestion chunks them, embedded in one batch), long-term (density 90), in the host's namespace, with ``metadata.url``
(which the retriever shows as the passage's origin), ``fetched_at`` and ``published``. A URL is
stored once per namespace: reading the same page again keeps its passages when the text is
unchanged and replaces them when it changed. The next question finds the page offline, through
the ordinary memory search.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..memory.embeddings import Embedder
    from ..memory.store import Store

PAGE_KINDS = ("page", "paper", "papers")  # cached with the page TTL; everything else: search TTL
WRITE_DENSITY = 90  # > 80: long-term memory (context/write.py)
MAX_PASSAGES = 60  # a page beyond ~9,600 words is kept by its first passages


@dataclass(frozen=True)
class WebTTLs:
    """Seconds a cached entry lives, per kind; 0 turns that cache off."""

    search: float = 3600.0  # brief §2.8: search cache 1 h
    page: float = 86400.0  # a page or paper: a day

    @classmethod
    def from_settings(cls, settings: Any = None) -> WebTTLs:
        if settings is None:
            from ..config import Settings

            settings = Settings.from_env()
        return cls(search=float(settings.web_search_ttl), page=float(settings.web_page_ttl))

    def for_kind(self, kind: str) -> float:
        return self.page if kind in PAGE_KINDS else self.search


def cache_key(**request: Any) -> str:
    """A stable key for a request: case and surrounding space of strings do not matter."""

    def norm(v: Any) -> Any:
        if isinstance(v, str):
            return " ".join(v.split()).lower()
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        return v

    text = json.dumps(norm(request), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> dt.datetime:
    from ..memory.store import utcnow

    return utcnow()


class WebCache:
    """Expiring entries in the store's ``web_cache`` table, keyed by (kind, key)."""

    def __init__(self, store: Store, ttls: WebTTLs | None = None,
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self.store = store
        self.ttls = ttls or WebTTLs.from_settings()
        self.clock = clock

    def get(self, kind: str, key: str) -> Any | None:
        if self.ttls.for_kind(kind) <= 0:
            return None
        with self.store.connect() as con:
            row = con.execute(
                "SELECT value FROM web_cache WHERE kind = ? AND key = ? AND expires_at > ?",
                [kind, key, self.clock()],
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, key: str, value: Any, *, request: dict[str, Any] | None = None,
            ttl: float | None = None) -> None:
        seconds = self.ttls.for_kind(kind) if ttl is None else ttl
        if seconds <= 0:
            return
        now = self.clock()
        with self.store.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO web_cache VALUES (?, ?, ?, ?, ?, ?)",
                [kind, key, json.dumps(request or {}, default=str), json.dumps(value, default=str),
                 now, now + dt.timedelta(seconds=seconds)],
            )

    def fetch(self, kind: str, request: dict[str, Any], compute: Callable[[], Any]) -> tuple[Any, bool]:
        """The cached value for ``request``, or ``compute()`` stored; and whether it was a hit."""
        key = cache_key(**request)
        hit = self.get(kind, key)
        if hit is not None:
            return hit, True
        value = compute()
        self.put(kind, key, value, request=request)
        return value, False

    def purge_expired(self) -> int:
        with self.store.connect() as con:
            rows = con.execute(
                "DELETE FROM web_cache WHERE expires_at <= ? RETURNING key", [self.clock()]
            ).fetchall()
        return len(rows)


# -- write-back ------------------------------------------------------------------------------


def canonical_url(url: str) -> str:
    """The URL as pages are deduplicated: scheme and host lower-cased, fragment dropped."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{url!r} is not an http(s) URL: give the page's full address")
    path = parts.path or "/"
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


@dataclass(frozen=True)
class WebDocument:
    """A page or paper as it is written to memory."""

    url: str
    text: str
    title: str = ""
    kind: str = "web_page"  # web_page | paper
    site: str = ""
    author: str = ""
    published: str | None = None  # ISO date when the page or paper gives one
    fetched_at: str = ""  # ISO timestamp; now when empty
    metadata: dict[str, Any] = field(default_factory=dict)


def remember_page(store: Store, page: WebDocument, *, namespace: str,
                  embedder: Embedder | None = None) -> list[str]:
    """Write ``page`` to memory (see the module doc); the ids of its passages."""
    from ..context.write import check_namespace, write_memories
    from ..memory.ingest import chunk
    from ..memory.store import content_hash

    ns = check_namespace(namespace)
    url = canonical_url(page.url)
    text = (page.text or "").strip()
    if not text:
        raise ConfigError(f"nothing to remember from {url}: the page has no text")
    passages = chunk(text)[:MAX_PASSAGES]
    existing = _passages_of(store, url, ns)
    if existing and sorted(h for _, h in existing) == sorted({content_hash(p) for p in passages}):
        return [mid for mid, _ in existing]  # the same text: already remembered
    if existing:
        store.forget([mid for mid, _ in existing])  # the page changed: its new text replaces it
    fetched = page.fetched_at or _now().isoformat(timespec="seconds") + "Z"
    base = {
        **page.metadata,
        "kind": page.kind,
        "url": url,
        "fetched_at": fetched,
        "published": page.published,
        "site": page.site or urllib.parse.urlsplit(url).hostname or "",
        "author": page.author,
    }
    return write_memories(
        store,
        passages,
        namespace=ns,
        key=page.kind,
        density=WRITE_DENSITY,
        source="web" if page.kind == "web_page" else page.kind,
        title=page.title or url,
        metadata=[{**base, "passage": i, "passages": len(passages)} for i in range(len(passages))],
        embedder=embedder,
    )


def remember_paper(store: Store, *, url: str, title: str, text: str, namespace: str,
                   published: str | None = None, authors: list[str] | tuple[str, ...] = (),
                   venue: str = "", metadata: dict[str, Any] | None = None,
                   embedder: Embedder | None = None) -> list[str]:
    """Write a paper (its abstract, or its text) to memory, as :func:`remember_page` does."""
    doc = WebDocument(
        url=url, text=text, title=title, kind="paper", site=venue,
        author=", ".join(authors), published=published,
        metadata={"authors": list(authors), **(metadata or {})},
    )
    return remember_page(store, doc, namespace=namespace, embedder=embedder)


def _passages_of(store: Store, url: str, namespace: str) -> list[tuple[str, str]]:
    with store.connect() as con:
        return [
            (r[0], r[1])
            for r in con.execute(
                "SELECT id, content_hash FROM memories WHERE namespace = ? "
                "AND json_extract_string(metadata, '$.url') = ?",
                [namespace, url],
            ).fetchall()
        ]
