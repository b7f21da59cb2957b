"""The Select layer: choose the evidence for a run *after* retrieving it from memory.

CONTRACT (used by the engine and the ``search_memory`` tool):
    select(store, query, *, host=None, k=5, embedder=None, namespaces=None) -> list[Source]
Sources come back numbered 1..n in the order they should be cited, each with its reasons.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..events import Source
from ..memory.embeddings import Embedder, get_embedder
from ..memory.store import Store, utcnow
from ..paradigms import HostParadigm, profile


def select(
    store: Store,
    query: str,
    *,
    host: HostParadigm | str | None = None,
    k: int = 5,
    embedder: Embedder | None = None,
    namespaces: Sequence[str] | None = None,
) -> list[Source]:
    """Naive first version: dense cosine over every stored vector of the current model."""
    embedder = embedder or get_embedder()
    sql = (
        "SELECT id, title, content, namespace, source, document_id, embedding FROM memories "
        "WHERE model = ? AND (expires_at IS NULL OR expires_at > ?) "
        "AND coalesce(json_extract_string(metadata, '$.kind'), '') <> 'query_context'"
    )
    params: list = [embedder.name, utcnow()]
    if namespaces:
        sql += " AND namespace IN (SELECT unnest(?))"
        params.append(list(namespaces))
    with store.connect() as con:
        rows = con.execute(sql, params).fetchall()
    if not rows:
        return []
    q = embedder.embed([query])[0]
    m = np.asarray([r[6] for r in rows], dtype=np.float32)
    scores = m @ q
    words = set(profile(host).title_words) if host else set()
    chosen: list[Source] = []
    seen_docs: set[str] = set()
    for i in np.argsort(-scores):
        mid, title, content, ns, src, doc, _ = rows[i]
        doc_key = doc or mid
        if doc_key in seen_docs:
            continue
        seen_docs.add(doc_key)
        reasons = []
        if scores[i] > 0.5:
            reasons.append(f"semantic match {scores[i]:.2f}")
        hits = [w for w in words if w in (title or "").lower()]
        if hits:
            reasons.append("title matches host priorities: " + ", ".join(sorted(hits)))
        chosen.append(
            Source(
                n=len(chosen) + 1,
                id=mid,
                title=title or content[:60],
                text=content,
                score=float(scores[i]),
                origin=doc or src,
                namespace=ns,
                reasons=tuple(reasons) or (f"semantic score {scores[i]:.2f}",),
            )
        )
        if len(chosen) >= k:
            break
    return chosen
