"""``%%research --compare`` / ``--blend`` / ``%research show C_ID`` in a real IPython shell."""

from __future__ import annotations

import re
import shutil

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from fourhosts_jupyter.blending import BlendResult
from fourhosts_jupyter.comparison import Comparison
from fourhosts_jupyter.paradigms import HostParadigm

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fourhosts_jupyter")
    return shell


@pytest.fixture(params=["duckdb", "postgres"])
def magics(request, ip, _seeded_template, tmp_path, monkeypatch):
    """The magics on a seeded store of each back-end (the PostgreSQL one a copy of the DuckDB one)."""
    m = ip.magics_manager.registry["ResearchMagics"]
    path = tmp_path / "store.duckdb"
    shutil.copyfile(_seeded_template, path)
    location = str(path)
    if request.param == "postgres":
        from fourhosts_jupyter.memory.backends import open_store
        from fourhosts_jupyter.memory.store import Store
        from fourhosts_jupyter.memory.store_copy import copy_store
        location = request.getfixturevalue("pg_url")
        copy_store(Store(path), open_store(location), progress=False)
    old = m.store_path
    m.store_path = location
    monkeypatch.setenv("FOURHOSTS_LIVE", "0")
    monkeypatch.setenv("FOURHOSTS_PROVIDER", "offline")
    yield m
    m.store_path = old


def test_compare_two_hosts_in_a_cell_saves_and_shows_again(ip, magics):
    with capture_output() as cap:
        ip.run_cell_magic("research", "--compare dolores,bernard --save cmp", QUESTION)
    assert len(cap.outputs) == 1  # final mode: one display, for nbval
    html = cap.outputs[0].data["text/html"]
    assert re.findall(r'class="fh-compare-panel" data-host="(\w+)"', html) == ["dolores", "bernard"]
    c = ip.user_ns["cmp"]
    assert isinstance(c, Comparison) and set(c.answers) == {HostParadigm.DOLORES, HostParadigm.BERNARD}
    assert "class=\"fh-compare-footer\"" in html and c.id in html
    shown = ip.run_line_magic("research", f"show {c.id}")
    again = shown._repr_mimebundle_()
    assert re.findall(r'class="fh-compare-panel" data-host="(\w+)"', again["text/html"]) == ["dolores", "bernard"]
    assert c.answers[HostParadigm.BERNARD].text.strip()[:80] in again["text/plain"]


def test_blend_in_a_cell_shows_chips_mode_parts_and_the_unified_answer(ip, magics):
    with capture_output() as cap:
        ip.run_cell_magic("research", "--blend weighted --save mix", QUESTION)
    assert len(cap.outputs) == 1
    html = cap.outputs[0].data["text/html"]
    result = ip.user_ns["mix"]
    assert isinstance(result, BlendResult) and result.plan.mode == "weighted"
    chips = re.findall(r'class="fh-blend-chip" data-host="(\w+)"', html)
    assert chips == [h.value for h in result.plan.hosts] and len(chips) >= 2
    assert "Blend: <b>weighted</b>" in html and "forced: weighted" in html
    assert html.count('<details class="fh-blend-part"') == len(chips)
    assert 'class="fh-answer fh-blend-answer"' in html
    shown = ip.run_line_magic("research", f"show {result.id}")
    assert re.findall(r'class="fh-blend-chip" data-host="(\w+)"', shown._repr_mimebundle_()["text/html"]) == chips


@pytest.mark.parametrize("line, message", [
    ("--compare dolores", "compare needs at least two hosts"),
    ("--compare dolores,ford", "unknown paradigm 'ford'"),
    ("--blend blended", "unknown blend mode 'blended'"),
    ("--compare --blend", "--compare and --blend do not go together"),
    ("-p teddy --compare", "-p/--paradigm picks one host"),
    ("--synthesize", "--synthesize goes with --compare"),
])  # fmt: skip
def test_bad_options_are_one_line_usage_errors(ip, magics, line, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        ip.run_cell_magic("research", line, QUESTION)


def test_show_unknown_comparison(ip, magics):
    with pytest.raises(UsageError, match="no comparison 'c_nope'"):
        ip.run_line_magic("research", "show c_nope")


def test_a_question_with_two_qualifying_hosts_is_blended_by_itself(ip, magics):
    question = "Which frameworks explain road deaths, and what actions should a city take this month?"
    with capture_output() as cap:
        ip.run_cell_magic("research", "--save auto", question)
    result = ip.user_ns["auto"]
    assert isinstance(result, BlendResult)  # no flag: the classifier's two ≥ 35% hosts asked for it
    assert set(result.plan.hosts) == {HostParadigm.BERNARD, HostParadigm.DOLORES} and not result.plan.forced
    assert result.plan.mode == "sequential" and "complement each other" in result.plan.why
    assert len(cap.outputs) == 1 and "fh-blend-chip" in cap.outputs[0].data["text/html"]
    magics.auto_blend = False  # switched off: the same question is one plain run
    try:
        with capture_output():
            ip.run_cell_magic("research", "--save plain", question)
    finally:
        magics.auto_blend = True
    assert not isinstance(ip.user_ns["plain"], BlendResult) and ip.user_ns["plain"].text
