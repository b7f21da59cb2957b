"""The shared PostgreSQL + pgvector store against a real server (pgserver): retrieval parity
with the DuckDB store, concurrent writers, and copying a store both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fourhosts_jupyter.bench.pg_writers import write_at_once
from fourhosts_jupyter.cli import main
from fourhosts_jupyter.errors import StoreUnreadable
from fourhosts_jupyter.memory.backends import open_store
from fourhosts_jupyter.memory.embeddings import HashingEmbedder, get_embedder
from fourhosts_jupyter.memory.evaluate import evaluate, load_queries
from fourhosts_jupyter.memory.ingest import ingest
from fourhosts_jupyter.memory.pg_store import PgStore
from fourhosts_jupyter.memory.store import MemoryRecord, Store
from fourhosts_jupyter.memory.store_copy import copy_store
from pg_fixtures import as_list, new_database

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def labelled_pair(tmp_path_factory, pg_server):
    """The labelled retrieval set ingested into DuckDB, then copied into PostgreSQL."""
    duck = Store(tmp_path_factory.mktemp("ir") / "ir.duckdb")
    emb = get_embedder()
    ingest(DATA / "retrieval_corpus.jsonl", duck, id_field="_id", embedder=emb, progress=False)
    pg = open_store(new_database(pg_server))
    copy_store(duck, pg, progress=False)
    return duck, pg, emb, load_queries(DATA / "retrieval_queries.jsonl")


def test_open_store_picks_the_back_end_by_location(tmp_path, monkeypatch):
    assert isinstance(open_store(tmp_path / "a.duckdb"), Store)
    url = "postgresql://u@db.example/team"
    assert isinstance(open_store(url), PgStore) and open_store(url).url == url
    # a URL that went through Path (settings, %config) has lost a slash: it is mended
    assert open_store(Path(url)).url == url
    monkeypatch.setenv("FOURHOSTS_STORE", url)
    assert open_store().url == url


def test_both_back_ends_rank_the_labelled_set_alike(labelled_pair):
    duck, pg, emb, queries = labelled_pair
    got = {}
    for name, store in (("duckdb", duck), ("postgres", pg)):
        got[name] = {m: evaluate(store, queries, m, embedder=emb) for m in ("hybrid", "dense", "bm25")}
    print({n: {m: round(q.ndcg10, 4) for m, q in v.items()} for n, v in got.items()})
    assert abs(got["duckdb"]["hybrid"].ndcg10 - got["postgres"]["hybrid"].ndcg10) <= 0.01
    # dense lists are the same cosines (HNSW finds all of 79 documents exactly)
    assert abs(got["duckdb"]["dense"].ndcg10 - got["postgres"]["dense"].ndcg10) <= 0.005
    assert got["postgres"]["hybrid"].ndcg10 >= got["postgres"]["bm25"].ndcg10


def test_exact_terms_and_paraphrases_reach_the_top_on_postgres(labelled_pair):
    from fourhosts_jupyter.context.select import search, select

    _, pg, emb, _ = labelled_pair
    assert search(pg, "Article 83", k=1, embedder=emb)[0].to_json()["id"] == "d63"
    para = search(pg, "my loaf stayed flat and dense, what went wrong", k=1, embedder=emb)
    assert para[0].to_json()["id"] == "d05"
    sources = select(pg, "Article 83", k=3, embedder=emb)
    assert [s.n for s in sources] == list(range(1, len(sources) + 1)) and sources[0].reasons


def test_namespaces_and_expiry_filter_inside_the_query(pg_url):
    import datetime as dt

    from fourhosts_jupyter.context.select import search

    store, emb = open_store(pg_url), HashingEmbedder()
    past = dt.datetime(2000, 1, 1)
    recs = [MemoryRecord("a", "teddy", "semantic", "tram depot maintenance schedule", "note"),
            MemoryRecord("b", "maeve", "semantic", "tram depot maintenance schedule again", "note"),
            MemoryRecord("c", "teddy", "semantic", "tram depot maintenance expired", "note",
                         expires_at=past)]
    store.add_memories(recs, emb.embed([r.content for r in recs]), emb.name)
    for mode in ("dense", "bm25", "hybrid"):
        ids = {h.id for h in search(store, "tram depot maintenance", k=5, embedder=emb,
                                    namespaces=["teddy"], mode=mode)}
        assert ids == {"a"}, mode
    assert store.purge_expired() == 1 and store.count_memories() == 2


# 40,000 rows through the bulk path with 64-d vectors (outside the 384-d HNSW index, whose
# upkeep is ~95% of the time: 5 s against 106 s measured) for the concurrent writes; and 4,000
# rows of 384-d vectors so four writers also maintain the HNSW index at once
@pytest.mark.parametrize(("per_writer", "dim"), [(10_000, 64), (1_000, 384)])
def test_four_processes_write_one_postgres_store_at_once(pg_url, per_writer, dim):
    store = open_store(pg_url)
    store.count_memories()  # migrated once before the writers start
    w = write_at_once(pg_url, writers=4, per_writer=per_writer, batch=500, dim=dim, timeout=900)
    assert all(n >= per_writer for n in w.said)  # its own texts, plus the common ones it won
    said, common = sum(w.said), w.common_texts()
    # 4 × per_writer own texts, plus 10 common texts per batch stored once among all writers
    assert store.count_memories() == said == 4 * per_writer + len(common)
    with store.connect() as con:
        rows = con.execute("SELECT id, content FROM memories").fetchall()
        assert con.execute("SELECT count(DISTINCT key) FROM memories").fetchone()[0] == len(rows)
        assert con.execute("SELECT count(*) FROM memories WHERE vector_dims(embedding) = %s",
                           [dim]).fetchone()[0] == len(rows)
    own = w.own_ids(4)
    ids = [i for i, _ in rows]
    assert len(ids) == len(set(ids)) and own <= set(ids)  # nothing lost, nothing twice
    shared = sorted(c for i, c in rows if i not in own)
    assert shared == sorted(common)  # each common text exactly once, whoever wrote it
    if dim == 384:  # the index the writers maintained finds a row by its own vector
        si = store.indexes()
        v = HashingEmbedder().embed(["w2 note 7 on depots"])[0]
        keys, _ = si.vector_index(store, f"{HashingEmbedder.name}-384", 384).search(v, 1, si.allowed(None))
        assert si.rows[int(keys[0])].id == "w2-7"


def _fill(store: Store) -> None:
    emb = HashingEmbedder()
    recs = [MemoryRecord(f"m{i}", "shared" if i % 3 else "teddy", "semantic", f"fact {i} about rail",
                         "note", title=f"t{i}", metadata={"i": i, "tags": ["a"]}) for i in range(120)]
    store.add_memories(recs[:100], emb.embed([r.content for r in recs[:100]]), emb.name)
    store.add_memories(recs[100:])  # no vectors yet
    store.start_run("r1", "why rail?", {"k": 3})
    store.finish_run("r1", status="ok", classification={"primary": "bernard"}, paradigm="bernard",
                     provider="offline", model="x", answer="because", sources=[{"n": 1}],
                     usage={"tokens": 3}, cost_usd=None, timings={"total": 1.0}, error=None,
                     events=[(0, "start", 0.0, {"q": 1}), (1, "done", 0.5, {})])
    store.add_feedback("r1", 5, "good")


def _snapshot(store) -> dict:
    with store.connect() as con:
        mem = con.execute("SELECT id, namespace, content, title, model, embedding, metadata "
                          "FROM memories ORDER BY id").fetchall()
        runs = con.execute("SELECT id, status, answer FROM runs").fetchall()
        events = con.execute("SELECT run_id, seq, type FROM run_events ORDER BY seq").fetchall()
        fb = con.execute("SELECT run_id, rating, comment FROM feedback").fetchall()
    import json

    return {
        "memories": [(i, ns, c, t, m, as_list(e) if e is not None else None,
                      json.loads(md) if isinstance(md, str) else md) for i, ns, c, t, m, e, md in mem],
        "runs": runs, "events": events, "feedback": fb,
    }


def test_migrate_round_trips_duckdb_to_postgres_and_back(tmp_path, pg_url, capsys):
    src = Store(tmp_path / "src.duckdb")
    _fill(src)
    assert main(["store", "migrate", "--from", str(src.path), "--to", pg_url, "--quiet"]) == 0
    assert "copied 120 memories" in capsys.readouterr().out
    back = tmp_path / "back.duckdb"
    assert main(["store", "migrate", "--from", pg_url, "--to", str(back), "--quiet"]) == 0
    with open_store(pg_url).connect() as con:  # dropped for the bulk copy, built after it
        assert con.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'memories_hnsw'").fetchone()[0] == 1
    first, pg, last = _snapshot(src), _snapshot(open_store(pg_url)), _snapshot(Store(back))
    assert len(first["memories"]) == 120 and first["events"] == [("r1", 0, "start"), ("r1", 1, "done")]
    assert pg == first and last == first
    # again: nothing copied twice
    assert main(["store", "migrate", "--from", str(src.path), "--to", pg_url, "--quiet"]) == 0
    assert _snapshot(open_store(pg_url)) == first


class _KilledAfter(Store):
    """A destination whose process dies (KeyboardInterrupt) during its ``n``-th batch."""

    def __init__(self, path, n):  # noqa: ANN001
        super().__init__(path)
        self.left = n

    def insert_memories(self, con, records, embeddings=None, model=None):  # noqa: ANN001, ANN201
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt
        return super().insert_memories(con, records, embeddings, model)


def test_an_interrupted_migrate_resumes_where_it_stopped(tmp_path, pg_url):
    src = open_store(pg_url)
    _fill(src)
    dst_path = tmp_path / "dst.duckdb"
    with pytest.raises(KeyboardInterrupt):
        # batches of 25: the first four (100 memories, with vectors) commit, the fifth dies
        copy_store(src, _KilledAfter(dst_path, 5), batch=25, progress=False)
    assert Store(dst_path).count_memories() == 100
    report = copy_store(src, Store(dst_path), batch=25, progress=False)
    assert report.memories == 20  # only what was left
    assert _snapshot(Store(dst_path)) == _snapshot(src)


def test_migrate_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["store", "migrate", "--from", str(tmp_path / "none.duckdb"), "--to", "x.duckdb"]) == 2
    err = capsys.readouterr().err
    assert "no store at" in err and err.count("\n") == 1


def test_an_unreachable_server_names_the_url_without_its_password(tmp_path):
    store = open_store(f"postgresql://me:s3cret@/db?host={tmp_path}&connect_timeout=2")
    with pytest.raises(StoreUnreadable) as info:
        store.count_memories()
    assert "s3cret" not in str(info.value) and "cannot open the PostgreSQL store" in str(info.value)


def test_vectors_are_cosines_like_faiss(pg_url):
    store = open_store(pg_url)
    x = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]], dtype=np.float32)
    store.add_memories([MemoryRecord(f"v{i}", "shared", "semantic", f"t{i}", "note") for i in range(3)],
                       x, "toy")
    si = store.indexes()
    keys, scores = si.vector_index(store, "toy", 3).search(np.array([1, 0, 0], np.float32), 3,
                                                          si.allowed(None))
    assert [si.rows[int(k)].id for k in keys] == ["v0", "v1", "v2"]
    assert scores.tolist() == pytest.approx([1.0, 0.6, 0.0], abs=1e-6)


def test_dense_and_keyword_queries_use_their_indexes(pg_url):
    store = open_store(pg_url)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store.add_memories([MemoryRecord(f"v{i}", "shared", "semantic", f"note {i} on trams", "note")
                        for i in range(2000)], x, "toy")
    si = store.indexes()
    sql, params = si.vector_index(store, "toy", 384).query(x[0], 10, si.allowed(["shared"]))
    with store.connect() as con:
        con.execute("ANALYZE memories")
        plan = "\n".join(r[0] for r in con.execute("EXPLAIN " + sql, params).fetchall())
        assert "memories_hnsw" in plan, plan
        kw = "\n".join(r[0] for r in con.execute(
            "EXPLAIN SELECT key FROM memories m WHERE m.tsv @@ plainto_tsquery('english', 'trams 17')"
        ).fetchall())
    assert "memories_tsv" in kw, kw
    from fourhosts_jupyter.memory.pg_search import WITHOUT_MODEL

    with store.connect() as con:
        con.execute("SET LOCAL enable_seqscan = off")  # 2,000 rows: show that it *can* use it
        plan = "\n".join(r[0] for r in con.execute(
            f"EXPLAIN SELECT key FROM memories m WHERE {WITHOUT_MODEL}", ["toy", "toy"]).fetchall())
    assert "memories_model" in plan, plan


def test_an_offline_run_on_postgres_is_logged_rated_and_learned_from(pg_url):
    from fourhosts_jupyter import learning
    from fourhosts_jupyter.config import Settings
    from fourhosts_jupyter.context.write import write_memory
    from fourhosts_jupyter.engine import Engine

    store, emb = open_store(pg_url), HashingEmbedder()
    write_memory(store, "Congestion pricing in Stockholm cut central traffic by a fifth.",
                 namespace="shared", density=90, embedder=emb)
    answer = Engine(Settings.from_env(provider="offline"), store=store, embedder=emb).research(
        "Did congestion pricing in Stockholm reduce traffic?")
    run = store.get_run(answer.run_id)
    assert run["status"] == "ok" and "Stockholm" in run["answer"] and run["events"]
    assert learning.rate(store, answer.run_id[:8], 4, "useful") == answer.run_id
    (rec,) = learning.records(store)  # the run's features were recorded by the engine
    assert rec.run_id == answer.run_id and rec.rating == 4 and rec.features.word_count == 7


def test_a_duckdb_only_feature_on_postgres_says_so_in_one_line(pg_url):
    from fourhosts_jupyter.errors import StorageError

    store = open_store(pg_url)
    with pytest.raises(StorageError, match="this needs a DuckDB store: it is not available on the PostgreSQL") as info:
        with store.connect() as con:
            con.execute("SELECT list_value(1, 2)")  # a DuckDB function
    assert "\n" not in str(info.value)
    assert store.count_memories() == 0  # the pooled connection is usable after it
    from fourhosts_jupyter.schedule.batch_store import batch_rows

    assert batch_rows(store).list() == []  # batches have their tables on PostgreSQL (p004)
    with pytest.raises(StorageError, match="this needs a DuckDB store: the PostgreSQL store .* has no file"):
        store.path  # noqa: B018 - what code that opens the DuckDB file directly reaches for


def test_duckdb_dialect_translation():
    from fourhosts_jupyter.memory.pg_compat import translate

    assert translate("SELECT * FROM t WHERE a = ? AND b LIKE 'x?%'") == \
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x?%%'"
    assert translate("INSERT OR IGNORE INTO feedback VALUES (?, ?)") == \
        "INSERT INTO feedback VALUES (%s, %s) ON CONFLICT DO NOTHING"
    assert translate("INSERT OR REPLACE INTO run_features VALUES (?, ?)", ["run_id", "form"]) == \
        "INSERT INTO run_features VALUES (%s, %s) ON CONFLICT (run_id) DO UPDATE SET form = EXCLUDED.form"
    assert translate("SELECT %s") == "SELECT %s"
    assert translate("SELECT 'a%'", params=False) == "SELECT 'a%'"  # sent as it is


def test_the_web_cache_is_shared_through_postgres(pg_url):
    import datetime as dt

    from fourhosts_jupyter.tools.web_store import WebCache, WebTTLs

    now = [dt.datetime(2026, 1, 1, 12, 0)]
    a = WebCache(open_store(pg_url), WebTTLs(search=60, page=60), clock=lambda: now[0])
    b = WebCache(open_store(pg_url), WebTTLs(search=60, page=60), clock=lambda: now[0])
    calls = []
    value, hit = a.fetch("search", {"q": "trams"}, lambda: calls.append(1) or [{"url": "u1"}])
    assert (value, hit) == ([{"url": "u1"}], False)
    assert b.fetch("search", {"q": "trams"}, lambda: calls.append(1) or []) == ([{"url": "u1"}], True)
    a.put("search", "k", {"v": 2})
    a.put("search", "k", {"v": 3})  # replaced, not duplicated
    assert b.get("search", "k") == {"v": 3} and len(calls) == 1
    now[0] += dt.timedelta(seconds=61)
    assert b.get("search", "k") is None and a.purge_expired() == 2


def test_research_magic_with_a_postgres_store_from_config(pg_url, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    monkeypatch.setenv("FOURHOSTS_LIVE", "0")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    m = ip.magics_manager.registry["ResearchMagics"]
    before = m.store_path
    try:
        ip.run_line_magic("config", f"ResearchMagics.store_path = {pg_url!r}")
        with capture_output():
            ip.run_cell_magic("research", "--no-stream --save pg_answer",
                              "Which safeguards protect pedestrians near schools?")
    finally:
        m.store_path = before
    answer = ip.user_ns["pg_answer"]
    run = open_store(pg_url).get_run(answer.run_id)
    assert run is not None and run["status"] == "ok" and run["answer"] == answer.text


def test_ingesting_files_into_postgres_twice_adds_them_once(pg_url, tmp_path):
    from fourhosts_jupyter.context.select import search

    store, emb = open_store(pg_url), HashingEmbedder()
    (tmp_path / "a.md").write_text("# Trams\n\n" + "Tram signal priority cuts delays at junctions. " * 40)
    (tmp_path / "b.md").write_text("# Bikes\n\n" + "Protected bike lanes raise cycling rates. " * 40)
    first = ingest(tmp_path, store, embedder=emb, progress=False, chunk_words=60, overlap=10)
    assert first.documents == 2
    n = store.count_memories()
    with store.connect() as con:
        docs = con.execute("SELECT count(*), sum(chunk_count) FROM documents").fetchone()
        links = con.execute("SELECT count(*) FROM document_passages p JOIN memories m "
                            "ON m.id = p.memory_id").fetchone()[0]
    assert docs[0] == 2 and docs[1] == n == links > 2
    ingest(tmp_path, store, embedder=emb, progress=False, chunk_words=60, overlap=10)
    assert store.count_memories() == n
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM store_info").fetchone()[0] == 1  # no stage marks
    hits = search(store, "tram signal priority", k=2, embedder=emb)
    assert hits[0].origin.endswith("a.md") and hits[0].passages_in_document > 1
