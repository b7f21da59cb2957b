"""Derived search state for one store, kept in memory per process and brought up to date.

The DuckDB store is the system of record. For each store a process keeps:

- a catalog: one row per memory (text, namespace, expiry, …) and boolean masks by ``key``,
- a BM25 ``KeywordIndex`` over every memory,
- one FAISS ``VectorIndex`` per embedding model (vectors of different models never mix).

Opening a DuckDB file costs ~20 ms, more than a whole query should, so a query does not touch
the store unless it changed. Change detection is two-step: the store file's and WAL's
``stat`` (microseconds; any committed write changes them), then, only if those moved, a stamp
(count and xor-hash of memory ids) and a key diff. The diff feeds incremental catch-up: new
keys are added, vanished keys removed, in the catalog and in every index. Index files are saved
atomically beside the store (``<store>.index/<store_id>/``) and caught up the same way when a
later process loads them, so they can be deleted at any time and are rebuilt from the store.
"""

from __future__ import annotations

import atexit
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import StoreLocked
from .index import VectorIndex
from .keyword import KeywordIndex
from .store import Store

log = logging.getLogger(__name__)

EXCLUDED_KINDS = ("query_context",)  # written by the engine as scratch context, never evidence
_SAVE_EVERY = 1000  # unsaved changes before an index is written again (else at exit / flush)


@dataclass(frozen=True)
class Row:
    key: int
    id: str
    namespace: str
    memory_type: str
    source: str
    title: str
    content: str
    document_id: str | None
    origin: str  # file path, URL or run id: where the passage came from
    external_id: str | None  # the id a JSONL/CSV row carried (for outside evaluation)
    kind: str | None
    importance: float
    created_at: Any
    expires_at: Any
    model: str | None

    @property
    def embed_text(self) -> str:
        return embed_text(self.title, self.content)


def embed_text(title: str, content: str) -> str:
    """What gets embedded and keyword-indexed for a passage: its title line, then its text."""
    return f"{title}\n{content}" if title and not content.startswith(title) else content


_ROW_SQL = """
    SELECT m.key, m.id, m.namespace, m.memory_type, m.source, coalesce(m.title, ''), m.content,
           m.document_id,
           coalesce(json_extract_string(m.metadata, '$.path'),
                    json_extract_string(m.metadata, '$.url'),
                    json_extract_string(m.metadata, '$.run_id'),
                    m.source),
           json_extract_string(m.metadata, '$.external_id'),
           json_extract_string(m.metadata, '$.kind'),
           coalesce(m.importance, 0.5), m.created_at, m.expires_at, m.model,
           epoch(m.expires_at), hash(m.id)
    FROM memories m
"""


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-") or "model"


def _file_sig(path: Path) -> tuple:
    out = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


class StoreIndexes:
    """Catalog + BM25 + per-model FAISS for one store path, shared by threads of a process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.store_id: str | None = None
        self.rows: dict[int, Row] = {}
        self.present = np.zeros(0, dtype=bool)
        self.excluded = np.zeros(0, dtype=bool)
        self.expires = np.zeros(0, dtype=np.float64)
        self.ns_code = np.zeros(0, dtype=np.int16)
        self.model_code = np.zeros(0, dtype=np.int16)  # -1 = no vector
        self.idh = np.zeros(0, dtype=np.uint64)
        self.namespaces: list[str] = []
        self.models: list[str] = []
        self.keyword: KeywordIndex | None = None
        self.vectors: dict[str, VectorIndex] = {}
        self._unsaved: dict[str, int] = {}
        self._sig: tuple | None = None
        self._stamp: tuple | None = None
        self._version = 0  # bumped on every catalog change (invalidates mask caches)
        # (model, namespaces) -> (version, relevance Calibration); see context/relevance.py
        self.calibrations: dict[tuple, tuple[int, Any, int]] = {}
        self._mask_cache: dict[tuple, tuple[np.ndarray, float, int]] = {}
        self._next_expiry = math.inf

    @property
    def version(self) -> int:
        """Changes whenever the catalog does (caches derived from it compare it)."""
        return self._version

    # -- files -------------------------------------------------------------------------------

    @property
    def index_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".index") / (self.store_id or "unknown")

    def _vector_path(self, model: str) -> Path:
        return self.index_dir / f"vectors-{_slug(model)}.faiss"

    def _keyword_path(self) -> Path:
        return self.index_dir / "keywords.npz"

    # -- catalog -----------------------------------------------------------------------------

    def _grow(self, top: int) -> None:
        if top < len(self.present):
            return
        cap = max(top + 1, int(len(self.present) * 1.5) + 1024)

        def ext(a: np.ndarray, fill: Any) -> np.ndarray:
            return np.concatenate([a, np.full(cap - len(a), fill, dtype=a.dtype)])

        self.present = ext(self.present, False)
        self.excluded = ext(self.excluded, False)
        self.expires = ext(self.expires, np.inf)
        self.ns_code = ext(self.ns_code, -1)
        self.model_code = ext(self.model_code, -1)
        self.idh = ext(self.idh, 0)

    def _code(self, table: list[str], value: str | None) -> int:
        if value is None:
            return -1
        try:
            return table.index(value)
        except ValueError:
            table.append(value)
            return len(table) - 1

    def _add_rows(self, raw: list[tuple]) -> np.ndarray:
        if not raw:
            return np.zeros(0, dtype=np.int64)
        keys = np.fromiter((r[0] for r in raw), dtype=np.int64, count=len(raw))
        self._grow(int(keys.max()))
        for r in raw:
            (key, mid, ns, mtype, src, title, content, doc, origin, ext_id, kind, imp, created,
             expires, model, exp_epoch, idh) = r
            self.rows[key] = Row(key, mid, ns, mtype, src, title, content, doc, origin, ext_id,
                                 kind, float(imp), created, expires, model)
            self.present[key] = True
            self.excluded[key] = kind in EXCLUDED_KINDS
            self.expires[key] = exp_epoch if exp_epoch is not None else np.inf
            self.ns_code[key] = self._code(self.namespaces, ns)
            self.model_code[key] = self._code(self.models, model)
            self.idh[key] = np.uint64(idh)
        return keys

    def _drop_rows(self, keys: np.ndarray) -> None:
        for k in keys.tolist():
            self.rows.pop(k, None)
        self.present[keys] = False
        self.model_code[keys] = -1

    def keys_with_model(self, model: str) -> np.ndarray:
        if model not in self.models:
            return np.zeros(0, dtype=np.int64)
        code = self.models.index(model)
        return np.flatnonzero(self.present & (self.model_code == code)).astype(np.int64)

    def keys_without_model(self, model: str) -> np.ndarray:
        code = self.models.index(model) if model in self.models else -2
        return np.flatnonzero(self.present & (self.model_code != code)).astype(np.int64)

    # -- refresh -----------------------------------------------------------------------------

    def refresh(self, store: Store, *, force: bool = False) -> bool:
        """Catch up with the store if it changed. Returns True if anything changed.

        When another process holds the store past its lock timeout and we already have a
        catalog, we keep serving it (reads never fail on a lock) and try again next time."""
        with self.lock:
            sig = _file_sig(self.path)
            if not force and sig == self._sig and self.keyword is not None:
                return False
            try:
                changed = self._refresh(store, sig)
            except StoreLocked:
                if self.keyword is None:
                    raise
                log.warning("store %s is busy; searching the last loaded state", self.path)
                return False
            return changed

    def _refresh(self, store: Store, sig: tuple) -> bool:
        with store.connect() as con:
            if self.store_id is None:
                self.store_id = store.store_id()
            stamp = con.execute(
                "SELECT count(*), coalesce(bit_xor(hash(id)), 0), "
                "coalesce(bit_xor(hash(id || coalesce(model, ''))), 0) FROM memories"
            ).fetchone()
            if stamp == self._stamp and self.keyword is not None:
                self._sig = sig
                return False
            cur = con.execute("SELECT key, hash(id), model FROM memories").fetchnumpy()
            skeys = np.asarray(cur["key"], dtype=np.int64)
            sidh = np.asarray(cur["hash(id)"], dtype=np.uint64)
            smodel = list(cur["model"])
            if len(skeys):
                self._grow(int(skeys.max()))
            # vanished keys, and keys whose memory id changed (a store recreated at this path)
            in_store = np.zeros(len(self.present), dtype=bool)
            in_store[skeys] = True
            gone = np.flatnonzero(self.present & ~in_store)
            same = self.present[skeys] & (self.idh[skeys] == sidh)
            replaced = skeys[self.present[skeys] & ~same]
            new = skeys[~same]
            # model changes on keys we keep (re-embedding) only touch model codes
            keep = skeys[same]
            if len(keep):
                kept_models = [smodel[i] for i in np.flatnonzero(same)]
                self.model_code[keep] = [self._code(self.models, m) for m in kept_models]
            drop = np.concatenate([gone, replaced]).astype(np.int64)
            if len(drop):
                self._drop_rows(drop)
            raw: list[tuple] = []
            if len(new):
                import pyarrow as pa

                con.register("_want_keys", pa.table({"key": new}))
                try:
                    raw = con.execute(
                        _ROW_SQL + " JOIN _want_keys w ON w.key = m.key"
                    ).fetchall()
                finally:
                    con.unregister("_want_keys")
            added = self._add_rows(raw)
            self._sig, self._stamp = sig, stamp
            self._version += 1
            self._mask_cache.clear()
            live = self.expires[self.present]
            future = live[np.isfinite(live)]
            self._next_expiry = float(future.min()) if len(future) else math.inf
            self._sync_keyword(drop, added)
            for model in list(self.vectors):
                self._sync_vectors(con, model)
            return True

    def _sync_keyword(self, drop: np.ndarray, added: np.ndarray) -> None:
        if self.keyword is None:
            loaded = KeywordIndex.load(self._keyword_path())
            if loaded is None:
                kw = KeywordIndex()
                keys = np.flatnonzero(self.present)
                kw.add(keys, (self.rows[int(k)].embed_text for k in keys))
                self.keyword = kw
                self._unsaved["keywords"] = max(len(keys), 1)
                self._maybe_save_keyword(force=True)
                return
            # the file may be older than the store: compare key sets, not deltas
            self.keyword = loaded
            lk = loaded.keys()
            drop = lk[~_in_mask(lk, self.present)]
            added = np.flatnonzero(self.present & ~_in_mask(np.arange(len(self.present)), loaded.alive))
        n = 0
        if len(drop):
            n += self.keyword.remove(drop)
        if len(added):
            self.keyword.add(added, (self.rows[int(k)].embed_text for k in added))
            n += len(added)
        if n:
            self._unsaved["keywords"] = self._unsaved.get("keywords", 0) + n
            self._maybe_save_keyword()

    def _maybe_save_keyword(self, force: bool = False) -> None:
        n = self._unsaved.get("keywords", 0)
        if self.keyword is not None and n and (force or n >= _SAVE_EVERY):
            self.keyword.save(self._keyword_path())
            self._unsaved["keywords"] = 0

    # -- vectors -----------------------------------------------------------------------------

    def vector_index(self, store: Store, model: str, dim: int) -> VectorIndex:
        """The FAISS index for ``model``, loaded or built, caught up with the catalog."""
        with self.lock:
            if model not in self.vectors:
                vi = VectorIndex.load(self._vector_path(model), dim=dim, model=model)
                if vi is None:
                    vi = self._build_vectors(store, model, dim)
                self.vectors[model] = vi
                with store.connect() as con:
                    self._sync_vectors(con, model)
            return self.vectors[model]

    def _fetch_vectors(self, con: Any, keys: np.ndarray, model: str) -> tuple[np.ndarray, np.ndarray]:
        import pyarrow as pa

        con.register("_vec_keys", pa.table({"key": keys.astype(np.int64)}))
        try:
            tab = con.sql(
                "SELECT m.key, m.embedding FROM memories m JOIN _vec_keys w ON w.key = m.key "
                "WHERE m.model = $model AND m.embedding IS NOT NULL ORDER BY m.key",
                params={"model": model},
            ).to_arrow_table()
        finally:
            con.unregister("_vec_keys")
        return _matrix(tab)

    def _build_vectors(self, store: Store, model: str, dim: int) -> VectorIndex:
        with store.connect() as con:
            tab = con.sql(
                "SELECT key, embedding FROM memories WHERE model = $model AND embedding IS NOT NULL "
                "ORDER BY key",
                params={"model": model},
            ).to_arrow_table()
        keys, x = _matrix(tab)
        if len(x) and x.shape[1] != dim:
            dim = x.shape[1]
        vi = VectorIndex.build(keys, x.reshape(-1, dim), dim=dim, model=model)
        self._unsaved[model] = max(len(keys), 1)
        self._save_vectors(model, vi, force=True)
        return vi

    def _sync_vectors(self, con: Any, model: str) -> None:
        vi = self.vectors[model]
        want = self.keys_with_model(model)
        has = vi.keys()
        want_mask = np.zeros(len(self.present), dtype=bool)
        want_mask[want] = True
        stale = has[~_in_mask(has, want_mask)]
        missing = want[~vi.contains(want)]
        n = 0
        if len(stale):
            n += vi.remove(stale)
        if len(missing):
            keys, x = self._fetch_vectors(con, missing, model)
            if len(keys):
                vi.add(keys, x)
                n += len(keys)
        if vi.needs_rebuild():
            keys = vi.keys()
            x = vi.reconstruct(keys)
            vi = VectorIndex.build(keys, x, dim=vi.dim, model=model)
            self.vectors[model] = vi
            n = max(n, 1)
            self._unsaved[model] = self._unsaved.get(model, 0) + _SAVE_EVERY
        if n:
            self._unsaved[model] = self._unsaved.get(model, 0) + n
            self._save_vectors(model, self.vectors[model])

    def _save_vectors(self, model: str, vi: VectorIndex, force: bool = False) -> None:
        n = self._unsaved.get(model, 0)
        if n and (force or n >= _SAVE_EVERY):
            vi.save(self._vector_path(model))
            self._unsaved[model] = 0

    def flush(self) -> None:
        """Write every index with unsaved changes (at exit, after ingestion, after forget)."""
        with self.lock:
            if self.store_id is None:
                return
            self._maybe_save_keyword(force=True)
            for model, vi in self.vectors.items():
                self._save_vectors(model, vi, force=True)

    # -- direct changes (this process) -------------------------------------------------------

    def forget_keys(self, keys: Sequence[int]) -> None:
        """Remove keys from the catalog and every index now (the store rows are gone)."""
        with self.lock:
            keys = np.asarray(keys, dtype=np.int64)
            keys = keys[(keys < len(self.present))]
            keys = keys[self.present[keys]]
            if not len(keys):
                return
            self._drop_rows(keys)
            self._version += 1
            self._mask_cache.clear()
            if self.keyword is not None:
                self.keyword.remove(keys)
                self._unsaved["keywords"] = self._unsaved.get("keywords", 0) + len(keys)
            for model, vi in self.vectors.items():
                if vi.remove(keys):
                    self._unsaved[model] = self._unsaved.get(model, 0) + len(keys)
            # the stamp no longer matches our state: make the next refresh re-check
            self._stamp = None
            if sum(len(v) for v in self.vectors.values()) < 100_000:
                self.flush()  # small: save now, so another process loads no forgotten vector

    # -- filters -----------------------------------------------------------------------------

    def allowed(self, namespaces: Sequence[str] | None, now: float | None = None) -> np.ndarray:
        """Mask by key: present, not excluded, not expired, in ``namespaces`` (all if None)."""
        now = time.time() if now is None else now
        key = (tuple(sorted(namespaces)) if namespaces else None,)
        hit = self._mask_cache.get(key)
        if hit is not None and hit[2] == self._version and now < hit[1]:
            return hit[0]
        mask = self.present & ~self.excluded & (self.expires > now)
        if namespaces:
            codes = [self.namespaces.index(n) for n in namespaces if n in self.namespaces]
            mask &= np.isin(self.ns_code, codes)
        live = self.expires[mask]
        future = live[np.isfinite(live) & (live > now)]
        valid_until = float(future.min()) if len(future) else math.inf
        self._mask_cache[key] = (mask, valid_until, self._version)
        return mask


_cache: dict[str, StoreIndexes] = {}
_cache_lock = threading.Lock()


def indexes_for(store: Store) -> StoreIndexes:
    """The process's derived state for ``store`` (created on first use)."""
    path = store.path.expanduser().absolute()
    key = str(path)
    with _cache_lock:
        si = _cache.get(key)
        if si is None:
            si = _cache[key] = StoreIndexes(path)
        return si


def open_indexes(store: Store) -> StoreIndexes:
    if getattr(store, "is_postgres", False):  # searched in SQL (memory/pg_search.py)
        return store.indexes()
    si = indexes_for(store)
    si.refresh(store)
    return si


def forget_keys(store: Store, keys: Sequence[int]) -> None:
    """Drop deleted memories from this process's indexes, if it has any for ``store``."""
    with _cache_lock:
        si = _cache.get(str(store.path.expanduser().absolute()))
    if si is None or si.keyword is None:
        return
    # Called while the store's own lock may be held; refresh takes our lock and then the
    # store's, so never wait here: if busy, the next refresh finds the deletions by diff.
    if si.lock.acquire(blocking=False):
        try:
            si.forget_keys(keys)
        finally:
            si.lock.release()
    else:
        si._sig = None


def drop_cached(store: Store | None = None) -> None:
    """Forget in-process state (tests; a store file deleted under us)."""
    with _cache_lock:
        if store is None:
            _cache.clear()
        else:
            _cache.pop(str(store.path.expanduser().absolute()), None)


def flush_all() -> None:
    with _cache_lock:
        items = list(_cache.values())
    for si in items:
        try:
            si.flush()
        except Exception as exc:  # noqa: BLE001 - best effort at exit; indexes are rebuildable
            log.warning("could not save the index for %s: %s", si.path, exc)


atexit.register(flush_all)


def _in_mask(keys: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask[keys]`` where keys beyond the mask count as False."""
    out = np.zeros(len(keys), dtype=bool)
    inside = keys < len(mask)
    out[inside] = mask[keys[inside]]
    return out


def _matrix(tab: Any) -> tuple[np.ndarray, np.ndarray]:
    """(keys, float32 matrix) from an Arrow table with ``key`` and ``embedding`` columns."""
    import pyarrow as pa

    keys = np.asarray(tab.column("key").to_numpy(), dtype=np.int64)
    if not len(keys):
        return keys, np.zeros((0, 0), dtype=np.float32)
    col = tab.column("embedding").combine_chunks()
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0)
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return keys, flat.reshape(len(keys), -1)

