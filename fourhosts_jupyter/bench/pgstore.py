"""Shared-store benchmark: PostgreSQL + pgvector beside the embedded DuckDB + FAISS store.

    python -m fourhosts_jupyter.bench pgstore                 # 100k memories
    python -m fourhosts_jupyter.bench pgstore --n 20000 --url postgresql://…

Figures (one run, same vectors, 384-d, synthetic but clustered; query embedding excluded):

- bulk ingest rows/s through ``add_memories``: PostgreSQL (binary COPY into a temporary table,
  INSERT … ON CONFLICT, HNSW and GIN maintained as rows arrive) against DuckDB (Arrow insert);
- dense search, k = 10, one query at a time: p50 / p99 and recall@10 against exact search for
  pgvector HNSW (m 16, ef_construction 64, ef_search 40 and 250: select asks for 250
  candidates) beside FAISS as the embedded store uses it (flat below 50k, tuned IVF above).

Without ``--url`` a private PostgreSQL 16 with pgvector is started with ``pgserver`` in a
temporary directory and stopped after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .memory import DIM, _pct, clustered


def _records(n: int) -> list[Any]:
    from ..memory.store import MemoryRecord

    return [MemoryRecord(f"m{i}", "shared", "semantic", f"memory {i} about topic {i % 97}", "note")
            for i in range(n)]


def _ingest(store: Any, recs: list[Any], x: np.ndarray, batch: int) -> float:
    t = time.perf_counter()
    for s in range(0, len(recs), batch):
        store.add_memories(recs[s:s + batch], x[s:s + batch], "bench")
    return len(recs) / (time.perf_counter() - t)


def _copy_then_index(pg: Any, x: np.ndarray) -> tuple[float, float]:
    """Rows/s of a bare binary COPY of the vectors, and seconds to build HNSW over them."""
    from pgvector import Vector

    with pg.connect() as con:
        con.execute(f"CREATE TABLE bench_copy (key BIGINT, embedding vector({DIM}))")
    t = time.perf_counter()
    with pg.connect() as con:
        with con.cursor().copy("COPY bench_copy (key, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for i, v in enumerate(x):
                copy.write_row([i, Vector(v)])
    rate = len(x) / (time.perf_counter() - t)
    t = time.perf_counter()
    with pg.connect() as con:
        con.execute("CREATE INDEX ON bench_copy USING hnsw (embedding vector_cosine_ops)")
    build = time.perf_counter() - t
    with pg.connect() as con:
        con.execute("DROP TABLE bench_copy")
    return rate, build


def _search(fn: Any, queries: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        keys = fn(q)
        times.append(time.perf_counter() - t)
        found.append(np.asarray(keys))
    return times, found


def _recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:10].tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))


def run(url: str, n: int, n_queries: int, batch: int) -> None:
    from ..memory.backends import open_store
    from ..memory.index import VectorIndex
    from ..memory.pg_migrations import DIM as PG_DIM

    assert DIM == PG_DIM
    x = clustered(n)
    queries = clustered(n_queries, seed=1)
    recs = _records(n)
    with tempfile.TemporaryDirectory() as tmp:
        duck = open_store(Path(tmp) / "bench.duckdb")
        duck.count_memories()
        duck_rate = _ingest(duck, recs, x, batch)
    pg = open_store(url)
    pg.count_memories()
    pg_rate = _ingest(pg, recs, x, batch)
    print(f"ingest {n} rows: PostgreSQL COPY {pg_rate:,.0f} rows/s, DuckDB Arrow {duck_rate:,.0f} rows/s "
          f"(PostgreSQL/DuckDB {pg_rate / duck_rate:.2f}x)", flush=True)
    copy_rate, build_s = _copy_then_index(pg, x)
    print(f"  where the time goes: binary COPY alone into an unindexed table {copy_rate:,.0f} rows/s; "
          f"building the HNSW index after it {build_s:.1f} s "
          f"(load + build {n / (n / copy_rate + build_s):,.0f} rows/s)", flush=True)

    with pg.connect() as con:
        keys_in_order = np.array([r[0] for r in con.execute(
            "SELECT key FROM memories ORDER BY key").fetchall()], dtype=np.int64)
    truth = np.array([keys_in_order[np.argsort(-(x @ q))[:10]] for q in queries])

    vi = VectorIndex.build(keys_in_order, x, dim=DIM, model="bench")
    flat = VectorIndex.build(keys_in_order, x, dim=DIM, model="bench", kind="flat")
    lines = []
    for name, fn in (
        ("FAISS exact (flat)", lambda q: flat.search(q, 10)[0]),
        (f"FAISS as embedded ({vi.kind})", lambda q: vi.search(q, 10)[0]),
    ):
        t, f = _search(fn, queries)
        lines.append((name, t, _recall(f, truth)))
    si = pg.indexes()
    mask = si.allowed(None)
    for ef in (40, 250):
        pv = si.vector_index(pg, "bench", DIM)
        t, f = _search(lambda q, ef=ef: pv.search(q, ef, mask)[0][:10], queries)
        lines.append((f"pgvector HNSW ef_search {ef} (rows fetched)", t, _recall(f, truth)))
    for name, t, r in lines:
        print(f"  {name:42s} p50 {_pct(t, 50):7.2f} ms  p99 {_pct(t, 99):7.2f} ms  recall@10 {r:.3f}")
    base = _pct(lines[1][1], 50)
    print(f"  pgvector ef 40 / embedded FAISS p50: {_pct(lines[2][1], 50) / base:.1f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench pgstore")
    ap.add_argument("--n", type=int, default=100_000, help="memories (default 100,000)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=10_000, help="rows per add_memories call")
    ap.add_argument("--url", help="an existing PostgreSQL with pgvector (default: start pgserver)")
    args = ap.parse_args(argv)
    if args.url:
        run(args.url, args.n, args.queries, args.batch)
        return 0
    import pgserver

    with tempfile.TemporaryDirectory(prefix="fourhosts-pg-bench-") as root:
        server = pgserver.get_server(root, cleanup_mode="stop")
        try:
            server.psql("CREATE DATABASE bench;")
            head, _, query = server.get_uri().partition("?")
            run(head.rsplit("/", 1)[0] + f"/bench?{query}", args.n, args.queries, args.batch)
        finally:
            from ..memory.pg_store import close_pools

            close_pools()
            server.cleanup()
    return 0
