"""Is anything in this store about the question? A relevance test calibrated per store.

A fixed cosine cut does not transfer: what counts as a high cosine depends on the model and on
how close a store's passages sit to everyday questions. So each store is measured against a
background: a bank of everyday questions on unrelated subjects (``data/relevance/``), each
searched in the store. The 95th percentile of their best cosine, and of their best BM25 score,
is what "unrelated but close" scores in *this* store. A hit is evidence when its cosine
reaches that level, or when its BM25 score reaches twice that level (exact terms such as
"rule of 72" or "Article 83" that the embedding model misses). A question with no such hit is
outside the memory: select returns no sources and the answer says so.

The percentile, not the maximum: a store may well cover a few of the bank's subjects (one
about cooking answers "how do I clean a cast iron skillet?"), and those should not raise the
bar for every other question. The two levels were chosen on the demo corpus and
``tests/data/retrieval_*`` and checked on ``tests/data/retrieval_heldout`` (see
``tests/test_relevance.py``).

Levels are cached per store, model and namespace filter until the searchable memories change
by more than 5%; the bank's vectors are computed once per model and saved beside the store's
indexes. Calibrating costs ~0.1–0.5 s at 5,000 passages (123 searches in each index).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..memory.atomic import atomic_path
from ..memory.embeddings import HASH_MODEL_NAME, Embedder
from ..memory.retriever import StoreIndexes, _slug

log = logging.getLogger(__name__)

PERCENTILE = 95.0
KEYWORD_FACTOR = 2.0
REUSE_SHARE = 0.05  # recalibrate once the searchable memories change by more than this share

_bank_vectors: dict[str, np.ndarray] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Calibration:
    """The levels a hit must reach in one store to count as evidence."""

    cosine: float
    bm25: float

    def relevant(self, cosine: float | None, bm25: float | None) -> bool:
        # bm25 == 0: no background question shares a word with the store, so there is no
        # level to compare with and only the cosine decides
        keyword = self.bm25 > 0 and (bm25 or 0.0) >= KEYWORD_FACTOR * self.bm25
        return (cosine or 0.0) >= self.cosine or keyword


def background_questions() -> list[str]:
    text = (resources.files("fourhosts_jupyter.data") / "relevance" / "background_questions.txt").read_text(
        encoding="utf-8"
    )
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _bank(embedder: Embedder, cache_dir: Path | None = None) -> tuple[list[str], np.ndarray]:
    """The background questions and their vectors: in memory per process, and saved beside
    the store's indexes so a new kernel does not embed them again."""
    questions = background_questions()
    digest = hashlib.sha256("\n".join(questions).encode()).hexdigest()[:12]
    key = f"{embedder.name}:{digest}"
    with _lock:
        vecs = _bank_vectors.get(key)
    if vecs is not None:
        return questions, vecs
    path = cache_dir / f"background-{_slug(embedder.name)}-{digest}.npy" if cache_dir else None
    if path is not None and path.is_file():
        try:
            vecs = np.load(path)
        except (OSError, ValueError):
            vecs = None  # a damaged file is recomputed below
    if vecs is None or vecs.shape[0] != len(questions):
        vecs = np.asarray(embedder.embed(questions), dtype=np.float32)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, vecs)
            except OSError as exc:  # a read-only store directory: keep it in memory only
                log.info("could not save the background vectors: %s", exc)
    with _lock:
        _bank_vectors[key] = vecs
    return questions, vecs


def applies_to(embedder: Embedder) -> bool:
    """The test needs a model of meaning: the hashing fallback's cosines count shared words,
    and everyday questions share many ("speed limits" scored 0.41 on the speed-management
    document of the demo corpus, under a background level of 0.52), so with it select keeps
    its relative cut only."""
    return embedder.name != HASH_MODEL_NAME


def calibrate(
    si: StoreIndexes, store: Any, embedder: Embedder, namespaces: Sequence[str] | None = None
) -> Calibration | None:
    """This store's levels (None when it holds no vectors for ``embedder``). Call with
    ``si.lock`` held."""
    ns = tuple(sorted(namespaces)) if namespaces else None
    key = (embedder.name, ns)
    mask = si.allowed(namespaces)
    n = int(mask.sum())
    hit = si.calibrations.get(key)
    # a store that grew or shrank by a few memories (each run writes some) keeps its levels
    if hit is not None and (hit[0] == si.version or abs(n - hit[2]) <= REUSE_SHARE * hit[2]):
        return hit[1]
    questions, vecs = _bank(embedder, si.index_dir)
    vi = si.vector_index(store, embedder.name, vecs.shape[1])
    if not len(vi) or not n:
        return None
    cos = []
    for v in vecs:
        _, s = vi.search(v, 1, mask)
        cos.append(float(s[0]) if len(s) else 0.0)
    kw = []
    for q in questions:
        s = si.keyword.search(q, 1, mask)[1] if si.keyword is not None else ()
        kw.append(float(s[0]) if len(s) else 0.0)
    kw_level = float(np.percentile(kw, PERCENTILE)) or max(kw)
    cal = Calibration(float(np.percentile(cos, PERCENTILE)), kw_level)
    si.calibrations[key] = (si.version, cal, n)
    return cal
