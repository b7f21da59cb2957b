"""One provider over the Responses API: OpenAI, Azure OpenAI's v1 surface, compatible servers.

Chosen with ``FOURHOSTS_API=responses`` (``Settings.api``, ``%config ResearchMagics.api``,
``--api``). It speaks to the engine exactly as the Chat provider does — the same provider
events, the same tool loop — and differs only on the wire:

- the request: the loop's Chat-shaped messages become ``input`` items; a turn that called
  tools becomes its ``function_call`` items (repeated: with ``store=false`` the server keeps
  nothing, and refuses an output whose call it cannot find) followed by one
  ``function_call_output`` per call with the same ``call_id``; tools are flat
  (``{type, name, description, parameters}``); ``--effort`` becomes ``reasoning.effort``;
- the stream: text from ``response.output_text.delta``; a tool call opens with
  ``response.output_item.added`` (``call_id`` and ``name``) and its argument deltas carry only
  ``item_id`` / ``output_index``, so calls are keyed by those, never by name; reasoning summary
  deltas become ReasoningDelta events (shown as "Thinking", never part of the answer);
- the end: ``response.completed`` gives usage; ``response.incomplete`` raises
  ProviderIncomplete with its reason; ``response.failed`` / ``error`` raise the matching
  ProviderError with the server's code and message; a stream that ends with none of them is
  incomplete too;
- reasoning models return encrypted reasoning items (``include=["reasoning.encrypted_content"]``);
  they are carried into the next tool round, in the order the model produced them.

Retries, dropped parameters and prices are the Chat provider's (this class extends it): its
``_retried`` loop runs this provider's ``_attempt``.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator

from ..errors import ConfigError, ProviderIncomplete
from ..events import Usage
from .base import (
    ModelRequest,
    ProviderEvent,
    ProviderFinish,
    ProviderReasoning,
    ProviderText,
    ProviderToolCallDelta,
    ProviderUsage,
)
from .errors import stream_error
from .openai_chat import OpenAIChatProvider, effort_params, without

APIS = ("chat", "responses")
# Parameters a deployment may refuse; dropped (and remembered) one at a time, as for Chat.
# Dotted names are nested keys. "include" first: its error text often names reasoning too.
# "store" last: a server that cannot do without it (or refuses items "not persisted when
# `store` is set to false") gets its default.
_OPTIONAL = ("include", "reasoning.summary", "reasoning", "temperature", "max_output_tokens", "store")
ENCRYPTED_REASONING = "reasoning.encrypted_content"
_INCOMPLETE_ADVICE = {
    "max_output_tokens": "it reached the output-token limit: ask a narrower question or raise --effort",
    "content_filter": "the content filter stopped it: rephrase the question",
}


def azure_v1_url(endpoint: str) -> str:
    """``{endpoint}/openai/v1/`` — Azure OpenAI's v1 surface (no api-version, no deployment path)."""
    root = endpoint.rstrip("/")
    if root.endswith("/openai/v1"):
        return root + "/"
    return root + "/openai/v1/"


def flat_tool(param: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions tool param as a Responses function tool."""
    fn = param.get("function")
    if not isinstance(fn, dict):  # already flat
        return dict(param)
    return {
        "type": "function",
        "name": fn.get("name", ""),
        "description": fn.get("description") or "",
        "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
        "strict": bool(fn.get("strict", False)),
    }


class OpenAIResponsesProvider(OpenAIChatProvider):
    """``client.responses.create(stream=True)`` through ``openai.AsyncOpenAI``.

    ``kind`` "azure" talks to ``{azure_endpoint}/openai/v1/`` with the deployment as model."""

    api = "responses"
    _optional = _OPTIONAL
    _falls_back_unstreamed = False  # the Chat fallback; not seen on Responses servers

    def __init__(self, kind: str = "openai", **options: Any) -> None:
        super().__init__(kind, **options)
        # The item order of each tool turn that returned encrypted reasoning, by its call ids.
        self._turns: dict[str, list[tuple[str, Any]]] = {}

    def __repr__(self) -> str:
        return super().__repr__().replace("OpenAIChatProvider", "OpenAIResponsesProvider", 1)

    @property
    def where(self) -> str:
        if self.name == "azure":
            return f"Azure OpenAI at {self.azure_endpoint} (Responses API)"
        return f"{super().where} (Responses API)"

    def _make_client(self) -> Any:
        if self.name != "azure":
            return super()._make_client()
        import openai

        if not self._api_key:
            raise ConfigError(f"cannot set up {self.where}: no key. Set AZURE_OPENAI_API_KEY")
        # The v1 surface takes the key as ``api-key`` (as Azure's own clients send it).
        return openai.AsyncOpenAI(base_url=azure_v1_url(self.azure_endpoint or ""), api_key=self._api_key,
                                  default_headers={"api-key": self._api_key}, timeout=self._timeout(),
                                  max_retries=0)

    # -- the request -------------------------------------------------------------------------

    def params(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments for ``responses.create`` (without dropped ones)."""
        p: dict[str, Any] = {"model": self.model, "input": self.input_items(request.messages),
                             "stream": True, "store": False}
        if request.tools:
            p["tools"] = [flat_tool(t) for t in request.tools]
            p["tool_choice"] = request.tool_choice or "auto"
        chat = effort_params(self.model, request.effort, tools=bool(request.tools),
                             reasoning=self.reasoning, max_tokens=request.max_tokens)
        if "reasoning_effort" in chat:
            p["reasoning"] = {"effort": chat["reasoning_effort"], "summary": "auto"}
            p["include"] = [ENCRYPTED_REASONING]
            p["max_output_tokens"] = chat["max_completion_tokens"]
        else:
            p["temperature"] = chat["temperature"]
            p["max_output_tokens"] = chat["max_tokens"]
        p.update(request.extra.get("responses_params", {}))
        without(p, self._dropped)
        return p

    def input_items(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The loop's Chat-shaped messages as Responses ``input`` items."""
        items: list[dict[str, Any]] = []
        for m in messages:
            role = m.get("role")
            if role == "tool":
                items.append({"type": "function_call_output", "call_id": m.get("tool_call_id") or "",
                              "output": _plain(m.get("content"))})
            elif role == "assistant" and m.get("tool_calls"):
                items.extend(self._tool_turn(m))
            else:
                items.append({"role": role or "user", "content": _plain(m.get("content"))})
        return items

    def _tool_turn(self, m: dict[str, Any]) -> list[dict[str, Any]]:
        calls = {}
        for c in m["tool_calls"]:
            fn = c.get("function") or {}
            call_id = c.get("id") or ""
            calls[call_id] = {"type": "function_call", "call_id": call_id, "name": fn.get("name") or "",
                              "arguments": fn.get("arguments") or "{}"}
        text = _plain(m.get("content"))
        message = [{"role": "assistant", "content": text}] if text else []
        order = next((self._turns[i] for i in calls if i in self._turns), None)
        if order is None:
            return [*message, *calls.values()]
        out: list[dict[str, Any]] = []
        for kind, value in order:  # the model's own order: a reasoning item precedes its call
            if kind == "reasoning":
                out.append(value)
            elif kind == "message":
                out.extend(message)
                message = []
            elif value in calls:
                out.append(calls.pop(value))
        return [*out, *message, *calls.values()]

    # -- one call ----------------------------------------------------------------------------

    async def _attempt(self, params: dict[str, Any], request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        """One request: its events; ProviderIncomplete / ProviderError when it did not complete."""
        stream = await self._client().responses.create(**params)
        parser = _EventParser(self.where)
        try:
            async for event in stream:
                for ev in parser.feed(event):
                    yield ev
        finally:
            await stream.close()
        for ev in parser.end():  # raises when the response did not complete
            if isinstance(ev, ProviderUsage):
                ev = ProviderUsage(self._priced(ev.usage, parser.served))
            yield ev
        for call_id in parser.call_ids if parser.carries_reasoning else ():
            self._turns[call_id] = parser.order


class _EventParser:
    """Responses stream events → provider events. A plain object fed event by event."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.calls: dict[str, int] = {}  # item id → call index (dense, in order of appearance)
        self.by_output: dict[int, int] = {}  # output_index → call index
        self.args: dict[int, list[str]] = {}  # argument pieces passed on so far, per call
        self.heads: set[int] = set()  # calls whose id and name were passed on
        self.call_ids: list[str] = []
        self.order: list[tuple[str, Any]] = []  # ("reasoning", item) | ("message", None) | ("call", call_id)
        self.carries_reasoning = False
        self.summarised: set[str] = set()  # reasoning items whose summary streamed
        self.summary_part: tuple[str, int] | None = None
        self.usage: Usage | None = None
        self.served: str | None = None
        self.status: str | None = None
        self.reason: str | None = None

    def feed(self, event: Any) -> list[ProviderEvent]:
        kind = event.type
        if kind == "response.output_text.delta":  # the hot path
            return [ProviderText(event.delta)] if event.delta else []
        if kind == "response.function_call_arguments.delta":
            i = self._index(event.item_id, event.output_index)
            if not event.delta:
                return []
            self.args[i].append(event.delta)
            return [ProviderToolCallDelta(i, arguments=event.delta)]
        if kind == "response.output_item.added":
            return self._added(event.item, event.output_index)
        if kind == "response.function_call_arguments.done":
            return self._rest(self._index(event.item_id, event.output_index), event.arguments)
        if kind == "response.output_item.done":
            return self._item_done(event.item, event.output_index)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            part = getattr(event, "summary_index", None)
            return self._thinking(event.item_id, getattr(event, "content_index", 0) if part is None else part,
                                  event.delta)
        if kind == "response.refusal.delta":
            return [ProviderText(event.delta)] if event.delta else []
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            self._final(event.response, kind.removeprefix("response."))
            if kind == "response.failed":
                error = event.response.error
                raise stream_error(getattr(error, "code", None), getattr(error, "message", None), where=self.where)
        elif kind == "error":
            raise stream_error(event.code, event.message, where=self.where)
        return []

    def _index(self, item_id: str | None, output_index: int | None) -> int:
        if item_id is not None and item_id in self.calls:
            return self.calls[item_id]
        if output_index is not None and output_index in self.by_output:
            i = self.by_output[output_index]
        else:  # a call first seen by its arguments: it still gets its own index
            i = len(self.args)
            self.args[i] = []
            if output_index is not None:
                self.by_output[output_index] = i
        if item_id is not None:
            self.calls[item_id] = i
        return i

    def _head(self, i: int, item: Any) -> list[ProviderEvent]:
        if i in self.heads:
            return []
        self.heads.add(i)
        self.call_ids.append(item.call_id)
        self.order.append(("call", item.call_id))
        return [ProviderToolCallDelta(i, id=item.call_id or None, name=item.name or None)]

    def _call_item(self, item: Any, output_index: int) -> list[ProviderEvent]:
        """A function_call item (added or done): its head once, and any arguments not yet seen."""
        i = self._index(item.id, output_index)
        return self._head(i, item) + self._rest(i, item.arguments)

    def _added(self, item: Any, output_index: int) -> list[ProviderEvent]:
        if item.type == "function_call":
            return self._call_item(item, output_index)
        if item.type == "message" and ("message", None) not in self.order:
            self.order.append(("message", None))
        return []

    def _rest(self, i: int, full: str | None) -> list[ProviderEvent]:
        """The part of a call's final arguments not passed on yet (servers that skip deltas)."""
        so_far = "".join(self.args[i])
        if not full or full == so_far or not full.startswith(so_far):
            return []
        self.args[i].append(full[len(so_far):])
        return [ProviderToolCallDelta(i, arguments=full[len(so_far):])]

    def _item_done(self, item: Any, output_index: int) -> list[ProviderEvent]:
        if item.type == "function_call":
            return self._call_item(item, output_index)
        if item.type != "reasoning":
            return []
        if item.encrypted_content:
            self.carries_reasoning = True
            self.order.append(("reasoning", {
                "type": "reasoning", "id": item.id, "encrypted_content": item.encrypted_content,
                "summary": [{"type": "summary_text", "text": s.text} for s in item.summary or ()],
            }))
        if item.id not in self.summarised and item.summary:  # a server that sent the summary only here
            return self._thinking(item.id, 0, "\n\n".join(s.text for s in item.summary))
        return []

    def _thinking(self, item_id: str, part: int, delta: str) -> list[ProviderEvent]:
        if not delta:
            return []
        self.summarised.add(item_id)
        key = (item_id, part)
        gap = "\n\n" if self.summary_part not in (None, key) else ""
        self.summary_part = key
        return [ProviderReasoning(gap + delta)]

    def _final(self, response: Any, status: str) -> None:
        self.status = status
        self.served = getattr(response, "model", None) or None
        details = getattr(response, "incomplete_details", None)
        self.reason = getattr(details, "reason", None) if details is not None else None
        u = getattr(response, "usage", None)
        if u is not None:
            prompt = int(getattr(u, "input_tokens", 0) or 0)
            completion = int(getattr(u, "output_tokens", 0) or 0)
            cached = getattr(getattr(u, "input_tokens_details", None), "cached_tokens", 0) or 0
            self.usage = Usage(prompt_tokens=prompt, completion_tokens=completion,
                               total_tokens=int(getattr(u, "total_tokens", 0) or 0) or prompt + completion,
                               cached_tokens=int(cached))

    def end(self) -> Iterator[ProviderEvent]:
        if self.usage is not None:
            yield ProviderUsage(self.usage)
        if self.status == "completed":
            yield ProviderFinish("tool_calls" if self.call_ids else "stop")
            return
        if self.status == "incomplete":
            advice = _INCOMPLETE_ADVICE.get(self.reason or "", "the answer above is cut off")
            raise ProviderIncomplete(
                f"{self.where} stopped the answer early (incomplete: {self.reason or 'no reason given'}); {advice}",
                reason=self.reason,
            )
        raise ProviderIncomplete(
            f"{self.where} ended the stream before the response completed (no response.completed "
            "event): the connection was cut or the server stopped; retry the question",
        )


def _plain(content: Any) -> str:
    """Message content as text (Chat content may be a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)
