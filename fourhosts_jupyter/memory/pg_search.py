"""Search candidates for a PostgreSQL store, in the shape ``context/select.py`` reads from
``retriever.StoreIndexes``: the catalog rows of the hits, a filter standing for the mask, a
vector index (pgvector HNSW, cosine) and a keyword index (full-text search).

Nothing is kept in the process but the rows of recent hits: other kernels write the same
tables, so every query asks the database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .pg_migrations import DIM
from .retriever import EXCLUDED_KINDS, Row

_ROW_COLS = """m.key, m.id, m.namespace, m.memory_type, m.source, coalesce(m.title, ''), m.content,
    m.document_id,
    coalesce(m.metadata->>'path', m.metadata->>'url', m.metadata->>'run_id', m.source),
    m.metadata->>'external_id', m.metadata->>'kind', coalesce(m.importance, 0.5), m.created_at,
    m.expires_at, m.model"""
# ts_rank_cd normalisation 1: divide by 1 + log(document length), BM25's length penalty in
# spirit; terms are OR-ed (plainto_tsquery AND-s them) because BM25 scores any shared term
_TSQUERY = "nullif(replace(plainto_tsquery('english', %s)::text, '&', '|'), '')::tsquery"
_RANK_NORMALISATION = 1
# memories without the given model's vectors: two ranges and NULL rather than <>, so each side
# can take the index on model (every search asks this first)
WITHOUT_MODEL = "m.model < %s OR m.model > %s OR m.model IS NULL"


@dataclass(frozen=True)
class PgFilter:
    """What ``StoreIndexes.allowed`` gives as a mask: here the SQL filter's parameters."""

    store: Any
    namespaces: tuple[str, ...] | None
    now: float | None = None  # epoch seconds the expiry is judged at (None: the query's time)

    def where(self) -> tuple[str, list[Any]]:
        import datetime as dt

        from .store import utcnow

        at = utcnow() if self.now is None else (
            dt.datetime.fromtimestamp(self.now, tz=dt.timezone.utc).replace(tzinfo=None))
        sql = ["(m.expires_at IS NULL OR m.expires_at > %s)",
               "coalesce(m.metadata->>'kind', '') <> ALL(%s)"]
        params: list[Any] = [at, list(EXCLUDED_KINDS)]
        if self.namespaces:
            sql.append("m.namespace = ANY(%s)")
            params.append(list(self.namespaces))
        return " AND ".join(sql), params

    def sum(self) -> int:
        where, params = self.where()
        with self.store.connect() as con:
            return con.execute(f"SELECT count(*) FROM memories m WHERE {where}", params).fetchone()[0]


class PgIndexes:
    """Per-store search state of one process: a lock, recent hits' rows, calibrations."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.lock = threading.RLock()
        self.rows: dict[int, Row] = {}
        self.calibrations: dict[tuple, tuple[int, Any, int]] = {}
        self.keyword = PgKeyword(self)
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    @property
    def index_dir(self) -> Path:
        from .store import state_dir

        return state_dir() / "pg-index" / self.store.store_id()

    def refresh(self, store: Any = None, *, force: bool = False) -> bool:
        self._version += 1  # the database may have changed under us: calibrations re-check
        return True

    def allowed(self, namespaces: Sequence[str] | None, now: float | None = None) -> PgFilter:
        return PgFilter(self.store, tuple(sorted(namespaces)) if namespaces else None, now)

    def keys_without_model(self, model: str) -> np.ndarray:
        with self.store.connect() as con:
            rows = con.execute(
                f"SELECT {_ROW_COLS} FROM memories m WHERE {WITHOUT_MODEL}", [model, model]
            ).fetchall()
        for r in rows:
            self.rows[r[0]] = Row(*r)
        return np.array([r[0] for r in rows], dtype=np.int64)

    def vector_index(self, store: Any, model: str, dim: int) -> PgVectors:
        return PgVectors(self, model, dim)

    def _remember(self, rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        keys, scores = [], []
        for r in rows:
            self.rows[r[0]] = Row(*r[:15])
            keys.append(r[0])
            scores.append(float(r[15]))
        return np.array(keys, dtype=np.int64), np.array(scores, dtype=np.float32)

    def flush(self) -> None:  # nothing derived is kept on disk
        return None


class PgVectors:
    """pgvector search for one model; scores are cosines like the FAISS index's."""

    def __init__(self, si: PgIndexes, model: str, dim: int) -> None:
        self.si, self.model, self.dim = si, model, dim

    def __len__(self) -> int:
        with self.si.store.connect() as con:
            return con.execute("SELECT count(*) FROM memories WHERE model = %s AND embedding IS NOT NULL",
                               [self.model]).fetchone()[0]

    def query(self, qvec: Any, k: int, mask: PgFilter) -> tuple[str, list[Any]]:
        """The SQL (and its parameters) of ``search``."""
        from pgvector import Vector

        q = Vector(np.asarray(qvec, dtype=np.float32))
        where, params = mask.where()
        # the HNSW index is over embedding::vector(384) where the dimension is 384: the query
        # must use the same expression for the planner to take it
        if self.dim == DIM:
            dist = f"(m.embedding::vector({DIM})) <=> %s::vector({DIM})"
            where += f" AND vector_dims(m.embedding) = {DIM}"
        else:
            dist = "m.embedding <=> %s"
        return (f"SELECT {_ROW_COLS}, 1 - ({dist}) AS score FROM memories m "
                f"WHERE m.model = %s AND {where} ORDER BY {dist} LIMIT %s",
                [q, self.model, *params, q, int(k)])

    def search(self, qvec: Any, k: int, mask: PgFilter) -> tuple[np.ndarray, np.ndarray]:
        sql, params = self.query(qvec, k, mask)
        with self.si.store.connect() as con:
            # ef_search bounds how many candidates HNSW returns before the filter applies
            con.execute(f"SET LOCAL hnsw.ef_search = {max(40, min(int(k), 1000))}")
            rows = con.execute(sql, params).fetchall()
        return self.si._remember(rows)

    def reconstruct(self, keys: Sequence[int]) -> np.ndarray:
        with self.si.store.connect() as con:
            got = dict(con.execute(
                "SELECT key, embedding FROM memories WHERE key = ANY(%s)", [[int(k) for k in keys]]
            ).fetchall())
        return np.stack([np.asarray(got[int(k)].to_numpy(), dtype=np.float32) for k in keys])


class PgKeyword:
    """Full-text search: GIN over the stored tsvector, ranked by ts_rank_cd."""

    def __init__(self, si: PgIndexes) -> None:
        self.si = si

    def passages(self) -> int:
        with self.si.store.connect() as con:
            return int(con.execute("SELECT count(*) FROM memories").fetchone()[0])

    def holding(self, word: str, limit: int) -> set[int] | None:
        """Keys of the passages holding ``word`` (PostgreSQL's own English parsing, as the
        stored tsvector); None when more than ``limit`` do."""
        with self.si.store.connect() as con:
            rows = con.execute(
                "SELECT key FROM memories WHERE tsv @@ plainto_tsquery('english', %s) LIMIT %s",
                [word, int(limit) + 1],
            ).fetchall()
        return None if len(rows) > limit else {int(r[0]) for r in rows}

    def search(self, query: str, k: int, mask: PgFilter) -> tuple[np.ndarray, np.ndarray]:
        where, params = mask.where()
        with self.si.store.connect() as con:
            rows = con.execute(
                f"""WITH q AS (SELECT {_TSQUERY} AS q)
                    SELECT {_ROW_COLS}, ts_rank_cd(m.tsv, q.q, {_RANK_NORMALISATION}) AS score
                    FROM memories m, q WHERE m.tsv @@ q.q AND {where}
                    ORDER BY score DESC, m.key LIMIT %s""",
                [query, *params, int(k)],
            ).fetchall()
        return self.si._remember(rows)
