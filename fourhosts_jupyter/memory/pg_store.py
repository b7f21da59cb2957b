"""The shared store: PostgreSQL + pgvector, for a team whose kernels and workers write one
memory at once (DuckDB allows one writing process).

Same methods as the DuckDB ``Store`` for what select/retriever/cli use (see ``backends.py``);
search candidates come from SQL instead of in-process indexes: pgvector's HNSW (cosine) for
dense, PostgreSQL full-text search (``tsvector`` + GIN, ``ts_rank_cd`` with length
normalisation, terms OR-ed like BM25) for keywords. Fusion, host boosts and MMR stay in
``context/select.py`` above them. psycopg is imported only when such a store is opened.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import StorageError, StoreNewerSchema, StoreUnreadable
from ..redact import redact
from .pg_compat import Connection
from .pg_migrations import PG_MIGRATIONS, SCHEMA
from .store import MemoryRecord, content_hash, pick_run, utcnow

_pools: dict[str, Any] = {}
_pools_guard = threading.Lock()
_MEM_COLS = ("id", "namespace", "memory_type", "content", "metadata", "importance", "source",
             "document_id", "title", "content_hash", "embedding", "model", "created_at",
             "expires_at")


def _configure(con: Any) -> None:
    from pgvector.psycopg import register_vector

    con.execute(f"SET search_path TO {SCHEMA}, public")
    con.commit()
    register_vector(con)


def _pool(url: str) -> Any:
    """One pool per URL per process (a kernel's threads share it)."""
    with _pools_guard:
        pool = _pools.get(url)
        if pool is None:
            import psycopg
            from psycopg_pool import ConnectionPool

            # the vector type must exist before the pool's connections register its adapter
            try:
                with psycopg.connect(url, autocommit=True) as con:
                    con.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            except psycopg.Error as exc:
                raise StoreUnreadable(
                    f"cannot open the PostgreSQL store {redact(url)}: {str(exc).strip().splitlines()[0]}. "
                    "Check the URL, that the server runs, and that pgvector is installed there."
                ) from exc
            pool = ConnectionPool(url, min_size=1, max_size=4, configure=_configure, open=True)
            _pools[url] = pool
        return pool


def close_pool(url: str) -> None:
    """Close this process's pool for ``url`` (a test dropping its database; a server allows
    ~100 connections, and each pool keeps one open)."""
    with _pools_guard:
        pool = _pools.pop(url, None)
    if pool is not None:
        pool.close()


def close_pools() -> None:
    """Close every pool of this process (tests stopping their server)."""
    with _pools_guard:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class PgStore:
    """A PostgreSQL database holding our schema ``fourhosts``. Cheap to construct."""

    is_postgres = True

    def __init__(self, url: str, *, lock_timeout: float = 15.0):
        self.url = url
        self.lock_timeout = lock_timeout  # kept for the interface; PostgreSQL has no file lock
        self._migrated = False
        self._indexes: Any = None

    def __repr__(self) -> str:
        return f"PgStore({redact(self.url)!r})"

    @property
    def location(self) -> str:
        return self.url

    @property
    def path(self) -> Any:
        """Code that opens the DuckDB file directly reaches for it: say so."""
        raise StorageError(
            f"this needs a DuckDB store: the PostgreSQL store {redact(self.url)} has no file. "
            "Give --store (or FOURHOSTS_STORE) a DuckDB file path for it."
        )

    # -- connections -------------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A pooled connection inside one transaction (committed at the end, rolled back on error)."""
        import psycopg

        with _pool(self.url).connection() as con:
            if not self._migrated:
                self._migrate(con)
            try:
                yield Connection(con)
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn,
                    psycopg.errors.UndefinedFunction, psycopg.errors.SyntaxError,
                    psycopg.ProgrammingError) as exc:
                # DuckDB SQL of a feature not ported to PostgreSQL yet (see backends.py)
                raise StorageError(
                    f"this needs a DuckDB store: it is not available on the PostgreSQL store "
                    f"{redact(self.url)} yet ({type(exc).__name__}). Give --store (or "
                    f"FOURHOSTS_STORE) a DuckDB file path for it."
                ) from exc

    transaction = connect  # every pooled use is a transaction already

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Nothing to hold: each operation takes its own pooled connection. (Holding one here
        while the operations inside take theirs starved the pool: two batch items writing
        memories at once each held one and waited for more, until PoolTimeout.)"""
        yield

    def _migrate(self, con: Any) -> None:
        # one kernel migrates at a time; the others wait for it, then see the steps applied
        con.execute("SELECT pg_advisory_xact_lock(hashtext('fourhosts._migrations'))")
        con.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}._migrations "
                    "(name TEXT PRIMARY KEY, applied_at TIMESTAMP)")
        applied = {r[0] for r in con.execute(f"SELECT name FROM {SCHEMA}._migrations").fetchall()}
        unknown = sorted(applied - {m.__name__ for m in PG_MIGRATIONS})
        if unknown:
            raise StoreNewerSchema(
                f"the PostgreSQL store {redact(self.url)} was written by a newer fourhosts-jupyter "
                f"(schema step {unknown[-1]!r} is unknown here). Upgrade: pip install -U "
                "fourhosts-jupyter. Nothing was changed."
            )
        for migration in PG_MIGRATIONS:
            if migration.__name__ not in applied:
                migration(con)
                con.execute(f"INSERT INTO {SCHEMA}._migrations VALUES (%s, %s)",
                            [migration.__name__, utcnow()])
        con.commit()
        self._migrated = True

    def schema_version(self) -> list[str]:
        with self.connect() as con:
            return [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]

    def store_id(self) -> str:
        with self.connect() as con:
            return con.execute("SELECT value FROM store_info WHERE name = 'store_id'").fetchone()[0]

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, run_id: str, question: str, options: dict[str, Any]) -> None:
        with self.connect() as con:
            con.execute(
                "INSERT INTO runs (id, question, options, status, started_at) "
                "VALUES (%s, %s, %s, 'running', %s)",
                [run_id, question, json.dumps(options), utcnow()],
            )

    def finish_run(self, run_id: str, *, status: str, classification: dict[str, Any] | None,
                   paradigm: str | None, provider: str | None, model: str | None, answer: str,
                   sources: list[dict[str, Any]], usage: dict[str, Any], cost_usd: float | None,
                   timings: dict[str, float], error: str | None,
                   events: Sequence[tuple[int, str, float, dict[str, Any]]]) -> None:
        """The run's outcome, its event log and its ledger rows in one transaction."""
        with self.connect() as con:
            con.execute(
                """UPDATE runs SET classification = %s, paradigm = %s, provider = %s, model = %s,
                       status = %s, answer = %s, sources = %s, usage = %s, cost_usd = %s,
                       timings = %s, error = %s, finished_at = %s WHERE id = %s""",
                [json.dumps(classification) if classification else None, paradigm, provider,
                 model, status, answer, json.dumps(sources), json.dumps(usage), cost_usd,
                 json.dumps(timings), redact(error) if error else None, utcnow(), run_id],
            )
            if events:
                with con.cursor().copy(
                    "COPY run_events (run_id, seq, type, at_s, payload) FROM STDIN"
                ) as copy:
                    for seq, typ, at, payload in events:
                        copy.write_row([run_id, seq, typ, at, redact(json.dumps(payload))])
            from .ledger import fill

            fill(con, run_id)  # its tokens and cost in the ledger, with the run or not at all

    def runs(self, limit: int = 50):  # noqa: ANN201 - pandas.DataFrame
        return self._df(
            """SELECT id, started_at, status,
                      (SELECT e.payload->>'kind' FROM run_events e WHERE e.run_id = runs.id
                       AND e.type = 'error' LIMIT 1) AS error_kind,
                      paradigm, provider, model, question, length(answer) AS answer_chars,
                      jsonb_array_length(sources) AS sources, cost_usd, error
               FROM runs ORDER BY started_at DESC LIMIT %s""",
            [limit],
        )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """As ``Store.get_run``: by id or unique prefix; an ambiguous prefix is a ConfigError."""
        if not run_id.strip():
            return None
        with self.connect() as con:
            cur = con.execute(
                "SELECT *, (SELECT e.payload->>'kind' FROM run_events e WHERE e.run_id = runs.id "
                "AND e.type = 'error' LIMIT 1) AS error_kind FROM runs "
                "WHERE starts_with(id, %s) ORDER BY id = %s DESC, started_at DESC LIMIT 2",
                [run_id, run_id],
            )
            run = pick_run(run_id, [d.name for d in cur.description], cur.fetchall())
            if run is None:
                return None
            ev = con.execute(
                "SELECT seq, type, at_s, payload FROM run_events WHERE run_id = %s ORDER BY seq",
                [run["id"]],
            ).fetchall()
        run["events"] = [{"seq": s, "type": t, "at": a, "payload": p} for s, t, a, p in ev]
        return run

    def add_feedback(self, run_id: str, rating: int, comment: str = "") -> None:
        with self.connect() as con:
            con.execute("INSERT INTO feedback VALUES (%s, %s, %s, %s)",
                        [run_id, int(rating), comment, utcnow()])

    # -- memories ----------------------------------------------------------------------------

    def add_memories(self, records: Sequence[MemoryRecord], embeddings: Any = None,
                     model: str | None = None) -> list[str]:
        """Bulk insert: binary COPY into a temporary table, then one INSERT … ON CONFLICT DO
        NOTHING, so content already stored in a namespace (by this or another writer at the
        same moment) is skipped. Returns the ids actually inserted."""
        if not records:
            return []
        import psycopg

        for attempt in range(8):
            try:
                with self.connect() as con:
                    return self.insert_memories(con, records, embeddings, model)
            except psycopg.errors.DeadlockDetected:
                # two writers inserting the same texts in different orders: one is chosen to
                # fail, its whole batch rolled back; it tries again after a short random wait
                if attempt == 7:
                    raise
                time.sleep(0.05 * (attempt + 1) * (0.5 + random.random()))
        return []

    def insert_memories(self, con: Any, records: Sequence[MemoryRecord], embeddings: Any = None,
                        model: str | None = None) -> list[str]:
        if not records:
            return []
        from pgvector import Vector

        from .store import _dump_metadata

        arr = None
        if embeddings is not None:
            arr = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
            if arr.shape[0] != len(records):
                raise ValueError(f"{len(records)} records but {arr.shape[0]} embeddings")
        now = utcnow()
        metadata = _dump_metadata(records)
        con.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _mem_in (id TEXT, namespace TEXT, memory_type TEXT, "
            "content TEXT, metadata TEXT, importance FLOAT8, source TEXT, document_id TEXT, "
            "title TEXT, content_hash TEXT, embedding vector, model TEXT, created_at TIMESTAMP, "
            "expires_at TIMESTAMP) ON COMMIT DELETE ROWS"
        )
        cols = ", ".join(_MEM_COLS)
        with con.cursor().copy(f"COPY _mem_in ({cols}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            # metadata goes as its JSON text (a str given as jsonb would become a JSON string)
            copy.set_types(["text", "text", "text", "text", "text", "float8", "text", "text",
                            "text", "text", "vector", "text", "timestamp", "timestamp"])
            for i, r in enumerate(records):
                copy.write_row([
                    r.id, r.namespace, r.memory_type, r.content, metadata[i],
                    float(r.importance), r.source, r.document_id, r.title,
                    content_hash(r.content), None if arr is None else Vector(arr[i]),
                    None if arr is None else model, r.created_at or now, r.expires_at,
                ])
        # the first of each (namespace, hash) in the batch, in batch order, keeps its key order
        picked = cols.replace("metadata", "metadata::jsonb")
        inserted = con.execute(
            f"""INSERT INTO memories ({cols})
                SELECT {picked} FROM (SELECT DISTINCT ON (namespace, content_hash) *, ctid AS c
                                    FROM _mem_in ORDER BY namespace, content_hash, ctid) d
                ORDER BY c
                ON CONFLICT DO NOTHING RETURNING id"""
        ).fetchall()
        got = {r[0] for r in inserted}
        return [r.id for r in records if r.id in got]

    def update_embeddings(self, keys: Sequence[int], embeddings: Any, model: str) -> int:
        from pgvector import Vector

        arr = np.asarray(embeddings, dtype=np.float32)
        if len(keys) == 0:
            return 0
        with self.connect() as con:
            cur = con.cursor()
            cur.executemany("UPDATE memories SET embedding = %s, model = %s WHERE key = %s",
                            [(Vector(v), model, int(k)) for k, v in zip(keys, arr)])
            return len(keys)

    def count_memories(self) -> int:
        with self.connect() as con:
            return con.execute("SELECT count(*) FROM memories").fetchone()[0]

    def _live(self, namespace: str | None, memory_type: str | None,
              source: str | None) -> tuple[str, list[Any]]:
        where, params = ["(expires_at IS NULL OR expires_at > %s)"], [utcnow()]
        for col, val in (("namespace", namespace), ("memory_type", memory_type), ("source", source)):
            if val:
                where.append(f"{col} = %s")
                params.append(val)
        return " AND ".join(where), params

    def memories(self, *, namespace: str | None = None, memory_type: str | None = None,
                 source: str | None = None, limit: int | None = 1000, offset: int = 0):  # noqa: ANN201
        where, params = self._live(namespace, memory_type, source)
        sql = (f"SELECT id, namespace, memory_type, source, title, content, importance, created_at, "
               f"expires_at, document_id FROM memories WHERE {where} ORDER BY created_at DESC, key")
        if limit:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return self._df(sql, params)

    def count_live_memories(self, *, namespace: str | None = None, memory_type: str | None = None,
                            source: str | None = None) -> int:
        where, params = self._live(namespace, memory_type, source)
        with self.connect() as con:
            return con.execute(f"SELECT count(*) FROM memories WHERE {where}", params).fetchone()[0]

    def get_memories(self, ids: Sequence[str]):  # noqa: ANN201 - pandas.DataFrame
        df = self._df(
            "SELECT id, key, namespace, memory_type, source, title, content, metadata::text AS metadata, "
            "importance, document_id FROM memories WHERE id = ANY(%s)", [list(ids)]
        )
        return df

    def forget(self, ids: Sequence[str]) -> int:
        with self.connect() as con:
            n = len(con.execute("DELETE FROM memories WHERE id = ANY(%s) RETURNING key",
                                [list(ids)]).fetchall())
            held = [r[0] for r in con.execute(
                "DELETE FROM document_passages WHERE memory_id = ANY(%s) RETURNING document_id",
                [list(ids)]).fetchall()]
            if held:
                con.execute(
                    "DELETE FROM documents d WHERE d.id = ANY(%s) AND NOT EXISTS "
                    "(SELECT 1 FROM document_passages r WHERE r.document_id = d.id)", [held])
                con.execute(
                    "UPDATE documents SET chunk_count = (SELECT count(*) FROM document_passages r "
                    "WHERE r.document_id = documents.id) WHERE id = ANY(%s)", [held])
        return n

    def purge_expired(self) -> int:
        with self.connect() as con:
            return len(con.execute(
                "DELETE FROM memories WHERE expires_at IS NOT NULL AND expires_at <= %s RETURNING key",
                [utcnow()]).fetchall())

    def _df(self, sql: str, params: Sequence[Any] = ()):  # noqa: ANN202 - pandas.DataFrame
        import pandas as pd

        with self.connect() as con:
            cur = con.execute(sql, params)
            cols = [d.name for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    # -- search (what select.search reads) ---------------------------------------------------

    def indexes(self) -> Any:
        """The search side, in the shape of ``retriever.StoreIndexes`` that select uses."""
        if self._indexes is None:
            from .pg_search import PgIndexes

            self._indexes = PgIndexes(self)
        return self._indexes
