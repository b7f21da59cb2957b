"""One provider over the Chat Completions API: OpenAI, Azure OpenAI and compatible servers.

The official ``openai`` client does the HTTP and SSE parsing; this module turns its chunks
into provider events, liberally (compatible servers differ in small ways):

- tool-call deltas are joined by ``index``; ids and names may come once or on every chunk;
  a delta without an index is matched by id, or continues the last call;
- ``finish_reason`` may be ``stop`` even after tool calls; usage may come on any chunk;
- a server that rejects ``stream_options`` (or ``reasoning_effort``, …) gets the same request
  again without it, and the parameter stays dropped for that server and model;
- the deprecated ``function_call`` field is read only when a chunk has no ``tool_calls`` (some
  servers send both, with the same arguments);
- a turn that ends without a finish reason (the stream closed early and cleanly, or a 200 with
  nothing in it) raises ProviderIncomplete after its partial text;
- a server that cannot stream a turn with tools (an error naming streaming, or an empty 200 —
  llama-cpp-python) gets that turn again once with ``stream=false``; the whole reply becomes
  the same events (text, then calls), and the server's tool turns stay unstreamed for the rest
  of the process.

Retries live here and only here: the client is built with ``max_retries=0`` and a failed
request is retried ``settings.max_retries`` times with exponential backoff that honours
``Retry-After``, as long as nothing was streamed yet. Once text was streamed, a failure is
raised as a ProviderError (the engine keeps the partial answer).
"""

from __future__ import annotations

import asyncio
import copy
import os
import random
import re
import weakref
from dataclasses import replace
from typing import Any, AsyncIterator, Callable, Iterable, Mapping

from ..errors import ConfigError, ProviderConnectionError, ProviderError, ProviderIncomplete
from ..events import Notice, Usage
from ..redact import safe_url
from .base import ModelRequest, ProviderEvent, ProviderFinish, ProviderText, ProviderToolCallDelta, ProviderUsage
from . import loop_clients
from .errors import rejected_parameter, to_provider_error
from .prices import PRICES_VARIABLE, Price, cost_usd, parse_prices

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_AZURE_API_VERSION = "2024-10-21"
KEYLESS = "not-needed"  # local compatible servers ignore the key, the client insists on one

# o1/o3/o4 and gpt-5 families take reasoning_effort and max_completion_tokens, no temperature.
_REASONING = re.compile(r"(^|[/:_-])(o\d+|gpt-5)", re.I)
# Brief §4.1: temperature 0.7; streaming cap 2000 tokens, 4096 with tools; reasoning 8192.
_MAX_TOKENS = {"low": 1000, "medium": 2000, "high": 4096}
_REASONING_MAX = {"low": 4096, "medium": 8192, "high": 16384}
# Parameters some compatible servers reject; dropped and retried once each.
_OPTIONAL = ("stream_options", "reasoning_effort", "max_completion_tokens", "parallel_tool_calls")

# Parameters a server refused, per (kind, API, address, model), remembered for this process:
# the engine builds a provider per run, and one refusal per server is enough. Per API: the two
# take different parameters.
_REFUSED: dict[tuple[str, str, str, str], set[str]] = {}
# Servers (kind, address, Azure deployment) that cannot stream a turn with tools, for this
# process: their tool turns are sent with stream=false from the first one on.
_UNSTREAMED_TOOLS: set[tuple[str, str, str]] = set()

# One request of a provider's retry loop: its events for these parameters (see ``_retried``).
Attempt = Callable[[dict[str, Any], ModelRequest], AsyncIterator[ProviderEvent]]

BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 60.0


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING.search(model or ""))


def effort_params(model: str, effort: str, *, tools: bool, reasoning: bool | None = None,
                  max_tokens: int | None = None) -> dict[str, Any]:
    """Model parameters for an effort level (brief §4.1)."""
    effort = effort if effort in _MAX_TOKENS else "medium"
    if reasoning if reasoning is not None else is_reasoning_model(model):
        return {"reasoning_effort": effort, "max_completion_tokens": max_tokens or _REASONING_MAX[effort]}
    cap = _MAX_TOKENS[effort]
    if tools:
        cap = max(cap, 4096)
    return {"temperature": 0.7, "max_tokens": max_tokens or cap}


def has_param(params: dict[str, Any], name: str) -> bool:
    """Whether ``params`` carries ``name``; a dotted name ("reasoning.summary") is a nested key."""
    outer, _, inner = name.partition(".")
    if not inner:
        return outer in params
    value = params.get(outer)
    return isinstance(value, dict) and inner in value


def without(params: dict[str, Any], names: Iterable[str]) -> None:
    """Drop ``names`` (dotted for nested keys) from ``params``, in place."""
    for name in names:
        outer, _, inner = name.partition(".")
        if not inner:
            params.pop(name, None)
        elif isinstance(params.get(outer), dict):
            params[outer] = {k: v for k, v in params[outer].items() if k != inner}


class OpenAIChatProvider:
    """Chat Completions with streaming and tools through ``openai.AsyncOpenAI`` / ``AsyncAzureOpenAI``.

    ``kind`` is "openai", "azure" or "compatible" (any server speaking the API at ``base_url``).
    """

    offline = False
    api = "chat"
    _optional = _OPTIONAL  # what may be dropped when refused
    _falls_back_unstreamed = True  # a refused streamed tool turn is sent again unstreamed

    def __init__(
        self,
        kind: str = "openai",
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        azure_endpoint: str | None = None,
        azure_deployment: str | None = None,
        api_version: str | None = None,
        request_timeout: float = 120.0,
        stream_idle_timeout: float = 60.0,
        max_retries: int = 2,
        reasoning: bool | None = None,
        prices: Mapping[str, Price] | None = None,
        sleep: Any = asyncio.sleep,
    ) -> None:
        if kind not in ("openai", "azure", "compatible"):
            raise ConfigError(f"unknown provider kind {kind!r}: use openai, azure or compatible")
        if kind == "azure" and not azure_endpoint:
            raise ConfigError("Azure OpenAI needs an endpoint: set AZURE_OPENAI_ENDPOINT")
        if kind == "azure" and not (model or azure_deployment):
            raise ConfigError(
                "Azure OpenAI needs a deployment name: set AZURE_OPENAI_DEPLOYMENT or pass --model"
            )
        if kind == "compatible" and not base_url:
            raise ConfigError("a compatible server needs a base URL: pass --base-url or set OPENAI_BASE_URL")
        self.name = kind
        self.model = model or azure_deployment or (DEFAULT_OPENAI_MODEL if kind == "openai" else "")
        self._api_key = api_key  # never logged, never rendered: see __repr__
        self.base_url = base_url
        self.azure_endpoint = azure_endpoint
        self.azure_deployment = azure_deployment
        self.api_version = api_version or (DEFAULT_AZURE_API_VERSION if kind == "azure" else None)
        self.request_timeout = request_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.max_retries = max(0, int(max_retries))
        self.reasoning = reasoning
        # The analyst's price overrides (None → FOURHOSTS_PRICES); see ``_priced``.
        self.prices = parse_prices(os.environ.get(PRICES_VARIABLE) if prices is None else prices,
                                   PRICES_VARIABLE if prices is None else "prices")
        self._sleep = sleep
        where_key = (azure_endpoint if kind == "azure" else base_url) or ""
        self._dropped = _REFUSED.setdefault((kind, self.api, where_key, self.model), set())
        self._server = (kind, where_key or "api.openai.com", self.model if kind == "azure" else "")
        # One client per event loop: the sync twins run each run on a fresh loop, and an httpx
        # pool must not outlive the loop its connections belong to.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        where = self.azure_endpoint if self.name == "azure" else (self.base_url or "api.openai.com")
        return f"OpenAIChatProvider({self.name!r}, model={self.model!r}, at={safe_url(where)!r})"

    @property
    def where(self) -> str:
        if self.name == "azure":
            return f"Azure OpenAI at {safe_url(self.azure_endpoint)}"
        if self.base_url:
            return f"the server at {safe_url(self.base_url)}"
        return "OpenAI"

    # -- the client --------------------------------------------------------------------------

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = loop_clients.track(self._make_client())
        return client

    def _timeout(self) -> Any:
        import openai

        return openai.Timeout(self.request_timeout, connect=min(10.0, self.request_timeout),
                              read=self.stream_idle_timeout)

    def _make_client(self) -> Any:
        import openai

        timeout = self._timeout()
        try:
            if self.name == "azure":
                return openai.AsyncAzureOpenAI(
                    azure_endpoint=self.azure_endpoint,
                    azure_deployment=self.azure_deployment,
                    api_version=self.api_version,
                    api_key=self._api_key,
                    timeout=timeout,
                    max_retries=0,
                )
            key = self._api_key
            if self.name == "compatible" and not key:
                key = KEYLESS
            return openai.AsyncOpenAI(
                api_key=key,
                base_url=self.base_url,
                timeout=timeout,
                max_retries=0,
            )
        except openai.OpenAIError as exc:  # e.g. no key at all
            raise ConfigError(
                f"cannot set up {self.where}: {exc}. Set OPENAI_API_KEY (or AZURE_OPENAI_API_KEY), "
                "or use FOURHOSTS_PROVIDER=offline"
            ) from None

    async def aclose(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.close()

    # -- one call ----------------------------------------------------------------------------

    def params(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments for ``chat.completions.create`` (without dropped ones)."""
        p: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            p["tools"] = request.tools
            p["tool_choice"] = request.tool_choice or "auto"
        p.update(effort_params(self.model, request.effort, tools=bool(request.tools),
                               reasoning=self.reasoning, max_tokens=request.max_tokens))
        p.update(request.extra.get("openai_params", {}))
        without(p, self._dropped)
        if request.tools and self._server in _UNSTREAMED_TOOLS:
            p["stream"] = False
            p.pop("stream_options", None)
        return p

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent | Notice]:
        # The loop's own generator, not one wrapped in another: every event passes each level.
        return self._retried(request, self._attempt)

    async def _attempt(self, params: dict[str, Any], request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        """One request: its events, or ProviderIncomplete when it ends without a finish reason."""
        if not params["stream"]:
            for ev in await self._unstreamed(params):
                yield ev
            return
        stream = await self._client().chat.completions.create(**params)
        parser = _ChunkParser()
        chunk = None
        fed = False
        try:
            async for chunk in stream:
                for ev in parser.feed(chunk):
                    fed = True
                    yield ev
        finally:
            await stream.close()
        if parser.finish is None:
            raise _incomplete(self.where, empty=not fed)
        # The last chunk (the usage one) names the model that answered.
        served = getattr(chunk, "model", None) or None
        for ev in parser.end():
            if isinstance(ev, ProviderUsage):
                ev = ProviderUsage(self._priced(ev.usage, served))
            yield ev

    async def _retried(self, request: ModelRequest, attempt: Attempt) -> AsyncIterator[ProviderEvent | Notice]:
        """``attempt(params, request)`` until one goes through: the one retry loop of both APIs.

        Nothing is retried once an attempt yielded an event (the engine keeps the partial
        answer). Before that: a parameter the server refuses is dropped (remembered per server)
        and the request sent again; a server that cannot stream a turn with tools gets it once
        unstreamed (``_falls_back_unstreamed``); a retryable error is retried ``max_retries``
        times after a backoff that honours Retry-After."""
        if not self.model:
            await self._discover_model()
        retries = 0
        refused: ProviderError | None = None  # why this turn's streamed attempt was refused
        reconnected = False
        while True:
            params = self.params(request)
            yielded = False
            try:
                async for ev in attempt(params, request):
                    yielded = True
                    yield ev
                return
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - converted right here
                err = to_provider_error(exc, where=self.where)
                if yielded:
                    raise err from exc
                dropped = rejected_parameter(err, tuple(n for n in self._optional if has_param(params, n)))
                if dropped:
                    self._dropped.add(dropped)
                    yield Notice(f"{self.where} does not accept `{dropped}`; retried without it.")
                    continue
                if (self._falls_back_unstreamed and params["stream"] and request.tools and refused is None
                        and _refuses_streamed_tools(err, exc)):
                    refused = err
                    _UNSTREAMED_TOOLS.add(self._server)
                    yield Notice(
                        f"{self.where} cannot stream tool calls ({_why(err)}); this and later turns "
                        "with tools go to it without streaming, so their text arrives all at once."
                    )
                    continue
                if refused is not None and not reconnected and isinstance(err, ProviderConnectionError):
                    # The server may close its connection just after refusing, under the retry
                    # sent on that pooled connection: once more, at once, on a fresh one.
                    reconnected = True
                    continue
                if not err.retryable or retries >= self.max_retries:
                    raise (_both_ways(err, refused) if refused is not None else err) from exc
                retries += 1
                delay = self._delay(err, retries)
                yield Notice(
                    f"{type(err).__name__.removeprefix('Provider')} from {self.where}; retry "
                    f"{retries}/{self.max_retries} in {delay:.1f} s",
                    "warning",
                )
                await self._sleep(delay)

    async def _unstreamed(self, params: dict[str, Any]) -> list[ProviderEvent]:
        """One turn with ``stream=false``: the whole reply as the events a stream would give."""
        try:
            completion = await self._client().chat.completions.create(**params)
        except ValueError as exc:  # a 200 whose body is not JSON (empty): nothing was answered
            raise _incomplete(self.where, empty=True, streamed=False) from exc
        return [
            ProviderUsage(self._priced(ev.usage, completion.model)) if isinstance(ev, ProviderUsage) else ev
            for ev in _completion_events(completion, self.where)
        ]

    def _priced(self, usage: Usage, served: str | None) -> Usage:
        """``usage`` with its cost; None when the price is unknown (never a guess).

        List prices apply to the model that answered on OpenAI and Azure, and to the configured
        model only on OpenAI: an Azure deployment name is not a model name, and a compatible
        server's models have no list price. The analyst's prices apply to either name."""
        cost = cost_usd(served, usage, self.prices, builtin=self.name != "compatible")
        if cost is None:
            cost = cost_usd(self.model, usage, self.prices, builtin=self.name == "openai")
        return replace(usage, cost_usd=cost)

    @staticmethod
    def _delay(err: ProviderError, attempt: int) -> float:
        hinted = getattr(err, "retry_after", None)
        if hinted is not None:
            return min(float(hinted), RETRY_AFTER_CAP)
        return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) + random.uniform(0, 0.1)

    async def _discover_model(self) -> None:
        """A compatible server given without --model: use the first model it lists."""
        try:
            page = await self._client().models.list()
            first = next(iter(page.data), None)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"no model given and {self.where} did not list any ({type(exc).__name__}): pass --model NAME"
            ) from None
        if first is None:
            raise ConfigError(f"no model given and {self.where} lists none: pass --model NAME")
        self.model = first.id


class _ChunkParser:
    """Chat Completions chunks → provider events. Liberal in what it accepts.

    A plain object fed chunk by chunk (no generator per chunk: this is the hot path)."""

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}
        self.last_index: int | None = None
        self.finish: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: Any) -> list[ProviderEvent]:
        try:  # the hot path, nearly every chunk: one choice carrying only text
            (choice,) = chunk.choices
            delta = choice.delta
            if (chunk.usage is None and choice.finish_reason is None and not choice.index
                    and not delta.tool_calls and delta.function_call is None):
                return [ProviderText(delta.content)] if delta.content else []
        except (AttributeError, TypeError, ValueError):
            pass  # anything unusual: the liberal path below
        out: list[ProviderEvent] = []
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = _usage(usage)  # some servers repeat it; the last one wins
        for choice in getattr(chunk, "choices", None) or ():
            if getattr(choice, "index", 0) not in (0, None):
                continue  # n > 1 is never requested; ignore stray choices
            delta = getattr(choice, "delta", None)
            if delta is not None:
                content = getattr(delta, "content", None)
                if content:
                    out.append(ProviderText(content))
                tool_calls = getattr(delta, "tool_calls", None)
                for tc in tool_calls or ():
                    out.append(self._tool_delta(tc))
                # Pre-tools servers; llama-cpp-python sends it *beside* tool_calls, same arguments.
                legacy = None if tool_calls else getattr(delta, "function_call", None)
                if legacy is not None:
                    out.append(ProviderToolCallDelta(
                        index=0,
                        name=getattr(legacy, "name", None) or None,
                        arguments=getattr(legacy, "arguments", None) or "",
                    ))
            if getattr(choice, "finish_reason", None):
                self.finish = choice.finish_reason
        return out

    def _tool_delta(self, tc: Any) -> ProviderToolCallDelta:
        index = getattr(tc, "index", None)
        call_id = getattr(tc, "id", None) or None
        if index is None:  # no index: match by id, else continue the last call
            if call_id is not None and call_id in self.by_id:
                index = self.by_id[call_id]
            elif call_id is not None:
                index = 0 if self.last_index is None else self.last_index + 1
            else:
                index = self.last_index or 0
        if call_id is not None:
            self.by_id.setdefault(call_id, index)
        self.last_index = index
        fn = getattr(tc, "function", None)
        return ProviderToolCallDelta(
            index=index,
            id=call_id,
            name=(getattr(fn, "name", None) or None) if fn is not None else None,
            arguments=(getattr(fn, "arguments", None) or "") if fn is not None else "",
        )

    def end(self) -> list[ProviderEvent]:
        tail: list[ProviderEvent] = [ProviderUsage(self.usage)] if self.usage is not None else []
        return [*tail, ProviderFinish(self.finish)]


def _usage(u: Any) -> Usage:
    """Token counts only; the provider adds the cost (``_priced``) once the model is known."""
    prompt = int(getattr(u, "prompt_tokens", 0) or 0)
    completion = int(getattr(u, "completion_tokens", 0) or 0)
    total = int(getattr(u, "total_tokens", 0) or 0) or prompt + completion
    details = getattr(u, "prompt_tokens_details", None)  # cached tokens bill at a lower rate
    cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total, cached_tokens=cached)


def _completion_events(completion: Any, where: str) -> list[ProviderEvent]:
    """A whole (non-streamed) reply as the events its stream would have given: text, calls,
    usage, finish. Empty, or without a finish reason, it is ProviderIncomplete."""
    choice = next(iter(getattr(completion, "choices", None) or ()), None)
    message = getattr(choice, "message", None)
    finish = getattr(choice, "finish_reason", None)
    out: list[ProviderEvent] = []
    content = getattr(message, "content", None)
    if content:
        out.append(ProviderText(content))
    calls = getattr(message, "tool_calls", None) or ()
    for i, tc in enumerate(calls):
        fn = getattr(tc, "function", None)
        out.append(ProviderToolCallDelta(
            index=i, id=getattr(tc, "id", None) or None,
            name=getattr(fn, "name", None) or None, arguments=getattr(fn, "arguments", None) or "",
        ))
    legacy = None if calls else getattr(message, "function_call", None)
    if legacy is not None:
        out.append(ProviderToolCallDelta(index=0, name=getattr(legacy, "name", None) or None,
                                         arguments=getattr(legacy, "arguments", None) or ""))
    if not finish:
        raise _incomplete(where, empty=not out, streamed=False)
    usage = getattr(completion, "usage", None)
    if usage is not None:
        out.append(ProviderUsage(_usage(usage)))
    out.append(ProviderFinish(finish))
    return out


def _incomplete(where: str, *, empty: bool, streamed: bool = True) -> ProviderIncomplete:
    if empty:
        what = "stream" if streamed else "reply"
        return ProviderIncomplete(
            f"the {what} from {where} ended with nothing in it (no text, no tool call, no finish "
            "reason) — retry, or check the server's log for an error it did not send",
            reason="empty reply",
        )
    return ProviderIncomplete(
        f"the answer from {where} was cut off: its stream ended without a finish reason (the "
        "server closed it early); the text above is partial — retry, or check the server's log",
        reason="no finish reason",
    )


def _refuses_streamed_tools(err: ProviderError, raw: BaseException) -> bool:
    """A refusal to stream a turn with tools: an empty stream, or an error status whose message
    (the server's own words in ``raw``, not our advice around them) names streaming."""
    if isinstance(err, ProviderIncomplete):
        return err.reason == "empty reply"
    status = err.status_code
    return (status is not None and status >= 400 and status not in (401, 403, 429)
            and "stream" in str(raw).lower())


def _why(err: ProviderError) -> str:
    if isinstance(err, ProviderIncomplete):
        return "its stream ended empty"
    return f"HTTP {err.status_code}" if err.status_code else type(err).__name__


def _both_ways(err: ProviderError, refused: ProviderError) -> ProviderError:
    """``err`` (from the non-streamed retry), saying the streamed attempt failed too."""
    both = copy.copy(err)
    both.args = (f"neither streamed ({_why(refused)}) nor without streaming could this turn with "
                 f"tools be answered: {err}",)
    return both
