"""Copy one store into another across back-ends (DuckDB file ⇄ PostgreSQL): memories with
their vectors, documents and their passages, runs with their events, ratings and question
features, comparisons and the cost ledger; every timestamp as it was (not the copy's time).
The web cache is not copied: it refills itself.

Resumable: memories go in key order, one committed batch at a time, and the destination
records the last source key copied (``store_info``, in the batch's own transaction), so a
copy stopped anywhere carries on from there. Smaller tables go in one transaction each,
marked done in it. At the end every source row is looked up in the destination: counts
must match or the copy is reported incomplete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..errors import StorageError
from .progress import Progress
from .store import MemoryRecord

BATCH = 5000
# Two first writes into an empty shared store at once (two batch items seeding it) both drop
# and build the HNSW index: "IF NOT EXISTS" alone races (UniqueViolation on pg_class).
HNSW_LOCK = "SELECT pg_advisory_xact_lock(hashtext('fourhosts.memories_hnsw'))"
_MEM_COLS = ("key, id, namespace, memory_type, content, metadata, importance, source, "
             "document_id, title, expires_at, model, embedding, created_at")
# (table, columns, primary key or None): the core tables both back-ends hold
TABLES = (
    ("documents", "id, path, title, format, content_hash, metadata, created_at, namespace, "
                  "external_id, chunk_count, complete", "id"),
    ("document_passages", "document_id, memory_id", "document_id, memory_id"),
    ("runs", "id, question, options, classification, paradigm, provider, model, status, answer, "
             "sources, usage, cost_usd, timings, error, started_at, finished_at, confidence, "
             "evaluation, comparison_id", "id"),
    ("run_events", "run_id, seq, type, at_s, payload", None),
    ("feedback", "run_id, rating, comment, created_at", None),
    ("run_features", "run_id, word_count, action, analytical, protective, strategic, form, domain, "
                     "created_at", "run_id"),
    ("comparisons", "id, kind, question, hosts, summary, created_at", "id"),
    ("ledger", "run_id, kind, day, finished_at, host, provider, model, tool, status, calls, failed, "
               "seconds, input_tokens, output_tokens, cached_tokens, total_tokens, cost_usd", None),
    # batches: the columns both back-ends have (workers' leases and reservations stay behind)
    ("batches", "id, source, column_name, options, state, total, pid, note, created_at, updated_at", "id"),
    ("batch_items", "batch_id, idx, question, status, run_id, host, probabilities, answer, sources, "
                    "tokens, cost_usd, seconds, error, error_kind, attempts, finished_at", "batch_id, idx"),
    ("batch_dead_letter", "batch_id, idx, question, error, error_kind, run_id, attempts, failed_at",
     "batch_id, idx"),
)
_JSON_COLS = {"metadata", "options", "classification", "sources", "usage", "timings", "payload",
              "evaluation", "hosts", "summary", "probabilities"}


@dataclass
class CopyReport:
    memories: int = 0
    skipped_batches: int = 0
    tables: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        rest = ", ".join(f"{n} {t}" for t, n in self.tables.items())
        return f"copied {self.memories} memories; {rest}; counts checked"


def _pg(store: Any) -> bool:
    return bool(getattr(store, "is_postgres", False))


def _sql(store: Any, sql: str) -> str:
    return sql.replace("?", "%s") if _pg(store) else sql


def _rows(store: Any, sql: str, params: list[Any] = ()) -> list[tuple]:  # type: ignore[assignment]
    with store.connect() as con:
        return con.execute(_sql(store, sql), list(params)).fetchall()


def _mark(store: Any, con: Any, name: str, value: str) -> None:
    con.execute(_sql(store, "DELETE FROM store_info WHERE name = ?"), [name])
    con.execute(_sql(store, "INSERT INTO store_info VALUES (?, ?)"), [name, value])


def _vector(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    return np.asarray(v.to_list() if hasattr(v, "to_list") else v, dtype=np.float32)


def _json_text(v: Any) -> Any:
    """A JSON column's value as JSON text for the other back-end (PostgreSQL gives objects)."""
    return v if v is None or isinstance(v, str) else json.dumps(v)


def _batches(src: Any, after: int, size: int) -> Iterator[list[tuple]]:
    while True:
        rows = _rows(src, f"SELECT {_MEM_COLS} FROM memories WHERE key > ? ORDER BY key LIMIT ?",
                     [after, size])
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def copy_store(src: Any, dst: Any, *, batch: int = BATCH, progress: bool = True,
               exact: bool = True) -> CopyReport:
    """Copy ``src`` into ``dst`` (either back-end each); see the module docstring. Without
    ``exact`` (adding to a store that may hold the same texts) the counts are not checked."""
    src_id = src.store_id()
    mark = f"copied_from:{src_id}"
    report = CopyReport()
    done_key = _rows(dst, "SELECT value FROM store_info WHERE name = ?", [mark + ":memories"])
    after = int(done_key[0][0]) if done_key else 0
    total = src.count_memories()
    remaining = _rows(src, "SELECT count(*) FROM memories WHERE key > ?", [after])[0][0]
    # into an empty PostgreSQL store, the HNSW index is built once after the rows (measured
    # ~9x faster than maintaining it row by row: bench pgstore); a resumed copy builds it too
    bulk = _pg(dst) and after == 0 and dst.count_memories() == 0
    if bulk:
        with dst.connect() as con:
            con.execute(HNSW_LOCK)
            con.execute("DROP INDEX IF EXISTS memories_hnsw")
    bar = Progress("copying memories", "memory", enabled=progress)
    bar.add_total(total)
    bar.update(total - remaining)
    try:
        for rows in _batches(src, after, batch):
            # one group per (model, dimension): a batch insert takes one model's vectors
            groups: dict[tuple, list[tuple]] = {}
            for r in rows:
                v = _vector(r[12])
                groups.setdefault((r[11] if v is not None else None,
                                   len(v) if v is not None else 0), []).append((r, v))
            with dst.transaction() as con:
                for (model, _dim), items in groups.items():
                    records = [
                        MemoryRecord(id=r[1], namespace=r[2], memory_type=r[3], content=r[4],
                                     source=r[7], title=r[9] or "", importance=r[6],
                                     metadata=json.loads(r[5]) if isinstance(r[5], str) else r[5],
                                     document_id=r[8], expires_at=r[10], created_at=r[13])
                        for r, _ in items
                    ]
                    vecs = np.stack([v for _, v in items]) if model is not None else None
                    dst.insert_memories(con, records, vecs, model)
                _mark(dst, con, mark + ":memories", str(rows[-1][0]))
            report.memories += len(rows)
            bar.update(len(rows))
    finally:
        bar.close()
    if _pg(dst):
        from .pg_migrations import HNSW_INDEX

        with dst.connect() as con:
            con.execute(HNSW_LOCK)
            con.execute(HNSW_INDEX)
    for table, cols, pk in TABLES:
        if _rows(dst, "SELECT value FROM store_info WHERE name = ?", [f"{mark}:{table}"]):
            continue
        data = _rows(src, f"SELECT {cols} FROM {table}")
        names = [c.strip() for c in cols.split(",")]
        data = [tuple(_json_text(v) if n in _JSON_COLS else v for n, v in zip(names, row))
                for row in data]
        marks = ", ".join("?" for _ in names)
        if _pg(dst):
            casts = ", ".join("%s::jsonb" if n in _JSON_COLS else "%s" for n in names)
            sql = f"INSERT INTO {table} ({cols}) VALUES ({casts}) ON CONFLICT DO NOTHING"
        else:
            ignore = " OR IGNORE" if pk else ""  # DuckDB refuses it on a table without a key
            sql = f"INSERT{ignore} INTO {table} ({cols}) VALUES ({marks})"
        with dst.transaction() as con:
            if data:
                con.cursor().executemany(sql, data) if _pg(dst) else con.executemany(sql, data)
            _mark(dst, con, f"{mark}:{table}", "done")
    if exact:
        _check(src, dst, report)
    return report


def _check(src: Any, dst: Any, report: CopyReport) -> None:
    """Every source memory id and table row is in the destination."""
    ids = [r[0] for r in _rows(src, "SELECT id FROM memories")]
    found = 0
    for start in range(0, len(ids), 50_000):
        part = ids[start:start + 50_000]
        if _pg(dst):
            found += _rows(dst, "SELECT count(*) FROM memories WHERE id = ANY(?)", [part])[0][0]
        else:
            found += _rows(dst, "SELECT count(*) FROM memories WHERE id IN (SELECT unnest(?))",
                           [part])[0][0]
    if found != len(ids):
        raise StorageError(
            f"the copy is incomplete: {found} of {len(ids)} memories are in the destination "
            "(one with the same text in the same namespace was there already?). Run the same "
            "command again to resume, or copy into an empty store."
        )
    for table, _cols, _pk in TABLES:
        n_src = _rows(src, f"SELECT count(*) FROM {table}")[0][0]
        n_dst = _rows(dst, f"SELECT count(*) FROM {table}")[0][0]
        if n_dst < n_src:
            raise StorageError(
                f"the copy is incomplete: {n_dst} of {n_src} rows of {table} are in the "
                "destination. Run the same command again to resume."
            )
        report.tables[table] = n_src
