"""Several processes writing one PostgreSQL store at once (the shared store's safety figure).

Each writer is a separate Python process adding ``per_writer`` memories of its own in batches
through ``add_memories`` (binary COPY, HNSW and GIN kept up to date), plus the same ten texts
in every batch that all writers race to store (stored once among all). ``tests/test_pg_store.py``
checks the counts at a size the suite can afford; ``bench pgstore --writers 4 --per-writer
10000`` runs the issue's size with 384-d vectors and prints rows/s and the exact counts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

WRITER = textwrap.dedent(
    """
    import sys
    from fourhosts_jupyter.memory.backends import open_store
    from fourhosts_jupyter.memory.embeddings import HashingEmbedder
    from fourhosts_jupyter.memory.store import MemoryRecord

    url, name, n, batch, dim, ns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    store, emb = open_store(url), HashingEmbedder()
    inserted = 0
    for start in range(0, n, batch):
        recs = [MemoryRecord(f"{name}-{i}", ns, "semantic", f"{name} note {i} on depots", "note")
                for i in range(start, start + batch)]
        # every writer also writes the same 10 texts in each batch: stored once in all
        recs += [MemoryRecord(f"{name}-s{start}-{j}", ns, "semantic", f"common text {start} {j}",
                              "note") for j in range(10)]
        v = emb.embed([r.content for r in recs])[:, :dim]
        v /= (v ** 2).sum(axis=1, keepdims=True) ** 0.5 + 1e-9
        inserted += len(store.add_memories(recs, v, f"{emb.name}-{dim}"))
    print("ok", inserted, flush=True)
    """
)


@dataclass(frozen=True)
class Writes:
    said: list[int]  # rows each writer says it stored
    seconds: float
    per_writer: int
    batch: int
    tag: str = ""  # prefix of the writers' ids

    def own_ids(self, writers: int) -> set[str]:
        return {f"{self.tag}w{w}-{i}" for w in range(writers) for i in range(self.per_writer)}

    def common_texts(self) -> set[str]:
        return {f"common text {b * self.batch} {j}" for b in range(self.per_writer // self.batch)
                for j in range(10)}


def write_at_once(url: str, *, writers: int = 4, per_writer: int = 10_000, batch: int = 500,
                  dim: int = 384, namespace: str = "shared", tag: str = "",
                  timeout: float = 3600) -> Writes:
    """Start ``writers`` processes on ``url`` together and wait for all (the store must be
    migrated already, so the writers race on rows, not on the schema)."""
    root = Path(__file__).resolve().parents[2]
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, f"{tag}w{i}", str(per_writer), str(batch),
                               str(dim), namespace], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=root) for i in range(writers)]
    said = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"a writer failed: {err[-2000:]}")
        word, n = out.split()
        said.append(int(n))
    return Writes(said, time.perf_counter() - t, per_writer, batch, tag)


def bench_writers(url: str, writers: int, per_writer: int, dim: int = 384) -> None:
    from ..memory.backends import open_store

    store = open_store(url)
    store.count_memories()  # migrated before the writers start
    tag = f"bench{int(time.time())}-"  # a namespace of its own: a store given with --url keeps its rows
    w = write_at_once(url, writers=writers, per_writer=per_writer, dim=dim, namespace=tag, tag=tag)
    with store.connect() as con:
        rows = con.execute("SELECT id, content FROM memories WHERE namespace = %s", [tag]).fetchall()
    own = w.own_ids(writers)
    ids = [i for i, _ in rows]
    shared = sorted(c for i, c in rows if i not in own)
    exact = (len(ids) == len(set(ids)) == sum(w.said) and own <= set(ids)
             and shared == sorted(w.common_texts()))
    print(f"\n(c) {writers} processes writing {per_writer:,} memories each ({dim}-d, HNSW + GIN kept) "
          f"into one store at once, plus {len(w.common_texts())} texts all of them write:")
    print(f"   {len(ids):,} rows in {w.seconds:.1f} s = {len(ids) / w.seconds:,.0f} rows/s; each writer "
          f"stored {', '.join(f'{n:,}' for n in w.said)}")
    print(f"   counts exact, nothing lost, nothing twice: {'yes' if exact else 'NO'}", flush=True)
