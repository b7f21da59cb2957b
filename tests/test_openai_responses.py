"""The Responses API provider over real HTTP: the official client against the loopback server,
which speaks Responses SSE at ``/v1/responses`` (OpenAI, compatible) and ``/openai/v1/responses``
(Azure OpenAI's v1 surface)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import (
    ConfigError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderIncomplete,
    ProviderServerError,
    RunError,
)
from fourhosts_jupyter.events import Notice, ReasoningDelta, RunFailed, TextDelta
from fourhosts_jupyter.jupyter.view import RunState
from fourhosts_jupyter.llm.base import ModelRequest, ProviderFinish, ProviderUsage
from fourhosts_jupyter.llm.openai_chat import OpenAIChatProvider
from fourhosts_jupyter.llm.openai_responses import OpenAIResponsesProvider
from fourhosts_jupyter.llm.registry import FallbackProvider, resolve_provider
from fourhosts_jupyter.loop import LoopOutcome, model_loop
from fourhosts_jupyter.tools.registry import ToolRegistry

from openai_server import MESSAGES, TOOL, Call, Reply, Sleeps, assembled_calls
from openai_server import collect, collect_until_error, text_of

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


def provider(server, **kw) -> OpenAIResponsesProvider:
    kw.setdefault("model", "demo")
    kw.setdefault("sleep", Sleeps())
    return OpenAIResponsesProvider("compatible", base_url=server.base_url, **kw)


def registry_with_lookup(seen: list[str], reg: ToolRegistry | None = None) -> ToolRegistry:
    """``reg`` (or a new registry) with a ``lookup`` tool that notes each city it is called with."""
    reg = reg if reg is not None else ToolRegistry()

    @reg.register
    def lookup(city: str) -> dict:
        """Look a city up."""
        seen.append(city)
        return {"city": city, "deaths": len(city)}

    return reg


def run_loop(p, reg: ToolRegistry, effort: str = "medium") -> tuple[LoopOutcome, list]:
    outcome = LoopOutcome()
    request = ModelRequest(messages=list(MESSAGES), effort=effort, question="q")

    async def go() -> list:
        return [ev async for ev in model_loop(p, request, outcome, tools=reg, max_rounds=3)]

    return outcome, asyncio.run(go())


# -- the stream ------------------------------------------------------------------------------


def test_streams_text_usage_and_finish_with_store_false(openai_server):
    openai_server.script(Reply.say("The answer is forty-two.", usage=(11, 6)))
    events = collect(provider(openai_server))
    assert text_of(events) == "The answer is forty-two."
    (usage,) = [e for e in events if isinstance(e, ProviderUsage)]
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens, usage.usage.total_tokens) == (11, 6, 17)
    assert events[-1] == ProviderFinish("stop")
    (req,) = openai_server.requests
    assert req.path == "/v1/responses"
    body = req.body
    assert body["stream"] is True and body["store"] is False and body["model"] == "demo"
    assert body["input"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello?"}]
    assert "tools" not in body and "reasoning" not in body and body["temperature"] == 0.7


def test_tool_calls_are_keyed_by_item_not_by_name(openai_server):
    # Two calls of the same tool, their argument pieces interleaved: only item_id / output_index
    # tell them apart.
    openai_server.script(Reply.parallel(Call("lookup", {"city": "Oslo"}, id="call_a"),
                                        Call("lookup", {"city": "Lyon"}, id="call_b"),
                                        args_chunk=3, interleave=True))
    events = collect(provider(openai_server), ModelRequest(messages=MESSAGES, tools=[TOOL]))
    assert assembled_calls(events) == {0: {"id": "call_a", "name": "lookup", "arguments": '{"city": "Oslo"}'},
                     1: {"id": "call_b", "name": "lookup", "arguments": '{"city": "Lyon"}'}}
    assert events[-1] == ProviderFinish("tool_calls")
    tools = openai_server.requests[0].body["tools"]
    assert tools == [{"type": "function", "name": "lookup", "description": "look",
                      "parameters": {"type": "object", "properties": {}}, "strict": False}]


def test_two_parallel_tool_calls_send_both_outputs_back_with_their_call_ids(openai_server):
    openai_server.script(
        Reply.parallel(Call("lookup", {"city": "Oslo"}, id="call_oslo"),
                       Call("lookup", {"city": "Lyon"}, id="call_lyon"),
                       text="Checking both.", args_chunk=4, interleave=True),
        Reply.say("Oslo and Lyon compared [1]."),
    )
    seen: list[str] = []
    outcome, _ = run_loop(provider(openai_server), registry_with_lookup(seen))
    assert sorted(seen) == ["Lyon", "Oslo"]
    assert outcome.text == "Checking both.\n\nOslo and Lyon compared [1]."
    first, second = openai_server.responses_requests
    items = second.body["input"]
    assert second.body["store"] is False
    # The model's own turn is repeated (store=false: the server kept nothing), then the outputs.
    assert items[:2] == first.body["input"]
    assert items[2] == {"role": "assistant", "content": "Checking both."}
    assert items[3:5] == [
        {"type": "function_call", "call_id": "call_oslo", "name": "lookup", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "call_lyon", "name": "lookup", "arguments": '{"city": "Lyon"}'},
    ]
    outputs = items[5:]
    assert [o["type"] for o in outputs] == ["function_call_output"] * 2
    assert [o["call_id"] for o in outputs] == ["call_oslo", "call_lyon"]
    assert [json.loads(o["output"])["city"] for o in outputs] == ["Oslo", "Lyon"]


def test_reasoning_effort_summary_and_encrypted_items_carried_into_the_next_round(openai_server):
    openai_server.script(
        Reply.call("lookup", {"city": "Oslo"}, id="call_1", reasoning="I should look Oslo up.",
                   encrypted_reasoning="gAAAA-opaque-1"),
        Reply.say("Oslo it is.", reasoning="Now I can answer."),
    )
    outcome, events = run_loop(provider(openai_server, model="o3"), registry_with_lookup([]), effort="high")
    first, second = openai_server.responses_requests
    for req in (first, second):
        assert req.body["reasoning"] == {"effort": "high", "summary": "auto"}
        assert req.body["include"] == ["reasoning.encrypted_content"]
        assert "temperature" not in req.body
    items = second.body["input"]
    reasoning = items[2]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"] == "gAAAA-opaque-1"
    assert items[3]["type"] == "function_call" and items[3]["call_id"] == "call_1"
    assert items[4]["type"] == "function_call_output" and items[4]["call_id"] == "call_1"
    # The summaries were shown as reasoning, never as answer text.
    thinking = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert thinking == "I should look Oslo up.Now I can answer."
    assert outcome.text == "Oslo it is."


def test_reasoning_summary_parts_are_separated(openai_server):
    openai_server.script(Reply.say("Done.", reasoning="First part.\n\nSecond part."))
    events = collect(provider(openai_server, model="o4-mini"))
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "First part.\n\nSecond part."
    assert text_of(events) == "Done."


# -- ends that are not complete --------------------------------------------------------------


def test_incomplete_raises_with_its_reason_after_the_partial_text(openai_server):
    openai_server.script(Reply.truncated("The answer rests on t", "max_output_tokens", usage=(50, 16)))
    seen, err = collect_until_error(provider(openai_server))
    assert isinstance(err, ProviderIncomplete) and err.reason == "max_output_tokens"
    assert "incomplete: max_output_tokens" in str(err) and "output-token limit" in str(err)
    assert text_of(seen) == "The answer rests on t"
    assert [e.usage.total_tokens for e in seen if isinstance(e, ProviderUsage)] == [66]
    assert len(openai_server.requests) == 1  # the model answered: not retried


@pytest.mark.parametrize("error_event", [False, True], ids=["response.failed", "error-event"])
def test_failed_raises_the_matching_error_with_code_and_message(openai_server, error_event):
    openai_server.script(Reply.failing("server_error", "The model crashed mid-answer.",
                                       text="Partial answer", error_event=error_event))
    seen, err = collect_until_error(provider(openai_server))
    assert isinstance(err, ProviderServerError)
    assert "server_error" in str(err) and "The model crashed mid-answer." in str(err)
    assert text_of(seen) == "Partial answer"
    assert len(openai_server.requests) == 1  # text was streamed: never retried


def test_failed_before_any_text_is_retried_when_retryable_and_not_otherwise(openai_server):
    openai_server.script(Reply.failing("server_error", "overloaded"), Reply.say("Recovered."))
    events = collect(provider(openai_server))
    assert text_of(events) == "Recovered."
    assert any(isinstance(e, Notice) and "retry 1/2" in e.message for e in events)
    openai_server.clear()
    openai_server.script(Reply.failing("invalid_prompt", "The prompt was refused."), Reply.say("never"))
    _, err = collect_until_error(provider(openai_server))
    assert isinstance(err, ProviderBadRequest) and "invalid_prompt" in str(err)
    assert len(openai_server.requests) == 1


def test_stream_without_a_terminal_event_is_incomplete(openai_server):
    openai_server.script(Reply.say("The answer rests on t", no_terminal=True))
    seen, err = collect_until_error(provider(openai_server))
    assert isinstance(err, ProviderIncomplete) and err.reason is None
    assert "before the response completed" in str(err)
    assert text_of(seen) == "The answer rests on t"


def test_dropped_connection_after_text_is_a_connection_error(openai_server):
    openai_server.script(Reply.drop("The answer rests on the evidence.", after=5, text_chunk=4))
    seen, err = collect_until_error(provider(openai_server))
    assert isinstance(err, ProviderConnectionError)
    assert text_of(seen) and "The answer rests on the evidence.".startswith(text_of(seen))


def test_dropped_connection_before_any_text_is_retried(openai_server):
    # response.created and response.in_progress only, then the connection dies
    openai_server.script(Reply.drop("Lost.", after=2), Reply.say("Recovered."))
    sleeps = Sleeps()
    events = collect(provider(openai_server, sleep=sleeps))
    assert text_of(events) == "Recovered."
    assert [e.message[:16] for e in events if isinstance(e, Notice)] == ["ConnectionError "]
    assert len(sleeps.calls) == 1 and len(openai_server.responses_requests) == 2


def test_429_and_500_are_retried_with_backoff(openai_server):
    openai_server.script(Reply.fail(429, "slow down", retry_after=3), Reply.fail(500), Reply.say("ok"))
    sleeps = Sleeps()
    events = collect(provider(openai_server, sleep=sleeps))
    assert text_of(events) == "ok"
    assert sleeps.calls[0] == 3.0 and len(sleeps.calls) == 2
    assert len(openai_server.responses_requests) == 3


@pytest.mark.parametrize("reply, cls", [
    (Reply.say("", no_terminal=True), ProviderIncomplete),
    (Reply.fail(400, "Streaming is not supported with tools"), ProviderBadRequest),
], ids=["empty-stream", "error-naming-streaming"])
def test_a_refused_streamed_tool_turn_is_an_error_not_sent_again_unstreamed(openai_server, reply, cls):
    # The Chat provider's unstreamed fallback lives in the shared retry loop; Responses opts out.
    openai_server.script(reply, Reply.say("never"))
    request = ModelRequest(messages=MESSAGES, tools=[TOOL])
    seen, err = collect_until_error(provider(openai_server, max_retries=0), request)
    assert seen == [] and isinstance(err, cls)
    assert [r.body["stream"] for r in openai_server.responses_requests] == [True]


# -- parameters a deployment refuses ---------------------------------------------------------


def test_rejected_parameter_is_dropped_and_remembered(openai_server):
    openai_server.set_default(Reply.say("fine", reject_params=("reasoning.summary",)))
    base = openai_server.root + "/drop-summary/v1"  # a server address of its own: memory is per server
    p = OpenAIResponsesProvider("compatible", base_url=base, model="o3", sleep=Sleeps())
    events = collect(p)
    assert text_of(events) == "fine"
    assert any(isinstance(e, Notice) and "`reasoning.summary`" in e.message for e in events)
    first, second = openai_server.responses_requests
    assert first.body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert second.body["reasoning"] == {"effort": "medium"}  # effort kept, summary dropped
    # A later run against the same server does not send it again.
    again = OpenAIResponsesProvider("compatible", base_url=base, model="o3", sleep=Sleeps())
    collect(again)
    assert len(openai_server.responses_requests) == 3
    assert openai_server.responses_requests[-1].body["reasoning"] == {"effort": "medium"}


@pytest.mark.parametrize("param", ["temperature", "store", "include"])
def test_each_optional_parameter_is_dropped_when_refused(openai_server, param):
    openai_server.script(Reply.say("x", reject_params=(param,)), Reply.say("fine"))
    base = openai_server.root + f"/drop-{param}/v1"
    p = OpenAIResponsesProvider("compatible", base_url=base, model="o3" if param == "include" else "gpt-4.1",
                                sleep=Sleeps())
    assert text_of(collect(p)) == "fine"
    first, second = openai_server.responses_requests
    assert param in first.body and param not in second.body
    assert {k: v for k, v in first.body.items() if k != param} == second.body


# -- Azure OpenAI v1 ---------------------------------------------------------------------------


def test_azure_v1_url_shape_key_header_and_deployment_as_model(openai_server):
    openai_server.script(Reply.say("From Azure."))
    p = OpenAIResponsesProvider("azure", azure_endpoint=openai_server.azure_endpoint, model="my-o3",
                                api_key="azure-test-key-123", sleep=Sleeps())
    assert text_of(collect(p)) == "From Azure."
    (req,) = openai_server.requests
    assert req.path == "/openai/v1/responses" and req.query == {}
    assert req.headers["api-key"] == "azure-test-key-123"
    assert req.body["model"] == "my-o3" and req.body["reasoning"]["effort"] == "medium"
    assert "azure-test-key-123" not in repr(p)


def test_settings_choose_the_api(openai_server, monkeypatch):
    chosen = resolve_provider(Settings(base_url=openai_server.base_url, model="m", api="responses"))
    assert type(chosen) is OpenAIResponsesProvider
    assert type(resolve_provider(Settings(base_url=openai_server.base_url, model="m"))).__name__ == "OpenAIChatProvider"
    monkeypatch.setenv("FOURHOSTS_API", "Responses")
    assert Settings.from_env().api == "responses"
    monkeypatch.setenv("FOURHOSTS_API", "completions")
    with pytest.raises(ConfigError, match="unknown API 'completions': use chat or responses"):
        Settings.from_env()


# -- end to end: engine, cell view, CLI -------------------------------------------------------


def test_engine_run_keeps_partial_text_and_fails_on_incomplete(openai_server, seeded_store):
    openai_server.script(Reply.truncated("The answer rests on t", "max_output_tokens"))
    engine = Engine(Settings(base_url=openai_server.base_url, model="demo", api="responses"),
                    store=seeded_store, tools=False)
    events = list(engine.stream(QUESTION, paradigm="bernard"))
    failed = events[-1]
    assert isinstance(failed, RunFailed)
    assert failed.partial_text == "The answer rests on t" and "max_output_tokens" in failed.error
    run = seeded_store.get_run(events[0].run_id)
    assert run["status"] != "ok" and run["answer"] == "The answer rests on t"  # failed (or "incomplete")
    assert "max_output_tokens" in run["error"]
    openai_server.script(Reply.truncated("Cut again", "content_filter"))
    with pytest.raises(RunError, match=r"incomplete: content_filter\); the content filter stopped it") as info:
        engine.research(QUESTION, paradigm="bernard")
    assert info.value.partial_text == "Cut again"


def test_engine_run_fails_on_response_failed_with_its_code_and_message(openai_server, seeded_store):
    openai_server.script(Reply.failing("server_error", "The model crashed mid-answer.",
                                       text="Speed cameras cut"))
    engine = Engine(Settings(base_url=openai_server.base_url, model="demo", api="responses"),
                    store=seeded_store, tools=False)
    events = list(engine.stream(QUESTION, paradigm="bernard"))
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.partial_text == "Speed cameras cut"
    assert "server_error: The model crashed mid-answer." in failed.error
    state = RunState()
    for e in events:
        state.apply(e)
    assert "The model crashed mid-answer." in state.to_text() and "Speed cameras cut" in state.to_text()
    run = seeded_store.get_run(events[0].run_id)
    assert run["status"] == "failed" and run["answer"] == "Speed cameras cut"
    assert "server_error: The model crashed mid-answer." in run["error"]
    assert len(openai_server.responses_requests) == 1  # text was shown: not retried


def test_the_run_log_records_which_api_a_run_used(openai_server, seeded_store, capsys):
    from fourhosts_jupyter import cli

    openai_server.script(Reply.say("Through Responses."), Reply.say("Through Chat."))
    runs = {}
    for api in ("responses", "chat"):
        engine = Engine(Settings(base_url=openai_server.base_url, model="demo", api=api),
                        store=seeded_store, tools=False)
        runs[api] = engine.research(QUESTION, paradigm="bernard").run_id
    for api, run_id in runs.items():
        assert seeded_store.get_run(run_id)["options"]["api"] == api
        assert cli.main(["show", run_id, "--store", str(seeded_store.path)]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first.endswith(f"compatible/demo ({api} API)")
    # A fallback chain records the API of the provider it starts with.
    chat = OpenAIChatProvider("compatible", base_url=openai_server.base_url, model="m")
    assert FallbackProvider([provider(openai_server), chat]).api == "responses"
    assert FallbackProvider([chat, provider(openai_server)]).api == "chat"


def test_engine_run_shows_thinking_apart_from_the_answer(openai_server, seeded_store):
    openai_server.script(Reply.say("Lower speed limits save lives [1].",
                                   reasoning="Ponder <b>speed</b> evidence & design."))
    engine = Engine(Settings(base_url=openai_server.base_url, model="o3", api="responses"),
                    store=seeded_store, tools=False)
    events = list(engine.stream(QUESTION, paradigm="bernard"))
    state = RunState()
    for e in events:
        state.apply(e)
    assert state.error is None and state.answer.text == "Lower speed limits save lives [1]."
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Ponder <b>speed</b> evidence & design."
    html = state.to_html()
    thinking_at = html.index('<details class="fh-thinking"')
    assert thinking_at < html.index('class="fh-answer"')  # above the answer
    assert "Ponder &lt;b&gt;speed&lt;/b&gt; evidence &amp; design." in html and "<b>speed</b>" not in html
    assert "Thinking:\n  Ponder <b>speed</b> evidence & design." in state.to_text()
    # Not in the answer, the run log or the memory.
    run = seeded_store.get_run(events[0].run_id)
    assert "Ponder" not in run["answer"] and "Ponder" not in json.dumps(run["events"], default=str)
    with seeded_store.connect() as con:
        answers = con.execute("SELECT count(*) FROM memories WHERE content LIKE '%speed limits save lives%'").fetchone()[0]
        leaked = con.execute("SELECT count(*) FROM memories WHERE content LIKE '%Ponder%'").fetchone()[0]
    assert answers == 1 and leaked == 0  # the answer was remembered, the reasoning was not


@pytest.mark.parametrize("shape", ["openai-url", "azure-v1-url"])
def test_engine_run_with_two_parallel_calls_of_real_tools_through_each_url_shape(
        openai_server, store, monkeypatch, shape):
    from fourhosts_jupyter.events import AnswerReady, ToolCallFinished
    from fourhosts_jupyter.memory.embeddings import HashingEmbedder
    from fourhosts_jupyter.tools.builtins import register_builtins

    reg = ToolRegistry()
    register_builtins(reg)
    seen: list[str] = []
    registry_with_lookup(seen, reg)
    openai_server.script(
        Reply.parallel(Call("lookup", {"city": "Oslo"}, id="call_oslo"),
                       Call("search_memory", {"query": "speed limits", "k": 2}, id="call_mem"),
                       text="Checking two things.", args_chunk=5, interleave=True),
        Reply.say("Oslo lowered its limits [1]."),
    )
    settings = dict(base_url=openai_server.base_url, model="demo")
    if shape == "azure-v1-url":
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key-for-test")
        settings = dict(provider="azure", azure_endpoint=openai_server.azure_endpoint, model="my-o3")
    engine = Engine(Settings(api="responses", max_retries=0, **settings), store=store,
                    embedder=HashingEmbedder(), tools=reg)
    events = list(engine.stream(QUESTION, paradigm="bernard"))
    (ready,) = [e for e in events if isinstance(e, AnswerReady)]
    assert ready.answer.text == "Checking two things.\n\nOslo lowered its limits [1]."
    assert seen == ["Oslo"]
    assert sorted(e.call_id for e in events if isinstance(e, ToolCallFinished)) == ["call_mem", "call_oslo"]
    first, second = openai_server.responses_requests
    assert {r.path for r in (first, second)} == (
        {"/openai/v1/responses"} if shape == "azure-v1-url" else {"/v1/responses"})
    if shape == "azure-v1-url":
        assert second.headers["api-key"] == "az-key-for-test" and second.body["model"] == "my-o3"
    calls = [i for i in second.body["input"] if i.get("type") == "function_call"]
    outputs = [i for i in second.body["input"] if i.get("type") == "function_call_output"]
    assert [c["call_id"] for c in calls] == [o["call_id"] for o in outputs] == ["call_oslo", "call_mem"]
    assert json.loads(outputs[0]["output"])["city"] == "Oslo"
    assert "speed" in outputs[1]["output"].lower()  # search_memory found the seeded corpus
    assert store.get_run(events[0].run_id)["options"]["api"] == "responses"


def fourhosts(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "FOURHOSTS_EMBEDDER": "hashing", **env})


def test_cli_api_flag_runs_through_responses_and_fails_on_incomplete(openai_server, tmp_path):
    openai_server.script(Reply.say("Answered through Responses."), Reply.truncated("The answer rests on t", "max_output_tokens"))
    env = {"OPENAI_BASE_URL": openai_server.base_url, "FOURHOSTS_MODEL": "demo"}
    store = str(tmp_path / "cli.duckdb")
    ok = fourhosts("research", "--api", "responses", "--store", store, "-p", "bernard", QUESTION, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "Answered through Responses." in ok.stdout
    assert [r.path for r in openai_server.requests if r.method == "POST"][-1] == "/v1/responses"
    cut = fourhosts("research", "--api", "responses", "--store", store, "-p", "bernard", QUESTION, env=env)
    assert cut.returncode != 0
    assert "The answer rests on t" in cut.stdout and "max_output_tokens" in cut.stderr
    bad = fourhosts("research", "--api", "completions", QUESTION, env=env)
    assert bad.returncode == 2 and "invalid choice: 'completions'" in bad.stderr


def test_magic_api_from_config_and_option(openai_server, seeded_store, monkeypatch):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    monkeypatch.setenv("FOURHOSTS_LIVE", "0")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    magics = ip.magics_manager.registry["ResearchMagics"]
    line = f"--store {seeded_store.path} --base-url {openai_server.base_url} -m demo -p bernard"
    openai_server.script(Reply.truncated("The answer rests on t", "max_output_tokens"), Reply.say("Through chat."))
    try:
        ip.run_line_magic("config", "ResearchMagics.api = 'responses'")
        with capture_output() as cap, pytest.raises(RunError, match="max_output_tokens") as info:
            ip.run_cell_magic("research", line, QUESTION)
        assert info.value.partial_text == "The answer rests on t"
        assert "The answer rests on t" in cap.outputs[0].data["text/plain"]  # shown, then raised
        with capture_output():
            ip.run_cell_magic("research", line + " --api chat --save chat_answer", QUESTION)
        assert ip.user_ns["chat_answer"].text == "Through chat."
        posts = [r.path for r in openai_server.requests if r.method == "POST"]
        assert posts == ["/v1/responses", "/v1/chat/completions"]
        with pytest.raises(UsageError, match="unknown API 'completions': use chat or responses"):
            ip.run_cell_magic("research", line + " --api completions", QUESTION)
    finally:
        magics.api = ""


def test_view_separates_reasoning_of_later_rounds_and_escapes_it():
    from fourhosts_jupyter.events import ToolCallStarted

    state = RunState()
    for e in (ReasoningDelta("Check "), ReasoningDelta("memory."), ToolCallStarted("c1", "search_memory"),
              ReasoningDelta("Answer <now>."), TextDelta("Speed first [1].")):
        state.apply(e)
    assert "".join(state.thinking) == "Check memory.\n\nAnswer <now>."
    assert state.text == "Speed first [1]."
    assert "Answer &lt;now&gt;." in state.to_html()


def test_terminal_shows_reasoning_dimmed_on_stderr_never_in_the_answer():
    import io

    from fourhosts_jupyter.terminal import DIM, render

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = io.StringIO(), Tty()
    render([ReasoningDelta("Weigh the \x1b[31mevidence."), TextDelta("Speed first [1].")], out=out, err=err)
    assert out.getvalue() == "Speed first [1]."
    assert err.getvalue().startswith(DIM) and "Weigh the evidence." in err.getvalue()
    assert "\x1b[31m" not in err.getvalue()  # the model's own escape codes are stripped
