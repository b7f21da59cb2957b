"""OpenTelemetry spans of a run, checked with the SDK's in-memory exporter: the tree (run →
stages → model call → tool calls), the GenAI attributes, errors, no content by default; and the
standard launcher (``opentelemetry-instrument``) in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from openai_server import Call, Reply
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from fourhosts_jupyter import telemetry
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import RunError
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.tools import ToolRegistry
from fourhosts_jupyter.tools.builtins import register_builtins

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"
STAGES = ["classify", "select", "write", "compress", "isolate", "model"]  # bernard's order
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exporter():
    """The SDK configured once for this process (a tracer provider can be set only once)."""
    exp = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exp))
    yield exp
    exp.shutdown()  # later test files' spans are no longer kept


@pytest.fixture
def spans(exporter):
    exporter.clear()
    return exporter


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    register_builtins(reg)
    return reg


def scripted_engine(server, store, registry, **settings) -> Engine:
    settings = {"base_url": server.base_url, "model": "scripted-model", "max_retries": 0, **settings}
    return Engine(Settings(**settings), store=store, embedder=HashingEmbedder(), tools=registry)


def offline_engine(store, **settings) -> Engine:
    return Engine(Settings(provider="offline", **settings), store=store, embedder=HashingEmbedder())


class Tree:
    def __init__(self, finished) -> None:
        self.spans = list(finished)
        self.by_id = {s.context.span_id: s for s in self.spans}

    def named(self, name: str) -> list:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str):
        (span,) = self.named(name)
        return span

    def parent(self, span):
        return self.by_id.get(span.parent.span_id) if span.parent is not None else None

    def children(self, span) -> list:
        kids = [s for s in self.spans if s.parent is not None and s.parent.span_id == span.context.span_id]
        return sorted(kids, key=lambda s: s.start_time)


# -- the tree -----------------------------------------------------------------------------------


def test_an_offline_run_is_a_run_span_over_its_stages_and_one_model_call(spans, store):
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("notebook cell") as cell:
        answer = offline_engine(store).research(QUESTION, paradigm="bernard")
    tree = Tree(spans.get_finished_spans())
    run = tree.one(telemetry.RUN_SPAN)
    # the sync twin runs the run on a worker thread: the caller's span is still its parent
    assert tree.parent(run) is not None and tree.parent(run).context.span_id == cell.get_span_context().span_id
    assert run.context.trace_id == cell.get_span_context().trace_id
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["fourhosts.run_id"] == answer.run_id
    assert run.attributes["fourhosts.host"] == "bernard"
    stages = tree.children(run)
    assert [s.name for s in stages] == [telemetry.STAGE_PREFIX + n for n in STAGES]
    assert [s.attributes["fourhosts.layer"] for s in stages] == STAGES
    (chat,) = tree.children(stages[-1])
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.provider.name"] == "fourhosts.offline"
    assert chat.attributes["gen_ai.request.model"] == answer.model == "extractive"
    assert all(s.status.status_code is StatusCode.UNSET for s in tree.spans)
    for child in [*stages, chat]:  # each within its parent's time
        parent = tree.parent(child)
        assert parent.start_time <= child.start_time <= child.end_time <= parent.end_time, child.name


def test_a_scripted_run_nests_tool_calls_under_the_model_call_that_asked_for_them(spans, openai_server, store, registry):
    seen: dict[str, object] = {}

    @registry.register
    def city_population(city: str) -> dict:
        """Population of a city."""
        seen["span"] = trace.get_current_span()  # on the tool thread: its own span is current
        return {"city": city, "population": 700_000}

    openai_server.script(
        Reply.parallel(Call("city_population", {"city": "Oslo"}, id="call_pop"),
                       Call("search_memory", {"query": "speed limits", "k": 2}, id="call_mem"),
                       text="Let me check.", usage=(900, 40)),
        Reply.say("Oslo has 700,000 people [1].", usage=(1200, 30)),
    )
    answer = scripted_engine(openai_server, store, registry).research(QUESTION, paradigm="bernard")
    tree = Tree(spans.get_finished_spans())
    run = tree.one(telemetry.RUN_SPAN)
    model_stage = tree.one(telemetry.STAGE_PREFIX + "model")
    assert tree.parent(model_stage) is run
    first, second = tree.children(model_stage)
    for chat in (first, second):
        assert chat.name == "chat scripted-model"
        assert chat.attributes["gen_ai.provider.name"] == "compatible"
        assert chat.attributes["gen_ai.request.model"] == "scripted-model"
    # the usage each response reported, and why each turn ended
    assert (first.attributes["gen_ai.usage.input_tokens"], first.attributes["gen_ai.usage.output_tokens"]) == (900, 40)
    assert (second.attributes["gen_ai.usage.input_tokens"], second.attributes["gen_ai.usage.output_tokens"]) == (1200, 30)
    assert tuple(first.attributes["gen_ai.response.finish_reasons"]) == ("tool_calls",)
    assert tuple(second.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    # the run adds them up
    assert (run.attributes["gen_ai.usage.input_tokens"], run.attributes["gen_ai.usage.output_tokens"]) == (2100, 70)
    assert run.attributes["fourhosts.run_id"] == answer.run_id

    tools = tree.children(first)
    assert sorted((t.name, t.attributes["gen_ai.tool.name"], t.attributes["gen_ai.tool.call.id"]) for t in tools) == [
        ("execute_tool city_population", "city_population", "call_pop"),
        ("execute_tool search_memory", "search_memory", "call_mem"),
    ]
    assert all(t.attributes["gen_ai.operation.name"] == "execute_tool" for t in tools)
    assert all(t.attributes["fourhosts.host"] == "bernard" for t in tools)
    assert not tree.children(second)
    pop = next(t for t in tools if t.attributes["gen_ai.tool.name"] == "city_population")
    assert seen["span"].get_span_context().span_id == pop.context.span_id


def test_a_failed_model_call_marks_its_span_the_stage_and_the_run(spans, openai_server, store, registry):
    openai_server.script(Reply.fail(401, "Incorrect API key provided"))
    with pytest.raises(RunError) as err:
        scripted_engine(openai_server, store, registry).research(QUESTION, paradigm="bernard")
    tree = Tree(spans.get_finished_spans())
    run = tree.one(telemetry.RUN_SPAN)
    stage = tree.one(telemetry.STAGE_PREFIX + "model")
    chat = tree.one("chat scripted-model")
    for span in (run, stage, chat):
        assert span.status.status_code is StatusCode.ERROR, span.name
    # the run and its stage say what kind of failure ended the run; the call, which exception
    assert run.attributes["error.type"] == stage.attributes["error.type"] == err.value.kind == "provider"
    assert chat.attributes["error.type"] == "ProviderAuthError"
    (exc,) = [e for e in chat.events if e.name == "exception"]
    assert exc.attributes["exception.type"] == "fourhosts_jupyter.errors.ProviderAuthError"
    assert "API key" in exc.attributes["exception.message"]
    assert any(e.name == "exception" for e in stage.events)
    assert run.attributes["fourhosts.run_id"] == err.value.run_id


def test_a_failed_tool_call_is_an_error_span_and_the_run_goes_on(spans, openai_server, store, registry):
    openai_server.script(Reply.call("no_such_tool", {"q": 1}, id="call_bad"), Reply.say("recovered"))
    scripted_engine(openai_server, store, registry).research(QUESTION, paradigm="bernard")
    tree = Tree(spans.get_finished_spans())
    bad = tree.one("execute_tool no_such_tool")
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.attributes["error.type"] == "unknown_tool"
    assert bad.attributes["gen_ai.tool.call.id"] == "call_bad"
    (exc,) = [e for e in bad.events if e.name == "exception"]
    assert exc.attributes["exception.type"].endswith(".UnknownTool")
    assert tree.one(telemetry.RUN_SPAN).status.status_code is StatusCode.UNSET


def test_a_summary_call_of_the_compress_stage_is_a_model_call_span_too(spans, openai_server):
    from fourhosts_jupyter.context.compress import compress
    from fourhosts_jupyter.llm.openai_chat import OpenAIChatProvider

    text = (ROOT / "fourhosts_jupyter" / "data" / "corpus" / "city-road-safety-action-plan.md").read_text()
    summary = "\n".join(f"- {line}" for line in text.split(". ")[:3])
    openai_server.script(Reply.say(summary, usage=(640, 48)), Reply.fail(500, "boom"))
    llm = OpenAIChatProvider("compatible", base_url=openai_server.base_url, model="summ-1", api_key="x",
                             max_retries=0)
    for _ in range(2):  # the first call answers, the second fails
        compress(text, host="dolores", target_tokens=200, providers=[llm], embedder=HashingEmbedder())
    ok, failed = sorted(Tree(spans.get_finished_spans()).named("chat summ-1"), key=lambda s: s.start_time)
    assert ok.attributes["gen_ai.request.max_tokens"] > 0
    assert (ok.attributes["gen_ai.usage.input_tokens"], ok.attributes["gen_ai.usage.output_tokens"]) == (640, 48)
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"].startswith("Provider")


def test_secrets_in_an_error_never_reach_a_span(spans, openai_server, store, registry):
    key = "sk-test" + "Q" * 30

    @registry.register
    def leaky() -> str:
        """A tool whose failure quotes a key."""
        raise RuntimeError(f"upstream refused key {key} at https://user:hunter2@example.org/x")

    openai_server.script(Reply.call("leaky", {}, id="call_leak"), Reply.say("ok"))
    scripted_engine(openai_server, store, registry).research(QUESTION, paradigm="bernard")
    tree = Tree(spans.get_finished_spans())
    span = tree.one("execute_tool leaky")
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "tool_error"
    (exc,) = [e for e in span.events if e.name == "exception"]
    assert "upstream refused key" in exc.attributes["exception.message"]  # the error itself is there
    text = _all_attribute_text(tree) + "".join(s.status.description or "" for s in tree.spans)
    assert key not in text and "hunter2" not in text


def test_an_empty_question_is_still_a_config_error_and_an_error_span(spans, store):
    from fourhosts_jupyter.errors import ConfigError

    with pytest.raises(ConfigError, match="the question is empty"):
        offline_engine(store).research("   ")
    run = Tree(spans.get_finished_spans()).one(telemetry.RUN_SPAN)
    assert run.status.status_code is StatusCode.ERROR and run.attributes["error.type"] == "ConfigError"


# -- content --------------------------------------------------------------------------------


def _all_attribute_text(tree: Tree) -> str:
    values = []
    for s in tree.spans:
        values += [str(v) for v in s.attributes.values()]
        for e in s.events:
            values += [str(v) for v in (e.attributes or {}).values()]
    return "\n".join(values)


def test_no_question_prompt_or_answer_text_on_any_span_by_default(spans, openai_server, store, registry, monkeypatch):
    monkeypatch.delenv(telemetry.CONTENT_VARIABLE, raising=False)
    secret_answer = "Speed cameras near schools halved deaths in Oslo [1]."
    openai_server.script(Reply.call("search_memory", {"query": "speed cameras"}), Reply.say(secret_answer))
    answer = scripted_engine(openai_server, store, registry).research(QUESTION, paradigm="bernard")
    assert answer.text == secret_answer
    text = _all_attribute_text(Tree(spans.get_finished_spans()))
    for needle in (QUESTION, "traffic deaths", secret_answer, "Speed cameras", "speed cameras"):
        assert needle not in text, needle

    # opted in: the same run carries them (so the check above can fail)
    spans.clear()
    monkeypatch.setenv(telemetry.CONTENT_VARIABLE, "1")
    openai_server.script(Reply.call("search_memory", {"query": "speed cameras"}), Reply.say(secret_answer))
    scripted_engine(openai_server, store, registry).research(QUESTION, paradigm="bernard")
    tree = Tree(spans.get_finished_spans())
    run = tree.one(telemetry.RUN_SPAN)
    assert run.attributes["fourhosts.question"] == QUESTION and run.attributes["fourhosts.answer"] == secret_answer
    assert "speed cameras" in tree.one("execute_tool search_memory").attributes["gen_ai.tool.call.arguments"]
    assert QUESTION in tree.named("chat scripted-model")[0].attributes["gen_ai.input.messages"]


def test_the_settings_field_opts_in_too(spans, store, monkeypatch):
    monkeypatch.delenv(telemetry.CONTENT_VARIABLE, raising=False)
    offline_engine(store, otel_content=True).research(QUESTION, paradigm="bernard")
    assert Tree(spans.get_finished_spans()).one(telemetry.RUN_SPAN).attributes["fourhosts.question"] == QUESTION


# -- contexts -------------------------------------------------------------------------------


def test_an_async_consumer_never_sees_the_runs_spans_as_current(spans, store):
    async def consume() -> list:
        tracer = trace.get_tracer("test")
        seen = []
        with tracer.start_as_current_span("consumer") as mine:
            async for _ev in offline_engine(store).astream(QUESTION, paradigm="bernard"):
                seen.append(trace.get_current_span() is mine)
        return seen

    seen = asyncio.run(consume())
    assert seen and all(seen)
    tree = Tree(spans.get_finished_spans())
    assert tree.parent(tree.one(telemetry.RUN_SPAN)).name == "consumer"
    assert len(tree.children(tree.one(telemetry.RUN_SPAN))) == len(STAGES)


def test_a_run_stopped_mid_stream_ends_every_span_and_detaches_cleanly(spans, openai_server, store, registry, caplog):
    from fourhosts_jupyter.events import TextDelta

    openai_server.script(Reply.say("word " * 400, chunks=400, delay=0.01))
    events = scripted_engine(openai_server, store, registry).stream(QUESTION, paradigm="bernard")
    with caplog.at_level("ERROR"):
        for ev in events:
            if isinstance(ev, TextDelta):
                break  # the analyst interrupted the cell
        events.close()  # the worker's task is cancelled; the run is persisted as failed
    assert not [r for r in caplog.records if "detach" in r.getMessage().lower()]
    tree = Tree(spans.get_finished_spans())
    run = tree.one(telemetry.RUN_SPAN)
    stage = tree.one(telemetry.STAGE_PREFIX + "model")
    chat = tree.one("chat scripted-model")
    assert tree.parent(chat) is stage and tree.parent(stage) is run
    for span in (run, stage, chat):
        assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "CancelledError"
    assert store.get_run(run.attributes["fourhosts.run_id"])["status"] == "failed"


def test_without_an_sdk_nothing_is_wrapped_and_the_api_is_not_imported():
    code = textwrap.dedent(
        """
        import sys
        import fourhosts_jupyter
        from fourhosts_jupyter import telemetry
        from fourhosts_jupyter.engine import Engine
        from fourhosts_jupyter.config import Settings
        print("opentelemetry" in " ".join(sys.modules), telemetry.active())
        gen = Engine(Settings(provider="offline")).astream("q?")
        print(type(gen).__qualname__)
        import opentelemetry.trace  # the API alone (no SDK) is still a no-op
        print(telemetry.active(), telemetry.tool_call("x", "c").__enter__() is telemetry._NO_SPAN)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["False False", "async_generator", "False True"]


# -- the standard launcher -------------------------------------------------------------------


def _json_objects(text: str) -> list[dict]:
    """The JSON objects in ``text`` (the console exporter prints one indented object per span)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        if isinstance(obj, dict) and "context" in obj and "name" in obj:
            out.append(obj)
        i = end
    return out


def test_opentelemetry_instrument_prints_the_span_tree(tmp_path):
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    if not launcher.exists():
        launcher = Path(shutil.which("opentelemetry-instrument") or "")
    assert launcher.is_file(), "opentelemetry-instrument is missing: pip install -e '.[otel]'"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none", "OTEL_SERVICE_NAME": "fourhosts-test",
                "FOURHOSTS_HOME": str(tmp_path / "home"), "FOURHOSTS_EMBEDDER": "hashing",
                "FOURHOSTS_PROVIDER": "offline", "PYTHONPATH": str(ROOT)})
    out = subprocess.run([str(launcher), sys.executable, "-m", "fourhosts_jupyter.cli", "research",
                          "--paradigm", "bernard", QUESTION],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    printed = _json_objects(out.stdout)
    by_id = {s["context"]["span_id"]: s for s in printed}
    (run,) = [s for s in printed if s["name"] == telemetry.RUN_SPAN]
    assert run["parent_id"] is None
    assert run["attributes"]["fourhosts.host"] == "bernard"
    assert run["resource"]["attributes"]["service.name"] == "fourhosts-test"
    stages = [s for s in printed if s["parent_id"] == run["context"]["span_id"]]
    assert sorted(s["attributes"]["fourhosts.layer"] for s in stages) == sorted(STAGES)
    (chat,) = [s for s in printed if s["name"] == "chat extractive"]
    assert by_id[chat["parent_id"]]["name"] == telemetry.STAGE_PREFIX + "model"
    assert {s["context"]["trace_id"] for s in printed} == {run["context"]["trace_id"]}
