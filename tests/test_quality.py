"""The evaluation stage, self-healing and host collaboration (quality/), end to end through the
engine: the offline engine over a real seeded store and the real embedding model, and a model
path through the official client against the loopback scripted server."""

from __future__ import annotations

import json

import pytest
from openai_server import Reply

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.events import (
    AnswerReady,
    AnswerRevised,
    Collaborated,
    Evaluated,
    Healed,
    Notice,
    RunFailed,
    Source,
)
from fourhosts_jupyter.paradigms import HostParadigm
from fourhosts_jupyter.quality import collaborate
from fourhosts_jupyter.quality.auc import auc, confidence_auc, labelled_answers
from fourhosts_jupyter.quality.checks import evaluate_offline
from fourhosts_jupyter.quality.policy import QualityPolicy

GOOD = "How should a mid-size city cut traffic deaths in half within five years?"
WEAK = "How do I fix a sourdough loaf that stayed flat?"  # nothing in the demo corpus on it


@pytest.fixture(scope="module")
def embedder():
    from fourhosts_jupyter.memory.embeddings import get_embedder

    return get_embedder()


def _run(engine: Engine, question: str, **kw) -> list:
    events = list(engine.stream(question, **kw))
    assert not [e for e in events if isinstance(e, RunFailed)], events[-1]
    return events


def _offline(store, embedder, **policy) -> Engine:
    return Engine(Settings(provider="offline", quality=QualityPolicy(**policy)), store=store, embedder=embedder)


# -- offline: healing -----------------------------------------------------------------------


def test_a_weak_answer_triggers_healing_and_the_run_log_keeps_confidence_before_and_after(seeded_store, embedder):
    engine = _offline(seeded_store, embedder)
    events = _run(engine, WEAK)
    first = next(e for e in events if isinstance(e, Evaluated))
    assert first.evaluation.confidence < 0.35 and first.evaluation.sources_cited == 0
    healed = [e for e in events if isinstance(e, Healed)]
    assert len(healed) == 1  # at most one round by default
    assert healed[0].trigger.startswith("low_confidence")
    assert healed[0].before == first.evaluation.confidence
    # nothing on sourdough anywhere: the extra angles find nothing on topic, and it says so
    assert healed[0].added_sources == 0 and not healed[0].kept and healed[0].after < 0.35
    answer = next(e for e in events if isinstance(e, AnswerReady)).answer
    run = seeded_store.get_run(answer.run_id)
    assert run["confidence"] == pytest.approx(answer.confidence)
    record = run["evaluation"]
    assert record["healing"][0]["before"] == healed[0].before
    assert record["healing"][0]["after"] == healed[0].after
    logged = [e["type"] for e in run["events"]]
    assert logged.count("evaluated") == 2 and "healed" in logged


def test_fourhosts_show_prints_the_confidence_and_the_healing_round(seeded_store, embedder, capsys):
    from fourhosts_jupyter import cli

    events = _run(_offline(seeded_store, embedder, collaboration=False), WEAK)
    run_id = next(e for e in events if isinstance(e, AnswerReady)).answer.run_id
    assert cli.main(["show", run_id, "--store", str(seeded_store.path)]) == 0
    out = capsys.readouterr().out
    assert "Confidence 0.00 (0 of 0 claims supported, 0 sources" in out
    assert "Healing (low_confidence (0.00 < 0.35)): confidence 0.00 → 0.00, first answer kept" in out


def test_a_good_answer_is_not_healed(seeded_store, embedder):
    events = _run(_offline(seeded_store, embedder), GOOD)
    ev = next(e for e in events if isinstance(e, Evaluated)).evaluation
    assert ev.confidence >= 0.5 and ev.sources_cited >= 3
    assert not [e for e in events if isinstance(e, (Healed, AnswerRevised))]


def test_healing_widens_a_thin_answer_and_keeps_it_when_it_scores_higher(seeded_store, embedder):
    # one source only: healing (here set to fire below 0.7) adds on-topic sources through the angles
    engine = Engine(Settings(provider="offline", top_k=1, quality=QualityPolicy(low_confidence=0.7, collaboration=False)),
                    store=seeded_store, embedder=embedder)
    events = _run(engine, GOOD)
    healed = next(e for e in events if isinstance(e, Healed))
    assert healed.added_sources >= 1
    assert healed.kept == (healed.after > healed.before)
    answer = next(e for e in events if isinstance(e, AnswerReady)).answer
    if healed.kept:
        revised = next(e for e in events if isinstance(e, AnswerRevised))
        assert answer.text == revised.text and len(answer.sources) == 1 + healed.added_sources


def test_triggers_are_configurable(seeded_store, embedder):
    engine = _offline(seeded_store, embedder, triggers=("too_short",), collaboration=False)
    events = _run(engine, WEAK)
    assert not [e for e in events if isinstance(e, Healed)]  # long enough, and no other trigger is on
    with pytest.raises(Exception, match="unknown healing trigger"):
        QualityPolicy(triggers=("sometimes",))


# -- collaboration rules --------------------------------------------------------------------


def test_protection_check_rules_fire_below_their_threshold_and_not_above():
    asks = collaborate.requests(HostParadigm.MAEVE, 0.45, "How do we win this market?")
    teddy = [r for r in asks if r.helping is HostParadigm.TEDDY]
    assert teddy and teddy[0].reason == "protection_check" and teddy[0].priority == "high"
    assert not [r for r in collaborate.requests(HostParadigm.MAEVE, 0.55, "x") if r.helping is HostParadigm.TEDDY]
    # below 0.3 every request is high priority; 0.3–0.5 a non-protection request is medium
    assert {r.priority for r in collaborate.requests(HostParadigm.DOLORES, 0.2, "x")} == {"high"}
    bernard = collaborate.requests(HostParadigm.DOLORES, 0.4, "what to do")[0]
    assert bernard.helping is HostParadigm.BERNARD and bernard.priority == "medium"


def test_collaboration_merges_sources_without_duplicates():
    main = (Source(1, "a", "A", "alpha text"), Source(2, "b", "B", "beta text"))
    helper = (Source(1, "b", "B", "beta text"), Source(2, "c", "C", "gamma text"),
              Source(3, "a2", "A", "another passage of document A"))
    recs = collaborate.Recommendations(recommendations=[
        collaborate.Recommendation(text="one", sources=[1]), collaborate.Recommendation(text="two", sources=[2]),
        collaborate.Recommendation(text="three", sources=[2, 1, 9, 3])])
    sources, items = collaborate.merge(main, helper, recs)
    assert [(s.n, s.id) for s in sources] == [(1, "a"), (2, "b"), (3, "c")]
    assert items == [("one", [2]), ("two", [3]), ("three", [3, 2, 1])]


# -- the model path through the scripted server ----------------------------------------------

ANSWER = ("Lower speed limits cut injury crashes [1]. A high-injury network focuses the work [2]. "
          "Cities adopt multi-year action plans [3].")


def _judge(score: float, verdict: str = "VALID") -> Reply:
    one = {"score": score, "reason": "scored by the scripted judge"}
    return Reply.say(json.dumps({"completeness": one, "accuracy": one, "clarity": one, "verdict": verdict}))


def _model_engine(openai_server, store, embedder, **policy) -> Engine:
    settings = Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0,
                        quality=QualityPolicy(**policy))
    return Engine(settings, store=store, embedder=embedder, tools=None)


def test_the_model_judge_scores_through_one_structured_call(openai_server, seeded_store, embedder):
    openai_server.script(Reply.say(ANSWER), _judge(0.9))
    events = _run(_model_engine(openai_server, seeded_store, embedder, healing_rounds=0, collaboration=False),
                  GOOD, paradigm="bernard")
    ev = next(e for e in events if isinstance(e, Evaluated)).evaluation
    assert ev.judged_by == "model" and ev.verdict == "VALID"
    assert [m.name for m in ev.metrics] == ["completeness", "accuracy", "clarity"]
    judge_request = openai_server.chat_requests[1]
    assert "evaluate a research answer" in judge_request.messages[0]["content"]
    assert ANSWER in judge_request.messages[1]["content"]
    offline = evaluate_offline(GOOD, ANSWER, next(e for e in events if isinstance(e, AnswerReady)).answer.sources,
                               embedder=embedder)
    assert ev.confidence == pytest.approx(0.5 * offline.confidence + 0.45, abs=1e-3)


def test_invalid_judge_json_falls_back_to_the_offline_checks_with_a_notice(openai_server, seeded_store, embedder):
    openai_server.script(Reply.say(ANSWER), Reply.say("COMPLETENESS: 0.9\nACCURACY: 0.8"))
    events = _run(_model_engine(openai_server, seeded_store, embedder, healing_rounds=0, collaboration=False),
                  GOOD, paradigm="bernard")
    ev = next(e for e in events if isinstance(e, Evaluated)).evaluation
    assert ev.judged_by == "checks" and ev.verdict == ""
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert any("not the evaluation JSON" in n and "offline checks" in n for n in notes)


def test_invalid_verdict_sets_needs_improvement_and_heals_with_a_sharper_prompt(openai_server, seeded_store, embedder):
    better = ANSWER + " Speed cameras reduce speeding [1]."
    openai_server.script(Reply.say(ANSWER), _judge(0.8, "INVALID"), Reply.say(better), _judge(0.9))
    events = _run(_model_engine(openai_server, seeded_store, embedder, collaboration=False), GOOD, paradigm="bernard")
    healed = next(e for e in events if isinstance(e, Healed))
    assert healed.trigger == "needs_improvement" and healed.after > healed.before and healed.kept
    sharper = openai_server.chat_requests[2].messages[-1]["content"]
    assert "judged weak (needs_improvement" in sharper and ANSWER in sharper
    assert next(e for e in events if isinstance(e, AnswerReady)).answer.text == better


def _recs(n: int) -> Reply:
    return Reply.say(json.dumps({"recommendations": [
        {"text": f"Safeguard {i}: protect people walking near schools", "sources": [1]} for i in range(n)]}))


def _quoting(judge_score: float, recommendations: int = 3):
    """A scripted model that answers by quoting the first sentence of each numbered source it
    is given (so its claims are supported), judges with ``judge_score`` and recommends."""
    import re

    def respond(req) -> Reply:
        system = req.messages[0]["content"]
        if "evaluate a research answer" in system:
            return _judge(judge_score)
        if "helping another" in system:
            return _recs(recommendations)
        user = req.messages[-1]["content"]
        quotes = [f"{m.group(2).split('. ')[0].rstrip('.')}. [{m.group(1)}]"
                  for m in re.finditer(r"^\[(\d+)\] [^\n]*\n([^\n]+)", user, re.M)]
        return Reply.say(" ".join(quotes[:4]) or "No sources.")

    return respond


def test_a_protection_check_collaboration_fires_when_its_rule_says_so(openai_server, seeded_store, embedder):
    # Maeve at confidence 0.3–0.5: maeve → bernard is medium (declined), maeve → teddy
    # (protection_check, threshold 0.5) is high and runs.
    openai_server.respond_with(_quoting(0.1))
    events = _run(_model_engine(openai_server, seeded_store, embedder, healing_rounds=0), GOOD, paradigm="maeve")
    conf = next(e for e in events if isinstance(e, Evaluated)).evaluation.confidence
    assert 0.3 <= conf < 0.5
    cards = [e for e in events if isinstance(e, Collaborated)]
    assert [(c.helping, c.status) for c in cards] == [("bernard", "declined"), ("teddy", "done")]
    assert cards[1].reason == "protection_check" and cards[1].recommendations == 3
    answer = next(e for e in events if isinstance(e, AnswerReady)).answer
    assert "**Collaborative insight from Teddy**" in answer.text
    assert answer.text.count("Safeguard") == 3
    prompt = openai_server.chat_requests[2].messages[1]["content"]
    assert "Maeve" in prompt and "Teddy" in prompt and "risks, safeguards" in prompt
    kept = seeded_store.memories()
    exchange = kept[kept["title"].fillna("").str.startswith("collaboration maeve → teddy")]
    assert set(exchange["namespace"]) == {"maeve", "teddy"}
    run = seeded_store.get_run(answer.run_id)
    assert [c["status"] for c in run["evaluation"]["collaboration"]] == ["declined", "done"]


def test_no_collaboration_above_the_thresholds(openai_server, seeded_store, embedder):
    openai_server.respond_with(_quoting(1.0))
    events = _run(_model_engine(openai_server, seeded_store, embedder, healing_rounds=0), GOOD, paradigm="maeve")
    assert next(e for e in events if isinstance(e, Evaluated)).evaluation.confidence >= 0.6
    assert not [e for e in events if isinstance(e, Collaborated)]
    assert len(openai_server.chat_requests) == 2


# -- confidence parts and the AUC -----------------------------------------------------------


def test_confidence_parts_count_claims_citations_sources_and_key_terms():
    sources = (Source(1, "a", "Speed", "Lower speed limits reduce injury crashes in cities."),
               Source(2, "b", "Bread", "Sourdough starters need a week of feeding before baking."))
    text = ("Lower speed limits reduce injury crashes [1]. Cities reduce crashes with lower limits [1]. "
            "Sourdough starters need feeding [2]. Traffic deaths fall with cameras [7].")
    ev = evaluate_offline("How do lower speed limits reduce traffic deaths?", text, sources)
    assert (ev.claims, ev.supported, ev.citations, ev.valid_citations, ev.sources_cited) == (4, 3, 4, 3, 2)
    assert ev.parts().startswith("3 of 4 claims supported, 1 of 4 citations name no source, 2 sources, key terms covered")
    assert ev.key_terms_covered < ev.key_terms  # "traffic", "deaths" only in the unsupported claim
    nothing = evaluate_offline("How do lower speed limits reduce traffic deaths?", "No evidence here.", sources)
    assert nothing.confidence == 0.0 and nothing.claims == 0


def test_auc_counts_wins_and_half_ties():
    assert auc([0.9, 0.8], [0.1, 0.85]) == 0.75
    assert auc([0.5], [0.5]) == 0.5


def test_confidence_ranks_relevant_sources_above_irrelevant_ones_on_a_labelled_set(embedder):
    from fourhosts_jupyter.memory.evaluate import load_queries

    corpus = load_queries("tests/data/retrieval_corpus.jsonl")
    queries = load_queries("tests/data/retrieval_queries.jsonl")[:8]
    answers = labelled_answers(corpus, queries, embedder=embedder, negatives="hard")
    result = confidence_auc(answers, embedder=embedder)
    assert len(result.scored) == 16
    # measured 0.79 on these 8 queries; 0.90 on all 75 (python -m fourhosts_jupyter.bench confidence)
    assert result.auc >= 0.75
    assert result.mean_relevant > result.mean_irrelevant + 0.2


# -- the cell view --------------------------------------------------------------------------


def test_the_cell_view_shows_confidence_healing_and_cards_escaped_and_replays_them():
    from fourhosts_jupyter.events import to_jsonable
    from fourhosts_jupyter.jupyter.view import RunState
    from fourhosts_jupyter.quality.evaluation import Evaluation

    first = Evaluation(confidence=0.1, claims=2, supported=1, sources_cited=1, key_terms=6, key_terms_covered=1)
    healed = Evaluation(confidence=0.45, claims=4, supported=3, sources_cited=2, key_terms=6, key_terms_covered=5)
    src = Source(1, "a", "Speed <b>limits</b>", "Lower limits cut crashes.")
    events = [
        Evaluated(first, "answer"), Evaluated(healed, "healed"),
        Healed("low_confidence (0.10 < 0.35)", 0.1, 0.45, True, 1, "1 more source <script>x</script>"),
        AnswerRevised("Lower limits cut crashes [1].", (src,), "healed"),
        Collaborated("maeve", "teddy", "protection_check", "high", "done", 0.45, 0.5, 3, "3 recommendations"),
    ]
    live = RunState()
    for e in events:
        live.apply(e)
    text, html = live.to_text(), live.to_html()
    assert "Confidence 0.45 (3 of 4 claims supported, 2 sources, key terms covered 5/6)" in text
    assert "Healing (low_confidence (0.10 < 0.35)): confidence 0.10 → 0.45, healed answer kept" in text
    assert "Collaboration: 🕊️ Maeve → 🛡️ Teddy · protection_check · high priority · done" in text
    assert "🩹 <b>Healing</b>" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert live.text == "Lower limits cut crashes [1]." and live.sources == (src,)
    stored = {"id": "r_1", "question": "q", "answer": live.text, "sources": [to_jsonable(src)],
              "events": [{"type": e.type, "payload": to_jsonable(e)} for e in events]}
    assert RunState.from_stored(stored).to_text() == text
