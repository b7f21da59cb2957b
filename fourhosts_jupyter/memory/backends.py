"""One store interface, two back-ends chosen by the store location: a path is the embedded
DuckDB store (with FAISS and BM25 beside it), a ``postgresql://`` URL the shared PostgreSQL +
pgvector store. ``open_store`` is the one way to get either."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

STORE_ENV = "FOURHOSTS_STORE"


@runtime_checkable
class StoreBackend(Protocol):
    """What select, the retriever, the engine's run log and the CLI use of a store. Other
    features reach the store through ``connect()`` with SQL; on PostgreSQL that SQL runs through
    ``pg_compat`` (learning and ratings, evaluation, comparisons, the web cache work; the cost
    ledger keeps a PostgreSQL form of its SQL), document ingestion goes through a DuckDB stage
    (``pg_ingest``), and batches keep their own PostgreSQL tables (``schedule.pg_batch_store``)."""

    lock_timeout: float

    def connect(self) -> Any: ...
    def transaction(self) -> Any: ...
    def schema_version(self) -> list[str]: ...
    def store_id(self) -> str: ...
    def start_run(self, run_id: str, question: str, options: dict[str, Any]) -> None: ...
    def finish_run(self, run_id: str, **outcome: Any) -> None: ...
    def runs(self, limit: int = 50) -> Any: ...
    def get_run(self, run_id: str) -> dict[str, Any] | None: ...
    def add_feedback(self, run_id: str, rating: int, comment: str = "") -> None: ...
    def add_memories(self, records: Sequence[Any], embeddings: Any = None,
                     model: str | None = None) -> list[str]: ...
    def update_embeddings(self, keys: Sequence[int], embeddings: Any, model: str) -> int: ...
    def count_memories(self) -> int: ...
    def memories(self, **filters: Any) -> Any: ...
    def count_live_memories(self, **filters: Any) -> int: ...
    def get_memories(self, ids: Sequence[str]) -> Any: ...
    def forget(self, ids: Sequence[str]) -> int: ...
    def purge_expired(self) -> int: ...


def is_postgres(location: Any) -> bool:
    """A ``postgresql://`` (or ``postgres://``) URL; also one that went through ``Path``,
    which folds ``//`` to ``/``."""
    return str(location).startswith(("postgresql:", "postgres:"))


def where(store: Any) -> str:
    """The store's location for a message: its file, or its URL without the password."""
    if getattr(store, "is_postgres", False):
        from ..redact import redact

        return redact(store.url)
    return str(store.path)


def exists(store: Any) -> bool:
    """Whether the store is there to read (a file not yet created is not; a server's store is)."""
    return bool(getattr(store, "is_postgres", False)) or store.path.exists()


def _url(location: Any) -> str:
    text = str(location)
    scheme, _, rest = text.partition(":")
    return f"postgresql://{rest.lstrip('/')}" if not rest.startswith("//") else f"postgresql:{rest}"


def open_store(location: str | os.PathLike[str] | None = None, *, lock_timeout: float = 15.0) -> Any:
    """The store at ``location`` (else ``$FOURHOSTS_STORE``, else the default DuckDB file)."""
    location = location or os.environ.get(STORE_ENV) or None
    if location is not None and is_postgres(location):
        from .pg_store import PgStore

        return PgStore(_url(location), lock_timeout=lock_timeout)
    from .store import Store

    return Store(Path(location) if location else None, lock_timeout=lock_timeout)
