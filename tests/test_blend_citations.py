"""A blend's unified answer cites the merged source list: every [n] of a host's part is
renumbered to the number of the same source in the merged, deduplicated list."""

from __future__ import annotations

import re

import pytest

from fourhosts_jupyter.blend_citations import renumber
from fourhosts_jupyter.blending import BlendFinished, stream_blend
from fourhosts_jupyter.classifier import classify
from fourhosts_jupyter.comparison import source_key
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.paradigms import PROFILES, HostParadigm
from fourhosts_jupyter.testing import RecordedRequest, Reply

D, T, B, M = HostParadigm.DOLORES, HostParadigm.TEDDY, HostParadigm.BERNARD, HostParadigm.MAEVE
QUESTION = "How should a city act fast on road deaths while protecting the most vulnerable?"
CITE = re.compile(r"\[(\d+(?:, \d+)*)\]")


def test_renumber_maps_groups_ranges_and_drops_what_is_not_merged():
    m = {1: 3, 2: 1, 3: 2, 4: 5}
    assert renumber("A [1]. B [2, 3]. C [2-4]. D [1;2].", m) == "A [3]. B [1, 2]. C [1, 2, 5]. D [1, 3]."
    # 7 did not make the merged list: dropped, not left pointing at another source
    assert renumber("E [7]. F [1, 7].", m) == "E. F [3]."
    assert renumber("no citations [x] here", m) == "no citations [x] here"


def _classification(p):
    c = classify(QUESTION)
    from dataclasses import replace

    return replace(c, probabilities=p, primary=max(p, key=p.get))


def _blend(engine, mode):
    p = {D: 0.45, T: 0.40, B: 0.10, M: 0.05}
    events = list(stream_blend(engine, QUESTION, mode=mode, classification=_classification(p)))
    return next(e.result for e in events if isinstance(e, BlendFinished))


def _cited_keys(text: str, sources) -> list[str]:
    by_n = {s.n: source_key(s) for s in sources}
    return [by_n[int(n)] for g in CITE.findall(text) for n in g.split(", ")]


def _sections(text: str, hosts) -> dict[HostParadigm, str]:
    heads = {h: text.index(f"### {PROFILES[h].emoji} {PROFILES[h].label}") for h in hosts}
    order = sorted(heads, key=heads.get)
    return {h: text[heads[h]: heads[order[i + 1]] if i + 1 < len(order) else len(text)]
            for i, h in enumerate(order)}


@pytest.mark.parametrize("mode", ["collaborative", "sequential"])
def test_offline_blend_citations_point_at_the_merged_list(seeded_store, mode):
    result = _blend(Engine(Settings(provider="offline"), store=seeded_store), mode)
    parts = result.parts.results
    # the hosts' own lists number the same sources differently: renumbering is needed
    own = {h: {s.n: source_key(s) for s in parts[h].sources} for h in (D, T)}
    assert own[D] != own[T]
    merged_n = {source_key(s): s.n for s in result.sources}
    assert len(merged_n) == len(result.sources)  # deduplicated
    checked = 0
    for h, section in _sections(result.text, (D, T)).items():
        keys = _cited_keys(section, result.sources)
        mine = _cited_keys(parts[h].text, parts[h].sources)
        assert keys and keys == mine[: len(keys)]  # the same sources, in the same order
        checked += len(keys)
    assert checked >= 2


def test_online_synthesis_gets_the_parts_cited_against_the_merged_list(openai_server, seeded_store):
    engine = Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                    store=seeded_store, tools=False)

    def respond(req: RecordedRequest) -> Reply:
        system = req.messages[0]["content"]
        if system.startswith("You combine"):
            return Reply.say("Unified answer.")
        found = re.search(r"the (DOLORES|TEDDY) paradigm", system)
        return Reply.say(f"{found.group(1).lower()} first [1], second [2], both [1, 2].")

    openai_server.respond_with(respond)
    result = _blend(engine, "weighted")
    prompt = openai_server.chat_requests[-1].messages[-1]["content"]
    for h in (D, T):
        own = {s.n: source_key(s) for s in result.parts.results[h].sources}
        line = re.search(rf"{h.value} first .*", prompt).group(0)
        keys = _cited_keys(line, result.sources)
        assert keys == [own[1], own[2], own[1], own[2]]
