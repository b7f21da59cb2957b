"""Sources in a cell: an http(s) URL is a safe link with its date; anything else is not a link."""

from __future__ import annotations

import pytest

from fourhosts_jupyter.context.select import select
from fourhosts_jupyter.events import Source
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.source_dates import source_date
from fourhosts_jupyter.render import sources_html, sources_text
from fourhosts_jupyter.tools.web_store import WebDocument, remember_page


def _src(origin: str, date: str = "") -> Source:
    return Source(n=1, id="m_1", title="A page", text="t", origin=origin, date=date)


@pytest.mark.parametrize(
    "origin",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "https://example.org/a b",  # a space: not one URL
        "https://\njavascript:alert(1)",
        "//evil.example/x",
        "file:///etc/passwd",
    ],
)
def test_only_http_urls_become_links(origin):
    html = sources_html([_src(origin)])
    assert "<a " not in html and "href" not in html
    assert "<script>" not in html  # shown escaped, as code


@pytest.mark.parametrize("origin", ["https://example.org/safe?a=1&b=2", "HTTP://Example.org/Upper"])
def test_an_http_url_is_an_escaped_link_that_opens_safely(origin):
    html = sources_html([_src(origin)])
    assert html.count("<a ") == 1
    assert 'rel="noopener noreferrer nofollow"' in html and 'target="_blank"' in html
    assert f'href="{origin.replace("&", "&amp;")}"' in html


def test_quotes_in_a_url_cannot_leave_the_attribute():
    html = sources_html([_src('https://example.org/x"onmouseover="alert(1)')])
    assert 'href="https://example.org/x&quot;onmouseover=&quot;alert(1)"' in html
    assert ' onmouseover="' not in html


def test_a_web_source_shows_its_date():
    s = _src("https://example.org/page", date="2025-02-14")
    assert "· 2025-02-14" in sources_html([s])
    assert "[1] A page — https://example.org/page · 2025-02-14" in sources_text([s])
    assert "·" not in sources_text([_src("/notes/file.md")])


def test_source_date_prefers_published_then_fetched():
    assert source_date("2025-02-14T08:00:00Z", "2026-11-30T10:00:00Z") == "2025-02-14"
    assert source_date(None, "2026-11-30T10:00:00Z") == "2026-11-30"
    assert source_date("", "") == ""


def test_selected_web_memories_carry_url_and_date(store):
    emb = HashingEmbedder()
    remember_page(store, WebDocument(url="https://city.example/vision-zero", title="Vision Zero plan",
                                     text="Lower speed limits to 30 km/h cut pedestrian deaths sharply. " * 5,
                                     published="2025-02-14"), namespace="teddy", embedder=emb)
    remember_page(store, WebDocument(url="https://news.example/cameras", title="Speed cameras",
                                     text="Speed cameras reduce fatal crashes at treated sites. " * 5,
                                     fetched_at="2026-11-29T12:00:00Z"), namespace="teddy", embedder=emb)
    found = {s.origin: s.date for s in select(store, "speed limits pedestrian deaths cameras", host="teddy",
                                              k=5, embedder=emb, calibrated=False)}
    assert found == {"https://city.example/vision-zero": "2025-02-14", "https://news.example/cameras": "2026-11-29"}


def test_the_terminal_source_line_carries_the_date():
    from fourhosts_jupyter.memory.origins import source_line

    assert source_line(2, "Speed cameras", "https://news.example/cameras", "2026-09-03") == (
        "[2] Speed cameras — https://news.example/cameras · 2026-09-03")
    assert source_line(1, "Notes", "/notes/a.md") == "[1] Notes — /notes/a.md"
    assert "\x1b" not in source_line(1, "t", "https://x.example", "2026\x1b[31m")
