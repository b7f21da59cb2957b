"""BM25 keyword index over memories, keyed by the store's integer ``key``.

Written here rather than taken from ``bm25s`` because memory changes one passage at a time: a
run writes its answer, the analyst forgets a note. ``bm25s`` can only be rebuilt whole, which
at 100k passages costs seconds per change; this index adds and removes incrementally.

Layout: term postings in CSR form (``indptr`` over term ids, doc keys, term frequencies) plus a
small tail of postings added since the last compaction. Removed documents are marked dead and
dropped from postings at the next compaction. Scores use Lucene's BM25 (k1 = 0.9, b = 0.4, the
Anserini defaults that do well on BEIR).
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Sequence

import numpy as np

from .atomic import atomic_path

# Bump when tokenisation changes: a saved index with another version is rebuilt.
TOKENIZER_VERSION = "1"

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each few for from further had hadn't has hasn't have haven't
    having he her here hers herself him himself his how i if in into is isn't it it's its itself
    let's me more most mustn't my myself no nor not of off on once only or other ought our ours
    ourselves out over own same shan't she should shouldn't so some such than that that's the
    their theirs them themselves then there there's these they this those through to too under
    until up very was wasn't we were weren't what what's when where which while who whom why
    with won't would wouldn't you your yours yourself yourselves""".split()
)


class _Stem:
    """Snowball English via PyStemmer when installed; a plural-stripping fallback otherwise."""

    def __init__(self) -> None:
        try:
            import Stemmer  # PyStemmer

            self._stemmer = Stemmer.Stemmer("english")
            self._stemmer.maxCacheSize = 200_000
            self.name = "snowball"
        except ImportError:  # pragma: no cover - PyStemmer is a declared dependency
            self._stemmer = None
            self.name = "plural"

    def words(self, words: list[str]) -> list[str]:
        if self._stemmer is not None:
            return self._stemmer.stemWords(words)
        out = []
        for w in words:
            if len(w) > 4 and w.endswith("ies"):
                w = w[:-3] + "y"
            elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
                w = w[:-1]
            out.append(w)
        return out


_stem = _Stem()


def tokenizer_id() -> str:
    return f"{TOKENIZER_VERSION}-{_stem.name}"


def tokenize(text: str) -> list[str]:
    """Lower-cased word stems without stop words (apostrophes are dropped after the check)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    words = [w.replace("'", "").replace("’", "") for w in words]
    return _stem.words(words)


class KeywordIndex:
    """Incremental BM25. Documents are identified by non-negative integer keys."""

    k1 = 0.9
    b = 0.4

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        # compacted postings, sorted by term id
        self._indptr = np.zeros(1, dtype=np.int64)
        self._pkeys = np.zeros(0, dtype=np.int64)
        self._ptf = np.zeros(0, dtype=np.float32)
        # postings added since the last compaction, sorted by term id
        self._tt = np.zeros(0, dtype=np.int64)
        self._tk = np.zeros(0, dtype=np.int64)
        self._tf = np.zeros(0, dtype=np.float32)
        self._dead = 0
        self._dead_keys: set[int] = set()
        self.doc_len = np.zeros(0, dtype=np.float32)  # by key; 0 = absent
        self.alive = np.zeros(0, dtype=bool)
        self.n_docs = 0
        self.total_len = 0.0

    # -- building ----------------------------------------------------------------------------

    def _grow(self, max_key: int) -> None:
        if max_key < len(self.alive):
            return
        cap = max(max_key + 1, int(len(self.alive) * 1.5) + 1024)
        self.alive = np.concatenate([self.alive, np.zeros(cap - len(self.alive), dtype=bool)])
        self.doc_len = np.concatenate(
            [self.doc_len, np.zeros(cap - len(self.doc_len), dtype=np.float32)]
        )

    def __len__(self) -> int:
        return self.n_docs

    def keys(self) -> np.ndarray:
        return np.flatnonzero(self.alive).astype(np.int64)

    def add(self, keys: Sequence[int], texts: Iterable[str]) -> None:
        """Add documents (re-adding a live key replaces it)."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return
        texts = list(texts)
        if len(self.alive):
            inside = keys[keys < len(self.alive)]
            again = inside[self.alive[inside]]
            if len(again) or self._dead_keys.intersection(inside.tolist()):
                # old postings of a re-added key must go before its new ones arrive
                self.remove(again)
                self.compact()
        self._grow(int(keys.max()))
        term_ids: list[np.ndarray] = []
        doc_of: list[np.ndarray] = []
        vocab = self.vocab
        for key, text in zip(keys, texts):
            toks = tokenize(text)
            ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), dtype=np.int64, count=len(toks))
            self.doc_len[key] = max(len(toks), 1)
            self.alive[key] = True
            self.n_docs += 1
            self.total_len += max(len(toks), 1)
            if len(ids):
                term_ids.append(ids)
                doc_of.append(np.full(len(ids), key, dtype=np.int64))
        if not term_ids:
            return
        t = np.concatenate(term_ids)
        d = np.concatenate(doc_of)
        # count (term, doc) pairs through one int64 code, then group by term
        span = np.int64(len(self.alive))
        codes, counts = np.unique(t * span + d, return_counts=True)
        tt = np.concatenate([self._tt, codes // span])
        order = np.argsort(tt, kind="stable")
        self._tt = tt[order]
        self._tk = np.concatenate([self._tk, codes % span])[order]
        self._tf = np.concatenate([self._tf, counts.astype(np.float32)])[order]
        if len(self._tt) > max(50_000, len(self._pkeys) // 4):
            self.compact()

    def remove(self, keys: Sequence[int]) -> int:
        keys = np.asarray(keys, dtype=np.int64)
        keys = keys[(keys >= 0) & (keys < len(self.alive))]
        keys = np.unique(keys[self.alive[keys]])
        if len(keys) == 0:
            return 0
        self.alive[keys] = False
        self.n_docs -= len(keys)
        self.total_len -= float(self.doc_len[keys].sum())
        self.doc_len[keys] = 0
        self._dead += len(keys)
        self._dead_keys.update(keys.tolist())
        if self._dead > max(1000, self.n_docs // 5):
            self.compact()
        return len(keys)

    def compact(self) -> None:
        """Merge the tail into the CSR arrays and drop postings of removed documents."""
        n_terms = len(self.vocab)
        counts = np.diff(self._indptr)
        term_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        t = np.concatenate([term_of, self._tt])
        k = np.concatenate([self._pkeys, self._tk])
        f = np.concatenate([self._ptf, self._tf])
        live = self.alive[k] if len(k) else np.zeros(0, dtype=bool)
        t, k, f = t[live], k[live], f[live]
        order = np.lexsort((k, t))
        t, self._pkeys, self._ptf = t[order], k[order], f[order]
        self._indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(t, minlength=n_terms), out=self._indptr[1:])
        self._tt = self._tt[:0]
        self._tk = self._tk[:0]
        self._tf = self._tf[:0]
        self._dead = 0
        self._dead_keys = set()

    # -- querying ----------------------------------------------------------------------------

    def _postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        parts_k, parts_f = [], []
        if tid + 1 < len(self._indptr):
            s, e = self._indptr[tid], self._indptr[tid + 1]
            parts_k.append(self._pkeys[s:e])
            parts_f.append(self._ptf[s:e])
        if len(self._tt):
            s, e = np.searchsorted(self._tt, [tid, tid + 1])
            if e > s:
                parts_k.append(self._tk[s:e])
                parts_f.append(self._tf[s:e])
        if not parts_k:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if len(parts_k) == 1:
            return parts_k[0], parts_f[0]
        return np.concatenate(parts_k), np.concatenate(parts_f)

    def passages(self) -> int:
        return self.n_docs

    def holding(self, word: str, limit: int) -> set[int] | None:
        """Keys of the live passages holding ``word`` (one word, tokenised as indexed); None
        when more than ``limit`` do (the anchor rule, ``anchors.py``)."""
        terms = tokenize(word)
        if len(terms) != 1 or terms[0] not in self.vocab:
            return set()
        keys, _ = self._postings(self.vocab[terms[0]])
        keys = keys[self.alive[keys]]
        return None if len(keys) > limit else set(keys.tolist())

    def search(
        self, query: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (keys, scores) with score > 0; ``allowed`` is a boolean mask by key."""
        if self.n_docs == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        tids = sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})
        if not tids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = np.zeros(len(self.alive), dtype=np.float32)
        avgdl = self.total_len / max(self.n_docs, 1)
        touched = []
        for tid in tids:
            keys, tf = self._postings(tid)
            live = self.alive[keys]
            keys, tf = keys[live], tf[live]
            df = len(keys)
            if df == 0:
                continue
            idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5))
            norm = self.k1 * (1 - self.b + self.b * self.doc_len[keys] / avgdl)
            # each key occurs once per term, so fancy-index += is exact here
            scores[keys] += (idf * tf * (self.k1 + 1) / (tf + norm)).astype(np.float32)
            touched.append(keys)
        if not touched:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        cand = np.flatnonzero(scores > 0)  # every BM25 term weight is positive
        if allowed is not None:
            inside = cand < len(allowed)
            cand = cand[inside]
            cand = cand[allowed[cand]]
        if len(cand) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        s = scores[cand]
        if len(cand) > n:
            top = np.argpartition(-s, n - 1)[:n]
            cand, s = cand[top], s[top]
        order = np.lexsort((cand, -s))  # ties broken by key for stable output
        return cand[order], s[order]

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file + os.replace): a reader never sees half a file."""
        self.compact()
        terms = np.array(sorted(self.vocab, key=self.vocab.__getitem__), dtype=object)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                version=np.array(tokenizer_id()),
                terms=np.array("\n".join(terms)),
                indptr=self._indptr,
                pkeys=self._pkeys,
                ptf=self._ptf,
                doc_len=self.doc_len,
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeywordIndex | None:
        """The saved index, or None if missing, unreadable or made by another tokenizer."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["version"]) != tokenizer_id():
                    return None
                idx = cls()
                text = str(z["terms"])
                terms = text.split("\n") if text else []
                idx.vocab = {t: i for i, t in enumerate(terms)}
                idx._indptr = z["indptr"]
                idx._pkeys = z["pkeys"]
                idx._ptf = z["ptf"]
                idx.doc_len = z["doc_len"]
        except (OSError, ValueError, KeyError, EOFError):
            return None
        if len(idx._indptr) != len(idx.vocab) + 1:
            return None
        idx.alive = idx.doc_len > 0
        idx.n_docs = int(idx.alive.sum())
        idx.total_len = float(idx.doc_len.sum())
        return idx
