"""Copying a store DuckDB → PostgreSQL → DuckDB keeps every row of every table it copies,
timestamps included, against a real PostgreSQL (pgserver)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from fourhosts_jupyter import learning
from fourhosts_jupyter.cli import main
from fourhosts_jupyter.memory.backends import open_store
from fourhosts_jupyter.memory.comparisons import get_comparison, save_comparison
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.ingest import ingest
from fourhosts_jupyter.memory.store import MemoryRecord, Store
from fourhosts_jupyter.schedule.batch_store import ItemResult, batch_rows
from pg_fixtures import as_list

DATA = Path(__file__).parent / "data"
OLD = dt.datetime(2024, 3, 5, 7, 9, 11, 123456)
# every table the copy carries; the columns compared are the DuckDB table's own, so a column
# the PostgreSQL schema lacks, or a value the copy changes, fails the comparison
TABLES = {"memories": "id", "documents": "id", "document_passages": "document_id, memory_id",
          "runs": "id", "run_events": "run_id, seq", "feedback": "run_id, created_at",
          "run_features": "run_id", "comparisons": "id", "ledger": "run_id, kind, tool",
          "batches": "id", "batch_items": "batch_id, idx", "batch_dead_letter": "batch_id, idx"}
NOT_COMPARED = {"key"}  # a store's own row numbers: each store numbers its rows


def _fill(store: Store) -> None:
    emb = HashingEmbedder()
    ingest(DATA / "ingest_note.txt", store, "shared", embedder=emb, progress=False)
    recs = [MemoryRecord(f"m{i}", "shared" if i % 3 else "teddy", "semantic", f"fact {i} about rail",
                         "note", title=f"t{i}", metadata={"i": i}, importance=0.25 + i / 100,
                         expires_at=OLD + dt.timedelta(days=3650) if i == 4 else None)
            for i in range(30)]
    store.add_memories(recs[:20], emb.embed([r.content for r in recs[:20]]), emb.name)
    store.add_memories(recs[20:])  # no vectors
    with store.connect() as con:  # memories written long ago keep their time in the copy
        con.execute("UPDATE memories SET created_at = ? WHERE id IN ('m1', 'm25')", [OLD])
    for i, host in enumerate(("dolores", "teddy")):
        run_id = f"r_{i}"
        store.start_run(run_id, "why rail?", {"paradigm": host})
        store.finish_run(run_id, status="ok", classification={"primary": host}, paradigm=host,
                         provider="openai", model="gpt-4o", answer=f"because {i}", sources=[{"n": 1}],
                         usage={"prompt_tokens": 100 + i, "completion_tokens": 10, "total_tokens": 110 + i},
                         cost_usd=0.001 * (i + 1), timings={"total": 1.5},
                         error=None, events=[(0, "start", 0.0, {"q": 1}),
                                             (1, "tool_call_finished", 0.2, {"name": "search_memory", "seconds": 0.2}),
                                             (2, "done", 0.5, {})])
        learning.record_features(store, run_id, learning.Features.of("Why should the city build rail?"))
    learning.rate(store, "r_0", 5, "good")
    learning.rate(store, "r_0", 2, "changed my mind")
    save_comparison(store, "c_0001", kind="compare", question="why rail?", hosts=["dolores", "teddy"],
                    run_ids=["r_0", "r_1"], summary={"shared": 1})
    batches = batch_rows(store)  # a batch half done: one answer, one dead letter, one to go
    batches.create("b_0001", ["why rail?", "why trams?", "why buses?"], source="list",
                   column="question", options={"concurrency": 2})
    batches.finish("b_0001", ItemResult(0, "ok", run_id="r_0", host="dolores",
                                        probabilities={"dolores": 0.7, "teddy": 0.3},
                                        answer="because 0", sources=[{"n": 1}], tokens=110,
                                        cost_usd=0.001, seconds=1.5))
    batches.finish("b_0001", ItemResult(1, "failed", error="timed out", error_kind="timeout"))
    with store.connect() as con:
        con.execute("UPDATE runs SET confidence = 0.75, evaluation = ? WHERE id = 'r_0'",
                    [json.dumps({"healing": [0.5, 0.75]})])


def _value(v):  # noqa: ANN001, ANN202
    """One value as comparable across back-ends: JSON parsed, vectors as lists."""
    if hasattr(v, "to_list") or (isinstance(v, list) and v and isinstance(v[0], float)):
        return as_list(v)
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _tables(store, columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    out = {}
    with store.connect() as con:
        for table, order in TABLES.items():
            rows = con.execute(f"SELECT {', '.join(columns[table])} FROM {table} ORDER BY {order}").fetchall()
            out[table] = [tuple(_value(v) for v in row) for row in rows]
    return out


def test_duckdb_to_postgres_to_duckdb_keeps_every_row_and_timestamp(tmp_path, pg_url, capsys):
    src = Store(tmp_path / "src.duckdb")
    _fill(src)
    with src.connect() as con:
        columns = {t: [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position", [t]).fetchall() if r[0] not in NOT_COMPARED] for t in TABLES}
    assert main(["store", "migrate", "--from", str(src.path), "--to", pg_url, "--quiet"]) == 0
    assert main(["store", "migrate", "--from", pg_url, "--to", str(tmp_path / "back.duckdb"), "--quiet"]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert "1 comparisons" in summary and "2 run_features" in summary and "4 ledger" in summary

    first = _tables(src, columns)
    pg, back = _tables(open_store(pg_url), columns), _tables(Store(tmp_path / "back.duckdb"), columns)
    # what the source holds, so the comparison below compares something
    assert len(first["memories"]) > 30 and len(first["documents"]) == 1 and len(first["feedback"]) == 2
    assert len(first["ledger"]) == 4 and len(first["comparisons"]) == 1
    assert len(first["batch_items"]) == 3 and len(first["batch_dead_letter"]) == 1
    created = dict((r[0], r[columns["memories"].index("created_at")]) for r in first["memories"])
    assert created["m1"] == OLD and created["m25"] == OLD and created["m2"] > OLD
    for table in TABLES:
        assert pg[table] == first[table], table
        assert back[table] == first[table], table


def test_ledger_ratings_and_comparisons_work_on_the_copy(tmp_path, pg_url):
    src = Store(tmp_path / "src.duckdb")
    _fill(src)
    assert main(["store", "migrate", "--from", str(src.path), "--to", pg_url, "--quiet"]) == 0
    pg = open_store(pg_url)
    assert learning.ratings(pg) == learning.ratings(src) == {"r_0": 2}
    got = get_comparison(pg, "c_00")
    assert [r["id"] for r in got["runs"]] == ["r_0", "r_1"] and got["hosts"] == ["dolores", "teddy"]
    assert got["summary"] == {"shared": 1} == get_comparison(src, "c_0001")["summary"]
    from fourhosts_jupyter.usage import usage

    by_host = usage("host", store=pg)[["host", "runs", "total_tokens", "cost_usd"]]
    assert by_host.to_dict("records") == usage("host", store=src)[["host", "runs", "total_tokens", "cost_usd"]].to_dict("records")
    # the copy goes on being written: a run finished on PostgreSQL joins the copied ledger
    pg.start_run("r_new", "q", {})
    pg.finish_run("r_new", status="ok", classification=None, paradigm="maeve", provider="openai",
                  model="gpt-4o", answer="a", sources=[], usage={"prompt_tokens": 7, "completion_tokens": 3},
                  cost_usd=None, timings={}, error=None, events=[])
    assert usage("host", store=pg).set_index("host").loc["maeve", "total_tokens"] == 10
