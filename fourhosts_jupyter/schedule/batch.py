"""Batch research: many questions through the scheduler, durable, resumable, in budget.

    df = fh.batch(["How …?", "Why …?"], concurrency=8, budget_tokens=200_000)
    df = fh.batch(frame, column="question", paradigm="bernard")
    df = fh.batch(resume="b_…")                 # finish what a stopped batch left
    df = fh.batch(resume="b_…", retry_failed=True)

Each question is one research run (the engine's, with its own run id), a task of one
:class:`Scheduler` with ``concurrency`` slots, inside one event loop (DuckDB allows one writing
process: the batch stays in this process). The batch and each item are rows in the store,
written as each item finishes (batch_store.py), so after a budget stop, Ctrl-C, a kernel
restart or ``kill -9``, ``resume=`` answers only what did not finish. A failed item goes to the
dead-letter table with its error; ``retry_failed=True`` runs those again.

Budgets: ``budget_tokens`` / ``budget_usd`` are the batch's (every run's model calls are
checked against it before they are made, under the session's budget if there is one). A
question the budget cannot pay for is left pending (not failed) and the batch ends
``stopped``: resume it with a larger budget.

The result is a DataFrame (RESULT_COLUMNS) of every item of the batch in input order, with
``df.attrs["batch_id"]`` and ``df.attrs["state"]``.

``workers=True`` (a ``postgresql://`` store): the items go to a queue in the database and
``fourhosts worker`` processes on any machine answer them, while this call shows the same bar and
returns the same frame (submit.py, worker.py).

``compare=True`` (or ``"dolores,bernard"``; ``fourhosts batch … --compare [HOSTS]``): every
question is answered by each host, one item per question per host (``host`` says which), in
question order then host order. Long form on purpose: each host's run keeps its own status,
error, tokens, cost and resume, and an analyst gets the wide view with one call,
``df.pivot(index="question", columns="host", values="answer")`` (or ``tokens``, ``cost``),
or ``df.groupby("host")[["tokens", "cost", "seconds"]].sum()``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TextIO

from ..errors import BudgetExceeded, ConfigError, RunError
from ..llm.base import WrappedProvider
from .batch_store import ItemResult, batch_rows
from .budget import Budget
from .scheduler import DEFAULT_CONCURRENCY, Scheduler

RUN_OPTIONS = ("paradigm", "effort", "model", "base_url", "top_k")


@dataclass
class BatchCounts:
    total: int
    done: int = 0
    failed: int = 0
    left: int = 0
    tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    stopped: list[str] = field(default_factory=list)  # why items were left (budget)

    def line(self) -> str:
        if self.cost_known:
            cost = f"${self.cost:.4f}"
        else:  # never a guess: an unpriced model's cost is unknown, not $0
            cost = f"${self.cost:.4f} + unpriced calls" if self.cost else "cost unknown (no price)"
        return (f"done {self.done} · failed {self.failed} · left {self.left} · "
                f"{self.tokens:,} tokens · {cost}")


class BatchProgress:
    """tqdm: a widget in a notebook, a bar on a terminal; plain lines into a log or a pipe."""

    def __init__(self, counts: BatchCounts, *, enabled: bool = True, stream: TextIO | None = None,
                 desc: str = "batch") -> None:
        from ..memory.progress import _in_kernel, _is_terminal

        self.counts = counts
        self._stream = stream or sys.stderr
        self._bar: Any = None
        self._last = 0.0
        self._started = time.monotonic()
        self._lines = False
        if not enabled:
            return
        if _in_kernel():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=counts.total, initial=counts.done, desc=desc, unit="q")
        elif _is_terminal(self._stream):
            from tqdm import tqdm

            self._bar = tqdm(total=counts.total, initial=counts.done, desc=desc, unit="q",
                             file=self._stream)
        else:
            self._lines = True
        self._post()

    def _post(self) -> None:
        if self._bar is not None:
            c = self.counts
            self._bar.set_postfix_str(c.line(), refresh=False)

    def advance(self) -> None:
        if self._bar is not None:
            self._post()
            self._bar.update(1)
        elif self._lines and time.monotonic() - self._last >= 5.0:
            self._line()

    def _line(self) -> None:
        self._last = time.monotonic()
        self._stream.write(f"batch: {self.counts.line()} · {self._last - self._started:.0f} s\n")
        self._stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._post()
            self._bar.refresh()
            self._bar.close()
        elif self._lines:
            self._line()


def item_estimate(question: str, model: str, effort: str | None) -> int:
    """Tokens a question's first model call needs at least (its prompt without sources, plus
    the output cap): a question that cannot get that is not started."""
    from ..llm.base import ModelRequest
    from .guard import estimate_call

    req = ModelRequest(messages=[{"role": "user", "content": question}], effort=effort or "medium")
    return estimate_call(req, model).tokens


async def abatch(questions: Any = None, **options: Any):  # noqa: ANN201 - pandas.DataFrame
    """The async core of :func:`batch` (see the module docstring)."""
    engine = options.pop("engine", None)
    if engine is None:
        from ..config import Settings
        from ..engine import Engine

        store = options.pop("store", None)
        if store is not None and not isinstance(store, (str, bytes, os.PathLike)):  # a store
            engine = Engine(store=store)
        else:
            engine = Engine(Settings.from_env(store_path=store))
    from .batch_store import kept_open

    if options.pop("workers", False):  # the shared store's workers answer it (submit.py)
        from .submit import abatch_workers

        return await abatch_workers(questions, engine=engine, **options)
    if options.get("resume"):  # the stored model and server, unless given again
        stored = (await asyncio.to_thread(batch_rows(engine.store).info, options["resume"])).options
        for key in ("model", "base_url"):
            if options.get(key) is None and stored.get(key) is not None:
                options[key] = stored[key]
    # One provider (one HTTP client, one connection pool) for every run of the batch: building
    # a client costs ~20-40 ms (its SSL context), once per question otherwise.
    provider = _SharedProvider(engine.provider_for(options.get("model"), options.get("base_url")))
    shared = type(engine)(engine.settings, store=engine.store, provider=provider, tools=engine.tools,
                          embedder=engine._embedder, budget=engine.budget)
    try:
        with kept_open(engine.store):
            return await _abatch(questions, engine=shared, **options)
    finally:
        await provider.close()


class _SharedProvider(WrappedProvider):
    """A provider kept open across runs: each run's ``aclose`` is a no-op; ``close`` ends it."""

    async def aclose(self) -> None:
        pass

    async def close(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            await self.inner.aclose()


def new_items(questions: Any, column: str | None, source: str | None, compare: Any,
              run_options: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """A new batch's items and compared hosts: under compare, one item per question per host."""
    from .batch_io import questions_from

    if questions is None:
        raise ConfigError("no questions: give a list, a DataFrame and column=, or resume=BATCH_ID")
    qs = questions_from(questions, column, source=source or "")
    hosts = compare_hosts(compare)
    if hosts and run_options.get("paradigm"):
        raise ConfigError("give --compare HOSTS or --paradigm HOST, not both")
    return ([q for q in qs for _ in hosts] if hosts else qs), hosts


async def _abatch(
    questions: Any = None,
    *,
    column: str | None = None,
    engine: Any,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget_tokens: int | None = None,
    budget_usd: float | None = None,
    resume: str | None = None,
    retry_failed: bool = False,
    compare: Any = None,
    progress: bool = True,
    source: str | None = None,
    on_item: Callable[[ItemResult], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    **run_options: Any,
):  # noqa: ANN201 - pandas.DataFrame
    from ..memory.store import new_id
    from .batch_io import source_name

    unknown = sorted(set(run_options) - set(RUN_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown batch option {unknown[0]!r}: use {', '.join(RUN_OPTIONS)}, "
                          "concurrency, budget_tokens, budget_usd, resume, retry_failed")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a whole number ≥ 1, not {concurrency!r}")
    Budget(budget_tokens, budget_usd, scope="batch")  # checks the numbers before anything runs
    rows = batch_rows(engine.store)

    if resume:
        if questions is not None:
            raise ConfigError("give questions or resume=BATCH_ID, not both")
        info = await asyncio.to_thread(rows.info, resume)
        if info.state == "running":
            raise ConfigError(f"batch {resume} is running in another process (pid alive); wait "
                              "for it or stop it first")
        batch_id = resume
        stored = info.options
        if compare and [h.value for h in compare_hosts(compare)] != list(stored.get("compare") or []):
            raise ConfigError(f"batch {resume} was made with compare={stored.get('compare')}: resume it "
                              "without --compare (its items are fixed)")
        hosts = compare_hosts(stored.get("compare"))
        run_options = {**{k: v for k, v in stored.items() if k in RUN_OPTIONS}, **run_options}
        budget_tokens = budget_tokens if budget_tokens is not None else stored.get("budget_tokens")
        budget_usd = budget_usd if budget_usd is not None else stored.get("budget_usd")
        updates = {"budget_tokens": budget_tokens, "budget_usd": budget_usd,
                   "concurrency": concurrency, **run_options,
                   **({"workers": False} if stored.get("workers") else {})}  # this process now
        await asyncio.to_thread(rows.claim, batch_id, **updates)
        total = info.total
    else:
        qs, hosts = new_items(questions, column, source, compare, run_options)
        batch_id = new_id("b_")
        options = {**run_options, "concurrency": concurrency, "budget_tokens": budget_tokens,
                   "budget_usd": budget_usd, **({"compare": [h.value for h in hosts]} if hosts else {})}
        await asyncio.to_thread(rows.create, batch_id, qs, source=source or source_name(questions),
                                column=column or "", options=options)
        total = len(qs)

    if on_start is not None:
        on_start(batch_id)
    todo = await asyncio.to_thread(rows.todo, batch_id, retry_failed=retry_failed)
    used_tokens, used_usd = await asyncio.to_thread(rows.used, batch_id)
    budget = Budget(budget_tokens, budget_usd, parent=engine.budget, scope="batch")
    # what finished before counts against the batch's budget (failed items given again do not)
    budget.used_tokens, budget.used_usd = used_tokens, used_usd
    before = await asyncio.to_thread(rows.info, batch_id)
    counts = BatchCounts(total, done=before.done, failed=0 if retry_failed else before.failed,
                         left=len(todo), tokens=used_tokens, cost=used_usd)
    bar = BatchProgress(counts, enabled=progress, desc=f"batch {batch_id}")
    sched = Scheduler(concurrency, budget=budget, retries=0)
    model = run_options.get("model") or engine.settings.model or ""

    async def one(idx: int, question: str) -> ItemResult:
        await asyncio.to_thread(rows.started, batch_id, idx)
        opts = {**run_options, "paradigm": hosts[idx % len(hosts)].value} if hosts else run_options
        return await answer_item(engine, idx, question, budget, opts)

    async def settle(idx: int, question: str, handle: Any) -> None:
        try:
            r = await handle
        except BudgetExceeded as exc:  # refused at admission: never started
            r = ItemResult(idx, "pending", error=str(exc), error_kind="budget")
        await asyncio.to_thread(rows.finish, batch_id, r)
        counts.left -= 1
        if r.status == "ok":
            counts.done += 1
        elif r.status == "failed":
            counts.failed += 1
        else:
            counts.left += 1  # still left: the budget stopped it
            counts.stopped.append(r.error or "budget")
        counts.tokens += r.tokens
        if r.cost_usd is None and r.tokens:
            counts.cost_known = False
        counts.cost += r.cost_usd or 0.0
        bar.advance()
        if on_item is not None:
            on_item(r)

    state, note = "running", None
    try:
        waits = []
        for idx, q in todo:
            est = item_estimate(q, model, run_options.get("effort"))
            host = hosts[idx % len(hosts)].value if hosts else None
            h = sched.submit(one, idx, q, tokens=est if budget.limited else 0, name=f"item {idx}", host=host)
            waits.append(settle(idx, q, h))
        await asyncio.gather(*waits)
        if counts.stopped:
            state, note = "stopped", counts.stopped[0]
        elif counts.failed:
            state, note = "failed", f"{counts.failed} item(s) failed: retry them with --retry-failed"
        else:
            state = "done"
    except (asyncio.CancelledError, KeyboardInterrupt):
        state, note = "interrupted", "interrupted: resume it with --resume"
        raise
    except BaseException as exc:
        state, note = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        try:  # a stopped batch stops its runs too, and awaits them (each records its end)
            await sched.aclose()
        finally:
            bar.close()
            # written even while cancelled: a blocking write here beats a batch left "running"
            rows.set_state(batch_id, state, note)
    df = await asyncio.to_thread(rows.results, batch_id)
    df.attrs.update(batch_id=batch_id, state=state, note=note or "", counts=counts.line(),
                    compare=[h.value for h in hosts])
    return df


async def answer_item(engine: Any, idx: int, question: str, budget: Any,
                      opts: dict[str, Any]) -> ItemResult:
    """One item's research run as an ItemResult (a budget refusal leaves it pending)."""
    t = time.perf_counter()
    try:
        answer = await engine.aresearch(question, budget=budget, **opts)
    except RunError as exc:
        kind = exc.kind
        status = "pending" if kind == "budget" else "failed"
        return ItemResult(idx, status, exc.run_id, seconds=time.perf_counter() - t,
                          error=str(exc), error_kind=kind, answer=exc.partial_text)
    except ConfigError:
        raise  # a mistake in the options: every item would fail the same way
    except Exception as exc:  # noqa: BLE001 - one item's failure must not stop the batch
        return ItemResult(idx, "failed", seconds=time.perf_counter() - t,
                          error=f"{type(exc).__name__}: {exc}", error_kind="internal")
    c = answer.classification
    return ItemResult(
        idx, "ok", answer.run_id, host=c.primary.value,
        probabilities={k.value if hasattr(k, "value") else str(k): round(float(v), 4)
                       for k, v in c.probabilities.items()},
        answer=answer.text,
        sources=[{"n": s.n, "title": s.title, "origin": s.origin} for s in answer.sources],
        tokens=answer.usage.total_tokens, cost_usd=answer.usage.cost_usd,
        seconds=time.perf_counter() - t)


def compare_hosts(value: Any) -> tuple[Any, ...]:
    """The hosts of a compare batch: nothing for ``None`` / ``False``; all four for ``True`` /
    ``"all"``; else a list or "dolores,bernard" (at least two)."""
    if value is None or value is False:
        return ()
    from ..comparison import parse_hosts

    return parse_hosts(None if value is True else value)


def batch(questions: Any = None, **options: Any):  # noqa: ANN201 - pandas.DataFrame
    """Research many questions (sync twin of :func:`abatch`; safe inside Jupyter's loop).

    Ctrl-C (or a kernel interrupt) stops it: what finished is kept; ``resume=`` finishes it."""
    box: dict[str, Any] = {}

    async def main() -> None:
        box["loop"] = asyncio.get_running_loop()
        box["task"] = asyncio.current_task()
        box["value"] = await abatch(questions, **options)

    def worker() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = exc

    t = threading.Thread(target=worker, name="fourhosts-batch", daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(0.1)  # a timeout keeps Ctrl-C / a kernel interrupt responsive
    except KeyboardInterrupt:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["task"].cancel)
        t.join(30)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def list_batches(store: Any = None):  # noqa: ANN201 - pandas.DataFrame
    """Every batch in the store, newest first: id, source, state, done, failed, left, …"""
    import pandas as pd

    from ..config import Settings
    from ..memory.backends import open_store

    if store is None or isinstance(store, (str, bytes, os.PathLike)):
        store = open_store(Settings.from_env(store_path=store).resolved_store_path())
    return pd.DataFrame([b.to_dict() for b in batch_rows(store).list()],
                        columns=["id", "source", "state", "done", "failed", "left", "total", "note",
                                 "created_at"])


__all__: Sequence[str] = ("BatchCounts", "abatch", "batch", "item_estimate", "list_batches")
