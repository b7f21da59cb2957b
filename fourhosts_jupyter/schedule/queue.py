"""The durable queue of batch items on the shared PostgreSQL store, through ``procrastinate``.

One job per batch item (``{"batch_id", "idx"}``) on the queue ``fourhosts-batch``; workers
(``fourhosts worker``, worker.py) take them. procrastinate brings what a queue across machines
needs and we do not write again: ``SELECT … FOR UPDATE SKIP LOCKED`` fetching, LISTEN/NOTIFY
wake-ups, worker heartbeats, and finding the jobs of a worker whose heartbeat stopped.

Its tables live in a schema of their own, ``fourhosts_queue``, beside ``fourhosts``: they are
procrastinate's (created from its ``schema.sql`` on first use, under an advisory lock, and
upgraded with its own migrations), not steps of ours, so a procrastinate upgrade never
rewrites a fourhosts migration. procrastinate is imported only when a batch uses workers.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import StorageError
from ..redact import redact

QUEUE = "fourhosts-batch"
QUEUE_SCHEMA = "fourhosts_queue"
TASK = "fourhosts.batch_item"


def _procrastinate() -> Any:
    try:
        import procrastinate
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("workers need procrastinate: pip install 'fourhosts-jupyter[postgres]'") from None
    return procrastinate


def ensure_queue(url: str) -> None:
    """Create procrastinate's tables in ``fourhosts_queue`` unless they are there."""
    _procrastinate()
    import psycopg
    from procrastinate import schema

    try:
        with psycopg.connect(url) as con:
            con.execute("SELECT pg_advisory_xact_lock(hashtext('fourhosts_queue.schema'))")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {QUEUE_SCHEMA}")
            found = con.execute("SELECT to_regclass(%s)", [f"{QUEUE_SCHEMA}.procrastinate_jobs"]).fetchone()[0]
            if found is None:
                con.execute(f"SET LOCAL search_path TO {QUEUE_SCHEMA}")
                con.execute(schema.SchemaManager.get_schema())
    except psycopg.Error as exc:
        raise StorageError(f"cannot set up the batch queue in {redact(url)}: "
                           f"{str(exc).strip().splitlines()[0]}") from exc


def make_app(url: str, task: Any = None) -> Any:
    """A procrastinate App on ``url`` (its connections see ``fourhosts_queue`` first) with the
    batch-item task registered (``task``: the coroutine workers run; a submitter needs none)."""
    procrastinate = _procrastinate()
    connector = procrastinate.PsycopgConnector(
        conninfo=url, kwargs={"options": f"-c search_path={QUEUE_SCHEMA}"}, min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)

    async def _placeholder(context: Any, batch_id: str, idx: int) -> None:  # pragma: no cover
        raise StorageError("this process only submits batch items; a worker answers them")

    app.task(name=TASK, queue=QUEUE, pass_context=True)(task or _placeholder)
    return app


async def enqueue(url: str, batch_id: str, idxs: Sequence[int]) -> int:
    """One job per item; returns how many were queued."""
    if not idxs:
        return 0
    ensure_queue(url)
    app = make_app(url)
    async with app.open_async():
        await app.tasks[TASK].batch_defer_async(*[{"batch_id": batch_id, "idx": int(i)} for i in idxs])
    return len(idxs)


def live_jobs(store: Any, batch_id: str) -> int:
    """The batch's jobs still queued or being answered."""
    with store.connect() as con:
        return int(con.execute(
            f"""SELECT count(*) FROM {QUEUE_SCHEMA}.procrastinate_jobs WHERE queue_name = %s
                AND status IN ('todo', 'doing') AND args->>'batch_id' = %s""",
            [QUEUE, batch_id]).fetchone()[0])


def live_workers(store: Any, within: float = 60.0) -> int:
    """Workers whose last heartbeat is at most ``within`` seconds old."""
    with store.connect() as con:
        return int(con.execute(
            f"""SELECT count(*) FROM {QUEUE_SCHEMA}.procrastinate_workers
                WHERE last_heartbeat > now() - make_interval(secs => %s)""", [within]).fetchone()[0])
