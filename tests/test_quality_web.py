"""Healing over the web tools when they are configured (issue 13): search_web for the host's
first angles, read_page for the top new results (the safe fetch, cache and write-back), then the
widened memory retrieval cites them. Offline engine, real store and embedding model, a loopback
server answering as SearXNG and serving the pages, all under the socket spy."""

from __future__ import annotations

import json

import net_guard
import pytest
from web_servers import Route, WebServer

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.events import AnswerReady, Evaluated, Healed, LayerFinished, Notice, RunFailed
from fourhosts_jupyter.quality.policy import QualityPolicy
from fourhosts_jupyter.tools import web

offline_network = net_guard.offline_network
WEAK = "How do I fix a sourdough loaf that stayed flat?"  # nothing in the demo corpus on it
COVERED = "How should a mid-size city cut traffic deaths in half within five years?"  # the demo corpus has it
SOURDOUGH_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Why your sourdough loaf is flat, and how to fix it | The Bread Lab</title>
<meta name="author" content="Maurizio Leo">
<meta property="og:site_name" content="The Bread Lab">
<meta property="article:published_time" content="2023-09-02T08:00:00+00:00">
</head><body>
<header><nav><a href="/">Home</a> <a href="/recipes">Recipes</a> <a href="/shop">Shop</a></nav></header>
<main><article>
<h1>Why your sourdough loaf is flat, and how to fix it</h1>
<p>A flat sourdough loaf is almost always a fermentation problem: the dough was under-proofed or
over-proofed, or the starter was not active enough when it was mixed in.</p>
<p>Feed the starter and use it at its peak, when it has doubled and smells sweet rather than sharp.
A sluggish starter leaves the dough without the gas it needs to rise in the oven.</p>
<p>Watch the bulk fermentation rather than the clock: the dough should grow by about half, feel
airy and show bubbles on its sides. In a cold kitchen this can take twice as long.</p>
<p>Shape the loaf with surface tension and proof it in a banneton; a slack shape spreads sideways.
Bake it in a preheated Dutch oven so the steam lets the crust expand before it sets.</p>
</article></main>
<footer><p>&copy; 2023 The Bread Lab. <a href="/privacy">Privacy</a></p></footer>
</body></html>
"""


@pytest.fixture(scope="module")
def embedder():
    from fourhosts_jupyter.memory.embeddings import get_embedder

    return get_embedder()


@pytest.fixture(autouse=True)
def _isolated(offline_network, monkeypatch):
    for name in ("FOURHOSTS_SEARXNG_URL", "TAVILY_API_KEY", "BRAVE_API_KEY", "EXA_API_KEY",
                 "FOURHOSTS_SEARCH_BACKENDS", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FOURHOSTS_FETCH_ALLOW_PRIVATE", "1")  # the pages are served on loopback
    web.SEARCH_BREAKERS.reset()
    yield
    web.SEARCH_BREAKERS.reset()
    assert offline_network.leaks == []


@pytest.fixture
def searxng():
    """SearXNG answering with two pages it also serves (the recorded news page, and a second one)."""
    server = WebServer({
        "/bread/flat-sourdough": Route(body=SOURDOUGH_HTML.encode(), headers={"Content-Type": "text/html; charset=utf-8"}),
        "/gone": Route(404, b"<html>not here</html>", {"Content-Type": "text/html"}),
    })
    results = {"query": WEAK, "number_of_results": 0, "results": [
        {"url": f"{server.url}/bread/flat-sourdough", "title": "Why your sourdough loaf is flat, and how to fix it",
         "content": "A flat sourdough loaf is almost always a fermentation problem ...",
         "engine": "duckduckgo", "publishedDate": "2023-09-02T00:00:00", "score": 4.0, "category": "general"},
        {"url": f"{server.url}/gone", "title": "Sourdough troubleshooting", "content": "Flat loaves ...",
         "engine": "brave", "publishedDate": None, "score": 1.0, "category": "general"},
    ]}
    server.routes["/search"] = Route(body=json.dumps(results).encode(), headers={"Content-Type": "application/json"})
    with server:
        yield server


def _run(store, embedder, paradigm="dolores", question=WEAK, top_k=5, low_confidence=0.35) -> list:
    policy = QualityPolicy(collaboration=False, low_confidence=low_confidence)
    engine = Engine(Settings(provider="offline", top_k=top_k, quality=policy), store=store, embedder=embedder)
    events = list(engine.stream(question, paradigm=paradigm))
    assert not [e for e in events if isinstance(e, RunFailed)], events[-1]
    return events


def test_a_weak_answer_heals_with_a_page_from_the_web(searxng, store, embedder, monkeypatch, capsys):
    from fourhosts_jupyter import cli

    monkeypatch.setenv("FOURHOSTS_SEARXNG_URL", searxng.url)
    events = _run(store, embedder)  # nothing on sourdough in memory: the first answer has no sources
    first = next(e for e in events if isinstance(e, Evaluated)).evaluation
    healed = next(e for e in events if isinstance(e, Healed))
    assert first.sources_cited == 0 and healed.before == first.confidence
    assert healed.kept and healed.after > healed.before and healed.added_sources >= 1
    answer = next(e for e in events if isinstance(e, AnswerReady)).answer
    page = f"{searxng.url}/bread/flat-sourdough"
    cited = {s.origin: s for s in answer.sources}
    assert page in cited and cited[page].date == "2023-09-02"
    assert "starter" in answer.text  # quoted from the page
    assert searxng.hits("/search") == 2 and searxng.hits("/bread/flat-sourdough") == 1  # bounded: 2 angles
    # the Healing stage line says where the pages came from; /gone failed and is a notice
    assert "(+ 1 page from the web)" in healed.detail
    finished = [e for e in events if isinstance(e, LayerFinished) and e.layer == "healing"]
    assert "+ 1 page from the web" in finished[0].detail
    assert any("reading" in n.message and "/gone" in n.message for n in events if isinstance(n, Notice))
    record = store.get_run(answer.run_id)["evaluation"]["healing"][0]
    assert record["before"] == healed.before and record["after"] == healed.after
    assert [q["backend"] for q in record["web"]["queries"]] == ["searxng", "searxng"]
    assert all(q["query"].startswith(WEAK) for q in record["web"]["queries"])
    assert [p["url"] for p in record["web"]["pages"]] == [page] and record["web"]["pages"][0]["saved"]
    assert cli.main(["show", answer.run_id, "--store", str(store.path)]) == 0
    assert "healed answer kept (+ 1 page from the web)" in capsys.readouterr().out


def test_without_a_back_end_configured_no_web_request_is_made(searxng, store, embedder):
    events = _run(store, embedder)  # FOURHOSTS_SEARXNG_URL unset; ddgs is installed but not named
    healed = next(e for e in events if isinstance(e, Healed))
    assert searxng.requests == []
    assert "from the web" not in healed.detail and healed.added_sources == 0
    answer = next(e for e in events if isinstance(e, AnswerReady)).answer
    assert "web" not in store.get_run(answer.run_id)["evaluation"]["healing"][0]


def test_a_host_not_offered_search_web_does_not_search_it(searxng, store, embedder, monkeypatch):
    monkeypatch.setenv("FOURHOSTS_SEARXNG_URL", searxng.url)
    _run(store, embedder, paradigm="bernard")  # Bernard searches the literature, not the web
    assert searxng.requests == []


def test_a_failing_back_end_still_heals_over_memory_with_the_failure_noted(searxng, seeded_store, embedder,
                                                                          monkeypatch):
    searxng.routes["/search"] = Route(503, b"<html>upstream down</html>", {"Content-Type": "text/html"})
    monkeypatch.setenv("FOURHOSTS_SEARXNG_URL", searxng.url)
    # one source only, healing set to fire below 0.7: memory's extra angles have more to add
    events = _run(seeded_store, embedder, question=COVERED, top_k=1, low_confidence=0.7)
    healed = next(e for e in events if isinstance(e, Healed))
    assert searxng.hits("/search") >= 1 and searxng.hits("/bread/flat-sourdough") == 0
    notes = [n.message for n in events if isinstance(n, Notice) and "web search failed" in n.message]
    assert notes and "HTTP 503" in notes[0] and "healing goes on over memory" in notes[0]
    assert "from the web" not in healed.detail
    answer = next(e for e in events if isinstance(e, AnswerReady)).answer
    record = seeded_store.get_run(answer.run_id)["evaluation"]["healing"][0]
    assert record["web"]["pages"] == [] and record["web"]["queries"][0]["error"]
    assert record["after"] == healed.after and healed.added_sources >= 1  # memory alone widened it
    assert all(s.origin is None or "127.0.0.1" not in s.origin for s in answer.sources)


def test_a_bad_back_end_order_is_one_notice_naming_the_fix_and_healing_goes_on(searxng, store, embedder,
                                                                              monkeypatch):
    monkeypatch.setenv("FOURHOSTS_SEARXNG_URL", searxng.url)
    monkeypatch.setenv("FOURHOSTS_SEARCH_BACKENDS", "searxng,bing")
    events = _run(store, embedder)
    notes = [n.message for n in events if isinstance(n, Notice) and "the web is not searched" in n.message]
    assert len(notes) == 1 and "unknown search back-ends (bing)" in notes[0] and "comma-separated" in notes[0]
    assert next(e for e in events if isinstance(e, Healed)).added_sources == 0 and searxng.requests == []
