"""The web cache (TTLs, expiry, keys) and the write-back of pages and papers to memory."""

from __future__ import annotations

import datetime as dt

import net_guard
import pytest

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.tools.web_store import (
    WebCache,
    WebDocument,
    WebTTLs,
    cache_key,
    canonical_url,
    remember_page,
    remember_paper,
)


offline_network = net_guard.offline_network  # the socket spy (a fixture), used by every test here


@pytest.fixture(autouse=True)
def _no_network(offline_network):
    yield
    assert offline_network.leaks == []


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 30, 12, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now


PAGE_TEXT = (
    "Vision Zero in Hoboken. The city redesigned every intersection near schools with daylighting, "
    "curb extensions and leading pedestrian intervals. From 2018 to 2024 Hoboken recorded zero "
    "traffic deaths, while the surrounding county saw dozens. Officials credit lower speed limits "
    "of 20 mph and quick-build bollards installed within weeks instead of years."
)


def test_search_entries_expire_after_the_search_ttl(store):
    clock = Clock()
    cache = WebCache(store, ttls=WebTTLs(search=3600, page=86400), clock=clock)
    key = cache_key(query="Vision Zero", k=10)
    cache.put("search", key, [{"url": "https://a.example/"}], request={"query": "Vision Zero"})
    clock.now += dt.timedelta(seconds=3599)
    assert cache.get("search", key) == [{"url": "https://a.example/"}]
    clock.now += dt.timedelta(seconds=2)
    assert cache.get("search", key) is None
    assert cache.purge_expired() == 1


def test_pages_live_for_the_page_ttl(store):
    clock = Clock()
    cache = WebCache(store, ttls=WebTTLs(search=60, page=86400), clock=clock)
    cache.put("page", "k", {"text": "hello"})
    clock.now += dt.timedelta(hours=23)
    assert cache.get("page", "k") == {"text": "hello"}
    clock.now += dt.timedelta(hours=2)
    assert cache.get("page", "k") is None


def test_a_zero_ttl_turns_the_cache_off(store):
    cache = WebCache(store, ttls=WebTTLs(search=0, page=86400))
    cache.put("search", "k", [1])
    assert cache.get("search", "k") is None
    calls = []
    value, hit = cache.fetch("search", {"query": "q"}, lambda: calls.append(1) or [2])
    value2, hit2 = cache.fetch("search", {"query": "q"}, lambda: calls.append(1) or [2])
    assert (value, hit, value2, hit2, len(calls)) == ([2], False, [2], False, 2)


def test_fetch_computes_once_and_keys_ignore_case_and_spacing(store):
    cache = WebCache(store, ttls=WebTTLs())
    calls = []
    first = cache.fetch("search", {"query": "Vision  Zero ", "k": 5}, lambda: calls.append(1) or ["r"])
    second = cache.fetch("search", {"query": "vision zero", "k": 5}, lambda: calls.append(1) or ["x"])
    other_k = cache.fetch("search", {"query": "vision zero", "k": 6}, lambda: calls.append(1) or ["y"])
    assert first == (["r"], False)
    assert second == (["r"], True)
    assert other_k == (["y"], False)
    assert len(calls) == 2


def test_ttls_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FOURHOSTS_WEB_SEARCH_TTL", "120")
    monkeypatch.setenv("FOURHOSTS_WEB_PAGE_TTL", "0")
    assert WebTTLs.from_settings(Settings.from_env()) == WebTTLs(search=120.0, page=0.0)
    monkeypatch.setenv("FOURHOSTS_WEB_SEARCH_TTL", "an hour")
    with pytest.raises(ConfigError, match="FOURHOSTS_WEB_SEARCH_TTL='an hour' is not a number of seconds"):
        Settings.from_env()


def test_defaults_are_the_briefs():
    s = Settings()
    assert (s.web_search_ttl, s.web_page_ttl) == (3600.0, 86400.0)


def test_a_remembered_page_is_found_offline_with_its_url_and_dates(store):
    from fourhosts_jupyter.context.select import select

    page = WebDocument(url="https://News.example/vision-zero#top", title="How Hoboken reached zero",
                       text=PAGE_TEXT, published="2024-03-01", author="J. Reporter")
    ids = remember_page(store, page, namespace="bernard")
    assert len(ids) == 1
    found = select(store, "Which city had zero traffic deaths after redesigning intersections?",
                   host="bernard", k=3)
    assert found and found[0].origin == "https://news.example/vision-zero"
    meta, namespace, expires = _row(store, ids[0])
    assert meta["url"] == "https://news.example/vision-zero"
    assert meta["published"] == "2024-03-01"
    fetched = dt.datetime.fromisoformat(meta["fetched_at"].rstrip("Z"))
    assert abs(fetched - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)) < dt.timedelta(minutes=5)
    assert meta["kind"] == "web_page" and meta["author"] == "J. Reporter"
    assert namespace == "bernard"
    assert expires is None  # long-term


def _row(store, memory_id):
    import json

    with store.connect() as con:
        meta, namespace, expires = con.execute(
            "SELECT metadata, namespace, expires_at FROM memories WHERE id = ?", [memory_id]).fetchone()
    return json.loads(meta), namespace, expires


def test_the_same_url_is_stored_once_and_replaced_when_it_changes(store):
    page = WebDocument(url="https://news.example/vz", title="t", text=PAGE_TEXT)
    first = remember_page(store, page, namespace="teddy")
    again = remember_page(store, page, namespace="teddy")
    assert again == first
    assert store.count_memories() == 1
    changed = WebDocument(url="https://news.example/vz#later", title="t", text=PAGE_TEXT + " Updated in 2025.")
    new = remember_page(store, changed, namespace="teddy")
    assert new != first and store.count_memories() == 1
    # another host's namespace keeps its own copy
    remember_page(store, page, namespace="maeve")
    assert store.count_memories() == 2


def test_a_paper_keeps_authors_and_year(store):
    ids = remember_paper(store, url="https://arxiv.org/abs/2401.00001", title="Speed and safety",
                         text="We find that lowering urban speed limits to 30 km/h reduces fatal crashes by 20%.",
                         namespace="bernard", published="2024", authors=["A. Author", "B. Author"])
    meta, namespace, _ = _row(store, ids[0])
    assert (meta["kind"], meta["authors"], meta["published"], namespace) == (
        "paper", ["A. Author", "B. Author"], "2024", "bernard")


def test_bad_input_is_refused_with_a_clear_line(store):
    with pytest.raises(ConfigError, match="is not an http\\(s\\) URL"):
        remember_page(store, WebDocument(url="file:///etc/passwd", text="x"), namespace="bernard")
    with pytest.raises(ConfigError, match="unknown memory namespace"):
        remember_page(store, WebDocument(url="https://a.example/", text="x"), namespace="nobody")
    with pytest.raises(ConfigError, match="has no text"):
        remember_page(store, WebDocument(url="https://a.example/", text="  "), namespace="bernard")
    assert canonical_url("HTTPS://A.Example") == "https://a.example/"


def test_write_memories_embeds_a_batch_and_skips_what_is_stored(store):
    from fourhosts_jupyter.context.write import write_memories

    texts = ["Daylighting removes parking near crosswalks.", "Curb extensions shorten crossings."]
    first = write_memories(store, texts, namespace="teddy", density=90, source="web")
    again = write_memories(store, texts + ["Leading pedestrian intervals start the walk early."],
                           namespace="teddy", density=90, source="web")
    assert len(first) == 2 and len(again) == 1
    assert store.count_memories() == 3
    with pytest.raises(ConfigError, match="the memory content is empty"):
        write_memories(store, ["ok", " "], namespace="teddy")
