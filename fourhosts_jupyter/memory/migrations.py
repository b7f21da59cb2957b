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


def m007_evaluation(con: duckdb.DuckDBPyConnection) -> None:
    """Each run's evaluation: its confidence (a column, to list and sort by) and the evaluation,
    healing rounds (confidence before/after) and collaborations as JSON (quality/stage.py)."""
    con.execute("ALTER TABLE runs ADD COLUMN confidence DOUBLE")
    con.execute("ALTER TABLE runs ADD COLUMN evaluation JSON")


MIGRATIONS: list[Migration] = [m001_initial, m002_documents_and_identity, m003_document_passages, m007_evaluation]
