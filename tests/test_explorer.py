"""The paradigm explorer's logic, without a browser: state, explain(), overrides, the debounced
text box, the buttons, and ``%research explore``. Real classifier, real local model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import fourhosts_jupyter as fh
from fourhosts_jupyter.classifier import classify
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.explanation import Explanation
from fourhosts_jupyter.jupyter.explorer import MANUAL_REASON, Debouncer, Explorer
from fourhosts_jupyter.memory.embeddings import LocalEmbedder
from fourhosts_jupyter.paradigms import HOSTS, HostParadigm

D, T, B, M = HostParadigm.DOLORES, HostParadigm.TEDDY, HostParadigm.BERNARD, HostParadigm.MAEVE
TWO = "How do we launch the bike-share this month while protecting the most vulnerable riders?"
ANALYSIS = "Why do some cities attract tech firms? Explain the evidence and the causal factors."


@pytest.fixture(scope="module")
def local():
    return LocalEmbedder()


def _wait(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_text_is_settable_and_probabilities_are_the_classifiers(local):
    ex = Explorer(embedder=local)
    assert ex.classification is None and "(no question yet)" in repr(ex)
    ex.text = TWO
    expected = classify(TWO, embedder=local).probabilities
    # the explorer classifies with one BLAS thread: sums may differ in the last float32 bits
    assert ex.probabilities == pytest.approx(expected, abs=1e-6)
    assert {h for h, p in ex.probabilities.items() if p >= 0.3} == {D, T}
    text = ex._repr_mimebundle_()["text/plain"]
    assert TWO in text and "weights: classifier" in text and "Hosts [" in text


def test_explain_says_why_per_host(local):
    ex = Explorer(TWO, embedder=local)
    why = ex.explain()
    assert isinstance(why, Explanation) and [r.host for r in why.hosts] == list(HOSTS)
    teddy, dolores = why.host(T), why.host(D)
    assert "protecting" in teddy.keywords and {"protecting", "vulnerable"} <= set(teddy.cues)
    assert {"launch", "this month"} <= set(dolores.cues)
    # nearest exemplars: the host's own, most similar first, similarity = the cosine
    emb = local.embed([TWO])[0]
    for r in why.hosts:
        sims = [s for _, s in r.exemplars]
        assert len(sims) == 3 and sims == sorted(sims, reverse=True)
        q, s = r.exemplars[0]
        assert abs(float(local.embed([q])[0] @ emb) - s) < 1e-4
    # contributions are centred over the hosts, and agree with the raw scores' order
    for name in ("similarity", "keywords", "cues"):
        assert abs(sum(r.contributions[name] for r in why.hosts)) < 1e-9
    assert teddy.contributions["keywords"] > dolores.contributions["keywords"]
    assert any("two intents" in n for n in why.notes)
    frame = why.to_frame()
    assert list(frame.index) == [h.value for h in HOSTS] and frame.loc["teddy", "from cues"] > 0
    bundle = why._repr_mimebundle_()
    assert "protecting" in bundle["text/plain"] and "<table" in bundle["text/html"]


def test_explain_escapes_question_text(local):
    ex = Explorer("<script>alert(1)</script> why does our <b>model</b> fail?", embedder=local)
    html = ex.explain().html()
    assert "<script>" not in html and "<b>model" not in html


def test_override_is_renormalised_shown_as_manual_and_reset(local):
    ex = Explorer(TWO, embedder=local)
    before = ex.probabilities
    got = ex.override(maeve=3, dolores=1)
    assert got == {D: 0.25, T: 0.0, B: 0.0, M: 0.75} == ex.probabilities
    assert ex.manual and ex.host is M
    text = repr(ex)
    assert "weights: manual" in text and MANUAL_REASON in text and "75%" in text
    ex.reset()
    assert not ex.manual and ex.probabilities == before
    with pytest.raises(ConfigError, match="non-negative"):
        ex.override(dolores=-1)
    with pytest.raises(ConfigError, match="paradigm|host"):
        ex.override(nobody=1)
    ex.override(bernard=1)
    ex.text = ANALYSIS  # a new question drops the override
    assert not ex.manual
    fresh = classify(ANALYSIS, embedder=local).probabilities
    assert ex.probabilities == pytest.approx(fresh, abs=1e-6)


def test_explain_without_a_question_is_a_clear_error():
    with pytest.raises(ConfigError, match="no question yet"):
        Explorer().explain()


def test_typing_updates_the_bar_after_the_debounce(local):
    ex = Explorer(TWO, embedder=local, debounce=0.05)
    ex.widget()
    bar_before = ex.bar.value
    n = len(ex.update_ms)
    for i in range(1, len(ANALYSIS) + 1, 7):  # keystrokes faster than the debounce
        ex.text_box.value = ANALYSIS[:i]
    ex.text_box.value = ANALYSIS
    _wait(lambda: ex.text == ANALYSIS)
    time.sleep(0.2)
    assert len(ex.update_ms) == n + 1  # one classification for the whole burst
    assert ex.bar.value != bar_before and ex.classification.primary is B
    assert "Bernard" in ex.research_btn.description
    assert "<table" in ex.why.value
    sliders = {h: s.value for h, s in ex.sliders.items()}
    assert sliders == {h: round(p, 2) for h, p in ex.probabilities.items()}


def test_moving_a_slider_switches_to_manual(local):
    ex = Explorer(ANALYSIS, embedder=local)
    ex.widget()
    ex.sliders[M].value = 1.0
    assert ex.manual and "fh-explorer-mode-manual" in ex.mode.value
    probs = ex.probabilities
    assert abs(sum(probs.values()) - 1) < 1e-9 and probs[M] == max(probs.values())
    assert ex.host is M and "Maeve" in ex.research_btn.description
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "weights: manual" in bundle["text/plain"]


def test_compare_and_blend_run_into_the_output_area_offline(local, tmp_path):
    ex = Explorer(TWO, embedder=local, store=str(tmp_path / "s.duckdb"))
    ex.widget()
    comparison = ex.compare()
    assert ex.last_action == "compare"
    assert sorted(h.value for h in comparison.answers) == sorted(h.value for h in HOSTS)
    # the sliders choose the blend: Maeve and Bernard by hand, whatever the classifier said
    ex.override({"maeve": 0.5, "bernard": 0.4, "dolores": 0.05, "teddy": 0.05})
    blended = ex.blend()
    assert ex.last_action == "blend"
    assert [h.value for h in blended.plan.hosts] == ["maeve", "bernard"]
    assert blended.plan.weights[M] > blended.plan.weights[B] and blended.text.strip()


def test_research_as_runs_the_chosen_host_offline(local, tmp_path):
    ex = Explorer(TWO, embedder=local, store=str(tmp_path / "s.duckdb"))
    ex.widget()
    answer = ex.research_as("bernard")
    assert answer.classification.primary is B and answer.text.strip()
    assert ex.last_action == "research as bernard"


def test_debouncer_calls_once_after_the_last_trigger():
    calls = []
    d = Debouncer(0.05, lambda: calls.append(time.monotonic()))
    for _ in range(5):
        d.trigger()
    _wait(lambda: calls)
    time.sleep(0.15)
    assert len(calls) == 1


def test_research_explore_line_magic(local, tmp_path, monkeypatch):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    with capture_output():
        ex = ip.run_line_magic("research", f'explore "{ANALYSIS}"')
    assert isinstance(ex, Explorer) and ex.text == ANALYSIS
    assert ex.classification.primary is B
    assert isinstance(fh.explore(), fh.Explorer)
    assert np.isclose(sum(ex.probabilities.values()), 1)


class _BlasThreadsSeen:
    """The real local embedder, noting how many BLAS threads each embedding call may use."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.name, self.seen = inner, inner.name, []

    def embed(self, texts):  # noqa: ANN001, ANN201
        from threadpoolctl import threadpool_info

        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        self.seen.append(max(blas, default=1))
        return self.inner.embed(texts)


def test_an_update_embeds_with_one_blas_thread(local):
    # With one BLAS thread per core the encoder's threads spun on a busy machine: p95 2.5 s per
    # update (bench explorer); limited to one for the update, 149 ms on the same busy machine.
    from threadpoolctl import threadpool_limits

    spy = _BlasThreadsSeen(local)
    with threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core kernel
        Explorer("How do we cut waiting lists at the clinic this month without harm?", embedder=spy)
    assert spy.seen and set(spy.seen) == {1}
