"""Parallel tool calls whose deltas arrive interleaved, end to end: Engine → loop →
OpenAIChatProvider → official client → loopback server, and back through the runner.

Some compatible servers do not finish call 0 before starting call 1: they stream the calls'
argument pieces round-robin, sometimes two calls' deltas in one chunk, sometimes with the id
and name repeated on every chunk. Each call must still be joined by its own index."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import openai
import pytest
from openai_server import Call, Reply, assembled_calls

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.events import (
    AnswerReady,
    RunFailed,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from fourhosts_jupyter.llm.base import ModelRequest, ProviderFinish
from fourhosts_jupyter.llm.openai_chat import OpenAIChatProvider
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.tools import ToolRegistry

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"
# Quotes, a non-ASCII letter (sent as \u00fc) and a nested list: a piece boundary inside any
# of them must not matter once the pieces of one call are joined.
POP_ARGS = {"city": 'Zürich "old town"', "year": 2024}
DEATHS_ARGS = {"city": "Lyon", "years": [2019, 2020, 2021], "per_capita": True}
# The demo corpus's road-safety documents: a question about traffic deaths draws from these.
ROAD_SAFETY = {"speed-management.md", "vision-zero-safe-system.md", "city-road-safety-action-plan.md",
               "road-safety-data-evaluation.md", "road-safety-stakeholders-equity.md",
               "street-design-pedestrians-cyclists.md", "public-health-injury-prevention.md"}


def corpus_file(origin: str) -> str:
    """The file name in a source's origin, a path or a label such as 'demo corpus: x.md'."""
    return origin.replace("\\", "/").split("/")[-1].split(" ")[-1]
FINAL = "Zürich has 420,000 people; Lyon's deaths fell [1]."

SHAPES = {
    "interleaved": {"interleave": True},
    "two-per-chunk": {"calls_per_chunk": 2},
    "interleaved-repeat-ids": {"interleave": True, "repeat_ids": True},
    "two-per-chunk-repeat-ids": {"calls_per_chunk": 2, "repeat_ids": True},
}


class Tools:
    """Two real tools that record every call they receive."""

    def __init__(self) -> None:
        self.registry = ToolRegistry()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()  # sync tools run on worker threads, concurrently
        tools = self

        @self.registry.register
        def city_population(city: str, year: int) -> dict:
            """Population of a city in a year."""
            tools._record("city_population", {"city": city, "year": year})
            return {"city": city, "population": 420_000}

        @self.registry.register
        def road_deaths(city: str, years: list[int], per_capita: bool = False) -> dict:
            """Road deaths of a city per year."""
            tools._record("road_deaths", {"city": city, "years": years, "per_capita": per_capita})
            return {"city": city, "deaths": [31, 24, 19]}

    def _record(self, name: str, args: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append((name, args))


@pytest.fixture
def tools() -> Tools:
    return Tools()


@pytest.fixture
def make_engine(openai_server, store, tools, monkeypatch):
    def make(url: str) -> Engine:
        if url == "azure":
            monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key-for-test")
            settings = Settings(provider="azure", azure_endpoint=openai_server.azure_endpoint,
                                model="research-deploy", api_version="2024-10-21", max_retries=0)
        else:
            settings = Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0)
        return Engine(settings, store=store, embedder=HashingEmbedder(), tools=tools.registry)

    return make


def answer_of(events: list) -> Any:
    ready = [e for e in events if isinstance(e, AnswerReady)]
    assert ready, [e for e in events if isinstance(e, RunFailed)]
    return ready[0].answer


def two_calls(**options: Any) -> Reply:
    # args_chunk=3: each call arrives in well over ten pieces, so the interleaving is long.
    return Reply.parallel(Call("city_population", POP_ARGS, id="call_pop"),
                          Call("road_deaths", DEATHS_ARGS, id="call_deaths"),
                          text="Checking both.", args_chunk=3, **options)


def switches(call_ids: list[str]) -> int:
    return sum(1 for a, b in zip(call_ids, call_ids[1:]) if a != b)


@pytest.mark.parametrize("url", ["openai", "azure"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_interleaved_calls_each_run_once_with_their_own_arguments(openai_server, make_engine, tools, shape, url):
    openai_server.script(two_calls(**SHAPES[shape]), Reply.say(FINAL))
    events = list(make_engine(url).stream(QUESTION, paradigm="bernard"))
    answer = answer_of(events)

    # each tool ran exactly once, with exactly the arguments the model sent it
    assert sorted(tools.seen, key=lambda s: s[0]) == [("city_population", POP_ARGS), ("road_deaths", DEATHS_ARGS)]
    assert [(r.call_id, r.name, r.status, r.arguments) for r in answer.tool_calls] == [
        ("call_pop", "city_population", "done", POP_ARGS), ("call_deaths", "road_deaths", "done", DEATHS_ARGS)]

    # the stream really was interleaved on the way in: the argument pieces alternate
    pieces = [e.call_id for e in events if isinstance(e, ToolCallArgumentsDelta)]
    assert switches(pieces) > 10, pieces
    started = [(e.call_id, e.name, e.index) for e in events if isinstance(e, ToolCallStarted)]
    assert started == [("call_pop", "city_population", 0), ("call_deaths", "road_deaths", 1)]

    # the assistant turn and one tool message per call went back, matched by tool_call_id
    first, second = openai_server.chat_requests
    if url == "azure":
        assert first.deployment == second.deployment == "research-deploy"
    else:
        assert first.path == second.path == "/v1/chat/completions"
    assistant, pop_msg, deaths_msg = second.messages[-3:]
    assert assistant["role"] == "assistant" and assistant["content"] == "Checking both."
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in assistant["tool_calls"]] == [
        ("call_pop", "city_population", POP_ARGS), ("call_deaths", "road_deaths", DEATHS_ARGS)]
    assert [m["role"] for m in (pop_msg, deaths_msg)] == ["tool", "tool"]
    assert pop_msg["tool_call_id"] == "call_pop"
    assert json.loads(pop_msg["content"]) == {"city": 'Zürich "old town"', "population": 420_000}
    assert deaths_msg["tool_call_id"] == "call_deaths"
    assert json.loads(deaths_msg["content"]) == {"city": "Lyon", "deaths": [31, 24, 19]}

    # the final answer streamed after both tools finished
    assert answer.text == "Checking both.\n\n" + FINAL
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == answer.text
    last_finished = max(i for i, e in enumerate(events) if isinstance(e, ToolCallFinished))
    after = "".join(e.text for e in events[last_finished:] if isinstance(e, TextDelta))
    assert after == "\n\n" + FINAL


def test_the_server_really_sends_two_tool_call_deltas_per_chunk(openai_server):
    # The option itself, seen through the official client: guards the tests above against a
    # server that quietly stopped interleaving.
    openai_server.script(two_calls(calls_per_chunk=2))
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="x", max_retries=0)
    with client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}],
                                        stream=True) as stream:
        shapes = [[tc.index for tc in c.choices[0].delta.tool_calls]
                  for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert shapes.count([0, 1]) > 5
    assert all(s in ([0, 1], [0], [1]) for s in shapes), shapes


def provider_calls(server, reply: Reply) -> dict[int, dict[str, str]]:
    """Stream one turn through the provider; the calls joined by index, as the loop joins them."""
    server.script(reply)
    provider = OpenAIChatProvider("compatible", base_url=server.base_url, model="demo", max_retries=0)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}

    async def go() -> list:
        try:
            return [ev async for ev in provider.stream(ModelRequest(messages=[{"role": "user", "content": "q"}],
                                                                     tools=[tool]))]
        finally:
            await provider.aclose()

    events = asyncio.run(go())
    assert events[-1] == ProviderFinish("tool_calls")
    return assembled_calls(events)


THREE = (
    Call("lookup", {"city": "Oslo", "fields": ["population", "area", "density"]}, id="call_a"),
    Call("lookup", {"city": "Lyon"}, id="call_b"),
    Call("search_memory", {"query": "speed cameras before-and-after evidence"}, id="call_c"),
)


@pytest.mark.parametrize("options", [
    {"interleave": True},
    {"calls_per_chunk": 2},  # three calls: pairs (0, 1) then 2 alone, until the short ones end
    {"calls_per_chunk": 3},
    {"calls_per_chunk": 2, "repeat_ids": True},
    {"interleave": True, "repeat_ids": True, "omit_index": True},  # no index: matched by id
], ids=["interleaved", "two-per-chunk", "three-per-chunk", "two-per-chunk-repeat-ids", "no-index-by-id"])
def test_the_provider_joins_three_uneven_interleaved_calls_by_index(openai_server, options):
    calls = provider_calls(openai_server, Reply.parallel(*THREE, args_chunk=2, **options))
    assert sorted(calls) == [0, 1, 2]
    assert [(calls[i]["id"], calls[i]["name"]) for i in range(3)] == [
        ("call_a", "lookup"), ("call_b", "lookup"), ("call_c", "search_memory")]
    assert [json.loads(calls[i]["arguments"]) for i in range(3)] == [dict(c.arguments) for c in THREE]


def test_heads_sent_apart_one_call_after_another_still_run_with_their_arguments(openai_server, make_engine, tools):
    # OpenAI's own shape: each call opens with id/name and arguments "", pieces follow, call 0
    # ends before call 1 starts. Call 0 may run early (its JSON is complete when call 1 opens).
    openai_server.script(two_calls(empty_head=True), Reply.say(FINAL))
    answer = answer_of(list(make_engine("openai").stream(QUESTION, paradigm="bernard")))
    assert sorted(tools.seen, key=lambda s: s[0]) == [("city_population", POP_ARGS), ("road_deaths", DEATHS_ARGS)]
    assert [r.status for r in answer.tool_calls] == ["done", "done"]


# Once a bug: empty heads counted as complete arguments, so call 0 ran with '' before its pieces.
@pytest.mark.parametrize("options", [{"interleave": True}, {"calls_per_chunk": 2}], ids=["interleaved", "two-per-chunk"])
def test_interleaved_calls_whose_heads_carry_empty_arguments(openai_server, make_engine, tools, options):
    openai_server.script(two_calls(empty_head=True, **options), Reply.say(FINAL))
    answer = answer_of(list(make_engine("openai").stream(QUESTION, paradigm="bernard")))
    assert sorted(tools.seen, key=lambda s: s[0]) == [("city_population", POP_ARGS), ("road_deaths", DEATHS_ARGS)]
    assert [r.status for r in answer.tool_calls] == ["done", "done"]


def test_interleaved_tool_deltas_end_to_end_with_the_local_model(openai_server, seeded_store, tools):
    """The interleaved-deltas path with MiniLM choosing the sources over the demo corpus (the
    hashing embedder elsewhere in this file): the tools still run once each with their own
    arguments, and the answer's sources are the road-safety passages the question is about."""
    from fourhosts_jupyter.memory.embeddings import LOCAL_MODEL_NAME, LocalEmbedder

    openai_server.script(two_calls(calls_per_chunk=2), Reply.say(FINAL))
    engine = Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                    store=seeded_store, embedder=LocalEmbedder(), tools=tools.registry)
    events = list(engine.stream(QUESTION, paradigm="bernard"))
    answer = answer_of(events)
    assert answer.classification.embedder == LOCAL_MODEL_NAME
    assert sorted(tools.seen, key=lambda s: s[0]) == [("city_population", POP_ARGS), ("road_deaths", DEATHS_ARGS)]
    assert switches([e.call_id for e in events if isinstance(e, ToolCallArgumentsDelta)]) > 10
    assert answer.text == "Checking both.\n\n" + FINAL
    files = [corpus_file(s.origin) for s in answer.sources]
    assert len(files) >= 3 and set(files[:3]) <= ROAD_SAFETY, files
