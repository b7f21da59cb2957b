"""Batch rows in the store (migration m004_batches): a batch, its items, its dead letters.

Each item is written as it finishes, so a batch stopped any way (budget, Ctrl-C, kernel
restart, ``kill -9``) resumes with only what did not finish: items ``pending`` or ``running``
(the latter were cut off mid-run), plus ``failed`` ones when retrying failures.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..errors import ConfigError
from ..memory.store import Store, utcnow

# What the result DataFrame shows, in order (``cost`` is the item's cost_usd).
RESULT_COLUMNS = ("question", "host", "probabilities", "answer", "sources", "tokens", "cost",
                  "seconds", "status", "error", "run_id")


@dataclass(frozen=True)
class BatchInfo:
    id: str
    source: str
    column: str
    options: dict[str, Any]
    state: str
    total: int
    done: int
    failed: int
    left: int
    note: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "state": self.state, "done": self.done,
                "failed": self.failed, "left": self.left, "total": self.total,
                "note": self.note, "created_at": self.created_at}


@dataclass(frozen=True)
class ItemResult:
    idx: int
    status: str  # ok | failed | pending (refused by the budget: left for a resume)
    run_id: str = ""
    host: str | None = None
    probabilities: dict[str, float] | None = None
    answer: str = ""
    sources: list[dict[str, Any]] | None = None
    tokens: int = 0
    cost_usd: float | None = None
    seconds: float = 0.0
    error: str | None = None
    error_kind: str | None = None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def kept_open(store: Store) -> Iterator[None]:
    """Keep the store's database open in this process while a batch runs.

    Every store operation opens and closes its own connection (so another kernel can take the
    file between runs); opening the file costs ~70 ms here (instance start, and a checkpoint
    at close), paid ~8 times per question, in series under the store's lock. While one idle
    connection stays open, DuckDB hands each new connection the same database instance:
    ~0.7 ms (bench ``schedule``). Best effort: if it cannot open, the batch is only slower.
    The price: while a batch runs, another process cannot open the store (it waits up to its
    lock timeout, then says which process holds it), where it could slip in between two runs.
    A PostgreSQL store has a pool of its own: nothing to do."""
    if getattr(store, "is_postgres", False):
        yield
        return
    import duckdb

    with store.connect():  # migrated (and created) through the normal path first
        pass
    try:
        keep = duckdb.connect(str(store.path))
    except duckdb.Error:
        keep = None
    try:
        yield
    finally:
        if keep is not None:
            with contextlib.suppress(duckdb.Error):
                keep.close()


def batch_rows(store: Any) -> BatchStore:
    """The batch rows of ``store``: DuckDB's, or PostgreSQL's (with what workers need)."""
    if getattr(store, "is_postgres", False):
        from .pg_batch_store import PgBatchStore

        return PgBatchStore(store)
    return BatchStore(store)


class BatchStore:
    """Reads and writes batch rows through a :class:`Store` (one short connection each)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, batch_id: str, questions: Sequence[str], *, source: str, column: str,
               options: dict[str, Any]) -> None:
        now = utcnow()
        with self.store.transaction() as con:
            con.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, 'running', ?, ?, NULL, ?, ?)",
                [batch_id, source, column, json.dumps(options), len(questions), os.getpid(), now, now])
            import pandas as pd

            items = pd.DataFrame({"batch_id": batch_id, "idx": range(len(questions)),
                                  "question": list(questions)})
            con.register("new_items", items)
            con.execute("""INSERT INTO batch_items (batch_id, idx, question, status)
                           SELECT batch_id, idx, question, 'pending' FROM new_items""")
            con.unregister("new_items")

    def info(self, batch_id: str) -> BatchInfo:
        found = self.list(batch_id)
        if not found:
            from ..redact import redact

            where = redact(str(getattr(self.store, "location", None) or self.store.path))
            raise ConfigError(f"no batch {batch_id!r} in the store {where}: list them with "
                              "fourhosts batch --list")
        return found[0]

    def list(self, batch_id: str | None = None) -> list[BatchInfo]:
        where = "WHERE b.id = ?" if batch_id else ""
        with self.store.connect() as con:
            rows = con.execute(
                f"""SELECT b.id, b.source, b.column_name, b.options, b.state, b.total, b.pid, b.note,
                           b.created_at,
                           count(*) FILTER (WHERE i.status = 'ok'),
                           count(*) FILTER (WHERE i.status = 'failed')
                    FROM batches b LEFT JOIN batch_items i ON i.batch_id = b.id {where}
                    GROUP BY b.id, b.source, b.column_name, b.options, b.state, b.total, b.pid,
                             b.note, b.created_at
                    ORDER BY b.created_at DESC, b.id""",
                [batch_id] if batch_id else []).fetchall()
        out = []
        for (bid, source, column, options, state, total, pid, note, created, done, failed) in rows:
            options = json.loads(options or "{}")
            # its process is gone (kill -9, a crash, a kernel restart); a batch given to workers
            # has no one process: it runs while workers answer it (schedule/worker.py)
            if state == "running" and not options.get("workers") and not _alive(pid):
                state = "interrupted"
            out.append(BatchInfo(bid, source or "", column or "", options,
                                 state, total, done, failed, total - done - failed, note or "",
                                 str(created)[:19]))
        return out

    def todo(self, batch_id: str, *, retry_failed: bool = False) -> list[tuple[int, str]]:
        """Items still to answer: pending, cut off while running, and (if asked) failed."""
        statuses = ["pending", "running"] + (["failed"] if retry_failed else [])
        with self.store.connect() as con:
            return [(int(i), q) for i, q in con.execute(
                f"""SELECT idx, question FROM batch_items WHERE batch_id = ?
                    AND status IN ({', '.join('?' * len(statuses))}) ORDER BY idx""",
                [batch_id, *statuses]).fetchall()]

    def used(self, batch_id: str) -> tuple[int, float]:
        """Tokens and USD the finished items of the batch used."""
        with self.store.connect() as con:
            t, u = con.execute("SELECT coalesce(sum(tokens), 0), coalesce(sum(cost_usd), 0) "
                               "FROM batch_items WHERE batch_id = ?", [batch_id]).fetchone()
        return int(t), float(u)

    def claim(self, batch_id: str, pid: int | None = None, **options: Any) -> None:
        """This process runs the batch now (a resume); ``options`` update the stored ones."""
        with self.store.transaction() as con:
            row = con.execute("SELECT options FROM batches WHERE id = ?", [batch_id]).fetchone()
            merged = {**json.loads(row[0] or "{}"), **options} if row else options
            con.execute("UPDATE batches SET state = 'running', pid = ?, note = NULL, options = ?, "
                        "updated_at = ? WHERE id = ?",
                        [pid or os.getpid(), json.dumps(merged), utcnow(), batch_id])

    def started(self, batch_id: str, idx: int) -> None:
        with self.store.connect() as con:
            con.execute("UPDATE batch_items SET status = 'running', attempts = attempts + 1 "
                        "WHERE batch_id = ? AND idx = ?", [batch_id, idx])

    def finish(self, batch_id: str, r: ItemResult) -> None:
        """Write one item's outcome; a failure also goes to the dead-letter table."""
        with self.store.transaction() as con:
            self.write(con, batch_id, r)

    def write(self, con: Any, batch_id: str, r: ItemResult) -> None:
        """``finish`` inside the caller's transaction."""
        con.execute(
            """UPDATE batch_items SET status = ?, run_id = ?, host = ?, probabilities = ?,
                   answer = ?, sources = ?, tokens = ?, cost_usd = ?, seconds = ?, error = ?,
                   error_kind = ?, finished_at = ? WHERE batch_id = ? AND idx = ?""",
            [r.status, r.run_id or None, r.host,
             json.dumps(r.probabilities) if r.probabilities is not None else None,
             r.answer, json.dumps(r.sources) if r.sources is not None else None,
             r.tokens, r.cost_usd, r.seconds, r.error, r.error_kind,
             utcnow() if r.status in ("ok", "failed") else None, batch_id, r.idx])
        if r.status == "failed":
            con.execute(
                """INSERT INTO batch_dead_letter
                   SELECT batch_id, idx, question, ?, ?, ?, attempts, ? FROM batch_items
                   WHERE batch_id = ? AND idx = ?
                   ON CONFLICT (batch_id, idx) DO UPDATE SET error = excluded.error, error_kind = excluded.error_kind,
                       run_id = excluded.run_id, attempts = excluded.attempts,
                       failed_at = excluded.failed_at""",
                [r.error, r.error_kind, r.run_id or None, utcnow(), batch_id, r.idx])
        elif r.status == "ok":
            con.execute("DELETE FROM batch_dead_letter WHERE batch_id = ? AND idx = ?",
                        [batch_id, r.idx])

    def set_state(self, batch_id: str, state: str, note: str | None = None) -> None:
        with self.store.connect() as con:
            con.execute("UPDATE batches SET state = ?, note = ?, updated_at = ? WHERE id = ?",
                        [state, note, utcnow(), batch_id])

    def results(self, batch_id: str):  # noqa: ANN201 - pandas.DataFrame
        """The items of a batch in input order, with RESULT_COLUMNS (JSON cells decoded)."""
        with self.store.connect() as con:
            df = con.execute(
                """SELECT question, host, probabilities, answer, sources, tokens,
                          cost_usd AS cost, seconds, status, error, run_id
                   FROM batch_items WHERE batch_id = ? ORDER BY idx""", [batch_id]).df()
        for col in ("probabilities", "sources"):
            df[col] = [json.loads(v) if isinstance(v, str) else None for v in df[col]]
        df.attrs["batch_id"] = batch_id
        return df

    def dead_letters(self, batch_id: str | None = None):  # noqa: ANN201 - pandas.DataFrame
        where = "WHERE batch_id = ?" if batch_id else ""
        with self.store.connect() as con:
            return con.execute(f"SELECT * FROM batch_dead_letter {where} ORDER BY batch_id, idx",
                               [batch_id] if batch_id else []).df()
