"""The memory browser against a real DuckDB store: what its widgets hold after rendering,
paging, ticking rows and forgetting them (the real-browser test is ``test_browser_ui.py``)."""

from __future__ import annotations

import datetime as dt

import pytest
from bs4 import BeautifulSoup

from fourhosts_jupyter.jupyter.browser import ANY, MemoryBrowser
from fourhosts_jupyter.jupyter.memory_rows import format_date, preview
from fourhosts_jupyter.memory.store import MemoryRecord, Store

N = 2_510  # thousands of memories; not a multiple of the page size, so the last page is short
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"> & "quotes"'


def _records(n: int, *, namespace: str = "bernard", prefix: str = "m") -> list[MemoryRecord]:
    soon = dt.datetime(2031, 5, 6, 7, 8)
    return [
        MemoryRecord(
            id=f"{prefix}{i:05d}",
            namespace=namespace,
            memory_type="episodic" if i % 5 == 0 else "semantic",
            title=f"Note {i}",
            source="note",
            content=(HOSTILE if i == n - 2 else f"Passage {i}.")
            + "\n\nSecond paragraph.\n\n  Third   paragraph.",
            expires_at=soon if i == n - 3 else None,
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def _big_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "template.duckdb"
    assert len(Store(path).add_memories(_records(N))) == N
    return path


@pytest.fixture
def big(_big_template, tmp_path):
    """A private copy of a real store holding N memories (no embeddings: listing needs none)."""
    import shutil

    shutil.copyfile(_big_template, tmp_path / "store.duckdb")
    return Store(tmp_path / "store.duckdb")


def _shown(b: MemoryBrowser) -> list[BeautifulSoup]:
    """The rows on screen, parsed: hidden pooled rows are not shown."""
    return [BeautifulSoup(cell.value, "html.parser")
            for row, cell in zip(b._rows, b._cells) if row.layout.display != "none"]


def _ids(b: MemoryBrowser) -> list[str]:
    return [r.find(class_="fh-mb-cell")["data-id"] for r in _shown(b)]


def _row(b: MemoryBrowser, memory_id: str) -> BeautifulSoup:
    """Go to the page that shows ``memory_id`` and return its row."""
    order = b.store.memories(limit=None)["id"].tolist()  # the store's own order: newest first
    b.goto(order.index(memory_id) // b.page_size)
    return _shown(b)[_ids(b).index(memory_id)]


def test_rows_are_one_line_previews_that_expand_to_the_whole_passage(big):
    b = MemoryBrowser(big, page_size=25)
    b.widget()
    rows = _shown(b)
    assert len(rows) == 25
    for row in rows:
        summary = row.find("summary").get_text()
        assert "\n" not in summary and "\\n" not in summary
    row = _row(b, "m00042")
    flat = "Passage 42. Second paragraph. Third paragraph."
    assert row.find(class_="fh-mb-text").get_text() == flat
    # the expanded passage keeps its paragraphs as real line breaks
    assert row.find(class_="fh-mb-full").get_text() == (
        "Passage 42.\n\nSecond paragraph.\n\n  Third   paragraph.")


def test_dates_are_readable_and_no_expiry_reads_never(big):
    b = MemoryBrowser(big, page_size=10)
    b.widget()
    assert _row(b, f"m{N - 3:05d}").find(class_="fh-mb-expires").get_text() == "2031-05-06 07:08"
    expires = {i: r.find(class_="fh-mb-expires").get_text() for i, r in zip(_ids(b), _shown(b))}
    assert len(expires) == 10
    assert expires == {i: "2031-05-06 07:08" if i == f"m{N - 3:05d}" else "never" for i in expires}
    created = _shown(b)[0].find(class_="fh-mb-created").get_text()
    assert dt.datetime.strptime(created, "%Y-%m-%d %H:%M")
    assert all("NaT" not in c.value for c in b._cells)
    assert format_date(None) == "never" and format_date(float("nan")) == "never"


def test_memory_text_is_escaped(big):
    b = MemoryBrowser(big, page_size=10)
    b.widget()
    parsed = _row(b, f"m{N - 2:05d}")  # the hostile passage
    assert "<script" not in str(parsed) and "<img" not in str(parsed)
    assert parsed.find("script") is None and parsed.find("img") is None
    shown = parsed.find(class_="fh-mb-text").get_text()
    assert shown == preview(HOSTILE + " Second paragraph. Third paragraph.")


def test_pages_through_thousands_of_memories(big):
    b = MemoryBrowser(big, page_size=25)
    b.widget()
    assert b.page_label.value == f"Page 1 of 101 · 1–25 of {N} memories"
    assert b.prev_btn.disabled and not b.next_btn.disabled
    order = big.memories(limit=None)["id"].tolist()
    assert sorted(order) == [f"m{i:05d}" for i in range(N)]
    page1 = _ids(b)
    b.next_btn.click()
    # no overlap and no gap: a bulk insert gives every row one created_at, the key breaks ties
    assert page1 + _ids(b) == order[:50]
    b.goto(100)
    assert b.page_label.value == f"Page 101 of 101 · 2501–{N} of {N} memories"
    assert _ids(b) == order[2500:]
    assert len(b._rows) == 25 and b.next_btn.disabled  # the pool is reused, the rest hidden
    b.goto(500)  # clamped
    assert b.page == 100
    b.goto(2)
    b.size_dd.value = 100  # the first memory on screen stays on screen
    assert _ids(b) == order[:100]
    assert b.page_label.value.startswith("Page 1 of 26")


def test_forgetting_the_ticked_rows_removes_exactly_those(big):
    b = MemoryBrowser(big, page_size=25)
    b.widget()
    assert b.forget_btn.disabled and b.forget_btn.description == "Forget selected (0)"
    ticked = [b._row_ids[3], b._row_ids[7]]
    b._checks[3].value = True
    b._checks[7].value = True
    b.goto(2)  # the selection is kept across pages
    ticked.append(b._row_ids[0])
    b._checks[0].value = True
    b._checks[1].value = True
    b._checks[1].value = False  # unticked again
    assert b.forget_btn.description == "Forget selected (3)" and not b.forget_btn.disabled
    b.goto(0)
    assert [c.value for c in b._checks[:8]] == [False] * 3 + [True] + [False] * 3 + [True]

    b.forget_btn.click()  # asks first, with the count
    assert b.confirm_box.layout.display is None
    assert b.confirm_label.value == "Forget 3 memories? This cannot be undone."
    assert big.count_live_memories() == N
    b.confirm_btn.click()
    assert b.status.value == "forgot 3 memories"
    assert b.confirm_box.layout.display == "none"
    assert b.forget_btn.description == "Forget selected (0)"
    left = set(big.memories(limit=None)["id"])
    assert left == {f"m{i:05d}" for i in range(N)} - set(ticked)
    assert b.page_label.value.endswith(f"of {N - 3} memories")
    assert not any(c.value for c in b._checks)


def test_cancel_forgets_nothing_and_the_page_box_ticks_the_page(big):
    b = MemoryBrowser(big, page_size=10)
    b.widget()
    b.select_page.value = True
    assert b.selected == set(_ids(b)) and b.forget_btn.description == "Forget selected (10)"
    b.forget_btn.click()
    assert b.confirm_btn.description == "Forget 10"
    b._checks[0].value = False  # the question's count follows the selection
    assert b.confirm_label.value.startswith("Forget 9 memories?")
    b.cancel_btn.click()
    assert b.confirm_box.layout.display == "none"
    assert big.count_live_memories() == N


def test_filters_page_the_matching_memories_and_clear_the_selection(big):
    big.add_memories(_records(30, namespace="maeve", prefix="s"))
    b = MemoryBrowser(big, page_size=25)
    b.widget()
    b._checks[0].value = True
    b.host_dd.value = "maeve"
    assert b.selected == set() and b.page_label.value == "Page 1 of 2 · 1–25 of 30 memories"
    b.type_dd.value = "episodic"
    assert b.page_label.value == "Page 1 of 1 · 1–6 of 6 memories"
    assert sorted(_ids(b)) == [f"s{i:05d}" for i in (0, 5, 10, 15, 20, 25)]
    b.host_dd.value = ANY
    assert b.total == N // 5 + 6


def test_mimebundle_keeps_a_text_view(big):
    b = MemoryBrowser(big, page_size=10)
    bundle = b._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    text = bundle["text/plain"]
    lines = text.splitlines()
    assert lines[0].endswith(f"page 1 of {N // 10}, 10 of {N} memories") and len(lines) == 11
    assert "expires never" in text and "NaT" not in text
    assert "Second paragraph. Third paragraph." in lines[1]  # one line per memory


def test_search_pages_ranked_hits_with_their_dates(seeded_store):
    b = MemoryBrowser(seeded_store, page_size=5, search_limit=12)
    b.widget()
    b.search_box.value = "average speed cameras on arterial roads"
    assert b.total == 12 and b.page_label.value == "Page 1 of 3 · 1–5 of 12 memories"
    first = _shown(b)[0]
    assert "speed" in first.get_text().lower()
    assert first.find(class_="fh-mb-expires").get_text() == "never"
    assert "score" in first.find(class_="fh-mb-meta").get_text()
    page1 = _ids(b)
    b.next_btn.click()
    assert not set(page1) & set(_ids(b)) and len(_ids(b)) == 5


def test_reload_shows_memories_written_since_and_keeps_the_selection(big):
    b = MemoryBrowser(big, page_size=25)
    b.widget()
    b._checks[2].value = True
    ticked = b._row_ids[2]
    big.add_memories([MemoryRecord(id="late", namespace="teddy", memory_type="episodic",
                                   title="Written later", source="run", content="A run's note.")])
    assert b.total == N and "run" not in b.source_dd.options
    b.reload_btn.click()
    assert b.total == N + 1 and b._row_ids[0] == "late"
    assert list(b.source_dd.options) == [ANY, "note", "run"] and b.source_dd.value == ANY
    assert b.selected == {ticked} and b.forget_btn.description == "Forget selected (1)"
