"""The rating row under a live answer, ``%research insights`` and the learning switch, in a
real IPython shell with a real store."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from fourhosts_jupyter import learning
from fourhosts_jupyter.events import Usage
from fourhosts_jupyter.jupyter.feedback import RatingRow
from fourhosts_jupyter.llm.base import ModelRequest, ProviderFinish, ProviderText, ProviderUsage
from fourhosts_jupyter.memory.store import Store

from test_learning import TECH, add_run, rate_ten


class Scripted:
    """A provider that replays a short answer."""

    name = "scripted"
    model = "script-1"
    offline = False

    async def aclose(self) -> None:
        pass

    async def stream(self, request: ModelRequest) -> AsyncIterator:
        for piece in ("Pick the database ", "your team already runs [1]."):
            await asyncio.sleep(0)
            yield ProviderText(piece)
        yield ProviderUsage(Usage(10, 5, 15, 0.0))
        yield ProviderFinish("stop")


@pytest.fixture
def magics(tmp_path, monkeypatch):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fourhosts_jupyter")
    m = shell.magics_manager.registry["ResearchMagics"]
    saved = {n: getattr(m, n) for n in ("live", "learning", "store_path")}
    m.store_path = str(tmp_path / "store.duckdb")
    monkeypatch.delenv(learning.LEARNING_ENV, raising=False)
    yield m
    for n, v in saved.items():
        setattr(m, n, v)
    m.provider = None


def test_clicking_a_rating_button_stores_the_rating_and_note(store):
    run_id = add_run(store, TECH, "maeve")
    row = RatingRow(store, run_id)
    row.note.value = "  good sources "
    row.buttons[3].click()
    assert learning.ratings(store) == {run_id: 4}
    with store.connect() as con:
        assert con.execute("SELECT comment FROM feedback").fetchall() == [("good sources",)]
    assert row.status.value == "rated 4/5 with a note"
    assert [b.button_style for b in row.buttons] == ["", "", "", "info", ""]
    row.buttons[1].click()  # a second click replaces the rating learning uses
    assert learning.ratings(store) == {run_id: 2}
    bundle = row._repr_mimebundle_()
    assert bundle["text/plain"] == f"Rate this answer: %research rate {run_id} 1-5 [NOTE]"
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_a_click_on_a_deleted_run_says_so_in_the_row(store):
    row = RatingRow(store, "r_gone")
    row.buttons[4].click()
    assert row.status.value.startswith("not saved: no run 'r_gone'")
    assert row.rating is None and learning.ratings(store) == {}


def test_a_live_answer_ends_with_the_rating_row(magics, monkeypatch):
    monkeypatch.setenv("FOURHOSTS_LIVE", "1")
    magics.live = True
    magics.provider = Scripted()
    with capture_output() as out:
        magics.shell.run_cell_magic("research", "--save ans", TECH)
    ans = magics.shell.user_ns["ans"]
    last = out.outputs[-1].data
    assert last["text/plain"] == f"Rate this answer: %research rate {ans.run_id} 1-5 [NOTE]"
    assert "application/vnd.jupyter.widget-view+json" in last


def test_a_final_render_has_no_rating_row(magics, monkeypatch):
    monkeypatch.setenv("FOURHOSTS_LIVE", "0")
    magics.provider = Scripted()
    with capture_output() as out:
        magics.shell.run_cell_magic("research", "", TECH)
    assert not any("Rate this answer" in o.data.get("text/plain", "") for o in out.outputs)


def test_research_insights_shows_a_chart_and_returns_the_table(magics):
    store = Store(magics.store_path)
    rate_ten(store)
    with capture_output() as out:
        df = magics.shell.run_line_magic("research", "insights")
    assert isinstance(df, pd.DataFrame)
    assert (df.loc["maeve", "ratings"], df.loc["maeve", "mean_rating"]) == (10, 5.0)
    (chart,) = out.outputs
    assert chart.data["text/plain"] == "Ratings by host over time: 10 ratings (Maeve 10)"
    assert "image/png" in chart.data


def test_config_learning_false_restores_the_plain_bar(magics):
    rate_ten(Store(magics.store_path))
    learned = repr(magics.shell.run_line_magic("research", f'classify "{TECH}"'))
    assert "learned: Maeve rated 5.0 on technology questions" in learned
    magics.shell.run_line_magic("config", "ResearchMagics.learning = False")
    assert magics.settings().learning is False
    plain = repr(magics.shell.run_line_magic("research", f'classify "{TECH}"'))
    assert "learned:" not in plain and plain != learned
