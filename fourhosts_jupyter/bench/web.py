"""``python -m fourhosts_jupyter.bench web [--rounds N] [--passages N]``

Against a loopback page server (nothing leaves the machine), median seconds over N rounds:

- ``read_page`` cold (fetch through the guard, extract, write back to memory) vs served from
  the page cache (the baseline a repeated read should approach);
- the write-back of one page's passages as one batch (``context.write.write_memories``, what
  ``remember_page`` does) vs one ``write_memory`` per passage (the baseline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


def _page(paragraphs: int) -> bytes:
    body = "".join(
        f"<p>Paragraph {i}: the city measured pedestrian injuries at intersection {i} before and after "
        f"daylighting and curb extensions, and crashes fell by {10 + i % 30} percent within a year.</p>"
        for i in range(paragraphs)
    )
    return (f"<html><head><title>Intersection study</title></head><body><nav>Home · About</nav>"
            f"<article><h1>Intersection study</h1>{body}</article><footer>© 2024</footer></body></html>").encode()


def _server(page: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _median(fn: Callable[[int], Any], rounds: int) -> float:
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench web")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--passages", type=int, default=20, help="passages in the write-back comparison")
    args = ap.parse_args(argv)
    os.environ["FOURHOSTS_FETCH_ALLOW_PRIVATE"] = "1"  # the page is served on loopback

    from ..context.write import write_memories, write_memory
    from ..memory.embeddings import get_embedder
    from ..memory.store import Store
    from ..paradigms import HostParadigm
    from ..tools.context import ParadigmAwareToolContext
    from ..tools.web import read_page

    embedder = get_embedder()
    embedder.embed(["warm up the model", "and its batch path"] * 20)
    tmp = tempfile.mkdtemp(prefix="fh-bench-web-")
    httpd = _server(_page(40))
    url = f"http://127.0.0.1:{httpd.server_address[1]}/study"
    try:
        def cold(i: int) -> None:
            store = Store(os.path.join(tmp, f"cold-{i}.duckdb"))
            read_page(f"{url}?r={i}", ParadigmAwareToolContext(paradigm=HostParadigm.BERNARD, store=store,
                                                                embedder=embedder))

        warm_store = Store(os.path.join(tmp, "warm.duckdb"))
        warm_ctx = ParadigmAwareToolContext(paradigm=HostParadigm.BERNARD, store=warm_store, embedder=embedder)
        read_page(url, warm_ctx)
        t_cold = _median(cold, args.rounds)
        t_cached = _median(lambda i: read_page(url, warm_ctx), args.rounds)
        print(f"read_page, 40-paragraph page, median of {args.rounds}:")
        print(f"  cold (fetch + extract + write-back)  {t_cold * 1000:9.1f} ms")
        print(f"  cached                               {t_cached * 1000:9.1f} ms   ratio cold/cached "
              f"{t_cold / t_cached:.1f}×")

        texts = [f"Passage {j}: " + " ".join(f"intersection {j} crash count {k} fell after daylighting."
                                             for k in range(12)) for j in range(args.passages)]

        def batch(i: int) -> None:
            store = Store(os.path.join(tmp, f"batch-{i}.duckdb"))
            write_memories(store, [f"r{i} {t}" for t in texts], namespace="bernard", density=90,
                           embedder=embedder)

        def one_by_one(i: int) -> None:
            store = Store(os.path.join(tmp, f"single-{i}.duckdb"))
            for t in texts:
                write_memory(store, f"r{i} {t}", namespace="bernard", density=90, embedder=embedder)

        t_single = _median(one_by_one, args.rounds)
        t_batch = _median(batch, args.rounds)
        print(f"write-back of {args.passages} passages, median of {args.rounds}:")
        print(f"  one write_memory each (baseline)     {t_single * 1000:9.1f} ms")
        print(f"  write_memories, one batch            {t_batch * 1000:9.1f} ms   ratio "
              f"{t_single / t_batch:.1f}× faster")
    finally:
        httpd.shutdown()
    return 0
