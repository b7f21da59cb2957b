"""A real PostgreSQL 16 with pgvector for the tests: the PyPI package ``pgserver`` starts a
private server in a temporary directory (Unix socket, no TCP port) once per session; each test
gets a database of its own.

Without pgserver installed the tests skip saying so; ``.ci/run`` sets FOURHOSTS_REQUIRE_SYSTEM=1,
which turns that skip into a failure."""

from __future__ import annotations

import shutil
import tempfile
import uuid

import pytest
from system_packages import unavailable


def _pgserver():  # noqa: ANN202
    try:
        import pgserver
    except ImportError:
        unavailable("pgserver is not installed (pip install -e '.[test,postgres]')")
    return pgserver


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL; stopped and its directory removed after the last test."""
    pgserver = _pgserver()
    root = tempfile.mkdtemp(prefix="fourhosts-pg-")
    server = pgserver.get_server(root, cleanup_mode="stop")
    yield server
    from fourhosts_jupyter.memory.pg_store import close_pools

    close_pools()
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def new_database(server) -> str:  # noqa: ANN001
    """A fresh, empty database on ``server``; its URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    server.psql(f"CREATE DATABASE {name};")
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/tmp/…
    head, _, query = uri.partition("?")
    return head.rsplit("/", 1)[0] + f"/{name}?{query}"


@pytest.fixture
def pg_url(pg_server):
    """A fresh database; this process's connections to it are closed after the test."""
    from fourhosts_jupyter.memory.pg_store import close_pool

    url = new_database(pg_server)
    yield url
    close_pool(url)


@pytest.fixture(params=["duckdb", "postgres"])
def any_store(request, tmp_path):
    """The same test against both back-ends, each opened through ``open_store``."""
    from fourhosts_jupyter.memory.backends import open_store

    if request.param == "duckdb":
        return open_store(tmp_path / "store.duckdb")
    return open_store(request.getfixturevalue("pg_url"))


def as_list(vector) -> list[float]:  # noqa: ANN001
    """A stored vector as a list of floats (DuckDB gives a list, pgvector a Vector)."""
    return [float(x) for x in (vector.to_list() if hasattr(vector, "to_list") else vector)]
