"""A batch's budget shared by every worker answering it, kept in the database.

The budget guard (guard.py) estimates each model call and awaits ``areserve`` before it and
calls ``settle`` after it, as with an in-process :class:`Budget`. Here ``areserve`` holds the estimate
on the item in the batch's rows (``PgBatchStore.reserve``: one transaction that locks the
batch's row, checks every worker's spent and held tokens/USD against the limits, then holds),
so N workers together never pass the batch's limits (a call that would fit once other items'
calls settle waits for them, as the Scheduler's admission does in one process); ``settle`` turns the hold into what the
call used. The limits are read from the batch at each call, so a resume with a larger budget
counts at once. Which item a call belongs to comes from ``current_item`` (set by the worker
around each item's run).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from .budget import Budget, Reservation

WAIT = 0.1  # seconds between looks for room while other items' calls hold it
# (batch id, item index) of the item the running task answers
current_item: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "fourhosts_current_item", default=None)


@dataclass(frozen=True)
class SharedReservation(Reservation):
    batch_id: str = ""
    idx: int = -1


class SharedBudget(Budget):
    """The batch level of a worker's budget chain; see the module docstring."""

    def __init__(self, rows: Any, batch_id: str, tokens: int | None = None, usd: float | None = None,
                 *, parent: Budget | None = None) -> None:
        super().__init__(parent=parent, scope="batch")  # no limits in this process: the rows hold them
        Budget(tokens, usd, scope="batch")  # the numbers checked as for any budget
        self.rows = rows
        self.batch_id = batch_id
        self.shared_tokens = tokens
        self.shared_usd = usd

    @property
    def limited(self) -> bool:
        return self.shared_tokens is not None or self.shared_usd is not None or super().limited

    @property
    def needs_price(self) -> bool:
        return self.shared_usd is not None or super().needs_price

    def reserve(self, tokens: int, usd: float | None = 0.0) -> Reservation:
        """The blocking form (a caller off the event loop): refuses rather than waits."""
        idx = self._item()
        self.rows.reserve(self.batch_id, idx, tokens, usd)
        return self._local(idx, tokens, usd)

    async def areserve(self, tokens: int, usd: float | None = 0.0) -> Reservation:
        """What the guard awaits: hold the estimate in the database, waiting (off the event
        loop, so heartbeats go on) while other items' calls in flight hold the room it needs;
        BudgetExceeded when it can never fit."""
        import asyncio

        idx = self._item()
        while not await asyncio.to_thread(self.rows.reserve, self.batch_id, idx, tokens, usd,
                                          or_wait=True):
            await asyncio.sleep(WAIT)
        return self._local(idx, tokens, usd)

    def _item(self) -> int:
        item = current_item.get()
        if item is None or item[0] != self.batch_id:
            raise RuntimeError("a shared batch budget used outside one of its items")
        return item[1]

    def _local(self, idx: int, tokens: int, usd: float | None) -> SharedReservation:
        try:
            local = super().reserve(tokens, usd)  # the levels above (a session's), if any
        except BaseException:
            self.rows.release(self.batch_id, idx, (tokens, usd or 0.0), 0, 0.0)
            raise
        return SharedReservation(local.tokens, local.usd, local.chain, self.batch_id, idx)

    def settle(self, hold: Reservation | None, tokens: int = 0, usd: float | None = 0.0) -> None:
        if isinstance(hold, SharedReservation):
            self.rows.release(hold.batch_id, hold.idx, (hold.tokens, hold.usd), tokens, usd)
        super().settle(hold, tokens, usd)
