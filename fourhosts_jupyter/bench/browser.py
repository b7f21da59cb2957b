"""Memory browser cost on a large store: opening it and turning pages.

    python -m fourhosts_jupyter.bench browser [--memories 100000] [--page-size 25] [--repeat 7]

Baseline (same process): reading every live memory into a DataFrame, which is what a browser
without paging must do before it can show anything. Figures are medians over ``repeat`` rounds:
opening the widget (first page drawn), going to the first / middle / last page, and the HTML
one page sends to the front end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..memory.store import MemoryRecord, Store


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _store(path: Path, n: int) -> Store:
    store = Store(path)
    body = "Lower urban speed limits reduce crash severity.\n\n" * 6
    batch = 20_000
    for start in range(0, n, batch):
        store.add_memories([
            MemoryRecord(id=f"b{i:07d}", namespace="shared", memory_type="semantic",
                         title=f"Document {i // 8}", source="document", content=f"{i} {body}")
            for i in range(start, min(n, start + batch))
        ])
    return store


def main(argv: list[str] | None = None) -> int:
    from ..jupyter.browser import MemoryBrowser

    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench browser")
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--page-size", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fourhosts-bench-browser-") as tmp:
        store = _store(Path(tmp) / "store.duckdb", a.memories)
        load_all = _median_ms(lambda: store.memories(limit=None), a.repeat)
        opened = _median_ms(lambda: MemoryBrowser(store, page_size=a.page_size).widget(), a.repeat)
        b = MemoryBrowser(store, page_size=a.page_size)
        b.widget()
        flips = {name: _median_ms(lambda p=p: b.goto(p), a.repeat)
                 for name, p in (("first", 0), ("middle", b.pages // 2), ("last", b.pages - 1))}
        html = sum(len(c.value) for c in b._cells)

    print(f"memories: {a.memories:,}, page size {a.page_size}, medians of {a.repeat} rounds")
    print(f"baseline, every memory into a DataFrame: {load_all:8.1f} ms")
    print(f"open the browser (first page drawn):     {opened:8.1f} ms  "
          f"({load_all / opened:.1f}× faster than the baseline)")
    for name, ms in flips.items():
        print(f"go to the {name:<6} page:                  {ms:8.1f} ms  "
              f"({load_all / ms:.1f}× faster than the baseline)")
    print(f"HTML of one page: {html / 1024:.1f} KiB")
    return 0
