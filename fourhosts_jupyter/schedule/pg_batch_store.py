"""Batch rows on the shared PostgreSQL store (migration p004_batches), and what workers on
many machines need of them.

The same rows as DuckDB's (``BatchStore``), plus:

- **Claiming an item** (``begin``): a worker marks it running unless it is already answered,
  so a job retried after its first attempt did finish (the worker died before the queue heard
  of it) answers nothing again.
- **Recording an answer once** (``record``): an answered item is a row of ``batch_results``
  keyed by (batch, item); the insert is ``ON CONFLICT DO NOTHING`` and the item's row is only
  written when it took, so two attempts racing to the end keep the first answer, whatever the
  timing.
- **A budget across workers** (``reserve`` / ``release``): before each model call the call's
  estimate (schedule/guard.py) is checked against the batch's limits and held on the item, in
  one transaction that locks the batch's row, so reservations of every worker queue up there
  and together never pass the limit. A worker killed mid-call leaves its hold: the next attempt
  at the item turns it into spent (the call may have been paid), never into room.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import BudgetExceeded
from ..memory.store import utcnow
from .batch_store import BatchStore, ItemResult


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Progress:
    """Where a batch given to workers stands (``settled``: nothing more will happen to it)."""

    done: int
    failed: int
    budget_left: int  # refused by the budget: left for a resume
    waiting: int  # queued or being answered
    tokens: int
    cost: float
    unpriced: bool

    @property
    def settled(self) -> bool:
        return self.waiting == 0


class PgBatchStore(BatchStore):
    """``BatchStore`` on a ``PgStore`` (SQL in PostgreSQL's own dialect where it differs)."""

    def create(self, batch_id: str, questions: Sequence[str], *, source: str, column: str,
               options: dict[str, Any]) -> None:
        now = utcnow()
        with self.store.transaction() as con:
            con.execute("INSERT INTO batches VALUES (%s, %s, %s, %s, 'running', %s, %s, NULL, %s, %s)",
                        [batch_id, source, column, json.dumps(options), len(questions),
                         None if options.get("workers") else os.getpid(), now, now])
            with con.cursor().copy("COPY batch_items (batch_id, idx, question, status) FROM STDIN") as cp:
                for i, q in enumerate(questions):
                    cp.write_row([batch_id, i, q, "pending"])

    # -- workers -----------------------------------------------------------------------------

    def begin(self, batch_id: str, idx: int, worker: str) -> tuple[str, int] | None:
        """Claim an item for ``worker``: its question and attempt number, or None when it is
        answered already. What a dead earlier attempt held becomes spent."""
        with self.store.transaction() as con:
            row = con.execute(
                """UPDATE batch_items SET status = 'running', attempts = attempts + 1, worker = %s,
                       error = NULL, error_kind = NULL,
                       spent_tokens = spent_tokens + held_tokens, spent_usd = spent_usd + held_usd,
                       held_tokens = 0, held_usd = 0
                   WHERE batch_id = %s AND idx = %s AND status <> 'ok'
                   RETURNING question, attempts""", [worker, batch_id, idx]).fetchone()
        return (row[0], int(row[1])) if row else None

    def record(self, batch_id: str, r: ItemResult, worker: str) -> bool:
        """Write an item's outcome once: False when an attempt recorded its answer already.
        The item's row is locked first, so two attempts finishing at once write one by one."""
        with self.store.transaction() as con:
            row = con.execute("SELECT status FROM batch_items WHERE batch_id = %s AND idx = %s "
                              "FOR UPDATE", [batch_id, r.idx]).fetchone()
            if row is None or row[0] == "ok":
                return False
            if r.status == "ok":
                took = con.execute(
                    """INSERT INTO batch_results VALUES (%s, %s, %s, %s, %s)
                       ON CONFLICT (batch_id, idx) DO NOTHING RETURNING idx""",
                    [batch_id, r.idx, r.run_id, worker, utcnow()]).fetchone()
                if took is None:
                    return False
            self.write(con, batch_id, r)
        return True

    def reserve(self, batch_id: str, idx: int, tokens: int, usd: float | None, *,
                or_wait: bool = False) -> bool:
        """Hold ``tokens`` / ``usd`` on the item if the batch's limits have room (True). Else
        raise BudgetExceeded (nothing held) — or, with ``or_wait``, return False when it would
        fit once the calls other items have in flight settle (they hold their estimates)."""
        with self.store.transaction() as con:
            row = con.execute("SELECT options FROM batches WHERE id = %s FOR UPDATE",
                              [batch_id]).fetchone()
            opts = json.loads(row[0] or "{}") if row else {}
            lim_t, lim_u = opts.get("budget_tokens"), opts.get("budget_usd")
            spent_t, spent_u, held_t, held_u, others_t, others_u = con.execute(
                """SELECT coalesce(sum(spent_tokens), 0), coalesce(sum(spent_usd), 0),
                          coalesce(sum(held_tokens), 0), coalesce(sum(held_usd), 0),
                          coalesce(sum(held_tokens) FILTER (WHERE idx <> %s), 0),
                          coalesce(sum(held_usd) FILTER (WHERE idx <> %s), 0)
                   FROM batch_items WHERE batch_id = %s""", [idx, idx, batch_id]).fetchone()
            used_t, used_u = int(spent_t + held_t), float(spent_u + held_u)
            short_t = lim_t is not None and tokens > lim_t - used_t
            short_u = lim_u is not None and usd is not None and usd > lim_u - used_u + 1e-12
            if not (short_t or short_u):
                con.execute("UPDATE batch_items SET held_tokens = held_tokens + %s, "
                            "held_usd = held_usd + %s WHERE batch_id = %s AND idx = %s",
                            [int(tokens), float(usd or 0.0), batch_id, idx])
                return True
            later_t = lim_t is None or tokens <= lim_t - (used_t - int(others_t))
            later_u = lim_u is None or usd is None or usd <= lim_u - (used_u - float(others_u)) + 1e-12
            if or_wait and later_t and later_u and (others_t or others_u):
                return False
        if short_t:
            left = max(0, int(lim_t - used_t))
            raise BudgetExceeded(
                f"the batch budget of {int(lim_t):,} tokens has {left:,} left across workers, "
                f"and this needs about {tokens:,}: refused before it ran. Raise the budget "
                "(--budget-tokens) and resume the batch", scope="batch", unit="tokens",
                needed=tokens, left=left)
        left_u = max(0.0, float(lim_u) - used_u)
        raise BudgetExceeded(
            f"the batch budget of ${float(lim_u):.4f} has ${left_u:.4f} left across workers, "
            f"and this needs about ${usd:.4f}: refused before it ran. Raise the budget "
            "(--budget-usd) and resume the batch", scope="batch", unit="usd", needed=usd,
            left=left_u)

    def release(self, batch_id: str, idx: int, held: tuple[int, float], tokens: int,
                usd: float | None) -> None:
        """Give back a hold and count what the call really used."""
        with self.store.transaction() as con:
            con.execute(
                """UPDATE batch_items SET held_tokens = greatest(0, held_tokens - %s),
                       held_usd = greatest(0, held_usd - %s), spent_tokens = spent_tokens + %s,
                       spent_usd = spent_usd + %s WHERE batch_id = %s AND idx = %s""",
                [int(held[0]), float(held[1]), int(tokens), float(usd or 0.0), batch_id, idx])

    def spent(self, batch_id: str) -> tuple[int, float]:
        """Tokens and USD every attempt at the batch's items spent or still holds."""
        with self.store.connect() as con:
            t, u = con.execute("SELECT coalesce(sum(spent_tokens + held_tokens), 0), "
                               "coalesce(sum(spent_usd + held_usd), 0) FROM batch_items "
                               "WHERE batch_id = %s", [batch_id]).fetchone()
        return int(t), float(u)

    def progress(self, batch_id: str) -> Progress:
        with self.store.connect() as con:
            row = con.execute(
                """SELECT count(*) FILTER (WHERE status = 'ok'),
                          count(*) FILTER (WHERE status = 'failed'),
                          count(*) FILTER (WHERE status = 'pending' AND error_kind = 'budget'),
                          count(*) FILTER (WHERE status = 'running'
                                           OR (status = 'pending' AND error_kind IS NULL)),
                          coalesce(sum(tokens), 0), coalesce(sum(cost_usd), 0),
                          count(*) FILTER (WHERE cost_usd IS NULL AND tokens > 0)
                   FROM batch_items WHERE batch_id = %s""", [batch_id]).fetchone()
        done, failed, left, waiting, tokens, cost, unpriced = row
        return Progress(int(done), int(failed), int(left), int(waiting), int(tokens),
                        float(cost or 0.0), bool(unpriced))

    def settle_state(self, batch_id: str) -> str | None:
        """Once nothing is waiting, the batch's final state (as an in-process batch ends)."""
        p = self.progress(batch_id)
        if not p.settled:
            return None
        if p.budget_left:
            state, note = "stopped", (f"{p.budget_left} item(s) refused by the batch budget: resume "
                                      "with a larger one")
        elif p.failed:
            state, note = "failed", f"{p.failed} item(s) failed: retry them with --retry-failed"
        else:
            state, note = "done", None
        self.set_state(batch_id, state, note)
        return state

    def queue_again(self, batch_id: str, idxs: Sequence[int]) -> None:
        """Items given to workers again (a resume): waiting, their old refusal cleared."""
        with self.store.connect() as con:
            con.execute("UPDATE batch_items SET status = 'pending', error = NULL, error_kind = NULL "
                        "WHERE batch_id = %s AND idx = ANY(%s) AND status <> 'ok'",
                        [batch_id, list(idxs)])

