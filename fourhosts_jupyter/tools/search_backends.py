"""Web search back-ends behind one interface, each configured from the environment.

    backends = configured_backends()          # in FOURHOSTS_SEARCH_BACKENDS order, usable ones
    results = backends[0].search("vision zero", k=10, recency="month", site=None)

| back-end | enabled by | base URL override | client |
|---|---|---|---|
| searxng | ``FOURHOSTS_SEARXNG_URL`` | (the URL itself) | httpx: SearXNG has no maintained Python client; its JSON API is one GET |
| tavily | ``TAVILY_API_KEY`` | ``FOURHOSTS_TAVILY_URL`` | ``tavily-python`` (``api_base_url=``) |
| brave | ``BRAVE_API_KEY`` | ``FOURHOSTS_BRAVE_URL`` | httpx: Brave publishes no official Python client (the PyPI ones are third-party) |
| exa | ``EXA_API_KEY`` | ``FOURHOSTS_EXA_URL`` | ``exa-py`` (``base_url=``) |
| ddgs | always (keyless, last resort) | — | ``ddgs`` (DuckDuckGo and others through its own HTTP client) |

The order is ``FOURHOSTS_SEARCH_BACKENDS`` (comma-separated names; default
``searxng,tavily,brave,exa,ddgs``). Keys are read from the environment at call time and only
handed to the client; they never appear in results or errors.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..errors import ConfigError

ORDER_ENV = "FOURHOSTS_SEARCH_BACKENDS"
DEFAULT_ORDER = ("searxng", "tavily", "brave", "exa", "ddgs")
TIMEOUT = 10.0  # seconds per back-end call
RECENCY = ("day", "week", "month", "year")
_DAYS = {"day": 1, "week": 7, "month": 31, "year": 366}
_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str
    published: str | None
    backend: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(text: Any) -> str:
    """Snippets arrive with highlighting markup and entities (Brave): plain text only."""
    return " ".join(html.unescape(_TAGS.sub("", str(text or ""))).split())


def _with_site(query: str, site: str | None) -> str:
    return f"{query} site:{site}" if site else query


class Backend:
    name = ""

    def search(self, query: str, k: int, recency: str | None, site: str | None) -> list[SearchResult]:
        raise NotImplementedError


class SearxngBackend(Backend):
    name = "searxng"

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def search(self, query: str, k: int, recency: str | None, site: str | None) -> list[SearchResult]:
        import httpx

        params = {"q": _with_site(query, site), "format": "json"}
        if recency:
            params["time_range"] = recency
        r = httpx.get(f"{self.url}/search", params=params, timeout=TIMEOUT, trust_env=False,
                      headers={"Accept": "application/json"})
        r.raise_for_status()
        return [
            SearchResult(_clean(x.get("title")), x.get("url") or "", _clean(x.get("content")),
                         _date(x.get("publishedDate")), self.name)
            for x in r.json().get("results", [])[:k] if x.get("url")
        ]


class TavilyBackend(Backend):
    name = "tavily"

    def __init__(self, key: str, url: str | None) -> None:
        self.key, self.url = key, url

    def search(self, query: str, k: int, recency: str | None, site: str | None) -> list[SearchResult]:
        from tavily import TavilyClient

        with TavilyClient(api_key=self.key, api_base_url=self.url) as client:
            data = client.search(query, max_results=min(k, 20), time_range=recency,
                                 include_domains=[site] if site else None, timeout=TIMEOUT)
        return [
            SearchResult(_clean(x.get("title")), x.get("url") or "", _clean(x.get("content")),
                         _date(x.get("published_date")), self.name)
            for x in data.get("results", [])[:k] if x.get("url")
        ]


class BraveBackend(Backend):
    name = "brave"
    _FRESHNESS = {"day": "pd", "week": "pw", "month": "pm", "year": "py"}

    def __init__(self, key: str, url: str | None) -> None:
        self.key, self.url = key, (url or "https://api.search.brave.com").rstrip("/")

    def search(self, query: str, k: int, recency: str | None, site: str | None) -> list[SearchResult]:
        import httpx

        params: dict[str, Any] = {"q": _with_site(query, site), "count": min(k, 20)}
        if recency:
            params["freshness"] = self._FRESHNESS[recency]
        r = httpx.get(f"{self.url}/res/v1/web/search", params=params, timeout=TIMEOUT, trust_env=False,
                      headers={"Accept": "application/json", "X-Subscription-Token": self.key})
        r.raise_for_status()
        return [
            SearchResult(_clean(x.get("title")), x.get("url") or "", _clean(x.get("description")),
                         _date(x.get("page_age")), self.name)
            for x in (r.json().get("web") or {}).get("results", [])[:k] if x.get("url")
        ]


class ExaBackend(Backend):
    name = "exa"

    def __init__(self, key: str, url: str | None) -> None:
        self.key, self.url = key, url or "https://api.exa.ai"

    def search(self, query: str, k: int, recency: str | None, site: str | None) -> list[SearchResult]:
        from exa_py import Exa

        start = None
        if recency:
            start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=_DAYS[recency])).strftime(
                "%Y-%m-%dT%H:%M:%S.000Z")
        response = Exa(api_key=self.key, base_url=self.url, timeout=TIMEOUT).search(
            query, num_results=min(k, 25), include_domains=[site] if site else None,
            start_published_date=start,
        )
        return [
            SearchResult(_clean(r.title), r.url or "", _clean((r.text or r.summary or "")[:400]),
                         _date(r.published_date), self.name)
            for r in response.results[:k] if r.url
        ]


class DdgsBackend(Backend):
    name = "ddgs"
    _LIMIT = {"day": "d", "week": "w", "month": "m", "year": "y"}

    def search(self, query: str, k: int, recency: str | None, site: str | None) -> list[SearchResult]:
        from ddgs import DDGS

        hits = DDGS(timeout=int(TIMEOUT)).text(_with_site(query, site), max_results=k,
                                               timelimit=self._LIMIT.get(recency or ""))
        return [
            SearchResult(_clean(x.get("title")), x.get("href") or "", _clean(x.get("body")),
                         _date(x.get("date")), self.name)
            for x in hits[:k] if x.get("href")
        ]


def backend_order(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    raw = (env.get(ORDER_ENV) or "").strip()
    if not raw:
        return list(DEFAULT_ORDER)
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in DEFAULT_ORDER]
    if unknown:
        raise ConfigError(
            f"{ORDER_ENV} names unknown search back-ends ({', '.join(unknown)}): use a comma-separated "
            f"list of {', '.join(DEFAULT_ORDER)}"
        )
    return names


def configured_backends(env: Mapping[str, str] | None = None) -> list[Backend]:
    """The usable back-ends in the configured order (a back-end without its key is skipped)."""
    env = os.environ if env is None else env
    out: list[Backend] = []
    for name in backend_order(env):
        if name == "searxng" and env.get("FOURHOSTS_SEARXNG_URL"):
            out.append(SearxngBackend(env["FOURHOSTS_SEARXNG_URL"]))
        elif name == "tavily" and env.get("TAVILY_API_KEY"):
            out.append(TavilyBackend(env["TAVILY_API_KEY"], env.get("FOURHOSTS_TAVILY_URL") or None))
        elif name == "brave" and env.get("BRAVE_API_KEY"):
            out.append(BraveBackend(env["BRAVE_API_KEY"], env.get("FOURHOSTS_BRAVE_URL") or None))
        elif name == "exa" and env.get("EXA_API_KEY"):
            out.append(ExaBackend(env["EXA_API_KEY"], env.get("FOURHOSTS_EXA_URL") or None))
        elif name == "ddgs" and _importable("ddgs"):
            out.append(DdgsBackend())
    return out


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _date(value: Any) -> str | None:
    """An ISO date (YYYY-MM-DD) from the formats the services use, or None."""
    if not value:
        return None
    text = str(value).strip()
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text).date().isoformat()  # RFC 2822 (Tavily news)
    except (TypeError, ValueError):
        pass
    m = re.match(r"^(\d{4}-\d{2}-\d{2})", text)
    return m.group(1) if m else None
