"""``search_papers``: scholarly search over arXiv (Atom) and OpenAlex (JSON), merged.

Both back-ends are asked at once; each has its own circuit breaker (the runner's
:class:`~fourhosts_jupyter.tools.runner.CircuitBreaker`), so one that keeps failing is skipped
for a while and the other's results stand in (the result says which back-end answered and why
the other did not). Papers are merged and deduplicated by DOI and arXiv id (an arXiv DOI,
``10.48550/arXiv.ID``, counts as the arXiv id). Results are cached in the store for the search TTL
(``FOURHOSTS_WEB_SEARCH_TTL`` seconds, default 3600; tools/web_store.py), and each paper is written to memory in the
host's namespace (origin = its URL, with the fetched-at date) so a later question finds it
offline.

Base URLs: ``FOURHOSTS_ARXIV_URL`` (default ``https://export.arxiv.org/api/query``) and
``FOURHOSTS_OPENALEX_URL`` (default ``https://api.openalex.org``); tests point them at loopback
replay servers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import NetworkUnavailable, ToolError, WebError
from .context import ParadigmAwareToolContext
from .runner import Breakers
from .web_store import WebCache, cache_key, remember_paper

ARXIV_URL = "https://export.arxiv.org/api/query"
OPENALEX_URL = "https://api.openalex.org"
TIMEOUT = 15.0  # seconds per back-end request
MAX_BYTES = 5_000_000  # a feed larger than this is refused (a search page is ~100 kB)
USER_AGENT = "fourhosts-jupyter/0.1 (research assistant; +https://github.com/)"
BACKENDS = ("arxiv", "openalex")


class BackendError(WebError):
    """Every back-end answered with an error (5xx, malformed feed)."""

    kind = "backend_error"
    retryable = True


@dataclass(frozen=True)
class Paper:
    """One paper, as merged from the back-ends that returned it."""

    title: str
    authors: tuple[str, ...] = ()
    year: int | None = None
    published: str = ""  # ISO date when given
    venue: str = ""
    abstract: str = ""
    doi: str = ""  # bare, lower case: 10.1234/abc
    arxiv_id: str = ""  # without version: 2301.01234
    url: str = ""  # landing page
    pdf_url: str = ""
    cited_by: int | None = None
    backends: tuple[str, ...] = ()

    def keys(self) -> set[str]:
        out = set()
        if self.doi:
            out.add(f"doi:{self.doi}")
        if self.arxiv_id:
            out.add(f"arxiv:{self.arxiv_id}")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["authors"] = list(self.authors)
        d["backends"] = list(self.backends)
        return d


# -- identifiers ----------------------------------------------------------------------------

_ARXIV_ID = re.compile(r"(?:arxiv\.org/(?:abs|pdf)/|arxiv:)([a-z\-]+(?:\.[A-Z]{2})?/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?", re.I)
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.I)


def normalize_doi(value: str | None) -> str:
    """``https://doi.org/10.1/ABC`` → ``10.1/abc``; '' when there is none."""
    if not value:
        return ""
    v = value.strip()
    v = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", "", v, flags=re.I)
    return v.lower() if v.startswith("10.") else ""


def arxiv_id_from(value: str | None) -> str:
    """The arXiv id (no version) in a URL, ``arXiv:`` reference or arXiv DOI; '' if none."""
    if not value:
        return ""
    m = _ARXIV_DOI.match(normalize_doi(value) or "")
    if m:
        return re.sub(r"v\d+$", "", m.group(1))
    m = _ARXIV_ID.search(value)
    return m.group(1) if m else ""


# -- arXiv (Atom) -----------------------------------------------------------------------------


def parse_arxiv(feed_text: str | bytes) -> list[Paper]:
    """Papers from an arXiv API Atom feed. A feed whose only entry is arXiv's error entry (a
    malformed query) raises BackendError with arXiv's message."""
    import feedparser  # maintained Atom parser; it does not resolve external entities

    feed = feedparser.parse(feed_text)
    if feed.bozo and not feed.entries:
        raise BackendError(f"arXiv returned a feed that could not be read ({feed.bozo_exception})")
    papers = []
    for e in feed.entries:
        entry_id = e.get("id", "")
        if "api/errors" in entry_id:
            raise BackendError(f"arXiv refused the query: {_squash(e.get('summary', ''))}")
        arxiv_id = arxiv_id_from(entry_id)
        pdf = next((link.get("href", "") for link in e.get("links", []) if link.get("title") == "pdf"), "")
        pdf = re.sub(r"^http://arxiv\.org/", "https://arxiv.org/", pdf)
        published = (e.get("published") or "")[:10]
        journal = _squash(e.get("arxiv_journal_ref", ""))
        papers.append(
            Paper(
                title=_squash(e.get("title", "")),
                authors=tuple(_squash(a.get("name", "")) for a in e.get("authors", []) if a.get("name")),
                year=int(published[:4]) if published[:4].isdigit() else None,
                published=published,
                venue=journal or "arXiv",
                abstract=_squash(e.get("summary", "")),
                doi=normalize_doi(e.get("arxiv_doi")),
                arxiv_id=arxiv_id,
                url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else e.get("link", ""),
                pdf_url=pdf,
                backends=("arxiv",),
            )
        )
    return papers


# -- OpenAlex (JSON) --------------------------------------------------------------------------


def reconstruct_abstract(inverted: dict[str, list[int]] | None) -> str:
    """OpenAlex ships abstracts as ``{word: [positions]}``; put the words back in order."""
    if not inverted:
        return ""
    slots: dict[int, str] = {}
    for word, positions in inverted.items():
        for p in positions or ():
            slots[int(p)] = word
    return " ".join(slots[i] for i in sorted(slots))


def parse_openalex(data: dict[str, Any]) -> list[Paper]:
    """Papers from an OpenAlex ``/works`` search response."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise BackendError("OpenAlex returned JSON without a results list")
    papers = []
    for w in data["results"]:
        if not isinstance(w, dict):
            continue
        primary = w.get("primary_location") or {}
        source = primary.get("source") or {}
        locations = [loc for loc in (w.get("locations") or []) if isinstance(loc, dict)]
        ids = w.get("ids") or {}
        arxiv_id = arxiv_id_from(w.get("doi")) or next(
            (a for a in (arxiv_id_from(loc.get("landing_page_url")) for loc in locations) if a), ""
        ) or arxiv_id_from(ids.get("arxiv"))
        doi = normalize_doi(w.get("doi"))
        year = w.get("publication_year")
        pdf = (w.get("open_access") or {}).get("oa_url") or primary.get("pdf_url") or ""
        papers.append(
            Paper(
                title=_squash(w.get("title") or w.get("display_name") or ""),
                authors=tuple(
                    _squash((a.get("author") or {}).get("display_name", ""))
                    for a in (w.get("authorships") or [])
                    if (a.get("author") or {}).get("display_name")
                ),
                year=int(year) if isinstance(year, int) else None,
                published=str(w.get("publication_date") or ""),
                venue=_squash(source.get("display_name") or ""),
                abstract=reconstruct_abstract(w.get("abstract_inverted_index")),
                doi=doi,
                arxiv_id=arxiv_id,
                url=(f"https://doi.org/{doi}" if doi else primary.get("landing_page_url") or w.get("id") or ""),
                pdf_url=pdf,
                cited_by=w.get("cited_by_count") if isinstance(w.get("cited_by_count"), int) else None,
                backends=("openalex",),
            )
        )
    return papers


# -- merging ----------------------------------------------------------------------------------


def merge(*ranked: list[Paper]) -> list[Paper]:
    """One list from several back-ends' ranked lists: taken in turns (each back-end's best
    first), a paper already seen under its DOI or arXiv id is merged into the first one."""
    out: list[Paper] = []
    by_key: dict[str, int] = {}
    for rank in range(max((len(r) for r in ranked), default=0)):
        for papers in ranked:
            if rank >= len(papers):
                continue
            p = papers[rank]
            hits = {by_key[k] for k in p.keys() if k in by_key}
            if hits:
                i = min(hits)
                out[i] = _combine(out[i], p)
            else:
                i = len(out)
                out.append(p)
            for k in out[i].keys():
                by_key[k] = i
    return out


def _venue_rank(p: Paper) -> int:
    """A journal's name (OpenAlex) over an arXiv journal reference over a repository name."""
    if not p.venue or "arxiv" in p.venue.lower():
        return 0
    return 2 if "openalex" in p.backends else 1


def _combine(a: Paper, b: Paper) -> Paper:
    """``a`` with the gaps filled from ``b``; the better venue; the larger citation count."""
    venue = b.venue if _venue_rank(b) > _venue_rank(a) else a.venue
    counts = [c for c in (a.cited_by, b.cited_by) if c is not None]
    return replace(
        a,
        authors=a.authors or b.authors,
        year=a.year or b.year,
        published=a.published or b.published,
        venue=venue,
        abstract=a.abstract if len(a.abstract) >= len(b.abstract) else b.abstract,
        doi=a.doi or b.doi,
        arxiv_id=a.arxiv_id or b.arxiv_id,
        url=a.url or b.url,
        pdf_url=a.pdf_url or b.pdf_url,
        cited_by=max(counts) if counts else None,
        backends=tuple(dict.fromkeys(a.backends + b.backends)),
    )


# -- back-ends ----------------------------------------------------------------------------------


def _base(name: str) -> str:
    if name == "arxiv":
        return os.environ.get("FOURHOSTS_ARXIV_URL") or ARXIV_URL
    return (os.environ.get("FOURHOSTS_OPENALEX_URL") or OPENALEX_URL).rstrip("/")


async def _get(client: Any, url: str, params: dict[str, Any]) -> Any:
    import httpx

    try:
        async with client.stream("GET", url, params=params) as resp:
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise BackendError(f"{url} sent more than {MAX_BYTES:,} bytes; refused")
            if resp.status_code >= 400:
                raise BackendError(f"{url} answered HTTP {resp.status_code}")
            return bytes(body), resp.headers.get("content-type", "")
    except httpx.TimeoutException:
        raise BackendError(f"{url} did not answer within {TIMEOUT:g} s") from None
    except httpx.TransportError as exc:
        raise NetworkUnavailable(f"network unavailable: cannot reach {url} ({type(exc).__name__})") from None


async def _arxiv(client: Any, query: str, k: int, year_from: int | None) -> list[Paper]:
    q = " AND ".join(f"all:{w}" for w in re.findall(r"[\w\-]+", query)[:12]) or "all:*"
    if year_from:
        q += f" AND submittedDate:[{year_from}01010000 TO 299912312359]"
    body, _ = await _get(client, _base("arxiv"), {"search_query": q, "start": 0, "max_results": k})
    return parse_arxiv(body)


async def _openalex(client: Any, query: str, k: int, year_from: int | None) -> list[Paper]:
    import json

    params: dict[str, Any] = {"search": query, "per-page": k}
    if year_from:
        params["filter"] = f"from_publication_date:{year_from}-01-01"
    if os.environ.get("FOURHOSTS_OPENALEX_MAILTO"):  # OpenAlex's "polite pool"
        params["mailto"] = os.environ["FOURHOSTS_OPENALEX_MAILTO"]
    body, _ = await _get(client, f"{_base('openalex')}/works", params)
    try:
        data = json.loads(body)
    except ValueError:
        raise BackendError("OpenAlex returned a body that is not JSON") from None
    return parse_openalex(data)


_FETCHERS = {"arxiv": _arxiv, "openalex": _openalex}
BREAKERS = Breakers()  # one per back-end, for the life of the process


# -- the tool ---------------------------------------------------------------------------------


CACHE_KIND = "paper_search"  # cached with the search TTL (tools/web_store.WebTTLs)


async def find_papers(query: str, k: int = 10, year_from: int | None = None,
                      cache: WebCache | None = None) -> dict[str, Any]:
    """Ask every back-end whose breaker allows it, merge, and say how each one fared. With a
    cache, a fresh answer to the same request is served from it."""
    import httpx

    query = " ".join(query.split())
    if not query:
        raise ToolError("search_papers needs a non-empty query")
    k = max(1, min(50, int(k)))
    key = cache_key(arxiv=_base("arxiv"), openalex=_base("openalex"), query=query, k=k, year_from=year_from)
    cached = await asyncio.to_thread(cache.get, CACHE_KIND, key) if cache is not None else None
    if cached is not None:
        return {**cached, "cached": True}
    status: dict[str, str] = {}
    names = []
    for n in BACKENDS:
        if BREAKERS[n].allow():
            names.append(n)
        else:
            status[n] = f"paused: failed {BREAKERS[n].failures} times in a row, retried in {BREAKERS[n].retry_in():.0f} s"
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True, max_redirects=3,
                                 headers={"User-Agent": USER_AGENT}) as client:
        found = await asyncio.gather(*(_FETCHERS[n](client, query, k, year_from) for n in names),
                                     return_exceptions=True)
    ranked: list[list[Paper]] = []
    errors: list[ToolError] = []
    for name, got in zip(names, found):
        if isinstance(got, ToolError):
            BREAKERS[name].failure()
            status[name] = f"failed: {got}"
            errors.append(got)
        elif isinstance(got, BaseException):
            BREAKERS[name].failure()
            status[name] = f"failed: {type(got).__name__}: {got}"
            errors.append(BackendError(status[name]))
        else:
            BREAKERS[name].success()
            status[name] = f"ok ({len(got)} papers)"
            ranked.append(got)
    if not ranked:
        detail = "; ".join(f"{n}: {s}" for n, s in status.items())
        if errors and all(isinstance(e, NetworkUnavailable) for e in errors):
            raise NetworkUnavailable(f"network unavailable: no scholarly back-end could be reached ({detail}); "
                                     "answer from memory instead")
        raise BackendError(f"no scholarly back-end answered ({detail})")
    papers = [p for p in merge(*ranked) if not year_from or (p.year or 0) >= year_from][:k]
    result = {
        "query": query,
        "papers": [p.to_dict() for p in papers],
        "backends": status,
        "fetched_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if cache is not None and len(ranked) == len(BACKENDS):  # a partial answer is not kept
        await asyncio.to_thread(cache.put, CACHE_KIND, key, result, request={"query": query, "k": k})
    return {**result, "cached": False}


async def search_papers(query: str, ctx: ParadigmAwareToolContext, k: int = 10,
                        year_from: int | None = None) -> dict[str, Any]:
    """Search scholarly literature (arXiv and OpenAlex) for papers on a topic: titles,
    authors, year, venue, abstract, DOI/arXiv id, links and citation counts.

    Args:
        query: the topic, in a few words
        k: how many papers to return (1-50)
        year_from: only papers published in this year or later
    """
    cache = WebCache(ctx.store) if ctx.store is not None else None
    result = await find_papers(query, k=k, year_from=year_from, cache=cache)
    if ctx.store is not None and result["papers"] and not result["cached"]:
        await asyncio.to_thread(remember_papers, ctx, result["papers"])
    return result


def remember_papers(ctx: ParadigmAwareToolContext, papers: list[dict[str, Any]]) -> int:
    """Write each paper (its byline and abstract) to memory through the web write-back: the
    host's namespace, origin = its URL, once per URL. Returns how many were written."""
    written = 0
    for p in papers:
        if not p.get("url"):
            continue
        byline = ", ".join(p["authors"][:6]) + (" et al." if len(p["authors"]) > 6 else "")
        head = " · ".join(x for x in (byline, str(p["year"] or ""), p["venue"]) if x)
        remember_paper(
            ctx.store,  # type: ignore[arg-type]
            url=p["url"],
            title=p["title"][:200],
            text=f"{head}\n\n{p['abstract'] or '(no abstract)'}",
            namespace=ctx.host or "shared",
            published=p["published"] or None,
            authors=p["authors"],
            venue=p["venue"],
            metadata={"doi": p["doi"], "arxiv_id": p["arxiv_id"], "year": p["year"],
                      "cited_by": p["cited_by"], "run_id": ctx.run_id},
            embedder=ctx.embedder,
        )
        written += 1
    return written


def _squash(text: str) -> str:
    return " ".join(str(text).split())
