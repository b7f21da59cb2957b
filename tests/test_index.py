"""The derived indexes: FAISS (exact and IVF), BM25, and their catch-up with the store."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fourhosts_jupyter.context.select import search
from fourhosts_jupyter.context.write import write_memory
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.index import VectorIndex
from fourhosts_jupyter.memory.keyword import KeywordIndex, tokenize
from fourhosts_jupyter.memory.retriever import drop_cached, indexes_for, open_indexes


def clustered(n: int, d: int = 384, seed: int = 0, clusters: int | None = None,
              sample_seed: int | None = None) -> np.ndarray:
    """Clustered unit vectors (recall on uniform random vectors means nothing); the same
    ``seed`` with another ``sample_seed`` draws new points around the same centres."""
    rng = np.random.default_rng(seed)
    c = clusters or max(8, int(math.sqrt(n)))
    centres = rng.standard_normal((c, d)).astype(np.float32)
    if sample_seed is not None:
        rng = np.random.default_rng(sample_seed)
    x = centres[rng.integers(0, c, n)] + 0.7 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_topk(x, keys, q, k, allowed=None):
    s = x @ q
    if allowed is not None:
        s = np.where(allowed[keys], s, -np.inf)
    order = np.argsort(-s)[:k]
    return keys[order][np.isfinite(s[order])]


# -- FAISS --------------------------------------------------------------------------------


def test_flat_index_is_exact_and_removes():
    x = clustered(2000)
    keys = np.arange(10, 2010, dtype=np.int64)
    vi = VectorIndex.build(keys, x, dim=384)
    assert vi.kind == "flat"
    q = clustered(1, seed=9)[0]
    found, scores = vi.search(q, 10)
    assert found.tolist() == exact_topk(x, keys, q, 10).tolist()
    assert np.allclose(scores, np.sort(x @ q)[::-1][:10], atol=1e-5)
    assert vi.remove(found[:3]) == 3
    again, _ = vi.search(q, 10)
    assert not set(found[:3].tolist()) & set(again.tolist())
    assert again.tolist() == exact_topk(np.delete(x, found[:3] - 10, 0), np.delete(keys, found[:3] - 10), q, 10).tolist()


def test_ivf_is_chosen_above_threshold_and_keeps_recall():
    n = 6000
    x = clustered(n, seed=1)
    keys = np.arange(1, n + 1, dtype=np.int64)
    vi = VectorIndex.build(keys, x, dim=384, threshold=5000)
    assert vi.kind == "ivf"
    assert vi.recall is not None and vi.recall >= 0.95
    # held-out queries (not the tuning ones) from the same distribution
    queries = clustered(100, seed=1, clusters=int(math.sqrt(n)), sample_seed=2)
    hits = sum(
        len(set(vi.search(q, 10)[0].tolist()) & set(exact_topk(x, keys, q, 10).tolist())) for q in queries
    )
    assert hits / (10 * len(queries)) >= 0.95


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_namespace_filter_still_returns_k(kind):
    n = 6000
    x = clustered(n, seed=3)
    keys = np.arange(1, n + 1, dtype=np.int64)
    vi = VectorIndex.build(keys, x, dim=384, kind=kind)
    for share in (0.25, 0.01):  # one host of four; a small namespace (60 vectors)
        allowed = np.zeros(n + 1, dtype=bool)
        rng = np.random.default_rng(4)
        allowed[rng.choice(keys, int(n * share), replace=False)] = True
        q = clustered(1, seed=5)[0]
        found, _ = vi.search(q, 10, allowed)
        assert len(found) == 10
        assert allowed[found].all()
        if kind == "flat":
            assert found.tolist() == exact_topk(x, keys, q, 10, allowed).tolist()
    tiny = np.zeros(n + 1, dtype=bool)
    tiny[[5, 6, 7]] = True
    assert sorted(vi.search(clustered(1, seed=6)[0], 10, tiny)[0].tolist()) == [5, 6, 7]


def test_ivf_removes_and_adds_incrementally():
    x = clustered(3000, seed=7)
    keys = np.arange(1, 3001, dtype=np.int64)
    vi = VectorIndex.build(keys, x, dim=384, kind="ivf")
    q = x[100]
    assert vi.search(q, 1)[0][0] == 101
    vi.remove([101])
    assert 101 not in vi.search(q, 10)[0].tolist()
    vi.add([5000], x[100:101])
    assert vi.search(q, 1)[0][0] == 5000
    assert vi.ntotal == 3000


def test_index_saves_atomically_and_reloads(tmp_path):
    x = clustered(500, seed=8)
    keys = np.arange(1, 501, dtype=np.int64)
    path = tmp_path / "idx" / "v.faiss"
    vi = VectorIndex.build(keys, x, dim=384)
    vi.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["v.faiss"]  # no temp file left behind
    back = VectorIndex.load(path, dim=384)
    assert back.ntotal == 500 and back.keys().tolist() == keys.tolist()
    assert np.allclose(back.reconstruct([7]), x[6:7])
    assert VectorIndex.load(tmp_path / "missing.faiss", dim=384) is None
    assert VectorIndex.load(path, dim=8) is None  # another model's dimension
    path.write_bytes(b"not a faiss index")
    assert VectorIndex.load(path, dim=384) is None


# -- BM25 ---------------------------------------------------------------------------------


def bm25_reference(docs: dict[int, str], query: str, k1=0.9, b=0.4) -> dict[int, float]:
    toks = {k: tokenize(t) for k, t in docs.items()}
    n = len(docs)
    avg = sum(len(t) for t in toks.values()) / n
    out = {}
    for key, t in toks.items():
        s = 0.0
        for term in set(tokenize(query)):
            df = sum(term in tt for tt in toks.values())
            tf = t.count(term)
            if not tf:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(t) / avg))
        if s > 0:
            out[key] = s
    return out


def assert_scores(keys, scores, ref):
    got = dict(zip(keys.tolist(), scores.tolist()))
    assert set(got) == set(ref)
    assert got == pytest.approx(ref, rel=1e-5)
    assert list(got) == sorted(ref, key=lambda k: -ref[k])  # ranked by score


DOCS = {
    3: "Speed cameras reduce crashes on urban roads.",
    5: "Lower speed limits save pedestrians' lives; speed kills.",
    8: "Trees cool streets during heat waves.",
    13: "Cameras and limits: enforcement of speed on roads.",
}


def test_bm25_matches_reference_scores_through_adds_and_removes(tmp_path):
    kw = KeywordIndex()
    kw.add(list(DOCS), DOCS.values())
    query = "speed cameras on roads"
    keys, scores = kw.search(query, 10)
    ref = bm25_reference(DOCS, query)
    assert_scores(keys, scores, ref)
    kw.remove([3])
    rest = {k: v for k, v in DOCS.items() if k != 3}
    keys, scores = kw.search(query, 10)
    assert set(keys.tolist()) == set(bm25_reference(rest, query))
    kw.add([3], ["Trees and parks only."])  # a re-added key replaces its old postings
    rest[3] = "Trees and parks only."
    keys, scores = kw.search(query, 10)
    assert_scores(keys, scores, bm25_reference(rest, query))
    allowed = np.zeros(20, dtype=bool)
    allowed[13] = True
    assert kw.search(query, 10, allowed)[0].tolist() == [13]
    kw.save(tmp_path / "kw.npz")
    back = KeywordIndex.load(tmp_path / "kw.npz")
    assert back.search(query, 10)[0].tolist() == kw.search(query, 10)[0].tolist()
    assert len(back) == 4


# -- catch-up with the store --------------------------------------------------------------

EMB = HashingEmbedder()


def _write(store, text, ns="shared"):
    return write_memory(store, text, namespace=ns, density=90, embedder=EMB)


def test_index_files_are_saved_beside_the_store(store):
    for i in range(5):
        _write(store, f"note {i} about bus lanes and bus priority signals")
    search(store, "bus lanes", embedder=EMB)
    si = indexes_for(store)
    si.flush()
    files = sorted(p.name for p in si.index_dir.iterdir())
    assert files == ["keywords.npz", "vectors-hashing-384-v1.faiss"]
    assert si.index_dir.parent == store.path.with_name(store.path.name + ".index")


def test_stale_index_is_caught_up_from_another_process(store):
    first = _write(store, "ferry timetables along the river")
    _write(store, "tram priority at junctions")
    assert [h.id for h in search(store, "ferry timetables", k=1, embedder=EMB)] == [first]
    indexes_for(store).flush()
    # another process adds one memory and forgets the ferry note
    script = textwrap.dedent(
        f"""
        from fourhosts_jupyter.memory.store import Store
        from fourhosts_jupyter.memory.embeddings import HashingEmbedder
        from fourhosts_jupyter.context.write import write_memory
        s = Store({str(store.path)!r})
        write_memory(s, "ferry piers need step-free access", namespace="shared", density=90,
                     embedder=HashingEmbedder())
        assert s.forget([{first!r}]) == 1
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    hits = search(store, "ferry", k=5, embedder=EMB)
    assert first not in [h.id for h in hits]
    assert "ferry piers need step-free access" in [h.text for h in hits]
    si = indexes_for(store)
    assert len(si.vectors["hashing-384-v1"]) == 2 and len(si.keyword) == 2


def test_saved_index_is_caught_up_incrementally_when_a_new_process_opens_it(store):
    for i in range(30):
        _write(store, f"passage {i} on cycle lanes and junction {i}")
    search(store, "cycle lanes", embedder=EMB)
    si = indexes_for(store)
    si.flush()
    vec_file = si.index_dir / "vectors-hashing-384-v1.faiss"
    stamp = vec_file.stat().st_mtime_ns
    drop_cached(store)  # as if this were a new process
    new = _write(store, "a brand new passage about cargo bikes")
    hits = search(store, "cargo bikes", k=1, embedder=EMB)
    assert hits[0].id == new
    si = indexes_for(store)
    assert len(si.vectors["hashing-384-v1"]) == 31  # loaded 30 from disk, caught up by 1
    assert vec_file.stat().st_mtime_ns == stamp  # a 1-item catch-up did not rewrite the file


def test_corrupt_index_file_is_rebuilt_from_the_store(store):
    ids = [_write(store, f"memo {i} about parking permits zone {i}") for i in range(6)]
    search(store, "parking permits", embedder=EMB)
    si = indexes_for(store)
    si.flush()
    (si.index_dir / "vectors-hashing-384-v1.faiss").write_bytes(b"\x00garbage")
    (si.index_dir / "keywords.npz").write_bytes(b"garbage")
    drop_cached(store)
    hits = search(store, "parking permits zone 3", k=6, embedder=EMB)
    assert {h.id for h in hits} == set(ids)


def test_forget_removes_from_store_and_both_indexes(store):
    keep = _write(store, "keep this note about bus shelters")
    drop = _write(store, "forget this note about bus shelters")
    search(store, "bus shelters", embedder=EMB)
    si = open_indexes(store)
    key = next(k for k, r in si.rows.items() if r.id == drop)
    assert store.forget([drop]) == 1
    assert store.get_memories([drop]).empty
    assert key not in si.vectors["hashing-384-v1"].keys().tolist()
    assert key not in si.keyword.keys().tolist()
    assert [h.id for h in search(store, "bus shelters", embedder=EMB)] == [keep]
    # and the saved file no longer holds it either
    saved = VectorIndex.load(si.index_dir / "vectors-hashing-384-v1.faiss", dim=384)
    assert key not in saved.keys().tolist()


def test_namespace_filter_returns_k_through_search(any_store):
    store = any_store  # both back-ends
    for i in range(40):
        _write(store, f"teddy note {i}: safeguards for stakeholders in project {i}", ns="teddy")
    for i in range(40):
        _write(store, f"maeve note {i}: leverage and safeguards in deal {i}", ns="maeve")
    hits = search(store, "safeguards", k=10, embedder=EMB, namespaces=["maeve"])
    assert len(hits) == 10 and {h.namespace for h in hits} == {"maeve"}
    hits = search(store, "safeguards", k=10, embedder=EMB, namespaces=["teddy"], mode="dense")
    assert len(hits) == 10 and {h.namespace for h in hits} == {"teddy"}


def test_expired_and_query_context_memories_are_never_returned(any_store):
    store = any_store  # both back-ends
    live = _write(store, "long-term finding on bus rapid transit")
    write_memory(store, "scratch finding on bus rapid transit", namespace="shared", density=50,
                 embedder=EMB)
    write_memory(store, "Question researched: bus rapid transit", namespace="shared", density=90,
                 metadata={"kind": "query_context"}, embedder=EMB)
    ids = [h.id for h in search(store, "bus rapid transit", k=5, embedder=EMB)]
    assert live in ids and len(ids) == 2  # the scratchpad entry is live for 10 minutes
    # eleven minutes on, only the long-term finding is left
    si = open_indexes(store)
    assert si.allowed(None, now=time.time() + 11 * 60).sum() == 1
