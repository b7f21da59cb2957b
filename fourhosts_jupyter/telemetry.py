"""OpenTelemetry spans for research runs, through ``opentelemetry-api`` only.

Nothing is recorded until the application configures an SDK (``opentelemetry-instrument``
does, or ``trace.set_tracer_provider(...)``); until then a run pays one check (``active()``)
and the API is not even imported. The tree of one run, following the GenAI semantic
conventions (attribute names as in ``gen_ai.*``, plus our ``fourhosts.*``)::

    invoke_agent fourhosts               fourhosts.run_id, fourhosts.host, gen_ai.usage.*
      fourhosts.stage classify           fourhosts.layer
      fourhosts.stage select | compress | write | isolate
      fourhosts.stage model
        chat gpt-4o                      gen_ai.operation.name=chat, gen_ai.provider.name,
                                         gen_ai.request.model, gen_ai.usage.*, finish_reasons
          execute_tool search_memory     gen_ai.tool.name, gen_ai.tool.call.id
        chat gpt-4o                      (the round after the tools)

Parents across the engine's boundaries: the sync twins run the pipeline on a worker thread
(``engine._iterate_in_thread`` copies the caller's context into it); the pipeline, an async
generator, is driven step by step inside a Context of its own (``_InContext``) in which the run
span and the open stage span are current. So ``asyncio.to_thread`` stages, tool tasks and HTTP
clients (auto-instrumented by ``opentelemetry-instrument``) nest under them, and the code that
consumes the events never sees them as current.

Content: no question, prompt, answer, tool argument or result text is put on a span unless
the user opts in with ``FOURHOSTS_OTEL_CONTENT=1`` (or ``Settings(otel_content=True)``).
Errors: status ERROR, the exception recorded, and ``error.type``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from typing import TYPE_CHECKING, Any, AsyncIterator, Generator, Iterator

from .events import (
    AnswerReady,
    Classified,
    LayerFinished,
    LayerStarted,
    RunFailed,
    RunStarted,
    UsageReported,
)

if TYPE_CHECKING:
    from .events import Event, Usage

CONTENT_VARIABLE = "FOURHOSTS_OTEL_CONTENT"
TRACER_NAME = "fourhosts_jupyter"
RUN_SPAN = "invoke_agent fourhosts"
STAGE_PREFIX = "fourhosts.stage "
AGENT_NAME = "fourhosts"

# our provider names → the conventions' gen_ai.provider.name values
PROVIDER_NAMES = {"openai": "openai", "azure": "azure.ai.openai", "offline": "fourhosts.offline"}


def active() -> bool:
    """Whether an SDK (a real TracerProvider) is configured: else every span is a no-op."""
    import sys

    if "opentelemetry.trace" not in sys.modules:
        # the SDK, opentelemetry-instrument and any exporter all import the API first
        return False
    from opentelemetry import trace

    # the proxy stands in until set_tracer_provider() is called
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def content_enabled(settings: Any = None) -> bool:
    if settings is not None and getattr(settings, "otel_content", False):
        return True
    return os.environ.get(CONTENT_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def _tracer() -> Any:
    from opentelemetry import trace

    from . import __version__

    return trace.get_tracer(TRACER_NAME, __version__)


def provider_name(name: str) -> str:
    return PROVIDER_NAMES.get(name, name)


def usage_attributes(usage: Usage) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.usage.input_tokens": int(usage.prompt_tokens),
        "gen_ai.usage.output_tokens": int(usage.completion_tokens),
    }
    if usage.cached_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = int(usage.cached_tokens)
    if usage.cost_usd is not None:
        attrs["fourhosts.cost_usd"] = float(usage.cost_usd)
    return attrs


def fail(span: Any, exc: BaseException, kind: str | None = None) -> None:
    """Mark ``span`` failed by ``exc``: status ERROR, the exception recorded, error.type.

    The message and the stack trace are redacted first (a URL's credentials, key-like strings):
    what ``span.record_exception`` would write, minus the secrets."""
    import traceback

    from opentelemetry.trace import Status, StatusCode

    from .redact import redact

    message = redact(str(exc))
    span.add_event("exception", {
        "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "exception.message": message,
        "exception.stacktrace": redact("".join(traceback.format_exception(exc))),
        "exception.escaped": False,
    })
    span.set_status(Status(StatusCode.ERROR, message[:300]))
    span.set_attribute("error.type", kind or type(exc).__qualname__)


def record_error(exc: BaseException, kind: str | None = None) -> None:
    """Record ``exc`` on the current span (the engine's open stage, inside a traced run)."""
    if not active():
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        fail(span, exc, kind)


# -- the run and its stages -------------------------------------------------------------------


def traced_run(events: AsyncIterator[Event], settings: Any = None) -> AsyncIterator[Event]:
    """The run's events, with a run span and a span per stage when an SDK is configured.

    Without one the stream is returned as it is (no wrapper, no cost per event)."""
    if not active():
        return events
    return _traced_run(events, content_enabled(settings))


async def _traced_run(events: AsyncIterator[Event], content: bool) -> AsyncIterator[Event]:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from .redact import redact

    tracer = _tracer()
    run = tracer.start_span(RUN_SPAN, kind=SpanKind.INTERNAL, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT_NAME})
    ctx = contextvars.copy_context()
    base = ctx.run(otel_context.attach, trace.set_span_in_context(run))
    stages: dict[str, tuple[Any, Any]] = {}  # open stage → (span, token)
    failed = False

    def close_stages(error: str | None = None, kind: str = "") -> None:
        for name in reversed(list(stages)):  # innermost first, so the tokens reset in order
            span, token = stages.pop(name)
            if error is not None and span.status.status_code != StatusCode.ERROR:
                span.set_status(Status(StatusCode.ERROR, redact(error)[:300]))
                span.set_attribute("error.type", kind)
            ctx.run(otel_context.detach, token)
            span.end()

    steps = _InContext(events, ctx)
    try:
        async for ev in steps:
            kind = type(ev)
            if kind is LayerStarted:
                span = tracer.start_span(STAGE_PREFIX + ev.layer, context=ctx.run(otel_context.get_current),
                                         attributes={"fourhosts.layer": ev.layer})
                stages[ev.layer] = (span, ctx.run(otel_context.attach, trace.set_span_in_context(span)))
            elif kind is LayerFinished and ev.layer in stages:
                span, token = stages.pop(ev.layer)
                ctx.run(otel_context.detach, token)
                span.end()
            elif kind is RunStarted:
                run.set_attribute("fourhosts.run_id", ev.run_id)
                for key in ("provider", "model", "api"):
                    if ev.options.get(key):
                        run.set_attribute(f"fourhosts.{key}", str(ev.options[key]))
                if content:
                    run.set_attribute("fourhosts.question", ev.question)
            elif kind is Classified:
                run.set_attribute("fourhosts.host", ev.classification.primary.value)
            elif kind is UsageReported:
                run.set_attributes(usage_attributes(ev.usage))
            elif kind is AnswerReady:
                if ev.answer.model:
                    run.set_attribute("gen_ai.request.model", ev.answer.model)
                if content:
                    run.set_attribute("fourhosts.answer", ev.answer.text)
            elif kind is RunFailed:
                failed = True
                close_stages(ev.error, ev.kind)
                if run.status.status_code != StatusCode.ERROR:
                    run.set_status(Status(StatusCode.ERROR, redact(ev.error)[:300]))
                run.set_attribute("error.type", ev.kind)
            yield ev
    except BaseException as exc:
        if not failed:  # stopped (cancelled, closed) rather than failed: no RunFailed came
            why = "cancelled" if isinstance(exc, GeneratorExit) else type(exc).__qualname__
            close_stages(str(exc) or why, why)
            fail(run, exc, why)
        raise
    finally:
        try:
            await steps.aclose()  # the engine's own finally (it persists the run) runs in ctx
        finally:
            close_stages()
            ctx.run(otel_context.detach, base)
            run.end()


class _InContext:
    """An async iterator whose every step runs inside ``ctx`` (a ``contextvars.Context``).

    A task has one context, shared by an async generator and the code consuming it: a span
    made current inside the generator would leak to the consumer at each ``yield``, and one
    attached by the consumer between steps would appear inside. Here each ``send``/``throw``
    into the generator's step runs in ``ctx``, so what the generator attaches stays its own."""

    def __init__(self, agen: AsyncIterator[Any], ctx: contextvars.Context) -> None:
        self.agen = agen
        self.ctx = ctx

    def __aiter__(self) -> _InContext:
        return self

    def __anext__(self) -> _Step:
        return _Step(self.ctx.run(self.agen.__anext__), self.ctx)

    def aclose(self) -> _Step:
        return _Step(self.ctx.run(self.agen.aclose), self.ctx)  # type: ignore[attr-defined]


class _Step:
    """Awaits ``coro`` with each of its steps run in ``ctx`` (what ``await`` does, plus the
    context switch): futures it waits on go to the task as they are; what the task sends or
    throws back (a result, a cancellation) goes into it."""

    def __init__(self, coro: Any, ctx: contextvars.Context) -> None:
        self.coro = coro
        self.ctx = ctx

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, run = self.coro, self.ctx.run
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                if error is None:
                    yielded = run(coro.send, value)
                else:
                    yielded = run(coro.throw, error)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # noqa: BLE001 - a cancellation goes into the step
                value, error = None, exc


# -- a model call, a tool call ----------------------------------------------------------------


class ModelCallSpan:
    """The span of one model call; the loop feeds it usage and the finish reason."""

    def __init__(self, span: Any, token: Any, content: bool) -> None:
        self.span = span
        self.token = token
        self.content = content
        self.reasons: list[str] = []
        self.ended = False

    def usage(self, usage: Usage) -> None:
        self.span.set_attributes(usage_attributes(usage))

    def finish(self, reason: str | None) -> None:
        if reason:
            self.reasons.append(reason)
            self.span.set_attribute("gen_ai.response.finish_reasons", self.reasons)

    def end(self, text: str = "", exc: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        from opentelemetry import context as otel_context

        if exc is not None:
            fail(self.span, exc)  # error.type: the exception's class, e.g. ProviderAuthError
        elif self.content and text:
            self.span.set_attribute("gen_ai.output.messages", json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": text}]}], ensure_ascii=False))
        otel_context.detach(self.token)
        self.span.end()


def model_call(provider: Any, request: Any, settings: Any = None) -> ModelCallSpan | None:
    """Start (and make current) the span of one model call; None when tracing is off.

    The caller ends it (``end``) in the same context: the loop's turn, an async generator
    that the engine always drives inside the run's own Context."""
    if not active():
        return None
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    model = getattr(provider, "model", "") or ""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_name(getattr(provider, "name", "") or "unknown"),
        "gen_ai.request.model": model,
    }
    api = getattr(provider, "api", None)
    if api:
        attrs["fourhosts.api"] = api
    if request is not None and getattr(request, "max_tokens", None):
        attrs["gen_ai.request.max_tokens"] = int(request.max_tokens)
    content = content_enabled(settings)
    if content and request is not None:
        attrs["gen_ai.input.messages"] = json.dumps(request.messages, ensure_ascii=False, default=str)
    span = _tracer().start_span(f"chat {model}".strip(), kind=SpanKind.CLIENT, attributes=attrs)
    token = otel_context.attach(trace.set_span_in_context(span))
    return ModelCallSpan(span, token, content)


class _ToolSpan:
    def __init__(self, span: Any, content: bool) -> None:
        self.span = span
        self.content = content

    def outcome(self, out: Any) -> None:
        from opentelemetry.trace import Status, StatusCode

        from .redact import redact

        self.span.set_attribute("fourhosts.tool.status", out.status)
        if self.content:
            self.span.set_attribute("gen_ai.tool.call.arguments",
                                    json.dumps(out.arguments, ensure_ascii=False, default=str))
            self.span.set_attribute("gen_ai.tool.call.result", out.content)
        if not out.ok and self.span.status.status_code != StatusCode.ERROR:
            # (the runner records the exception itself: telemetry.record_error in _failed)
            self.span.set_status(Status(StatusCode.ERROR, redact(out.error or out.status)[:300]))
            self.span.set_attribute("error.type", out.status)


class _NoSpan:
    def outcome(self, out: Any) -> None:
        pass


_NO_SPAN = _NoSpan()


def tool_call(name: str, call_id: str, host: Any = None) -> Any:
    """A context manager: the span of one tool call (current inside it), or a no-op."""
    if not active():
        return contextlib.nullcontext(_NO_SPAN)
    return _tool_call(name, call_id, host)


@contextlib.contextmanager
def _tool_call(name: str, call_id: str, host: Any) -> Iterator[_ToolSpan]:
    from opentelemetry.trace import SpanKind

    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": "function",
    }
    if host is not None:
        attrs["fourhosts.host"] = getattr(host, "value", str(host))
    with _tracer().start_as_current_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attrs,
                                         record_exception=False, set_status_on_exception=False) as span:
        try:
            yield _ToolSpan(span, content_enabled())
        except BaseException as exc:  # a cancelled call (the runner turns failures into outcomes)
            fail(span, exc)
            raise
