"""Select (hybrid retrieval, fusion, host boost, MMR) and Write (types, lifetimes, namespaces)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fourhosts_jupyter.context.select import (
    ORIGINAL_WEIGHTS,
    _fuse,
    search,
    select,
)
from fourhosts_jupyter.context.write import lifetime, memory_type, remember, write_memory
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.memory.embeddings import HashingEmbedder, get_embedder
from fourhosts_jupyter.memory.evaluate import evaluate, load_beir, load_queries, ndcg_at_k
from fourhosts_jupyter.memory.ingest import ingest
from fourhosts_jupyter.memory.retriever import Row, indexes_for
from fourhosts_jupyter.memory.store import Store, utcnow

DATA = Path(__file__).parent / "data"
EMB = HashingEmbedder()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The labelled retrieval set (79 documents, 75 queries) in a store, local model."""
    store = Store(tmp_path_factory.mktemp("ir") / "ir.duckdb")
    emb = get_embedder()
    report = ingest(DATA / "retrieval_corpus.jsonl", store, id_field="_id", embedder=emb, progress=False)
    assert report.documents == 79
    return store, emb, load_queries(DATA / "retrieval_queries.jsonl")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """The held-out split (78 documents, 58 queries): never used to choose the fusion."""
    store = Store(tmp_path_factory.mktemp("held") / "held.duckdb")
    emb = get_embedder()
    corpus, queries = load_beir(DATA / "retrieval_heldout")
    ingest(corpus, store, id_field="_id", embedder=emb, progress=False)
    return store, emb, queries


def test_hybrid_beats_bm25_and_dense_on_the_held_out_split(held_out):
    # The fusion was chosen on tests/data/retrieval_*, MS MARCO and DBpedia; measured here
    # (bench retrieval): hybrid 0.994, dense 0.968, BM25 0.908 nDCG@10; plain RRF 0.956.
    store, emb, queries = held_out
    q = {mode: evaluate(store, queries, mode, embedder=emb) for mode in ("bm25", "dense", "hybrid")}
    assert q["hybrid"].ndcg10 >= 0.97
    assert q["hybrid"].ndcg10 >= max(q["dense"].ndcg10, q["bm25"].ndcg10) + 0.015
    assert q["hybrid"].recall10 == 1.0
    # the two lists fail on different queries, which is what fusion is for
    assert any(q["bm25"].per_query[i] < 1 <= q["dense"].per_query[i] for i in q["dense"].per_query)
    assert any(q["dense"].per_query[i] < 1 <= q["bm25"].per_query[i] for i in q["bm25"].per_query)


@pytest.mark.parametrize("split, floor, margin", [
    # measured (bench retrieval): hybrid 0.915 / dense 0.847 / BM25 0.821 (0.900 before the
    # anchor rule, which this split's identifier lookups prompted: no longer unseen)
    ("retrieval_heldout2", 0.90, 0.05),
    # measured once, after every choice: hybrid 0.941 / BM25 0.887 / dense 0.871 (+0.053)
    ("retrieval_heldout3", 0.92, 0.04),
])
def test_hybrid_beats_bm25_and_dense_on_the_blind_held_out_splits(tmp_path, split, floor, margin):
    store = Store(tmp_path / f"{split}.duckdb")
    emb = get_embedder()
    corpus, queries = load_beir(DATA / split)
    ingest(corpus, store, id_field="_id", embedder=emb, progress=False)
    q = {mode: evaluate(store, queries, mode, embedder=emb) for mode in ("bm25", "dense", "hybrid")}
    assert q["hybrid"].ndcg10 >= floor
    assert q["hybrid"].ndcg10 >= max(q["dense"].ndcg10, q["bm25"].ndcg10) + margin


def test_exact_terms_and_paraphrases_both_reach_the_top(labelled):
    store, emb, _ = labelled
    assert search(store, "Article 83", k=1, embedder=emb)[0].to_json()["id"] == "d63"  # a number
    para = search(store, "my loaf stayed flat and dense, what went wrong", k=1, embedder=emb)
    assert para[0].to_json()["id"] == "d05"  # no shared words with "bread dough does not rise"


def _ph(store):
    """The SQL parameter marker of the store's back-end."""
    return "%s" if getattr(store, "is_postgres", False) else "?"


def _row(key, doc=None, title="t", text="x"):
    return Row(key, f"m{key}", "shared", "semantic", "document", title, text, doc, "o", None, None,
               0.5, None, None, "model")


def test_rrf_fusion_order():
    rows = {k: _row(k) for k in (1, 2, 3)}
    passages = {k: {k} for k in rows}
    # 1: dense rank 1 only; 2: dense rank 3 and keyword rank 2; 3: keyword rank 1 only
    dense = [(1, 1, 0.9), ("x", 99, 0.8), (2, 2, 0.7)]
    keyword = [(3, 3, 9.0), (2, 2, 8.0)]
    rows[99] = _row(99)
    passages["x"] = {99}
    order = [h.key for h in _fuse(rows, dense, keyword, None, (0.5, 0.5), passages)]
    assert order[0] == 2  # found by both lists beats first place in one
    assert order.index(1) < order.index(3)  # equal RRF score: the dense rank breaks the tie
    only_dense = [h.key for h in _fuse(rows, dense, keyword, None, (1.0, 0.0), passages)]
    assert only_dense[:3] == [1, 99, 2]
    orig = _fuse(rows, dense, keyword, None, ORIGINAL_WEIGHTS, passages)
    by_key = {h.key: h.score for h in orig}
    assert by_key[1] == pytest.approx(0.6 / 61) and by_key[3] == pytest.approx(0.4 / 61)
    assert by_key[2] == pytest.approx(0.6 / 63 + 0.4 / 62)


def test_host_boost_prefers_the_hosts_sources_and_says_why(any_store):
    store = any_store  # both back-ends
    a = write_memory(store, "Notes on bus priority at traffic signals and junctions.", namespace="shared",
                     density=90, title="Bus priority notes and ideas", embedder=EMB)
    b = write_memory(store, "Notes on bus priority at traffic signals and junctions, too.", namespace="shared",
                     density=90, title="Bus priority framework and model", embedder=EMB)
    # near-ties (titles of the same length), and a third, less related note: fused scores are
    # min-max normalised over the candidates, so with only two the second always scores 0
    write_memory(store, "Notes on traffic signals timing for pedestrians.", namespace="shared",
                 density=90, title="Signal timing", embedder=EMB)
    plain = [s.id for s in select(store, "bus priority at traffic signals", k=2, embedder=EMB)]
    bern = select(store, "bus priority at traffic signals", k=2, embedder=EMB, host="bernard")
    assert plain[0] == a and bern[0].id == b
    assert any("Bernard's words: framework, model" in r for r in bern[0].reasons)


def test_select_gives_numbered_sources_one_per_document_with_reasons(labelled):
    store, emb, _ = labelled
    srcs = select(store, "GDPR rights over personal data", k=5, embedder=emb, host="teddy")
    assert [s.n for s in srcs] == [1, 2, 3, 4, 5]
    assert len({s.title for s in srcs}) == 5
    assert all(s.reasons and any("match" in r for r in s.reasons) for s in srcs)
    assert all(s.origin.endswith("retrieval_corpus.jsonl") for s in srcs)


def test_mmr_diversifies_near_duplicates(any_store):
    store = any_store  # both back-ends
    texts = [
        "Congestion pricing in Stockholm cut central traffic by a fifth.",
        "Congestion pricing in Stockholm cut central traffic by about twenty percent.",
        "Congestion pricing in Stockholm reduced central traffic by a fifth in 2006.",
        "Road pricing revenue can fund buses and cycling infrastructure.",
    ]
    for i, t in enumerate(texts):
        write_memory(store, t, namespace="shared", density=90, title=f"note {i}", embedder=EMB)
    q = "congestion pricing Stockholm traffic"
    plain = search(store, q, k=3, embedder=EMB)
    diverse = search(store, q, k=3, embedder=EMB, mmr_lambda=0.3)
    assert sum("Road pricing revenue" in h.text for h in plain) == 0
    assert sum("Road pricing revenue" in h.text for h in diverse) == 1


def test_passages_of_one_document_collapse_to_its_best(store, tmp_path):
    doc = tmp_path / "long.md"
    doc.write_text("# Long\n\n" + "\n\n".join(f"Paragraph {i} on tram signal priority." * 8 for i in range(12)))
    ingest(doc, store, embedder=EMB, progress=False, chunk_words=60, overlap=10)
    write_memory(store, "A separate note on tram signal priority.", namespace="shared", density=90, embedder=EMB)
    hits = search(store, "tram signal priority", k=5, embedder=EMB)
    assert len(hits) == 2 and max(h.passages_in_document for h in hits) > 1
    passages = search(store, "tram signal priority", k=5, embedder=EMB, per_document=False)
    assert len(passages) == 5


def test_search_modes_and_bad_input(any_store):
    store = any_store  # both back-ends
    write_memory(store, "Bike share docks near metro exits.", namespace="shared", density=90, embedder=EMB)
    for mode in ("hybrid", "dense", "bm25"):
        assert search(store, "bike share docks", k=3, embedder=EMB, mode=mode)[0].text.startswith("Bike")
    with pytest.raises(ConfigError, match="unknown search mode"):
        search(store, "x", embedder=EMB, mode="fuzzy")
    with pytest.raises(ConfigError, match="empty"):
        search(store, "  ", embedder=EMB)
    assert select(store, "", embedder=EMB) == []


def test_changing_model_re_embeds_and_never_mixes_indexes(labelled, tmp_path):
    _, local, _ = labelled
    store = Store(tmp_path / "m.duckdb")
    for t in ("Water taxis on the canal.", "Cable cars over the valley.", "Night trains across Europe."):
        write_memory(store, t, namespace="shared", density=90, embedder=EMB)
    assert search(store, "water taxis canal", k=1, embedder=EMB)[0].text.startswith("Water")
    assert search(store, "boats on a canal", k=1, embedder=local, mode="dense")[0].text.startswith("Water")
    with store.connect() as con:
        assert con.execute("SELECT DISTINCT model FROM memories").fetchall() == [("all-MiniLM-L6-v2",)]
    si = indexes_for(store)
    si.flush()
    files = sorted(p.name for p in si.index_dir.glob("vectors-*"))
    assert files == ["vectors-all-MiniLM-L6-v2.faiss", "vectors-hashing-384-v1.faiss"]
    assert len(si.vectors["all-MiniLM-L6-v2"]) == 3 and len(si.vectors["hashing-384-v1"]) == 0


def test_ndcg():
    assert ndcg_at_k(["a", "b"], {"a"}) == 1.0
    assert ndcg_at_k(["b", "a"], {"a"}) == pytest.approx(1 / 1.5849625)
    assert ndcg_at_k(["c"], {"a"}) == 0.0


# -- Write -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, kind",
    [
        ("next_steps", "anything", "procedural"),
        ("", "How to file a permit", "procedural"),
        ("query_context", "what happened", "episodic"),
        ("", "It happened in 2019", "episodic"),
        ("", "Trees cool streets", "semantic"),
    ],
)
def test_memory_type_follows_the_brief(key, value, kind):
    assert memory_type(key, value) == kind


def test_lifetime_by_density():
    assert lifetime(81) is None and lifetime(80) == dt.timedelta(minutes=10)


def test_write_memory_records_namespace_key_keywords_and_expiry(any_store):
    store = any_store  # both back-ends
    mid = write_memory(store, "Speed humps slow traffic near schools; humps work.", namespace="dolores",
                       key="result", density=60, embedder=EMB)
    df = store.get_memories([mid])
    assert df["namespace"][0] == "dolores" and df["memory_type"][0] == "episodic"
    import json

    meta = json.loads(df["metadata"][0])
    assert meta["key"] == "dolores:result" and meta["density"] == 60 and "hump" in meta["keywords"]
    with store.connect() as con:
        exp = con.execute(f"SELECT expires_at FROM memories WHERE id = {_ph(store)}", [mid]).fetchone()[0]
    assert dt.timedelta(minutes=9) < exp - utcnow() <= dt.timedelta(minutes=10)
    assert write_memory(store, "Speed humps slow traffic near schools; humps work.", namespace="dolores",
                        density=60, embedder=EMB) is None  # already stored
    with pytest.raises(ConfigError, match="unknown memory namespace 'everyone'"):
        write_memory(store, "x", namespace="everyone", embedder=EMB)


def test_each_write_purges_expired_scratchpad_entries(any_store):
    store = any_store  # both back-ends
    old = write_memory(store, "an old scratch note", namespace="teddy", density=10, embedder=EMB)
    with store.connect() as con:
        ph = _ph(store)
        con.execute(f"UPDATE memories SET expires_at = {ph} WHERE id = {ph}",
                    [utcnow() - dt.timedelta(seconds=1), old])
    note = remember(store, "Keep: the council meets on Tuesdays.", embedder=EMB)
    assert store.get_memories([old]).empty
    row = store.get_memories([note])
    assert row["source"][0] == "note" and row["namespace"][0] == "shared"


def test_score_fusion_normalises_each_list_and_weights_them():
    rows = {k: _row(k) for k in (1, 2, 3)}
    passages = {k: {k} for k in rows}
    dense = [(1, 1, 0.80), (2, 2, 0.70), (3, 3, 0.40)]  # min-max: 1.0, 0.75, 0.0
    keyword = [(3, 3, 12.0), (2, 2, 6.0)]  # min-max: 1.0, 0.0; 1 absent counts as the minimum
    by_key = {h.key: h.score for h in _fuse(rows, dense, keyword, None, (0.7, 0.3), passages, fusion="score")}
    assert by_key[1] == pytest.approx(0.7)
    assert by_key[2] == pytest.approx(0.7 * 0.75)
    assert by_key[3] == pytest.approx(0.3)


def test_bad_fusion_and_bad_beir_directory(any_store, tmp_path):
    store = any_store  # both back-ends
    write_memory(store, "Bike share docks near metro exits.", namespace="shared", density=90, embedder=EMB)
    with pytest.raises(ConfigError, match="unknown fusion 'max'"):
        search(store, "bike", embedder=EMB, fusion="max")
    (tmp_path / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n')
    with pytest.raises(ConfigError, match=r"missing queries.jsonl, test.tsv\): it needs"):
        load_beir(tmp_path)
    # judgements kept apart from the public files (bench/data/pg-qrels.tsv): --qrels FILE
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "x?"}\n{"_id": "q2", "text": "y?"}\n')
    with pytest.raises(ConfigError, match=r"missing \S*judged.tsv\): it needs"):
        load_beir(tmp_path, qrels=tmp_path / "judged.tsv")
    (tmp_path / "judged.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t2\nq2\ta\t0\n")
    _corpus, queries = load_beir(tmp_path, qrels=tmp_path / "judged.tsv")
    assert [(q["_id"], q["relevant"]) for q in queries] == [("q1", {"a": 2.0})]  # a 0 judges q2 non-relevant
    (tmp_path / "judged.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t2\nq1\tb\t0\n")
    (q1,) = load_beir(tmp_path, qrels=tmp_path / "judged.tsv")[1]
    assert q1["relevant"] == {"a": 2.0} and q1["judged"] == {"a", "b"}  # judged@10 counts b


def test_retrieval_benchmark_names_a_directory_that_is_not_beir(tmp_path, capsys):
    from fourhosts_jupyter.bench.retrieval import main

    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a BEIR directory (missing corpus.jsonl" in err[0]
