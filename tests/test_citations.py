"""Exporting a run's sources: BibTeX (escaping), CSL-JSON fields, APA; from a real run's log."""

from __future__ import annotations

import json

import net_guard
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from openai_server import Reply

from fourhosts_jupyter.citations import (
    Reference,
    bibtex_escape,
    check_style,
    cite,
    run_references,
    to_apa,
    to_bibtex,
    to_csl,
)
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.events import AnswerReady
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.testing_web import ReplayServer, web_research_server
from fourhosts_jupyter.tools import papers
from fourhosts_jupyter.tools.builtins import register_builtins
from fourhosts_jupyter.tools.registry import ToolRegistry

offline_network = net_guard.offline_network  # the socket spy: only loopback is reachable

PAPER = Reference(
    "article", "Lower Urban Speed Limits & Fatalities: 50% {fewer} deaths_", "https://arxiv.org/abs/2403.01234",
    ("Ana Ribeiro", "Jonas Müller", "Claire O'Neill"), 2024, "2024-03-02", "", "Accident Analysis & Prevention",
    "10.1016/j.aap.2024.107530", "2403.01234",
)
PAGE = Reference(
    "online", "Vision Zero: the Safe System approach", "https://city.example/vision-zero?a=1&b=2",
    ("Road Safety Office",), 2025, "2025-02-14", "2026-11-30", "City of Example",
)
FILE = Reference("document", "Speed Management", origin="demo corpus: speed-management.md")


def test_bibtex_escapes_every_special_character():
    assert bibtex_escape("R&D 50% $5 #1 a_b {x} ~y ^z \\w") == (
        r"R\&D 50\% \$5 \#1 a\_b \{x\} \textasciitilde{}y \textasciicircum{}z \textbackslash{}w"
    )
    assert bibtex_escape("two\n  lines") == "two lines"


def test_bibtex_entries_for_a_paper_a_page_and_a_file():
    assert to_bibtex([PAPER, PAGE, FILE]) == (
        "@article{ribeiro2024lower,\n"
        "  author = {Ribeiro, Ana and Müller, Jonas and O'Neill, Claire},\n"
        "  title = {{Lower Urban Speed Limits \\& Fatalities: 50\\% \\{fewer\\} deaths\\_}},\n"
        "  journal = {Accident Analysis \\& Prevention},\n"
        "  year = {2024},\n"
        "  doi = {10.1016/j.aap.2024.107530},\n"
        "  eprint = {2403.01234},\n"
        "  archiveprefix = {arXiv},\n"
        "  url = {https://arxiv.org/abs/2403.01234}\n"
        "}\n\n"
        "@online{roadsafetyoffice2025vision,\n"
        "  author = {{Road Safety Office}},\n"
        "  title = {{Vision Zero: the Safe System approach}},\n"
        "  organization = {City of Example},\n"
        "  date = {2025-02-14},\n"
        "  url = {https://city.example/vision-zero?a=1&b=2},\n"
        "  urldate = {2026-11-30}\n"
        "}\n\n"
        "@misc{speed,\n"
        "  title = {{Speed Management}},\n"
        "  howpublished = {demo corpus: speed-management.md}\n"
        "}\n"
    )


def test_bibtex_keys_stay_unique():
    text = to_bibtex([PAPER, PAPER.__class__(**{**PAPER.__dict__, "doi": "10.1/other"})])
    assert "@article{ribeiro2024lower," in text and "@article{ribeiro2024lowera," in text


def test_csl_json_fields():
    paper, page, doc = to_csl([PAPER, PAGE, FILE])
    assert paper["type"] == "article-journal" and paper["id"] == "ribeiro2024lower"
    assert paper["author"][1] == {"family": "Müller", "given": "Jonas"}
    assert paper["issued"] == {"date-parts": [[2024, 3, 2]]}
    assert (paper["DOI"], paper["URL"], paper["number"]) == (
        "10.1016/j.aap.2024.107530", "https://arxiv.org/abs/2403.01234", "arXiv:2403.01234")
    assert paper["container-title"] == "Accident Analysis & Prevention"  # JSON needs no TeX escapes
    assert page["type"] == "webpage" and page["accessed"] == {"date-parts": [[2026, 11, 30]]}
    assert page["author"] == [{"literal": "Road Safety Office"}]  # an organisation is not split
    assert doc == {"id": "speed", "type": "document", "title": "Speed Management",
                   "source": "demo corpus: speed-management.md"}
    preprint = to_csl([Reference("article", "T", venue="arXiv", arxiv_id="1907.11111", year=2019)])[0]
    assert preprint["type"] == "article" and preprint["issued"] == {"date-parts": [[2019]]}


def test_apa_references():
    assert to_apa([PAPER, PAGE, FILE]).splitlines() == [
        "Ribeiro, A., Müller, J., & O'Neill, C. (2024). Lower Urban Speed Limits & Fatalities: 50% {fewer} "
        "deaths_. Accident Analysis & Prevention. https://doi.org/10.1016/j.aap.2024.107530",
        "Road Safety Office. (2025, February 14). Vision Zero: the Safe System approach. City of Example. "
        "Retrieved November 30, 2026, from https://city.example/vision-zero?a=1&b=2",
        "Speed Management. (n.d.). demo corpus: speed-management.md",
    ]


def test_only_the_selected_sources_the_answer_cites_are_exported():
    from fourhosts_jupyter.citations import cited_numbers

    assert cited_numbers("a [1], b [2, 4] and c [6-8]; not [x] or [10 ] ") == {1, 2, 4, 6, 7, 8}
    sources = [{"n": n, "id": "", "title": f"Doc {n}", "origin": f"/notes/{n}.md"} for n in (1, 2, 3)]
    refs = run_references({"sources": sources, "events": [], "answer": "Lower speeds [3] and audits [1]."})
    assert [r.title for r in refs] == ["Doc 1", "Doc 3"]


def test_a_javascript_url_is_never_exported_as_a_link():
    run = {"sources": [{"n": 1, "id": "", "title": "Bad", "origin": "javascript:alert(1)"}], "events": [
        {"type": "tool_call_finished", "payload": {"name": "read_page", "result": {
            "url": "javascript:alert(document.cookie)", "title": "Hostile", "fetched_at": "2026-11-30T10:00:00Z"}}}],
        "answer": "See [1]."}
    refs = run_references(run)
    assert len(refs) == 2 and all(r.url == "" for r in refs)
    exported = to_bibtex(refs) + json.dumps(to_csl(refs)) + to_apa(refs)
    assert "javascript:alert(document" not in exported


def test_unknown_style_is_a_clear_error():
    assert check_style("CSL") == "csl-json" and check_style("BibTeX") == "bibtex"
    with pytest.raises(ConfigError, match="unknown citation style 'mla': use one of bibtex, csl-json, apa"):
        check_style("mla")


# -- from a real run ----------------------------------------------------------------------------


def test_a_page_that_is_a_found_paper_is_exported_as_the_paper():
    found = {"type": "tool_call_finished", "payload": {"name": "search_papers", "result": {"papers": [
        {"title": "Automated Speed Enforcement", "authors": ["Wei Zhang"], "year": 2023, "url":
         "https://arxiv.org/abs/2310.05678", "pdf_url": "https://arxiv.org/pdf/2310.05678v1", "doi": "",
         "arxiv_id": "2310.05678", "venue": "arXiv", "published": "2023-10-09"}]}}}
    read = {"type": "tool_call_finished", "payload": {"name": "read_page", "result": {
        "url": "https://arxiv.org/pdf/2310.05678v1", "title": "2310.05678v1.pdf", "date": None}}}
    refs = run_references({"sources": [], "events": [found, read], "answer": "", "started_at": "2026-11-30 10:00:00"})
    assert [(r.kind, r.title, r.accessed) for r in refs] == [("article", "Automated Speed Enforcement", "2026-11-30")]


@pytest.fixture
def web(monkeypatch, offline_network):
    papers.BREAKERS.reset()
    s = ReplayServer().start()
    for var in ("FOURHOSTS_ARXIV_URL", "FOURHOSTS_OPENALEX_URL", "FOURHOSTS_SEARXNG_URL", "FOURHOSTS_SEARCH_BACKENDS"):
        monkeypatch.setenv(var, "")  # undone after the test; web_research_server sets them
    web_research_server(s)
    monkeypatch.setenv("FOURHOSTS_FETCH_ALLOW_PRIVATE", "1")  # the pages are on loopback
    yield s
    s.stop()
    assert offline_network.leaks == []


def test_a_runs_sources_export_its_pages_and_cited_papers(openai_server, web, store):
    reg = ToolRegistry()
    register_builtins(reg)
    plan, news = web.url("/vision-zero.html"), web.url("/speed-cameras.html")
    openai_server.script(
        Reply.call("search_papers", {"query": "speed enforcement", "k": 5}, id="call_p"),
        Reply.call("read_page", {"url": plan}, id="call_a"),
        Reply.call("read_page", {"url": news}, id="call_b"),
        Reply.say("Cut speeds (Vision Zero plan); cameras cut severe crashes by 34% (arXiv:2310.05678); "
                  "30 km/h limits cut deaths by 23% (doi:10.1016/j.aap.2024.107530)."),
    )
    engine = Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                    store=store, embedder=HashingEmbedder(), tools=reg)
    events = list(engine.stream("How should a city cut traffic deaths?", paradigm="teddy"))
    answer = next(e.answer for e in events if isinstance(e, AnswerReady))
    run = store.get_run(answer.run_id)
    # the pages read are sources of the answer too, after the selected ones: link and date
    read = [s for s in answer.sources if s.origin.startswith("http")]
    assert [(s.origin, s.date) for s in read] == [(plan, "2025-02-14"), (news, "2026-09-03")]
    assert [s.n for s in read] == [len(answer.sources) - 1, len(answer.sources)]
    assert "QUOTED PAGE TEXT" not in read[0].text and read[0].text.startswith("Vision Zero Action Plan")
    assert [s["origin"] for s in run["sources"][-2:]] == [plan, news]  # kept in the run log
    refs = run_references(run, store)
    web = [r for r in refs if r.url]
    assert [(r.kind, r.url) for r in web] == [
        ("online", plan),
        ("online", news),
        ("article", "https://arxiv.org/abs/2403.01234"),  # named in the answer by its DOI
        ("article", "https://arxiv.org/abs/2310.05678"),  # named by its arXiv id
    ]
    assert (web[0].authors, web[0].date, web[0].venue) == (("Road Safety Office",), "2025-02-14", "City of Example")
    assert web[3].authors == ("Wei Zhang", "Priya Natarajan")
    # papers found but not named, and selected passages not cited by number, are not exported
    assert not any("1907.11111" in r.url for r in refs)
    assert [r for r in refs if not r.url] == []
    bib = str(cite(answer.run_id, "bibtex", store=store))
    day = str(run["started_at"])[:10]
    assert "@online{roadsafetyoffice2025vision," in bib and f"urldate = {{{day}}}" in bib
    assert "@online{whitfield2026speed," in bib and "author = {Whitfield, Dana}" in bib
    assert "@article{zhang2023automated," in bib and "@article{ribeiro2024lower," in bib
    assert "journal = {Accident Analysis \\& Prevention}" in bib
    csl = json.loads(str(cite(answer.run_id, "csl-json", store=store)))
    assert {i["URL"] for i in csl if "URL" in i} >= {w.url for w in web}
    apa = cite(answer.run_id[:10], "apa", store=store)  # a unique prefix of the id is enough
    assert "Zhang, W., & Natarajan, P. (2023). Automated Speed Enforcement" in str(apa)
    bundle = apa._repr_mimebundle_()
    assert bundle["text/plain"] == str(apa) and "<pre>" in bundle["text/html"]

    # the same from the line magic
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fourhosts_jupyter")
    m = shell.magics_manager.registry["ResearchMagics"]
    old = m.store_path
    m.store_path = str(store.path)
    try:
        shown = shell.run_line_magic("research", f"sources {answer.run_id} --format bibtex")
        assert str(shown) == bib
        with pytest.raises(UsageError, match="unknown citation style 'mla'"):
            shell.run_line_magic("research", f"sources {answer.run_id} --format mla")
        with pytest.raises(UsageError, match="no run 'r_nope'"):
            shell.run_line_magic("research", "sources r_nope")
    finally:
        m.store_path = old
