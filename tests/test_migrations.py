"""Schema migrations and the store's clear errors: newer schema, unreadable file, held lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from fourhosts_jupyter.errors import StoreForeign, StoreLocked, StoreNewerSchema, StoreUnreadable
from fourhosts_jupyter.memory.migrations import MIGRATIONS
from fourhosts_jupyter.memory.store import MemoryRecord, Store


def test_blank_store_is_migrated_to_every_step(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    assert store.schema_version() == sorted(m.__name__ for m in MIGRATIONS)
    with store.connect() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"runs", "run_events", "memories", "documents", "feedback", "_migrations"} <= tables


def test_migrating_twice_is_a_no_op_and_keeps_data(tmp_path):
    path = tmp_path / "s.duckdb"
    Store(path).add_memories([MemoryRecord("m1", "shared", "semantic", "kept text", "note")])
    again = Store(path)
    assert again.schema_version() == sorted(m.__name__ for m in MIGRATIONS)
    assert again.count_memories() == 1


def test_store_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "s.duckdb"
    Store(path).add_memories([MemoryRecord("m1", "shared", "semantic", "precious", "note")])
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', now())")
    con.close()
    with pytest.raises(StoreNewerSchema, match="newer fourhosts-jupyter.*pip install -U"):
        Store(path).runs()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT content FROM memories").fetchall() == [("precious",)]
    con.close()


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n")
    with pytest.raises(StoreUnreadable, match="cannot open the store .*FOURHOSTS_HOME"):
        Store(path).runs()
    assert path.read_text() == "these are my notes, not a database\n"


def test_a_lock_held_by_another_process_times_out_with_advice(tmp_path):
    path = tmp_path / "s.duckdb"
    Store(path).schema_version()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(path)!r})
                print("held", flush=True)
                time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.monotonic()
        with pytest.raises(StoreLocked, match=r"stayed locked by another process .*process \d+.*FOURHOSTS_HOME"):
            Store(path, lock_timeout=0.6).runs()
        assert time.monotonic() - t < 10  # bounded wait, not a hang
    finally:
        holder.kill()
        holder.wait()
    assert Store(path).runs().empty  # usable again once the other process lets go


def _tables(path):
    con = duckdb.connect(str(path))
    try:
        return sorted(r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall())
    finally:
        con.close()


def test_someone_elses_duckdb_file_is_refused_untouched(tmp_path):
    path = tmp_path / "mydb.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE runs (id INTEGER, athlete VARCHAR, km DOUBLE)")
    con.execute("INSERT INTO runs VALUES (1, 'ann', 10.5)")
    con.close()
    with pytest.raises(StoreForeign, match=r"not a fourhosts-jupyter store \(it has tables: runs\).*untouched"):
        Store(path).runs()
    assert _tables(path) == ["runs"]  # no _migrations, none of our tables
    con = duckdb.connect(str(path))
    assert con.execute("SELECT * FROM runs").fetchall() == [(1, "ann", 10.5)]
    con.close()


def test_a_foreign_migrations_table_is_not_mistaken_for_ours(tmp_path):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    con.execute("INSERT INTO _migrations VALUES ('0001_create_orders', now())")
    con.execute("CREATE TABLE orders (id INTEGER)")
    con.close()
    with pytest.raises(StoreForeign):
        Store(path).count_memories()
    assert _tables(path) == ["_migrations", "orders"]


def test_an_empty_duckdb_file_and_our_own_store_open(tmp_path):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    assert Store(empty).count_memories() == 0
    assert Store(empty).schema_version() == sorted(m.__name__ for m in MIGRATIONS)


def test_cli_refuses_a_foreign_store_with_one_line(tmp_path):
    path = tmp_path / "mydb.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE runs (id INTEGER)")
    con.close()
    note = tmp_path / "note.txt"
    note.write_text("A short note about bus lanes.\n")
    env = {**os.environ, "FOURHOSTS_EMBEDDER": "hashing"}
    for args in (["runs", "--store", str(path)], ["ingest", "--store", str(path), str(note)]):
        r = subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *args], capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "not a fourhosts-jupyter store" in lines[0], r.stderr
    assert _tables(path) == ["runs"]


def test_a_store_made_before_document_passages_migrates_without_loss(tmp_path):
    """The schema and rows the previous code wrote (m001 + m002): b.txt identical to a.txt and
    deduplicated onto a's passages (its row holds no memory); c.txt shares one passage with a."""
    from fourhosts_jupyter.memory.migrations import m001_initial, m002_documents_and_identity

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    for m in (m001_initial, m002_documents_and_identity):
        m(con)
        con.execute("INSERT INTO _migrations VALUES (?, now())", [m.__name__])
    docs = [("doc_a", "/d/a.txt", "h_ab", 2, 2), ("doc_b", "/d/b.txt", "h_ab", 0, 2), ("doc_c", "/d/c.txt", "h_c", 1, 2)]
    for doc_id, p, h, count, passages in docs:
        con.execute(
            "INSERT INTO documents (id, path, title, format, content_hash, metadata, created_at, namespace, chunk_count) "
            "VALUES (?, ?, 't', 'text', ?, ?, now(), 'shared', ?)",
            [doc_id, p, h, f'{{"passages": {passages}}}', count],
        )
    for mid, doc_id, text in [("m1", "doc_a", "one"), ("m2", "doc_a", "two"), ("m3", "doc_c", "three")]:
        con.execute(
            "INSERT INTO memories (id, namespace, memory_type, content, metadata, source, document_id, title, "
            "content_hash, created_at) VALUES (?, 'shared', 'semantic', ?, '{}', 'document', ?, 't', ?, now())",
            [mid, text, doc_id, "hash-" + text],
        )
    con.close()

    store = Store(path)
    assert store.schema_version() == sorted(m.__name__ for m in MIGRATIONS)
    assert store.count_memories() == 3
    with store.connect() as con:
        held = con.execute(
            "SELECT document_id, list_sort(list(memory_id)) FROM document_passages GROUP BY 1 ORDER BY 1"
        ).fetchall()
        rows = con.execute("SELECT id, chunk_count, complete FROM documents ORDER BY id").fetchall()
    assert held == [("doc_a", ["m1", "m2"]), ("doc_b", ["m1", "m2"]), ("doc_c", ["m3"])]
    # c held a passage of a's that the old schema did not record: its next ingest re-links it
    assert rows == [("doc_a", 2, True), ("doc_b", 2, True), ("doc_c", 1, False)]
    # and now forgetting a keeps what b holds
    assert store.forget_documents(["doc_a"]) == 0
    assert store.count_memories() == 3
