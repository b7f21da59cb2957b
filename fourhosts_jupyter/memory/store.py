"""The DuckDB store: the system of record for runs, memories and documents.

DuckDB lets only one *process* hold a database file open. Several kernels on one store are
normal for an analyst, so the store never keeps a connection open between operations: each
operation opens, works and closes, and an open that meets another process's lock is retried
with backoff for up to ``lock_timeout`` seconds before raising StoreLocked with advice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb

from ..errors import StoreForeign, StoreFull, StoreLocked, StoreNewerSchema, StoreUnreadable
from ..redact import redact
from .migrations import MIGRATIONS

STATE_ENV = "FOURHOSTS_HOME"
STORE_FILENAME = "store.duckdb"


def state_dir() -> Path:
    """``$FOURHOSTS_HOME`` if set, else the user's data directory."""
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("fourhosts-jupyter", appauthor=False))


def default_store_path() -> Path:
    return state_dir() / STORE_FILENAME


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def new_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class MemoryRecord:
    id: str
    namespace: str
    memory_type: str
    content: str
    source: str
    title: str = ""
    metadata: dict[str, Any] | None = None
    importance: float = 0.5
    document_id: str | None = None
    expires_at: dt.datetime | None = None
    created_at: dt.datetime | None = None  # None: now; a store copy keeps the original's


# One lock per store path per process: DuckDB connections inside a process share one instance,
# and serialising our own short operations keeps writers from tripping over each other.
_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: str) -> threading.RLock:
    with _locks_guard:
        return _locks.setdefault(path, threading.RLock())


# A failed run's kind (provider, incomplete, timeout, …) as its run log recorded it: read from
# the logged error event rather than a column of its own, so old stores show it too.
_ERROR_KIND = ("(SELECT json_extract_string(e.payload, '$.kind') FROM run_events e "
               "WHERE e.run_id = runs.id AND e.type = 'error' LIMIT 1)")


def pick_run(run_id: str, cols: Sequence[str], found: Sequence[tuple]) -> dict[str, Any] | None:
    """Of the (at most two) runs found for ``run_id`` — the exact id ordered first, then by
    start — the exact one or the only one its prefix starts; a prefix starting several is a
    ConfigError (never the newest by chance). Both back-ends' ``get_run`` use it."""
    if not found:
        return None
    run = dict(zip(cols, found[0]))
    if len(found) > 1 and run["id"] != run_id:
        from ..errors import ConfigError

        raise ConfigError(f"run id {run_id!r} is ambiguous: several runs start with it; give more of the id")
    return run


def _live_filter(
    namespace: str | None, memory_type: str | None, source: str | None
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) for unexpired memories matching the filters."""
    where, params = ["(expires_at IS NULL OR expires_at > ?)"], [utcnow()]
    for col, val in (("namespace", namespace), ("memory_type", memory_type), ("source", source)):
        if val:
            where.append(f"{col} = ?")
            params.append(val)
    return " AND ".join(where), params


class Store:
    """A DuckDB file with our schema. Cheap to construct; opens the file per operation."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float = 15.0):
        self.path = Path(path).expanduser() if path else default_store_path()
        self.lock_timeout = lock_timeout
        self._lock = _lock_for(str(self.path.resolve()) if self.path.exists() else str(self.path))
        self._migrated = False
        self._held: duckdb.DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- connections -------------------------------------------------------------------------

    def _open(self) -> duckdb.DuckDBPyConnection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnreadable(
                f"cannot create the store directory {self.path.parent}: {exc.strerror}. "
                f"Set {STATE_ENV} to a writable directory."
            ) from exc
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                msg = str(exc)
                if "lock" in msg.lower():
                    if time.monotonic() >= deadline:
                        raise StoreLocked(
                            f"the store {self.path} stayed locked by another process for "
                            f"{self.lock_timeout:.0f} s ({_holder(msg)}). Wait for that kernel to "
                            f"finish, or use a separate store (set {STATE_ENV} or --store)."
                        ) from exc
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.5)
                    continue
                unreadable = StoreUnreadable(_unreadable(self.path, msg))
                raise disk_full(self.path, exc) or unreadable from exc
            except (duckdb.Error, OSError) as exc:
                unreadable = StoreUnreadable(_unreadable(self.path, str(exc)))
                raise disk_full(self.path, exc) or unreadable from exc

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation, migrated, closed (and the file lock freed) after."""
        with self._lock:
            if self._held is not None:  # nested use inside hold()
                yield self._held
                return
            con = self._open()
            try:
                if not self._migrated:
                    self._migrate(con)
                yield con
            except (duckdb.Error, OSError) as exc:
                full = disk_full(self.path, exc)
                if full is None:
                    raise
                raise full from exc
            finally:
                try:
                    con.close()
                except duckdb.Error as exc:  # a checkpoint at close can meet a full disk too
                    full = disk_full(self.path, exc)
                    if full is None:
                        raise
                    raise full from exc

    @contextlib.contextmanager
    def hold(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Keep one connection open across several operations (bulk work in one process)."""
        with self.connect() as con:
            self._held = con
            try:
                yield con
            finally:
                self._held = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                # a write that failed (a full disk) may have ended the transaction already:
                # the original error is the one to report
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            self._check_ours(con)
            con.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
            )
        except duckdb.Error as exc:
            raise StoreUnreadable(_unreadable(self.path, str(exc))) from exc
        applied = [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]
        known = [m.__name__ for m in MIGRATIONS]
        unknown = sorted(set(applied) - set(known))
        if unknown:
            raise StoreNewerSchema(
                f"the store {self.path} was written by a newer fourhosts-jupyter (schema step "
                f"{unknown[-1]!r} is unknown here). Upgrade: pip install -U fourhosts-jupyter, "
                f"or use another store (set {STATE_ENV} or --store). Nothing was changed."
            )
        for migration in MIGRATIONS:
            if migration.__name__ in applied:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                migration(con)
                con.execute(
                    "INSERT INTO _migrations VALUES (?, ?)", [migration.__name__, utcnow()]
                )
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        self._migrated = True

    def _check_ours(self, con: duckdb.DuckDBPyConnection) -> None:
        """Refuse a DuckDB file that is neither empty nor ours before writing anything to it:
        an analyst's own database given as ``--store`` must not gain our tables."""
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_catalog = current_database()"
            ).fetchall()
        }
        if not tables:
            return
        if "_migrations" in tables:
            cols = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_catalog = current_database() AND table_name = '_migrations'"
                ).fetchall()
            }
            if {"name", "applied_at"} <= cols:
                names = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
                # ours: our first step recorded, or an interrupted first open (nothing else yet)
                if MIGRATIONS[0].__name__ in names or (not names and tables == {"_migrations"}):
                    return
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise StoreForeign(
            f"{self.path} is a DuckDB database but not a fourhosts-jupyter store (it has tables: "
            f"{shown}); it was left untouched. Give --store (or {STATE_ENV}) a new file name."
        )

    def schema_version(self) -> list[str]:
        with self.connect() as con:
            return [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, run_id: str, question: str, options: dict[str, Any]) -> None:
        with self.connect() as con:
            con.execute(
                "INSERT INTO runs (id, question, options, status, started_at) VALUES (?, ?, ?, 'running', ?)",
                [run_id, question, json.dumps(options), utcnow()],
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        classification: dict[str, Any] | None,
        paradigm: str | None,
        provider: str | None,
        model: str | None,
        answer: str,
        sources: list[dict[str, Any]],
        usage: dict[str, Any],
        cost_usd: float | None,
        timings: dict[str, float],
        error: str | None,
        events: Sequence[tuple[int, str, float, dict[str, Any]]],
    ) -> None:
        """Write the run's outcome and its event log in one transaction."""
        with self.transaction() as con:
            con.execute(
                """UPDATE runs SET classification = ?, paradigm = ?, provider = ?, model = ?,
                       status = ?, answer = ?, sources = ?, usage = ?, cost_usd = ?, timings = ?,
                       error = ?, finished_at = ? WHERE id = ?""",
                [
                    json.dumps(classification) if classification else None,
                    paradigm,
                    provider,
                    model,
                    status,
                    answer,
                    json.dumps(sources),
                    json.dumps(usage),
                    cost_usd,
                    json.dumps(timings),
                    redact(error) if error else None,  # a URL's credentials must not be stored
                    utcnow(),
                    run_id,
                ],
            )
            if events:
                import pyarrow as pa

                table = pa.table(
                    {
                        "run_id": [run_id] * len(events),
                        "seq": [e[0] for e in events],
                        "type": [e[1] for e in events],
                        "at_s": [e[2] for e in events],
                        "payload": [redact(json.dumps(e[3])) for e in events],
                    }
                )
                con.register("_events_in", table)
                con.execute("INSERT INTO run_events SELECT run_id, seq, type, at_s, payload::JSON FROM _events_in")
                con.unregister("_events_in")
            from .ledger import fill

            fill(con, run_id)  # its tokens and cost in the ledger, with the run or not at all

    def runs(self, limit: int = 50):  # noqa: ANN201 - pandas.DataFrame
        with self.connect() as con:
            return con.execute(
                f"""SELECT id, started_at, status, {_ERROR_KIND} AS error_kind, paradigm, provider,
                          model, question, length(answer) AS answer_chars,
                          json_array_length(sources) AS sources, cost_usd, error
                   FROM runs ORDER BY started_at DESC LIMIT ?""",
                [limit],
            ).df()

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run with this id, or the one run whose id starts with it; None when there is
        none. A prefix that starts several ids is a ConfigError (never the newest by chance)."""
        if not run_id.strip():
            return None
        with self.connect() as con:
            rows = con.execute(
                f"SELECT *, {_ERROR_KIND} AS error_kind FROM runs WHERE starts_with(id, ?) "
                "ORDER BY id = ? DESC, started_at DESC LIMIT 2",
                [run_id, run_id],
            )
            run = pick_run(run_id, [d[0] for d in rows.description], rows.fetchall())
            if run is None:
                return None
            for key in ("options", "classification", "sources", "usage", "timings", "evaluation"):
                if run.get(key):
                    run[key] = json.loads(run[key])
            ev = con.execute(
                "SELECT seq, type, at_s, payload FROM run_events WHERE run_id = ? ORDER BY seq",
                [run["id"]],
            ).fetchall()
            run["events"] = [
                {"seq": s, "type": t, "at": a, "payload": json.loads(p) if p else None}
                for s, t, a, p in ev
            ]
            return run

    def add_feedback(self, run_id: str, rating: int, comment: str = "") -> None:
        with self.connect() as con:
            con.execute(
                "INSERT INTO feedback VALUES (?, ?, ?, ?)", [run_id, int(rating), comment, utcnow()]
            )

    # -- memories ----------------------------------------------------------------------------

    def add_memories(
        self,
        records: Sequence[MemoryRecord],
        embeddings: Any = None,
        model: str | None = None,
    ) -> list[str]:
        """Bulk insert through Arrow; skips records whose content is already stored in the
        same namespace. Returns the ids actually inserted."""
        if not records:
            return []
        with self.transaction() as con:
            return self.insert_memories(con, records, embeddings, model)

    def insert_memories(
        self,
        con: duckdb.DuckDBPyConnection,
        records: Sequence[MemoryRecord],
        embeddings: Any = None,
        model: str | None = None,
    ) -> list[str]:
        """``add_memories`` inside the caller's transaction (ingestion commits a document's
        row and its chunks together)."""
        if not records:
            return []
        import numpy as np
        import pyarrow as pa

        now = utcnow()
        hashes = [content_hash(r.content) for r in records]
        # duplicates inside the batch are dropped here (cheaper than a window function in SQL)
        seen: set[tuple[str, str]] = set()
        keep = []
        for i, (r, h) in enumerate(zip(records, hashes)):
            if (r.namespace, h) not in seen:
                seen.add((r.namespace, h))
                keep.append(i)
        if len(keep) < len(records):
            records = [records[i] for i in keep]
            hashes = [hashes[i] for i in keep]
            if embeddings is not None:
                embeddings = np.asarray(embeddings)[keep]
        n = len(records)
        if embeddings is None:
            emb = pa.nulls(n, type=pa.list_(pa.float32()))
            models = pa.nulls(n, type=pa.string())
        else:
            arr = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
            if arr.shape[0] != n:
                raise ValueError(f"{n} records but {arr.shape[0]} embeddings")
            # a fixed-size list built from the flat buffer: no per-row Python lists
            emb = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1]).cast(
                pa.list_(pa.float32())
            )
            models = pa.array([model] * n, type=pa.string())
        metadata = _dump_metadata(records)
        table = pa.table(
            {
                "id": [r.id for r in records],
                "namespace": [r.namespace for r in records],
                "memory_type": [r.memory_type for r in records],
                "content": [r.content for r in records],
                "metadata": metadata,
                "importance": [float(r.importance) for r in records],
                "source": [r.source for r in records],
                "document_id": pa.array([r.document_id for r in records], type=pa.string()),
                "title": [r.title for r in records],
                "content_hash": hashes,
                "embedding": emb,
                "model": models,
                "created_at": pa.array([r.created_at or now for r in records], type=pa.timestamp("us")),
                "expires_at": pa.array([r.expires_at for r in records], type=pa.timestamp("us")),
            }
        )
        name = "_mem_in_" + uuid.uuid4().hex[:8]
        con.register(name, table)
        try:
            # Content already stored in the same namespace is found first and filtered out in
            # Arrow, so the insert itself is a plain copy: an anti-join and RETURNING inside
            # the INSERT cost ~40% of the write (bench memory --only writes).
            stored = con.execute(
                f"SELECT i.namespace, i.content_hash FROM {name} i SEMI JOIN memories m "
                "ON m.content_hash = i.content_hash AND m.namespace = i.namespace"
            ).fetchall()
            if stored:
                con.unregister(name)
                old = set(stored)
                mask = pa.array([(r.namespace, h) not in old for r, h in zip(records, hashes)])
                table = table.filter(mask)
                records = [r for r, k in zip(records, mask.to_pylist()) if k]
                con.register(name, table)
            con.execute(
                f"""INSERT INTO memories (id, namespace, memory_type, content, metadata, importance,
                          source, document_id, title, content_hash, embedding, model, created_at,
                          expires_at)
                   SELECT id, namespace, memory_type, content, metadata::JSON, importance,
                          source, document_id, title, content_hash, embedding, model,
                          created_at, expires_at
                   FROM {name}"""
            )
        finally:
            con.unregister(name)
        return [r.id for r in records]

    def update_embeddings(self, keys: Sequence[int], embeddings: Any, model: str) -> int:
        """Replace the vectors of memories ``keys`` (re-embedding after a model change)."""
        import numpy as np
        import pyarrow as pa

        arr = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        if len(keys) == 0:
            return 0
        table = pa.table(
            {
                "key": pa.array(np.asarray(keys, dtype=np.int64)),
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(arr.reshape(-1)), arr.shape[1]
                ).cast(pa.list_(pa.float32())),
            }
        )
        with self.transaction() as con:
            con.register("_emb_in", table)
            try:
                n = con.execute(
                    """UPDATE memories SET embedding = e.embedding, model = ?
                       FROM _emb_in e WHERE memories.key = e.key RETURNING memories.key""",
                    [model],
                ).fetchall()
            finally:
                con.unregister("_emb_in")
        return len(n)

    def store_id(self) -> str:
        """A random id made when the store was created (names its derived index files)."""
        with self.connect() as con:
            row = con.execute("SELECT value FROM store_info WHERE name = 'store_id'").fetchone()
        return row[0]

    def count_memories(self) -> int:
        with self.connect() as con:
            return con.execute("SELECT count(*) FROM memories").fetchone()[0]

    def memories(
        self,
        *,
        namespace: str | None = None,
        memory_type: str | None = None,
        source: str | None = None,
        limit: int | None = 1000,
        offset: int = 0,
    ):  # noqa: ANN201 - pandas.DataFrame
        """Live (unexpired) memories, newest first; ``limit``/``offset`` page through them."""
        where, params = _live_filter(namespace, memory_type, source)
        cols = ("id, namespace, memory_type, source, title, content, importance, created_at, "
                "expires_at, document_id")
        # key breaks ties (a bulk insert gives its rows one created_at; pages must not overlap),
        # in insertion order, so one document's passages read in order
        order = "ORDER BY created_at DESC, key"
        if limit:
            # sort only the small columns, then read the page's rows: ~3× faster deep in a
            # large store than sorting whole rows to skip them
            sql = (f"WITH page AS (SELECT key FROM memories WHERE {where} {order} "
                   f"LIMIT {int(limit)} OFFSET {int(offset)}) "
                   f"SELECT {cols} FROM memories SEMI JOIN page USING (key) {order}")
        else:
            sql = f"SELECT {cols} FROM memories WHERE {where} {order}"
        with self.connect() as con:
            return con.execute(sql, params).df()

    def count_live_memories(
        self,
        *,
        namespace: str | None = None,
        memory_type: str | None = None,
        source: str | None = None,
    ) -> int:
        """How many rows ``memories`` would page through with the same filters."""
        where, params = _live_filter(namespace, memory_type, source)
        with self.connect() as con:
            return con.execute(f"SELECT count(*) FROM memories WHERE {where}", params).fetchone()[0]

    def get_memories(self, ids: Sequence[str]):  # noqa: ANN201 - pandas.DataFrame
        with self.connect() as con:
            return con.execute(
                "SELECT id, key, namespace, memory_type, source, title, content, metadata, "
                "importance, document_id FROM memories WHERE id IN (SELECT unnest(?))",
                [list(ids)],
            ).df()

    def forget(self, ids: Sequence[str]) -> int:
        """Delete memories by id, from the store and (now, in this process) from the derived
        indexes; other processes drop them from theirs at their next search."""
        with self.transaction() as con:
            keys = [
                r[0]
                for r in con.execute(
                    "DELETE FROM memories WHERE id IN (SELECT unnest(?)) RETURNING key", [list(ids)]
                ).fetchall()
            ]
            if keys:
                held_by = [
                    r[0]
                    for r in con.execute(
                        "DELETE FROM document_passages WHERE memory_id IN (SELECT unnest(?)) "
                        "RETURNING document_id",
                        [list(ids)],
                    ).fetchall()
                ]
                # a document whose every passage is forgotten is forgotten too
                con.execute(
                    "DELETE FROM documents d WHERE d.id IN (SELECT unnest(?)) AND NOT EXISTS "
                    "(SELECT 1 FROM document_passages r WHERE r.document_id = d.id)",
                    [held_by],
                )
                recount(con, held_by)
        self._forgotten(keys)
        return len(keys)

    def forget_documents(self, doc_ids: Sequence[str]) -> int:
        """Forget documents: their rows, and the passages no other document still holds.
        Returns how many passages were deleted."""
        with self.transaction() as con:
            keys, deleted = self.remove_documents(con, doc_ids)
        self._forgotten(keys)
        return deleted

    def remove_documents(
        self, con: duckdb.DuckDBPyConnection, doc_ids: Sequence[str]
    ) -> tuple[list[int], int]:
        """``forget_documents`` inside the caller's transaction (ingestion replaces a changed
        file's old version in the commit that completes the new one). Returns the keys gone
        from the store (for ``_forgotten`` once committed) and how many passages were deleted.

        Identical text is stored once per namespace, so a passage may be held by several
        documents: it is deleted only when none holds it any more. One that survives but was
        brought in by a removed document is handed to a remaining holder (a copy with a new id,
        so every process's derived indexes see the change by their key diff)."""
        ids = list(doc_ids)
        if not ids:
            return [], 0
        held = [
            r[0]
            for r in con.execute(
                "DELETE FROM document_passages WHERE document_id IN (SELECT unnest(?)) "
                "RETURNING memory_id",
                [ids],
            ).fetchall()
        ]
        owned = [
            r[0]
            for r in con.execute(
                "SELECT id FROM memories WHERE document_id IN (SELECT unnest(?))", [ids]
            ).fetchall()
        ]
        candidates = sorted(set(held) | set(owned))
        keys = [
            r[0]
            for r in con.execute(
                """DELETE FROM memories m WHERE m.id IN (SELECT unnest(?)) AND m.source = 'document'
                   AND NOT EXISTS (SELECT 1 FROM document_passages r WHERE r.memory_id = m.id)
                   RETURNING key""",
                [candidates],
            ).fetchall()
        ]
        deleted = len(keys)
        moves = con.execute(
            """SELECT m.id, min(r.document_id) FROM memories m
               JOIN document_passages r ON r.memory_id = m.id
               WHERE m.document_id IN (SELECT unnest(?)) GROUP BY m.id""",
            [ids],
        ).fetchall()
        if moves:
            import pyarrow as pa

            table = pa.table(
                {
                    "old_id": [m[0] for m in moves],
                    "new_id": [new_id("m_") for _ in moves],
                    "holder": [m[1] for m in moves],
                }
            )
            con.register("_reown", table)
            try:
                con.execute(
                    """INSERT INTO memories (id, namespace, memory_type, content, metadata, importance,
                              source, document_id, title, content_hash, embedding, model, created_at,
                              expires_at)
                       SELECT o.new_id, m.namespace, m.memory_type, m.content,
                              json_merge_patch(m.metadata,
                                               json_object('path', d.path, 'external_id', d.external_id)),
                              m.importance, m.source, o.holder, m.title, m.content_hash, m.embedding,
                              m.model, m.created_at, m.expires_at
                       FROM memories m JOIN _reown o ON o.old_id = m.id
                       JOIN documents d ON d.id = o.holder"""
                )
                keys += [
                    r[0]
                    for r in con.execute(
                        "DELETE FROM memories WHERE id IN (SELECT old_id FROM _reown) RETURNING key"
                    ).fetchall()
                ]
                con.execute(
                    """INSERT INTO document_passages
                       SELECT r.document_id, o.new_id FROM document_passages r
                       JOIN _reown o ON o.old_id = r.memory_id"""
                )
                con.execute(
                    "DELETE FROM document_passages WHERE memory_id IN (SELECT old_id FROM _reown)"
                )
            finally:
                con.unregister("_reown")
        con.execute("DELETE FROM documents WHERE id IN (SELECT unnest(?))", [ids])
        return keys, deleted

    def purge_expired(self) -> int:
        with self.connect() as con:
            keys = [
                r[0]
                for r in con.execute(
                    "DELETE FROM memories WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING key",
                    [utcnow()],
                ).fetchall()
            ]
        self._forgotten(keys)
        return len(keys)

    def _forgotten(self, keys: list[int]) -> None:
        if keys:
            from .retriever import forget_keys

            forget_keys(self, keys)


def recount(con: duckdb.DuckDBPyConnection, doc_ids: Sequence[str]) -> None:
    """``documents.chunk_count``: how many passages each document holds."""
    con.execute(
        """UPDATE documents SET chunk_count =
               (SELECT count(*) FROM document_passages r WHERE r.document_id = documents.id)
           WHERE id IN (SELECT unnest(?))""",
        [list(doc_ids)],
    )


# The disk refused to grow a file: no space, a quota, or a file-size limit (RLIMIT_FSIZE).
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


def disk_full(path: Path, exc: BaseException) -> StoreFull | None:
    """StoreFull for an error that means the disk is full, else None. DuckDB reports it only
    in its message ("Could not write file …: No space left on device")."""
    msg = str(exc)
    cause = next((t for t in _FULL_TEXTS if t in msg), None)
    if cause is None and isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        cause = os.strerror(exc.errno)
    if cause is None:
        return None
    return StoreFull(
        f"{cause.lower()} while writing the store {path}: the last change was rolled back and "
        f"everything committed before it is kept. Free some space and run the same command "
        f"again: an ingest resumes where it stopped."
    )


def _dump_metadata(records: Sequence[MemoryRecord]) -> list[str]:
    """The JSON text of each record's metadata, dumping each distinct flat dict once: a batch
    repeats a few (one per document), and ``json.dumps`` per row was a fifth of a bulk write."""
    done: dict[Any, str] = {}
    out = []
    for r in records:
        meta = r.metadata or {}
        try:
            key: Any = tuple((k, type(v), v) for k, v in meta.items())  # 1, 1.0, True differ
            text = done.get(key)
            if text is None:
                text = done[key] = json.dumps(meta)
        except TypeError:  # unhashable values (lists, dicts): dump this one as it is
            text = json.dumps(meta)
        out.append(text)
    return out


def _holder(msg: str) -> str:
    import re

    m = re.search(r"PID (\d+)", msg)
    return f"held by process {m.group(1)}" if m else "held by another process"


def _unreadable(path: Path, msg: str) -> str:
    first = msg.strip().splitlines()[0] if msg.strip() else "unknown error"
    return (
        f"cannot open the store {path}: {first}. If it is not a fourhosts-jupyter store, "
        f"point {STATE_ENV} (or --store) elsewhere; check the file's permissions."
    )
