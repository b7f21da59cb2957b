"""The Write layer: what a run writes to memory, with its host namespace, type and lifetime.

CONTRACT:
    memory_type(key, value) -> "procedural" | "episodic" | "semantic"     (brief §3.1)
    lifetime(density) -> timedelta | None   (density > 80 → long-term (None), else scratchpad 10 min)
    write_memory(store, content, *, namespace, key="", density=50, source="run", title="",
                 metadata=None, embedder=None) -> str | None   (the new id; None if already stored)

Each write purges expired scratchpad entries first (as the original did), in the same store
connection. Metadata records the namespaced key (``<namespace>:<key>``), the density and the
entry's top keywords. The vector is made from the title line plus the text, like ingested
passages, so re-embedding after a model change gives the same vectors.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Sequence

from collections import Counter

from ..errors import ConfigError
from ..memory.embeddings import Embedder, get_embedder
from ..memory.keyword import tokenize
from ..memory.retriever import embed_text
from ..memory.store import MemoryRecord, Store, new_id, utcnow
from ..paradigms import HOSTS, HostParadigm

NAMESPACES = tuple(h.value for h in HOSTS) + ("shared",)

SCRATCHPAD_TTL = dt.timedelta(minutes=10)

# keys are identifiers (next_steps, action_plan): match inside them, as the original did
_PROCEDURAL_KEY = re.compile(r"(step|action|process)", re.I)
_PROCEDURAL_VALUE = re.compile(r"\b(step|how to|procedure)", re.I)
_EPISODIC_KEY = re.compile(r"(query|result|research)", re.I)
_EPISODIC_VALUE = re.compile(r"\b(when|happened|experience)\b", re.I)


def memory_type(key: str, value: str) -> str:
    if _PROCEDURAL_KEY.search(key) or _PROCEDURAL_VALUE.search(value):
        return "procedural"
    if _EPISODIC_KEY.search(key) or _EPISODIC_VALUE.search(value):
        return "episodic"
    return "semantic"


def lifetime(density: float) -> dt.timedelta | None:
    """Long-term (no expiry) above density 80, otherwise a 10-minute scratchpad."""
    return None if density > 80 else SCRATCHPAD_TTL


def check_namespace(namespace: str | HostParadigm) -> str:
    ns = namespace.value if isinstance(namespace, HostParadigm) else str(namespace)
    if ns not in NAMESPACES:
        raise ConfigError(f"unknown memory namespace {ns!r}: use one of {', '.join(NAMESPACES)}")
    return ns


def keywords(text: str, n: int = 10) -> list[str]:
    """The entry's most frequent content-word stems (the production variant's top-10)."""
    return [w for w, _ in Counter(t for t in tokenize(text) if len(t) > 2).most_common(n)]


def write_memory(
    store: Store,
    content: str,
    *,
    namespace: str | HostParadigm,
    key: str = "",
    density: float = 50,
    source: str = "run",
    title: str = "",
    metadata: dict[str, Any] | None = None,
    embedder: Embedder | None = None,
    importance: float | None = None,
) -> str | None:
    """Store one entry in ``namespace`` with its type and lifetime from the brief (§3.1)."""
    ids = write_memories(store, [content], namespace=namespace, key=key, density=density,
                         source=source, title=title, metadata=[metadata or {}], embedder=embedder,
                         importance=importance)
    return ids[0] if ids else None


def write_memories(
    store: Store,
    contents: Sequence[str],
    *,
    namespace: str | HostParadigm,
    key: str = "",
    density: float = 50,
    source: str = "run",
    title: str = "",
    metadata: Sequence[dict[str, Any]] | None = None,
    embedder: Embedder | None = None,
    importance: float | None = None,
) -> list[str]:
    """:func:`write_memory` for several entries (the passages of one page): embedded in one
    batch, inserted in one transaction. Returns the ids inserted (already-stored text is
    skipped)."""
    ns = check_namespace(namespace)
    if not contents or any(not c or not c.strip() for c in contents):
        raise ConfigError("nothing to write: the memory content is empty")
    metas = list(metadata) if metadata is not None else [{} for _ in contents]
    embedder = embedder or get_embedder()
    ttl = lifetime(density)
    records = []
    for content, extra in zip(contents, metas):
        meta = dict(extra or {})
        meta.setdefault("key", f"{ns}:{key}" if key else ns)
        meta.setdefault("density", density)
        meta.setdefault("keywords", keywords(f"{title}\n{content}"))
        records.append(MemoryRecord(
            id=new_id("m_"),
            namespace=ns,
            memory_type=memory_type(key, content),
            content=content,
            source=source,
            title=title,
            metadata=meta,
            importance=importance if importance is not None else min(1.0, density / 100),
            expires_at=utcnow() + ttl if ttl else None,
        ))
    vec = embedder.embed([embed_text(title, c) for c in contents])
    with store.hold():  # one connection for the purge and the insert
        store.purge_expired()
        return store.add_memories(records, vec, model=embedder.name)


def remember(
    store: Store,
    content: str,
    *,
    namespace: str | HostParadigm = "shared",
    title: str = "",
    embedder: Embedder | None = None,
    metadata: dict[str, Any] | None = None,
) -> str | None:
    """A user's note: long-term (density 100), source ``note``."""
    return write_memory(
        store, content, namespace=namespace, key="note", density=100, source="note",
        title=title, metadata={"kind": "note", **(metadata or {})}, embedder=embedder,
    )
