"""The scheduler: priority admission of async tasks, at most λ at once, inside a budget.

    sched = Scheduler(concurrency=8, budget=Budget(tokens=50_000, scope="batch"))
    h = sched.submit(run_one, question, priority=1, host="bernard", tokens=1_800)
    answer = await h              # or h.cancel(); h.status → pending | running | retrying | …
    sched.status()                # running, pending by host, budget usage
    sched.budget_usage()          # used / available / utilization

Admission. Pending tasks wait in a heap: higher ``priority`` first, then first come first
served. A free slot goes to the first pending task whose estimate fits what the budget has
left after the estimates of the tasks already running; a task that does not fit is skipped
(the smaller ones behind it still start) and waits while running tasks may still leave room.
When it can never fit (nothing runs, or its estimate passes what is left even with nothing
running) it fails with ``BudgetExceeded`` at once, before it ran. ``on_over_budget="fail"``
fails it as soon as it does not fit.

The estimate is held while the task runs; what the task really used is recorded by the work
itself (the engine's budget guard records each model call), so nothing is counted twice.

Retries. A task that raises an error marked ``retryable`` (errors.py: rate limits, timeouts,
dropped connections, 5xx, tool timeouts) runs again after an exponential backoff with full
jitter, ``uniform(0, min(cap, base·2^attempt))``, at least the server's Retry-After; any other
error fails the handle at once. The slot is given back during the backoff.

Every asyncio object is made on the loop that awaits it, so one Scheduler serves one event
loop at a time (a batch, a run); the budget may be shared across loops and threads.

Stopping. ``await sched.aclose()`` (or ``async with Scheduler(…) as sched``) cancels every task
it still holds — pending, running, backing off — and awaits them, so a stopped batch or run
leaves nothing pending for the end of its event loop (where the garbage collector would close
it outside its context). A handle cancelled before its task's first step still ends cancelled.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generator, Generic, TypeVar

from ..errors import BudgetExceeded, Cancelled, ConfigError
from .budget import Budget, BudgetUsage

T = TypeVar("T")

DEFAULT_CONCURRENCY = 8
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0

PENDING, RUNNING, RETRYING, DONE, FAILED, CANCELLED = (
    "pending", "running", "retrying", "done", "failed", "cancelled")

# The handle of the task running in this context (None outside the scheduler).
current_task: contextvars.ContextVar[TaskHandle[Any] | None] = contextvars.ContextVar(
    "fourhosts_current_task", default=None)


def backoff_delay(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                  retry_after: float | None = None, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds before retry number ``attempt`` (1, 2, …): full jitter over an exponential cap,
    never sooner than the server's ``retry_after``."""
    delay = rng(0.0, min(cap, base * 2 ** (attempt - 1)))
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), cap))
    return delay


def is_retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


class TaskHandle(Generic[T]):
    """What ``submit`` returns: await it for the result, ``cancel()`` it, read ``status``."""

    __slots__ = ("name", "priority", "host", "tokens", "usd", "status", "attempts", "error",
                 "submitted", "started", "finished", "_future", "_task", "_sched", "_seq",
                 "_call", "_retries", "delays")

    def __init__(self, sched: Scheduler, seq: int, call: Callable[[], Awaitable[T]], *, name: str,
                 priority: int, host: str | None, tokens: int, usd: float | None, retries: int) -> None:
        self.name = name
        self.priority = priority
        self.host = host
        self.tokens = tokens
        self.usd = usd
        self.status = PENDING
        self.attempts = 0
        self.error: BaseException | None = None
        self.submitted = time.perf_counter()
        self.started: float | None = None
        self.finished: float | None = None
        self.delays: list[float] = []  # the backoff slept before each retry
        self._future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[Any] | None = None
        self._sched = sched
        self._seq = seq
        self._call = call
        self._retries = retries

    def __lt__(self, other: TaskHandle[Any]) -> bool:  # heap order: priority, then arrival
        return (-self.priority, self._seq) < (-other.priority, other._seq)

    def __await__(self) -> Generator[Any, None, T]:
        return self._future.__await__()

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> T:
        return self._future.result()

    def cancel(self) -> bool:
        """Cancel the task (pending: it never starts; running: its coroutine is cancelled)."""
        if self._future.done():
            return False
        if self._task is not None:
            self._task.cancel()
        else:
            self._sched._drop(self)
            self._finish(CANCELLED, cancel=True)
        return True

    def _finish(self, status: str, value: Any = None, error: BaseException | None = None,
                cancel: bool = False) -> None:
        self.status = status
        self.finished = time.perf_counter()
        if self._future.done():
            return
        if cancel:
            self._future.cancel()
        elif error is not None:
            self.error = error
            self._future.set_exception(error)
        else:
            self._future.set_result(value)

    def __repr__(self) -> str:
        return f"<TaskHandle {self.name} {self.status} priority={self.priority} host={self.host}>"


@dataclass(frozen=True)
class SchedulerStatus:
    running: int
    pending: dict[str, int] = field(default_factory=dict)  # host ("-" for none) → waiting tasks
    retrying: int = 0
    done: int = 0
    failed: int = 0
    concurrency: int = DEFAULT_CONCURRENCY
    budget: BudgetUsage | None = None

    def __str__(self) -> str:
        pend = ", ".join(f"{h} {n}" for h, n in sorted(self.pending.items())) or "none"
        line = (f"running {self.running}/{self.concurrency} · pending {pend} · retrying "
                f"{self.retrying} · done {self.done} · failed {self.failed}")
        return line + (f" · {self.budget}" if self.budget is not None else "")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        import html

        return {"text/plain": str(self), "text/html": f"<code>{html.escape(str(self))}</code>"}


class Scheduler:
    """Runs submitted coroutines by priority, at most ``concurrency`` at once, within ``budget``."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY, *, budget: Budget | None = None,
                 retries: int = 2, backoff: float = BACKOFF_BASE, backoff_cap: float = BACKOFF_CAP,
                 on_over_budget: str = "wait",
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be a whole number ≥ 1, not {concurrency!r}")
        if on_over_budget not in ("wait", "fail"):
            raise ConfigError(f"on_over_budget must be 'wait' or 'fail', not {on_over_budget!r}")
        self.concurrency = concurrency
        self.budget = budget
        self.retries = retries
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.on_over_budget = on_over_budget
        self._sleep = sleep
        self._heap: list[TaskHandle[Any]] = []
        self._running: set[TaskHandle[Any]] = set()
        self._retrying = 0
        self._held_tokens = 0  # estimates of the running tasks
        self._held_usd = 0.0
        self._seq = itertools.count()
        self._done = 0
        self._failed = 0
        self._tasks: set[asyncio.Task[Any]] = set()  # every task started and not yet ended
        self._closed = False

    async def __aenter__(self) -> Scheduler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- public ------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any, priority: int = 0,
               host: str | None = None, tokens: int = 0, usd: float | None = None,
               retries: int | None = None, name: str | None = None, **kwargs: Any) -> TaskHandle[T]:
        """Queue ``fn(*args, **kwargs)`` (called again for each retry). Must be called on the
        event loop that will run it. ``tokens`` / ``usd``: the cost estimate held while it runs."""
        if self._closed:
            raise Cancelled("the scheduler is closed (its batch or run was stopped): start a new one")
        seq = next(self._seq)
        call = (lambda: fn(*args, **kwargs)) if (args or kwargs) else fn
        h: TaskHandle[T] = TaskHandle(
            self, seq, call, name=name or getattr(fn, "__name__", "task"), priority=priority,
            host=host, tokens=int(tokens), usd=usd,
            retries=self.retries if retries is None else retries)
        heapq.heappush(self._heap, h)
        self._pump()
        return h

    def status(self) -> SchedulerStatus:
        pending = Counter(h.host or "-" for h in self._heap)
        return SchedulerStatus(len(self._running), dict(pending), self._retrying, self._done,
                               self._failed, self.concurrency, self.budget_usage())

    def budget_usage(self) -> BudgetUsage | None:
        """Used / available / utilization of the scheduler's budget (None without one)."""
        return self.budget.usage() if self.budget is not None else None

    async def aclose(self) -> None:
        """Cancel every task not finished (pending ones never start) and await them all."""
        self._closed = True
        for h in list(self._heap):
            h.cancel()
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        interrupted = False
        while tasks:  # awaited even if this is cancelled meanwhile: nothing is left behind
            try:
                await asyncio.gather(*tasks, return_exceptions=True)
            except asyncio.CancelledError:
                interrupted = True
            tasks = [t for t in tasks if not t.done()]
        if interrupted:
            raise asyncio.CancelledError

    async def join(self) -> None:
        """Wait until nothing is pending or running."""
        while self._heap or self._running or self._retrying:
            waiting = [h._future for h in (*self._running, *self._heap)]
            if waiting:
                await asyncio.wait(waiting)
            else:
                await asyncio.sleep(0.01)

    # -- admission ---------------------------------------------------------------------------

    def _pump(self) -> None:
        if self._closed:
            return
        heap = self._heap
        while heap and len(self._running) < self.concurrency:
            top = heap[0]
            if self.budget is None or (top.tokens == 0 and not top.usd) or self._fits(top) is None:
                heapq.heappop(heap)
                self._start(top)
                continue
            if not self._admit_past_blocked():
                return

    def _fits(self, h: TaskHandle[Any]) -> BudgetExceeded | None:
        assert self.budget is not None
        return self.budget.shortfall(h.tokens, h.usd, extra_tokens=self._held_tokens,
                                     extra_usd=self._held_usd)

    def _admit_past_blocked(self) -> bool:
        """The top does not fit: fail the ones that never can, start the first that fits.
        Returns whether something changed (so the pump goes on)."""
        assert self.budget is not None
        changed = False
        for h in sorted(self._heap):
            err = self._fits(h)
            if err is None:
                self._heap.remove(h)
                heapq.heapify(self._heap)
                self._start(h)
                return True
            never = self.budget.shortfall(h.tokens, h.usd, ignore_reserved=True)
            if self.on_over_budget == "fail" or never is not None or not self._running:
                self._heap.remove(h)
                heapq.heapify(self._heap)
                self._failed += 1
                h._finish(FAILED, error=never or err)
                changed = True
        return changed

    def _drop(self, h: TaskHandle[Any]) -> None:
        try:
            self._heap.remove(h)
            heapq.heapify(self._heap)
        except ValueError:
            pass

    def _start(self, h: TaskHandle[Any]) -> None:
        self._running.add(h)
        self._held_tokens += h.tokens
        self._held_usd += h.usd or 0.0
        h.status = RUNNING
        h.started = time.perf_counter()
        h._task = task = asyncio.get_running_loop().create_task(self._run(h), name=h.name)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._ended(h, t))

    def _ended(self, h: TaskHandle[Any], task: asyncio.Task[Any]) -> None:
        # A task cancelled before its first step never ran ``_run`` (nor its finally): settle
        # its handle and give its slot back here.
        self._tasks.discard(task)
        if not h.done():
            h._finish(CANCELLED, cancel=True)
            self._release(h)
            self._pump()

    def _release(self, h: TaskHandle[Any]) -> None:
        if h in self._running:
            self._running.discard(h)
            self._held_tokens -= h.tokens
            self._held_usd -= h.usd or 0.0

    async def _run(self, h: TaskHandle[Any]) -> None:
        # Set in this task's own context (a copy made for it), which ends with the task: no
        # reset, so nothing depends on the context the coroutine is finally closed in.
        current_task.set(h)
        try:
            while True:
                h.attempts += 1
                try:
                    value = await h._call()
                except asyncio.CancelledError:
                    h._finish(CANCELLED, cancel=True)
                    return
                except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the handle
                    if not is_retryable(exc) or h.attempts > h._retries:
                        self._failed += 1
                        h._finish(FAILED, error=exc)
                        return
                    delay = backoff_delay(h.attempts, base=self.backoff, cap=self.backoff_cap,
                                          retry_after=getattr(exc, "retry_after", None))
                    h.delays.append(delay)
                    if not await self._back_off(h, delay):
                        return
                    continue
                self._done += 1
                h._finish(DONE, value)
                return
        finally:
            self._release(h)
            self._pump()

    async def _back_off(self, h: TaskHandle[Any], delay: float) -> bool:
        """Sleep ``delay`` with the slot given back, then wait for a slot again."""
        self._release(h)
        h.status = RETRYING
        self._retrying += 1
        self._pump()
        try:
            await self._sleep(delay)
            while len(self._running) >= self.concurrency:  # a retry goes ahead of new work
                await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            h._finish(CANCELLED, cancel=True)
            return False
        finally:
            self._retrying -= 1
        self._running.add(h)
        self._held_tokens += h.tokens
        self._held_usd += h.usd or 0.0
        h.status = RUNNING
        return True
