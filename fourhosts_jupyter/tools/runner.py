"""Running one tool call so that nothing a tool or a model does can crash the run.

For each call: parse the JSON arguments, find the tool among those offered, validate, check the
tool's circuit breaker, run it under a timeout (per tool, × the host's multiplier) with retries
for retryable errors only, and hand back what the model should read. Every failure (unknown
tool, malformed JSON, invalid arguments, exception, timeout, open circuit, busy tool threads)
becomes a structured error the model can react to, ``{"error", "kind", "retryable", "success":
false}``, and a ToolCallFailed event. When a tool is missing or its circuit is open, the host's
fallback tool runs instead (as its own card) and its result rides along in the error.

Sync tools run on the tools layer's own bounded thread pool (:class:`ToolPool`), never on the
event loop's default executor, which the engine needs for its DuckDB and classifier stages. A
thread cannot be killed, so a sync call that times out is *abandoned*: the model is told so, its
thread keeps its pool slot until it returns, and its late result is dropped. When every slot is
held by such a call, new sync calls fail fast (kind ``busy``) instead of queueing forever.

Results the model reads are bounded (isolate gating): above 10,000 characters it gets a digest,
a pointer into the run log, a 200-character preview and a short structural summary; the full
result stays in the ToolCallFinished event, which the run log keeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import hashlib
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import CircuitOpen, ToolArgumentsError, ToolError, ToolTimeout, UnknownTool
from ..events import (
    Event,
    ToolCallArgumentsDelta,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallRunning,
    ToolCallStarted,
)
from ..fences import unfenced
from ..paradigms import PROFILES, HostParadigm
from ..telemetry import record_error, tool_call
from .context import HISTORY, ParadigmAwareToolContext, ToolHistory, ToolResult
from .registry import Tool, ToolRegistry

BASE_TIMEOUT = 30.0  # seconds, before the host multiplier (brief §4.5)
FAILURE_THRESHOLD = 3  # consecutive failures that open a circuit
RESET_AFTER = 60.0  # seconds an open circuit waits before a trial call (half-open)
DEFAULT_RETRIES = 1  # extra attempts for retryable errors
RETRY_BACKOFF = 0.2  # seconds, doubling
RESULT_LIMIT = 10_000  # characters the model reads before gating (brief, isolate layer)
PREVIEW_CHARS = 200
TOOL_THREADS = 8  # sync tool calls running at once, process-wide (more queue briefly)

_RETRYABLE_WORDS = ("timeout", "timed out", "network", "rate limit", "temporar", "unavailable")


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``reset_after`` s lets one trial
    call through (half-open); a success closes it, a failed trial opens it again."""

    def __init__(self, threshold: int = FAILURE_THRESHOLD, reset_after: float = RESET_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset_after else "open"

    def allow(self) -> bool:
        with self._lock:
            state = self.state
            if state == "closed":
                return True
            if state == "half_open" and not self._trial:
                self._trial = True
                return True
            return False

    def retry_in(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.reset_after - (self.clock() - self.opened_at))

    def success(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self._trial or self.failures >= self.threshold:
                self.opened_at = self.clock()
            self._trial = False


class Breakers:
    """One breaker per tool name (owned by a registry, so it outlives single runs)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._by_name: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> CircuitBreaker:
        b = self._by_name.get(name)
        if b is None:
            with self._lock:
                b = self._by_name.setdefault(name, CircuitBreaker(clock=self.clock))
        return b

    def reset(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._by_name.clear()
            else:
                self._by_name.pop(name, None)

    def states(self) -> dict[str, str]:
        return {n: b.state for n, b in self._by_name.items()}


class ToolAbandoned(ToolTimeout):
    """A sync call timed out after it started: its thread runs on and cannot be stopped. Not
    retried: a second call would run alongside the first and repeat any side effects."""

    retryable = False


class ToolBusy(ToolError):
    """Every tool thread is held by an abandoned call, so a new sync call could only queue."""

    kind = "busy"


@dataclass(frozen=True)
class _Hung:
    name: str
    since: float  # time.monotonic() when the call was abandoned


class _DaemonThreads:
    """The part of ThreadPoolExecutor's contract ToolPool uses, on daemon threads: the
    interpreter never waits at exit for an abandoned tool that may never return (the CLI would
    hang after printing its answer, a kernel on shutdown)."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the tool threads are shut down")
            self._queue.put((future, fn, args, kwargs))
            # a new thread only when none is idle, as ThreadPoolExecutor does
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.size:
                t = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 - delivered through the future
                    future.set_exception(exc)
            del item, future, fn, args, kwargs
            self._idle.release()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            for _ in self._threads:
                self._queue.put(None)
        if wait:
            for t in self._threads:
                t.join()


class ToolPool:
    """The bounded thread pool sync tools run on, and a count of the abandoned calls whose
    threads are still running (each holds a slot until it returns)."""

    def __init__(self, size: int = TOOL_THREADS) -> None:
        self.size = size
        self._executor = _DaemonThreads(size, "fh-tool")
        self._hung: dict[concurrent.futures.Future[Any], _Hung] = {}
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> concurrent.futures.Future[Any]:
        # contextvars travel with the call, as with asyncio.to_thread
        return self._executor.submit(contextvars.copy_context().run, fn, **kwargs)

    def abandon(self, future: concurrent.futures.Future[Any], name: str) -> bool:
        """Give up on a call. False if it had not started (it never will); True if its thread
        runs on: it is counted as hung until it returns, and its result is then dropped."""
        if future.cancel():
            return False
        with self._lock:
            self._hung[future] = _Hung(name, time.monotonic())
        future.add_done_callback(self._release)  # runs at once if it has just finished
        return True

    def _release(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._hung.pop(future, None)  # the late result goes nowhere

    @property
    def hung(self) -> int:
        """Abandoned calls whose threads are still running."""
        return len(self._hung)

    @property
    def exhausted(self) -> bool:
        return len(self._hung) >= self.size

    def hung_calls(self) -> list[tuple[str, float]]:
        """(tool name, seconds since it was abandoned) for each hung call, oldest first."""
        now = time.monotonic()
        with self._lock:
            return sorted(((h.name, now - h.since) for h in self._hung.values()), key=lambda x: -x[1])

    def busy_message(self, name: str) -> str:
        calls = self.hung_calls()
        counts: dict[str, int] = {}
        for n, _ in calls:
            counts[n] = counts.get(n, 0) + 1
        tools = ", ".join(f"{n} ×{c}" if c > 1 else n for n, c in counts.items())
        oldest = f", the oldest abandoned {calls[0][1]:.0f} s ago" if calls else ""
        return (
            f"{name} was not started: all {self.size} tool threads are held by earlier calls that "
            f"timed out and are still running ({tools}{oldest}); a new call would only queue behind "
            f"them. Use another tool or answer without it; new calls can start once one of those returns"
        )

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)


_pool: ToolPool | None = None
_pool_lock = threading.Lock()


def default_pool() -> ToolPool:
    """The process-wide pool for sync tools (threads start on first use)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ToolPool()
    return _pool


@dataclass(frozen=True)
class ToolOutcome:
    """What one call produced: the model's tool-message content and the run's record."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    ok: bool
    content: str  # what the model reads (bounded)
    result: Any  # the full result, or the error payload
    seconds: float
    status: str  # done | unknown_tool | bad_arguments | timeout | circuit_open | tool_error
    error: str = ""
    preview: str = ""


Emit = Callable[[Event], None]


class ToolRunner:
    """Runs calls for one run (one host). Cheap to build; breakers come from the registry."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        host: HostParadigm | str | None = None,
        offered: set[str] | None = None,
        base_timeout: float = BASE_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        history: ToolHistory | None = None,
        result_limit: int = RESULT_LIMIT,
        sleep: Callable[[float], Any] = asyncio.sleep,
        pool: ToolPool | None = None,
    ) -> None:
        self.registry = registry
        self.host = HostParadigm.parse(host) if host else None
        profile = PROFILES[self.host] if self.host else None
        self.multiplier = profile.timeout_multiplier if profile else 1.0
        self.fallback_tool = profile.fallback_tool if profile else None
        self.offered = offered if offered is not None else {t.name for t in registry.for_host(self.host)}
        self.base_timeout = base_timeout
        self.retries = retries
        self.history = history if history is not None else HISTORY
        self.result_limit = result_limit
        self._sleep = sleep
        self.pool = pool if pool is not None else default_pool()
        self.results: list[ToolResult] = []  # this run's finished calls, in finish order

    def timeout_for(self, tool: Tool) -> float:
        return (tool.timeout or self.base_timeout) * self.multiplier

    def _limit(self, tool: Tool, timeout: float) -> str:
        """The time limit as the model reads it in a timeout error."""
        return f"{timeout:.1f} s ({tool.timeout or self.base_timeout:g} s × host multiplier {self.multiplier:g})"

    # -- one call --------------------------------------------------------------------------

    async def run(self, call_id: str, name: str, raw_arguments: str, ctx: ParadigmAwareToolContext,
                  emit: Emit, *, round: int = 0, index: int = 0) -> ToolOutcome:
        """Never raises (except cancellation): every failure becomes a failed outcome."""
        with tool_call(name, call_id, self.host) as span:  # an execute_tool span, if tracing is on
            out = await self._run(call_id, name, raw_arguments, ctx, emit, round=round, index=index)
            span.outcome(out)
            return out

    async def _run(self, call_id: str, name: str, raw_arguments: str, ctx: ParadigmAwareToolContext,
                   emit: Emit, *, round: int, index: int) -> ToolOutcome:
        t0 = time.perf_counter()
        arguments: dict[str, Any] = {}
        tool = self.registry.get(name) if name in self.offered else None
        try:
            arguments = parse_arguments(raw_arguments)
            if tool is None:
                offered = ", ".join(sorted(self.offered)) or "(none)"
                raise UnknownTool(f"no tool named {name!r} is available here; available tools: {offered}")
            kwargs = tool.validate(arguments)
            if not tool.is_async and self.pool.exhausted:  # before allow(): a busy pool is no trial
                raise ToolBusy(self.pool.busy_message(name))
            breaker = self.registry.breakers[name]
            if not breaker.allow():
                raise CircuitOpen(
                    f"{name} failed {breaker.failures} times in a row and is paused for "
                    f"{breaker.retry_in():.0f} s more; use another tool or answer without it"
                )
        except ToolError as exc:
            return await self._failed(call_id, name, arguments, exc, t0, ctx, emit, round=round, index=index)

        emit(ToolCallRunning(call_id, name, arguments))
        call_ctx = dataclasses.replace(ctx, call_id=call_id, round=round, previous=tuple(self.results))
        try:
            result = await self._execute(tool, kwargs, call_ctx)
        except ToolError as exc:
            breaker.failure()
            return await self._failed(call_id, name, arguments, exc, t0, ctx, emit, round=round, index=index)
        breaker.success()
        return self._finished(call_id, name, arguments, result, t0, ctx, emit, round=round)

    async def _execute(self, tool: Tool, kwargs: dict[str, Any], ctx: ParadigmAwareToolContext) -> Any:
        if tool.context_param:
            kwargs = {**kwargs, tool.context_param: ctx}
        timeout = self.timeout_for(tool)
        retries = self.retries if tool.retries is None else tool.retries
        attempt = 0
        while True:
            try:
                if tool.is_async:
                    async with _timeout(timeout):
                        return await tool.fn(**kwargs)
                return await self._in_thread(tool, kwargs, timeout)
            except (TimeoutError, asyncio.TimeoutError):
                err: ToolError = ToolTimeout(f"{tool.name} did not finish within {self._limit(tool, timeout)}")
            except asyncio.CancelledError:
                raise
            except ToolError as exc:
                err = exc
            except Exception as exc:  # noqa: BLE001 - a tool's bug goes back to the model
                err = ToolError(f"{tool.name} raised {type(exc).__name__}: {exc}")
                err.retryable = _looks_retryable(exc)
                err.__cause__ = exc
            if not err.retryable or attempt >= retries:
                raise err
            attempt += 1
            await self._sleep(RETRY_BACKOFF * 2 ** (attempt - 1))

    async def _in_thread(self, tool: Tool, kwargs: dict[str, Any], timeout: float) -> Any:
        """A sync call on the tool pool. A thread cannot be killed: on timeout (or if the run is
        cancelled) the call is abandoned, not stopped, and the pool counts it until it returns."""
        future = self.pool.submit(tool.fn, kwargs)
        try:
            async with _timeout(timeout):
                return await asyncio.wrap_future(future)
        except (TimeoutError, asyncio.TimeoutError):
            within = self._limit(tool, timeout)
            if not self.pool.abandon(future, tool.name):
                raise ToolTimeout(
                    f"{tool.name} did not start within {within}: all {self.pool.size} tool threads "
                    f"were busy, so it never ran"
                ) from None
            raise ToolAbandoned(
                f"{tool.name} did not finish within {within}, so the call was abandoned. Its thread "
                f"may still be running (Python cannot stop it) and its late result will be discarded; "
                f"use another tool or answer without it"
            ) from None
        except asyncio.CancelledError:
            self.pool.abandon(future, tool.name)
            raise

    # -- outcomes --------------------------------------------------------------------------

    def _finished(self, call_id: str, name: str, arguments: dict[str, Any], result: Any, t0: float,
                  ctx: ParadigmAwareToolContext, emit: Emit, *, round: int) -> ToolOutcome:
        seconds = time.perf_counter() - t0
        content = bounded_content(result, pointer=f"run:{ctx.run_id}/tool:{call_id}", limit=self.result_limit)
        preview = content[:PREVIEW_CHARS]
        emit(ToolCallFinished(call_id, name, result, seconds, preview))
        self.results.append(ToolResult(call_id, name, arguments, True, result, seconds, round))
        self.history.record(self.host, name, ok=True, kind="ok", seconds=seconds, run_id=ctx.run_id)
        return ToolOutcome(call_id, name, arguments, True, content, result, seconds, "done", "", preview)

    async def _failed(self, call_id: str, name: str, arguments: dict[str, Any], exc: ToolError,
                      t0: float, ctx: ParadigmAwareToolContext, emit: Emit, *, round: int,
                      index: int) -> ToolOutcome:
        seconds = time.perf_counter() - t0
        record_error(exc, exc.kind)  # on this call's execute_tool span, if tracing is on
        fallback_tool = self._fallback_tool(name) if isinstance(exc, (UnknownTool, CircuitOpen)) else None
        message = str(exc) + (f" (the host's fallback tool {fallback_tool.name} runs instead)" if fallback_tool else "")
        payload: dict[str, Any] = {
            "error": message,
            "kind": exc.kind,
            "retryable": bool(exc.retryable),
            "success": False,
        }
        emit(ToolCallFailed(call_id, name, message, exc.kind, seconds, bool(exc.retryable)))
        self.results.append(ToolResult(call_id, name, arguments, False, payload, seconds, round))
        self.history.record(self.host, name, ok=False, kind=exc.kind, seconds=seconds, run_id=ctx.run_id)
        if fallback_tool is not None:
            payload["fallback"] = await self._fallback(fallback_tool, call_id, arguments, ctx, emit,
                                                        round=round, index=index)
        content = bounded_content(payload, pointer=f"run:{ctx.run_id}/tool:{call_id}", limit=self.result_limit)
        return ToolOutcome(call_id, name, arguments, False, content, payload, seconds, exc.kind, str(exc),
                           content[:PREVIEW_CHARS])

    def _fallback_tool(self, name: str) -> Tool | None:
        fb = self.fallback_tool
        return self.registry.get(fb) if fb and fb in self.offered and fb != name else None

    async def _fallback(self, tool: Tool, call_id: str, arguments: dict[str, Any],
                        ctx: ParadigmAwareToolContext, emit: Emit, *, round: int, index: int) -> dict[str, Any]:
        """Run the host's fallback tool (as its own card) for a missing or paused tool."""
        fb_args = _fallback_arguments(tool, arguments, ctx.question)
        fb_id = f"{call_id}-fallback"
        emit(ToolCallStarted(fb_id, tool.name, index=index, round=round))
        emit(ToolCallArgumentsDelta(fb_id, json.dumps(fb_args)))
        outcome = await self.run(fb_id, tool.name, json.dumps(fb_args), ctx, emit, round=round, index=index)
        return {"tool": tool.name, "success": outcome.ok, "result": _loads_or_text(outcome.content)}


# -- helpers ---------------------------------------------------------------------------------


def parse_arguments(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """A call's JSON arguments as a dict; liberal (empty → {}, code fences stripped)."""
    if isinstance(raw, dict):
        return raw
    text = unfenced(raw or "")
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ToolArgumentsError(
            f"the arguments are not valid JSON ({exc.msg} at position {exc.pos}): "
            f"send one JSON object, e.g. {{\"query\": \"…\"}}"
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ToolArgumentsError(
            f"the arguments must be a JSON object with named parameters, not {type(value).__name__}"
        )
    return value


def to_model_text(result: Any) -> str:
    """What the model reads for a result: ``_repr_llm_`` if the object has one, else JSON."""
    llm = getattr(result, "_repr_llm_", None)
    if callable(llm):
        return str(llm())
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError):
        return str(result)


def bounded_content(result: Any, *, pointer: str, limit: int = RESULT_LIMIT) -> str:
    """The model's view of ``result``: itself, or a digest + pointer + preview when too large."""
    text = to_model_text(result)
    if len(text) <= limit:
        return text
    return json.dumps(
        {
            "success": True,
            "truncated": True,
            "chars": len(text),
            "digest": "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16],
            "pointer": pointer,
            "summary": summarize(result),
            "preview": text[:PREVIEW_CHARS],
            "note": "the full result is stored in the run log; ask for a narrower query if you need more",
        },
        ensure_ascii=False,
    )


def summarize(result: Any) -> str:
    """A one-line structural description of a large result."""
    if isinstance(result, dict):
        keys = list(result)[:12]
        return f"object with {len(result)} keys: {', '.join(map(str, keys))}" + (" …" if len(result) > 12 else "")
    if isinstance(result, (list, tuple)):
        kinds = sorted({type(x).__name__ for x in result[:50]})
        return f"list of {len(result)} items ({', '.join(kinds)})"
    if isinstance(result, str):
        return f"text of {len(result)} characters, {len(result.split())} words"
    shape = getattr(result, "shape", None)
    if shape is not None:
        return f"{type(result).__name__} of shape {tuple(shape)}"
    return type(result).__name__


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict(orient="records")  # pandas DataFrame
        except TypeError:
            return to_dict()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _looks_retryable(exc: BaseException) -> bool:
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    text = str(exc).lower()
    return any(w in text for w in _RETRYABLE_WORDS)


def _fallback_arguments(tool: Tool, arguments: dict[str, Any], question: str) -> dict[str, Any]:
    """Arguments for the fallback tool from the failed call's: same-named ones carry over; a
    missing ``query`` is made from the failed call's text arguments, or the run's question."""
    out = {k: v for k, v in arguments.items() if k in tool.arg_names}
    if "query" in tool.arg_names and not out.get("query"):
        texts = [str(v) for v in arguments.values() if isinstance(v, str) and v.strip()]
        out["query"] = " ".join(texts) or question or "recent findings"
    return out


def _loads_or_text(content: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content


if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:  # pragma: no cover - Python 3.10
    import contextlib

    @contextlib.asynccontextmanager
    async def _timeout(seconds: float):  # noqa: ANN202
        task = asyncio.current_task()
        handle = asyncio.get_running_loop().call_later(seconds, task.cancel)
        try:
            yield
        except asyncio.CancelledError:
            raise asyncio.TimeoutError from None
        finally:
            handle.cancel()
