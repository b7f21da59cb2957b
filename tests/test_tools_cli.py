"""``fourhosts tools``: the per-host lists, one tool run, and its errors (in-process CLI)."""

from __future__ import annotations

import json

import net_guard
import pytest

from fourhosts_jupyter.cli import main
from fourhosts_jupyter.testing_web import ARXIV_PATH, ReplayServer, papers_server
from fourhosts_jupyter.tools import papers
from fourhosts_jupyter.tools.host_tools import host_tools


offline_network = net_guard.offline_network  # the socket spy: only loopback is reachable


@pytest.fixture(autouse=True)
def _guard(monkeypatch, tmp_path, offline_network):
    monkeypatch.setenv("FOURHOSTS_HOME", str(tmp_path))
    papers.BREAKERS.reset()
    yield offline_network
    papers.BREAKERS.reset()
    assert offline_network.leaks == []


@pytest.fixture
def server(monkeypatch):
    s = papers_server(ReplayServer().start())
    monkeypatch.setenv("FOURHOSTS_ARXIV_URL", s.url(ARXIV_PATH))
    monkeypatch.setenv("FOURHOSTS_OPENALEX_URL", s.url("/openalex"))
    yield s
    s.stop()


def test_host_lists_follow_the_briefs_preferences():
    web, papers_, read = "search_web", "search_papers", "read_page"
    assert {web, read} <= set(host_tools("dolores")) and papers_ not in host_tools("dolores")
    assert {web, read, papers_} <= set(host_tools("teddy"))
    assert {papers_, read} <= set(host_tools("bernard")) and web not in host_tools("bernard")
    assert {web, read} <= set(host_tools("maeve")) and papers_ not in host_tools("maeve")


def test_tools_lists_what_each_host_is_offered(capsys):
    assert main(["tools", "--json"]) == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["search_papers"]["hosts"] == ["teddy", "bernard"]
    assert rows["search_papers"]["parameters"] == ["query", "k", "year_from"]
    assert rows["search_memory"]["hosts"] == ["dolores", "teddy", "bernard", "maeve"]
    assert main(["tools", "--paradigm", "maeve"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert "search_papers" not in names and "search_memory" in names
    assert main(["tools", "-p", "bernard"]) == 0
    assert "search_papers" in capsys.readouterr().out


def test_tools_run_prints_the_json_result(server, capsys):
    code = main(["tools", "run", "search_papers", '{"query": "speed limits", "k": 2}', "--paradigm", "bernard"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert [p["arxiv_id"] for p in result["papers"]] == ["2403.01234", "2310.05678"]
    assert result["backends"]["openalex"] == "ok (3 papers)"


def test_a_failed_tool_prints_the_structured_error_and_exits_1(server, capsys):
    server.fail(ARXIV_PATH, 500).fail("/openalex/works", 500)
    code = main(["tools", "run", "search_papers", '{"query": "speed"}'])
    payload = json.loads(capsys.readouterr().out)
    assert code == 1
    assert payload["success"] is False and payload["kind"] == "backend_error" and payload["retryable"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tools", "run", "search_papers", '{"query": '], "the tool arguments are not valid JSON"),
        (["tools", "run", "search_papers", '["speed"]'], "must be a JSON object with named parameters, not list"),
        (["tools", "run", "search_papers", '{"query": "x"}', "-p", "maeve"], "no tool 'search_papers' is offered to host maeve"),
        (["tools", "run", "no_such_tool"], "no tool 'no_such_tool' is offered"),
        (["tools", "--paradigm", "nobody"], "unknown paradigm 'nobody'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, server):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert server.hits(ARXIV_PATH) == 0


def test_invalid_arguments_come_back_as_the_models_error(server, capsys):
    assert main(["tools", "run", "search_papers", '{"query": "x", "k": "many"}']) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["kind"] == "bad_arguments" and "k:" in payload["error"]


def test_tools_run_works_inside_a_running_event_loop(server, capsys):
    """A notebook calls ``main([...])`` from a kernel whose event loop is running."""
    import asyncio

    async def from_a_kernel() -> int:
        return main(["tools", "run", "search_papers", '{"query": "speed", "k": 1}', "-p", "teddy"])

    assert asyncio.run(from_a_kernel()) == 0
    assert json.loads(capsys.readouterr().out)["papers"][0]["arxiv_id"] == "2403.01234"
