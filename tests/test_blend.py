"""Blend: the pair rules, renormalised weights, more than two hosts, every mode online (scripted
server: the split as validated JSON, the round-robin fallback) and offline."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from fourhosts_jupyter.blending import (
    BlendFinished,
    SplitDecided,
    blend_hosts,
    choose_mode,
    confidence,
    parse_mode,
    parse_split,
    plan_blend,
    stream_blend,
    weights,
)
from fourhosts_jupyter.classifier import classify
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.memory.comparisons import get_comparison
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.paradigms import PROFILES, HostParadigm
from fourhosts_jupyter.testing import RecordedRequest, Reply

D, T, B, M = HostParadigm.DOLORES, HostParadigm.TEDDY, HostParadigm.BERNARD, HostParadigm.MAEVE
QUESTION = "How should a city act fast on road deaths while protecting the most vulnerable?"


def probs(d: float, t: float, b: float, m: float) -> dict[HostParadigm, float]:
    return {D: d, T: t, B: b, M: m}


def test_weights_are_renormalised_so_confidence_is_a_weighted_mean():
    p = probs(0.40, 0.35, 0.15, 0.10)
    w = weights(p, (D, T))
    assert w[D] == pytest.approx(0.40 / 0.75) and w[T] == pytest.approx(0.35 / 0.75)
    assert sum(w.values()) == pytest.approx(1.0)
    mean = (0.40 * PROFILES[D].base_confidence + 0.35 * PROFILES[T].base_confidence) / 0.75
    assert confidence("weighted", w) == pytest.approx(mean)
    # the original's un-normalised Σ p·conf (0.655) fell below every host's own confidence
    assert PROFILES[D].base_confidence <= confidence("weighted", w) <= PROFILES[T].base_confidence
    assert confidence("sequential", w) == 0.85 and confidence("collaborative", w) == 0.88


def test_which_hosts_blend():
    assert blend_hosts(probs(0.70, 0.10, 0.10, 0.10)) == ()
    assert blend_hosts(probs(0.45, 0.40, 0.10, 0.05)) == (D, T)
    # two reach 0.35 and a third is above the secondary band: all three blend
    assert blend_hosts(probs(0.36, 0.36, 0.28, 0.00)) == (D, T, B)
    # not called for, but forced: the top two, plus any host at ≥ 0.15
    assert blend_hosts(probs(0.66, 0.28, 0.02, 0.04), forced=True) == (D, T)
    assert blend_hosts(probs(0.50, 0.30, 0.16, 0.04), forced=True) == (D, T, B)


@pytest.mark.parametrize("hosts, mode", [
    ((D, M), "weighted"),
    ((D, B), "sequential"),
    ((B, D), "sequential"),
    ((T, M), "collaborative"),  # complementary and conflicting: the conflict check runs last
    ((D, T), "collaborative"),
    ((D, B, T), "collaborative"),
    ((B, M), "weighted"),
])  # fmt: skip
def test_pair_rules(hosts, mode):
    assert choose_mode(hosts)[0] == mode


def test_parse_mode():
    assert parse_mode(None) is None and parse_mode("auto") is None
    assert parse_mode(" Sequential ") == "sequential"
    with pytest.raises(ConfigError, match="unknown blend mode 'blended'"):
        parse_mode("blended")


SPLIT = [{"subQuery": "Which fixes can start this month?", "assignedParadigm": "dolores", "rationale": "speed"},
         {"subQuery": "Who is most at risk, and how are they protected?", "assignedParadigm": "teddy", "rationale": "care"}]


@pytest.mark.parametrize("text, ok", [
    (json.dumps(SPLIT), True),
    ("```json\n" + json.dumps(SPLIT) + "\n```", True),
    (json.dumps({"problems": SPLIT}), True),
    ("Here is the split: dolores does the fixes", False),  # not JSON
    (json.dumps(SPLIT[:1]), False),  # a host left out
    (json.dumps([SPLIT[0], {**SPLIT[1], "assignedParadigm": "maeve"}]), False),  # a host not blended
    (json.dumps([SPLIT[0], {**SPLIT[1], "subQuery": ""}]), False),  # an empty sub-problem
    (json.dumps([SPLIT[0], {"assignedParadigm": "teddy"}]), False),  # a key missing
])  # fmt: skip
def test_parse_split(text, ok):
    out = parse_split(text, (D, T))
    if ok:
        assert out == {D: SPLIT[0]["subQuery"], T: SPLIT[1]["subQuery"]}
    else:
        assert out is None


def _classification(p: dict[HostParadigm, float]):
    return replace(classify(QUESTION, embedder=HashingEmbedder()), probabilities=p)


def test_plan_explains_itself():
    plan = plan_blend(_classification(probs(0.45, 0.40, 0.10, 0.05)))
    assert plan.mode == "collaborative" and plan.hosts == (D, T) and not plan.forced
    assert "dolores 45% + teddy 40%" in plan.why and "pull in different directions" in plan.why
    assert plan_blend(_classification(probs(0.70, 0.10, 0.10, 0.10))) is None
    forced = plan_blend(_classification(probs(0.70, 0.10, 0.10, 0.10)), "weighted")
    assert forced.mode == "weighted" and forced.forced and forced.why.count("forced") == 2


# -- online, against the scripted server ------------------------------------------------------


def kind_of(req: RecordedRequest) -> str:
    system = req.messages[0]["content"]
    if system.startswith("You split"):
        return "split"
    if system.startswith("You combine"):
        return "synthesis"
    found = re.search(r"the (DOLORES|TEDDY|BERNARD|MAEVE) paradigm", system)
    return found.group(1).lower() if found else "?"


def _server(openai_server, split_text: str = ""):
    def respond(req: RecordedRequest) -> Reply:
        kind = kind_of(req)
        if kind == "split":
            return Reply.say(split_text)
        if kind == "synthesis":
            return Reply.say("Unified: act now [Dolores] and protect the vulnerable [Teddy].", usage=(50, 12))
        return Reply.say(f"{kind} part: {req.messages[-1]['content'][:60]}")

    openai_server.respond_with(respond)
    return openai_server


def _blend(engine, mode, p=probs(0.45, 0.40, 0.10, 0.05)):
    events = list(stream_blend(engine, QUESTION, mode=mode, classification=_classification(p)))
    return events, next(e.result for e in events if isinstance(e, BlendFinished))


@pytest.fixture
def online(openai_server, seeded_store):
    return Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                  store=seeded_store, tools=False)


def test_weighted_online_synthesises_the_parts_with_their_weights(openai_server, online, seeded_store):
    _server(openai_server)
    _, result = _blend(online, "weighted")
    kinds = [kind_of(r) for r in openai_server.chat_requests]
    assert sorted(kinds[:2]) == ["dolores", "teddy"] and kinds[2:] == ["synthesis"]
    prompt = openai_server.chat_requests[2].messages[-1]["content"]
    assert "Dolores (Action), weight 53%" in prompt and "Teddy (Protection), weight 47%" in prompt
    assert "dolores part:" in prompt and "teddy part:" in prompt
    assert result.text == "Unified: act now [Dolores] and protect the vulnerable [Teddy]."
    assert result.usage.total_tokens == 62 and not result.offline
    assert result.plan.confidence == pytest.approx(confidence("weighted", result.plan.weights))
    stored = get_comparison(seeded_store, result.id)
    assert stored["kind"] == "blend" and stored["summary"]["blend"]["text"] == result.text
    assert sorted(r["paradigm"] for r in stored["runs"]) == ["dolores", "teddy"]


def test_sequential_online_hands_each_host_the_insights_before_it(openai_server, online):
    _server(openai_server)
    _, result = _blend(online, "sequential", probs(0.45, 0.05, 0.40, 0.10))
    reqs = openai_server.chat_requests
    assert [kind_of(r) for r in reqs] == ["dolores", "bernard", "synthesis"]
    assert "Insights so far" not in reqs[0].messages[-1]["content"]
    second = reqs[1].messages[-1]["content"]
    assert "Insights so far from the other hosts" in second and "Dolores: dolores part:" in second
    assert result.plan.mode == "sequential" and result.plan.confidence == 0.85


def test_collaborative_online_asks_for_the_split_as_json(openai_server, online):
    _server(openai_server, json.dumps(SPLIT))
    events, result = _blend(online, "collaborative")
    reqs = openai_server.chat_requests
    assert kind_of(reqs[0]) == "split" and kind_of(reqs[-1]) == "synthesis"
    asked = {kind_of(r): r.messages[-1]["content"] for r in reqs[1:3]}
    assert SPLIT[0]["subQuery"] in asked["dolores"] and SPLIT[1]["subQuery"] in asked["teddy"]
    split = next(e for e in events if isinstance(e, SplitDecided))
    assert split.split == "model (validated JSON)" and result.plan.questions[D] == SPLIT[0]["subQuery"]


def test_collaborative_online_falls_back_to_round_robin_on_invalid_json(openai_server, online):
    _server(openai_server, "Sure! Dolores takes the fixes, Teddy the people.")
    _, result = _blend(online, "collaborative")
    assert result.plan.split.startswith("round-robin (the model's split was not valid JSON")
    asked = {kind_of(r): r.messages[-1]["content"] for r in openai_server.chat_requests[1:3]}
    assert "(aspect 1: protection)" not in asked["dolores"] and "(aspect 1: action)" in asked["dolores"]
    assert "(aspect 2: protection)" in asked["teddy"]
    assert result.plan.confidence == 0.88


# -- offline ------------------------------------------------------------------------------------


@pytest.fixture
def offline(seeded_store):
    return Engine(Settings(provider="offline"), store=seeded_store)


@pytest.mark.parametrize("mode", ["weighted", "sequential", "collaborative"])
def test_every_mode_offline_gives_host_labelled_sections(offline, mode):
    _, result = _blend(offline, mode)
    assert result.offline and set(result.parts.answers) == {D, T}
    text = result.text
    assert text.startswith(f"*Offline blend ({mode}): host-labelled sections")
    d = text.index("### 🤠 Dolores (Action) — weight 53%")
    t = text.index("### 🛡️ Teddy (Protection) — weight 47%")
    assert d < t  # most likely host first
    assert ("*Sub-problem:" in text) is (mode == "collaborative")
    assert "Offline extractive answer" not in text  # each part's own offline line is dropped
    assert result.sources and [s.n for s in result.sources] == list(range(1, len(result.sources) + 1))


def test_unqualified_question_is_not_blended_unless_forced(offline):
    with pytest.raises(ConfigError, match="fewer than two hosts qualify"):
        list(stream_blend(offline, QUESTION, mode=None, force=False,
                          classification=_classification(probs(0.7, 0.1, 0.1, 0.1))))
