"""The retrieval benchmark's variant rankers: the baseline re-implementation must rank exactly as
``search`` does (otherwise every variant's figure is measured against the wrong default), and
each variant must change what it says it changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fourhosts_jupyter.bench import retrieval_variants as rv
from fourhosts_jupyter.context.select import search
from fourhosts_jupyter.memory.embeddings import get_embedder
from fourhosts_jupyter.memory.evaluate import load_queries
from fourhosts_jupyter.memory.ingest import ingest
from fourhosts_jupyter.memory.store import Store

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("rv") / "rv.duckdb")
    emb = get_embedder()
    ingest(DATA / "retrieval_corpus.jsonl", store, id_field="_id", embedder=emb, progress=False)
    return rv.Context.open(store, emb), load_queries(DATA / "retrieval_queries.jsonl")


def test_the_reimplemented_default_ranks_as_search_does(ctx):
    c, queries = ctx
    assert c.embedder.name == "all-MiniLM-L6-v2"
    for q in queries:  # 13 of them hold figures or codes (the anchor rule)
        want = [h.to_json()["id"] for h in search(c.store, q["text"], k=10, embedder=c.embedder,
                                                  progress=False)]
        assert rv.default_rank(c.candidates(q["text"]))[:10] == want, q["text"]


def test_the_reimplemented_default_reads_arabic_as_search_does(tmp_path):
    from test_readability import QUESTIONS

    store = Store(tmp_path / "ar.duckdb")
    emb = get_embedder()
    ingest(DATA / "retrieval_arabic.jsonl", store, id_field="_id", embedder=emb, progress=False)
    c = rv.Context.open(store, emb)
    for q in QUESTIONS:
        want = [h.to_json()["id"] for h in search(store, q, k=10, embedder=emb, progress=False)]
        cand = c.candidates(q)
        assert rv.default_rank(cand)[:10] == want, q
        assert rv.fuse(cand)[:10] == [h.to_json()["id"] for h in search(
            store, q, k=10, embedder=emb, progress=False, readability=False, anchors=False)], q
        # without the readability rule, the spelled-out words are anchors (rare ones lead)
        assert rv.with_anchors(cand, rv.fuse(cand))[:10] == [h.to_json()["id"] for h in search(
            store, q, k=10, embedder=emb, progress=False, readability=False)], q


def test_weights_fusion_and_depth_change_the_scores():
    dense = [("a", 1, 0.9), ("b", 2, 0.5), ("c", 3, 0.1)]
    bm25 = [("c", 3, 12.0), ("a", 1, 6.0)]
    s = rv.fused_scores(dense, bm25, (0.8, 0.2))
    # min-max per list; c: dense 0 * 0.8 + bm25 1 * 0.2; a: 0.8 + 0; b absent from BM25 -> its minimum
    assert s == pytest.approx({"a": 0.8, "b": 0.4, "c": 0.2})
    assert rv.fused_scores(dense, bm25, (0.2, 0.8))["c"] == pytest.approx(0.8)
    r = rv.fused_scores(dense, bm25, (1.0, 1.0), fusion="rrf")
    assert r["a"] == pytest.approx(1 / 61 + 1 / 62) and r["b"] == pytest.approx(1 / 62)
    assert set(rv.fused_scores(dense, bm25, depth=1)) == {"a", "c"}


def test_lists_agreement():
    class C:
        dense = [(d, 0, 0.0) for d in "abcdefghij"]
        bm25 = [(d, 0, 0.0) for d in "abcdeklmno"]

    assert rv.agreement(C()) == 0.5


def test_bm25_feedback_searches_with_terms_from_the_first_results(ctx):
    c, queries = ctx
    cand = c.candidates(queries[0]["text"])
    asked: list[str] = []
    real = c.bm25_for
    c.bm25_for = lambda q, depth=rv.DEPTH: asked.append(q) or real(q, depth)  # record, then search
    try:
        ranked = rv.bm25_prf(cand)
    finally:
        del c.bm25_for
    assert len(asked) == 1 and asked[0].startswith(queries[0]["text"] + " ")
    assert len(asked[0].split()) > len(queries[0]["text"].split())
    assert len(ranked) == len(set(ranked)) >= 10


def test_every_variant_ranks_distinct_documents(ctx):
    c, queries = ctx
    out = rv.rank_all(c, queries[1]["text"])
    assert set(out) == set(rv.VARIANTS)
    for name, ranked in out.items():
        assert len(ranked) >= 10 and len(ranked) == len(set(ranked)), name


def test_document_scores_from_several_passages():
    passages = [("a", 1, 0.9), ("b", 2, 0.8), ("a", 3, 0.7), ("c", 4, 0.1)]
    assert rv.aggregated(passages, "max") == [("a", 1, 0.9), ("b", 2, 0.8), ("c", 4, 0.1)]
    assert rv.aggregated(passages, "sum")[0] == ("a", 1, pytest.approx(1.6))
    assert rv.aggregated(passages, "max+")[0] == ("a", 1, pytest.approx(0.9 + 0.35))
    assert [d for d, _, _ in rv.aggregated(passages, "sum", depth=2)] == ["a", "b"]


def test_the_bm25_ceiling_bounds_every_score_and_scores_are_exact(ctx):
    c, queries = ctx
    for q in queries[:10]:
        cand = c.candidates(q["text"])
        cos, bm, ceiling = rv._exact(cand)
        assert (ceiling > 0) == bool(bm), q["text"]  # no known word ("my loaf stayed flat"): none
        if bm:  # no passage holds a term infinitely often
            assert 0 < max(bm.values()) / ceiling < 1, q["text"]
        # the exact tables agree with the top lists and reach past them
        for d, _, sc in cand.dense[:5]:
            assert cos[d] == pytest.approx(sc)
        assert len(cos) == len({c.doc(k) for k in c.si.rows})


def test_the_benchmark_keeps_a_store_per_chunking(tmp_path):
    from fourhosts_jupyter.bench.retrieval import _store_for

    corpus = tmp_path / "set" / "corpus.jsonl"
    corpus.parent.mkdir()
    words = " ".join(f"w{i}" for i in range(100))
    corpus.write_text('{"_id": "long", "text": "%s"}\n' % words)
    emb = get_embedder()
    default = _store_for(corpus, tmp_path, emb)
    small = _store_for(corpus, tmp_path, emb, (40, 10))
    assert default.count_memories() == 1  # 100 words fit one default passage
    assert small.count_memories() == 3  # 0-39, 30-69, 60-99
    assert sorted(p.name for p in tmp_path.glob("*.duckdb")) == sorted(
        [f"set-{default.path.stem.split('-')[1]}.duckdb", f"set-{default.path.stem.split('-')[1]}-c40o10.duckdb"])
