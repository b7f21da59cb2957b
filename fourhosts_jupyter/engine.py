"""One research run: classify → the host's layers (write, select, compress, isolate) → model
and tools → persist. UI-free: it yields typed events and never imports IPython.

Every stage has a timeout; a failure becomes a RunFailed event and the stream ends cleanly.
``astream`` is the async core; ``stream`` / ``research`` are thin sync twins that run the core
on a worker thread (Jupyter already runs an event loop on the main thread).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import math
import threading
import time
from dataclasses import replace
from typing import Any, AsyncIterator, Callable, Iterator, TypeVar

from . import learning, prompts
from .answer import Answer
from .classifier import Classification, Effort, classify
from .config import Settings
from .errors import BudgetExceeded, ConfigError, FourHostsError, ProviderError, ProviderIncomplete, RunError
from .events import (
    AnswerReady,
    Classified,
    Event,
    LayerFinished,
    LayerStarted,
    Notice,
    ReasoningDelta,
    RunFailed,
    RunStarted,
    Source,
    SourcesSelected,
    TextDelta,
    ToolCallArgumentsDelta,
    to_jsonable,
)
from .llm.base import ModelRequest, Provider
from .loop import LoopOutcome, model_loop
from .memory.embeddings import Embedder, get_embedder
from .memory.store import Store, new_id
from .paradigms import LAYER_LABELS, HostParadigm, Layer, density
from .telemetry import record_error

T = TypeVar("T")

# Events kept in the run log. Text and argument deltas are not: the answer and the finished
# tool calls carry the whole text. Reasoning summaries are shown, never kept.
_UNLOGGED = (TextDelta, ToolCallArgumentsDelta, ReasoningDelta)
# The sync twins hand text to the calling thread at most this often (see Engine.stream): as
# often as the cell view redraws; each hand-over costs both threads a GIL switch.
STREAM_BATCH_SECONDS = 0.1
# The worker waits at most this long for the consumer to take an event that is handed over at
# once (a stage starting or ending, a tool card), so the consumer gets the GIL at once.
HAND_OVER_SECONDS = 0.002


class StageTimeout(FourHostsError):
    pass


class Engine:
    """Runs research questions. Cheap to construct; nothing heavy happens until a run."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        provider: Provider | None = None,
        tools: Any = None,
        embedder: Embedder | None = None,
        budget: Any = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.budget = budget  # schedule.Budget: the parent of every run's budget (a session's)
        if store is None:
            from .memory.backends import open_store  # a path or a postgresql:// URL

            store = open_store(self.settings.resolved_store_path())
        self.store = store
        self._provider = provider
        self.tools = tools
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    def provider_for(self, model: str | None = None, base_url: str | None = None) -> Provider:
        if self._provider is not None:
            return self._provider
        from .llm.registry import resolve_provider

        settings = self.settings
        if model or base_url:
            settings = replace(settings, model=model or settings.model, base_url=base_url or settings.base_url)
        return resolve_provider(settings, embedder=self._embedder)

    # -- the async core ----------------------------------------------------------------------

    def astream(self, question: str, **options: Any) -> AsyncIterator[Event]:
        """The run's events; ``options`` are ``_pipeline``'s (paradigm, effort, model, base_url,
        top_k, budget_tokens, budget_usd, budget)."""
        from .telemetry import traced_run  # a run span and stage spans, if an SDK is configured

        return traced_run(self._pipeline(question, **options), self.settings)

    async def _pipeline(
        self,
        question: str,
        *,
        paradigm: str | HostParadigm | None = None,
        effort: str | Effort | None = None,
        model: str | None = None,
        base_url: str | None = None,
        top_k: int | None = None,
        budget_tokens: int | None = None,
        budget_usd: float | None = None,
        budget: Any = None,
    ) -> AsyncIterator[Event]:
        question = (question or "").strip()
        if not question:
            raise ConfigError("the question is empty: write a question to research")
        forced = HostParadigm.parse(paradigm) if paradigm else None
        chosen_effort = Effort.parse(effort)
        provider = self.provider_for(model, base_url)
        # Budgets: this run's limits under ``budget`` (a batch's) or the engine's (a session's);
        # every model call is checked before it is made (schedule/guard.py).
        from .schedule import Scheduler, run_budget
        from .schedule.guard import guarded

        limits = run_budget(budget_tokens, budget_usd, budget if budget is not None else self.budget)
        provider = guarded(provider, limits, prices=self.settings.prices)
        sched = Scheduler(budget=limits)  # this run's concurrent layer tasks (compress, isolate)

        run_id = new_id("r_")
        options = {
            "paradigm": forced.value if forced else None,
            "effort": chosen_effort.value if chosen_effort else None,
            "model": model,
            "provider": provider.name,
            "api": getattr(provider, "api", None),  # chat | responses (None: not an OpenAI API)
            "top_k": top_k,
            **({"budget_tokens": budget_tokens} if budget_tokens is not None else {}),
            **({"budget_usd": budget_usd} if budget_usd is not None else {}),
        }
        rec = _Recorder()
        await asyncio.to_thread(self.store.start_run, run_id, question, options)

        outcome = LoopOutcome(provider=provider.name, model=provider.model, offline=provider.offline)
        classification: Classification | None = None
        sources: tuple[Source, ...] = ()
        failure: RunFailed | None = None
        try:
            yield rec(RunStarted(run_id, question, options))

            # classify
            yield rec(LayerStarted("classify", "Weighing the four hosts"))
            t = time.perf_counter()
            classification = await self._stage(
                "classify", classify, question, paradigm=forced, effort=chosen_effort, embedder=self.embedder
            )
            classification = await self._stage(
                "classify", learning.route, self.store, classification, run_id=run_id, on=self.settings.learning
            )
            yield rec(Classified(classification))
            yield rec(LayerFinished("classify", rec.lap("classify", t), classification.reason))

            seeded = await self._stage("select", self._seed)
            if seeded:
                yield rec(Notice(f"The store was empty: added the bundled demo corpus ({seeded} passages)."))

            host = classification.primary
            phase = classification.phase
            dens = density(host, phase)
            k = top_k or self.settings.top_k or max(5, math.ceil(dens / 10))

            for layer in _profile(host).layer_order:
                icon, label = LAYER_LABELS[layer]
                yield rec(LayerStarted(layer.value, f"{icon} {label}"))
                t = time.perf_counter()
                if layer is Layer.SELECT:
                    found = await self._stage(
                        "select", _select, self.store, question, host=host, k=k, embedder=self.embedder
                    )
                    sources = tuple(found)
                    yield rec(SourcesSelected(sources))
                    detail = f"{len(sources)} sources"
                elif layer is Layer.COMPRESS:
                    sources, detail = await self._compress(sources, host, dens, question, provider, sched)
                elif layer is Layer.WRITE:
                    await self._stage("write", self._write_context, run_id, question, classification, dens)
                    detail = "query context saved (scratchpad)"
                else:  # ISOLATE: code the model asks to run goes to this host's sandbox
                    detail = await sched.submit(self._stage, "isolate", _isolate_detail, host,
                                                host=host.value, name="isolate", retries=0)
                yield rec(LayerFinished(layer.value, rec.lap(layer.value, t), detail))

            # model (+ tools)
            yield rec(LayerStarted("model", f"✍️ Answering ({provider.name}: {provider.model})"))
            t = time.perf_counter()
            request = ModelRequest(
                messages=prompts.messages(question, classification, sources),
                effort=(chosen_effort or classification.effort).value,
                question=question,
                classification=classification,
                sources=sources,
            )
            stage_limit = self.settings.request_timeout * (self.settings.max_tool_rounds + 1)
            loop_events = model_loop(
                provider,
                request,
                outcome,
                tools=self.tools,
                context={"store": self.store, "classification": classification, "run_id": run_id,
                         "embedder": self.embedder},
                max_rounds=self.settings.max_tool_rounds,
                settings=self.settings,
            )
            # One timer for the whole stage, not a task per event: a 2,000-chunk answer must
            # cost little more than the client itself (bench ``stream``). The events are always
            # pulled by the task that runs the engine, so the timer cancels the right await.
            try:
                async with asyncio.timeout(stage_limit):
                    async with contextlib.aclosing(loop_events):
                        async for ev in loop_events:
                            yield rec.text(ev) if type(ev) is TextDelta else rec(ev)
            except TimeoutError:
                raise StageTimeout("the model stage ran past its time limit and was stopped") from None
            yield rec(LayerFinished("model", rec.lap("model", t), outcome.finish_reason or ""))
            read = _read_sources(rec.log, start=len(sources) + 1)  # pages read: sources too, with links
            if read:
                sources = sources + read
                yield rec(SourcesSelected(sources))
            if outcome.finish_reason in ("length", "content_filter"):
                yield rec(
                    Notice(f"The model stopped early (finish_reason={outcome.finish_reason}); the answer may be cut.", "warning")
                )

            evaluation = None
            if self.settings.quality.evaluate:  # evaluate → heal → collaborate (quality/)
                from .quality.stage import Draft, improve

                draft = Draft(run_id, question, outcome.text, sources, classification)
                async for ev in improve(draft, provider=provider, store=self.store, embedder=self.embedder,
                                        policy=self.settings.quality):
                    yield rec(ev)
                outcome.text, sources, evaluation = draft.text, draft.sources, draft.evaluation
                outcome.usage = outcome.usage + draft.usage

            if not outcome.offline and outcome.text.strip():
                await self._stage("write", self._write_answer, run_id, question, outcome.text, classification, dens)

            answer = Answer(
                run_id=run_id,
                question=question,
                text=outcome.text,
                classification=classification,
                sources=sources,
                provider=outcome.provider,
                model=outcome.model,
                offline=outcome.offline,
                usage=outcome.usage,
                tool_calls=tuple(outcome.tool_calls),
                timings=dict(rec.timings),
                notices=tuple(rec.notices),
                finish_reason=outcome.finish_reason,
                evaluation=evaluation,
            )
            yield rec(AnswerReady(answer))
        except (asyncio.CancelledError, GeneratorExit):
            failure = RunFailed("the run was cancelled", "cancelled", outcome.text)
            raise
        except FourHostsError as exc:
            failure = RunFailed(_failure_message(exc), _kind(exc), outcome.text)
            record_error(exc, failure.kind)
            yield rec(failure)
        except Exception as exc:  # noqa: BLE001 - an unexpected bug still ends the run cleanly
            failure = RunFailed(f"{type(exc).__name__}: {exc}", "internal", outcome.text)
            record_error(exc, failure.kind)
            yield rec(failure)
        finally:
            try:  # the run's layer tasks end with it (awaited, not left to the loop's end)
                await sched.aclose()
            finally:
                await asyncio.shield(
                    asyncio.to_thread(
                        self._persist, run_id, rec, classification, outcome, sources, failure
                    )
                )

    async def _compress(
        self, sources: tuple[Source, ...], host: HostParadigm, dens: int, question: str, provider: Provider,
        scheduler: Any = None,
    ) -> tuple[tuple[Source, ...], str]:
        """Fit the sources to the host's share of the context (brief §3: max(50, tokens × density))."""
        from .context.compress import acompress_sources, source_budget

        budget = source_budget(self.settings.context_tokens, dens)
        try:
            out, report = await asyncio.wait_for(
                acompress_sources(
                    sources, host=host, budget_tokens=budget, query=question,
                    providers=[provider], embedder=self.embedder, scheduler=scheduler,
                ),
                self.settings.stage_timeout,
            )
        except asyncio.TimeoutError:
            raise StageTimeout(
                f"the compress stage took longer than {self.settings.stage_timeout:.0f} s and was "
                "stopped; try again, or raise Settings.stage_timeout"
            ) from None
        return tuple(out), report.detail

    async def _stage(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from .cancel import cancel_scope

        # the thread cannot be killed: the scope tells its work to stop at its next batch
        with cancel_scope() as stop:
            try:
                return await asyncio.wait_for(
                    asyncio.to_thread(fn, *args, **kwargs), self.settings.stage_timeout
                )
            except asyncio.TimeoutError:
                stop.set()
                raise StageTimeout(
                    f"the {name} stage took longer than {self.settings.stage_timeout:.0f} s and was "
                    "stopped; try again, or raise Settings.stage_timeout"
                ) from None
            except BaseException:
                stop.set()
                raise

    def _seed(self) -> int:
        from .memory.seed import ensure_seeded

        return ensure_seeded(self.store, self.embedder)

    def _write_context(self, run_id: str, question: str, c: Classification, dens: int) -> None:
        from .context.write import write_memory

        # Always a scratchpad entry: the question is context for this session, not knowledge.
        write_memory(
            self.store,
            f"Question researched: {question}\nHosts: {c.summary()}",
            namespace=c.primary.value,
            key="query_context",
            density=min(dens, 80),
            source="run",
            title="query context",
            metadata={"kind": "query_context", "run_id": run_id},
            embedder=self.embedder,
        )

    def _write_answer(self, run_id: str, question: str, text: str, c: Classification, dens: int) -> None:
        from .context.write import write_memory

        write_memory(
            self.store,
            text,
            namespace=c.primary.value,
            key="research_result",
            density=dens,
            source="run",
            title=question[:120],
            metadata={"kind": "answer", "run_id": run_id},
            embedder=self.embedder,
        )

    def _persist(
        self,
        run_id: str,
        rec: _Recorder,
        c: Classification | None,
        outcome: LoopOutcome,
        sources: tuple[Source, ...],
        failure: RunFailed | None,
    ) -> None:
        self.store.finish_run(
            run_id,
            status="failed" if failure else "ok",
            classification=c.to_dict() if c else None,
            paradigm=c.primary.value if c else None,
            provider=outcome.provider,
            model=outcome.model,
            answer=outcome.text,
            sources=[to_jsonable(s) for s in sources],
            usage=to_jsonable(outcome.usage),
            cost_usd=outcome.usage.cost_usd,
            timings=dict(rec.timings),
            error=failure.error if failure else None,
            events=rec.log,
        )

    # -- sync twins --------------------------------------------------------------------------

    def stream(self, question: str, *, idle_ticks: bool = False, **options: Any) -> Iterator[Event]:
        """Run on a worker thread with its own event loop; yield its events on this thread.

        Text and tool-argument pieces come in batches, at most ~10 a second
        (``STREAM_BATCH_SECONDS``), any other event at once: a fast stream costs this thread a
        few wake-ups instead of one per chunk, and consecutive text deltas of a batch arrive as
        one (the same text). ``astream`` yields every event singly.

        ``idle_ticks``: also yield ``None`` after each ~0.1 s without an event, so a consumer
        that coalesces redraws (the cell view) can draw a pending state during a slow step."""
        return _iterate_in_thread(lambda: self.astream(question, **options), ticks=idle_ticks,
                                  gather=STREAM_BATCH_SECONDS, text=TextDelta,
                                  routine=(ToolCallArgumentsDelta, ReasoningDelta))

    async def aresearch(self, question: str, **options: Any) -> Answer:
        return await _collect(self.astream(question, **options))

    def research(self, question: str, **options: Any) -> Answer:
        # Drained to its end (it ends right after AnswerReady / RunFailed), so the run is
        # persisted by the time RunError reaches the caller.
        final = _Final()
        for ev in self.stream(question, **options):
            final.see(ev)
        return final.result()


def _profile(host: HostParadigm):  # noqa: ANN202
    from .paradigms import PROFILES

    return PROFILES[host]


def _read_sources(log: list[tuple[int, str, float, dict[str, Any]]], start: int) -> tuple[Source, ...]:
    from .tools.read_sources import read_sources

    return read_sources(log, start)


def _select(store: Store, question: str, **kwargs: Any) -> list[Source]:
    from .context.select import select

    return select(store, question, **kwargs)


def _isolate_detail(host: HostParadigm) -> str:
    from .context.isolate import layer_detail

    return "sandbox ready: " + layer_detail(host)


def _failure_message(exc: FourHostsError) -> str:
    message = str(exc)
    if isinstance(exc, ProviderIncomplete):  # say it was cut off, and why, whoever raised it
        if exc.reason and exc.reason not in message:
            message += f" (reason: {exc.reason})"
        if "cut off" not in message:
            message = f"the answer was cut off: {message}"
    return message


def _kind(exc: BaseException) -> str:
    if isinstance(exc, ProviderIncomplete):  # any provider's turn that ended early
        return "incomplete"
    if isinstance(exc, ProviderError):
        return "provider"
    if isinstance(exc, StageTimeout):
        return "timeout"
    if isinstance(exc, BudgetExceeded):
        return "budget"
    return type(exc).__name__


class _Final:
    """Folds a run's events into its result: the Answer, or RunError (with the run id)."""

    def __init__(self) -> None:
        self.run_id = ""
        self.answer: Answer | None = None
        self.failed: RunFailed | None = None

    def see(self, ev: Event) -> None:
        if isinstance(ev, RunStarted):
            self.run_id = ev.run_id
        elif isinstance(ev, AnswerReady):
            self.answer = ev.answer
        elif isinstance(ev, RunFailed):
            self.failed = ev

    def result(self) -> Answer:
        if self.failed is not None:
            f = self.failed
            raise RunError(f.error, kind=f.kind, run_id=self.run_id, partial_text=f.partial_text)
        assert self.answer is not None  # a stream always ends with AnswerReady or RunFailed
        return self.answer


async def _collect(events: AsyncIterator[Event]) -> Answer:
    final = _Final()
    async for ev in events:  # drained to the end: the run is persisted before we return/raise
        final.see(ev)
    return final.result()


class _Recorder:
    """Numbers events, keeps the ones worth logging, and collects stage timings."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.seq = 0
        self.log: list[tuple[int, str, float, dict[str, Any]]] = []
        self.timings: dict[str, float] = {}
        self.notices: list[str] = []

    def text(self, ev: TextDelta) -> TextDelta:  # the hot path: text is counted, not logged
        self.seq += 1
        return ev

    def __call__(self, ev: Event) -> Event:
        self.seq += 1
        if isinstance(ev, Notice):
            self.notices.append(ev.message)
        if not isinstance(ev, _UNLOGGED):
            payload = to_jsonable(ev.answer.to_dict()) if isinstance(ev, AnswerReady) else to_jsonable(ev)
            self.log.append((self.seq, ev.type, time.perf_counter() - self.t0, payload))
        return ev

    def lap(self, name: str, started: float) -> float:
        seconds = time.perf_counter() - started
        self.timings[name] = self.timings.get(name, 0.0) + seconds
        return seconds


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def _iterate_in_thread(
    make: Callable[[], AsyncIterator[T]],
    ticks: bool = False,
    *,
    gather: float = 0.0,
    text: type | None = None,
    routine: tuple[type, ...] = (),
) -> Iterator[T]:
    # A deque drained in batches, not a Queue handed one item at a time: each cross-thread
    # wake-up costs a GIL hand-off, and a fast stream would pay one per chunk. ``gather``: the
    # consuming thread wakes at most once per that many seconds, so a fast stream arrives in a
    # few batches, except that an item neither ``text`` nor of a ``routine`` type is handed
    # over at once (a stage ending, a tool card). A ``text`` item (one ``.text`` field) waits
    # in the deque as its bare string: strings are not tracked by the garbage collector, and
    # a batch of a thousand waiting event objects would set off collections that cost more
    # than the events themselves (bench ``stream``). Consecutive strings of one batch arrive
    # joined, as one ``text(...)`` (the same text, fewer events).
    buf: collections.deque[Any] = collections.deque()
    ready = threading.Event()
    urgent = threading.Event()
    taken = threading.Event()  # the consumer drained the deque (see HAND_OVER_SECONDS)
    state: dict[str, Any] = {}

    async def main() -> None:
        state["loop"] = asyncio.get_running_loop()
        state["task"] = asyncio.current_task()
        try:
            async for item in make():
                kind = type(item)
                if kind is text:
                    buf.append(item.text)  # type: ignore[attr-defined]
                elif kind in routine:
                    buf.append(item)
                else:
                    # Wait (briefly, GIL released) until the consumer took it: else a busy
                    # thread (this loop, a stage's worker) keeps the GIL for a whole switch
                    # interval (5 ms) before the consumer can show a stage ending.
                    taken.clear()
                    buf.append(item)
                    urgent.set()
                    ready.set()
                    taken.wait(HAND_OVER_SECONDS)
                    continue
                if not ready.is_set():
                    ready.set()
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            buf.append(_Raised(exc))
        finally:
            from .llm.loop_clients import close_all

            try:
                await close_all()  # this loop ends with the run: its HTTP clients with it, on it
            finally:
                buf.append(_DONE)
                ready.set()
                urgent.set()

    # The caller's context goes with the run (its current span is the run span's parent).
    caller = contextvars.copy_context()
    worker = threading.Thread(target=lambda: caller.run(asyncio.run, main()), name="fourhosts-run",
                              daemon=True)
    worker.start()
    woke = float("-inf")
    try:
        while True:
            if not buf:
                ready.clear()
                # re-check after clear: an item appended in between is not missed
                if not buf and not ready.wait(0.1):  # a timeout keeps Ctrl-C / interrupt responsive
                    if ticks:
                        yield None  # type: ignore[misc] - an idle tick, see Engine.stream
                    continue
                wait = woke + gather - time.monotonic()
                if wait > 0:  # woken again soon after the last batch: let this one fill up
                    urgent.wait(wait)
                woke = time.monotonic()
            urgent.clear()  # before draining: an urgent item appended after this is not missed
            batch = [buf.popleft() for _ in range(len(buf))]  # only this thread pops
            taken.set()
            for item in _joined(batch, text) if text is not None else batch:
                if item is _DONE:
                    return
                if isinstance(item, _Raised):
                    raise item.exc
                yield item
    finally:
        if worker.is_alive() and "loop" in state:
            try:
                state["loop"].call_soon_threadsafe(state["task"].cancel)
            except RuntimeError:  # loop already closed
                pass
        worker.join(timeout=10)


def _joined(batch: list[Any], text: type) -> list[Any]:
    """A batch with each run of consecutive strings as one ``text(joined)`` event."""
    out: list[Any] = []
    run: list[str] = []
    for item in batch:
        if type(item) is str:
            run.append(item)
            continue
        if run:
            out.append(text("".join(run)))
            run = []
        out.append(item)
    if run:
        out.append(text("".join(run)))
    return out
