"""The Write layer: what a run writes to memory, with its host namespace, type and lifetime.

CONTRACT:
    memory_type(key, value) -> "procedural" | "episodic" | "semantic"     (brief §3.1)
    lifetime(density) -> timedelta | None   (density > 80 → long-term (None), else scratchpad 10 min)
    write_memory(store, content, *, namespace, key="", density=50, source="run", title="",
                 metadata=None, embedder=None) -> str | None   (the new id; None if already stored)
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..memory.embeddings import Embedder, get_embedder
from ..memory.store import MemoryRecord, Store, new_id, utcnow

SCRATCHPAD_TTL = dt.timedelta(minutes=10)

_PROCEDURAL_KEY = re.compile(r"\b(step|action|process)", re.I)
_PROCEDURAL_VALUE = re.compile(r"\b(step|how to|procedure)", re.I)
_EPISODIC_KEY = re.compile(r"\b(query|result|research)", re.I)
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


def write_memory(
    store: Store,
    content: str,
    *,
    namespace: str,
    key: str = "",
    density: float = 50,
    source: str = "run",
    title: str = "",
    metadata: dict[str, Any] | None = None,
    embedder: Embedder | None = None,
    importance: float | None = None,
) -> str | None:
    embedder = embedder or get_embedder()
    ttl = lifetime(density)
    meta = dict(metadata or {})
    meta.setdefault("key", key)
    meta.setdefault("density", density)
    record = MemoryRecord(
        id=new_id("m_"),
        namespace=namespace,
        memory_type=memory_type(key, content),
        content=content,
        source=source,
        title=title,
        metadata=meta,
        importance=importance if importance is not None else min(1.0, density / 100),
        expires_at=utcnow() + ttl if ttl else None,
    )
    ids = store.add_memories([record], embedder.embed([content]), model=embedder.name)
    return ids[0] if ids else None
