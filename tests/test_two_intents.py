"""Two-intent questions: both hosts rank first and second with p ≥ 0.3, single-intent stays sharp.

Figures on the labelled sets with the real local model (all-MiniLM-L6-v2), measured 2026-11-30
(``python -m fourhosts_jupyter.bench classify``): two-intent dev 0.889 (32/36), held-out 0.967
(29/30, never tuned on); before this step 0.556 and 0.733. Single-intent accuracy dev 0.939,
held-out 0.972, dominant 1.000 / 0.994: unchanged, since the step never changes the top host.
Single-intent held-out questions with a second host ≥ 0.3: 0.061 before, 0.077 after.
Floors sit a few points under.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from fourhosts_jupyter import two_intents as TI
from fourhosts_jupyter.memory.embeddings import LocalEmbedder
from fourhosts_jupyter.paradigms import HOSTS, HostParadigm

C = importlib.import_module("fourhosts_jupyter.classifier")
DATA = Path(__file__).parent / "data"
D, T, B, M = HostParadigm.DOLORES, HostParadigm.TEDDY, HostParadigm.BERNARD, HostParadigm.MAEVE

TWO_DEV_FLOOR = 0.83
TWO_HELDOUT_FLOOR = 0.90
FALSE_TWO_CEILING = 0.10  # single-intent held-out questions that get a second host ≥ 0.3


def _jsonl(name: str) -> list[dict]:
    return [json.loads(x) for x in (DATA / name).read_text("utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def local():
    return LocalEmbedder()


def _both_top_two(c, hosts) -> bool:
    pair = {HostParadigm(h) for h in hosts}
    return set(c.ranked[:2]) == pair and all(c.probabilities[h] >= 0.3 for h in pair)


def test_the_sets_cover_all_six_pairs_in_several_styles():
    for name in ("classifier_two_intent_dev.jsonl", "classifier_two_intent_heldout.jsonl"):
        rows = _jsonl(name)
        pairs = {frozenset(r["hosts"]) for r in rows}
        assert len(pairs) == 6 and all(len(p) == 2 for p in pairs)
        assert len({r["style"] for r in rows}) >= 5
    dev = {r["question"] for r in _jsonl("classifier_two_intent_dev.jsonl")}
    held = {r["question"] for r in _jsonl("classifier_two_intent_heldout.jsonl")}
    assert not dev & held


@pytest.mark.parametrize(
    "name,floor",
    [("classifier_two_intent_dev.jsonl", TWO_DEV_FLOOR),
     ("classifier_two_intent_heldout.jsonl", TWO_HELDOUT_FLOOR)],
)  # fmt: skip
def test_two_intent_questions_rank_both_hosts_first_and_second(name, floor, local):
    rows = _jsonl(name)
    ok = [_both_top_two(C.classify(r["question"], embedder=local), r["hosts"]) for r in rows]
    assert float(np.mean(ok)) >= floor, f"{name}: {np.mean(ok):.3f} < {floor}"


def test_the_issue_example_gets_both_hosts(local):
    # Before the two-intent step: dolores 0.25, teddy 0.75 on the first; dolores ≈ 1.0 on the
    # second (teddy 0.01) — one host near 1.0 and the other far below.
    for q in (
        "We need the new payroll system live by Friday. Which employees could be harmed by the "
        "switch and what safeguards do they need?",
        "How should the council act fast on the heatwave shelters, and protect the most "
        "vulnerable residents?",
    ):
        c = C.classify(q, embedder=local)
        assert _both_top_two(c, ["dolores", "teddy"]), c.probabilities
        assert c.scores["two_intents"]["hosts"][1] in ("dolores", "teddy")
        assert set(c.blend) == {D, T}  # both reach the blend threshold


def test_single_intent_questions_stay_sharp(local):
    rows = [r for r in _jsonl("classify_labelled.jsonl") if r["split"] == "heldout"]
    cs = [C.classify(r["question"], embedder=local) for r in rows]
    acc = np.mean([c.ranked[0].value == r["label"] for c, r in zip(cs, rows)])
    dominant = np.mean([max(c.probabilities.values()) >= C.DOMINANT for c in cs])
    false_two = np.mean([sorted(c.probabilities.values())[-2] >= 0.3 for c in cs])
    assert acc >= 0.95 and dominant >= 0.9, (acc, dominant)
    assert false_two <= FALSE_TWO_CEILING, false_two


def test_segments_split_on_joins_and_drop_short_pieces():
    q = "How do we launch the scheme this month while protecting the most vulnerable riders?"
    assert TI.segments(q) == [
        "How do we launch the scheme this month",
        "while protecting the most vulnerable riders?",
    ]
    assert TI.segments("Analyze why our scores dropped after the redesign.") == []
    assert TI.segments("Is the 10,000 steps a day target backed by science?") == []


def test_detect_needs_a_segment_led_by_another_host_above_tau():
    whole = np.array([0.7, 0.2, 0.05, 0.05])
    agree = np.array([[0.9, 0.05, 0.03, 0.02], [0.8, 0.1, 0.05, 0.05]])
    assert TI.detect(whole, agree, ["a b c d", "e f g h"]) is None
    weak = np.array([[0.9, 0.05, 0.03, 0.02], [0.3, TI.TAU - 0.01, 0.05, 0.06]])
    assert TI.detect(whole, weak, ["a b c d", "e f g h"]) is None
    strong = np.array([[0.9, 0.05, 0.03, 0.02], [0.1, 0.05, 0.05, 0.8]])
    pair = TI.detect(whole, strong, ["a b c d", "e f g h"])
    assert (pair.first, pair.second, pair.segment) == (0, 3, "e f g h")


def test_lift_keeps_the_top_host_and_gives_both_at_least_0_35():
    rng = np.random.default_rng(7)
    for _ in range(200):
        p = rng.dirichlet(np.ones(len(HOSTS)))
        a = int(np.argmax(p))
        b = int(rng.choice([i for i in range(len(HOSTS)) if i != a]))
        q = TI.lift(p, TI.TwoIntents(a, b, "", 0.9))
        assert abs(q.sum() - 1) < 1e-9 and int(np.argmax(q)) == a
        assert q[a] >= TI.LAMBDA / 2 and q[b] >= TI.LAMBDA / 2
        assert q[a] >= C.DOMINANT  # the top host stays dominant
        assert sorted(q)[-2] == q[b]


ONE_CLAUSE_DEV_FLOOR = 0.75  # measured 0.792 (19/24) with detect_one_clause on; 0.125 off
EXAMPLE = "What is the quickest safe way to evacuate the flooded ward?"


def test_the_one_clause_sets_cover_all_six_pairs_in_one_clause():
    dev = _jsonl("classifier_two_intent_oneclause_dev.jsonl")
    held = _jsonl("classifier_two_intent_oneclause_heldout.jsonl")
    for rows in (dev, held):
        assert len({frozenset(r["hosts"]) for r in rows}) == 6
        assert all(TI.segments(r["question"]) == [] for r in rows)  # nothing for detect() to cut
    assert not {r["question"] for r in dev} & {r["question"] for r in held}


def test_detect_one_clause_needs_the_second_hosts_own_words():
    whole = np.array([0.8, 0.15, 0.03, 0.02])
    assert TI.detect_one_clause(whole, np.array([1, 0, 0, 0]), "q") is None  # one host's words
    strong = TI.detect_one_clause(whole, np.array([0, 0, 0, 2]), "q")  # two of maeve's words
    assert (strong.first, strong.second) == (0, 3)
    weak = TI.detect_one_clause(whole, np.array([1, 1, 0, 0]), "q")  # one word each, teddy p ≥ 0.1
    assert (weak.first, weak.second) == (0, 1)
    low = np.array([0.95, 0.03, 0.01, 0.01])
    assert TI.detect_one_clause(low, np.array([1, 1, 0, 0]), "q") is None  # one word, p too low


def test_one_clause_two_intent_questions_when_the_step_is_on(local, monkeypatch):
    assert not TI.ONE_CLAUSE  # off by default: see two_intents.py for the held-out trade
    assert not _both_top_two(C.classify(EXAMPLE, embedder=local), ["dolores", "teddy"])
    monkeypatch.setattr(TI, "ONE_CLAUSE", True)
    c = C.classify(EXAMPLE, embedder=local)
    assert _both_top_two(c, ["dolores", "teddy"]) and set(c.blend) == {D, T}, c.probabilities
    rows = _jsonl("classifier_two_intent_oneclause_dev.jsonl")
    ok = [_both_top_two(C.classify(r["question"], embedder=local), r["hosts"]) for r in rows]
    assert float(np.mean(ok)) >= ONE_CLAUSE_DEV_FLOOR, np.mean(ok)
