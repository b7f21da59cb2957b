"""Document ingestion into a PostgreSQL store: the files are read, split and embedded by the
one ingestion path (``ingest.py``) into a temporary DuckDB store, then copied over with
``store_copy`` (binary COPY). Documents whose text the shared store already holds in the
namespace are left out before the copy, so ingesting the same files twice adds nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def ingest_via_staging(sources: Any, store: Any, namespace: str, **options: Any) -> Any:
    from .ingest import ingest
    from .store import Store
    from .store_copy import copy_store

    with tempfile.TemporaryDirectory(prefix="fourhosts-stage-") as tmp:
        stage = Store(Path(tmp) / "stage.duckdb")
        report = ingest(sources, stage, namespace, **options)
        with stage.connect() as con:
            docs = con.execute("SELECT id, namespace, content_hash FROM documents").fetchall()
        if docs:
            with store.connect() as con:
                have = {(ns, h) for ns, h in con.execute(
                    "SELECT namespace, content_hash FROM documents WHERE content_hash = ANY(%s)",
                    [[d[2] for d in docs]]).fetchall()}
            stage.forget_documents([d[0] for d in docs if (d[1], d[2]) in have])
        copy_store(stage, store, progress=False, exact=False)
        with store.connect() as con:  # the copy's resume marks are of no use for a stage
            con.execute("DELETE FROM store_info WHERE starts_with(name, %s)",
                        [f"copied_from:{stage.store_id()}"])
    return report
