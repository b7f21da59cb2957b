"""The FAISS vector index: derived from the store, one per embedding model, rebuildable.

Exact search (``IndexIDMap2(IndexFlatIP)``) below ``APPROX_THRESHOLD`` vectors; above it an
``IndexIVFFlat`` whose ``nprobe`` is tuned at build time until recall@10 against exact search
reaches ``TARGET_RECALL`` on sample queries. IVF rather than HNSW because IVF removes vectors
(``forget``) and adds them without a rebuild, and trains in seconds where HNSW takes minutes at
1M (facts.md); IVF-Flat keeps full vectors, so its scores are exact and need no re-rank.

Ids inside FAISS are the store's integer ``memories.key``. Filters (host namespace, expiry)
arrive as a boolean mask by key and are applied *inside* the search through an
``IDSelectorBitmap``, so a filtered search still returns k results when k exist.

faiss is imported lazily: it is not needed to import the package.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path

log = logging.getLogger(__name__)

APPROX_THRESHOLD = 50_000  # below: exact flat search (≈ 6 ms at 50k, 1 thread)
TARGET_RECALL = 0.97  # tuning target; the contract is ≥ 0.95
_NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def _faiss():  # noqa: ANN202 - the faiss module
    import faiss

    return faiss


class _Threads:
    """One OMP thread for single interactive queries (two were slower under load)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        faiss = _faiss()
        self.prev = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        _faiss().omp_set_num_threads(self.prev)


def _nlist_for(n: int) -> int:
    return int(min(max(64, 4 * math.sqrt(n)), max(64, n // 39), 65536))


def _as_matrix(vectors: Any, dim: int) -> np.ndarray:
    m = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if m.ndim != 2 or (len(m) and m.shape[1] != dim):
        raise ValueError(f"expected vectors of shape (n, {dim}), got {m.shape}")
    return m


class VectorIndex:
    """A FAISS index of one model's vectors, keyed by ``memories.key``."""

    def __init__(self, dim: int, index: Any = None, *, model: str = "") -> None:
        self.dim = dim
        self.model = model
        self.recall: float | None = None  # measured at build for approximate indexes
        self._has = np.zeros(0, dtype=bool)  # by key
        self.index = index if index is not None else self._flat()
        if index is not None:
            self._mark(self._stored_keys(), True)

    # -- construction ------------------------------------------------------------------------

    def _flat(self) -> Any:
        faiss = _faiss()
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    @property
    def kind(self) -> str:
        return "ivf" if self.is_ivf else "flat"

    @property
    def is_ivf(self) -> bool:
        return isinstance(self.index, _faiss().IndexIVF)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @classmethod
    def build(
        cls,
        keys: Any,
        vectors: Any,
        *,
        dim: int,
        model: str = "",
        kind: str = "auto",
        threshold: int = APPROX_THRESHOLD,
        nlist: int | None = None,
        seed: int = 0,
    ) -> VectorIndex:
        """An index over ``vectors`` (rows L2-normalised), flat or IVF by size unless forced."""
        keys = np.ascontiguousarray(np.asarray(keys, dtype=np.int64))
        x = _as_matrix(vectors, dim)
        n = len(keys)
        if kind == "auto":
            kind = "ivf" if n >= threshold else "flat"
        self = cls(dim, model=model)
        if kind == "flat" or n == 0:
            if n:
                self.index.add_with_ids(x, keys)
                self._mark(keys, True)
            return self
        faiss = _faiss()
        nlist = nlist or _nlist_for(n)
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = seed
        rng = np.random.default_rng(seed)
        # 40 points per centroid trains as well as faiss's default 256 here, 6x faster
        sample = x if n <= 40 * nlist else x[rng.choice(n, 40 * nlist, replace=False)]
        ivf.train(sample)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove_ids + reconstruct
        ivf.add_with_ids(x, keys)
        self.index = ivf
        self._mark(keys, True)
        self.tune(x, keys, seed=seed)
        return self

    def tune(self, x: np.ndarray, keys: np.ndarray, *, seed: int = 0, queries: int = 200) -> float:
        """Smallest nprobe whose recall@10 vs exact reaches TARGET_RECALL on sample queries.

        Queries are stored vectors plus noise (real queries are near, not on, stored points);
        ground truth is brute force over the same vectors."""
        if not self.is_ivf:
            self.recall = 1.0
            return 1.0
        faiss = _faiss()
        rng = np.random.default_rng(seed + 1)
        pick = rng.choice(len(x), min(queries, len(x)), replace=False)
        q = x[pick] + rng.normal(0, 0.05, (len(pick), self.dim)).astype(np.float32)
        faiss.normalize_L2(q)
        _, truth = faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
        truth_keys = keys[truth]
        best = self.index.nlist
        for nprobe in _NPROBES:
            if nprobe >= self.index.nlist:
                break
            self.index.nprobe = nprobe
            _, found = self.index.search(q, 10)
            rec = _recall(found, truth_keys)
            if rec >= TARGET_RECALL:
                best = nprobe
                self.recall = rec
                break
        else:
            self.recall = 1.0
        if best >= self.index.nlist:
            best, self.recall = self.index.nlist, 1.0
        self.index.nprobe = best
        log.info("IVF nlist=%d tuned to nprobe=%d (recall@10 %.3f)", self.index.nlist, best, self.recall)
        return float(self.recall or 1.0)

    # -- keys --------------------------------------------------------------------------------

    def _stored_keys(self) -> np.ndarray:
        faiss = _faiss()
        if isinstance(self.index, faiss.IndexIVF):
            inv = self.index.invlists
            parts = [
                faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy()
                for i in range(self.index.nlist)
                if inv.list_size(i)
            ]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def _mark(self, keys: np.ndarray, value: bool) -> None:
        if len(keys) == 0:
            return
        top = int(keys.max())
        if top >= len(self._has):
            grow = max(top + 1, int(len(self._has) * 1.5) + 1024)
            self._has = np.concatenate([self._has, np.zeros(grow - len(self._has), dtype=bool)])
        self._has[keys] = value

    def keys(self) -> np.ndarray:
        return np.flatnonzero(self._has).astype(np.int64)

    def contains(self, keys: Any) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        out = np.zeros(len(keys), dtype=bool)
        inside = keys < len(self._has)
        out[inside] = self._has[keys[inside]]
        return out

    # -- changes -----------------------------------------------------------------------------

    def add(self, keys: Any, vectors: Any) -> None:
        keys = np.ascontiguousarray(np.asarray(keys, dtype=np.int64))
        if len(keys) == 0:
            return
        present = self.contains(keys)
        if present.any():
            self.remove(keys[present])
        self.index.add_with_ids(_as_matrix(vectors, self.dim), keys)
        self._mark(keys, True)

    def remove(self, keys: Any) -> int:
        keys = np.asarray(keys, dtype=np.int64)
        keys = np.unique(keys[self.contains(keys)])
        if len(keys) == 0:
            return 0
        faiss = _faiss()
        # the IVF hashtable direct map accepts only an IDSelectorArray
        sel = faiss.IDSelectorArray(keys) if self.is_ivf else faiss.IDSelectorBatch(keys)
        removed = int(self.index.remove_ids(sel))
        self._mark(keys, False)
        return removed

    def needs_rebuild(self, threshold: int = APPROX_THRESHOLD) -> bool:
        """Flat grown past the threshold, IVF shrunk well below it, or IVF grown 4x past the
        size its centroids were trained for."""
        n = self.ntotal
        if not self.is_ivf:
            return n >= threshold
        trained_for = (self.index.nlist / 4) ** 2
        return n < threshold // 2 or n > 4 * max(trained_for, threshold)

    # -- search ------------------------------------------------------------------------------

    def search(
        self, query: Any, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (keys, cosine scores) among keys where ``allowed`` (a mask by key) is True.

        Approximate search that finds fewer than k allowed vectors widens ``nprobe`` (up to an
        exhaustive scan), so a selective filter still returns k when k exist."""
        faiss = _faiss()
        q = _as_matrix(np.asarray(query, dtype=np.float32).reshape(1, -1), self.dim)
        if self.ntotal == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        sel = None
        want = min(k, self.ntotal)
        if allowed is not None:
            mask = np.zeros(len(self._has), dtype=bool)
            m = min(len(allowed), len(self._has))
            mask[:m] = allowed[:m] & self._has[:m]
            n_allowed = int(mask.sum())
            if n_allowed == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            want = min(k, n_allowed)
            if n_allowed < self.ntotal:
                bits = np.packbits(mask, bitorder="little")
                sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        with _Threads(1):
            if not self.is_ivf:
                params = faiss.SearchParameters(sel=sel) if sel is not None else None
                scores, ids = self.index.search(q, k, params=params)
            else:
                nprobe = self.index.nprobe
                if sel is not None:
                    # probe about as many allowed vectors as an unfiltered search would
                    nprobe = min(self.index.nlist, math.ceil(nprobe * self.ntotal / n_allowed))
                while True:
                    params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
                    scores, ids = self.index.search(q, k, params=params)
                    if (ids[0] >= 0).sum() >= want or nprobe >= self.index.nlist:
                        break
                    nprobe = min(self.index.nlist, nprobe * 4)
        ok = ids[0] >= 0
        return ids[0][ok].astype(np.int64), scores[0][ok].astype(np.float32)

    def reconstruct(self, keys: Any) -> np.ndarray:
        """Stored vectors for ``keys`` (zeros for keys not in the index)."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        have = self.contains(keys)
        if have.any():
            out[have] = self.index.reconstruct_batch(np.ascontiguousarray(keys[have]))
        return out

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: a temp file in the same directory, then ``os.replace``."""
        faiss = _faiss()
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, dim: int, model: str = "") -> VectorIndex | None:
        """The saved index, or None when it is missing, unreadable or of another dimension."""
        faiss = _faiss()
        if not Path(path).exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            log.warning("ignoring unreadable vector index %s (%s); rebuilding", path, exc)
            return None
        if index.d != dim:
            return None
        if isinstance(index, faiss.IndexIVF) and index.direct_map.type != faiss.DirectMap.Hashtable:
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return cls(dim, index, model=model)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / max(1, truth.size)
