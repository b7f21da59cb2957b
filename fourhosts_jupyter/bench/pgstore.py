"""Shared-store benchmark: PostgreSQL + pgvector beside the embedded DuckDB + FAISS store.

    python -m fourhosts_jupyter.bench pgstore                   # 20k memories: a quick run
    python -m fourhosts_jupyter.bench pgstore --n 1000000 --ingest-rows 20000
                                                                # the 1M figures (16-25 min here)
    python -m fourhosts_jupyter.bench pgstore --url postgresql://…
    python -m fourhosts_jupyter.bench pgstore --n 0 --rounds 0 --writers 4 --per-writer 10000
                                                                # (c) concurrent writers only

Vectors: realistic, 384-d (``_real_vectors``: MiniLM embeddings of a few thousand real texts
expanded by neighbour mixing and noise); two query sets: real questions, and held-out expansions
drawn like the stored vectors. Query embedding excluded.

(b) bulk ingest, medians over ``--rounds``: the same rows through ``add_memories`` into a fresh
    DuckDB store (Arrow insert) and into an emptied PostgreSQL store (binary COPY into a temporary
    table, INSERT … ON CONFLICT, HNSW + GIN maintained); store creation, migrations and emptying
    stay outside the timed windows. Beside them the bare binary COPY into an unindexed table.
(a) search at ``--n``: the rows loaded through COPY with the HNSW index dropped, then built once
    with settings for a 2-core machine (``maintenance_work_mem``, one parallel maintenance
    worker); p50 / p99 and recall@10 against exact search (NumPy, all vectors) of pgvector
    through the store's own query (ef_search 40 for k = 10; k = 250 as select asks), beside
    FAISS as the embedded store builds it (flat below 50k, tuned IVF above) and FAISS flat.

Without ``--url`` a private PostgreSQL 16 with pgvector is started with ``pgserver`` in a
temporary directory and stopped after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._pgserver import database
from .memory import DIM, _pct

LOAD_BATCH = 50_000


def _records(n: int, start: int = 0) -> list[Any]:
    from ..memory.store import MemoryRecord

    return [MemoryRecord(f"m{i}", "shared", "semantic", f"memory {i} about topic {i % 97}", "note")
            for i in range(start, start + n)]


def _load(fn: Any, store: Any, n: int, x: np.ndarray, batch: int) -> float:
    t = time.perf_counter()
    for s in range(0, n, batch):
        fn(store, _records(min(batch, n - s), s), x[s:s + batch])
    return time.perf_counter() - t


def _empty_pg(pg: Any) -> None:
    with pg.connect() as con:
        con.execute("TRUNCATE memories RESTART IDENTITY")
    _outside_transaction(pg, "VACUUM fourhosts.memories")


def _outside_transaction(pg: Any, sql: str) -> None:
    import psycopg

    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute(sql)


def _bare_copy(pg: Any, x: np.ndarray) -> float:
    from pgvector import Vector

    with pg.connect() as con:
        con.execute("DROP TABLE IF EXISTS bench_copy")
        con.execute(f"CREATE TABLE bench_copy (key BIGINT, embedding vector({DIM}))")
    t = time.perf_counter()
    with pg.connect() as con:
        with con.cursor().copy("COPY bench_copy (key, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for i, v in enumerate(x):
                copy.write_row([i, Vector(v)])
    rate = len(x) / (time.perf_counter() - t)
    with pg.connect() as con:
        con.execute("DROP TABLE bench_copy")
    return rate


def bench_ingest(pg: Any, x: np.ndarray, rows: int, rounds: int, batch: int) -> None:
    from ..memory.backends import open_store

    add = lambda store, recs, vecs: store.add_memories(recs, vecs, "bench")  # noqa: E731
    x = x[:rows]
    duck, post, bare = [], [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            duck_store = open_store(Path(tmp) / "bench.duckdb")
            duck_store.count_memories()  # created and migrated before the clock starts
            duck.append(rows / _load(add, duck_store, rows, x, batch))
        _empty_pg(pg)
        post.append(rows / _load(add, pg, rows, x, batch))
        bare.append(_bare_copy(pg, x))
    d, p, b = (statistics.median(v) for v in (duck, post, bare))
    print(f"\n## (b) bulk ingest: {rows:,} rows x {rounds} rounds through add_memories, "
          f"{batch:,} rows per call (medians)")
    print(f"  DuckDB (Arrow insert)                          {d:>10,.0f} rows/s")
    print(f"  PostgreSQL (binary COPY, HNSW + GIN maintained) {p:>9,.0f} rows/s  ({p / d:.2f}x DuckDB)")
    print(f"  bare binary COPY into an unindexed table        {b:>9,.0f} rows/s  ({b / d:.2f}x DuckDB)",
          flush=True)


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


def _exact(x: np.ndarray, queries: np.ndarray, k: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers and similarities of each query's k nearest (inner product on unit vectors
    = cosine), best first."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for s in range(0, len(x), 200_000):
        sims = queries @ x[s:s + 200_000].T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], axis=1)
        cand_i = np.concatenate([best_i, top + s], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i, best_s


def bench_search(pg: Any, x: np.ndarray, query_sets: dict[str, np.ndarray], *, hnsw_mem: str,
                 workers: int) -> None:
    from ..memory.index import VectorIndex
    from ..memory.pg_migrations import HNSW_INDEX

    n = len(x)
    print(f"\n## (a) dense search over {n:,} memories, k = 10, one query at a time")
    _empty_pg(pg)
    with pg.connect() as con:  # as store_copy into an empty store: load first, index once after
        con.execute("DROP INDEX IF EXISTS memories_hnsw")

    def insert(store: Any, recs: list[Any], vecs: np.ndarray) -> None:
        with store.connect() as con:
            store.insert_memories(con, recs, vecs, "bench")

    load_s = _load(insert, pg, n, x, LOAD_BATCH)
    print(f"  load through binary COPY (no HNSW yet): {load_s:.1f} s, {n / load_s:,.0f} rows/s", flush=True)
    with pg.connect() as con:
        con.execute(f"SET maintenance_work_mem = '{hnsw_mem}'")
        con.execute(f"SET max_parallel_maintenance_workers = {workers}")
        t = time.perf_counter()
        con.execute(HNSW_INDEX)
        build_s = time.perf_counter() - t
    _outside_transaction(pg, "VACUUM ANALYZE fourhosts.memories")
    print(f"  pgvector HNSW build (m 16, ef_construction 64, maintenance_work_mem {hnsw_mem}, "
          f"{workers} parallel worker(s) + leader): {build_s:.1f} s", flush=True)
    with pg.connect() as con:
        keys = np.array([r[0] for r in con.execute("SELECT key FROM memories ORDER BY key").fetchall()],
                        dtype=np.int64)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t = time.perf_counter()
    embedded = VectorIndex.build(keys, x, dim=DIM, model="bench")
    print(f"  FAISS as embedded ({embedded.kind}) build: {time.perf_counter() - t:.1f} s", flush=True)
    flat = VectorIndex.build(keys, x, dim=DIM, model="bench", kind="flat")
    si = pg.indexes()
    mask = si.allowed(None)
    pv = si.vector_index(pg, "bench", DIM)
    for set_name, queries in query_sets.items():
        rows, sims = _exact(x, queries)
        truth = keys[rows[:, :10]]
        print(f"  -- {len(queries)} {set_name}: exact top-1 cosine {np.median(sims[:, 0]):.3f} (median), "
              f"gap 10th-11th {np.median(sims[:, 9] - sims[:, 10]):.4f}")
        lines = []
        for name, fn in (("FAISS flat (exact)", lambda q: flat.search(q, 10)[0]),
                         (f"FAISS as embedded ({embedded.kind})", lambda q: embedded.search(q, 10)[0])):
            tt, f = _search(fn, queries)
            lines.append((name, tt, _recall(f, truth)))
        for k, label in ((10, "k 10, ef_search 40"), (100, "k 100, ef_search 100"),
                         (250, "k 250 (select), ef_search 250"), (1000, "k 1000, ef_search 1000")):
            tt, f = _search(lambda q, k=k: pv.search(q, k, mask)[0][:10], queries)
            lines.append((f"pgvector HNSW {label}", tt, _recall(f, truth)))
        for name, tt, r in lines:
            print(f"  {name:40s} p50 {_pct(tt, 50):8.2f} ms  p99 {_pct(tt, 99):8.2f} ms  recall@10 {r:.3f}")
        base = _pct(lines[1][1], 50)
        print(f"  pgvector (k 10) / embedded FAISS p50: {_pct(lines[2][1], 50) / base:.1f}x", flush=True)


def run(url: str, args: argparse.Namespace) -> None:
    from . import _real_vectors
    from ..memory.backends import open_store

    if args.n or args.rounds:
        t = time.perf_counter()
        x, query_sets, how = _real_vectors.make(max(args.n, args.ingest_rows), args.queries)
        print(f"vectors: {how} ({time.perf_counter() - t:.0f} s to make)")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start",
          flush=True)
    pg = open_store(url)
    pg.count_memories()  # created and migrated outside every timed window
    if args.rounds:
        bench_ingest(pg, x, args.ingest_rows, args.rounds, args.batch)
    if args.n:
        bench_search(pg, x[:args.n], query_sets, hnsw_mem=args.hnsw_mem, workers=args.workers)
    if args.writers:
        from .pg_writers import bench_writers

        bench_writers(url, args.writers, args.per_writer)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench pgstore")
    ap.add_argument("--n", type=int, default=20_000, help="memories searched (default 20,000; 0 skips)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ingest-rows", type=int, default=5_000, help="rows per ingest round (default 5,000)")
    ap.add_argument("--rounds", type=int, default=5, help="ingest rounds (0 skips the ingest figures)")
    ap.add_argument("--batch", type=int, default=10_000, help="rows per add_memories call")
    ap.add_argument("--hnsw-mem", default="4GB", help="maintenance_work_mem for the HNSW build")
    ap.add_argument("--workers", type=int, default=1, help="max_parallel_maintenance_workers")
    ap.add_argument("--writers", type=int, default=0,
                    help="also time this many processes writing one store at once (0 skips)")
    ap.add_argument("--per-writer", type=int, default=10_000, help="memories each writer adds")
    ap.add_argument("--url", help="an existing PostgreSQL with pgvector (default: start pgserver)")
    args = ap.parse_args(argv)
    with database(args.url) as url:
        run(url, args)
    return 0
