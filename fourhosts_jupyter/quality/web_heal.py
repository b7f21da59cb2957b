"""The web step of a healing round (brief §2.6: "over the web tools when they are configured").

When the host is offered ``search_web`` and a back-end is configured, the round searches the web
for its first angles and reads the top new pages with ``read_page`` — the same safe fetch, cache
and write-back as the tools — so the pages land in the host's memory namespace, where the
widened memory retrieval (heal.widen) finds them with their URL and date. Bounded, and never
fatal: a failure is a notice on the healing record and healing goes on over memory alone.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ..errors import FourHostsError
from ..events import Source
from ..paradigms import HostParadigm

QUERIES = 2  # angles searched on the web per round
K = 3  # results asked per search
PAGES = 2  # new pages read per round


@dataclass
class WebStep:
    queries: list[dict[str, Any]] = field(default_factory=list)  # query, backend, results, error
    pages: list[dict[str, Any]] = field(default_factory=list)  # url, title, date
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def words(self) -> str:
        """What the Healing stage line says of it ('' when nothing came from the web)."""
        n = len(self.pages)
        return f"+ {n} page{'s' if n != 1 else ''} from the web" if n else ""


def configured(host: HostParadigm) -> bool:
    """The web step runs for ``host``: it is offered search_web, the [web] extra is installed and
    a back-end is configured. The keyless ddgs fallback counts only when named in
    FOURHOSTS_SEARCH_BACKENDS: installed alone it would send every offline healing to the web."""
    from ..tools.host_tools import host_tools
    from ..tools.search_backends import ORDER_ENV, configured_backends
    from ..tools.web import missing_web_dependencies

    if "search_web" not in host_tools(host) or missing_web_dependencies():
        return False
    named = {n.strip().lower() for n in (os.environ.get(ORDER_ENV) or "").split(",")}
    backends = configured_backends()  # a bad back-end order raises ConfigError: the caller notes it
    return any(b.name != "ddgs" or "ddgs" in named for b in backends)


def gather(store: Any, question: str, host: HostParadigm, angles: Sequence[str], sources: Sequence[Source], *,
           run_id: str = "", embedder: Any = None, queries: int = QUERIES, k: int = K,
           pages: int = PAGES) -> WebStep:
    """Search the first ``queries`` angles, read up to ``pages`` results not already cited."""
    from ..tools.context import ParadigmAwareToolContext
    from ..tools.web import read_page, search_web

    step = WebStep()
    ctx = ParadigmAwareToolContext(paradigm=host, run_id=run_id, question=question, store=store,
                                   embedder=embedder, memory=tuple(sources))
    cited = {s.origin for s in sources if s.origin}
    urls: list[str] = []
    for angle in list(angles)[:queries]:
        query = f"{question} {angle}"
        try:
            out = search_web(query, ctx, k=k)
        except FourHostsError as exc:
            step.queries.append({"query": query, "backend": None, "results": 0, "error": str(exc)})
            step.notices.append(f"web search failed ({exc})")
            continue
        results = out.get("results") or []
        step.queries.append({"query": query, "backend": out.get("backend"), "results": len(results), "error": None})
        urls.extend(r["url"] for r in results if r.get("url") and r["url"] not in cited)
    for url in list(dict.fromkeys(urls))[:pages]:
        try:
            page = read_page(url, ctx)
        except FourHostsError as exc:
            step.notices.append(f"reading {url} failed ({exc})")
            continue
        step.pages.append({"url": page["url"], "title": page["title"], "date": page["date"],
                           "saved": bool(page["remembered"].get("saved"))})
    return step
