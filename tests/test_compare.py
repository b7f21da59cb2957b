"""Compare: the hosts answer at the same time (scripted server), one coalesced display for the
grid, the footer's figures, the run log's link, ``fourhosts compare --json``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from fourhosts_jupyter.comparison import (
    CompareFinished,
    Comparison,
    HostResult,
    distinctive_terms,
    parse_hosts,
    stream_compare,
)
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.events import Source, Usage
from fourhosts_jupyter.jupyter.grid import GridState, GridView
from fourhosts_jupyter.memory.comparisons import get_comparison
from fourhosts_jupyter.paradigms import HOSTS, HostParadigm
from fourhosts_jupyter.testing import RecordedRequest, Reply

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"
ROOT = Path(__file__).resolve().parents[1]


def host_of(req: RecordedRequest) -> str:
    system = req.messages[0]["content"] if req.messages else ""
    found = re.search(r"the (DOLORES|TEDDY|BERNARD|MAEVE) paradigm", system)
    return found.group(1).lower() if found else "?"


def test_the_four_requests_overlap_at_the_scripted_server(openai_server, seeded_store):
    """Each request waits at the server until all four have arrived: run one after another,
    the first would wait alone until the barrier broke, and every host would fail."""
    barrier = threading.Barrier(4, timeout=20)
    arrived: list[str] = []

    def respond(req: RecordedRequest) -> Reply:
        arrived.append(host_of(req))
        barrier.wait()
        return Reply.say(f"The {host_of(req)} view: act on speed [1].", first_delay=0.05, delay=0.005)

    openai_server.respond_with(respond)
    engine = Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                    store=seeded_store, tools=False)
    final = [e for e in stream_compare(engine, QUESTION) if isinstance(e, CompareFinished)]
    c = final[0].comparison
    assert sorted(arrived) == sorted(h.value for h in HOSTS)
    assert set(c.answers) == set(HOSTS)
    for h in HOSTS:
        assert c.answers[h].text == f"The {h.value} view: act on speed [1]."
        assert c.answers[h].classification.primary is h
    # the run log: one run per host, linked to the comparison
    stored = get_comparison(seeded_store, c.id)
    assert [r["paradigm"] for r in stored["runs"]] == [h.value for h in HOSTS]
    assert {r["id"] for r in stored["runs"]} == {c.results[h].run_id for h in HOSTS}


@pytest.fixture(scope="module")
def offline_grid(_seeded_template, tmp_path_factory):
    """One live offline comparison of all four hosts, drawn through GridView in a real shell."""
    import shutil

    from fourhosts_jupyter.memory.store import Store

    path = tmp_path_factory.mktemp("grid") / "store.duckdb"
    shutil.copyfile(_seeded_template, path)
    store = Store(path)
    InteractiveShell.instance()
    engine = Engine(Settings(provider="offline", store_path=path), store=store)
    import time

    with capture_output() as cap:
        view = GridView(live=True, max_rate=10)
        t = time.monotonic()
        view.consume(stream_compare(engine, QUESTION))
        elapsed = time.monotonic() - t
    return SimpleNamespace(view=view, outputs=cap.outputs, elapsed=elapsed, store=store)


def test_the_grid_is_one_display_handle_with_a_bounded_update_count(offline_grid):
    view, outputs = offline_grid.view, offline_grid.outputs
    assert view.updates == len(outputs) >= 2
    assert not outputs[0].update and all(o.update for o in outputs[1:])  # one handle, then updates
    # ≤ 10 redraws a second for the whole grid (+ the first draw and the final flush)
    assert view.updates <= offline_grid.elapsed * 10 + 2
    html = outputs[-1].data["text/html"]
    assert html.count('class="fh-compare-grid') == 1
    for h in HOSTS:
        panel = re.search(rf'<div class="fh-compare-panel" data-host="{h.value}".*?(?=<div class="fh-compare-panel"|<div class="fh-compare-footer")', html, re.S)
        assert panel is not None, h
        assert 'class="fh-answer"' in panel.group(0) and "✅ Done" in panel.group(0)
    assert "text/plain" in outputs[-1].data


def test_the_footer_says_what_was_shared_and_what_each_host_stressed(offline_grid):
    c = offline_grid.view.state.comparison
    assert isinstance(c, Comparison) and set(c.answers) == set(HOSTS)
    summary = c.summary()
    rows = {r["host"]: r for r in summary["per_host"]}
    for h in HOSTS:
        r = rows[h.value]
        assert r["status"] == "ok" and r["chars"] == len(c.answers[h].text) > 0
        assert r["seconds"] > 0 and r["sources"] == len(c.answers[h].sources)
        assert r["distinctive"], h  # each offline host writes in its own style
    # each host's own style words are among what it stressed, never another's
    assert "leverage" in rows["maeve"]["distinctive"] and "leverage" not in rows["teddy"]["distinctive"]
    matrix = c.sources_matrix()
    assert list(matrix.columns) == ["title", "origin", *[h.value for h in HOSTS], "hosts"]
    assert (matrix["hosts"] == (matrix[[h.value for h in HOSTS]] > 0).sum(axis=1)).all()
    shared = {s["title"] for s in summary["shared_sources"]}
    assert shared == set(matrix.loc[matrix["hosts"] > 1, "title"])
    footer = offline_grid.outputs[-1].data["text/plain"]
    assert f"Comparison {c.id}" in footer and "stressed:" in footer
    frame = c.to_frame()
    assert list(frame.index) == [h.value for h in HOSTS] and (frame["text"].str.len() > 0).all()


def test_show_redraws_the_whole_grid_from_the_run_log(offline_grid):
    c = offline_grid.view.state.comparison
    stored = get_comparison(offline_grid.store, c.id[:8])  # a prefix is enough
    grid = GridState.from_stored(stored)
    html = grid.to_html()
    assert [m for m in re.findall(r'data-host="(\w+)"', html)] == [h.value for h in HOSTS]
    for h in HOSTS:
        assert grid.panels[h].text.strip() == c.answers[h].text.strip()
    assert f"Comparison {c.id}" in grid.to_text()


def _result(host: HostParadigm, text: str, sources: list[Source], tokens: int = 0) -> HostResult:
    answer = SimpleNamespace(text=text, sources=tuple(sources), usage=Usage(tokens, 0, tokens, None))
    return HostResult(host, run_id=f"r_{host.value}", answer=answer, seconds=1.0)


def test_shared_and_single_host_sources_and_distinctive_terms():
    a, b, c_ = (Source(1, "m1", "Speed", ""), Source(2, "m2", "Equity", ""), Source(1, "m3", "Budgets", ""))
    comp = Comparison("c_x", "q", (HostParadigm.DOLORES, HostParadigm.TEDDY))
    comp.results[HostParadigm.DOLORES] = _result(HostParadigm.DOLORES, "act now: build crossings now", [a, c_], 40)
    comp.results[HostParadigm.TEDDY] = _result(HostParadigm.TEDDY, "protect children; build crossings", [b, Source(3, "m1", "Speed", "")])
    assert [s.title for s in comp.shared_sources()] == ["Speed"]
    assert {h: [s.title for s in ss] for h, ss in comp.only_sources().items()} == {
        HostParadigm.DOLORES: ["Budgets"], HostParadigm.TEDDY: ["Equity"]}
    m = comp.sources_matrix()
    assert m.iloc[0].to_dict() == {"title": "Speed", "origin": "", "dolores": 1, "teddy": 3, "hosts": 2}
    terms = comp.distinctive()
    # "build crossings" both said; "now" is a stop word
    assert terms == {HostParadigm.DOLORES: ["act"], HostParadigm.TEDDY: ["children", "protect"]}
    assert comp.host_rows()[0]["tokens"] == 40


def test_distinctive_terms_skip_words_every_text_uses():
    out = distinctive_terms({"a": "speed cameras speed limits", "b": "speed bumps"})
    assert out == {"a": ["cameras", "limits"], "b": ["bumps"]}


def test_parse_hosts():
    assert parse_hosts(None) == HOSTS and parse_hosts("all") == HOSTS
    assert parse_hosts("bernard, dolores,bernard") == (HostParadigm.BERNARD, HostParadigm.DOLORES)
    with pytest.raises(ConfigError, match="at least two hosts"):
        parse_hosts("dolores")
    with pytest.raises(ConfigError, match="unknown paradigm 'ford'"):
        parse_hosts("dolores,ford")


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "FOURHOSTS_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", "compare", *args],
                          capture_output=True, text=True, env=env, timeout=240)


def test_cli_compare_json_prints_one_object_per_host_and_a_summary(seeded_store, tmp_path):
    done = _cli(QUESTION, "--hosts", "dolores,teddy", "--json", "--store", str(seeded_store.path), home=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert [x.get("host") for x in lines[:2]] == ["dolores", "teddy"] and set(lines[2]) == {"summary"}
    for obj in lines[:2]:
        assert {"host", "text", "sources", "usage", "seconds", "status"} <= set(obj)
        assert obj["status"] == "ok" and obj["text"] and obj["seconds"] > 0
        assert obj["sources"] and set(obj["sources"][0]) == {"n", "title", "origin"}
    summary = lines[2]["summary"]
    assert summary["hosts"] == ["dolores", "teddy"]
    assert get_comparison(seeded_store, summary["comparison_id"])["kind"] == "compare"


def test_cli_compare_bad_host_is_one_line_and_exit_2(tmp_path):
    done = _cli("q?", "--hosts", "dolores,ford", home=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "fourhosts: error: unknown paradigm 'ford': use one of dolores, teddy, bernard, maeve"]


def test_synthesize_asks_the_model_where_the_hosts_agree_citing_the_panels(openai_server, seeded_store):
    def respond(req: RecordedRequest) -> Reply:
        if req.messages[0]["content"].startswith("You compare research answers"):
            return Reply.say("Where the hosts agree: speed [Dolores] [Teddy].", usage=(80, 10))
        return Reply.say(f"The {host_of(req)} view [1].")

    openai_server.respond_with(respond)
    engine = Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                    store=seeded_store, tools=False)
    final = [e for e in stream_compare(engine, QUESTION, "dolores,teddy", synthesize=True)
             if isinstance(e, CompareFinished)]
    c = final[0].comparison
    assert c.synthesis == "Where the hosts agree: speed [Dolores] [Teddy]."
    prompt = openai_server.chat_requests[-1].messages[-1]["content"]
    assert "[Dolores]\nThe dolores view [1]." in prompt and "[Teddy]\nThe teddy view [1]." in prompt
    assert c.notes == ["synthesis: 90 tokens"]
    html = GridState.from_comparison(c).to_html()
    assert "Where the hosts agree / disagree" in html and "class=\"fh-compare-synthesis\"" in html


def test_synthesize_offline_says_it_needs_a_model(offline_grid):
    import asyncio

    from fourhosts_jupyter.comparison import _synthesize

    c = offline_grid.view.state.comparison
    engine = Engine(Settings(provider="offline"), store=offline_grid.store)
    before = list(c.notes)
    try:
        asyncio.run(_synthesize(engine, c, {}))
        assert c.synthesis == "" and c.notes[len(before):] == [
            "--synthesize needs a model: offline, the terms each host stressed stand in for it"]
    finally:
        c.notes[:] = before  # the fixture's comparison is shared by this file's tests


@pytest.fixture
def seeded_pg(_seeded_template, pg_url, tmp_path):
    """The seeded store copied into a fresh PostgreSQL database."""
    import shutil

    from fourhosts_jupyter.memory.backends import open_store
    from fourhosts_jupyter.memory.store import Store
    from fourhosts_jupyter.memory.store_copy import copy_store

    shutil.copyfile(_seeded_template, tmp_path / "seed.duckdb")
    copy_store(Store(tmp_path / "seed.duckdb"), open_store(pg_url), progress=False)
    return open_store(pg_url)


def test_compare_on_postgres_saves_and_the_cli_reads_it_back(seeded_pg, tmp_path, monkeypatch):
    import fourhosts_jupyter as fh

    monkeypatch.setenv("FOURHOSTS_PROVIDER", "offline")
    c = fh.compare(QUESTION, "dolores,teddy", store=seeded_pg.url)
    stored = get_comparison(seeded_pg, c.id[:8])
    assert stored["kind"] == "compare" and stored["hosts"] == ["dolores", "teddy"]
    assert [r["paradigm"] for r in stored["runs"]] == ["dolores", "teddy"]
    assert [r["answer"].strip() for r in stored["runs"]] == [c.answers[h].text.strip() for h in
                                                             (HostParadigm.DOLORES, HostParadigm.TEDDY)]
    done = _cli(QUESTION, "--hosts", "bernard,maeve", "--json", "--store", seeded_pg.url, home=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    again = get_comparison(seeded_pg, summary["comparison_id"])
    assert again["hosts"] == ["bernard", "maeve"] and len(again["runs"]) == 2
    from fourhosts_jupyter.usage import usage

    assert usage("host", store=seeded_pg).set_index("host")["runs"].to_dict() == {
        "dolores": 1, "teddy": 1, "bernard": 1, "maeve": 1}
