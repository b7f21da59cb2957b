"""Re-embedding: when the session's model changes, memories made by another model (or none)
get vectors from the current one, in committed batches with progress (a bar on a terminal,
lines in a log).

A kill in the middle keeps every finished batch; the next search carries on from there.
"""

from __future__ import annotations

import logging

import numpy as np

from ..cancel import check_cancelled
from .embeddings import Embedder
from .progress import Progress
from .retriever import open_indexes
from .store import Store

log = logging.getLogger(__name__)


def reembed_missing(
    store: Store, embedder: Embedder, *, batch_size: int = 64, progress: bool = True
) -> int:
    """Embed every memory whose vector is not from ``embedder``; returns how many.

    Batches are small (a second or so of embedding) and committed one by one; a stopped stage
    (``cancel.check_cancelled``) ends the work at the next batch, keeping the finished ones."""
    si = open_indexes(store)
    with si.lock:
        todo = si.keys_without_model(embedder.name)
        texts = {int(k): si.rows[int(k)].embed_text for k in todo if int(k) in si.rows}
    if not texts:
        return 0
    keys = np.fromiter(texts, dtype=np.int64)
    log.info("re-embedding %d memories with %s", len(keys), embedder.name)
    done = 0
    bar = Progress(f"re-embedding with {embedder.name}", "memory", enabled=progress)
    bar.add_total(len(keys))
    try:
        for start in range(0, len(keys), batch_size):
            check_cancelled()
            part = keys[start : start + batch_size]
            vecs = embedder.embed([texts[int(k)] for k in part])
            check_cancelled()
            done += store.update_embeddings(part, vecs, embedder.name)
            bar.update(len(part))
    finally:
        bar.close()
    si.refresh(store, force=True)
    return done
