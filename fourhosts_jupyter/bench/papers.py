"""Scholarly search benchmark: what ``search_papers`` adds to the two HTTP requests it makes.

    python -m fourhosts_jupyter.bench papers [--rounds N]

Against a loopback server replaying the bundled arXiv feed and OpenAlex search (so the network
is the same for every side), medians over N rounds of:

- baseline: the two GETs alone, concurrently, with the same httpx client set-up;
- ``find_papers`` without a cache: the GETs, Atom + JSON parsing, merging, breakers;
- the parsing + merging alone (no HTTP);
- a cache hit in the store's web cache (``WebCache``, DuckDB) vs a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


def _median_ms(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench papers")
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args(argv)

    import httpx

    from ..memory.store import Store
    from ..testing_web import ARXIV_PATH, OPENALEX_PATH, ReplayServer, papers_server
    from ..tools import papers
    from ..tools.web_store import WebCache, WebTTLs

    server = papers_server(ReplayServer().start())
    try:
        async def raw() -> None:
            async with httpx.AsyncClient(timeout=papers.TIMEOUT, headers={"User-Agent": papers.USER_AGENT}) as c:
                await asyncio.gather(c.get(server.url(ARXIV_PATH), params={"search_query": "all:speed"}),
                                     c.get(server.url(OPENALEX_PATH), params={"search": "speed"}))

        atom = ReplayServer.file("arxiv_speed.atom").body
        works = json.loads(ReplayServer.file("openalex_speed.json").body)

        def parse_merge() -> None:
            papers.merge(papers.parse_arxiv(atom), papers.parse_openalex(works))

        base = _median_ms(lambda: asyncio.run(raw()), args.rounds)
        full = _median_ms(lambda: asyncio.run(papers.find_papers("speed limits", k=10)), args.rounds)
        parse = _median_ms(parse_merge, args.rounds)
        with tempfile.TemporaryDirectory() as tmp:
            cache = WebCache(Store(Path(tmp) / "bench.duckdb"), ttls=WebTTLs(search=3600, page=3600))
            asyncio.run(papers.find_papers("speed limits", k=10, cache=cache))
            hit = _median_ms(lambda: asyncio.run(papers.find_papers("speed limits", k=10, cache=cache)), args.rounds)
    finally:
        server.stop()

    print(f"search_papers on loopback, medians of {args.rounds} rounds (3 + 3 papers → 4 merged)")
    print(f"  two GETs alone (baseline)        {base:8.2f} ms")
    print(f"  find_papers, no cache            {full:8.2f} ms   ×{full / base:.2f} of the baseline")
    print(f"  parse Atom + JSON, merge only    {parse:8.2f} ms   {parse / full:.0%} of find_papers")
    print(f"  find_papers, store cache hit     {hit:8.2f} ms   ×{hit / full:.2f} of a miss")
    return 0
