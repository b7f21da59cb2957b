"""The Select layer: choose the evidence for a run *after* retrieving it from memory.

CONTRACT (used by the engine and the ``search_memory`` tool):
    select(store, query, *, host=None, k=5, embedder=None, namespaces=None) -> list[Source]
Sources come back numbered 1..n in the order they should be cited, each with its reasons.

Pipeline (the original scored sources before any were retrieved, GAP §3.2; here retrieval
comes first):

1. candidates: dense from FAISS and keyword from BM25, each over-fetched (``candidates``),
   both filtered inside the index by namespace, expiry and kind (``query_context`` rows are
   scratch notes, never evidence);
2. fusion of each list's top 50 documents: min-max normalised scores weighted 0.8 dense /
   0.2 BM25 (``fusion="rrf"`` is weighted reciprocal-rank fusion, ``w / (60 + rank)``; the
   original's 0.6 / 0.4 semantic / keyword weighting is ``weights=ORIGINAL_WEIGHTS``);
3. host boost: the original's keyword score (title words + 0.5 per priority phrase, / 5,
   capped at 1) multiplies the fused score by up to ``1 + HOST_BOOST``;
4. one passage per document (the best); for ``select``, the store's calibrated relevance
   test (``relevance.py``: no sources when the store holds nothing on the question), then
   MMR (λ = 0.5) over the fused list.

``search`` returns the scored hits (for the CLI and outside evaluation); ``select`` turns them
into numbered ``Source`` events with reasons.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..events import Source
from ..memory.anchors import anchor_postings, held, is_code, promote
from ..memory.embeddings import Embedder, get_embedder
from ..memory.keyword import tokenize
from ..memory.readability import unreadable
from ..memory.retriever import Row, StoreIndexes, open_indexes
from ..memory.store import Store
from ..paradigms import HostParadigm, profile

log = logging.getLogger(__name__)

RRF_K = 60
# Fusion: min-max normalised scores, 0.8 dense / 0.2 BM25, over each list's top 50 documents:
# of the variants measured (python -m fourhosts_jupyter.bench retrieval --variants), the one
# with the smallest worst-case loss to dense-only on tests/data/retrieval_*, MS MARCO and
# DBpedia; checked on tests/data/retrieval_heldout. Plain RRF fell below dense-only on both
# public sets and on the held-out split.
DEFAULT_WEIGHTS = (0.8, 0.2)  # dense, keyword
DEFAULT_FUSION = "score"
DEFAULT_DEPTH = 50
ORIGINAL_WEIGHTS = (0.6, 0.4)  # the original's semantic / keyword weighting
HOST_BOOST = 0.2
MMR_LAMBDA = 0.5
MIN_RELEVANCE = 0.5  # select cites only hits within half of the best cosine (see search)
MODES = ("hybrid", "dense", "bm25")
BLIND_REASON = "ranked by keywords: the embedding model cannot read this question's script"
FUSIONS = ("rrf", "score", "zscore")


@dataclass(frozen=True)
class Hit:
    """One retrieved passage with how it was found."""

    key: int
    id: str
    score: float
    text: str
    title: str
    origin: str
    namespace: str
    memory_type: str
    source: str
    document_id: str | None
    external_id: str | None
    dense_rank: int | None = None
    dense_score: float | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None
    host_score: float = 0.0
    passages_in_document: int = 1
    reasons: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The ``fourhosts search --json`` line: ``id`` is the document's own id when it came
        with one (JSONL/CSV ``--id-field``), so outside relevance judgements match."""
        return {
            "id": self.external_id or self.document_id or self.id,
            "score": round(self.score, 6),
            "text": self.text,
            "source": self.origin,
            "title": self.title,
            "memory_id": self.id,
            "namespace": self.namespace,
        }


def host_score(host: HostParadigm | str | None, title: str, text: str) -> tuple[float, list[str]]:
    """The original's Select keyword score: (title-word hits + 0.5 per priority phrase) / 5."""
    if not host:
        return 0.0, []
    p = profile(host)
    t, body = title.lower(), f"{title}\n{text}".lower()
    words = [w for w in p.title_words if w in t]
    phrases = [ph for ph in p.source_priorities if ph in body]
    score = min((len(words) + 0.5 * len(phrases)) / 5, 1.0)
    reasons = []
    if words:
        reasons.append(f"title matches {p.label}'s words: {', '.join(words)}")
    if phrases:
        reasons.append(f"mentions {p.label}'s source priorities: {', '.join(phrases)}")
    return score, reasons


def _ensure_model(store: Store, si: StoreIndexes, embedder: Embedder, progress: bool) -> None:
    from ..memory.reembed import reembed_missing

    if len(si.keys_without_model(embedder.name)):
        reembed_missing(store, embedder, progress=progress)


def search(
    store: Store,
    query: str,
    *,
    k: int = 10,
    host: HostParadigm | str | None = None,
    embedder: Embedder | None = None,
    namespaces: Sequence[str] | None = None,
    mode: str = "hybrid",
    weights: tuple[float, float] = DEFAULT_WEIGHTS,
    fusion: str = DEFAULT_FUSION,
    adaptive: bool = False,
    candidates: int | None = None,
    depth: int | None = None,
    mmr_lambda: float | None = None,
    per_document: bool = True,
    progress: bool = True,
    min_relevance: float | None = None,
    calibrated: bool = False,
    readability: bool = True,
    anchors: bool = True,
) -> list[Hit]:
    """Ranked hits for ``query``. ``mode`` is hybrid, dense or bm25; ``mmr_lambda`` None
    keeps the fused order (what an IR evaluation wants); ``per_document`` ranks documents
    (each by its best passage) rather than passages.

    Each list is over-fetched (``candidates`` passages), collapsed to documents, and its top
    ``depth`` entries (default max(k, 50)) are fused; with score fusion the window is also
    what each list's scores are normalised over. Memories whose vectors come from another model are
    re-embedded first (with a progress bar unless ``progress`` is False).

    ``min_relevance`` (hybrid/dense) drops hits whose cosine is below that share of the best
    cosine unless BM25 ranked them in its top three: RRF keeps rank 11 of two lists close to
    rank 1 of one, so on a small store off-topic documents would otherwise be cited.

    ``calibrated`` (hybrid/dense) applies the store's calibrated relevance test
    (``context/relevance.py``): when no hit passes it, the store holds nothing on the question
    and there are no hits.

    ``readability`` (hybrid): a query the embedding model can only spell out letter by letter
    (a script it never learned, ``memory/readability.py``) is ranked by BM25 alone, the dense
    list only ordering what BM25 did not find; neither ``min_relevance`` nor MMR apply (both
    read the same vectors), and ``calibrated`` keeps the hits sharing a word with it (the
    calibrated levels rest on cosines too).

    ``anchors`` (hybrid): documents holding the question's rare figures and codes (words with
    a digit, or that the model can only spell out, in at most 1 % of passages:
    ``memory/anchors.py``) rank first, in fused order within; a vector blurs "NCT05518823"
    into "a trial", BM25 does not."""
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
    if fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion {fusion!r}: use one of {', '.join(FUSIONS)}")
    if not query or not query.strip():
        raise ConfigError("the search query is empty: give some words to search for")
    k = max(1, int(k))
    depth = depth or max(k, DEFAULT_DEPTH)
    si = open_indexes(store)
    use_dense = mode in ("hybrid", "dense")
    if use_dense:
        embedder = embedder or get_embedder()
        _ensure_model(store, si, embedder, progress)
    n_cand = candidates or max(50, 5 * depth)
    qvec = embedder.embed([query])[0] if use_dense else None
    with si.lock:
        vi = si.vector_index(store, embedder.name, len(qvec)) if use_dense else None
        mask = si.allowed(namespaces)
        lists: list[list[tuple[int, float]]] = [[], []]
        if vi is not None:
            keys, scores = vi.search(qvec, n_cand, mask)
            lists[0] = list(zip(keys.tolist(), scores.tolist()))
        if mode in ("hybrid", "bm25") and si.keyword is not None:
            keys, scores = si.keyword.search(query, n_cand, mask)
            lists[1] = list(zip(keys.tolist(), scores.tolist()))
        rows = {kk: si.rows[kk] for lst in lists for kk, _ in lst if kk in si.rows}
        group = (lambda kk: rows[kk].document_id or rows[kk].id) if per_document else (lambda kk: kk)
        passages: dict[Any, set[int]] = {}
        ranked = []
        for lst in lists:
            best: dict[Any, tuple[int, float]] = {}
            for kk, sc in lst:
                if kk not in rows:
                    continue
                g = group(kk)
                passages.setdefault(g, set()).add(kk)
                if g not in best:
                    best[g] = (kk, sc)
            ranked.append([(g, kk, sc) for g, (kk, sc) in list(best.items())[:depth]])
        # a query the model cannot read: its cosines (and the MMR similarities) are noise
        blind = readability and mode == "hybrid" and unreadable(embedder, query)
        if blind:  # rank fusion keeps BM25's last hit above the documents it did not find
            weights, fusion = (0.0, 1.0), "rrf"
        elif adaptive and mode == "hybrid":
            weights = adaptive_weights([sc for _, _, sc in ranked[0]], [sc for _, _, sc in ranked[1]])
        hits = _fuse(rows, ranked[0], ranked[1], host, weights, passages, raw=mode != "hybrid",
                     fusion=fusion)
        if blind:
            hits = [_replace(h, reasons=h.reasons + (BLIND_REASON,)) for h in hits]
        pinned, code = 0, False  # hits holding the question's rare figures or codes, kept first
        if anchors and mode == "hybrid" and hits and not blind:
            hits, pinned, code = _anchored(hits, si.keyword, embedder, query,
                                           lambda h: passages.get(group(h.key), ()))
        if min_relevance is not None and use_dense and hits and not blind:
            top = max((h.dense_score or 0.0) for h in hits)
            hits = [
                h
                for i, h in enumerate(hits)
                if i < pinned or (h.dense_score or 0.0) >= min_relevance * top
                or (h.keyword_rank or 99) <= 3
            ]
        if calibrated and blind:  # only a shared word is evidence, not a cosine of noise
            hits = [h for h in hits if h.keyword_score is not None]
        elif calibrated and vi is not None and hits and not code:  # a held code is evidence
            from .relevance import applies_to, calibrate

            cal = calibrate(si, store, embedder, namespaces) if applies_to(embedder) else None
            if cal is not None:
                cos = vi.reconstruct([h.key for h in hits]) @ np.asarray(qvec, dtype=np.float32)
                # a document's cosine is its best passage's: the one shown may be BM25's pick.
                # The test is per question: once one hit passes, the others stand or fall by
                # min_relevance (a per-hit cut dropped relevant sources on a broad store).
                if not any(cal.relevant(max(c, h.dense_score or -1.0), h.keyword_score)
                           for h, c in zip(hits, cos.tolist())):
                    hits = []
        pinned = min(pinned, len(hits))  # the relevance test may have dropped every hit
        if mmr_lambda is not None and vi is not None and len(hits) > pinned + 1 and not blind:
            # diversity among the rest: a document holding the asked-for code stays first
            head, pool = hits[:pinned], hits[pinned: pinned + max(3 * k, 20)]
            vecs = vi.reconstruct([h.key for h in pool])
            hits = head + _mmr(pool, vecs, mmr_lambda, max(0, k - len(head)))
    return hits[:k]


def _anchored(hits: list[Hit], keyword: Any, embedder: Any, query: str,
              keys_of: Callable[[Hit], Any]) -> tuple[list[Hit], int, bool]:
    """``hits`` with the documents holding the query's rare anchor words first, each saying
    so; how many do, and whether one holds a code (not only a bare number)."""
    found = anchor_postings(keyword, embedder, query)
    if not found:
        return hits, 0, False
    words = held(hits, keys_of, found)
    marked = [
        _replace(h, reasons=h.reasons + (f"holds {', '.join(repr(w) for w in ws)}: "
                                         "a rare figure or code of the question",)) if ws else h
        for h, ws in zip(hits, words)
    ]
    codes = any(is_code(w) for ws in words for w in ws)
    return promote(marked, words), sum(bool(ws) for ws in words), codes


def _fuse(
    rows: dict[int, Row],
    dense: list[tuple[Any, int, float]],
    keyword: list[tuple[Any, int, float]],
    host: HostParadigm | str | None,
    weights: tuple[float, float],
    passages: dict[Any, set[int]],
    raw: bool = False,
    fusion: str = "rrf",
) -> list[Hit]:
    """Weighted fusion of two ranked lists of (group, passage key, score); with one list
    (``raw``) its own score is kept. A group is shown by its best-ranked passage.

    ``rrf``: ``w / (60 + rank)`` per list. ``score``: each list's scores min-max normalised
    over its window, weighted sum, a group missing from a list counts that list's minimum.
    ``zscore``: the same with each list standardised (mean 0, sd 1)."""
    wd, wk = weights
    d_at = {g: (r, kk, sc) for r, (g, kk, sc) in enumerate(dense, 1)}
    k_at = {g: (r, kk, sc) for r, (g, kk, sc) in enumerate(keyword, 1)}
    nd, nk = _normaliser(dense, fusion), _normaliser(keyword, fusion)
    out = []
    for g in list(d_at) + [g for g in k_at if g not in d_at]:
        d, kw = d_at.get(g), k_at.get(g)
        if raw:
            score = (d or kw)[2]
        elif fusion == "rrf":
            score = (wd / (RRF_K + d[0]) if d else 0.0) + (wk / (RRF_K + kw[0]) if kw else 0.0)
        else:
            score = wd * nd(d[2] if d else None) + wk * nk(kw[2] if kw else None)
        # the passage shown: the one with the better rank (dense on a tie)
        key = d[1] if d and (not kw or d[0] <= kw[0]) else kw[1]
        row = rows[key]
        hs, host_reasons = host_score(host, row.title, row.content)
        score *= 1 + HOST_BOOST * hs
        out.append(
            Hit(
                key=key,
                id=row.id,
                score=score,
                text=row.content,
                title=row.title,
                origin=row.origin,
                namespace=row.namespace,
                memory_type=row.memory_type,
                source=row.source,
                document_id=row.document_id,
                external_id=row.external_id,
                dense_rank=d[0] if d else None,
                dense_score=d[2] if d else None,
                keyword_rank=kw[0] if kw else None,
                keyword_score=kw[2] if kw else None,
                host_score=hs,
                passages_in_document=len(passages.get(g, ())) or 1,
                reasons=tuple(host_reasons),
            )
        )
    # ties (equal fused scores) fall back to the dense rank, then the key: stable output
    out.sort(key=lambda h: (-h.score, h.dense_rank or 10**9, h.keyword_rank or 10**9, h.key))
    return out


def _normaliser(lst: list[tuple[Any, int, float]], fusion: str) -> Any:
    """score -> normalised score over one list's window (None: absent from the window)."""
    xs = np.array([sc for _, _, sc in lst], dtype=np.float64)
    if fusion == "rrf" or not len(xs):
        return lambda x: 0.0 if x is None else float(x)
    lo = float(xs.min())
    if fusion == "score":
        span = float(xs.max()) - lo
        return lambda x: 0.0 if x is None else ((x - lo) / span if span > 0 else 1.0)
    mu, sd = float(xs.mean()), float(xs.std())
    floor = (lo - mu) / sd if sd > 0 else 0.0
    return lambda x: floor if x is None else ((x - mu) / sd if sd > 0 else 0.0)


def adaptive_weights(dense: Sequence[float], keyword: Sequence[float], n: int = 10) -> tuple[float, float]:
    """Per-query weights from how far each list's first score stands above the rest of its top
    ``n`` (in standard deviations): the confident list leads."""

    def gap(xs: Sequence[float]) -> float:
        a = np.asarray(xs[:n], dtype=np.float64)
        if len(a) < 3 or a[1:].std() == 0:
            return 0.0
        return max(0.0, float((a[0] - a[1:].mean()) / a[1:].std()))

    gd, gk = gap(dense), gap(keyword)
    if gd + gk == 0:
        return DEFAULT_WEIGHTS
    return gd / (gd + gk), gk / (gd + gk)


def _replace(h: Hit, **changes: Any) -> Hit:
    import dataclasses

    return dataclasses.replace(h, **changes)


def _mmr(pool: list[Hit], vecs: np.ndarray, lam: float, k: int) -> list[Hit]:
    """Maximal marginal relevance: λ·relevance − (1−λ)·max similarity to what is chosen."""
    rel = np.array([h.score for h in pool], dtype=np.float64)
    # Min-max over the pool: fused RRF scores differ by a few percent between rank 1 and 10,
    # so dividing by the max left relevance nearly flat and the diversity term picked
    # off-topic documents.
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    sims = vecs @ vecs.T
    chosen: list[int] = []
    left = list(range(len(pool)))
    max_sim = np.zeros(len(pool))
    while left and len(chosen) < k:
        vals = lam * rel[left] - (1 - lam) * max_sim[left]
        best = left[int(np.argmax(vals))]
        chosen.append(best)
        left.remove(best)
        max_sim = np.maximum(max_sim, sims[best])
    rest = [i for i in range(len(pool)) if i not in chosen]
    return [pool[i] for i in chosen] + [pool[i] for i in rest]


def _reasons(h: Hit, query_terms: set[str]) -> tuple[str, ...]:
    out = []
    if h.dense_rank is not None:
        out.append(f"semantic match: rank {h.dense_rank} (cosine {h.dense_score:.2f})")
    if h.keyword_rank is not None:
        shared = sorted(query_terms & set(tokenize(f"{h.title}\n{h.text}")))
        terms = f"; terms: {', '.join(shared[:6])}" if shared else ""
        out.append(f"keyword match: rank {h.keyword_rank} (BM25 {h.keyword_score:.1f}{terms})")
    out.extend(h.reasons)
    if h.passages_in_document > 1:
        out.append(f"best of {h.passages_in_document} retrieved passages from this document")
    return tuple(out) or ("retrieved",)


def select(
    store: Store,
    query: str,
    *,
    host: HostParadigm | str | None = None,
    k: int = 5,
    embedder: Embedder | None = None,
    namespaces: Sequence[str] | None = None,
    mode: str = "hybrid",
    weights: tuple[float, float] = DEFAULT_WEIGHTS,
    mmr_lambda: float = MMR_LAMBDA,
    calibrated: bool = True,
) -> list[Source]:
    """The sources to cite for ``query``: hybrid retrieval, host boost, MMR, one per document,
    only what passes the store's relevance test (none when the store holds nothing on it)."""
    if not query or not query.strip():
        return []
    hits = select_hits(store, query, host=host, k=k, embedder=embedder, namespaces=namespaces,
                       mode=mode, weights=weights, mmr_lambda=mmr_lambda, calibrated=calibrated)
    terms = set(tokenize(query))
    from ..memory.source_dates import with_dates  # web sources carry their date

    return with_dates(store, [
        Source(
            n=i,
            id=h.id,
            title=h.title or h.text[:60],
            text=h.text,
            score=h.score,
            origin=h.origin,
            namespace=h.namespace,
            reasons=_reasons(h, terms),
        )
        for i, h in enumerate(hits, 1)
    ])


def select_hits(
    store: Store,
    query: str,
    *,
    host: HostParadigm | str | None = None,
    k: int = 5,
    embedder: Embedder | None = None,
    namespaces: Sequence[str] | None = None,
    mode: str = "hybrid",
    weights: tuple[float, float] = DEFAULT_WEIGHTS,
    mmr_lambda: float | None = MMR_LAMBDA,
    calibrated: bool = True,
) -> list[Hit]:
    """``select``'s ranking as hits (what the retrieval benchmark scores)."""
    return search(
        store,
        query,
        k=k,
        host=host,
        embedder=embedder,
        namespaces=namespaces,
        mode=mode,
        weights=weights,
        mmr_lambda=mmr_lambda,
        min_relevance=MIN_RELEVANCE,
        calibrated=calibrated,
    )
