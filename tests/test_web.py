"""search_web over each back-end and its fallback, read_page (HTML, PDF, refusals, long pages),
caching, and memory write-back — against loopback servers replaying recorded responses.

Every test runs under the socket spy (tests/net_guard.py) and asserts no connection left
loopback. DuckDuckGo (``ddgs``) speaks through its own Rust HTTP client, which the spy cannot
see, so it is left out of the back-end order here; test_fetch.py runs it in a network namespace.
"""

from __future__ import annotations

import asyncio
import json

import net_guard
import pytest
from web_servers import (
    BINARY,
    BRAVE_JSON,
    EXA_JSON,
    NEWS_HTML,
    REPORT_PDF,
    SEARXNG_JSON,
    TAVILY_JSON,
    Route,
    WebServer,
)

from fourhosts_jupyter.errors import FetchRefused, SearchUnavailable, UnsupportedContent, WebError
from fourhosts_jupyter.tools import web
from fourhosts_jupyter.tools.context import ParadigmAwareToolContext
from fourhosts_jupyter.tools.web import QUOTE_CLOSE, QUOTE_OPEN, read_page, search_web

offline_network = net_guard.offline_network  # the socket spy (a fixture), used by every test here
KEYS = {"TAVILY_API_KEY": "tvly-secret-123", "BRAVE_API_KEY": "brave-secret-456", "EXA_API_KEY": "exa-secret-789"}


@pytest.fixture(autouse=True)
def _isolated(offline_network, monkeypatch):
    for name in ("FOURHOSTS_SEARXNG_URL", "FOURHOSTS_TAVILY_URL", "FOURHOSTS_BRAVE_URL", "FOURHOSTS_EXA_URL",
                 "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", *KEYS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FOURHOSTS_SEARCH_BACKENDS", "searxng,tavily,brave,exa")
    monkeypatch.setenv("FOURHOSTS_FETCH_ALLOW_PRIVATE", "1")  # the pages are served on loopback
    web.SEARCH_BREAKERS.reset()
    yield
    web.SEARCH_BREAKERS.reset()
    assert offline_network.leaks == []


@pytest.fixture
def services():
    """One loopback server answering as SearXNG, Tavily, Brave and Exa, and serving pages."""
    long_text = " ".join(
        f"<p>Section {i}: the city of Hoboken measured pedestrian injuries at intersection {i} before and "
        f"after daylighting, and found that crashes fell by {10 + i % 30} percent within a year.</p>"
        for i in range(120)
    )
    with WebServer({
        "/search": Route(body=SEARXNG_JSON, headers={"Content-Type": "application/json"}),
        "/tavily/search": Route(body=TAVILY_JSON, headers={"Content-Type": "application/json"}),
        "/res/v1/web/search": Route(body=BRAVE_JSON, headers={"Content-Type": "application/json"}),
        "/exa/search": Route(body=EXA_JSON, headers={"Content-Type": "application/json"}),
        "/news/hoboken": Route(body=NEWS_HTML.encode(), headers={"Content-Type": "text/html; charset=utf-8"}),
        "/report.pdf": Route(body=REPORT_PDF, headers={"Content-Type": "application/pdf"}),
        "/download": Route(body=BINARY, headers={"Content-Type": "application/octet-stream"}),
        "/untyped": Route(body=BINARY),
        "/long": Route(body=f"<html><head><title>Intersection study</title></head><body><article>"
                            f"<h1>Intersection study</h1>{long_text}</article></body></html>".encode(),
                       headers={"Content-Type": "text/html"}),
        "/gone": Route(404, b"<html>not here</html>", {"Content-Type": "text/html"}),
    }) as server:
        yield server


def ctx(store=None, host="bernard", question=""):
    from fourhosts_jupyter.paradigms import HostParadigm

    return ParadigmAwareToolContext(paradigm=HostParadigm.parse(host), store=store, run_id="r1",
                                    question=question)


# -- each back-end ---------------------------------------------------------------------------


def test_searxng(services, monkeypatch):
    monkeypatch.setenv("FOURHOSTS_SEARXNG_URL", services.url)
    out = search_web("Vision Zero Hoboken", ctx(), k=5, recency="month", site="hobokennj.gov")
    assert out["backend"] == "searxng" and out["cached"] is False
    assert out["results"][0] == {
        "title": "How Hoboken went seven years without a traffic death",
        "url": "https://nyc.streetsblog.org/2024/03/11/how-hoboken-went-seven-years",
        "snippet": "Hoboken has not recorded a single traffic death since January 2017 ...",
        "published": "2024-03-11",
        "backend": "searxng",
    }
    assert out["results"][1]["published"] is None
    seen = services.requests[-1]
    assert seen.query == {"q": ["Vision Zero Hoboken site:hobokennj.gov"], "format": ["json"],
                          "time_range": ["month"]}


def test_tavily_through_its_client(services, monkeypatch):
    monkeypatch.setenv("TAVILY_API_KEY", KEYS["TAVILY_API_KEY"])
    monkeypatch.setenv("FOURHOSTS_TAVILY_URL", f"{services.url}/tavily")
    out = search_web("vision zero hoboken", ctx(), k=2, site="nj.com", recency="year")
    assert out["backend"] == "tavily"
    assert [r["url"] for r in out["results"]] == [
        "https://www.hobokennj.gov/resources/vision-zero",
        "https://www.nj.com/hudson/2024/01/hoboken-traffic-deaths.html",
    ]
    assert out["results"][1]["published"] == "2024-01-09"  # from an RFC 2822 date
    seen = services.requests[-1]
    body = json.loads(seen.body)
    assert seen.method == "POST" and seen.headers["authorization"] == f"Bearer {KEYS['TAVILY_API_KEY']}"
    assert (body["query"], body["max_results"], body["include_domains"], body["time_range"]) == (
        "vision zero hoboken", 2, ["nj.com"], "year")


def test_brave(services, monkeypatch):
    monkeypatch.setenv("BRAVE_API_KEY", KEYS["BRAVE_API_KEY"])
    monkeypatch.setenv("FOURHOSTS_BRAVE_URL", services.url)
    out = search_web("vision zero hoboken", ctx(), k=3, recency="week")
    assert out["backend"] == "brave"
    assert out["results"] == [{
        "title": "Vision Zero | City of Hoboken",
        "url": "https://www.hobokennj.gov/resources/vision-zero",
        "snippet": "Hoboken's Vision Zero Action Plan ...",  # tags and entities removed
        "published": "2023-09-14",
        "backend": "brave",
    }]
    seen = services.requests[-1]
    assert seen.headers["x-subscription-token"] == KEYS["BRAVE_API_KEY"]
    assert seen.query == {"q": ["vision zero hoboken"], "count": ["3"], "freshness": ["pw"]}


def test_exa_through_its_client(services, monkeypatch):
    monkeypatch.setenv("EXA_API_KEY", KEYS["EXA_API_KEY"])
    monkeypatch.setenv("FOURHOSTS_EXA_URL", f"{services.url}/exa")
    out = search_web("speed and crash deaths", ctx(), k=4, site="iihs.org")
    assert out["backend"] == "exa"
    assert out["results"] == [{
        "title": "Speed | IIHS-HLDI crash testing and highway safety",
        "url": "https://www.iihs.org/research-areas/speed",
        "snippet": "Speeding is a factor in more than a quarter of crash deaths ...",
        "published": "2023-11-02",
        "backend": "exa",
    }]
    seen = services.requests[-1]
    body = json.loads(seen.body)
    assert seen.headers["x-api-key"] == KEYS["EXA_API_KEY"]
    assert (body["query"], body["numResults"], body["includeDomains"]) == ("speed and crash deaths", 4, ["iihs.org"])


# -- order, fallback, breaker ----------------------------------------------------------------


def _all_configured(monkeypatch, services):
    monkeypatch.setenv("FOURHOSTS_SEARXNG_URL", services.url)
    monkeypatch.setenv("TAVILY_API_KEY", KEYS["TAVILY_API_KEY"])
    monkeypatch.setenv("FOURHOSTS_TAVILY_URL", f"{services.url}/tavily")
    monkeypatch.setenv("BRAVE_API_KEY", KEYS["BRAVE_API_KEY"])
    monkeypatch.setenv("FOURHOSTS_BRAVE_URL", services.url)
    monkeypatch.setenv("EXA_API_KEY", KEYS["EXA_API_KEY"])
    monkeypatch.setenv("FOURHOSTS_EXA_URL", f"{services.url}/exa")


def test_the_first_back_end_failing_falls_through_to_the_next(services, monkeypatch):
    _all_configured(monkeypatch, services)
    services.routes["/search"] = Route(500, b'{"error": "engine crashed"}', {"Content-Type": "application/json"})
    out = search_web("vision zero", ctx(), k=3)
    assert out["backend"] == "tavily"
    assert out["tried"] == [{"backend": "searxng", "error": "HTTP 500"}]
    assert [r.path for r in services.requests] == ["/search", "/tavily/search"]


def test_the_configured_order_is_followed(services, monkeypatch):
    _all_configured(monkeypatch, services)
    monkeypatch.setenv("FOURHOSTS_SEARCH_BACKENDS", "exa,brave")
    services.routes["/exa/search"] = Route(503, b"{}", {"Content-Type": "application/json"})
    out = search_web("vision zero", ctx(), k=3)
    assert out["backend"] == "brave"
    assert [r.path for r in services.requests] == ["/exa/search", "/res/v1/web/search"]


def test_a_failing_back_end_is_paused_by_its_breaker(services, monkeypatch):
    _all_configured(monkeypatch, services)
    services.routes["/search"] = Route(502, b"bad gateway", {"Content-Type": "text/plain"})
    for i in range(3):
        assert search_web(f"question {i}", ctx(), k=2)["backend"] == "tavily"
    assert services.hits("/search") == 3
    out = search_web("question 4", ctx(), k=2)
    assert services.hits("/search") == 3  # open circuit: not called
    assert out["tried"][0]["backend"] == "searxng" and "paused for" in out["tried"][0]["error"]


def test_every_back_end_failing_is_one_structured_error_without_keys(services, monkeypatch):
    _all_configured(monkeypatch, services)
    for path in ("/search", "/tavily/search", "/res/v1/web/search", "/exa/search"):
        services.routes[path] = Route(500, b'{"detail": "down"}', {"Content-Type": "application/json"})
    with pytest.raises(SearchUnavailable) as info:
        search_web("vision zero", ctx(), k=3)
    message = str(info.value)
    assert message.startswith("every search back-end failed (searxng: HTTP 500; tavily: ")
    assert "brave: HTTP 500; exa: " in message
    assert not any(key in message for key in KEYS.values())


def test_no_back_end_configured_says_what_to_set(monkeypatch):
    with pytest.raises(SearchUnavailable, match="set FOURHOSTS_SEARXNG_URL, TAVILY_API_KEY, BRAVE_API_KEY"):
        search_web("vision zero", ctx())


def test_an_unknown_back_end_name_is_a_clear_error(monkeypatch):
    from fourhosts_jupyter.errors import ConfigError
    from fourhosts_jupyter.tools.search_backends import configured_backends

    monkeypatch.setenv("FOURHOSTS_SEARCH_BACKENDS", "searxng,bing")
    with pytest.raises(ConfigError, match="unknown search back-ends \\(bing\\)"):
        configured_backends()


# -- caching ---------------------------------------------------------------------------------


def test_a_repeated_search_is_served_from_the_cache(services, monkeypatch, store):
    monkeypatch.setenv("FOURHOSTS_SEARXNG_URL", services.url)
    first = search_web("Vision Zero Hoboken", ctx(store), k=5)
    second = search_web("vision  zero hoboken", ctx(store), k=5)
    assert services.hits("/search") == 1
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["results"] == first["results"]
    search_web("vision zero hoboken", ctx(store), k=6)  # a different request
    assert services.hits("/search") == 2


def test_the_search_cache_can_be_turned_off(services, monkeypatch, store):
    monkeypatch.setenv("FOURHOSTS_SEARXNG_URL", services.url)
    monkeypatch.setenv("FOURHOSTS_WEB_SEARCH_TTL", "0")
    search_web("vision zero", ctx(store))
    search_web("vision zero", ctx(store))
    assert services.hits("/search") == 2


# -- read_page -------------------------------------------------------------------------------


def test_read_page_extracts_main_text_and_metadata(services, store):
    out = read_page(f"{services.url}/news/hoboken", ctx(store))
    text = out["text"]
    assert text.startswith(QUOTE_OPEN + "\n") and text.endswith("\n" + QUOTE_CLOSE)
    assert "has not recorded a single traffic death since January 2017" in text
    for boilerplate in ("Accept all", "Privacy policy", "Donate", "All rights reserved", "dataLayer",
                        "Bike lanes in Jersey City"):
        assert boilerplate not in text
    assert (out["title"], out["author"], out["date"], out["site"]) == (
        "How Hoboken went seven years without a traffic death", "Dana Rubinstein", "2024-03-11",
        "Streetsblog USA")
    assert out["note"].startswith("Quoted material from the web")
    assert out["remembered"] == {"saved": True, "passages": 1, "namespace": "bernard"}
    assert out["compressed"] is None and out["cached"] is False


def test_read_page_reads_a_pdf(services, store):
    out = read_page(f"{services.url}/report.pdf", ctx(store))
    assert "reduced fatal and serious" in out["text"]
    assert (out["title"], out["author"], out["date"], out["content_type"]) == (
        "Speed management evidence review", "International Transport Forum", "2023-06-15", "application/pdf")


@pytest.mark.parametrize("path", ["/download", "/untyped"])
def test_read_page_refuses_binary_files(services, path):
    with pytest.raises(UnsupportedContent, match="cannot be read|not a readable page"):
        read_page(f"{services.url}{path}", ctx())


def test_read_page_reports_http_errors(services):
    with pytest.raises(WebError, match="answered HTTP 404"):
        read_page(f"{services.url}/gone", ctx())


def test_a_second_read_is_served_from_the_cache(services, store):
    url = f"{services.url}/news/hoboken"
    read_page(url, ctx(store))
    again = read_page(url + "#comments", ctx(store))  # the same page
    assert services.hits("/news/hoboken") == 1 and again["cached"] is True
    assert "January 2017" in again["text"]


def test_a_page_cached_while_private_was_allowed_is_not_served_once_it_is_not(services, store, monkeypatch):
    url = f"{services.url}/news/hoboken"
    read_page(url, ctx(store))
    monkeypatch.delenv("FOURHOSTS_FETCH_ALLOW_PRIVATE")
    with pytest.raises(FetchRefused, match="loopback"):
        read_page(url, ctx(store))


def test_a_long_page_is_compressed_for_the_model_and_kept_whole_in_memory(services, store):
    from fourhosts_jupyter.context.tokens import count_tokens

    out = read_page(f"{services.url}/long", ctx(store, question="Did daylighting reduce crashes?"))
    assert out["compressed"]["tokens_in"] > 2 * web.PAGE_TOKENS
    assert count_tokens(out["text"]) < web.PAGE_TOKENS * 1.2
    assert out["remembered"]["passages"] >= 20  # the whole page went to memory


def test_read_page_refuses_metadata_through_the_runner(store):
    """Through the real runner: a structured error the model can act on, as a ToolCallFailed."""
    from fourhosts_jupyter.tools.registry import ToolRegistry
    from fourhosts_jupyter.tools.runner import ToolRunner

    registry = ToolRegistry()
    assert web.register_web_tools(registry)
    runner = ToolRunner(registry, host="bernard", offered={"read_page"})
    events = []
    outcome = asyncio.run(runner.run("c1", "read_page", '{"url": "http://169.254.169.254/latest/meta-data/"}',
                                     ctx(store), events.append))
    assert outcome.ok is False and outcome.status == "refused"
    assert json.loads(outcome.content)["error"].endswith("it is a cloud metadata address (always refused)")
    assert type(events[-1]).__name__ == "ToolCallFailed"


def test_page_text_is_escaped_in_the_cell(services):
    from fourhosts_jupyter.render import ToolCard, tool_card_html

    hostile = "<html><body><article><p>Speed limits save lives in every city that tries them. "
    hostile += "<img src=x onerror=alert(1)> &lt;script&gt;alert(2)&lt;/script&gt; more text follows here.</p>"
    hostile += "</article></body></html>"
    services.routes["/hostile"] = Route(body=hostile.encode(), headers={"Content-Type": "text/html"})
    out = read_page(f"{services.url}/hostile", ctx())
    assert "<script>alert(2)</script>" in out["text"]  # the page's text, as text
    card = ToolCard(call_id="c1", name="read_page", state="done", result=json.dumps(out))
    html = tool_card_html(card)
    assert "<script>" not in html and "&lt;script&gt;" in html


# -- write-back: the next question finds the page offline ------------------------------------


def test_a_read_page_is_found_by_the_next_question_offline(services, store, monkeypatch):
    from fourhosts_jupyter.engine import Engine

    read_page(f"{services.url}/news/hoboken", ctx(store, host="dolores"))
    services.httpd.shutdown()  # the web is gone
    monkeypatch.setenv("FOURHOSTS_SEARCH_BACKENDS", "searxng")  # and nothing to search it with
    from fourhosts_jupyter.config import Settings

    engine = Engine(Settings(store_path=store.path, provider="offline"), store=store)
    answer = engine.research("How did Hoboken go years without a traffic death? What should we do now?",
                             paradigm="dolores")
    origins = [s.origin for s in answer.sources]
    assert f"{services.url}/news/hoboken" in origins
    assert answer.sources[0].origin == f"{services.url}/news/hoboken"
    assert "[1]" in answer.text and "leading pedestrian interval" in answer.text  # quoted from the page


# -- registration ----------------------------------------------------------------------------


def test_the_web_tools_are_built_ins_when_the_extra_is_installed():
    from fourhosts_jupyter.tools.registry import ToolRegistry, default_registry

    assert {"search_web", "read_page"} <= set(default_registry().names())
    tool = default_registry().get("search_web")
    assert tool.builtin and tool.parameters["properties"]["recency"]["anyOf"][0]["enum"] == [
        "day", "week", "month", "year"]
    assert "ctx" not in tool.parameters["properties"]
    assert ToolRegistry().names() == []


def test_without_the_extra_they_are_not_registered_and_the_error_names_it(monkeypatch):
    from fourhosts_jupyter.errors import ConfigError
    from fourhosts_jupyter.tools.registry import ToolRegistry

    monkeypatch.setattr(web, "WEB_MODULES", ("httpx", "no_such_module_for_test"))
    registry = ToolRegistry()
    assert web.register_web_tools(registry) is False and registry.names() == []
    with pytest.raises(ConfigError, match=r"need no_such_module_for_test: pip install 'fourhosts-jupyter\[web\]'"):
        web.require_web()


def test_registering_the_web_tools_imports_none_of_their_libraries():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from fourhosts_jupyter.tools.registry import default_registry; "
            "names = default_registry().names(); assert 'read_page' in names, names; "
            "print([m for m in ('httpx', 'trafilatura', 'ddgs', 'tavily', 'exa_py', 'pypdf', 'lxml', 'primp') "
            "if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.strip() == "[]"
