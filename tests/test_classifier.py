"""The four-host classifier: probabilities, decisions, heuristics, and accuracy on held-out data.

The accuracy tests use the real local embedding model (all-MiniLM-L6-v2) and the real hashing
embedder on tests/data/classify_labelled.jsonl; they can fail if the classifier regresses.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.memory.embeddings import HashingEmbedder, LocalEmbedder
from fourhosts_jupyter.paradigms import HOSTS, HostParadigm, Phase

# By module path: the package re-exports the function ``classify`` under the same name.
C = importlib.import_module("fourhosts_jupyter.classifier")
Effort, QueryType, PyramidLayer = C.Effort, C.QueryType, C.PyramidLayer
D, T, B, M = HostParadigm.DOLORES, HostParadigm.TEDDY, HostParadigm.BERNARD, HostParadigm.MAEVE

DATA = Path(__file__).parent / "data" / "classify_labelled.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]
MIXED = json.loads(
    (Path(C.__file__).parent / "data" / "classifier" / "mixed.json").read_text("utf-8")
)["questions"]

# Accuracy floors on the held-out half (181 questions), a few points under what is measured
# (2026-11-30: local model 0.972, hashing fallback 0.923), so a real regression of ~4
# questions fails. The local model is the default; the hashing embedder is the fallback when
# the model cannot load.
LOCAL_FLOOR = 0.95
HASHING_FLOOR = 0.90

# The four examples from the original's implementation guide, one per host.
GUIDE = [
    ("How can I implement a zero-waste lifestyle starting today?", D),
    ("What are all the considerations for remote work policies?", T),
    ("Analyze the theoretical frameworks behind machine learning", B),
    ("How to gain competitive advantage in the SaaS market?", M),
]


@pytest.fixture(scope="module")
def local():
    return LocalEmbedder()


@pytest.fixture(scope="module")
def hashing():
    return HashingEmbedder()


def _probs(c) -> list[float]:
    return [c.probabilities[h] for h in HOSTS]


# --- probabilities and decisions -------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "How do we cut traffic deaths in half within five years?",
        "Why do some schools outperform others with the same funding?",
        "tea",
        "What are all the risks of moving patient records to the cloud?",
    ],
)
def test_probabilities_sum_to_one_and_ranked_is_sorted(question, local, hashing):
    for emb in (local, hashing):
        c = C.classify(question, embedder=emb)
        assert list(c.probabilities) == list(HOSTS)  # host order
        assert math.isclose(sum(_probs(c)), 1.0, abs_tol=1e-9)
        assert all(0.0 <= p <= 1.0 for p in _probs(c))
        ps = [c.probabilities[h] for h in c.ranked]
        assert ps == sorted(ps, reverse=True) and set(c.ranked) == set(HOSTS)
        assert c.reason  # never silent
        assert c.method == "embedding+keyword" and c.embedder == emb.name


def test_decide_thresholds_secondary_blend_and_explicit_default():
    ranked, dominant, secondary, blend, primary, reason = C.decide(
        {D: 0.05, T: 0.62, B: 0.05, M: 0.28}
    )
    assert ranked[:2] == (T, M) and dominant is T and primary is T
    assert secondary == (M,) and blend == ()
    assert reason.startswith("dominant: teddy at 62%") and "secondary: maeve 28%" in reason

    ranked, dominant, secondary, blend, primary, reason = C.decide(
        {D: 0.10, T: 0.40, B: 0.05, M: 0.45}
    )
    assert dominant is M and blend == (M, T) and secondary == (T,)
    assert "blend: maeve 45% + teddy 40%" in reason

    ranked, dominant, secondary, blend, primary, reason = C.decide(
        {D: 0.20, T: 0.15, B: 0.31, M: 0.34}
    )
    assert dominant is None and primary is C.DEFAULT_HOST is B
    assert secondary == (M, B) and blend == ()
    assert reason == "no host reached 40% (top: maeve 34%, bernard 31%); defaulting to bernard"

    # exactly at the thresholds: 0.4 is dominant, 0.35 blends, 0.25 is not secondary
    _, dominant, secondary, blend, _, _ = C.decide({D: 0.40, T: 0.35, B: 0.25, M: 0.0})
    assert dominant is D and blend == (D, T) and secondary == (T,)


@pytest.mark.parametrize("question", ["Paris", "Bananas and ferries"])
def test_no_dominant_host_gives_the_explicit_default_with_its_reason(question, hashing):
    # Inputs with no stance at all (hashing embedder: exactly reproducible) reach no 40% host.
    c = C.classify(question, embedder=hashing)
    assert c.dominant is None and c.is_default and not c.forced
    assert c.primary is HostParadigm.BERNARD
    top, second = c.ranked[:2]
    assert c.reason == (
        f"no host reached 40% (top: {top} {round(c.probabilities[top] * 100)}%, "
        f"{second} {round(c.probabilities[second] * 100)}%); defaulting to bernard"
    )


def test_forced_paradigm_keeps_probabilities_and_says_so(local):
    question = "How to gain competitive advantage in the SaaS market?"
    free = C.classify(question, embedder=local)
    forced = C.classify(question, paradigm="teddy", embedder=local)
    assert forced.primary is T and forced.forced and not forced.is_default
    assert forced.method.startswith("forced")
    assert forced.probabilities == free.probabilities  # still computed, unchanged
    assert forced.dominant is M
    assert forced.reason.startswith("forced: teddy") and "maeve" in forced.reason
    # house aliases and stance words are accepted
    assert C.classify(question, paradigm="Hufflepuff", embedder=local).primary is T
    assert C.classify(question, paradigm=HostParadigm.BERNARD, embedder=local).primary is B


def test_bad_paradigm_effort_and_empty_question_raise_config_errors(hashing):
    with pytest.raises(ConfigError, match="unknown paradigm 'gandalf': use one of dolores"):
        C.classify("How?", paradigm="gandalf", embedder=hashing)
    with pytest.raises(ConfigError, match="effort 'extreme' is out of range"):
        C.classify("How?", effort="extreme", embedder=hashing)
    for empty in ("", "   \n\t "):
        with pytest.raises(ConfigError, match="^the question is empty: type a question"):
            C.classify(empty, embedder=hashing)


def test_effort_override_and_recommendation(hashing):
    question = "What is the capital of Estonia?"
    assert C.classify(question, embedder=hashing).effort is Effort.LOW
    assert C.classify(question, effort="HIGH", embedder=hashing).effort is Effort.HIGH
    assert C.classify(question, effort=Effort.MEDIUM, embedder=hashing).effort is Effort.MEDIUM


def test_a_failing_embedder_falls_back_to_keywords_and_says_so():
    class Unreachable:  # stands in for a remote embedding service that is down
        name = "unreachable-embedder"
        dim = 384

        def embed(self, texts):
            raise ConnectionError("connection refused")

    c = C.classify(
        "What are the risks and safeguards for every stakeholder?", embedder=Unreachable()
    )
    assert c.method == "keyword" and "ConnectionError" in c.scores["embedding_error"]
    assert math.isclose(sum(_probs(c)), 1.0) and c.ranked[0] is T


def test_prototypes_are_embedded_once_per_embedder():
    class CountingHashing(HashingEmbedder):
        name = "hashing-counting-test"

        def __init__(self):
            self.texts = 0

        def embed(self, texts):
            self.texts += len(texts)
            return super().embed(texts)

    emb = CountingHashing()
    n_exemplars = sum(len(v) for v in C.exemplars().values())
    C.classify("How do we start today?", embedder=emb)
    assert emb.texts == n_exemplars + 1
    C.classify("Why does this happen?", embedder=emb)
    C.classify("Why does this happen?", embedder=emb)  # repeated question: cached
    assert emb.texts == n_exemplars + 2


def test_to_dict_is_json_with_probabilities_by_host_value(hashing):
    d = C.classify("Why has productivity growth slowed?", embedder=hashing).to_dict()
    again = json.loads(json.dumps(d))
    assert list(again["probabilities"]) == ["dolores", "teddy", "bernard", "maeve"]
    assert again["primary"] in again["probabilities"] and again["reason"]


# --- keyword rules and heuristics: word boundaries ---------------------------------------------


def test_keyword_rules_follow_the_brief_with_word_boundaries():
    uniform = C.keyword_probabilities("I ask because knowledge matters")  # no 'use', no 'edge'
    assert all(math.isclose(p, 0.25) for p in uniform.values())
    # implement (0.3) + intent (0.1): scores 0.65, 0.25, 0.25, 0.25 → normalised
    p = C.keyword_probabilities("implement it")
    assert math.isclose(p[D], 0.65 / 1.4) and math.isclose(p[T], 0.25 / 1.4)
    # each match counts: two 0.3 words for maeve + strategy intent
    p = C.keyword_probabilities("strategy to control")
    assert math.isclose(p[M], (0.25 + 0.6 + 0.1) / (0.95 + 0.75))
    # natural inflections count; substrings inside other words do not
    assert C.keyword_probabilities("implementing the implementation")[D] > 0.4
    assert math.isclose(C.keyword_probabilities("the rebuildable shortchanged cowedge")[D], 0.25)


def test_heuristics_use_word_boundaries():
    assert C.phase("I ask because I care") is Phase.DISCOVERY  # 'use' inside 'because'
    assert C.phase("How do we use the new tool?") is Phase.VALIDATION
    assert C.phase("Where can I find the data?") is Phase.EXPLORATION
    assert C.phase("Summarize the findings") is Phase.SYNTHESIS
    assert C.phase("What is the problem, and how do we implement a fix?") is Phase.DISCOVERY
    assert C.query_type("Which VScode plugins help?") is QueryType.EXPLORATORY  # not 'vs'
    assert C.query_type("Python vs Rust for data work") is QueryType.COMPARATIVE


def test_query_type_order_effort_and_complexity():
    assert C.query_type("What is inflation and why does it matter?") is QueryType.FACTUAL  # order
    assert C.query_type("Explain why rents rise") is QueryType.ANALYTICAL
    assert C.query_type("Compare heat pumps and boilers") is QueryType.COMPARATIVE
    assert C.query_type("Ideas for a greener office") is QueryType.EXPLORATORY
    assert C.recommended_effort("How many people live in Oslo?") is Effort.LOW
    assert C.recommended_effort("Evaluate the new policy") is Effort.HIGH
    assert C.recommended_effort("Pros and cons of remote work") is Effort.MEDIUM
    assert C.recommended_effort("Ideas for a greener office") is Effort.MEDIUM
    # 0.3 + 5/100 + 0.2 (exploratory) = 0.55
    assert math.isclose(C.complexity("Ideas for a greener office"), 0.55)
    # 0.3 + 0.06 + 0.4 (analytical) + 0.1 (impact of) + 0.1 (how does) → capped at 1.0
    assert math.isclose(C.complexity("How does the impact of rates compare"), 1.0)
    assert C.complexity("x " * 400) <= 1.0


def test_pyramid_layer():
    assert C.pyramid_layer("Do you remember the old system?") == (PyramidLayer.MEMORY, 0.8)
    assert C.pyramid_layer("Imagine a new park") == (PyramidLayer.IMPROVISATION, 0.7)
    assert C.pyramid_layer("What do we gain?") == (PyramidLayer.SELF_INTEREST, 0.6)
    assert C.pyramid_layer("This is painful") == (PyramidLayer.SUFFERING, 0.7)
    assert C.pyramid_layer("Tell me about tea") == (PyramidLayer.MEMORY, 0.3)
    assert C.pyramid_layer("regained") == (PyramidLayer.MEMORY, 0.3)  # not 'gain'


# --- accuracy and calibration on labelled data -------------------------------------------------


def test_labelled_set_is_large_balanced_split_and_not_copied_from_exemplars():
    assert len(ROWS) >= 240
    for host in HOSTS:
        rows = [r for r in ROWS if r["label"] == host.value]
        assert len(rows) >= 60
        held = sum(r["split"] == "heldout" for r in rows)
        assert 0.4 <= held / len(rows) <= 0.6
    assert {r["split"] for r in ROWS} == {"dev", "heldout"}
    norm = lambda q: " ".join(q.lower().split())
    exemplar_set = {norm(q) for qs in C.exemplars().values() for q in qs}
    assert not {norm(r["question"]) for r in ROWS} & exemplar_set
    assert len({norm(r["question"]) for r in ROWS}) == len(ROWS)


def _accuracy(embedder, split: str) -> tuple[float, np.ndarray]:
    rows = [r for r in ROWS if r["split"] == split]
    out = [C.classify(r["question"], embedder=embedder) for r in rows]
    acc = float(np.mean([c.ranked[0].value == r["label"] for c, r in zip(out, rows)]))
    return acc, np.array([max(_probs(c)) for c in out])


def test_heldout_accuracy_with_the_local_model(local):
    acc, top = _accuracy(local, "heldout")
    assert acc >= LOCAL_FLOOR, f"held-out accuracy {acc:.1%} < {LOCAL_FLOOR:.0%}"
    # calibrated, not near-uniform: most questions get a dominant host
    assert float(np.mean(top >= C.DOMINANT)) >= 0.97  # measured 0.994


def test_heldout_accuracy_with_the_hashing_fallback(hashing):
    acc, _ = _accuracy(hashing, "heldout")
    assert acc >= HASHING_FLOOR, f"hashing held-out accuracy {acc:.1%} < {HASHING_FLOOR:.0%}"


def test_mixed_questions_stay_mixed(local):
    held = [m for m in MIXED if m["split"] == "heldout"]
    cs = [C.classify(m["question"], embedder=local) for m in held]
    pair_ok = [{h.value for h in c.ranked[:2]} == set(m["hosts"]) for c, m in zip(cs, held)]
    assert np.mean(pair_ok) >= 0.75  # the two asked-for stances are the top two
    _, single_top = _accuracy(local, "heldout")
    mixed_top = np.array([max(_probs(c)) for c in cs])
    assert mixed_top.mean() < single_top.mean()  # less decisive than single-stance questions


@pytest.mark.parametrize(
    "question,pair",
    [
        (
            "How can we protect user privacy while still gaining a competitive edge in the market?",
            {T, M},
        ),
        (
            (
                "What are the risks of the new product, and how do we still get it launched this "
                "month?"
            ),
            {T, D},
        ),
    ],
)
def test_a_two_stance_question_blends(question, pair, local):
    c = C.classify(question, embedder=local)
    assert set(c.blend) == pair, c.probabilities
    assert all(c.probabilities[h] >= C.BLEND for h in pair)
    # both blends of this set are decided with a dominant host, and the reason names the blend
    assert c.dominant in pair and not c.is_default
    assert all(str(h) in c.reason.split("(blend: ", 1)[1] for h in pair), c.reason


@pytest.mark.parametrize("question,host", GUIDE)
def test_guide_examples_land_on_their_host(question, host, local):
    c = C.classify(question, embedder=local)
    assert c.primary is host and c.dominant is host, c.probabilities
    assert c.probabilities[host] >= 0.4
