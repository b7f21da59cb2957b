"""The model loop: stream a model turn, run its tool calls, send results back, repeat.

CONTRACT (used by the engine):
    outcome = LoopOutcome()
    async for event in model_loop(provider, request, outcome, tools=…, runner=…, context=…,
                                  max_rounds=5, settings=…):
        ...
After the loop, ``outcome`` holds the text, finish reason, usage and tool-call records. A
provider failure is raised as a ProviderError *after* the partial text was yielded (and is
kept in ``outcome.text``).

How a round works. The provider's stream is read event by event. A tool call is started (its
card appears) as soon as its name is known, its argument pieces are passed on as they stream,
and it is *executed* as soon as its arguments are complete — when a later call starts or the
stream ends — on its own task, while the rest of the stream keeps flowing; calls of one turn
run concurrently. When the stream is done and every call has finished, the assistant turn and
one tool message per call go back to the model and the next round streams. After
``max_rounds`` rounds with tools, the model is asked to answer without them.

While no tool is running, events are read straight from the provider (no extra task or queue
per chunk), so a plain text answer costs little more than the client itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Iterator

from .answer import ToolCallRecord
from .config import Settings
from .events import (
    Event,
    Notice,
    ReasoningDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    Usage,
    UsageReported,
)
from .llm.base import (
    ModelRequest,
    Provider,
    ProviderFinish,
    ProviderText,
    ProviderToolCallDelta,
    ProviderUsage,
)
from .telemetry import ModelCallSpan, model_call

FINAL_NUDGE = (
    "The tool budget for this question is used up. Answer now from the sources and tool results "
    "you already have, without calling tools."
)


@dataclass
class LoopOutcome:
    text: str = ""
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    provider: str = ""
    model: str = ""
    offline: bool = False
    notices: list[str] = field(default_factory=list)
    rounds: int = 0


async def model_loop(
    provider: Provider,
    request: ModelRequest,
    outcome: LoopOutcome,
    *,
    tools: Any = None,
    runner: Any = None,
    context: Any = None,
    max_rounds: int = 5,
    settings: Settings | None = None,
) -> AsyncIterator[Event]:
    """Stream rounds of model turns and tool calls. ``tools``: a ToolRegistry, an iterable of
    functions, ``False`` for none, or ``None`` for the process-wide default registry."""
    from .tools.context import ParadigmAwareToolContext
    from .tools.runner import ToolRunner

    info = dict(context or {})
    classification = request.classification or info.get("classification")
    host = classification.primary if classification is not None else None
    registry = _registry(tools, offline=provider.offline)
    offered = registry.for_host(host)
    tool_params = [t.param() for t in offered] or None
    if runner is None:
        runner = ToolRunner(registry, host=host, offered={t.name for t in offered})
    ctx = ParadigmAwareToolContext(
        paradigm=host,
        probabilities=dict(classification.probabilities) if classification is not None else {},
        phase=classification.phase if classification is not None else None,
        run_id=str(info.get("run_id", "")),
        question=request.question,
        memory=tuple(request.sources),
        store=info.get("store"),
        embedder=info.get("embedder"),
    )

    try:
        messages = list(request.messages)
        _sync(outcome, provider)
        total: Usage | None = None
        for rnd in range(max(0, max_rounds) + 1):
            final = rnd == max_rounds
            req = replace(
                request,
                messages=messages,
                tools=tool_params,
                tool_choice="none" if final and tool_params else request.tool_choice,
            )
            turn = _Turn(rnd, runner, ctx, separate=bool(outcome.text) and not outcome.text[-1:].isspace(),
                         settings=settings)
            try:
                async with contextlib.aclosing(turn.stream(provider, req, outcome)) as events:
                    async for ev in events:
                        yield ev
            finally:
                _sync(outcome, provider)
                outcome.rounds = rnd + 1
                if turn.usage is not None:
                    total = turn.usage if total is None else total + turn.usage
                    outcome.usage = total
            outcome.finish_reason = turn.finish
            if not turn.calls:
                break
            if final:
                note = (
                    f"The model asked for {len(turn.calls)} more tool call(s) after the limit of "
                    f"{max_rounds} tool rounds; they were not run."
                )
                outcome.notices.append(note)
                yield Notice(note, "warning")
                break
            results = [c.task.result() for c in turn.ordered()]
            outcome.tool_calls.extend(
                ToolCallRecord(r.call_id, r.name, r.arguments, r.status, r.seconds, r.preview, r.error, rnd)
                for r in results
            )
            messages.append(turn.assistant_message())
            messages.extend(
                {"role": "tool", "tool_call_id": c.wire_id, "content": r.content}
                for c, r in zip(turn.ordered(), results)
            )
            if rnd + 1 == max_rounds and tool_params:
                messages.append({"role": "user", "content": FINAL_NUDGE})
        if total is not None:
            yield UsageReported(total)
    finally:
        # Release what the provider holds on this event loop (HTTP connection pools): the
        # sync twins run each run on a loop of its own that closes after it. It stays usable.
        with contextlib.suppress(Exception):
            await provider.aclose()


def _sync(outcome: LoopOutcome, provider: Provider) -> None:
    # A fallback chain changes name/model/offline when it switches provider.
    outcome.provider, outcome.model, outcome.offline = provider.name, provider.model, provider.offline


def _registry(tools: Any, *, offline: bool) -> Any:
    from .tools.registry import Tool, ToolRegistry, default_registry

    if tools is False or offline:
        return ToolRegistry()  # nothing offered; stray calls still get a structured error
    if tools is None:
        return default_registry()
    if isinstance(tools, ToolRegistry):
        return tools
    reg = ToolRegistry()
    for t in tools:
        if isinstance(t, Tool):
            reg.add(t)
        else:
            reg.register(t)
    return reg


@dataclass
class _Call:
    """One tool call being assembled from stream deltas."""

    index: int
    id: str | None = None
    name: str | None = None
    card_id: str = ""
    pieces: list[str] = field(default_factory=list)
    started: bool = False
    task: asyncio.Task[Any] | None = None

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)

    @property
    def wire_id(self) -> str:
        return self.id or self.card_id

    def complete(self) -> bool:
        """Whether the arguments already form a whole JSON object, so no later piece can belong.

        Empty is not complete: OpenAI opens each call with id and name and ``arguments: ""``,
        and a server that interleaves parallel calls sends the pieces after the next call's
        head. A call that really has no arguments still runs when the stream ends."""
        return _is_json_object(self.arguments)


class _Turn:
    """One model turn: its text, its tool calls and their tasks, its usage and finish reason."""

    def __init__(self, rnd: int, runner: Any, ctx: Any, *, separate: bool,
                 settings: Settings | None = None) -> None:
        self.round = rnd
        self.settings = settings
        self.span: ModelCallSpan | None = None  # this model call's span, when tracing is on
        self.runner = runner
        self.ctx = ctx
        self.separate = separate  # text from an earlier round needs a paragraph break first
        self.parts: list[str] = []  # this turn's text (joined once: += on an attribute is quadratic)
        self.calls: dict[int, _Call] = {}
        self.usage: Usage | None = None
        self.finish: str | None = None
        self.running = 0
        self._pending: deque[Event] = deque()
        self._wake = asyncio.Event()

    # -- the stream --------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self.parts)

    async def stream(self, provider: Provider, req: ModelRequest, outcome: LoopOutcome) -> AsyncIterator[Event]:
        # current while the call streams: tools it starts are its children (see telemetry)
        span = self.span = model_call(provider, req, self.settings)
        it = provider.stream(req).__aiter__()
        nxt: asyncio.Future[Any] | None = None
        pending = self._pending
        parts = self.parts
        before = outcome.text
        try:
            while True:
                if pending:
                    yield pending.popleft()
                    continue
                if not self.running and nxt is None:  # fast path: read the provider directly
                    try:
                        pev = await it.__anext__()
                    except StopAsyncIteration:
                        break
                else:  # tools are running: wake on whichever comes first
                    if nxt is None:
                        nxt = asyncio.ensure_future(it.__anext__())
                    self._wake.clear()  # nothing is pending here, and nothing ran since the check
                    waiter = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait((nxt, waiter), return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if not nxt.done():
                        continue
                    done, nxt = nxt, None
                    try:
                        pev = done.result()
                    except StopAsyncIteration:
                        break
                if type(pev) is ProviderText:  # the hot path: passed on as it is (it is a TextDelta)
                    if pev.text:
                        if self.separate:
                            self.separate = False
                            parts.append("\n\n")
                            yield TextDelta("\n\n")
                        parts.append(pev.text)
                        yield pev
                    continue
                for ev in self._feed(pev, outcome):
                    yield ev
            # The stream is complete: every call's arguments are final.
            for call in self.ordered():
                for ev in self._launch(call):
                    yield ev
            if span is not None:
                span.end(self.text)
            while self.running or pending:
                if pending:
                    yield pending.popleft()
                    continue
                self._wake.clear()
                await self._wake.wait()  # a tool's next event, or its end
        except BaseException as exc:
            if span is not None:
                span.end(self.text, exc)
            raise
        finally:
            # Kept up to date even when the stream fails: the engine keeps the partial answer.
            outcome.text = before + "".join(parts)
            if nxt is not None and not nxt.done():
                nxt.cancel()
                with contextlib.suppress(BaseException):
                    await nxt
            with contextlib.suppress(Exception):
                await it.aclose()
            for call in self.calls.values():  # a failed stream or a cancelled run
                if call.task is not None and not call.task.done():
                    call.task.cancel()

    def _feed(self, pev: Any, outcome: LoopOutcome) -> Iterator[Event]:
        if isinstance(pev, ProviderToolCallDelta):
            yield from self._tool_delta(pev)
        elif isinstance(pev, ProviderUsage):
            self.usage = pev.usage if self.usage is None else self.usage + pev.usage
            if self.span is not None:
                self.span.usage(self.usage)
        elif isinstance(pev, ProviderFinish):
            self.finish = pev.reason
            if self.span is not None:
                self.span.finish(pev.reason)
        elif isinstance(pev, Notice):
            outcome.notices.append(pev.message)
            yield pev
        elif isinstance(pev, ReasoningDelta):  # shown apart from the answer; not in outcome.text
            yield pev

    def _tool_delta(self, d: ProviderToolCallDelta) -> Iterator[Event]:
        call = self.calls.get(d.index)
        if call is None:
            # A new call index: earlier calls whose arguments are complete can run now.
            for earlier in self.ordered():
                if earlier.index < d.index and earlier.task is None and earlier.complete():
                    yield from self._launch(earlier)
            call = self.calls[d.index] = _Call(d.index)
        if d.id and not call.id:
            call.id = d.id
        if d.name and not call.name:
            call.name = d.name
        if d.arguments:
            call.pieces.append(d.arguments)
        if not call.started and call.name:
            yield from self._start(call)
        elif call.started and d.arguments:
            yield ToolCallArgumentsDelta(call.card_id, d.arguments)

    def _start(self, call: _Call) -> Iterator[Event]:
        call.started = True
        call.card_id = call.id or f"call_{uuid.uuid4().hex[:12]}"
        yield ToolCallStarted(call.card_id, call.name or "", call.index, self.round)
        if call.pieces:  # pieces that arrived before the name
            yield ToolCallArgumentsDelta(call.card_id, call.arguments)

    def _launch(self, call: _Call) -> Iterator[Event]:
        if call.task is not None:
            return
        if not call.started:
            yield from self._start(call)
        self.running += 1
        call.task = asyncio.ensure_future(
            self.runner.run(call.card_id, call.name or "", call.arguments, self.ctx, self._emit,
                            round=self.round, index=call.index)
        )
        call.task.add_done_callback(self._done)

    def _emit(self, ev: Event) -> None:
        self._pending.append(ev)
        self._wake.set()

    def _done(self, _task: asyncio.Task[Any]) -> None:
        self.running -= 1
        self._wake.set()

    # -- what goes back to the model ---------------------------------------------------------

    def ordered(self) -> list[_Call]:
        return [self.calls[i] for i in sorted(self.calls)]

    def assistant_message(self) -> dict[str, Any]:
        return {
            "role": "assistant",
            # "" and never null: llama-cpp-python refuses null here (422); every server takes "".
            "content": self.text,
            "tool_calls": [
                {
                    "id": c.wire_id,
                    "type": "function",
                    # Malformed arguments are not echoed back: some servers re-parse them.
                    "function": {"name": c.name or "", "arguments": c.arguments if _is_json_object(c.arguments) else "{}"},
                }
                for c in self.ordered()
            ],
        }


def _is_json_object(text: str) -> bool:
    if not text.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
