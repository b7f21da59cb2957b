"""The engine's event sequence, persistence, failure handling and sync/async parity.

Engine unit tests use a scripted provider (the provider tests talk to a loopback server).
"""

from __future__ import annotations

import asyncio
import re
from typing import AsyncIterator

import pytest

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import ConfigError, ProviderConnectionError, ProviderIncomplete, RunError
from fourhosts_jupyter.events import (
    AnswerReady,
    Classified,
    LayerFinished,
    LayerStarted,
    RunFailed,
    ReasoningDelta,
    RunStarted,
    SourcesSelected,
    TextDelta,
    Usage,
)
from fourhosts_jupyter.llm.base import (
    ModelRequest,
    ProviderFinish,
    ProviderReasoning,
    ProviderText,
    ProviderUsage,
)
from fourhosts_jupyter.paradigms import PROFILES, HostParadigm

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


class Scripted:
    """A provider that replays a script: text pieces, then optionally an error or a hang."""

    name = "scripted"
    model = "script-1"
    offline = False

    def __init__(self, pieces: list[str], *, fail_after: int | None = None, hang: bool = False):
        self.pieces = pieces
        self.fail_after = fail_after
        self.hang = hang
        self.requests: list[ModelRequest] = []

    async def aclose(self) -> None:
        pass

    async def stream(self, request: ModelRequest) -> AsyncIterator:
        self.requests.append(request)
        for i, piece in enumerate(self.pieces):
            if self.fail_after is not None and i == self.fail_after:
                raise ProviderConnectionError("the connection dropped mid-stream")
            yield ProviderText(piece)
        if self.hang:
            await asyncio.sleep(3600)
        yield ProviderUsage(Usage(10, 5, 15, 0.001))
        yield ProviderFinish("stop")


@pytest.fixture
def engine(seeded_store):
    return Engine(Settings.from_env(), store=seeded_store)


def test_offline_run_event_sequence_and_citations(engine):
    events = list(engine.stream(QUESTION))
    types = [type(e) for e in events]
    assert types[0] is RunStarted
    assert types[-1] is AnswerReady
    classified = next(e for e in events if isinstance(e, Classified)).classification
    host = classified.primary
    # the stages run in the host's own layer order, between classify and the model
    stages = [e.layer for e in events if isinstance(e, LayerStarted)]
    assert stages == ["classify", *[l.value for l in PROFILES[host].layer_order], "model"]
    finished = [e.layer for e in events if isinstance(e, LayerFinished)]
    assert finished == stages
    sources = next(e for e in events if isinstance(e, SourcesSelected)).sources
    assert sources, "the store holds the bundled corpus"
    answer = events[-1].answer
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == answer.text
    assert answer.offline and "no language model was used" in answer.text
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert cited and cited <= {s.n for s in sources}
    # streamed in several chunks through the provider path (the async core yields each one)
    async def deltas():
        return [e async for e in engine.astream(QUESTION) if isinstance(e, TextDelta)]

    singly = asyncio.run(deltas())
    assert len(singly) > 5 and "".join(e.text for e in singly) == answer.text


def test_the_sync_twin_hands_a_fast_stream_over_in_batches(seeded_store):
    pieces = [f"w{i} " for i in range(3000)]
    engine = Engine(Settings.from_env(), store=seeded_store, provider=Scripted(pieces), tools=False)
    events = list(engine.stream(QUESTION))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(e.text for e in deltas) == "".join(pieces) == events[-1].answer.text
    assert len(deltas) < len(pieces) / 10  # joined per batch, not one per chunk
    # the text still sits between the model stage's start and end
    i_start = next(i for i, e in enumerate(events) if isinstance(e, LayerStarted) and e.layer == "model")
    i_end = next(i for i, e in enumerate(events) if isinstance(e, LayerFinished) and e.layer == "model")
    assert all(i_start < events.index(d) < i_end for d in deltas)


class _Mixed(Scripted):
    """Text with reasoning pieces between its runs (both travel in the same batches)."""

    async def stream(self, request: ModelRequest) -> AsyncIterator:
        for i, piece in enumerate(self.pieces):
            yield ProviderReasoning(f"r{i}") if i % 500 == 250 else ProviderText(piece)
        yield ProviderFinish("stop")


def test_the_sync_twin_joins_text_only_between_other_events(seeded_store):
    pieces = [f"w{i} " for i in range(2000)]
    engine = Engine(Settings.from_env(), store=seeded_store, provider=_Mixed(pieces), tools=False)
    events = list(engine.stream(QUESTION))
    model = [e for e in events if isinstance(e, (TextDelta, ReasoningDelta))]
    # the order of text and reasoning is kept: no text joined across a reasoning piece
    flat = [("r", e.text) if isinstance(e, ReasoningDelta) else ("t", e.text) for e in model]
    want = [("r", f"r{i}") if i % 500 == 250 else ("t", p) for i, p in enumerate(pieces)]
    joined: list[tuple[str, str]] = []
    for kind, text in want:
        if joined and kind == "t" == joined[-1][0]:
            joined[-1] = ("t", joined[-1][1] + text)
        else:
            joined.append((kind, text))
    merged: list[tuple[str, str]] = []
    for kind, text in flat:  # batches may split a text run: join what the stream split
        if merged and kind == "t" == merged[-1][0]:
            merged[-1] = ("t", merged[-1][1] + text)
        else:
            merged.append((kind, text))
    assert merged == joined
    assert all(type(e) is TextDelta for e in model if not isinstance(e, ReasoningDelta))
    assert events[-1].answer.text == "".join(p for i, p in enumerate(pieces) if i % 500 != 250)


def test_an_empty_store_is_seeded_with_the_bundled_corpus(store):
    events = list(Engine(Settings.from_env(), store=store).stream("What is Vision Zero?"))
    notices = [e.message for e in events if e.type == "notice"]
    assert any("bundled demo corpus" in m for m in notices)
    assert isinstance(events[-1], AnswerReady) and events[-1].answer.sources
    assert store.memories(source="document")["title"].str.contains("Vision Zero").any()


def test_run_is_persisted_with_its_events(engine):
    answer = engine.research(QUESTION)
    run = engine.store.get_run(answer.run_id)
    assert run["status"] == "ok"
    assert run["question"] == QUESTION
    assert run["answer"] == answer.text
    assert run["classification"]["primary"] == answer.paradigm
    assert len(run["sources"]) == len(answer.sources)
    types = [e["type"] for e in run["events"]]
    assert types[0] == "run_started" and types[-1] == "answer"
    assert "text_delta" not in types  # the answer carries the whole text
    df = engine.store.runs()
    assert answer.run_id in set(df["id"])


def test_forced_paradigm_sets_host_and_layer_order(engine):
    events = list(engine.stream(QUESTION, paradigm="maeve"))
    c = next(e for e in events if isinstance(e, Classified)).classification
    assert c.primary is HostParadigm.MAEVE and c.forced
    stages = [e.layer for e in events if isinstance(e, LayerStarted)]
    assert stages[1:-1] == ["select", "compress", "isolate", "write"]


def test_prompt_carries_persona_and_sources(seeded_store):
    provider = Scripted(["Cut speeds [1]."])
    store = seeded_store
    eng = Engine(Settings.from_env(), store=store, provider=provider)
    answer = eng.research(QUESTION, paradigm="bernard")
    system, user = provider.requests[0].messages
    assert "BERNARD paradigm" in system["content"]
    assert PROFILES[HostParadigm.BERNARD].persona in system["content"]
    assert "[1] " in user["content"] and QUESTION in user["content"]
    assert answer.text == "Cut speeds [1]." and answer.usage.total_tokens == 15
    # a model answer is written back to memory under the host's namespace
    mem = store.memories(namespace="bernard", source="run")
    assert (mem["content"] == "Cut speeds [1].").any()


def test_failure_mid_stream_keeps_partial_answer(seeded_store):
    store = seeded_store
    eng = Engine(Settings.from_env(), store=store, provider=Scripted(["one ", "two ", "three"], fail_after=2))
    events = list(eng.stream(QUESTION))
    assert isinstance(events[-1], RunFailed)
    assert events[-1].partial_text == "one two "
    assert "dropped mid-stream" in events[-1].error
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two "
    with pytest.raises(RunError) as info:
        eng.research(QUESTION)
    assert info.value.partial_text == "one two "
    run = store.get_run(events[0].run_id)
    assert run["status"] == "failed" and run["answer"] == "one two "
    assert "dropped" in run["error"]


def test_a_hanging_model_does_not_hang_the_run(seeded_store):
    settings = Settings.from_env(request_timeout=0.5, max_tool_rounds=1)
    eng = Engine(settings, store=seeded_store, provider=Scripted(["partial "], hang=True))
    events = list(eng.stream(QUESTION))
    assert isinstance(events[-1], RunFailed)
    assert events[-1].kind == "timeout"
    assert events[-1].partial_text == "partial "


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"question": "   "}, "question is empty"),
        ({"question": QUESTION, "paradigm": "arnold"}, "unknown paradigm 'arnold'"),
        ({"question": QUESTION, "effort": "extreme"}, "effort 'extreme' is out of range"),
    ],
)
def test_bad_input_is_a_clear_config_error(engine, kwargs, message):
    question = kwargs.pop("question")
    with pytest.raises(ConfigError, match=message):
        engine.research(question, **kwargs)
    assert engine.store.runs().empty  # nothing was started or stored


def test_sync_and_async_twins_agree(engine):
    sync = engine.research(QUESTION, paradigm="teddy")
    async_ = asyncio.run(engine.aresearch(QUESTION, paradigm="teddy"))
    assert sync.text == async_.text
    assert [s.id for s in sync.sources] == [s.id for s in async_.sources]
    assert sync.run_id != async_.run_id


def test_any_provider_turn_that_ends_early_fails_the_run_as_incomplete_with_its_reason(seeded_store):
    # Generic: a provider (Chat, Responses, a plugin) raising ProviderIncomplete with its reason.
    class CutShort(Scripted):
        async def stream(self, request):
            yield ProviderText("Speed management comes")
            raise ProviderIncomplete("the model stopped before finishing", reason="max_output_tokens")

    eng = Engine(Settings.from_env(), store=seeded_store, provider=CutShort([]))
    events = list(eng.stream(QUESTION))
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.kind == "incomplete"
    assert failed.error == ("the answer was cut off: the model stopped before finishing "
                            "(reason: max_output_tokens)")
    assert failed.partial_text == "Speed management comes"
    run = seeded_store.get_run(events[0].run_id)
    assert (run["status"], run["error_kind"], run["answer"]) == ("failed", "incomplete", "Speed management comes")
