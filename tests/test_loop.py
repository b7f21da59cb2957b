"""The model/tool loop end to end: Engine → loop → OpenAIChatProvider → official client →
loopback server, and back through the runner to real tools and a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from openai_server import Call, Quirks, Reply

import fourhosts_jupyter as fh
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import RunError
from fourhosts_jupyter.events import (
    AnswerReady,
    Notice,
    RunFailed,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallRunning,
    ToolCallStarted,
    UsageReported,
)
from fourhosts_jupyter.loop import FINAL_NUDGE
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.paradigms import HostParadigm
from fourhosts_jupyter.tools import ParadigmAwareToolContext, ToolRegistry, default_registry, tool_history
from fourhosts_jupyter.tools.builtins import register_builtins

# The demo corpus's road-safety documents: a question about traffic deaths draws from these.
ROAD_SAFETY = {"speed-management.md", "vision-zero-safe-system.md", "city-road-safety-action-plan.md",
               "road-safety-data-evaluation.md", "road-safety-stakeholders-equity.md",
               "street-design-pedestrians-cyclists.md", "public-health-injury-prevention.md"}


def corpus_file(origin: str) -> str:
    """The file name in a source's origin, a path or a label such as 'demo corpus: x.md'."""
    return origin.replace("\\", "/").split("/")[-1].split(" ")[-1]

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    register_builtins(reg)
    return reg


@pytest.fixture
def make_engine(openai_server, store, registry):
    def make(**settings) -> Engine:
        settings.setdefault("base_url", openai_server.base_url)
        settings.setdefault("model", "scripted-model")
        settings.setdefault("max_retries", 0)
        tools = settings.pop("tools", registry)
        return Engine(Settings(**settings), store=store, embedder=HashingEmbedder(), tools=tools)

    return make


def events_of(engine: Engine, paradigm: str = "bernard", **kw) -> list:
    return list(engine.stream(QUESTION, paradigm=paradigm, **kw))


def answer_of(events):
    ready = [e for e in events if isinstance(e, AnswerReady)]
    assert ready, [e for e in events if isinstance(e, RunFailed)]
    return ready[0].answer


def test_tool_results_go_back_as_tool_messages_and_the_next_round_streams(openai_server, make_engine, registry):
    @registry.register
    def city_population(city: str) -> dict:
        """Population of a city."""
        return {"city": city, "population": 700_000}

    openai_server.script(
        Reply.parallel(Call("city_population", {"city": "Oslo"}, id="call_pop"),
                       Call("search_memory", {"query": "speed limits", "k": 2}, id="call_mem"),
                       text="Let me check two things."),
        Reply.say("Oslo has 700,000 people [1]."),
    )
    events = events_of(make_engine())
    answer = answer_of(events)
    assert answer.text == "Let me check two things.\n\nOslo has 700,000 people [1]."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == answer.text

    first, second = openai_server.chat_requests
    assert {"city_population", "search_memory"} <= set(first.tool_names)
    assistant = second.messages[-3]
    assert assistant["role"] == "assistant" and assistant["content"] == "Let me check two things."
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_pop", "call_mem"]
    tool_msgs = second.tool_messages()
    assert [m["tool_call_id"] for m in tool_msgs] == ["call_pop", "call_mem"]
    assert json.loads(tool_msgs[0]["content"]) == {"city": "Oslo", "population": 700_000}
    assert len(json.loads(tool_msgs[1]["content"])) == 2  # two memories, from the real store

    assert [(r.name, r.status, r.round) for r in answer.tool_calls] == [
        ("city_population", "done", 0), ("search_memory", "done", 0)]
    # each card's life: started → argument pieces → running → finished
    for call_id in ("call_pop", "call_mem"):
        kinds = [type(e) for e in events if getattr(e, "call_id", None) == call_id]
        assert kinds[0] is ToolCallStarted and kinds[-1] is ToolCallFinished
        assert ToolCallArgumentsDelta in kinds and ToolCallRunning in kinds
    started = next(e for e in events if isinstance(e, ToolCallStarted) and e.call_id == "call_mem")
    assert started.name == "search_memory" and started.index == 1 and started.round == 0


def test_a_call_runs_as_soon_as_its_arguments_are_complete_while_the_stream_continues(openai_server, make_engine, registry):
    @registry.register
    def quick(n: int) -> int:
        return n + 1

    # call 0 is complete when call 1 starts; call 1's arguments then trickle in for ~1 s
    openai_server.script(
        Reply.parallel(Call("quick", {"n": 1}, id="c0"),
                       Call("quick", {"n": 123456789012345678901234567890}, id="c1"),
                       args_chunk=2, delay=0.04),
        Reply.say("done"),
    )
    events = events_of(make_engine())
    finished_c0 = next(i for i, e in enumerate(events) if isinstance(e, ToolCallFinished) and e.call_id == "c0")
    c1_pieces = [i for i, e in enumerate(events) if isinstance(e, ToolCallArgumentsDelta) and e.call_id == "c1"]
    assert len(c1_pieces) > 10
    assert finished_c0 < c1_pieces[-5], "call 0 should finish while call 1 is still streaming"


def test_tool_calls_run_even_when_the_server_says_stop(openai_server, make_engine, registry):
    # Some compatible servers end a tool-call turn with finish_reason "stop".
    openai_server.script(Reply.call("search_memory", {"query": "speed"}, finish_reason="stop"), Reply.say("ok"))
    answer = answer_of(events_of(make_engine()))
    assert [r.status for r in answer.tool_calls] == ["done"] and answer.text == "ok"
    assert openai_server.chat_requests[1].tool_messages()


def test_independent_calls_run_concurrently(openai_server, make_engine, registry):
    barrier = threading.Barrier(2, timeout=10)  # breaks (and fails both) if the calls run one by one

    @registry.register
    def meet(who: str) -> str:
        barrier.wait()
        return f"{who} met"

    openai_server.script(Reply.parallel(Call("meet", {"who": "a"}), Call("meet", {"who": "b"})), Reply.say("ok"))
    answer = answer_of(events_of(make_engine()))
    assert [r.status for r in answer.tool_calls] == ["done", "done"]


def test_rounds_are_capped_and_the_last_request_asks_for_an_answer_without_tools(openai_server, make_engine, registry):
    @registry.register
    def again() -> str:
        return "more"

    openai_server.respond_with(lambda req: Reply.call("again", {}))  # a model that never stops
    events = events_of(make_engine(max_tool_rounds=2))
    reqs = openai_server.chat_requests
    assert len(reqs) == 3
    assert [r.body.get("tool_choice") for r in reqs] == ["auto", "auto", "none"]
    assert reqs[-1].messages[-1] == {"role": "user", "content": FINAL_NUDGE}
    answer = answer_of(events)
    assert len(answer.tool_calls) == 2  # the third turn's call was not run
    assert any(isinstance(e, Notice) and "limit of 2 tool rounds" in e.message for e in events)


def test_large_results_are_bounded_for_the_model_and_kept_whole_in_the_run_log(openai_server, make_engine, registry, store):
    @registry.register
    def big_table(rows: int) -> list:
        return [{"row": i, "value": "v" * 50} for i in range(rows)]

    openai_server.script(Reply.call("big_table", {"rows": 500}, id="call_big"), Reply.say("summarised"))
    answer = answer_of(events_of(make_engine()))
    content = openai_server.chat_requests[1].tool_messages()[0]["content"]
    gated = json.loads(content)
    assert gated["truncated"] and gated["pointer"] == f"run:{answer.run_id}/tool:call_big"
    assert len(content) < 2_000
    run = store.get_run(answer.run_id)
    logged = next(e for e in run["events"] if e["type"] == "tool_call_finished")
    assert len(logged["payload"]["result"]) == 500


def test_per_host_tool_sets_filter_what_the_model_is_offered(openai_server, make_engine, registry):
    def run_python(code: str) -> str:
        """Run Python code."""
        return code

    registry.register(run_python, builtin=True)  # listed for Dolores, not for Teddy
    openai_server.script(Reply.say("a"), Reply.say("b"))
    engine = make_engine()
    events_of(engine, paradigm="dolores")
    events_of(engine, paradigm="teddy")
    dolores, teddy = (set(r.tool_names) for r in openai_server.chat_requests)
    assert "run_python" in dolores and "run_python" not in teddy
    assert {"search_memory", "remember", "forget"} <= dolores & teddy


def test_tools_receive_the_paradigm_context(openai_server, make_engine, registry, store):
    seen: list[ParadigmAwareToolContext] = []

    @registry.register
    def note(text: str, ctx: ParadigmAwareToolContext) -> str:
        seen.append(ctx)
        return f"noted under {ctx.host}"

    openai_server.script(Reply.call("note", {"text": "one"}), Reply.call("note", {"text": "two"}), Reply.say("ok"))
    answer = answer_of(events_of(make_engine(), paradigm="maeve"))
    assert "ctx" not in json.dumps(openai_server.chat_requests[0].body["tools"])
    first, second = seen
    assert first.paradigm is HostParadigm.MAEVE and second.round == 1
    assert abs(sum(first.probabilities.values()) - 1) < 1e-6
    assert first.phase is not None and first.run_id == answer.run_id and first.question == QUESTION
    assert first.store is store and first.memory  # the sources selected for this run
    assert [r.result for r in second.previous] == ["noted under maeve"]
    history = tool_history(store, "maeve")
    assert list(history["tool"]) == ["note", "note"] and set(history["status"]) == {"done"}


def test_malformed_arguments_and_unknown_tools_go_back_to_the_model(openai_server, make_engine):
    openai_server.script(
        Reply.parallel(Call("search_memory", '{"query": "speed", '), Call("no_such_tool", {"q": 1})),
        Reply.say("recovered"),
    )
    events = events_of(make_engine())
    answer = answer_of(events)
    assert answer.text == "recovered"
    failed = {e.name: e.kind for e in events if isinstance(e, ToolCallFailed)}
    assert failed == {"search_memory": "bad_arguments", "no_such_tool": "unknown_tool"}
    tool_msgs = openai_server.chat_requests[1].tool_messages()
    payloads = [json.loads(m["content"]) for m in tool_msgs]
    assert [p["kind"] for p in payloads] == ["bad_arguments", "unknown_tool"]
    assert all(p["success"] is False for p in payloads)
    assert payloads[1]["fallback"]["tool"] == "search_memory"  # Bernard's fallback tool
    # the malformed arguments are not echoed back (servers re-parse them)
    assert openai_server.chat_requests[1].messages[-3]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_usage_is_summed_over_rounds_and_reported_once(openai_server, make_engine, registry):
    openai_server.script(Reply.call("search_memory", {"query": "x"}, usage=(100, 10)), Reply.say("ok", usage=(200, 20)))
    events = events_of(make_engine())
    usage = [e for e in events if isinstance(e, UsageReported)]
    assert len(usage) == 1 and usage[0].usage.prompt_tokens == 300 and usage[0].usage.total_tokens == 330
    assert answer_of(events).usage.completion_tokens == 30


def test_a_stream_that_breaks_mid_way_keeps_the_partial_answer_and_fails_the_run(openai_server, make_engine, store):
    openai_server.script(Reply.drop("Cut speeds first. Then redesign the", after=5, text_chunk=6))
    engine = make_engine()
    events = events_of(engine)
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.kind == "provider"
    assert failed.partial_text == "Cut speeds first. Then r"  # role chunk + 4 pieces of 6
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == failed.partial_text
    openai_server.script(Reply.drop("Partial words here", after=3))
    with pytest.raises(RunError) as info:
        engine.research(QUESTION, paradigm="bernard")
    assert info.value.partial_text == "Partial words he"
    run = store.get_run(info.value.run_id)
    assert run["status"] == "failed" and run["answer"] == "Partial words he"


def test_rate_limit_is_retried_with_the_wait_visible(openai_server, make_engine):
    openai_server.script(Reply.fail(429, "slow down", retry_after=0.2), Reply.say("after the wait"))
    events = events_of(make_engine(max_retries=2))
    assert answer_of(events).text == "after the wait"
    notice = next(e for e in events if isinstance(e, Notice) and "RateLimited" in e.message)
    assert "retry 1/2 in 0.2 s" in notice.message


def test_fallback_chain_to_offline_is_visible_and_recorded(openai_server, make_engine):
    openai_server.script(Reply.fail(500, "model overloaded"))
    events = events_of(make_engine(provider="compatible,offline"))
    answer = answer_of(events)
    assert answer.provider == "offline" and answer.offline
    switch = next(e for e in events if isinstance(e, Notice) and "Switched to offline" in e.message)
    assert "model overloaded" in switch.message and switch.level == "warning"


def test_azure_through_the_engine(openai_server, make_engine, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key-for-test")
    openai_server.script(Reply.call("search_memory", {"query": "x"}), Reply.say("azure says hi"))
    engine = make_engine(provider="azure", base_url=None, azure_endpoint=openai_server.azure_endpoint,
                         model="research-deploy", api_version="2024-10-21")
    answer = answer_of(events_of(engine))
    assert answer.text == "azure says hi" and answer.provider == "azure" and answer.model == "research-deploy"
    assert {r.deployment for r in openai_server.chat_requests} == {"research-deploy"}
    assert openai_server.chat_requests[1].tool_messages()


def test_a_tool_registered_with_fh_tool_is_offered_to_the_next_run(openai_server, make_engine):
    @fh.tool
    def analyst_lookup(term: str) -> str:
        """Defined by the analyst in a cell."""
        return f"definition of {term}"

    try:
        openai_server.script(Reply.call("analyst_lookup", {"term": "Vision Zero"}), Reply.say("done"))
        answer = answer_of(events_of(make_engine(tools=None)))  # None → the process-wide registry
        assert "analyst_lookup" in openai_server.chat_requests[0].tool_names
        assert openai_server.chat_requests[1].tool_messages()[0]["content"] == "definition of Vision Zero"
        assert answer.tool_calls[0].status == "done"
    finally:
        default_registry().unregister("analyst_lookup")


def _cli(tmp_path, *args: str, embedder: str | None = "hashing", timeout: int = 180) -> subprocess.CompletedProcess:
    """``fourhosts ARGS`` in a fresh process with a private home and no key; ``embedder=None``
    leaves the default (the local model)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "FOURHOSTS_EMBEDDER")}
    env["FOURHOSTS_HOME"] = str(tmp_path / "home")
    if embedder:
        env["FOURHOSTS_EMBEDDER"] = embedder
    return subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_research_against_a_compatible_server(openai_server, tmp_path):
    openai_server.script(Reply.say("Lower speeds save lives [1]."))
    out = _cli(tmp_path, "research", "--base-url", openai_server.base_url, "--model", "llama3.1:8b", QUESTION)
    assert out.returncode == 0, out.stderr
    assert "Lower speeds save lives [1]." in out.stdout
    req = openai_server.chat_requests[0]
    assert req.body["model"] == "llama3.1:8b" and req.headers["authorization"] == "Bearer not-needed"


# -- turns that end early, and servers that cannot stream tool turns (issue 9) ---------------

CUT = Reply.cut("The answer rests on three pillars.", after=4, text_chunk=7)  # role + 3 pieces


@pytest.mark.parametrize("reply, partial, reason", [
    (CUT, "The answer rests on t", "cut off"),
    (Reply.empty(), "", "ended with nothing"),
], ids=["cut-off", "empty-200"])
def test_a_turn_that_ends_early_fails_the_run_as_incomplete(openai_server, make_engine, store, reply, partial, reason):
    # Tools are offered, so an empty 200 is first taken for a server that cannot stream tool
    # turns: the unstreamed retry is empty too (three replies: two runs, one retry).
    openai_server.script(reply, reply, reply)
    engine = make_engine(max_retries=2)
    events = events_of(engine)
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.kind == "incomplete"
    assert failed.partial_text == partial and reason in failed.error
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == partial
    assert not any(isinstance(e, AnswerReady) for e in events)
    run_id = events[0].run_id
    run = store.get_run(run_id)
    assert (run["status"], run["error_kind"], run["answer"]) == ("failed", "incomplete", partial)
    listed = store.runs().set_index("id").loc[run_id]
    assert (listed["status"], listed["error_kind"]) == ("failed", "incomplete")
    # the cut-off text is not kept as a memory of what was found
    kept = store.memories(source="run")
    assert "query context" in set(kept["title"]) and QUESTION[:120] not in set(kept["title"])
    with pytest.raises(RunError) as info:
        engine.research(QUESTION, paradigm="bernard")
    assert info.value.kind == "incomplete" and info.value.partial_text == partial


@pytest.mark.parametrize("shape", ["openai-url", "azure-url"])
def test_a_llama_cpp_server_answers_tool_turns_unstreamed(openai_server, make_engine, monkeypatch, shape):
    openai_server.set_quirks(Quirks.llama_cpp())
    openai_server.script(
        Reply.call("search_memory", {"query": "speed limits"}),  # no text: content "" goes back
        Reply.call("search_memory", {"query": "speed cameras"}, text="Checking cameras too."),
        Reply.say("Lower speeds save lives [1]."),
    )
    settings = {}
    if shape == "azure-url":
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key-for-test")
        settings = dict(provider="azure", base_url=None, azure_endpoint=openai_server.azure_endpoint,
                        model="llama-deploy", api_version="2024-10-21")
    events = events_of(make_engine(**settings))
    answer = answer_of(events)
    assert answer.text == "Checking cameras too.\n\nLower speeds save lives [1]."
    notices = [e for e in events if isinstance(e, Notice) and "cannot stream tool calls" in e.message]
    assert len(notices) == 1
    assert [c.status for c in answer.tool_calls] == ["done", "done"]
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert [e.call_id[:28] for e in started] == ["call__0_search_memory_cmpl-s"] * 2
    reqs = openai_server.chat_requests
    assert [r.body["stream"] for r in reqs] == [True, False, False, False]
    first_turn = reqs[2].messages[-2]
    assert first_turn["role"] == "assistant" and first_turn["content"] == ""
    assert reqs[2].tool_messages()[0]["tool_call_id"] == started[0].call_id


def test_an_assistant_turn_with_tool_calls_sends_empty_content_not_null(openai_server, make_engine):
    openai_server.set_quirks(refuse_null_content=True)  # as llama-cpp-python does (422)
    openai_server.script(Reply.call("search_memory", {"query": "x"}), Reply.say("done"))
    assert answer_of(events_of(make_engine())).text == "done"
    turn = openai_server.chat_requests[1].messages[-2]
    assert turn["tool_calls"] and turn["content"] == ""


def test_cli_research_exits_non_zero_on_an_early_end_and_runs_show_it(openai_server, tmp_path):
    openai_server.script(CUT)
    out = _cli(tmp_path, "research", "--base-url", openai_server.base_url, "--model", "llama3.1:8b", QUESTION)
    assert out.returncode == 1
    assert "The answer rests on t [cut off]\n" in out.stdout
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("fourhosts: error:") and "cut off" in last and "incomplete" in last
    runs = _cli(tmp_path, "runs")
    assert runs.returncode == 0 and "failed (incomplete)" in runs.stdout
    (row,) = json.loads(_cli(tmp_path, "runs", "--json").stdout)
    assert (row["status"], row["error_kind"]) == ("failed", "incomplete")
    shown = _cli(tmp_path, "show", row["id"])
    assert shown.returncode == 0 and "failed (incomplete)" in shown.stdout
    assert "The answer rests on t" in shown.stdout and "cut off" in shown.stdout


# -- end to end with the real local embedding model ------------------------------------------------


def test_the_tool_loop_end_to_end_with_the_local_model(openai_server, seeded_store, registry):
    """Classification, the search_memory tool and the answer's sources all on MiniLM vectors
    over the demo corpus, not the hashing embedder."""
    from fourhosts_jupyter.memory.embeddings import LOCAL_MODEL_NAME, LocalEmbedder

    openai_server.script(
        Reply.call("search_memory", {"query": "survival of a pedestrian struck at 30 km/h versus 50 km/h", "k": 3},
                   id="call_mem"),
        Reply.say("Lower speeds save lives [1]."),
    )
    engine = Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                    store=seeded_store, embedder=LocalEmbedder(), tools=registry)
    answer = answer_of(events_of(engine))
    assert answer.classification.embedder == LOCAL_MODEL_NAME
    assert [(r.name, r.status) for r in answer.tool_calls] == [("search_memory", "done")]
    found = json.loads(openai_server.chat_requests[1].tool_messages()[0]["content"])
    assert len(found) == 3
    # the passage that answers it (30 vs 50 km/h survival) is the one MiniLM ranks first
    assert found[0]["title"].startswith("Speed Management") and "30 km/h" in found[0]["text"]
    files = [corpus_file(s.origin) for s in answer.sources]
    assert len(files) >= 3 and set(files[:3]) <= ROAD_SAFETY, files


def test_the_cli_end_to_end_with_the_local_model(openai_server, tmp_path):
    """``fourhosts research`` in a fresh process with the default embedder (the local model)."""
    import duckdb

    openai_server.script(Reply.say("Lower speeds save lives [1]."))
    out = _cli(tmp_path, "research", "--base-url", openai_server.base_url, "--model", "llama3.1:8b", QUESTION,
               embedder=None, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Lower speeds save lives [1]." in out.stdout
    con = duckdb.connect(str(tmp_path / "home" / "store.duckdb"), read_only=True)
    try:
        ((sources,),) = con.execute("SELECT sources FROM runs").fetchall()
        models = con.execute("SELECT DISTINCT model FROM memories").fetchall()
    finally:
        con.close()
    assert models == [("all-MiniLM-L6-v2",)]  # the demo corpus was seeded with MiniLM vectors
    files = [corpus_file(s["origin"]) for s in json.loads(sources)]
    assert len(files) >= 3 and set(files[:3]) <= ROAD_SAFETY, files
