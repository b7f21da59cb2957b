"""Schema migrations: plain numbered functions, recorded by name in ``_migrations``.

Add a migration by appending a function to MIGRATIONS; never edit one that has shipped.
"""

from __future__ import annotations

from typing import Callable

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]


def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE runs (
            id VARCHAR PRIMARY KEY,
            question VARCHAR NOT NULL,
            options JSON,
            classification JSON,
            paradigm VARCHAR,
            provider VARCHAR,
            model VARCHAR,
            status VARCHAR NOT NULL,          -- running | ok | failed
            answer VARCHAR,
            sources JSON,
            usage JSON,
            cost_usd DOUBLE,
            timings JSON,
            error VARCHAR,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP
        )
        """
    )
    con.execute(
        """
        CREATE TABLE run_events (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            type VARCHAR NOT NULL,
            at_s DOUBLE NOT NULL,             -- seconds since the run started
            payload JSON
        )
        """
    )
    con.execute("CREATE SEQUENCE memory_key START 1")
    con.execute(
        """
        CREATE TABLE memories (
            id VARCHAR PRIMARY KEY,
            key BIGINT NOT NULL DEFAULT nextval('memory_key'),  -- integer id for the FAISS index
            namespace VARCHAR NOT NULL,       -- a host value or 'shared'
            memory_type VARCHAR NOT NULL,     -- procedural | episodic | semantic
            content VARCHAR NOT NULL,
            metadata JSON,
            importance DOUBLE DEFAULT 0.5,
            source VARCHAR NOT NULL,          -- document | run | tool | note
            document_id VARCHAR,
            title VARCHAR,
            content_hash VARCHAR NOT NULL,
            embedding FLOAT[],
            model VARCHAR,
            created_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP              -- NULL = long-term
        )
        """
    )
    con.execute("CREATE INDEX memories_hash ON memories(content_hash)")
    con.execute(
        """
        CREATE TABLE documents (
            id VARCHAR PRIMARY KEY,
            path VARCHAR,
            title VARCHAR,
            format VARCHAR,
            content_hash VARCHAR NOT NULL,
            metadata JSON,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE feedback (
            run_id VARCHAR NOT NULL,
            rating INTEGER NOT NULL,
            comment VARCHAR,
            created_at TIMESTAMP NOT NULL
        )
        """
    )


def m002_documents_and_identity(con: duckdb.DuckDBPyConnection) -> None:
    """Ingestion bookkeeping on documents, and a store identity for derived index files."""
    con.execute("ALTER TABLE documents ADD COLUMN namespace VARCHAR DEFAULT 'shared'")
    con.execute("ALTER TABLE documents ADD COLUMN external_id VARCHAR")
    con.execute("ALTER TABLE documents ADD COLUMN chunk_count INTEGER DEFAULT 0")
    con.execute("CREATE TABLE store_info (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    # Derived indexes (FAISS, BM25) are saved beside the store under this id, so a store that
    # is deleted and recreated at the same path never meets the old store's index files.
    con.execute("INSERT INTO store_info VALUES ('store_id', replace(uuid()::VARCHAR, '-', ''))")


def m003_document_passages(con: duckdb.DuckDBPyConnection) -> None:
    """Which passages each document holds, so a passage shared by two documents (identical
    text is stored once per namespace) lives as long as either holds it; and ``complete``, so a
    large document can be committed in batches and an interrupted ingest resumes it."""
    con.execute(
        """
        CREATE TABLE document_passages (
            document_id VARCHAR NOT NULL,
            memory_id VARCHAR NOT NULL,
            PRIMARY KEY (document_id, memory_id)
        )
        """
    )
    con.execute("ALTER TABLE documents ADD COLUMN complete BOOLEAN DEFAULT true")
    # each document holds the passages it brought in ...
    con.execute(
        """INSERT INTO document_passages
           SELECT DISTINCT m.document_id, m.id FROM memories m
           JOIN documents d ON d.id = m.document_id"""
    )
    # ... and an identical document (same text, same namespace) holds the same passages
    con.execute(
        """INSERT INTO document_passages
           SELECT DISTINCT d.id, r.memory_id FROM documents d
           JOIN documents o ON o.namespace = d.namespace AND o.content_hash = d.content_hash
                            AND o.id <> d.id
           JOIN document_passages r ON r.document_id = o.id
           ON CONFLICT DO NOTHING"""
    )
    # A document that shared passages with a different one cannot be told apart here: one
    # holding fewer passages than it had is marked incomplete, and its next ingest re-links it.
    con.execute(
        """UPDATE documents SET chunk_count = (
               SELECT count(*) FROM document_passages r WHERE r.document_id = documents.id)"""
    )
    con.execute(
        """UPDATE documents SET complete = chunk_count
               >= coalesce(TRY_CAST(json_extract(metadata, '$.passages') AS INTEGER), 0)"""
    )


def m004_batches(con: duckdb.DuckDBPyConnection) -> None:
    """Batch research (schedule/batch.py): a batch, each of its items as it finishes, and the
    dead letters (failed items with their error) that ``--retry-failed`` runs again."""
    con.execute(
        """
        CREATE TABLE batches (
            id VARCHAR PRIMARY KEY,
            source VARCHAR,                   -- the input file, or 'list' / 'dataframe'
            column_name VARCHAR,
            options JSON,                     -- run options, concurrency, budgets
            state VARCHAR NOT NULL,           -- running | done | failed | stopped | interrupted
            total INTEGER NOT NULL,
            pid INTEGER,                      -- the process running it (a dead one = interrupted)
            note VARCHAR,                     -- why it stopped
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE batch_items (
            batch_id VARCHAR NOT NULL,
            idx INTEGER NOT NULL,
            question VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- pending | running | ok | failed
            run_id VARCHAR,
            host VARCHAR,
            probabilities JSON,
            answer VARCHAR,
            sources JSON,
            tokens BIGINT,
            cost_usd DOUBLE,
            seconds DOUBLE,
            error VARCHAR,
            error_kind VARCHAR,
            attempts INTEGER NOT NULL DEFAULT 0,
            finished_at TIMESTAMP,
            PRIMARY KEY (batch_id, idx)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE batch_dead_letter (
            batch_id VARCHAR NOT NULL,
            idx INTEGER NOT NULL,
            question VARCHAR NOT NULL,
            error VARCHAR,
            error_kind VARCHAR,
            run_id VARCHAR,
            attempts INTEGER NOT NULL,
            failed_at TIMESTAMP NOT NULL,
            PRIMARY KEY (batch_id, idx)
        )
        """
    )


def m005_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """The cost ledger (memory/ledger.py), filled from the runs already in the store."""
    from .ledger import CREATE, fill

    con.execute(CREATE)
    fill(con)


def m006_comparisons(con: duckdb.DuckDBPyConnection) -> None:
    """Compositions of runs (a compare grid, a blend): one row each, and every run it holds
    linked to it by ``runs.comparison_id``, so the whole grid can be drawn again."""
    con.execute(
        """
        CREATE TABLE comparisons (
            id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,            -- compare | blend
            question VARCHAR NOT NULL,
            hosts JSON,                       -- the hosts, in panel order
            summary JSON,                     -- footer figures / blend result
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute("ALTER TABLE runs ADD COLUMN comparison_id VARCHAR")


def m007_evaluation(con: duckdb.DuckDBPyConnection) -> None:
    """Each run's evaluation: its confidence (a column, to list and sort by) and the evaluation,
    healing rounds (confidence before/after) and collaborations as JSON (quality/stage.py)."""
    con.execute("ALTER TABLE runs ADD COLUMN confidence DOUBLE")
    con.execute("ALTER TABLE runs ADD COLUMN evaluation JSON")


def m008_feedback(con: duckdb.DuckDBPyConnection) -> None:
    """The features of each run's question, which learning groups ratings by (brief §1.4)."""
    con.execute(
        """
        CREATE TABLE run_features (
            run_id VARCHAR PRIMARY KEY,
            word_count INTEGER NOT NULL,
            action BOOLEAN NOT NULL,
            analytical BOOLEAN NOT NULL,
            protective BOOLEAN NOT NULL,
            strategic BOOLEAN NOT NULL,
            form VARCHAR NOT NULL,            -- question | command | exploration
            domain VARCHAR NOT NULL,          -- technology, business, … or general
            created_at TIMESTAMP NOT NULL
        )
        """
    )


def m009_web_cache(con: duckdb.DuckDBPyConnection) -> None:
    """Cached web search results and read pages (tools/web_store.py), each with its expiry."""
    con.execute(
        """
        CREATE TABLE web_cache (
            kind VARCHAR NOT NULL,            -- search | page | papers | …
            key VARCHAR NOT NULL,             -- sha256 of the normalised request
            request JSON,                     -- the request, for inspection
            value JSON NOT NULL,
            fetched_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP NOT NULL,
            PRIMARY KEY (kind, key)
        )
        """
    )


MIGRATIONS: list[Migration] = [m001_initial, m002_documents_and_identity, m003_document_passages,
                               m004_batches, m005_ledger, m006_comparisons, m007_evaluation,
                               m008_feedback, m009_web_cache]
