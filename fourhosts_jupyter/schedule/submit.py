"""``fh.batch(..., workers=True)``: give a batch to the workers of a shared PostgreSQL store.

The batch's rows are written as for an in-process batch, one queue job per item is added
(queue.py), and the caller watches the same progress bar while workers (``fourhosts worker``,
on any machine) answer: the bar follows the rows, read every ``poll`` seconds. The result is
the same DataFrame. Stopping the wait (Ctrl-C) does not stop the batch: workers go on, and
``fourhosts batch --list`` shows where it stands.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Callable

from ..errors import ConfigError
from ..redact import redact
from .batch import RUN_OPTIONS, BatchCounts, BatchProgress, compare_hosts, new_items
from .budget import Budget
from .worker import WORKERS_NEED_PG

LOST_AFTER = 3  # polls in a row with items waiting and no job left for them
NO_WORKER_HINT = 10.0  # seconds without a worker heartbeat before saying how to start one


async def abatch_workers(
    questions: Any = None,
    *,
    engine: Any,
    column: str | None = None,
    concurrency: Any = None,  # the workers' own (fourhosts worker --concurrency)
    budget_tokens: int | None = None,
    budget_usd: float | None = None,
    resume: str | None = None,
    retry_failed: bool = False,
    compare: Any = None,
    progress: bool = True,
    source: str | None = None,
    on_start: Callable[[str], None] | None = None,
    on_item: Any = None,
    poll: float = 0.25,
    **run_options: Any,
):  # noqa: ANN201 - pandas.DataFrame
    from ..memory.store import new_id
    from .batch_io import source_name
    from .pg_batch_store import PgBatchStore
    from .queue import enqueue, live_jobs, live_workers

    store = engine.store
    if not getattr(store, "is_postgres", False):
        raise ConfigError(WORKERS_NEED_PG)
    unknown = sorted(set(run_options) - set(RUN_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown batch option {unknown[0]!r}: use {', '.join(RUN_OPTIONS)}, "
                          "budget_tokens, budget_usd, resume, retry_failed, workers")
    Budget(budget_tokens, budget_usd, scope="batch")  # checks the numbers before anything runs
    rows = PgBatchStore(store)
    if resume:
        if questions is not None:
            raise ConfigError("give questions or resume=BATCH_ID, not both")
        info = await asyncio.to_thread(rows.info, resume)
        if info.state == "running":
            raise ConfigError(f"batch {resume} is still being answered: wait for it (fourhosts "
                              "batch --list shows where it stands)")
        batch_id, total = resume, info.total
        stored = info.options
        updates = {k: v for k, v in (("budget_tokens", budget_tokens), ("budget_usd", budget_usd))
                   if v is not None}
        await asyncio.to_thread(rows.claim, batch_id, None, **updates, **run_options, workers=True)
        todo = [i for i, _ in await asyncio.to_thread(rows.todo, batch_id, retry_failed=retry_failed)]
        await asyncio.to_thread(rows.queue_again, batch_id, todo)
        hosts = compare_hosts(stored.get("compare"))
    else:
        qs, hosts = new_items(questions, column, source, compare, run_options)
        batch_id, total = new_id("b_"), len(qs)
        # the workers use this kernel's model and server (never its keys: each worker has its own)
        s = engine.settings
        run_options.setdefault("model", s.model)
        run_options.setdefault("base_url", redact(s.base_url) if s.base_url else None)
        run_options = {k: v for k, v in run_options.items() if v is not None}
        options = {**run_options, "api": s.api, "workers": True, "budget_tokens": budget_tokens,
                   "budget_usd": budget_usd, **({"compare": [h.value for h in hosts]} if hosts else {})}
        await asyncio.to_thread(rows.create, batch_id, qs, source=source or source_name(questions),
                                column=column or "", options=options)
        todo = list(range(total))
    await enqueue(store.url, batch_id, todo)
    if on_start is not None:
        on_start(batch_id)

    p = await asyncio.to_thread(rows.progress, batch_id)
    counts = BatchCounts(total, done=p.done, failed=p.failed, left=total - p.done - p.failed)
    shown = total - len(todo)
    bar = BatchProgress(counts, enabled=progress, desc=f"batch {batch_id}")
    lost, hinted, since = 0, False, time.monotonic()
    try:
        while True:
            p = await asyncio.to_thread(rows.progress, batch_id)
            counts.done, counts.failed = p.done, p.failed
            counts.left = total - p.done - p.failed
            counts.tokens, counts.cost, counts.cost_known = p.tokens, p.cost, not p.unpriced
            for _ in range(max(0, p.done + p.failed + p.budget_left - shown)):
                bar.advance()
            shown = max(shown, p.done + p.failed + p.budget_left)
            if p.settled:
                break
            if not hinted and time.monotonic() - since > NO_WORKER_HINT:
                hinted = True
                if await asyncio.to_thread(live_workers, store) == 0:
                    print(f"batch {batch_id}: no worker is answering; start one with  fourhosts worker "
                          f"--store {redact(store.url)}", file=sys.stderr, flush=True)
            # a job that failed inside procrastinate (not an item's failure) leaves its item waiting
            lost = lost + 1 if await asyncio.to_thread(live_jobs, store, batch_id) == 0 else 0
            if lost >= LOST_AFTER:
                break
            await asyncio.sleep(poll)
    finally:
        bar.close()
    if lost >= LOST_AFTER:
        state, note = "failed", (f"{p.waiting} item(s) have no queue job left (see the workers' "
                                 "logs): resume the batch to queue them again")
        await asyncio.to_thread(rows.set_state, batch_id, state, note)
    else:
        state = await asyncio.to_thread(rows.settle_state, batch_id)
        note = (await asyncio.to_thread(rows.info, batch_id)).note
    df = await asyncio.to_thread(rows.results, batch_id)
    df.attrs.update(batch_id=batch_id, state=state, note=note or "", counts=counts.line(),
                    compare=[h.value for h in hosts])
    return df
