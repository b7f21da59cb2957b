"""search_papers against loopback servers replaying arXiv (Atom) and OpenAlex (JSON) replies."""

from __future__ import annotations

import asyncio
import json

import net_guard
import pytest

from fourhosts_jupyter.errors import ToolError
from fourhosts_jupyter.testing_web import ARXIV_PATH, OPENALEX_PATH, ReplayServer, papers_server
from fourhosts_jupyter.tools import papers
from fourhosts_jupyter.tools.web_store import WebCache
from fourhosts_jupyter.tools.papers import (
    BackendError,
    find_papers,
    merge,
    parse_arxiv,
    parse_openalex,
    reconstruct_abstract,
)


offline_network = net_guard.offline_network  # the socket spy: only loopback is reachable


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, offline_network):
    papers.BREAKERS.reset()
    for var in ("FOURHOSTS_ARXIV_URL", "FOURHOSTS_OPENALEX_URL", "FOURHOSTS_WEB_SEARCH_TTL"):
        monkeypatch.delenv(var, raising=False)
    yield offline_network
    papers.BREAKERS.reset()
    assert offline_network.leaks == []


@pytest.fixture
def server(monkeypatch):
    s = ReplayServer().start()
    papers_server(s)
    # papers_server sets the variables directly; hand them to monkeypatch so they are undone
    monkeypatch.setenv("FOURHOSTS_ARXIV_URL", s.url(ARXIV_PATH))
    monkeypatch.setenv("FOURHOSTS_OPENALEX_URL", s.url("/openalex"))
    yield s
    s.stop()


def _bundled(name: str) -> bytes:
    return ReplayServer.file(name).body


def test_arxiv_feed_is_parsed_into_papers():
    found = parse_arxiv(_bundled("arxiv_speed.atom"))
    assert [p.arxiv_id for p in found] == ["2403.01234", "2310.05678", "1907.11111"]
    first = found[0]
    # the title's line break is folded, the version dropped from the id, the DOI made bare
    assert first.title == "Lower Urban Speed Limits and Traffic Fatalities: Evidence from Thirty European Cities"
    assert first.authors == ("Ana Ribeiro", "Jonas Müller", "Claire O'Neill")
    assert (first.year, first.published) == (2024, "2024-03-02")
    assert first.doi == "10.1016/j.aap.2024.107530"
    assert first.venue == "Accident Analysis & Prevention 199 (2024) 107530"
    assert first.url == "https://arxiv.org/abs/2403.01234"
    assert first.pdf_url == "https://arxiv.org/pdf/2403.01234v2"
    assert first.abstract.startswith("We estimate the effect of city-wide 30 km/h limits")
    assert found[1].doi == "" and found[1].venue == "arXiv"


def test_arxiv_error_entry_becomes_a_backend_error():
    with pytest.raises(BackendError, match="max_results must be non-negative"):
        parse_arxiv(_bundled("arxiv_error.atom"))


def test_openalex_abstract_is_rebuilt_from_its_inverted_index():
    assert reconstruct_abstract({"fell": [1], "Deaths": [0], "sharply.": [2]}) == "Deaths fell sharply."
    assert reconstruct_abstract({"a": [0, 2], "b": [1]}) == "a b a"
    assert reconstruct_abstract(None) == ""
    found = parse_openalex(json.loads(_bundled("openalex_speed.json")))
    assert len(found) == 3
    aap, preprint, review = found
    assert aap.abstract.endswith("larger effects for pedestrians and cyclists.")
    assert (aap.doi, aap.arxiv_id, aap.cited_by) == ("10.1016/j.aap.2024.107530", "2403.01234", 41)
    assert aap.venue == "Accident Analysis & Prevention"
    assert aap.url == "https://doi.org/10.1016/j.aap.2024.107530"
    # an arXiv DOI (10.48550/arXiv.ID) is the arXiv id
    assert (preprint.doi, preprint.arxiv_id) == ("10.48550/arxiv.2310.05678", "2310.05678")
    assert (review.arxiv_id, review.year, review.cited_by) == ("", 2022, 58)


def test_openalex_without_results_is_a_backend_error():
    with pytest.raises(BackendError, match="without a results list"):
        parse_openalex({"error": "Invalid query parameters"})


def test_merge_deduplicates_by_doi_and_arxiv_id():
    arxiv = parse_arxiv(_bundled("arxiv_speed.atom"))
    openalex = parse_openalex(json.loads(_bundled("openalex_speed.json")))
    merged = merge(arxiv, openalex)
    # 3 + 3 papers, two of them the same work: one matched by the journal DOI that arXiv lists,
    # one by the arXiv id inside OpenAlex's arXiv DOI
    assert [p.title[:30] for p in merged] == [
        "Lower Urban Speed Limits and T", "Automated Speed Enforcement an",
        "Kinetic Energy and Survivabili", "Road safety audits in mid-size",
    ]
    aap = merged[0]
    assert aap.backends == ("arxiv", "openalex")
    assert aap.cited_by == 41  # only OpenAlex gives counts
    assert aap.venue == "Accident Analysis & Prevention"  # the journal's name beats arXiv's journal_ref
    assert merged[1].venue == "arXiv"  # a repository's name does not replace it
    assert merged[2].backends == ("arxiv",) and merged[3].backends == ("openalex",)


def test_search_asks_both_backends_and_merges(server):
    result = asyncio.run(find_papers("speed limits fatalities", k=10))
    assert result["backends"] == {"arxiv": "ok (3 papers)", "openalex": "ok (3 papers)"}
    assert len(result["papers"]) == 4 and result["cached"] is False
    arxiv_q = next(s for s in server.seen if s.path == ARXIV_PATH).query
    openalex_q = next(s for s in server.seen if s.path == OPENALEX_PATH).query
    assert arxiv_q["search_query"] == ["all:speed AND all:limits AND all:fatalities"]
    assert arxiv_q["max_results"] == ["10"]
    assert openalex_q == {"search": ["speed limits fatalities"], "per-page": ["10"]}
    ua = next(s for s in server.seen if s.path == ARXIV_PATH).headers.get("User-Agent", "")
    assert ua.startswith("fourhosts-jupyter/")


def test_year_from_is_sent_and_applied(server):
    result = asyncio.run(find_papers("speed", k=10, year_from=2023))
    assert [p["year"] for p in result["papers"]] == [2024, 2023]
    arxiv_q = next(s for s in server.seen if s.path == ARXIV_PATH).query
    assert arxiv_q["search_query"][0].endswith("AND submittedDate:[202301010000 TO 299912312359]")
    assert next(s for s in server.seen if s.path == OPENALEX_PATH).query["filter"] == ["from_publication_date:2023-01-01"]


def test_results_are_cached_in_the_store_for_the_search_ttl(server, store, monkeypatch):
    cache = WebCache(store)
    first = asyncio.run(find_papers("speed limits", k=5, cache=cache))
    again = asyncio.run(find_papers("  Speed   LIMITS ", k=5, cache=cache))
    assert again["cached"] is True and again["papers"] == first["papers"]
    assert server.hits(ARXIV_PATH) == 1 and server.hits(OPENALEX_PATH) == 1
    other = asyncio.run(find_papers("speed limits", k=4, cache=cache))  # another request
    assert other["cached"] is False and server.hits(ARXIV_PATH) == 2
    monkeypatch.setenv("FOURHOSTS_WEB_SEARCH_TTL", "0")  # no cache: every call asks again
    off = WebCache(store)
    asyncio.run(find_papers("speed limits", k=3, cache=off))
    asyncio.run(find_papers("speed limits", k=3, cache=off))
    assert server.hits(ARXIV_PATH) == 4


def test_one_backend_failing_falls_back_to_the_other(server, store):
    cache = WebCache(store)
    server.fail(OPENALEX_PATH, 500)
    result = asyncio.run(find_papers("speed", k=10, cache=cache))
    assert result["backends"]["arxiv"] == "ok (3 papers)"
    assert result["backends"]["openalex"].startswith("failed:") and "HTTP 500" in result["backends"]["openalex"]
    assert [p["backends"] for p in result["papers"]] == [["arxiv"]] * 3
    # a partial answer is not cached: once OpenAlex is back, the next call asks both again
    server.heal()
    healed = asyncio.run(find_papers("speed", k=10, cache=cache))
    assert healed["cached"] is False and len(healed["papers"]) == 4


def test_a_failing_backend_is_paused_by_its_breaker(server):
    server.fail(ARXIV_PATH, 503)
    for _ in range(papers.BREAKERS["arxiv"].threshold):
        asyncio.run(find_papers("speed", k=3))
    hits = server.hits(ARXIV_PATH)
    result = asyncio.run(find_papers("speed limits", k=3))
    assert server.hits(ARXIV_PATH) == hits  # not asked while its circuit is open
    assert result["backends"]["arxiv"].startswith("paused:")
    assert result["backends"]["openalex"] == "ok (3 papers)"


def test_both_failing_is_a_structured_backend_error(server):
    server.fail(ARXIV_PATH, 500).fail(OPENALEX_PATH, 502)
    with pytest.raises(BackendError) as info:
        asyncio.run(find_papers("speed"))
    assert info.value.kind == "backend_error" and info.value.retryable
    assert "HTTP 500" in str(info.value) and "HTTP 502" in str(info.value)


def test_no_network_fails_fast_with_network_unavailable(_fresh):
    # the default base URLs (export.arxiv.org, api.openalex.org) cannot be reached: the spy
    # refuses the lookups, as a machine without network would
    with pytest.raises(ToolError) as info:
        asyncio.run(find_papers("speed"))
    assert info.value.kind == "network_unavailable"
    assert str(info.value).startswith("network unavailable:")
    assert {"export.arxiv.org", "api.openalex.org"} <= set(_fresh.lookups)


def test_a_closed_port_is_network_unavailable(monkeypatch):
    s = ReplayServer().start()
    root = s.root
    s.stop()
    monkeypatch.setenv("FOURHOSTS_ARXIV_URL", root + ARXIV_PATH)
    monkeypatch.setenv("FOURHOSTS_OPENALEX_URL", root + "/openalex")
    with pytest.raises(ToolError) as info:
        asyncio.run(find_papers("speed"))
    assert info.value.kind == "network_unavailable"


def test_an_empty_query_is_refused():
    with pytest.raises(ToolError, match="non-empty query"):
        asyncio.run(find_papers("   "))


def _run_tool(store, host, name, arguments):
    from fourhosts_jupyter.paradigms import HostParadigm
    from fourhosts_jupyter.tools.context import ParadigmAwareToolContext
    from fourhosts_jupyter.tools.registry import default_registry
    from fourhosts_jupyter.tools.runner import ToolRunner

    reg = default_registry()
    ctx = ParadigmAwareToolContext(paradigm=HostParadigm.parse(host), store=store, run_id="r_test")
    runner = ToolRunner(reg, host=host)
    return asyncio.run(runner.run("c1", name, json.dumps(arguments), ctx, lambda _e: None))


def test_papers_are_written_to_the_hosts_memory_and_found_offline(server, store):
    from fourhosts_jupyter.context.select import select

    outcome = _run_tool(store, "teddy", "search_papers", {"query": "speed enforcement", "k": 10})
    assert outcome.ok, outcome.result
    with store.connect() as con:
        rows = con.execute(
            "SELECT namespace, json_extract_string(metadata, '$.url'), json_extract_string(metadata, "
            "'$.fetched_at'), json_extract_string(metadata, '$.doi'), expires_at FROM memories ORDER BY 2"
        ).fetchall()
    assert [r[1] for r in rows] == sorted(p["url"] for p in outcome.result["papers"])
    assert {r[0] for r in rows} == {"teddy"}
    assert all(r[2][:10] == outcome.result["fetched_at"][:10] for r in rows)  # the fetched-at date
    assert all(r[4] is None for r in rows)  # long-term, not scratchpad
    # the next question finds a paper with no server at all
    server.stop()
    found = select(store, "camera sites before-after crash severity", host="teddy", k=3)
    assert found[0].origin == "https://arxiv.org/abs/2310.05678"
    # the same search again is served from the store's cache and writes nothing twice
    again = _run_tool(store, "teddy", "search_papers", {"query": "speed enforcement", "k": 10})
    assert again.ok and again.result["cached"] is True
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM memories").fetchone()[0] == len(rows)


def test_the_runner_offers_search_papers_only_to_hosts_that_prefer_scholarly_search(server, store):
    refused = _run_tool(store, "maeve", "search_papers", {"query": "speed"})
    assert not refused.ok and refused.result["kind"] == "unknown_tool"
    assert server.hits(ARXIV_PATH) == 0
    bad = _run_tool(store, "bernard", "search_papers", {"query": "speed", "k": "many"})
    assert not bad.ok and bad.result["kind"] == "bad_arguments"
