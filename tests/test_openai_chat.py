"""The Chat Completions provider over real HTTP: the official client against the loopback server."""

from __future__ import annotations

import json

import openai
import pytest

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderIncomplete,
    ProviderServerError,
    ProviderTimeout,
)
from fourhosts_jupyter.events import Notice
from fourhosts_jupyter.llm.base import ModelRequest, ProviderFinish, ProviderText, ProviderToolCallDelta, ProviderUsage
from fourhosts_jupyter.llm.openai_chat import OpenAIChatProvider, effort_params, is_reasoning_model
from fourhosts_jupyter.llm.registry import (
    FallbackProvider,
    provider_chain,
    register_provider,
    resolve_provider,
)

from openai_server import MESSAGES, TOOL, Call, Quirks, Reply, Sleeps, assembled_calls
from openai_server import collect, collect_until_error, text_of


def compatible(server, **kw) -> OpenAIChatProvider:
    kw.setdefault("model", "demo")
    return OpenAIChatProvider("compatible", base_url=server.base_url, **kw)


def test_streams_text_usage_and_finish(openai_server):
    openai_server.script(Reply.say("The answer is forty-two.", usage=(11, 6)))
    events = collect(compatible(openai_server))
    assert text_of(events) == "The answer is forty-two."
    usage = [e for e in events if isinstance(e, ProviderUsage)]
    assert len(usage) == 1 and usage[0].usage.prompt_tokens == 11 and usage[0].usage.total_tokens == 17
    assert events[-1] == ProviderFinish("stop")
    body = openai_server.chat_requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "demo" and body["messages"] == MESSAGES
    assert "tools" not in body


@pytest.mark.parametrize("repeat_ids", [False, True], ids=["ids-once", "ids-repeated"])
def test_parallel_tool_calls_split_across_chunks(openai_server, repeat_ids):
    calls = (
        Call("lookup", {"city": "Oslo", "fields": ["population", "area"]}, id="call_a"),
        Call("lookup", {"city": "Lyon"}, id="call_b"),
        Call("search_memory", {"query": "speed cameras evidence"}, id="call_c"),
    )
    openai_server.script(Reply.parallel(*calls, text="Checking.", args_chunk=3, repeat_ids=repeat_ids))
    events = collect(compatible(openai_server), ModelRequest(messages=MESSAGES, tools=[TOOL]))
    got = assembled_calls(events)
    assert [got[i]["id"] for i in range(3)] == ["call_a", "call_b", "call_c"]
    assert [got[i]["name"] for i in range(3)] == ["lookup", "lookup", "search_memory"]
    assert [json.loads(got[i]["arguments"]) for i in range(3)] == [dict(c.arguments) for c in calls]
    # arguments really did arrive in many pieces
    assert sum(1 for e in events if isinstance(e, ProviderToolCallDelta) and e.index == 0) > 5
    assert events[-1] == ProviderFinish("tool_calls")
    body = openai_server.chat_requests[0].body
    assert body["tools"] == [TOOL] and body["tool_choice"] == "auto"


def test_tool_call_deltas_without_an_index_are_matched_by_id(openai_server):
    calls = (Call("lookup", {"city": "Oslo"}, id="call_x"), Call("lookup", {"city": "Lyon"}, id="call_y"))
    openai_server.script(Reply.parallel(*calls, omit_index=True, repeat_ids=True, args_chunk=4))
    got = assembled_calls(collect(compatible(openai_server), ModelRequest(messages=MESSAGES, tools=[TOOL])))
    assert {i: (c["id"], json.loads(c["arguments"])) for i, c in got.items()} == {
        0: ("call_x", {"city": "Oslo"}), 1: ("call_y", {"city": "Lyon"})}


@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_finish_reason_is_surfaced(openai_server, reason):
    openai_server.script(Reply.say("cut sho", finish_reason=reason))
    assert collect(compatible(openai_server))[-1] == ProviderFinish(reason)


def test_server_that_rejects_stream_options_is_retried_without_it(openai_server):
    openai_server.script(
        Reply.say("", reject_params=("stream_options",)),
        Reply.say("fine without usage"),
        Reply.say("second call", reject_params=("stream_options",)),
    )
    provider = compatible(openai_server)
    events = collect(provider)
    assert text_of(events) == "fine without usage"
    assert any(isinstance(e, Notice) and "stream_options" in e.message for e in events)
    first, second = openai_server.chat_requests
    assert "stream_options" in first.body and "stream_options" not in second.body
    # remembered for this server and model: the next call (even from a new provider) does not send it
    assert text_of(collect(provider)) == "second call"
    assert "stream_options" not in openai_server.chat_requests[-1].body
    openai_server.script(Reply.say("third", reject_params=("stream_options",)))
    assert text_of(collect(compatible(openai_server))) == "third"
    assert len(openai_server.chat_requests) == 4


def test_429_is_retried_once_after_retry_after_and_the_client_does_not_retry(openai_server):
    openai_server.script(Reply.fail(429, "slow down", retry_after=3), Reply.say("ok now"))
    sleeps = Sleeps()
    events = collect(compatible(openai_server, max_retries=2, sleep=sleeps))
    assert text_of(events) == "ok now"
    assert sleeps.calls == [3.0]  # Retry-After honoured, in one place
    assert len(openai_server.chat_requests) == 2  # the client's own retries are off
    assert any(isinstance(e, Notice) and "retry 1/2" in e.message for e in events)


def test_500_gives_up_after_max_retries_with_exponential_backoff(openai_server):
    openai_server.script(*[Reply.fail(500, "boom")] * 3)
    sleeps = Sleeps()
    _, err = collect_until_error(compatible(openai_server, max_retries=2, sleep=sleeps))
    assert isinstance(err, ProviderServerError) and "boom" in str(err)
    assert len(openai_server.chat_requests) == 3
    assert len(sleeps.calls) == 2 and 0.5 <= sleeps.calls[0] < 0.7 and 1.0 <= sleeps.calls[1] < 1.2


def test_auth_error_is_not_retried_and_names_the_fix(openai_server):
    openai_server.script(Reply.fail(401, "Incorrect API key provided"))
    sleeps = Sleeps()
    _, err = collect_until_error(compatible(openai_server, api_key="sk-secret-abcdef123456", sleep=sleeps))
    assert isinstance(err, ProviderAuthError)
    assert "OPENAI_API_KEY" in str(err) and "sk-secret" not in str(err)
    assert sleeps.calls == [] and len(openai_server.chat_requests) == 1


def test_connection_dropped_mid_stream_raises_after_the_partial_text(openai_server):
    openai_server.script(Reply.drop("The first part arrives, then the line goes dead.", after=4, text_chunk=6),
                         Reply.say("never used"))
    sleeps = Sleeps()
    seen, err = collect_until_error(compatible(openai_server, sleep=sleeps))
    assert isinstance(err, ProviderConnectionError)
    assert text_of(seen) == "The first part arr"  # role chunk + 3 text chunks of 6
    assert sleeps.calls == [] and len(openai_server.chat_requests) == 1  # not retried: text was shown


def test_connection_dropped_before_any_text_is_retried(openai_server):
    openai_server.script(Reply.drop("lost", after=1), Reply.say("second try"))
    events = collect(compatible(openai_server, sleep=Sleeps()))
    assert text_of(events) == "second try"
    assert len(openai_server.chat_requests) == 2


def test_a_stream_that_goes_quiet_times_out(openai_server):
    openai_server.script(Reply.say("slow words here", text_chunk=5, delay=1.5))
    seen, err = collect_until_error(compatible(openai_server, stream_idle_timeout=0.4, max_retries=0))
    assert isinstance(err, ProviderTimeout)
    assert "stream_idle_timeout" in str(err)


def test_azure_url_shape_api_key_header_and_preamble_chunk(openai_server):
    openai_server.script(Reply.say("from azure"))
    provider = OpenAIChatProvider(
        "azure", model="my-deploy", api_key="azure-key-123", azure_endpoint=openai_server.azure_endpoint,
        api_version="2024-10-21",
    )
    events = collect(provider)
    assert text_of(events) == "from azure"
    req = openai_server.chat_requests[0]
    assert req.path == "/openai/deployments/my-deploy/chat/completions"
    assert req.query["api-version"] == "2024-10-21"
    assert req.headers["api-key"] == "azure-key-123"
    assert "azure-key-123" not in repr(provider)


def test_effort_maps_to_reasoning_effort_for_reasoning_models(openai_server):
    openai_server.script(Reply.say("thought"), Reply.say("plain"))
    collect(compatible(openai_server, model="o3-mini"), ModelRequest(messages=MESSAGES, effort="high"))
    collect(compatible(openai_server, model="gpt-4o-mini"), ModelRequest(messages=MESSAGES, effort="low", tools=[TOOL]))
    reasoning, plain = (r.body for r in openai_server.chat_requests)
    assert reasoning["reasoning_effort"] == "high" and reasoning["max_completion_tokens"] == 16384
    assert "temperature" not in reasoning and "max_tokens" not in reasoning
    assert plain["temperature"] == 0.7 and plain["max_tokens"] == 4096  # tools raise the cap
    assert "reasoning_effort" not in plain


def test_effort_table():
    for name in ("o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "azure/o3"):
        assert is_reasoning_model(name), name
    for name in ("gpt-4o", "gpt-4.1-mini", "llama3.1:8b", "qwen2.5"):
        assert not is_reasoning_model(name), name
    assert effort_params("gpt-4o", "low", tools=False) == {"temperature": 0.7, "max_tokens": 1000}
    assert effort_params("gpt-4o", "medium", tools=False) == {"temperature": 0.7, "max_tokens": 2000}
    assert effort_params("my-deploy", "low", tools=False, reasoning=True)["reasoning_effort"] == "low"


def test_server_that_rejects_reasoning_effort_gets_it_dropped(openai_server):
    openai_server.script(Reply.say("", reject_params=("reasoning_effort",)), Reply.say("ok"))
    events = collect(compatible(openai_server, model="o3-local"))
    assert text_of(events) == "ok"
    assert "reasoning_effort" not in openai_server.chat_requests[-1].body


# -- resolving providers ------------------------------------------------------------------------


def test_compatible_server_without_a_key_gets_a_placeholder(openai_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = resolve_provider(Settings(base_url=openai_server.base_url, model="llama3"))
    assert provider.name == "compatible" and provider.model == "llama3"
    openai_server.script(Reply.say("local answer"))
    assert text_of(collect(provider)) == "local answer"
    assert openai_server.chat_requests[0].headers["authorization"] == "Bearer not-needed"


def test_compatible_server_without_a_model_uses_the_first_listed(openai_server):
    provider = resolve_provider(Settings(base_url=openai_server.base_url))
    openai_server.script(Reply.say("hi"))
    collect(provider)
    assert provider.model == "scripted"
    assert openai_server.chat_requests[0].body["model"] == "scripted"


def test_provider_chain_from_settings_and_environment(monkeypatch):
    for var in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert provider_chain(Settings()) == ["offline"]
    assert provider_chain(Settings(base_url="http://localhost:11434/v1")) == ["compatible"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-xxxxxxxx")
    assert provider_chain(Settings()) == ["openai"]
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azkey")
    assert provider_chain(Settings(azure_endpoint="https://x.openai.azure.com")) == ["azure", "openai"]
    assert provider_chain(Settings(provider="azure, openai ,offline")) == ["azure", "openai", "offline"]


def test_azure_deployment_comes_from_model_flag_or_environment(openai_server, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azkey")
    monkeypatch.setenv("FOURHOSTS_MODEL", "gpt-4o")  # the OpenAI model; Azure uses its deployment
    s = Settings(provider="azure", azure_endpoint=openai_server.azure_endpoint, azure_deployment="dep-env", model="gpt-4o")
    assert resolve_provider(s).model == "dep-env"
    assert resolve_provider(Settings(**{**s.__dict__, "model": "dep-flag"})).model == "dep-flag"


def test_missing_configuration_is_a_clear_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        resolve_provider(Settings(provider="openai"))
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        resolve_provider(Settings(provider="nope"))


def test_third_party_providers_use_the_same_hook(openai_server):
    made = []

    @register_provider("loopback-test")
    def factory(settings, embedder):
        made.append(settings)
        return OpenAIChatProvider("compatible", base_url=openai_server.base_url, model="plug")

    provider = resolve_provider(Settings(provider="loopback-test"))
    assert made and provider.model == "plug"


def test_fallback_chain_switches_before_streaming_and_says_so(openai_server):
    from fourhosts_jupyter.testing import ScriptedServer

    with ScriptedServer([Reply.fail(401, "bad key")]) as broken:
        first = OpenAIChatProvider("compatible", base_url=broken.base_url, model="a")
        second = compatible(openai_server, model="b")
        chain = FallbackProvider([first, second])
        openai_server.script(Reply.say("from the second"))
        events = collect(chain)
    notices = [e for e in events if isinstance(e, Notice)]
    assert text_of(events) == "from the second"
    assert len(notices) == 1 and "Switched to compatible (b)" in notices[0].message
    assert chain.model == "b"  # later rounds start with the provider that worked


def test_fallback_chain_does_not_replace_a_partial_answer(openai_server):
    from fourhosts_jupyter.testing import ScriptedServer

    with ScriptedServer([Reply.drop("half an answer and", after=3)]) as flaky:
        chain = FallbackProvider([OpenAIChatProvider("compatible", base_url=flaky.base_url, model="a", max_retries=0),
                                  compatible(openai_server)])
        seen, err = collect_until_error(chain)
    assert isinstance(err, ProviderConnectionError)
    assert text_of(seen) and not openai_server.chat_requests


def test_loopback_server_serves_embeddings_to_the_official_client(openai_server):
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="x", max_retries=0)
    out = client.embeddings.create(model="text-embedding-3-small", input=["speed limits", "speed limits", "bike lanes"])
    a, b, c = (d.embedding for d in out.data)
    assert len(a) == 64 and a == b and a != c


# -- turns that end early, and servers that cannot stream tool turns (issue 9) ---------------


def azure(server, **kw) -> OpenAIChatProvider:
    kw.setdefault("model", "research-deploy")
    return OpenAIChatProvider("azure", azure_endpoint=server.azure_endpoint, api_key="az-test", **kw)


SHAPES = {"openai-url": compatible, "azure-url": azure}
TOOLS_REQUEST = ModelRequest(messages=MESSAGES, tools=[TOOL])


@pytest.mark.parametrize("shape", SHAPES)
def test_a_stream_that_ends_cleanly_without_a_finish_reason_is_incomplete(openai_server, shape):
    # Role chunk (+ Azure's preamble) and then three pieces; the body ends cleanly: no error from
    # the client, no finish_reason, no [DONE].
    skip = 2 if shape == "azure-url" else 1
    openai_server.script(Reply.cut("The answer rests on three pillars.", after=skip + 3, text_chunk=7))
    seen, err = collect_until_error(SHAPES[shape](openai_server, max_retries=2))
    assert text_of(seen) == "The answer rests on t"
    assert isinstance(err, ProviderIncomplete) and err.reason == "no finish reason"
    assert "cut off" in str(err) and "finish reason" in str(err)
    assert not any(isinstance(e, ProviderFinish) for e in seen)
    assert len(openai_server.chat_requests) == 1  # text was shown: never retried behind its back


def test_an_empty_200_is_incomplete_not_an_empty_answer(openai_server):
    openai_server.script(Reply.empty())
    seen, err = collect_until_error(compatible(openai_server))
    assert seen == []
    assert isinstance(err, ProviderIncomplete) and err.reason == "empty reply"
    assert "ended with nothing" in str(err)


@pytest.mark.parametrize("status", [200, 500, 400], ids=["empty-200", "status-500", "status-400"])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_server_that_cannot_stream_tool_turns_gets_one_non_streamed_retry(openai_server, shape, status):
    openai_server.set_quirks(refuse_streamed_tools=status)
    openai_server.script(
        Reply.call("lookup", {"city": "Oslo"}, id="call_x", text="Let me check."),
        Reply.call("lookup", {"city": "Lyon"}, id="call_y"),
    )
    make = SHAPES[shape]
    events = collect(make(openai_server, max_retries=0), TOOLS_REQUEST)
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "cannot stream tool calls" in notices[0].message
    rest = [e for e in events if not isinstance(e, Notice)]
    assert rest[0] == ProviderText("Let me check.")  # the whole reply at once: text, then calls
    assert rest[1] == ProviderToolCallDelta(index=0, id="call_x", name="lookup", arguments='{"city": "Oslo"}')
    assert isinstance(rest[2], ProviderUsage) and rest[-1] == ProviderFinish("tool_calls")
    assert [r.body["stream"] for r in openai_server.chat_requests] == [True, False]
    assert "stream_options" not in openai_server.chat_requests[1].body
    # Remembered for this server: the next run's tool turn goes unstreamed at once, silently,
    # and a turn without tools still streams.
    again = collect(make(openai_server, max_retries=0), TOOLS_REQUEST)
    assert not any(isinstance(e, Notice) for e in again)
    assert assembled_calls(again)[0]["id"] == "call_y"
    openai_server.script(Reply.say("plain text"))
    assert text_of(collect(make(openai_server), ModelRequest(messages=MESSAGES))) == "plain text"
    assert [r.body["stream"] for r in openai_server.chat_requests] == [True, False, False, True]


def test_the_non_streamed_retry_survives_a_dead_pooled_connection(openai_server):
    # llama-cpp-python closes the connection right after its empty reply: the retry is sent on
    # the pooled connection, which dies under it.
    openai_server.set_quirks(refuse_streamed_tools=200, close_after_refusal=True, close_wait=30)
    openai_server.script(Reply.call("lookup", {"city": "Oslo"}, id="call_x"))
    events = collect(compatible(openai_server, max_retries=0), TOOLS_REQUEST)
    assert assembled_calls(events) == {0: {"id": "call_x", "name": "lookup", "arguments": '{"city": "Oslo"}'}}
    assert [r.body["stream"] for r in openai_server.chat_requests] == [True, False]


@pytest.mark.parametrize("second", ["status-500", "empty"])
def test_a_server_that_fails_both_ways_is_a_clear_error(openai_server, second):
    openai_server.set_quirks(refuse_streamed_tools=200)
    openai_server.script(Reply.fail(500, "model crashed") if second == "status-500" else Reply.empty())
    seen, err = collect_until_error(compatible(openai_server, max_retries=0), TOOLS_REQUEST)
    assert not any(isinstance(e, (ProviderText, ProviderToolCallDelta)) for e in seen)
    assert "neither streamed" in str(err) and "nor without streaming" in str(err)
    if second == "status-500":
        assert isinstance(err, ProviderServerError) and "model crashed" in str(err)
    else:
        assert isinstance(err, ProviderIncomplete)
    assert [r.body["stream"] for r in openai_server.chat_requests] == [True, False]


@pytest.mark.parametrize("omit_index", [False, True], ids=["with-index", "no-index"])
def test_llama_cpp_style_chunks_function_call_field_repeated_and_invented_ids(openai_server, omit_index):
    # Forced tool choice streams even on llama-cpp-python: id and name on every chunk, the
    # deprecated function_call beside tool_calls, ids it makes up. Each call's arguments once.
    openai_server.set_quirks(Quirks.llama_cpp())
    openai_server.script(Reply.call("search_memory", {"query": "speed cameras evidence"}, args_chunk=4,
                                    omit_index=omit_index))
    request = ModelRequest(messages=MESSAGES, tools=[TOOL], tool_choice="required")
    events = collect(compatible(openai_server), request)
    (call,) = assembled_calls(events).values()
    assert call["name"] == "search_memory"
    assert json.loads(call["arguments"]) == {"query": "speed cameras evidence"}
    assert call["id"].startswith("call__0_search_memory_cmpl-")
    raw = openai_server.chat_requests[0]
    assert raw.body["stream"] is True


def test_non_streamed_reply_with_function_call_beside_tool_calls_gives_each_call_once(openai_server):
    openai_server.set_quirks(Quirks.llama_cpp())
    openai_server.script(Reply.parallel(("lookup", {"city": "Oslo"}), ("lookup", {"city": "Lyon"})))
    events = collect(compatible(openai_server, max_retries=0), TOOLS_REQUEST)
    calls = assembled_calls(events)
    assert [json.loads(c["arguments"]) for c in calls.values()] == [{"city": "Oslo"}, {"city": "Lyon"}]
    assert [c["id"][:25] for c in calls.values()] == ["call__0_lookup_cmpl-scrip", "call__1_lookup_cmpl-scrip"]


def test_the_scripted_quirks_as_the_raw_client_sees_them(openai_server):
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="x", max_retries=0)
    # an early clean end: no exception from the client, and no finish reason anywhere
    openai_server.script(Reply.cut("cut short here", after=3))
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert len(chunks) == 3 and all(c.choices[0].finish_reason is None for c in chunks)
    # llama-cpp-python: a streamed tool turn is a 200 with nothing in it; unstreamed it works
    # and the connection dies under the next request sent on it (however slowly it comes)
    openai_server.set_quirks(Quirks.llama_cpp(close_wait=30))
    openai_server.script(Reply.call("lookup", {"city": "Oslo"}))
    tools = dict(model="m", messages=MESSAGES, tools=[TOOL])
    assert list(client.chat.completions.create(stream=True, **tools)) == []
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(**tools)
    message = client.chat.completions.create(**tools).choices[0].message
    assert message.tool_calls[0].id.startswith("call__0_lookup_cmpl-")
    assert message.function_call.name == "lookup" and message.content is None
    turn = {"role": "assistant", "content": None, "tool_calls": [message.tool_calls[0].model_dump()]}
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="m", messages=[*MESSAGES, turn])
    assert openai_server.pending == 0


@pytest.mark.parametrize("status, cls", [(408, ProviderTimeout), (404, ProviderBadRequest)])
def test_an_error_that_does_not_name_streaming_is_not_taken_for_a_refusal(openai_server, status, cls):
    # Only the server's own words count: our advice for a timeout mentions stream_idle_timeout.
    openai_server.script(Reply.fail(status, "no such luck"))
    seen, err = collect_until_error(compatible(openai_server, max_retries=0), TOOLS_REQUEST)
    assert isinstance(err, cls) and not any(isinstance(e, Notice) for e in seen)
    assert [r.body["stream"] for r in openai_server.chat_requests] == [True]
