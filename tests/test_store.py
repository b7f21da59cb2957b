"""The store as the system of record: bulk writes, identity, and several processes at once, on
both back-ends (DuckDB file, PostgreSQL + pgvector) where the behaviour is shared."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fourhosts_jupyter.context.select import search
from fourhosts_jupyter.errors import StoreLocked
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.store import MemoryRecord, Store
from pg_fixtures import as_list

ROOT = Path(__file__).parent.parent


def _rec(i, ns="shared", text=None):
    return MemoryRecord(f"m{i}", ns, "semantic", text or f"memory number {i}", "note")


def test_bulk_insert_through_arrow_dedups_per_namespace(any_store):
    store = any_store
    vecs = np.eye(4, 8, dtype=np.float32)
    ids = store.add_memories([_rec(1), _rec(2), _rec(3, text="memory number 1"), _rec(4, "teddy", "memory number 1")],
                             vecs, model="toy")
    assert sorted(ids) == ["m1", "m2", "m4"]  # m3 repeats m1's text in the same namespace
    df = store.get_memories(["m1", "m4"])
    assert set(df["namespace"]) == {"shared", "teddy"}
    with store.connect() as con:
        emb, model = con.execute("SELECT embedding, model FROM memories WHERE id = 'm2'").fetchone()
    assert model == "toy" and as_list(emb) == pytest.approx(vecs[1].tolist())
    assert store.add_memories([_rec(9)]) == ["m9"]  # no vector is allowed (embedded later)


def test_a_batch_with_stored_duplicates_writes_only_the_new_rows_with_their_own_vectors(any_store):
    store = any_store
    store.add_memories([_rec(1), _rec(2)], np.eye(2, 4, dtype=np.float32), model="toy")
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    ids = store.add_memories([_rec(5, text="memory number 1"), _rec(6), _rec(7, "teddy", "memory number 2")],
                             vecs, model="toy")
    assert ids == ["m6", "m7"]  # m5 repeats m1 in the same namespace; m7 is another namespace
    with store.connect() as con:
        rows = dict(con.execute("SELECT id, embedding FROM memories WHERE id IN ('m6', 'm7')").fetchall())
    assert as_list(rows["m6"]) == pytest.approx(vecs[1].tolist())
    assert as_list(rows["m7"]) == pytest.approx(vecs[2].tolist())


def test_equal_looking_metadata_of_different_types_is_stored_as_given(any_store):
    store = any_store
    metas = [{"n": 1}, {"n": True}, {"n": 1.0}, {"n": [1]}, {"n": 1}]
    store.add_memories([MemoryRecord(f"x{i}", "shared", "semantic", f"text {i}", "note", metadata=m)
                        for i, m in enumerate(metas)])
    with store.connect() as con:
        got = dict(con.execute("SELECT id, metadata::VARCHAR FROM memories").fetchall())
    assert [got[f"x{i}"] for i in range(5)] == ['{"n": 1}', '{"n": true}', '{"n": 1.0}', '{"n": [1]}', '{"n": 1}']


def test_update_embeddings_replaces_model_and_vector(any_store):
    store = any_store
    store.add_memories([_rec(1), _rec(2)], np.ones((2, 4)), model="old")
    with store.connect() as con:
        keys = [r[0] for r in con.execute("SELECT key FROM memories ORDER BY key").fetchall()]
    assert store.update_embeddings(keys, np.zeros((2, 3)), "new") == 2
    with store.connect() as con:
        rows = [(m, as_list(e)) for m, e in con.execute("SELECT model, embedding FROM memories").fetchall()]
    assert rows == [("new", [0.0, 0.0, 0.0])] * 2


def test_store_id_is_stable_and_unique(tmp_path):
    a, b = Store(tmp_path / "a.duckdb"), Store(tmp_path / "b.duckdb")
    assert len(a.store_id()) == 32 and a.store_id() == Store(a.path).store_id() != b.store_id()


def test_postgres_store_id_is_stable_and_unique(pg_server):
    from fourhosts_jupyter.memory.backends import open_store
    from pg_fixtures import new_database

    url_a, url_b = new_database(pg_server), new_database(pg_server)
    a, b = open_store(url_a), open_store(url_b)
    assert len(a.store_id()) == 32 and a.store_id() == open_store(url_a).store_id() != b.store_id()


WORKER = textwrap.dedent(
    """
    import sys
    from fourhosts_jupyter.context.select import search
    from fourhosts_jupyter.context.write import write_memory
    from fourhosts_jupyter.memory.embeddings import HashingEmbedder
    from fourhosts_jupyter.memory.store import Store

    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store, emb = Store(path, lock_timeout=30), HashingEmbedder()
    for i in range(n):
        write_memory(store, f"{name} finding {i} about tram depots", namespace="shared",
                     density=90, embedder=emb)
        hits = search(store, f"{name} finding {i}", k=3, embedder=emb)
        assert hits, "a read found nothing"
        store.runs(limit=5)  # a plain read of the store
    print("ok", name, flush=True)
    """
)


def test_two_processes_write_and_read_one_store(store):
    store.count_memories()  # create and migrate it first
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(store.path), name, "25"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for name in ("alpha", "beta")
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.startswith("ok")
    assert store.count_memories() == 50
    texts = {h.text for h in search(store, "beta finding 24 tram depots", k=50, embedder=HashingEmbedder())}
    assert "beta finding 24 about tram depots" in texts and "alpha finding 24 about tram depots" in texts


HOLDER = textwrap.dedent(
    """
    import sys, time
    from fourhosts_jupyter.memory.store import Store
    s = Store(sys.argv[1])
    with s.hold():
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def _hold(store, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_reads_wait_for_a_writer_instead_of_failing(store):
    store.add_memories([_rec(1)])
    proc = _hold(store, 1.5)
    t = time.monotonic()
    assert Store(store.path, lock_timeout=30).count_memories() == 1  # waited, no lock error
    assert time.monotonic() - t > 0.5
    proc.wait(timeout=30)


def test_a_wait_that_runs_out_gives_one_clear_message(store):
    store.add_memories([_rec(1)])
    proc = _hold(store, 6)
    try:
        with pytest.raises(StoreLocked) as info:
            Store(store.path, lock_timeout=0.5).count_memories()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    msg = str(info.value)
    assert "locked by another process" in msg and "held by process" in msg
    assert "set FOURHOSTS_HOME or --store" in msg
