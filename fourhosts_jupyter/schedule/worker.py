"""Batch workers on the shared PostgreSQL store: ``fourhosts worker --store postgresql://…``.

A worker takes batch items from the durable queue (queue.py, procrastinate) and answers each
with the engine, at most ``concurrency`` at once through the :class:`Scheduler`, recording
every outcome in the batch's rows (pg_batch_store.py). Any number of workers on any machines
serve one store; a kernel submits with ``fh.batch(..., workers=True)`` (submit.py).

- **Lease.** Each worker sends a heartbeat every ``heartbeat`` seconds (procrastinate's worker
  table). A worker silent for ``lease`` seconds is taken for dead (``kill -9``, a lost machine):
  every live worker looks for such jobs each heartbeat and puts them back on the queue, so
  another worker answers the item. Nothing is lost.
- **Never twice.** A retried item whose first attempt did finish is not answered again
  (``begin`` finds it answered); two attempts racing to the end record one answer
  (``record``: the item's row locked, ``batch_results`` keyed by batch + item).
- **Budgets across workers.** Each model call's estimate is reserved in the database before
  the call (shared_budget.py), so N workers together never pass the batch's limits.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .batch_store import ItemResult
from .pg_batch_store import PgBatchStore, worker_name
from .queue import QUEUE, ensure_queue, make_app
from .scheduler import Scheduler
from .shared_budget import SharedBudget, current_item

log = logging.getLogger("fourhosts.worker")

WORKERS_NEED_PG = ("workers need a PostgreSQL store: pass --store postgresql://… "
                   "(or set FOURHOSTS_STORE to it)")


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 4
    heartbeat: float = 10.0  # seconds between heartbeats (and between looks for silent workers)
    lease: float = 30.0  # a worker silent this long is taken for dead; its items go back

    def check(self) -> WorkerConfig:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be ≥ 1, not {self.concurrency}")
        if not 0 < self.heartbeat < self.lease:
            raise ConfigError(f"the lease ({self.lease:g} s) must be longer than the heartbeat "
                              f"({self.heartbeat:g} s): pass --lease larger than --heartbeat")
        return self


async def _task(context: Any, batch_id: str, idx: int) -> None:
    """The queue's task: hand the item to this process's worker."""
    await context.additional_context["fourhosts_worker"].answer(batch_id, idx)


class Worker:
    """Answers queued batch items of ``store`` (a PgStore) until stopped (SIGINT / SIGTERM)."""

    def __init__(self, store: Any, config: WorkerConfig | None = None, *, settings: Any = None) -> None:
        if not getattr(store, "is_postgres", False):
            raise ConfigError(WORKERS_NEED_PG)
        self.store = store
        self.config = (config or WorkerConfig()).check()
        self.settings = settings
        self.rows = PgBatchStore(store)
        self.name = worker_name()
        self.answered = 0
        self.skipped = 0  # items found answered already (a retried job whose first attempt finished)
        self._engines: dict[tuple[Any, Any, Any], Any] = {}
        self._base: Any = None
        self._sched: Scheduler | None = None

    async def run(self) -> None:
        ensure_queue(self.store.url)
        app = make_app(self.store.url, task=_task)
        self._sched = Scheduler(self.config.concurrency, retries=0)
        cfg = self.config
        async with app.open_async():
            reclaim = asyncio.create_task(self._reclaim(app))
            try:
                await app.run_worker_async(
                    queues=[QUEUE], concurrency=cfg.concurrency, name=self.name,
                    update_heartbeat_interval=cfg.heartbeat, stalled_worker_timeout=cfg.lease,
                    fetch_job_polling_interval=min(cfg.heartbeat, 5.0), delete_jobs="successful",
                    additional_context={"fourhosts_worker": self})
            finally:
                reclaim.cancel()
                await self._sched.aclose()  # a stopped worker's items stop with it, awaited
                await asyncio.gather(reclaim, return_exceptions=True)
                for engine in self._engines.values():
                    await engine._provider.close()

    async def _reclaim(self, app: Any) -> None:
        """Each heartbeat: put the jobs of workers silent past the lease back on the queue."""
        jm = app.job_manager
        while True:
            await asyncio.sleep(self.config.heartbeat)
            try:
                stalled = await jm.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=self.config.lease)
                for job in stalled:
                    try:
                        await jm.retry_job(job)
                    except Exception:  # noqa: BLE001 - another worker put it back first
                        continue
                    log.warning("item %s of batch %s put back on the queue: its worker went silent",
                                job.task_kwargs.get("idx"), job.task_kwargs.get("batch_id"))
            except Exception as exc:  # noqa: BLE001 - a lost connection: try again next beat
                log.warning("could not look for silent workers: %s", exc)

    async def answer(self, batch_id: str, idx: int) -> None:
        assert self._sched is not None
        await self._sched.submit(self._answer, batch_id, idx, name=f"{batch_id}#{idx}")

    async def _answer(self, batch_id: str, idx: int) -> None:
        from .batch import answer_item, compare_hosts

        claimed = await asyncio.to_thread(self.rows.begin, batch_id, idx, self.name)
        if claimed is None:
            self.skipped += 1
            return
        question, _attempt = claimed
        info = await asyncio.to_thread(self.rows.info, batch_id)
        opts = info.options
        run_options = {k: opts[k] for k in ("paradigm", "effort", "model", "base_url", "top_k")
                       if opts.get(k) is not None}
        hosts = compare_hosts(opts.get("compare"))
        if hosts:
            run_options["paradigm"] = hosts[idx % len(hosts)].value
        budget = None
        if opts.get("budget_tokens") is not None or opts.get("budget_usd") is not None:
            budget = SharedBudget(self.rows, batch_id, opts.get("budget_tokens"), opts.get("budget_usd"))
        engine = self._engine(opts.get("model"), opts.get("base_url"), opts.get("api"))
        token = current_item.set((batch_id, idx))
        try:
            r = await answer_item(engine, idx, question, budget, run_options)
        except ConfigError as exc:  # the batch's options: recorded, the worker goes on
            r = ItemResult(idx, "failed", error=str(exc), error_kind="config")
        finally:
            current_item.reset(token)
        if await asyncio.to_thread(self.rows.record, batch_id, r, self.name):
            self.answered += r.status == "ok"
        await asyncio.to_thread(self.rows.settle_state, batch_id)

    def _engine(self, model: str | None, base_url: str | None, api: str | None) -> Any:
        """One engine (one provider, one HTTP pool) per model, server and API, shared by items;
        keys come from this worker's environment."""
        from dataclasses import replace

        from ..engine import Engine
        from .batch import _SharedProvider

        if self._base is None:
            from ..config import Settings

            settings = self.settings or Settings.from_env(store_path=self.store.url)
            self._base = Engine(settings, store=self.store)
        key = (model, base_url, api)
        if key not in self._engines:
            base = self._base
            settings = replace(base.settings, api=api) if api else base.settings
            engine = Engine(settings, store=self.store, tools=base.tools, embedder=base.embedder)
            provider = _SharedProvider(engine.provider_for(model, base_url))
            self._engines[key] = Engine(settings, store=self.store, provider=provider,
                                        tools=base.tools, embedder=base.embedder)
        return self._engines[key]
