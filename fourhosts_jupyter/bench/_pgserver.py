"""The PostgreSQL a PostgreSQL benchmark runs against: the one given, or a private pgserver."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Iterator


@contextlib.contextmanager
def database(url: str | None = None) -> Iterator[str]:
    """``url`` as it is, else a fresh database on a pgserver (PostgreSQL 16 + pgvector) started
    in a temporary directory and stopped after."""
    if url:
        yield url
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="fourhosts-pg-bench-") as root:
        server = pgserver.get_server(root, cleanup_mode="stop")
        try:
            server.psql("CREATE DATABASE bench;")
            head, _, query = server.get_uri().partition("?")
            yield head.rsplit("/", 1)[0] + f"/bench?{query}"
        finally:
            from ..memory.pg_store import close_pools

            close_pools()
            server.cleanup()
