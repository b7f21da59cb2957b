"""Memory benchmark: vector search, select end to end, bulk writes, embedding speed, quality.

    python -m fourhosts_jupyter.bench memory                    # 10k, 100k, 1M
    python -m fourhosts_jupyter.bench memory --sizes 10000,100000 --skip-embedding
    python -m fourhosts_jupyter.bench memory --only writes --write-rows 10000

Figures (each with its baseline measured in the same process):

- search latency, k = 10, 384-d, one thread, query embedding excluded: p50 / p99 of the index
  ``VectorIndex`` chooses (flat below 50k, IVF tuned to recall@10 ≥ 0.95 above) against exact
  flat search; recall@10 on held-out queries; a 25%-namespace filtered search. Vectors are
  synthetic but clustered (recall on uniform random vectors means nothing).
- select end to end at 100k memories (embed the query with the local model + dense + BM25 +
  fusion + MMR), with the stored vectors synthetic (embedding 100k passages takes minutes).
- bulk write rate through ``add_memories`` (embedding excluded) against row-by-row ``executemany``
  and a raw DuckDB Arrow insert of the same rows, each into a fresh, already-migrated store.
- embedding throughput: batched and length-sorted vs one text per call; bf16 and int8 against
  fp32 with their ranking agreement (the deciding figure for using them).
- retrieval quality (nDCG@10) per mode on ``tests/data/retrieval_*`` when run from a checkout.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

_REPO = Path(__file__).resolve().parents[2]
DIM = 384


def _pct(xs: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, p))


def _timed(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[float]:
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append(time.perf_counter() - t)
    return out


def clustered(n: int, *, seed: int = 0, centres_seed: int = 0, clusters: int | None = None) -> np.ndarray:
    """Unit vectors around sqrt(n) centres (the same centres for the same ``centres_seed``)."""
    c = clusters or max(16, int(math.sqrt(n)))
    centres = np.random.default_rng(centres_seed).standard_normal((c, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    step = 200_000
    for s in range(0, n, step):
        m = min(step, n - s)
        block = centres[rng.integers(0, c, m)] + 0.7 * rng.standard_normal((m, DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s : s + m] = block
    return out


# -- vector search -------------------------------------------------------------------------


def bench_search(sizes: Sequence[int], n_queries: int) -> None:
    import faiss

    from ..memory.index import VectorIndex

    print("\n## Vector search (k = 10, 384-d, 1 thread, query embedding excluded)")
    print(f"{'n':>9} {'index':>14} {'build s':>8} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9} "
          f"{'exact p50':>9} {'exact p99':>9} {'speed-up':>8} {'filt p50':>8} {'filt p99':>8}")
    for n in sizes:
        clusters = max(16, int(math.sqrt(n)))
        x = clustered(n, seed=1, clusters=clusters)
        keys = np.arange(1, n + 1, dtype=np.int64)
        q = clustered(n_queries, seed=2, clusters=clusters)  # held out: new points, same centres
        t = time.perf_counter()
        vi = VectorIndex.build(keys, x, dim=DIM)
        build = time.perf_counter() - t
        for v in q[:20]:
            vi.search(v, 10)
        lat = _timed(lambda v: vi.search(v, 10), q)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(x)
        faiss.omp_set_num_threads(1)
        n_exact = min(len(q), 100 if n <= 100_000 else 30)
        exact_lat = _timed(lambda v: flat.search(v.reshape(1, -1), 10), q[:n_exact])
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        _, truth = flat.search(q, 10)
        found = np.stack([vi.search(v, 10)[0] - 1 for v in q])
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
        allowed = np.zeros(n + 1, dtype=bool)
        allowed[np.random.default_rng(3).choice(keys, n // 4, replace=False)] = True
        filt = _timed(lambda v: vi.search(v, 10, allowed), q)
        kind = vi.kind if not vi.is_ivf else f"IVF{vi.index.nlist}/p{vi.index.nprobe}"
        print(f"{n:>9,} {kind:>14} {build:>8.1f} {_pct(lat, 50):>7.2f} {_pct(lat, 99):>7.2f} {recall:>9.3f} "
              f"{_pct(exact_lat, 50):>9.2f} {_pct(exact_lat, 99):>9.2f} "
              f"{_pct(exact_lat, 50) / max(_pct(lat, 50), 1e-6):>7.1f}x {_pct(filt, 50):>8.2f} {_pct(filt, 99):>8.2f}",
              flush=True)
        x = flat = vi = None  # free this size's arrays before the next (a del here confuses pyflakes)


# -- bulk writes and select end to end -----------------------------------------------------

_TOPICS = [
    "traffic speed street crash pedestrian cycling limit camera junction bus",
    "heat tree roof cooling shade park wave temperature canopy island",
    "privacy data breach consent gdpr article controller processor fine",
    "model training fairness audit bias risk evaluation dataset oversight",
    "pricing market platform switching network customer subscription growth",
    "change coalition vision urgency resistance culture manager sponsor",
    "remote office hybrid commute productivity promotion team anchor",
    "waste compost plastic repair reuse landfill packaging recycle refill",
]
_FILLER = "the a of and to in for with on by from about this that new local city".split()


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = [t.split() for t in _TOPICS]
    rare = [f"term{i}" for i in range(5000)]
    out = []
    for i in range(n):
        topic = vocab[i % len(vocab)]
        words = list(rng.choice(topic, 12)) + list(rng.choice(_FILLER, 10)) + list(rng.choice(rare, 3))
        rng.shuffle(words)
        out.append(" ".join(words) + ".")
    return out


def _records(texts: Sequence[str], start: int = 0) -> list[Any]:
    from ..memory.store import MemoryRecord

    return [
        MemoryRecord(id=f"b{start + i}", namespace=("shared", "dolores", "teddy", "bernard", "maeve")[i % 5],
                     memory_type="semantic", content=t, source="document", title=f"doc {start + i}",
                     document_id=f"d{start + i}", metadata={"path": "bench"})
        for i, t in enumerate(texts)
    ]


def _memory_columns(recs: Sequence[Any], vecs: np.ndarray, model: str) -> Any:
    """The rows ``add_memories`` writes, as the Arrow table the raw insert baseline copies."""
    import json

    import pyarrow as pa

    from ..memory.store import content_hash, utcnow

    n = len(recs)
    return pa.table({
        "id": [r.id for r in recs], "namespace": [r.namespace for r in recs],
        "memory_type": [r.memory_type for r in recs], "content": [r.content for r in recs],
        "metadata": [json.dumps(r.metadata or {}) for r in recs],
        "importance": [float(r.importance) for r in recs], "source": [r.source for r in recs],
        "document_id": [r.document_id for r in recs], "title": [r.title for r in recs],
        "content_hash": [content_hash(r.content) for r in recs],
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), vecs.shape[1]),
        "model": [model] * n, "created_at": pa.array([utcnow()] * n, type=pa.timestamp("us")),
    })


_COLUMNS = ("id, namespace, memory_type, content, metadata, importance, source, document_id, "
            "title, content_hash, embedding, model, created_at")


def bench_bulk_write(workdir: Path, n: int, rounds: int, row_rounds: int) -> None:
    """Rows/s writing the same ``n`` memories three ways, each into a fresh store created and
    migrated before its clock starts: ``Store.add_memories`` (Arrow, with dedup and the id
    list), row-by-row ``executemany``, and a raw DuckDB ``INSERT … SELECT`` of a ready Arrow
    table into the same table (no Python, no dedup: the physical limit of this schema here).
    Each window ends with a CHECKPOINT, so every path is timed until its rows are in the
    database file (a small write otherwise stops in the WAL and looks faster than a large one).
    Medians over ``rounds`` (``row_rounds`` for the slow executemany), rounds interleaved so
    machine load falls on all three alike."""
    from statistics import median

    from ..memory.store import Store

    texts = synthetic_texts(n)
    vecs = clustered(n, seed=4)
    recs = _records(texts)
    rows = [[r.id, r.namespace, r.memory_type, r.content, "{}", r.source, r.title, str(i),
             vecs[i].tolist(), "synthetic"] for i, r in enumerate(recs)]
    ready = _memory_columns(recs, vecs, "synthetic")
    batch = 20_000
    rates: dict[str, list[float]] = {"add_memories": [], "executemany": [], "raw": []}

    def fresh(name: str) -> Store:
        store = Store(workdir / f"{name}-{len(list(workdir.iterdir()))}.duckdb")
        store.count_memories()  # creates and migrates, outside the timed window
        return store

    for r in range(rounds):
        store = fresh("arrow")
        with store.hold() as con:  # one connection for the batches and the checkpoint
            t = time.perf_counter()
            for s in range(0, n, batch):
                store.add_memories(recs[s : s + batch], vecs[s : s + batch], model="synthetic")
            con.execute("CHECKPOINT")
            rates["add_memories"].append(n / (time.perf_counter() - t))
        store = fresh("raw")
        with store.hold() as con:
            con.register("_ready", ready)
            t = time.perf_counter()
            con.execute(f"INSERT INTO memories ({_COLUMNS}) SELECT {_COLUMNS.replace('metadata', 'metadata::JSON')} "
                        "FROM _ready")
            con.execute("CHECKPOINT")
            rates["raw"].append(n / (time.perf_counter() - t))
        if r < row_rounds:
            store = fresh("rows")
            with store.hold() as con:
                t = time.perf_counter()
                con.executemany(
                    "INSERT INTO memories (id, namespace, memory_type, content, metadata, source, title, "
                    "content_hash, embedding, model, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                    rows,
                )
                con.execute("CHECKPOINT")
                rates["executemany"].append(n / (time.perf_counter() - t))
    a, e, w = (median(rates[k]) for k in ("add_memories", "executemany", "raw"))
    print(f"\n## Bulk write, {n:,} memories with 384-d vectors (embedding excluded), "
          f"medians of {rounds} rounds ({row_rounds} for executemany); load {os.getloadavg()[0]:.1f}")
    print(f"add_memories (Arrow): {a:,.0f} rows/s; executemany {e:,.0f} rows/s (add_memories "
          f"{a / e:.1f}x); raw DuckDB Arrow insert {w:,.0f} rows/s (add_memories at "
          f"{a / w:.0%} of it)")


def bench_select(workdir: Path, n: int, n_queries: int, local: Any) -> None:
    from ..context.select import select
    from ..memory.retriever import open_indexes
    from ..memory.store import Store

    print(f"\n## Select end to end at {n:,}")
    store = Store(workdir / "bench.duckdb")
    store.count_memories()
    texts = synthetic_texts(n)
    vecs = clustered(n, seed=4)
    model = local.name if local is not None else "synthetic"
    batch = 20_000
    recs = _records(texts)
    with store.hold():
        for s in range(0, n, batch):
            store.add_memories(recs[s : s + batch], vecs[s : s + batch], model=model)
    t = time.perf_counter()
    si = open_indexes(store)
    si.vector_index(store, model, DIM)
    cold = time.perf_counter() - t
    vi = si.vectors[model]
    print(f"derived indexes built from the store (catalog + BM25 + {vi.kind}): {cold:.1f} s")
    if local is None:
        print("select end to end: skipped (--skip-embedding)")
        return
    rng = np.random.default_rng(5)
    queries = [" ".join(rng.choice(_TOPICS[i % len(_TOPICS)].split(), 4)) + f" {i}" for i in range(n_queries)]
    for q in queries[:5]:
        select(store, q, k=5, embedder=local)
    lat = _timed(lambda q: select(store, q, k=5, embedder=local), queries)
    emb = _timed(lambda q: local.embed([q]), queries[:50])
    dense_only = _timed(lambda q: select(store, q, k=5, embedder=local, mode="dense"), queries[:50])
    print(f"select (embed + FAISS {vi.kind} + BM25 + RRF + MMR, k = 5): p50 {_pct(lat, 50):.1f} ms, "
          f"p99 {_pct(lat, 99):.1f} ms; of which query embedding p50 {_pct(emb, 50):.1f} ms; "
          f"dense-only select p50 {_pct(dense_only, 50):.1f} ms")
    hosted = _timed(lambda q: select(store, q, k=5, embedder=local, host="teddy",
                                     namespaces=["teddy", "shared"]), queries[:50])
    print(f"select with host boost + namespace filter (teddy + shared): p50 {_pct(hosted, 50):.1f} ms")


# -- embedding -----------------------------------------------------------------------------


def _passages(n: int) -> list[str]:
    from ..memory.ingest import chunk
    from ..memory.seed import corpus_files

    out: list[str] = []
    for f in corpus_files():
        out.extend(chunk(f.read_text(encoding="utf-8"), words=100, overlap=0))
    while len(out) < n:
        out = out + out
    return out[:n]


def _top10(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    return np.argsort(-(q @ d.T), axis=1)[:, :10]


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    top1 = float(np.mean(a[:, 0] == b[:, 0]))
    overlap = float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b)]))
    return top1, overlap


def bench_embedding(n: int) -> Any:
    import torch

    from ..memory.embeddings import LocalEmbedder, _encode, cpu_has_native_bf16

    print("\n## Embedding throughput (all-MiniLM-L6-v2, CPU, ~100-word passages)")
    texts = _passages(n)
    emb = LocalEmbedder()
    emb.embed(["warm up"])
    model = emb.model
    t = time.perf_counter()
    base = np.vstack([_encode(model, [x], 1) for x in texts[: n // 4]])
    one_rate = (n // 4) / (time.perf_counter() - t)
    t = time.perf_counter()
    full = emb.embed(texts)
    batch_rate = n / (time.perf_counter() - t)
    assert np.allclose(base, full[: n // 4], atol=1e-4)
    print(f"one text per call: {one_rate:.0f}/s; batched 64, length-sorted: {batch_rate:.0f}/s; "
          f"ratio {batch_rate / one_rate:.1f}x (same vectors)")

    queries = ["how can cities cut road deaths", "managing risks of AI systems", "why change programmes stall",
               "hybrid work productivity evidence", "cooling cities in heat waves", "competitive advantage in software",
               "reducing household waste", "negotiation tactics", "public health injury prevention",
               "data privacy as strategy"]
    docs = texts[: min(n, 128)]
    q32, d32 = emb.embed(queries), full[: len(docs)]
    ref = _top10(q32, d32)
    print(f"CPU native bf16 (AMX / AVX512-BF16): {cpu_has_native_bf16()}; "
          f"LocalEmbedder's choice: {emb.bf16_reason}")
    m16 = LocalEmbedder(bf16=True)
    m16.embed(["warm"])
    t = time.perf_counter()
    d16 = m16.embed(docs)
    r16 = len(docs) / (time.perf_counter() - t)
    t = time.perf_counter()
    emb.embed(docs)
    r32 = len(docs) / (time.perf_counter() - t)
    a16 = _agreement(ref, _top10(m16.embed(queries), d16))
    print(f"bf16: {r16:.0f}/s vs fp32 {r32:.0f}/s = {r16 / r32:.2f}x; top-1 agreement {a16[0]:.2f}, "
          f"top-10 overlap {a16[1]:.2f}")
    q8 = torch.ao.quantization.quantize_dynamic(LocalEmbedder(bf16=False).model, {torch.nn.Linear},
                                                 dtype=torch.qint8)
    t = time.perf_counter()
    d8 = _encode(q8, docs, 64)
    r8 = len(docs) / (time.perf_counter() - t)
    a8 = _agreement(ref, _top10(_encode(q8, queries, 64), d8))
    print(f"int8 dynamic quantisation: {r8:.0f}/s = {r8 / r32:.2f}x; top-1 agreement {a8[0]:.2f}, "
          f"top-10 overlap {a8[1]:.2f} (not used: rankings change)")
    return emb


# -- quality -------------------------------------------------------------------------------


def bench_quality(workdir: Path, local: Any) -> None:
    from ..memory.evaluate import evaluate, load_queries
    from ..memory.ingest import ingest
    from ..memory.store import Store

    corpus = _REPO / "tests" / "data" / "retrieval_corpus.jsonl"
    qfile = _REPO / "tests" / "data" / "retrieval_queries.jsonl"
    if not corpus.exists() or local is None:
        print("\n## Retrieval quality: skipped (needs a source checkout and the local model)")
        return
    store = Store(workdir / "quality.duckdb")
    ingest(corpus, store, id_field="_id", embedder=local, progress=False)
    queries = load_queries(qfile)
    print(f"\n## Retrieval quality on tests/data/retrieval_* ({len(queries)} queries)")
    for mode, kw in (("bm25", {}), ("dense", {}), ("hybrid", {}),
                     ("hybrid", {"weights": (0.6, 0.4)})):
        q = evaluate(store, queries, mode, embedder=local, **kw)
        label = mode + (" 0.6/0.4" if kw else "")
        print(f"{label:>15}: nDCG@10 {q.ndcg10:.4f}  recall@10 {q.recall10:.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench memory")
    ap.add_argument("--sizes", default="10000,100000,1000000", help="vector counts for search latency")
    ap.add_argument("--select-size", type=int, default=100_000, help="memories for select end to end")
    ap.add_argument("--write-rows", type=int, default=10_000, help="memories per bulk-write round")
    ap.add_argument("--write-rounds", type=int, default=5, help="rounds of the Arrow paths")
    ap.add_argument("--row-rounds", type=int, default=3, help="rounds of the executemany baseline")
    ap.add_argument("--only", choices=("writes",), help="run one section alone")
    ap.add_argument("--queries", type=int, default=200, help="timed queries per size")
    ap.add_argument("--embed-passages", type=int, default=512)
    ap.add_argument("--skip-embedding", action="store_true", help="no local model (search and writes only)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    workdir = Path(tempfile.mkdtemp(prefix="fourhosts-bench-memory-"))
    try:
        if args.only == "writes":
            bench_bulk_write(workdir, args.write_rows, args.write_rounds, args.row_rounds)
            return 0
        local = None if args.skip_embedding else bench_embedding(args.embed_passages)
        bench_search(sizes, args.queries)
        bench_bulk_write(workdir, args.write_rows, args.write_rounds, args.row_rounds)
        bench_select(workdir, args.select_size, min(args.queries, 200), local)
        bench_quality(workdir, local)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
